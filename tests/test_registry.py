"""Model registry: names resolve offline to complete model directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from whisper_npu.errors import ModelError
from whisper_npu.model import registry


def test_default_is_embedded_tiny_en():
    path = registry.resolve(None)
    assert registry.is_model_dir(path)
    config = json.loads((path / "config.json").read_text())
    # tiny.en is English-only: no language tokens beyond the single English model vocabulary.
    assert "alignment_heads" in config


def test_base_is_assembled_from_both_parts(tmp_path, monkeypatch):
    monkeypatch.setenv("WHISPER_NPU_CACHE", str(tmp_path))
    path = registry.resolve("base")
    assert path.parent.parent == tmp_path
    entry = registry._registry()["models"]["base"]
    parts = [registry._package_dir(pkg) / rel for pkg, rel in entry["parts"]]
    assert (path / "model.bin").stat().st_size == sum(p.stat().st_size for p in parts)
    # The seam between the parts is byte-exact: the head of part 2 follows part 1.
    with open(path / "model.bin", "rb") as f, open(parts[1], "rb") as p2:
        f.seek(parts[0].stat().st_size)
        assert f.read(4096) == p2.read(4096)
    assert not (path / "model.bin.partial").exists()


def test_truncated_assembly_is_redone(tmp_path, monkeypatch):
    monkeypatch.setenv("WHISPER_NPU_CACHE", str(tmp_path))
    path = registry.resolve("base")
    size = (path / "model.bin").stat().st_size
    with open(path / "model.bin", "r+b") as f:
        f.truncate(1000)
    assert registry.resolve("base") == path
    assert (path / "model.bin").stat().st_size == size


def test_model_directory_path_is_accepted(tmp_path):
    src = registry.resolve("tiny.en")
    assert registry.resolve(str(src)) == src


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("small", "not available"), ("no-such-model", "unknown model"), ("/", "not a faster-whisper model")],
)
def test_bad_names_give_one_line_errors(name, fragment):
    with pytest.raises(ModelError) as info:
        registry.resolve(name)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_incomplete_directory_names_missing_files(tmp_path: Path):
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="missing config.json, tokenizer.json"):
        registry.resolve(str(tmp_path))


def test_list_models_marks_availability():
    rows = {row.name: row for row in registry.list_models()}
    assert rows["tiny.en"].available and rows["tiny.en"].path is not None
    assert not rows["small"].available
