// AVX-512 (F, BW, VL) attention kernels (declared in kernels/attention.h; the driver that makes
// the jobs is in kernels/attention.cpp). Reference: attention.cpp's scalar kernel, which every
// function here is tested against (tests/kernels/attention_test.cpp).
//
// The same two kernels as attention_avx2.cpp (read its header first), with 16 lanes:
// * R >= 16 query rows (prompt blocks): 16 rows per vector; score tiles of 8 keys × 32 rows,
//   the broadcast K value an embedded-broadcast memory operand; P·V tiles of 8 rows × 32
//   head-dim lanes (16 accumulators of the 32 registers).
// * R < 16 (decode): keys in lanes (32 keys transposed at a time), the softmax sums each row in
//   key order: bit-identical results to the block kernel's for the same rows.
// The exponential is the AVX2 one on 16 lanes, with VSCALEFPS applying 2^n in one rounding:
// the results are bit-identical to the AVX2 kernel's, and the scores, sums and P·V sums of
// prompt blocks are too (same expressions, same order), so both SIMD paths give identical
// outputs for prompt blocks. Head dims that are multiples of 8 but not of 16 use masked loads
// and stores for the last 8 lanes.
// As in dot_avx512.cpp, only the functions between the target pragmas are compiled for
// AVX-512, every header comes before them, and the file is compiled with -ffp-contract=off.
#include "kernels/attention.h"

#if defined(__x86_64__)

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers make their "undefined" vectors by self-initialization, which its
// own -Wuninitialized then reports at every inlined use (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace hearth::kernels::avx512 {
namespace {

// Baseline code (defined before the target pragma).
struct Scratch {
  std::vector<float> qt;   ///< rounded Q: transposed [dk][rp] (block) or [rows][dk] (decode)
  std::vector<float> st;   ///< scores, then probabilities: [n_cells][rp] (block) or [rows][n_pad] (decode)
  std::vector<float> kf;   ///< K tile as f32: [keys][dk] (block) or transposed [dk][kDecodeKeys] (decode)
  std::vector<int32_t> lo, hi;    ///< key range of each row
  std::vector<int32_t> vlo, vhi;  ///< key range of each row vector
  std::vector<const float*> qrow;  ///< the Q row of each row (nullptr: padding)
};

Scratch& thread_scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace
}  // namespace hearth::kernels::avx512

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")
#endif

namespace hearth::kernels::avx512 {
namespace {

constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// f(0), ..., f(N - 1) with compile-time indices (see attention_avx2.cpp: keeps register
/// tiles in registers).
template <class F, std::size_t... I>
inline void unroll_impl(F&& f, std::index_sequence<I...>) {
  (f(std::integral_constant<int, static_cast<int>(I)>{}), ...);
}
template <int N, class F>
inline void unroll(F&& f) {
  unroll_impl(f, std::make_index_sequence<N>{});
}

/// Lanes [0, 16) if n >= 16, else [0, n).
inline __mmask16 first_lanes(int n) { return n >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << n) - 1); }

/// 16 f16 values as floats; only the lanes of `m` are read (the others are 0).
inline __m512 h16(const uint16_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
inline __m512 h16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline __m256 round_f16(__m256 x) { return _mm256_cvtph_ps(_mm256_cvtps_ph(x, kRound)); }
inline __m512 round_f16(__m512 x) { return _mm512_cvtph_ps(_mm512_cvtps_ph(x, kRound)); }

/// Lanes 8..15 of a float vector.
inline __m256 upper8(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }
/// A float vector of lo (lanes 0..7) and hi (lanes 8..15).
inline __m512 join8(__m256 lo, __m256 hi) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
}

/// e^x for 16 floats: attention_avx2.cpp's exp_ps (clamp to [-104, 89], n = round(x·log2 e),
/// Cody-Waite r, Taylor polynomial of degree 7), with 2^n applied by VSCALEFPS, which rounds
/// once as the AVX2 kernel's two exact steps do: bit-identical results. Max relative error vs
/// std::exp over normal results: 1.19e-7 (1 ulp), measured on 2^24 points of [-104, 89] by
/// tests/kernels/attention_test.cpp; subnormal results are within 2^-149.
inline __m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), kRound);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

