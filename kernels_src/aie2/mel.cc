// Mel pipeline pieces for AIE2: power spectrum, mel filterbank and log10, plus a scalar path.
//
// The DFT itself is the bf16 GEMM of the matmul design run as "bf16x3" (hi*hi + hi*lo + lo*hi with
// f32 accumulation, see whisper_npu/npu_ops/kernels.py gemm_bf16x3); this file holds what follows
// it on the same core: |X|^2 from the cos/sin halves, the slaney filterbank (a small f32 GEMM:
// n_mels x 201) and log10 — which AIE2 lacks as an instruction, so it is the float's exponent plus
// a degree-7 polynomial of its mantissa (coefficients shared with the numpy contract).
//
// Build: Peano for the NPU; gcc -DWNPU_SCALAR -ffp-contract=off for tests, so every float
// operation rounds exactly as numpy's float32 elementwise ops do.

#include <stdint.h>
#include <string.h>

#include "log2_coeffs.h"

#define LOG10_2 0.30102999566398120f
#define LOG_FLOOR 1e-10f

static inline float bits_to_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static inline uint32_t float_to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

// float32 -> bfloat16 (round to nearest even), returned widened to float32.
static inline float to_bf16(float x) {
  uint32_t u = float_to_bits(x);
  u += ((u >> 16) & 1u) + 0x7FFFu;
  return bits_to_float(u & 0xFFFF0000u);
}

// log10(max(x, 1e-10)): x = m * 2^e with m in [1, 2); log2(m) by Horner in f32.
static inline float log10_poly(float x) {
  if (!(x > LOG_FLOOR)) x = LOG_FLOOR;
  uint32_t u = float_to_bits(x);
  int e = (int)((u >> 23) & 0xFFu) - 127;
  float m = bits_to_float((u & 0x007FFFFFu) | 0x3F800000u);
  float acc = bits_to_float(WNPU_LOG2_COEFF_BITS[7]);
  for (int i = 6; i >= 0; --i) {
    acc = acc * m;
    acc = acc + bits_to_float(WNPU_LOG2_COEFF_BITS[i]);
  }
  return (acc + (float)e) * LOG10_2;
}

extern "C" {

// spec: [frames x 2*n_freq] (cos half then sin half) -> power [frames x n_freq]
void power_spectrum_f32(const float *spec, float *power, int frames, int n_freq) {
  for (int f = 0; f < frames; ++f)
    for (int j = 0; j < n_freq; ++j) {
      float re = spec[f * 2 * n_freq + j], im = spec[f * 2 * n_freq + n_freq + j];
      power[f * n_freq + j] = re * re + im * im;
    }
}

// In place: x[i] = log10(max(x[i], 1e-10)).
void log10_f32(float *x, int count) {
  for (int i = 0; i < count; ++i) x[i] = log10_poly(x[i]);
}

// Split into bf16 hi + bf16 residual (operands of the bf16x3 GEMM).
void split_bf16(const float *x, float *hi, float *lo, int count) {
  for (int i = 0; i < count; ++i) {
    hi[i] = to_bf16(x[i]);
    lo[i] = to_bf16(x[i] - hi[i]);
  }
}

// filters [n_mels x n_freq] @ power^T -> mel [n_mels x frames], f32 accumulation in j order.
void mel_filterbank_f32(const float *filters, const float *power, float *mel, int n_mels, int n_freq, int frames) {
  for (int b = 0; b < n_mels; ++b)
    for (int f = 0; f < frames; ++f) {
      float acc = 0.0f;
      for (int j = 0; j < n_freq; ++j) acc += filters[b * n_freq + j] * power[f * n_freq + j];
      mel[b * frames + f] = acc;
    }
}
}
