// AVX2 + FMA matrix products of the chunked Gated DeltaNet form (declared in kernels/delta_net.h).
// Reference: gemm_scalar in delta_net.cpp, which the tests compare this with on random inputs
// (tests/kernels/delta_net_test.cpp). C += A·B with a 4×16 register block: per step p, two
// vectors of B's row p and one broadcast of A[r][p] per row r, fused multiply-adds in order of
// p (each element adds its products in the reference's order; FMA skips the rounding of the
// product). As in dot_avx2.cpp, only the functions between the target pragmas are compiled for
// AVX2, every header comes before them, and the file is compiled with -ffp-contract=off.
#include "kernels/delta_net.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <cmath>
#include <cstdint>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace hearth::kernels::avx2 {
namespace {

// Rows [0, 4) of C over all n columns.
void block4(int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
  const float* a0 = a;
  const float* a1 = a + lda;
  const float* a2 = a + 2 * lda;
  const float* a3 = a + 3 * lda;
  float* c0 = c;
  float* c1 = c + ldc;
  float* c2 = c + 2 * ldc;
  float* c3 = c + 3 * ldc;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m256 x00 = _mm256_loadu_ps(c0 + j), x01 = _mm256_loadu_ps(c0 + j + 8);
    __m256 x10 = _mm256_loadu_ps(c1 + j), x11 = _mm256_loadu_ps(c1 + j + 8);
    __m256 x20 = _mm256_loadu_ps(c2 + j), x21 = _mm256_loadu_ps(c2 + j + 8);
    __m256 x30 = _mm256_loadu_ps(c3 + j), x31 = _mm256_loadu_ps(c3 + j + 8);
    for (int64_t p = 0; p < k; ++p) {
      const float* bp = b + p * ldb + j;
      const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
      __m256 av = _mm256_broadcast_ss(a0 + p);
      x00 = _mm256_fmadd_ps(av, b0, x00);
      x01 = _mm256_fmadd_ps(av, b1, x01);
      av = _mm256_broadcast_ss(a1 + p);
      x10 = _mm256_fmadd_ps(av, b0, x10);
      x11 = _mm256_fmadd_ps(av, b1, x11);
      av = _mm256_broadcast_ss(a2 + p);
      x20 = _mm256_fmadd_ps(av, b0, x20);
      x21 = _mm256_fmadd_ps(av, b1, x21);
      av = _mm256_broadcast_ss(a3 + p);
      x30 = _mm256_fmadd_ps(av, b0, x30);
      x31 = _mm256_fmadd_ps(av, b1, x31);
    }
    _mm256_storeu_ps(c0 + j, x00);
    _mm256_storeu_ps(c0 + j + 8, x01);
    _mm256_storeu_ps(c1 + j, x10);
    _mm256_storeu_ps(c1 + j + 8, x11);
    _mm256_storeu_ps(c2 + j, x20);
    _mm256_storeu_ps(c2 + j + 8, x21);
    _mm256_storeu_ps(c3 + j, x30);
    _mm256_storeu_ps(c3 + j + 8, x31);
  }
  for (; j + 8 <= n; j += 8) {
    __m256 x0 = _mm256_loadu_ps(c0 + j), x1 = _mm256_loadu_ps(c1 + j);
    __m256 x2 = _mm256_loadu_ps(c2 + j), x3 = _mm256_loadu_ps(c3 + j);
    for (int64_t p = 0; p < k; ++p) {
      const __m256 bv = _mm256_loadu_ps(b + p * ldb + j);
      x0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + p), bv, x0);
      x1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + p), bv, x1);
      x2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + p), bv, x2);
      x3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + p), bv, x3);
    }
    _mm256_storeu_ps(c0 + j, x0);
    _mm256_storeu_ps(c1 + j, x1);
    _mm256_storeu_ps(c2 + j, x2);
    _mm256_storeu_ps(c3 + j, x3);
  }
  for (; j < n; ++j) {
    for (int r = 0; r < 4; ++r) {
      float x = c[r * ldc + j];
      for (int64_t p = 0; p < k; ++p) x = std::fma(a[r * lda + p], b[p * ldb + j], x);
      c[r * ldc + j] = x;
    }
  }
}

// One row of C over all n columns.
void block1(int64_t n, int64_t k, const float* a, const float* b, int64_t ldb, float* c) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m256 x0 = _mm256_loadu_ps(c + j), x1 = _mm256_loadu_ps(c + j + 8);
    for (int64_t p = 0; p < k; ++p) {
      const __m256 av = _mm256_broadcast_ss(a + p);
      x0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + p * ldb + j), x0);
      x1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + p * ldb + j + 8), x1);
    }
    _mm256_storeu_ps(c + j, x0);
    _mm256_storeu_ps(c + j + 8, x1);
  }
  for (; j + 8 <= n; j += 8) {
    __m256 x0 = _mm256_loadu_ps(c + j);
    for (int64_t p = 0; p < k; ++p)
      x0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + p), _mm256_loadu_ps(b + p * ldb + j), x0);
    _mm256_storeu_ps(c + j, x0);
  }
  for (; j < n; ++j) {
    float x = c[j];
    for (int64_t p = 0; p < k; ++p) x = std::fma(a[p], b[p * ldb + j], x);
    c[j] = x;
  }
}

}  // namespace

void delta_net_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                    int64_t ldc) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) block4(n, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
  for (; i < m; ++i) block1(n, k, a + i * lda, b, ldb, c + i * ldc);
}

}  // namespace hearth::kernels::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // __x86_64__