/// Σ of the doubles of e's 16 lanes into two accumulators (lanes 0..7, 8..15).
inline void add_pd16(__m512 e, __m512d& sum_lo, __m512d& sum_hi) {
  sum_lo = _mm512_add_pd(sum_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
  sum_hi = _mm512_add_pd(sum_hi, _mm512_cvtps_pd(upper8(e)));
}

/// Transposes the 8×8 matrix of m[0..8) (rows) in place.
inline void transpose8(__m256* m) {
  const __m256 t0 = _mm256_unpacklo_ps(m[0], m[1]), t1 = _mm256_unpackhi_ps(m[0], m[1]);
  const __m256 t2 = _mm256_unpacklo_ps(m[2], m[3]), t3 = _mm256_unpackhi_ps(m[2], m[3]);
  const __m256 t4 = _mm256_unpacklo_ps(m[4], m[5]), t5 = _mm256_unpackhi_ps(m[4], m[5]);
  const __m256 t6 = _mm256_unpacklo_ps(m[6], m[7]), t7 = _mm256_unpackhi_ps(m[6], m[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  m[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  m[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  m[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  m[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  m[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  m[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  m[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  m[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// ---- P·V (both kernels) ----

constexpr int kPrefetchKeys = 8;  ///< how many keys ahead P·V fetches V rows

/// out_i[d0 + 16k ..] = Σ_{j in [jlo, jhi)} P_i[j] · V[cells[j]][d0 + 16k ..] for RT rows and DV
/// vectors of 16 head-dim lanes (the last one limited to the lanes of `last`), the sum in j
/// order from 0. P_i[j] is at p[j·pjs + i·prs]; vbase points at this KV head's d0 in cell 0.
template <int RT, int DV>
void pv_tile(const float* p, int64_t pjs, int64_t prs, int jlo, int jhi, const int32_t* cells,
             const uint16_t* vbase, int64_t vstride, __mmask16 last, float* const* outs) {
  __m512 acc[RT][DV];
  unroll<RT>([&](auto i) { unroll<DV>([&](auto k) { acc[i][k] = _mm512_setzero_ps(); }); });
  for (int j = jlo; j < jhi; ++j) {
    const uint16_t* vr = vbase + static_cast<int64_t>(cells[j]) * vstride;
    // The V rows of the cells are not consecutive in general: fetch a few keys ahead.
    if (j + kPrefetchKeys < jhi)
      _mm_prefetch(reinterpret_cast<const char*>(vbase + static_cast<int64_t>(cells[j + kPrefetchKeys]) * vstride),
                   _MM_HINT_T0);
    __m512 vv[DV];
    unroll<DV>([&](auto k) { vv[k] = k + 1 < DV ? h16(vr + 16 * k) : h16(vr + 16 * k, last); });
    unroll<RT>([&](auto i) {
      const __m512 pb = _mm512_set1_ps(p[j * pjs + i * prs]);
      unroll<DV>([&](auto k) { acc[i][k] = _mm512_fmadd_ps(pb, vv[k], acc[i][k]); });
    });
  }
  unroll<RT>([&](auto i) {
    unroll<DV>([&](auto k) {
      if (k + 1 < DV) _mm512_storeu_ps(outs[i] + 16 * k, acc[i][k]);
      else _mm512_mask_storeu_ps(outs[i] + 16 * k, last, acc[i][k]);
    });
  });
}

using PvFn = void (*)(const float*, int64_t, int64_t, int, int, const int32_t*, const uint16_t*, int64_t, __mmask16,
                      float* const*);

constexpr int kPvRows = 8;  ///< rows per P·V tile: 8 × 2 accumulators

/// Vectors of 16 head-dim lanes per P·V pass for rt rows: at most 16 accumulators, so that few
/// rows (decode) read each V row in one or two passes.
template <int RT>
constexpr int pv_max_vecs() {
  return RT <= 2 ? 8 : RT <= 4 ? 4 : 2;
}

template <int RT, int DV = 1>
PvFn pv_fn(int vecs) {
  if constexpr (DV == pv_max_vecs<RT>()) return pv_tile<RT, DV>;
  else return vecs == DV ? pv_tile<RT, DV> : pv_fn<RT, DV + 1>(vecs);
}

template <int RT>
void pv_rows_rt(const float* p, int64_t pjs, int64_t prs, int jlo, int jhi, const int32_t* cells,
                const uint16_t* vbase, int64_t vstride, int dv, float* const* outs) {
  constexpr int kWidth = 16 * pv_max_vecs<RT>();
  for (int d0 = 0; d0 < dv; d0 += kWidth) {
    const int lanes = std::min(kWidth, dv - d0);
    const int vecs = (lanes + 15) / 16;
    float* o[RT];
    for (int i = 0; i < RT; ++i) o[i] = outs[i] + d0;
    pv_fn<RT>(vecs)(p, pjs, prs, jlo, jhi, cells, vbase + d0, vstride, first_lanes(lanes - 16 * (vecs - 1)), o);
  }
}

/// P·V for rows r0 .. r0 + rt (rt <= kPvRows) over keys [jlo, jhi), all head-dim lanes. The
/// tile shape does not change any sum (each lane adds its terms in key order).
void pv_rows(int rt, const float* p, int64_t pjs, int64_t prs, int jlo, int jhi, const int32_t* cells,
             const uint16_t* vbase, int64_t vstride, int dv, float* const* outs) {
  switch (rt) {
    case 1: return pv_rows_rt<1>(p, pjs, prs, jlo, jhi, cells, vbase, vstride, dv, outs);
    case 2: return pv_rows_rt<2>(p, pjs, prs, jlo, jhi, cells, vbase, vstride, dv, outs);
    case 3: return pv_rows_rt<3>(p, pjs, prs, jlo, jhi, cells, vbase, vstride, dv, outs);
    case 4: return pv_rows_rt<4>(p, pjs, prs, jlo, jhi, cells, vbase, vstride, dv, outs);
    case 5: return pv_rows_rt<5>(p, pjs, prs, jlo, jhi, cells, vbase, vstride, dv, outs);
    case 6: return pv_rows_rt<6>(p, pjs, prs, jlo, jhi, cells, vbase, vstride, dv, outs);
    case 7: return pv_rows_rt<7>(p, pjs, prs, jlo, jhi, cells, vbase, vstride, dv, outs);
    default: return pv_rows_rt<8>(p, pjs, prs, jlo, jhi, cells, vbase, vstride, dv, outs);
  }
}

// ---- prompt blocks: rows in vector lanes ----

/// Scores of KT keys (their K rows as f32 in kf, dk apart) for RV vectors of 16 query rows
/// (qt[d·rp + 16v + lane]): st[k·rp + 16v + lane] = scale · Σ_d K[k][d]·qt[d][lane], summed
/// over d in order.
template <int KT, int RV>
void qk_block_tile(const float* kf, int dk, const float* qt, int64_t rp, float scale, float* st) {
  __m512 acc[KT][RV];
  unroll<KT>([&](auto k) { unroll<RV>([&](auto v) { acc[k][v] = _mm512_setzero_ps(); }); });
  for (int d = 0; d < dk; ++d) {
    __m512 qv[RV];
    unroll<RV>([&](auto v) { qv[v] = _mm512_loadu_ps(qt + d * rp + 16 * v); });
    unroll<KT>([&](auto k) {
      const __m512 b = _mm512_set1_ps(kf[k * dk + d]);
      unroll<RV>([&](auto v) { acc[k][v] = _mm512_fmadd_ps(b, qv[v], acc[k][v]); });
    });
  }
  const __m512 sc = _mm512_set1_ps(scale);
  unroll<KT>([&](auto k) {
    unroll<RV>([&](auto v) { _mm512_storeu_ps(st + k * rp + 16 * v, _mm512_mul_ps(acc[k][v], sc)); });
  });
}

constexpr int kBlockKeys = 8;  ///< keys per score tile: 8 × 2 accumulators

using QkBlockFn = void (*)(const float*, int, const float*, int64_t, float, float*);

template <int RV>
QkBlockFn qk_block_fn(int kt) {
  switch (kt) {
    case 1: return qk_block_tile<1, RV>;
    case 2: return qk_block_tile<2, RV>;
    case 3: return qk_block_tile<3, RV>;
    case 4: return qk_block_tile<4, RV>;
    case 5: return qk_block_tile<5, RV>;
    case 6: return qk_block_tile<6, RV>;
    case 7: return qk_block_tile<7, RV>;
    default: return qk_block_tile<kBlockKeys, RV>;
  }
}

void block_job(const AttnJob& job, Scratch& sc) {
  const AttnShape& s = *job.shape;
  const KvLayerF16& kv = *job.kv;
  const int dk = s.head_dim_k, dv = s.head_dim_v, nh = job.n_heads;
  const int group = s.n_head / s.n_head_kv;
  const int rows = job.n_tokens * nh;
  const int rp = (rows + 15) & ~15;
  const int nvec = rp / 16;
  const int n_cells = job.n_cells;
  const int h_first = job.kv_head * group + job.head0;

  // Q rounded to F16, transposed; per-row key ranges. Padding rows: zeros, empty range.
  sc.qt.resize(static_cast<size_t>(dk) * rp);
  sc.lo.assign(static_cast<size_t>(rp), 0);
  sc.hi.assign(static_cast<size_t>(rp), 0);
  float* qt = sc.qt.data();
  // The Q rows are scattered over the batch: start fetching all of them before transposing.
  for (int i = 0; i < job.n_tokens; ++i) {
    const char* src = reinterpret_cast<const char*>(job.q + (job.tokens[i] * s.n_head + h_first) * dk);
    for (int64_t b = 0; b < static_cast<int64_t>(nh) * dk * 4; b += 64) _mm_prefetch(src + b, _MM_HINT_T0);
  }
  sc.qrow.assign(static_cast<size_t>(rp), nullptr);
  for (int i = 0; i < job.n_tokens; ++i) {
    for (int hh = 0; hh < nh; ++hh) {
      const int r = i * nh + hh;
      sc.qrow[r] = job.q + (job.tokens[i] * s.n_head + h_first + hh) * dk;
      sc.lo[r] = job.lo[i];
      sc.hi[r] = job.hi[i];
    }
  }
  // 8 rows × 8 dims at a time, transposed in registers.
  for (int r0 = 0; r0 < rp; r0 += 8) {
    for (int d0 = 0; d0 < dk; d0 += 8) {
      __m256 m[8];
      unroll<8>([&](auto e) {
        const float* src = sc.qrow[r0 + e];
        m[e] = src != nullptr ? round_f16(_mm256_loadu_ps(src + d0)) : _mm256_setzero_ps();
      });
      transpose8(m);
      unroll<8>([&](auto e) { _mm256_storeu_ps(qt + (d0 + e) * rp + r0, m[e]); });
    }
  }
  sc.vlo.resize(static_cast<size_t>(nvec));
  sc.vhi.resize(static_cast<size_t>(nvec));
  int32_t* vlo = sc.vlo.data();
  int32_t* vhi = sc.vhi.data();
  for (int v = 0; v < nvec; ++v) {
    int32_t a = n_cells, b = 0;
    for (int r = 16 * v; r < std::min(rows, 16 * v + 16); ++r) {
      a = std::min(a, sc.lo[r]);
      b = std::max(b, sc.hi[r]);
    }
    vlo[v] = a;
    vhi[v] = b;
  }
  auto active = [&](int v, int j0, int j1) { return v < nvec && vlo[v] < j1 && vhi[v] > j0; };

  // Scores.
  sc.st.resize(static_cast<size_t>(n_cells) * rp);
  sc.kf.resize(static_cast<size_t>(kBlockKeys) * dk);
  float* st = sc.st.data();
  float* kf = sc.kf.data();
  const uint16_t* kbase = kv.k + static_cast<int64_t>(job.kv_head) * dk;
  for (int j0 = 0; j0 < n_cells; j0 += kBlockKeys) {
    const int kt = std::min(kBlockKeys, n_cells - j0);
    bool any = false;
    for (int v = 0; v < nvec; ++v) any = any || active(v, j0, j0 + kt);
    if (!any) continue;
    // Fetch the next tile's K rows while this one is multiplied.
    for (int k = j0 + kt; k < std::min(n_cells, j0 + kt + kBlockKeys); ++k) {
      const char* kr = reinterpret_cast<const char*>(kbase + static_cast<int64_t>(job.cells[k]) * kv.k_stride);
      for (int b = 0; b < dk * 2; b += 64) _mm_prefetch(kr + b, _MM_HINT_T0);
    }
    for (int k = 0; k < kt; ++k) {
      const uint16_t* kr = kbase + static_cast<int64_t>(job.cells[j0 + k]) * kv.k_stride;
      for (int d0 = 0; d0 < dk; d0 += 16) {
        const __mmask16 m = first_lanes(dk - d0);
        _mm512_mask_storeu_ps(kf + k * dk + d0, m, h16(kr + d0, m));
      }
    }
    for (int v = 0; v < nvec; v += 2) {
      const bool a0 = active(v, j0, j0 + kt), a1 = active(v + 1, j0, j0 + kt);
      if (a0 && a1) {
        qk_block_fn<2>(kt)(kf, dk, qt + 16 * v, rp, s.scale, st + static_cast<int64_t>(j0) * rp + 16 * v);
      } else if (a0 || a1) {
        const int w = a0 ? v : v + 1;
        qk_block_fn<1>(kt)(kf, dk, qt + 16 * w, rp, s.scale, st + static_cast<int64_t>(j0) * rp + 16 * w);
      }
    }
  }

  // Softmax of each row vector (see attention_avx2.cpp).
  const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
  for (int v = 0; v < nvec; ++v) {
    const __m512i nlo = _mm512_loadu_si512(sc.lo.data() + 16 * v);
    const __m512i nhi = _mm512_loadu_si512(sc.hi.data() + 16 * v);
    auto in_range = [&](int j) {
      const __m512i jv = _mm512_set1_epi32(j);
      return static_cast<__mmask16>(_mm512_cmpgt_epi32_mask(nhi, jv) & _mm512_cmpge_epi32_mask(jv, nlo));
    };
    float* col = st + 16 * v;
    __m512 mx = neg_inf;
    for (int j = vlo[v]; j < vhi[v]; ++j) mx = _mm512_mask_max_ps(mx, in_range(j), mx, _mm512_loadu_ps(col + j * rp));
    __m512d sum_lo = _mm512_setzero_pd(), sum_hi = _mm512_setzero_pd();
    for (int j = vlo[v]; j < vhi[v]; ++j) {
      const __m512 e = _mm512_maskz_mov_ps(in_range(j), exp_ps(_mm512_sub_ps(_mm512_loadu_ps(col + j * rp), mx)));
      _mm512_storeu_ps(col + j * rp, e);
      add_pd16(e, sum_lo, sum_hi);
    }
    const __m512d one = _mm512_set1_pd(1.0);
    const __m512 inv = _mm512_maskz_mov_ps(_mm512_cmpgt_epi32_mask(nhi, nlo),  // padding rows: 0
                                           join8(_mm512_cvtpd_ps(_mm512_div_pd(one, sum_lo)),
                                                 _mm512_cvtpd_ps(_mm512_div_pd(one, sum_hi))));
    for (int j = vlo[v]; j < vhi[v]; ++j)
      _mm512_storeu_ps(col + j * rp, round_f16(_mm512_mul_ps(_mm512_loadu_ps(col + j * rp), inv)));
  }

  // P·V, kPvRows rows at a time within each row vector.
  const uint16_t* vbase = kv.v + static_cast<int64_t>(job.kv_head) * dv;
  for (int r0 = 0; r0 < rows;) {
    const int vend = std::min(rows, (r0 / 16 + 1) * 16);
    const int rt = std::min(kPvRows, vend - r0);
    int jlo = n_cells, jhi = 0;
    float* outs[kPvRows];
    for (int i = 0; i < rt; ++i) {
      const int r = r0 + i;
      jlo = std::min(jlo, sc.lo[r]);
      jhi = std::max(jhi, sc.hi[r]);
      outs[i] = job.out + (job.tokens[r / nh] * s.n_head + h_first + r % nh) * dv;
    }
    pv_rows(rt, st + r0, rp, 1, jlo, jhi, job.cells, vbase, kv.v_stride, dv, outs);
    r0 += rt;
  }
}

// ---- decode: keys in vector lanes ----

constexpr int kDecodeKeys = 32;  ///< keys per score tile: 2 vectors × 2 heads = 4 independent FMA chains

/// K rows krows[0..8) as f32, transposed: kt[d·ld + k] = K_k[d].
void transpose_keys8(const uint16_t* const* krows, int dk, float* kt, int64_t ld) {
  for (int d0 = 0; d0 < dk; d0 += 8) {
    __m256 m[8];
    unroll<8>([&](auto k) { m[k] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(krows[k] + d0))); });
    transpose8(m);
    unroll<8>([&](auto e) { _mm256_storeu_ps(kt + (d0 + e) * ld, m[e]); });
  }
}

/// Scores of KV vectors of 16 keys (transposed K: kt[d·kDecodeKeys + 16v + lane]) for HT query
/// rows (qh + h·dk): st[h·ld + 16v + lane] = scale · Σ_d q_h[d]·K[d], summed over d in order,
/// exactly as the block kernel sums them.
template <int KV, int HT>
void qk_decode_tile(const float* kt, const float* qh, int dk, float scale, float* st, int64_t ld) {
  __m512 acc[HT][KV];
  unroll<HT>([&](auto h) { unroll<KV>([&](auto v) { acc[h][v] = _mm512_setzero_ps(); }); });
  for (int d = 0; d < dk; ++d) {
    __m512 kv[KV];
    unroll<KV>([&](auto v) { kv[v] = _mm512_loadu_ps(kt + d * kDecodeKeys + 16 * v); });
    unroll<HT>([&](auto h) {
      const __m512 b = _mm512_set1_ps(qh[h * dk + d]);
      unroll<KV>([&](auto v) { acc[h][v] = _mm512_fmadd_ps(kv[v], b, acc[h][v]); });
    });
  }
  const __m512 sc = _mm512_set1_ps(scale);
  unroll<HT>([&](auto h) {
    unroll<KV>([&](auto v) { _mm512_storeu_ps(st + h * ld + 16 * v, _mm512_mul_ps(acc[h][v], sc)); });
  });
}

using QkDecodeFn = void (*)(const float*, const float*, int, float, float*, int64_t);

template <int HT>
QkDecodeFn qk_decode_fn(int kv_vecs) {
  return kv_vecs == 1 ? qk_decode_tile<1, HT> : qk_decode_tile<2, HT>;
}

/// One token's rows (see attention_avx2.cpp's decode_token): bit-identical to block_job's
/// results for the same rows.
void decode_token(const AttnJob& job, int i, Scratch& sc) {
  const AttnShape& s = *job.shape;
  const KvLayerF16& kv = *job.kv;
  const int dk = s.head_dim_k, dv = s.head_dim_v, nh = job.n_heads;
  const int group = s.n_head / s.n_head_kv;
  const int h_first = job.kv_head * group + job.head0;
  const int32_t* cells = job.cells + job.lo[i];
  const int n = job.hi[i] - job.lo[i];
  const int n_pad = (n + 15) & ~15;
  const int64_t t = job.tokens[i];

  sc.qt.resize(static_cast<size_t>(nh) * dk);
  float* qh = sc.qt.data();
  for (int hh = 0; hh < nh; ++hh) {
    const float* src = job.q + (t * s.n_head + h_first + hh) * dk;
    for (int d0 = 0; d0 < dk; d0 += 8) _mm256_storeu_ps(qh + hh * dk + d0, round_f16(_mm256_loadu_ps(src + d0)));
  }
  sc.st.resize(static_cast<size_t>(nh) * n_pad);
  sc.kf.resize(static_cast<size_t>(dk) * kDecodeKeys);
  float* st = sc.st.data();
  float* kt = sc.kf.data();
  const uint16_t* kbase = kv.k + static_cast<int64_t>(job.kv_head) * dk;
  for (int j0 = 0; j0 < n; j0 += kDecodeKeys) {
    // Fetch the next tile's K rows while this one is transposed and multiplied.
    for (int j = j0 + kDecodeKeys; j < std::min(n, j0 + 2 * kDecodeKeys); ++j) {
      const char* kr = reinterpret_cast<const char*>(kbase + static_cast<int64_t>(cells[j]) * kv.k_stride);
      for (int b = 0; b < dk * 2; b += 64) _mm_prefetch(kr + b, _MM_HINT_T0);
    }
    const int vecs = std::min(kDecodeKeys / 16, (n - j0 + 15) / 16);
    for (int b = 0; b < 2 * vecs; ++b) {
      // Lanes past the span repeat its last key; their scores become -inf below.
      const uint16_t* krows[8];
      for (int k = 0; k < 8; ++k)
        krows[k] = kbase + static_cast<int64_t>(cells[std::min(j0 + 8 * b + k, n - 1)]) * kv.k_stride;
      transpose_keys8(krows, dk, kt + 8 * b, kDecodeKeys);
    }
    for (int h0 = 0; h0 < nh; h0 += 2) {
      (nh - h0 >= 2 ? qk_decode_fn<2>(vecs) : qk_decode_fn<1>(vecs))(kt, qh + h0 * dk, dk, s.scale,
                                                                     st + static_cast<int64_t>(h0) * n_pad + j0, n_pad);
    }
  }
  // Softmax along each row (see attention_avx2.cpp).
  for (int hh = 0; hh < nh; ++hh) {
    float* row = st + static_cast<int64_t>(hh) * n_pad;
    for (int j = n; j < n_pad; ++j) row[j] = -INFINITY;
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < n_pad; j += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(row + j));
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(mv));
    for (int j = 0; j < n_pad; j += 16) _mm512_storeu_ps(row + j, exp_ps(_mm512_sub_ps(_mm512_loadu_ps(row + j), mx)));
  }
  for (int h0 = 0; h0 < nh; h0 += 2) {
    const float* r0 = st + static_cast<int64_t>(h0) * n_pad;
    double s0 = 0, s1 = 0;
    if (h0 + 1 < nh) {
      const float* r1 = r0 + n_pad;
      for (int j = 0; j < n; ++j) {
        s0 += r0[j];
        s1 += r1[j];
      }
    } else {
      for (int j = 0; j < n; ++j) s0 += r0[j];
    }
    for (int k = 0; k < std::min(2, nh - h0); ++k) {
      float* row = st + static_cast<int64_t>(h0 + k) * n_pad;
      const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / (k == 0 ? s0 : s1)));
      for (int j = 0; j < n_pad; j += 16) _mm512_storeu_ps(row + j, round_f16(_mm512_mul_ps(_mm512_loadu_ps(row + j), inv)));
    }
  }
  const uint16_t* vbase = kv.v + static_cast<int64_t>(job.kv_head) * dv;
  for (int h0 = 0; h0 < nh; h0 += kPvRows) {
    const int rt = std::min(kPvRows, nh - h0);
    float* outs[kPvRows];
    for (int k = 0; k < rt; ++k) outs[k] = job.out + (t * s.n_head + h_first + h0 + k) * dv;
    pv_rows(rt, st + static_cast<int64_t>(h0) * n_pad, 1, n_pad, 0, n, cells, vbase, kv.v_stride, dv, outs);
  }
}

}  // namespace

void attention_job(const AttnJob& job) {
  Scratch& sc = thread_scratch();
  if (job.n_tokens * job.n_heads >= 16) {
    block_job(job, sc);
  } else {
    for (int i = 0; i < job.n_tokens; ++i) decode_token(job, i, sc);
  }
}

void exp_f32(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp_ps(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = first_lanes(static_cast<int>(n - i));
    _mm512_mask_storeu_ps(y + i, m, exp_ps(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

namespace {
/// g / (1 + e^-g) · u, the scalar reference's steps in its order.
inline __m512 silu_mul(__m512 g, __m512 u) {
  const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}
}  // namespace

void swiglu_f32(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, silu_mul(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
  if (i < n) {
    const __mmask16 m = first_lanes(static_cast<int>(n - i));
    _mm512_mask_storeu_ps(out + i, m, silu_mul(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

}  // namespace hearth::kernels::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // x86
