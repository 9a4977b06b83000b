// log2(m), m in [1, 2): degree-7 polynomial, lowest order first, as IEEE-754 float bit patterns.
// Must equal whisper_npu/npu_ops/kernels.py LOG2_COEFF_BITS (tests/test_npu_kernels.py checks it).
#pragma once
#include <stdint.h>

static const uint32_t WNPU_LOG2_COEFF_BITS[8] = {
    0xC04F0F01u, 0x40E2BC2Cu, 0xC0ECB30Bu, 0x40B5938Bu,
    0xC03A8E8Du, 0x3F736ECAu, 0xBE366B27u, 0x3C6F3A38u,
};
