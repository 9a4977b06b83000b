"""The import rules of docs/ARCHITECTURE.md, read from its tables and checked on every module (ast, no imports)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "whisper_npu"
DOC = ROOT / "docs" / "ARCHITECTURE.md"
FOLDERS = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}


def unit_of(module: str) -> str:
    """``whisper_npu.npu.mel`` -> ``npu/``; ``whisper_npu.vad`` -> ``vad``; ``whisper_npu`` -> ``__init__``."""
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    return f"{parts[0]}/" if parts[0] in FOLDERS else parts[0]


def _table(heading_text: str) -> list[list[str]]:
    """Rows (cells) of the first markdown table after a line containing ``heading_text``."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if heading_text in line)
    rows = []
    for line in lines[start:]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not set(cells[0]) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def rules() -> dict[str, set[str] | None]:
    """unit -> the units it may import (None: anything)."""
    out: dict[str, set[str] | None] = {}
    for unit_cell, allowed_cell in _table("## Import rules"):
        allowed = None if allowed_cell.strip() == "anything" else set(_names(allowed_cell))
        for unit in _names(unit_cell):
            out[unit] = allowed
    return out


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "whisper_npu":  # from whisper_npu import api -> whisper_npu.api
                found += [(f"whisper_npu.{a.name}", node.lineno, id(node) in top) for a in node.names]
            else:
                found.append((base, node.lineno, id(node) in top))
    return found


def _expand(allowed: set[str], engine: set[str]) -> set[str]:
    return (allowed - {"engine"}) | (engine if "engine" in allowed else set())


def test_every_unit_has_a_rule():
    table = rules()
    engine = {unit_of(m) for m, _ in modules() if "/" not in unit_of(m)}
    missing = {unit_of(m) for m, _ in modules()} - set(table) - engine
    assert not missing, f"docs/ARCHITECTURE.md has no import rule for {sorted(missing)}"


def test_imports_follow_the_architecture():
    table = rules()
    engine = {unit_of(m) for m, _ in modules() if "/" not in unit_of(m)}
    bad = []
    for module, path in modules():
        unit = unit_of(module)
        allowed = table.get(unit, table["engine"])
        if allowed is None:
            continue
        allowed = _expand(allowed, engine) | {unit}
        for target, line, _ in imports(module, path):
            if target.startswith("whisper_npu.") or target == "whisper_npu":
                if target == "whisper_npu" or unit_of(target) == "__init__":
                    continue  # the package itself (its lazy names)
                if unit_of(target) not in allowed:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {target} ({unit} -> {unit_of(target)})")
    assert not bad, "imports docs/ARCHITECTURE.md does not allow:\n" + "\n".join(bad)


def test_third_party_packages_stay_home():
    homes = {}
    for package_cell, where in _table("Third-party packages with a home"):
        for package in _names(package_cell):
            homes[package] = where
    bad = []
    for module, path in modules():
        unit = unit_of(module)
        for target, line, top_level in imports(module, path):
            root = target.split(".")[0]
            where = homes.get(root)
            if where is None:
                continue
            allowed = set(_names(where))
            lazy_ok = "not at module level" in where or "inside functions" in where
            if unit in allowed and not ("inside functions" in where and top_level):
                continue
            if f"`{unit}`" in where and lazy_ok and not top_level:
                continue
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "third-party imports outside their home (docs/ARCHITECTURE.md):\n" + "\n".join(bad)


@pytest.mark.parametrize("folder, other", [("tests", "scripts"), ("scripts", "tests")])
def test_tests_and_scripts_do_not_import_each_other(folder, other):
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        text = path.read_text()
        for target, line, _ in imports(folder, path):
            if target.split(".")[0] == other:
                bad.append(f"{path.relative_to(ROOT)}:{line}")
        loaders = rf"(spec_from_file_location|sys\.path\.(insert|append)|run_path)\([\s\S]{{0,200}}?\b{other}\b"
        for match in re.finditer(loaders, text):
            line = text[: match.start()].count("\n") + 1
            bad.append(f"{path.relative_to(ROOT)}:{line} loads a file from {other}/")
    assert not bad, f"{folder}/ imports {other}/:\n" + "\n".join(bad)


def test_the_checker_sees_a_forbidden_import(tmp_path, monkeypatch):
    """The rules bite: an engine module importing the app, or npu/ importing rich, is reported."""
    assert unit_of("whisper_npu.npu.mel") == "npu/" and unit_of("whisper_npu.vad") == "vad"
    table = rules()
    assert "app/" not in _expand(table["engine"], {"vad"})
    assert table["npu/"] is not None and "pipeline" not in table["npu/"]
    fake = tmp_path / "vad.py"
    fake.write_text("from whisper_npu.app.cli import app\nimport rich\n")
    found = imports("whisper_npu.vad", fake)
    assert ("whisper_npu.app.cli", 1, True) in found and ("rich", 2, True) in found
