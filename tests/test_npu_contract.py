"""The pyxrt API the runtime uses exists in pyxrt 2.25's own type stub, and the emulator exposes it too."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from whisper_npu.bench.corpus import SHARED
from whisper_npu.npu import emulator, runtime

STUB = SHARED / "research" / "pyxrt-2.25.pyi"


def _stub_classes() -> dict[str, dict[str, list[ast.FunctionDef | ast.AnnAssign]]]:
    tree = ast.parse(STUB.read_text())
    classes: dict[str, dict[str, list]] = {"<module>": {}}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            classes["<module>"].setdefault(node.name, []).append(node)
        elif isinstance(node, ast.ClassDef):
            members: dict[str, list] = {}
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef):
                    members.setdefault(sub.name, []).append(sub)
                elif isinstance(sub, ast.AnnAssign) and isinstance(sub.target, ast.Name):
                    members.setdefault(sub.target.id, []).append(sub)
                elif isinstance(sub, ast.ClassDef):
                    members.setdefault(sub.name, []).append(sub)
                    classes[sub.name] = {s.name: [s] for s in sub.body if isinstance(s, ast.FunctionDef)}
            classes[node.name] = members
            classes["<module>"][node.name] = [node]
    return classes


STUB_API = _stub_classes()


def _arities(defs) -> set[int]:
    """Positional argument counts (without self) each overload of a stub method accepts."""
    out: set[int] = set()
    for d in defs:
        if isinstance(d, ast.FunctionDef):
            n = len(d.args.args) - 1
            if d.args.vararg is not None:
                out.update(range(n, n + 10))
            out.add(n)
    return out


@pytest.mark.parametrize(("cls", "attr"), runtime.PYXRT_API)
def test_runtime_calls_exist_in_stub(cls, attr):
    owner = STUB_API["<module>"] if cls is None else STUB_API[cls]
    assert attr in owner, f"pyxrt 2.25 has no {cls}.{attr}"


@pytest.mark.parametrize(("cls", "attr"), runtime.PYXRT_API)
def test_emulator_exposes_the_same(cls, attr):
    if cls is None:
        assert hasattr(emulator, attr)
        return
    holder = getattr(emulator, cls, None) or getattr(emulator.xclbin, cls)
    assert hasattr(holder, attr), f"emulator lacks {cls}.{attr}"


# Arity of every method call the runtime makes (checked against the stub's overloads).
CALLS = {
    ("device", "__init__"): 1,
    ("xclbin", "__init__"): 1,
    ("hw_context", "__init__"): 2,
    ("kernel", "__init__"): 2,
    ("bo", "__init__"): 4,
    ("device", "register_xclbin"): 1,
    ("kernel", "group_id"): 1,
    ("bo", "write"): 2,
    ("bo", "map"): 0,
    ("bo", "sync"): 1,
    ("bo", "size"): 0,
    ("run", "wait"): 1,
}


@pytest.mark.parametrize(("key", "arity"), sorted(CALLS.items()))
def test_call_arities_match_stub_and_emulator(key, arity):
    cls, method = key
    assert arity in _arities(STUB_API[cls][method]), f"stub {cls}.{method} has no {arity}-argument overload"
    params = inspect.signature(getattr(getattr(emulator, cls), method)).parameters
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]
    required = [p for p in positional if p.default is p.empty]
    assert len(required) <= arity <= len(positional), (
        f"emulator {cls}.{method}{inspect.signature(getattr(getattr(emulator, cls), method))}"
    )


def test_sync_with_size_and_offset_overload():
    """The runtime's sized syncs match a stub overload, and the emulator syncs exactly that byte range."""
    tree = ast.parse(Path(runtime.__file__).read_text())
    syncs = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "sync"]
    assert syncs
    for call in syncs:
        assert len(call.args) in _arities(STUB_API["bo"]["sync"]), ast.unparse(call)
    bo = emulator.bo(emulator.device(0), 16, emulator.bo.host_only, 3)
    bo.write(bytes(range(1, 17)), 0)
    bo.sync(emulator.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, 8, 4)
    assert bytes(bo._dev) == bytes(4) + bytes(range(5, 13)) + bytes(4)


def test_map_is_a_memoryview_in_the_stub():
    (fn,) = STUB_API["bo"]["map"]
    assert ast.unparse(fn.returns) == "memoryview"


def test_runtime_source_uses_only_declared_names():
    """Every ``xrt.<name>`` the runtime touches is in PYXRT_API (so the two tests above cover it)."""
    source = Path(runtime.__file__).read_text()
    used = set(re.findall(r"\bxrt\.([A-Za-z_]+)", source))
    declared = {attr for cls, attr in runtime.PYXRT_API if cls is None}
    assert used <= declared, used - declared


def test_enum_values_match_xdna():
    s = emulator.ert_cmd_state
    assert (s.ERT_CMD_STATE_COMPLETED, s.ERT_CMD_STATE_ERROR, s.ERT_CMD_STATE_TIMEOUT) == (4, 5, 8)
    assert set(STUB_API["ert_cmd_state"]) >= {m for m in s.__members__}
