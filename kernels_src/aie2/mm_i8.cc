// int8 x int8 -> int32 matmul tile kernel for AIE2 (Phoenix / Hawk Point), plus a scalar path.
//
// Layout in core memory (written by the memtile/shim DMAs of the whole-array design, see
// kernels_src/iron/mm_whole_array.py): A tile DIM_M x DIM_K as row-major blocks of R x S,
// B tile DIM_K x DIM_N as blocks of S x T, C tile DIM_M x DIM_N as blocks of R x T, where
// R x S x T = 4 x 8 x 8 is the aie::mmul shape for int8 on AIE2. C accumulates across the
// K/DIM_K calls of one output tile (zero_i32 clears it first); int32 accumulation is exact
// for K * 127 * 127 < 2^31, which the manifest's shape rules guarantee.
//
// Built two ways:
//   * for the NPU by Peano:  clang++ --target=aie2-none-unknown-elf -DDIM_M=64 -DDIM_K=64 -DDIM_N=32 ...
//   * for tests by gcc:      g++ -shared -fPIC -DWNPU_SCALAR ... (tests/test_npu_kernels.py)
// Both compute the same integers; the scalar path walks the blocks in the same order.

#include <stdint.h>

#ifndef DIM_M
#define DIM_M 64
#endif
#ifndef DIM_K
#define DIM_K 64
#endif
#ifndef DIM_N
#define DIM_N 32
#endif

#define MMUL_R 4
#define MMUL_S 8
#define MMUL_T 8

#if !defined(WNPU_SCALAR)
#include <aie_api/aie.hpp>

template <unsigned M, unsigned K, unsigned N>
static inline void matmul_tile(const int8_t *__restrict pA, const int8_t *__restrict pB, int32_t *__restrict pC) {
  using MMUL = aie::mmul<MMUL_R, MMUL_S, MMUL_T, int8, int8, acc32>;
  constexpr unsigned rowA = M / MMUL_R, colA = K / MMUL_S, colB = N / MMUL_T;
  static_assert(rowA % 2 == 0 && colB % 2 == 0, "2x2 register blocking needs even block counts");
  event0();
  for (unsigned z = 0; z < rowA; z += 2) chess_prepare_for_pipelining chess_loop_range(2, ) {
    int32_t *__restrict pC1 = pC + (z * colB) * MMUL::size_C;
    int32_t *__restrict pC2 = pC + ((z + 1) * colB) * MMUL::size_C;
    for (unsigned j = 0; j < colB; j += 2) chess_loop_range(2, ) {
      const int8_t *__restrict pA1 = pA + (z * colA) * MMUL::size_A;
      const int8_t *__restrict pA2 = pA + ((z + 1) * colA) * MMUL::size_A;
      const int8_t *__restrict pB1 = pB + j * MMUL::size_B;
      const int8_t *__restrict pB2 = pB + (j + 1) * MMUL::size_B;
      MMUL C00(aie::load_v<MMUL::size_C>(pC1));
      MMUL C01(aie::load_v<MMUL::size_C>(pC1 + MMUL::size_C));
      MMUL C10(aie::load_v<MMUL::size_C>(pC2));
      MMUL C11(aie::load_v<MMUL::size_C>(pC2 + MMUL::size_C));
      for (unsigned i = 0; i < colA; ++i) chess_flatten_loop {
        aie::vector<int8, MMUL::size_A> A0 = aie::load_v<MMUL::size_A>(pA1);
        aie::vector<int8, MMUL::size_A> A1 = aie::load_v<MMUL::size_A>(pA2);
        aie::vector<int8, MMUL::size_B> B0 = aie::load_v<MMUL::size_B>(pB1);
        aie::vector<int8, MMUL::size_B> B1 = aie::load_v<MMUL::size_B>(pB2);
        pA1 += MMUL::size_A;
        pA2 += MMUL::size_A;
        pB1 += colB * MMUL::size_B;
        pB2 += colB * MMUL::size_B;
        C00.mac(A0, B0);
        C01.mac(A0, B1);
        C10.mac(A1, B0);
        C11.mac(A1, B1);
      }
      aie::store_v(pC1, C00.template to_vector<int32>());
      aie::store_v(pC1 + MMUL::size_C, C01.template to_vector<int32>());
      aie::store_v(pC2, C10.template to_vector<int32>());
      aie::store_v(pC2 + MMUL::size_C, C11.template to_vector<int32>());
      pC1 += 2 * MMUL::size_C;
      pC2 += 2 * MMUL::size_C;
    }
  }
  event1();
}

