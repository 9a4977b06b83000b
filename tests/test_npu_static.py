"""Static resource check over the overlay configurations (designs.py) — the check CI runs.

Every configuration the build script builds must pass; the old hand-written layout and deliberately broken
configurations must fail, each for its own reason (the violation code), so a check that passes everything
cannot hide here.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from whisper_npu.npu import designs
from whisper_npu.npu.designs import GemmConfig, all_configs, config_for, make_config, whisper_configs
from whisper_npu.npu.static_check import (
    CORE_MEMORY,
    SHIM_BDS,
    check,
    place,
)


def codes(cfg: GemmConfig) -> set[str]:
    return {v.code for v in check(cfg)}


@pytest.mark.parametrize("cfg", all_configs(), ids=lambda c: c.name)
def test_every_built_configuration_passes(cfg: GemmConfig) -> None:
    assert check(cfg) == []


def test_built_list_covers_tiny_and_base_encoder_and_mel_on_both_targets() -> None:
    for target in ("npu1", "npu2"):
        uses = {(model, op) for c in whisper_configs(target) for model, op in c.uses}
        for model in ("tiny x1", "base x1", "tiny x4", "base x4"):
            for op in ("encoder.attn.q/k/v", "encoder.attn.out", "encoder.mlp.fc1.<block>", "encoder.mlp.fc2",
                       "decoder.cross_attn.k/v", "mel.dft", "mel.filterbank"):  # fmt: skip
                assert (model, op) in uses, (target, model, op)


def test_one_window_of_one_model_fits_phoenix_context_limit() -> None:
    """Every overlay a single tiny/base run at one batch size needs must be resident at once (6 on npu1)."""
    for model in ("tiny x1", "base x1", "tiny x4", "base x4"):
        needed = [c for c in whisper_configs("npu1") if any(u[0] == model for u in c.uses)]
        assert len(needed) <= designs.HWCTX_LIMIT["npu1"], (model, [c.name for c in needed])


@pytest.mark.parametrize("kn", [(384, 384), (1536, 384), (512, 512)])
def test_whole_array_places_one_c_stream_per_column_and_reuses_bds(kn: tuple[int, int]) -> None:
    cfg = config_for(1500, *kn, "npu1")
    assert cfg is not None
    p = place(cfg)
    assert set(p.shim_s2mm.values()) == {1}  # C joined per column in the memtile
    assert max(p.shim_mm2s.values()) <= 2
    assert len(p.task_groups) > 1  # the sequence waits and reuses BDs
    for group in p.task_groups:
        for col in range(cfg.n_aie_cols):
            ids = {t.bd_id for t in group if t.column == col}
            assert len(ids) <= SHIM_BDS and max(ids) < SHIM_BDS


def _legacy(cfg: GemmConfig) -> GemmConfig:
    return replace(cfg, layout="legacy", dtype_in="i8", dtype_out="i32", name="legacy_" + cfg.name)


@pytest.mark.parametrize("shape", [(1536, 384, 1152), (1536, 2048, 512), (1536, 512, 2048)])
def test_old_hand_written_design_is_rejected_for_its_three_faults(shape: tuple[int, int, int]) -> None:
    cfg = _legacy(make_config(*shape, "npu1"))
    found = check(cfg)
    by_code = {v.code: v.message for v in found}
    assert "shim_s2mm" in by_code and "4 output (S2MM) streams" in by_code["shim_s2mm"]
    assert "shim_bd" in by_code  # an unrolled sequence with no task groups
    assert "broadcast" in by_code and "only 1 acquire" in by_code["broadcast"]
    assert "l1" not in by_code and "shape" not in by_code  # rejected for the right reasons, not by accident


def test_tile_too_big_for_core_memory_fails_l1() -> None:
    cfg = replace(make_config(1536, 512, 1024, "npu1"), m=128, k=128, n=64)
    assert cfg.M % (cfg.m * 4) == 0 and cfg.K % cfg.k == 0 and cfg.N % (cfg.n * 4) == 0
    violations = check(cfg)
    assert [v.code for v in violations] == ["l1"], violations
    assert str(CORE_MEMORY - 1024) in violations[0].message


def test_non_divisible_k_fails_shape() -> None:
    cfg = replace(make_config(1536, 448, 1152, "npu1"), K=400)
    assert codes(cfg) == {"shape"}


def test_tile_not_multiple_of_mmul_fails_mmul() -> None:
    cfg = replace(make_config(1536, 384, 1152, "npu1"), n=24, N=24 * 4 * 12)
    assert codes(cfg) == {"mmul"}
    # i16 on aie2 uses 4x4x4 and allows n=8 multiples where bf16 does not
    assert "mmul" not in codes(replace(cfg, n=8, N=8 * 4 * 36, dtype_in="i16", dtype_out="i32"))


def test_too_many_columns_for_phoenix_fails() -> None:
    cfg = make_config(1536, 384, 1536, "npu2")
    assert cfg.n_aie_cols == 8 and check(cfg) == []
    assert "columns" in codes(replace(cfg, target="npu1"))


def test_too_many_shim_streams_fails() -> None:
    """The legacy C drain on an otherwise valid bf16 config still fails on streams, not on anything else."""
    cfg = replace(make_config(1536, 384, 1536, "npu1"), layout="legacy")
    assert "shim_s2mm" in codes(cfg)


def test_huge_n_overflows_shim_stride() -> None:
    cfg = make_config(1536, 1280, 5120, "npu1")  # large-v3 fc1: C's row-block stride 256*N words > 2^20
    assert codes(cfg) == {"dma"}


def test_memtile_budget_is_checked() -> None:
    cfg = replace(make_config(2048, 512, 1024, "npu1"), m=512, k=16, n=32)
    assert "memtile" in codes(cfg)


def test_tile_that_fills_core_memory_leaves_no_room_for_the_stack():
    """static-l1-no-stack: 64x64x64 bf16/f32 double-buffered is exactly 64 KiB; the 1 KiB stack does not fit."""
    cfg = replace(make_config(1536, 512, 1024, "npu1"), m=64, k=64, n=64)
    assert place(cfg).l1_bytes == CORE_MEMORY
    assert [v.code for v in check(cfg)] == ["l1"]