extern "C" {
void matmul_i8_i32(const int8_t *a, const int8_t *b, int32_t *c) { matmul_tile<DIM_M, DIM_K, DIM_N>(a, b, c); }

void zero_i32(int32_t *c) {
  const aie::vector<int32, 16> zeros = aie::zeros<int32, 16>();
  for (unsigned i = 0; i < DIM_M * DIM_N; i += 16) aie::store_v(c + i, zeros);
}
}

#else  // WNPU_SCALAR: the same arithmetic and block walk, for gcc

extern "C" {
// One tile: C(blocked R x T) += A(blocked R x S) * B(blocked S x T); dims are runtime values here.
void matmul_i8_i32_scalar(const int8_t *a, const int8_t *b, int32_t *c, int m, int k, int n) {
  const int rowA = m / MMUL_R, colA = k / MMUL_S, colB = n / MMUL_T;
  for (int z = 0; z < rowA; ++z) {
    for (int j = 0; j < colB; ++j) {
      int32_t *cb = c + (z * colB + j) * MMUL_R * MMUL_T;
      for (int i = 0; i < colA; ++i) {
        const int8_t *ab = a + (z * colA + i) * MMUL_R * MMUL_S;
        const int8_t *bb = b + (i * colB + j) * MMUL_S * MMUL_T;
        for (int r = 0; r < MMUL_R; ++r)
          for (int t = 0; t < MMUL_T; ++t) {
            int32_t acc = cb[r * MMUL_T + t];
            for (int s = 0; s < MMUL_S; ++s) acc += (int32_t)ab[r * MMUL_S + s] * (int32_t)bb[s * MMUL_T + t];
            cb[r * MMUL_T + t] = acc;
          }
      }
    }
  }
}

// Row-major (rows x cols) region of a row-major matrix -> blocked layout (the DMA's job on the NPU).
static void to_blocks(const int8_t *src, int ld, int rows, int cols, int br, int bc, int8_t *dst) {
  for (int bi = 0; bi < rows / br; ++bi)
    for (int bj = 0; bj < cols / bc; ++bj)
      for (int r = 0; r < br; ++r)
        for (int c = 0; c < bc; ++c) *dst++ = src[(bi * br + r) * ld + bj * bc + c];
}

// Whole-array problem as the design runs it: core (row, col) owns output tiles
// (tm, tn) with tm % rows == row and tn % cols == col; each tile streams K in k-chunks.
// A [M x K], B [K x N], C [M x N] row-major; shapes must satisfy the manifest's rules.
void mm_whole_array_i8(const int8_t *A, const int8_t *B, int32_t *C, int M, int K, int N, int m, int k, int n,
                       int rows, int cols) {
  int8_t abuf[256 * 256], bbuf[256 * 256];
  int32_t cbuf[256 * 256];
  for (int row = 0; row < rows; ++row)
    for (int col = 0; col < cols; ++col)
      for (int tm = row; tm < M / m; tm += rows)
        for (int tn = col; tn < N / n; tn += cols) {
          for (int i = 0; i < m * n; ++i) cbuf[i] = 0;  // zero_i32
          for (int tk = 0; tk < K / k; ++tk) {
            to_blocks(A + (tm * m) * K + tk * k, K, m, k, MMUL_R, MMUL_S, abuf);
            to_blocks(B + (tk * k) * N + tn * n, N, k, n, MMUL_S, MMUL_T, bbuf);
            matmul_i8_i32_scalar(abuf, bbuf, cbuf, m, k, n);
          }
          // blocked C tile -> row-major C
          int idx = 0;
          for (int bi = 0; bi < m / MMUL_R; ++bi)
            for (int bj = 0; bj < n / MMUL_T; ++bj)
              for (int r = 0; r < MMUL_R; ++r)
                for (int t = 0; t < MMUL_T; ++t) C[(tm * m + bi * MMUL_R + r) * N + tn * n + bj * MMUL_T + t] = cbuf[idx++];
        }
}
}
#endif
