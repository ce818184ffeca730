// AVX2 + FMA + F16C attention kernels (declared in kernels/attention.h; the driver that makes
// the jobs is in kernels/attention.cpp). Reference: attention.cpp's scalar kernel, which every
// function here is tested against (tests/kernels/attention_test.cpp).
//
// A job is one GQA group's query heads for a block of query tokens whose spans are sub-ranges
// of one key list (cells). With R = tokens × heads query rows:
// * R >= 8 (prompt blocks): Q is rounded to F16 and stored transposed (qt[d][r], rows padded
//   to a multiple of 8), so the scores of 8 rows for one key are one vector: for each d,
//   broadcast K[j][d] (K rows converted to f32 a tile at a time) times qt[d][r..r+8]. Each K
//   row is read once per block, and every score is the reference's sum over d in the same
//   order (the F16×F16 products are exact in f32, so FMA rounds like the reference's add). The
//   softmax runs across the 8 rows of a vector with per-row masks [lo, hi) and sums in double
//   in key order, as the reference does; P·V broadcasts P[j][r] against 8 head-dim lanes of V.
// * R < 8 (decode): per token, 32 keys at a time converted and transposed (kt[d][key]), so that
//   the scores of 8 keys for one query row are one vector: for each d, broadcast q[d] times
//   kt[d][..]; the same sums in the same order as the block kernel. The softmax sums each row
//   in key order; then the same P·V tile.
// Both kernels therefore give every row bit-identical results, whatever the batch (a token
// decoded alone gets the logits it gets inside a prompt), and equal the reference except where
// exp_ps differs from std::exp in the last bit.
// Every partial result lives in this thread's own scratch; the job writes only its own output
// rows. As in dot_avx2.cpp, only the functions between the target pragmas are compiled for
// AVX2, every header comes before them, and the file is compiled with -ffp-contract=off.
#include "kernels/attention.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace hearth::kernels::avx2 {
namespace {

// Baseline code (defined before the target pragma).
struct Scratch {
  std::vector<float> qt;   ///< rounded Q: transposed [dk][rp] (block) or [rows][dk] (decode)
  std::vector<float> st;   ///< scores, then probabilities: [n_cells][rp] (block) or [rows][n_pad] (decode)
  std::vector<float> kf;   ///< K tile as f32: [keys][dk] (block) or transposed [dk][kDecodeKeys] (decode)
  std::vector<int32_t> lo, hi;  ///< key range of each row
  std::vector<int32_t> vlo, vhi;  ///< key range of each row vector
  std::vector<const float*> qrow;  ///< the Q row of each row (nullptr: padding)
};

Scratch& thread_scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace
}  // namespace hearth::kernels::avx2

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace hearth::kernels::avx2 {
namespace {

constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// f(0), ..., f(N - 1) with compile-time indices (std::integral_constant): register tiles
/// indexed this way stay in registers (GCC 12 keeps an array indexed by loop counters in
/// memory, storing every accumulator at every step). Defined after the target pragma so that
/// the AVX2 lambdas inline into it.
template <class F, std::size_t... I>
inline void unroll_impl(F&& f, std::index_sequence<I...>) {
  (f(std::integral_constant<int, static_cast<int>(I)>{}), ...);
}
template <int N, class F>
inline void unroll(F&& f) {
  unroll_impl(f, std::make_index_sequence<N>{});
}

inline __m128i loadu128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline __m256 h8(const uint16_t* p) { return _mm256_cvtph_ps(loadu128(p)); }
inline __m256 round_f16(__m256 x) { return _mm256_cvtph_ps(_mm256_cvtps_ph(x, kRound)); }

/// e^x for 8 floats. x is clamped to [-104, 89] (e^-104 rounds to 0 and e^89 to inf in f32;
/// NaN stays NaN), x = n·ln2 + r with |r| <= ln2/2 (Cody-Waite: ln2 split in a 9-bit high part
/// and a low part, both subtracted with FMA), e^r by its Taylor polynomial of degree 7
/// (truncation error < 5.3e-9 relative), times 2^n applied in two exact steps so that
/// subnormal results round once. Max relative error vs std::exp over normal results: 1.19e-7
/// (1 ulp), measured on 2^24 points of [-104, 89] by tests/kernels/attention_test.cpp (which
/// allows 2.5e-7); subnormal results are within 2^-149.
inline __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(89.0f), _mm256_max_ps(_mm256_set1_ps(-104.0f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), kRound);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

inline float hmax_ps(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
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

/// out_i[d0 + 8k ..] = Σ_{j in [jlo, jhi)} P_i[j] · V[cells[j]][d0 + 8k ..] for RT rows and DV
/// vectors of 8 head-dim lanes, the sum in j order from 0 (the reference's order). P_i[j] is at
/// p[j·pjs + i·prs]; vbase points at this KV head's d0 in cell 0.
template <int RT, int DV>
void pv_tile(const float* p, int64_t pjs, int64_t prs, int jlo, int jhi, const int32_t* cells,
             const uint16_t* vbase, int64_t vstride, float* const* outs) {
  __m256 acc[RT][DV];
  unroll<RT>([&](auto i) { unroll<DV>([&](auto k) { acc[i][k] = _mm256_setzero_ps(); }); });
  for (int j = jlo; j < jhi; ++j) {
    const uint16_t* vr = vbase + static_cast<int64_t>(cells[j]) * vstride;
    // The V rows of the cells are not consecutive in general: fetch a few keys ahead.
    if (j + kPrefetchKeys < jhi)
      _mm_prefetch(reinterpret_cast<const char*>(vbase + static_cast<int64_t>(cells[j + kPrefetchKeys]) * vstride),
                   _MM_HINT_T0);
    __m256 pb[RT];
    unroll<RT>([&](auto i) { pb[i] = _mm256_broadcast_ss(p + j * pjs + i * prs); });
    unroll<DV>([&](auto k) {
      const __m256 vv = h8(vr + 8 * k);
      unroll<RT>([&](auto i) { acc[i][k] = _mm256_fmadd_ps(pb[i], vv, acc[i][k]); });
    });
  }
  unroll<RT>([&](auto i) { unroll<DV>([&](auto k) { _mm256_storeu_ps(outs[i] + 8 * k, acc[i][k]); }); });
}

using PvFn = void (*)(const float*, int64_t, int64_t, int, int, const int32_t*, const uint16_t*, int64_t,
                      float* const*);

/// Vectors of 8 head-dim lanes per P·V pass for rt rows: at most 12 accumulators (with the rt
/// broadcasts and one V vector, 16 registers).
template <int RT>
constexpr int pv_max_vecs() {
  return RT == 1 ? 12 : RT == 2 ? 6 : 4;
}

template <int RT, int DV = 1>
PvFn pv_fn(int vecs) {
  if constexpr (DV == pv_max_vecs<RT>()) return pv_tile<RT, DV>;
  else return vecs == DV ? pv_tile<RT, DV> : pv_fn<RT, DV + 1>(vecs);
}

template <int RT>
void pv_rows_rt(const float* p, int64_t pjs, int64_t prs, int jlo, int jhi, const int32_t* cells,
                const uint16_t* vbase, int64_t vstride, int dv, float* const* outs) {
  constexpr int kWidth = 8 * pv_max_vecs<RT>();
  for (int d0 = 0; d0 < dv; d0 += kWidth) {
    float* o[RT];
    for (int i = 0; i < RT; ++i) o[i] = outs[i] + d0;
    pv_fn<RT>(std::min(kWidth, dv - d0) / 8)(p, pjs, prs, jlo, jhi, cells, vbase + d0, vstride, o);
  }
}

/// P·V for rows r0 .. r0 + rt (rt <= 3) over keys [jlo, jhi), all head-dim lanes. The tile
/// shape does not change any sum (each lane adds its terms in key order).
void pv_rows(int rt, const float* p, int64_t pjs, int64_t prs, int jlo, int jhi, const int32_t* cells,
             const uint16_t* vbase, int64_t vstride, int dv, float* const* outs) {
  switch (rt) {
    case 1: return pv_rows_rt<1>(p, pjs, prs, jlo, jhi, cells, vbase, vstride, dv, outs);
    case 2: return pv_rows_rt<2>(p, pjs, prs, jlo, jhi, cells, vbase, vstride, dv, outs);
    default: return pv_rows_rt<3>(p, pjs, prs, jlo, jhi, cells, vbase, vstride, dv, outs);
  }
}

// ---- prompt blocks: rows in vector lanes ----

/// Scores of KT keys (their K rows as f32 in kf, dk apart) for RV vectors of 8 query rows
/// (qt[d·rp + 8v + lane]): st[k·rp + 8v + lane] = scale · Σ_d K[k][d]·qt[d][lane], summed
/// over d in order.
template <int KT, int RV>
void qk_block_tile(const float* kf, int dk, const float* qt, int64_t rp, float scale, float* st) {
  __m256 acc[KT][RV];
  unroll<KT>([&](auto k) { unroll<RV>([&](auto v) { acc[k][v] = _mm256_setzero_ps(); }); });
  for (int d = 0; d < dk; ++d) {
    __m256 qv[RV];
    unroll<RV>([&](auto v) { qv[v] = _mm256_loadu_ps(qt + d * rp + 8 * v); });
    unroll<KT>([&](auto k) {
      const __m256 b = _mm256_broadcast_ss(kf + k * dk + d);
      unroll<RV>([&](auto v) { acc[k][v] = _mm256_fmadd_ps(b, qv[v], acc[k][v]); });
    });
  }
  const __m256 sc = _mm256_set1_ps(scale);
  unroll<KT>([&](auto k) {
    unroll<RV>([&](auto v) { _mm256_storeu_ps(st + k * rp + 8 * v, _mm256_mul_ps(acc[k][v], sc)); });
  });
}

constexpr int kBlockKeys = 6;  ///< keys per score tile: 6 × 2 accumulators + 2 Q vectors + 1 broadcast

using QkBlockFn = void (*)(const float*, int, const float*, int64_t, float, float*);

template <int RV>
QkBlockFn qk_block_fn(int kt) {
  switch (kt) {
    case 1: return qk_block_tile<1, RV>;
    case 2: return qk_block_tile<2, RV>;
    case 3: return qk_block_tile<3, RV>;
    case 4: return qk_block_tile<4, RV>;
    case 5: return qk_block_tile<5, RV>;
    default: return qk_block_tile<kBlockKeys, RV>;
  }
}

void block_job(const AttnJob& job, Scratch& sc) {
  const AttnShape& s = *job.shape;
  const KvLayerF16& kv = *job.kv;
  const int dk = s.head_dim_k, dv = s.head_dim_v, nh = job.n_heads;
  const int group = s.n_head / s.n_head_kv;
  const int rows = job.n_tokens * nh;
  const int rp = (rows + 7) & ~7;
  const int nvec = rp / 8;
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
  // Key range of each vector of 8 rows (every vector holds at least one real row).
  sc.vlo.resize(static_cast<size_t>(nvec));
  sc.vhi.resize(static_cast<size_t>(nvec));
  int32_t* vlo = sc.vlo.data();
  int32_t* vhi = sc.vhi.data();
  for (int v = 0; v < nvec; ++v) {
    int32_t a = n_cells, b = 0;
    for (int r = 8 * v; r < std::min(rows, 8 * v + 8); ++r) {
      a = std::min(a, sc.lo[r]);
      b = std::max(b, sc.hi[r]);
    }
    vlo[v] = a;
    vhi[v] = b;
  }
  auto active = [&](int v, int j0, int j1) { return v < nvec && vlo[v] < j1 && vhi[v] > j0; };

  // Scores: each K row converted once, used by every row vector whose range it falls in.
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
      for (int d0 = 0; d0 < dk; d0 += 8) _mm256_storeu_ps(kf + k * dk + d0, h8(kr + d0));
    }
    for (int v = 0; v < nvec; v += 2) {
      const bool a0 = active(v, j0, j0 + kt), a1 = active(v + 1, j0, j0 + kt);
      if (a0 && a1) {
        qk_block_fn<2>(kt)(kf, dk, qt + 8 * v, rp, s.scale, st + static_cast<int64_t>(j0) * rp + 8 * v);
      } else if (a0 || a1) {
        const int w = a0 ? v : v + 1;
        qk_block_fn<1>(kt)(kf, dk, qt + 8 * w, rp, s.scale, st + static_cast<int64_t>(j0) * rp + 8 * w);
      }
    }
  }

  // Softmax of each row vector over its rows' ranges: max, e^(s - max) and its double sum in
  // key order, then P = F16(e · (float)(1/sum)); lanes outside a row's range get 0.
  const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
  const __m256i one = _mm256_set1_epi32(1);
  for (int v = 0; v < nvec; ++v) {
    const __m256i nlo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc.lo.data() + 8 * v));
    const __m256i nhi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc.hi.data() + 8 * v));
    auto in_range = [&](int j) {
      const __m256i jv = _mm256_set1_epi32(j);
      return _mm256_castsi256_ps(
          _mm256_and_si256(_mm256_cmpgt_epi32(nhi, jv), _mm256_cmpgt_epi32(_mm256_add_epi32(jv, one), nlo)));
    };
    float* col = st + 8 * v;
    __m256 mx = neg_inf;
    for (int j = vlo[v]; j < vhi[v]; ++j)
      mx = _mm256_max_ps(mx, _mm256_blendv_ps(neg_inf, _mm256_loadu_ps(col + j * rp), in_range(j)));
    __m256d sum_lo = _mm256_setzero_pd(), sum_hi = _mm256_setzero_pd();
    for (int j = vlo[v]; j < vhi[v]; ++j) {
      const __m256 e = _mm256_and_ps(exp_ps(_mm256_sub_ps(_mm256_loadu_ps(col + j * rp), mx)), in_range(j));
      _mm256_storeu_ps(col + j * rp, e);
      sum_lo = _mm256_add_pd(sum_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
      sum_hi = _mm256_add_pd(sum_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    const __m256d one_pd = _mm256_set1_pd(1.0);
    __m256 inv = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_div_pd(one_pd, sum_hi)),
                                 _mm256_cvtpd_ps(_mm256_div_pd(one_pd, sum_lo)));
    inv = _mm256_and_ps(inv, _mm256_castsi256_ps(_mm256_cmpgt_epi32(nhi, nlo)));  // padding rows: 0
    for (int j = vlo[v]; j < vhi[v]; ++j)
      _mm256_storeu_ps(col + j * rp, round_f16(_mm256_mul_ps(_mm256_loadu_ps(col + j * rp), inv)));
  }

  // P·V, three rows at a time within each row vector (so that a tile's key range lies inside
  // its vector's, where P is written).
  const uint16_t* vbase = kv.v + static_cast<int64_t>(job.kv_head) * dv;
  for (int r0 = 0; r0 < rows;) {
    const int vend = std::min(rows, (r0 / 8 + 1) * 8);
    const int rt = std::min(3, vend - r0);
    int jlo = n_cells, jhi = 0;
    float* outs[3];
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

constexpr int kDecodeKeys = 32;  ///< keys per score tile: 4 vectors × 2 heads = 8 independent FMA chains

/// K rows krows[0..8) as f32, transposed: kt[d·ld + k] = K_k[d].
void transpose_keys8(const uint16_t* const* krows, int dk, float* kt, int64_t ld) {
  for (int d0 = 0; d0 < dk; d0 += 8) {
    __m256 m[8];
    unroll<8>([&](auto k) { m[k] = h8(krows[k] + d0); });
    transpose8(m);
    unroll<8>([&](auto e) { _mm256_storeu_ps(kt + (d0 + e) * ld, m[e]); });
  }
}

/// Scores of KV vectors of 8 keys (transposed K: kt[d·kDecodeKeys + 8v + lane]) for HT query
/// rows (qh + h·dk): st[h·ld + 8v + lane] = scale · Σ_d q_h[d]·K[d], summed over d in order,
/// exactly as the block kernel sums them.
template <int KV, int HT>
void qk_decode_tile(const float* kt, const float* qh, int dk, float scale, float* st, int64_t ld) {
  __m256 acc[HT][KV];
  unroll<HT>([&](auto h) { unroll<KV>([&](auto v) { acc[h][v] = _mm256_setzero_ps(); }); });
  for (int d = 0; d < dk; ++d) {
    __m256 kv[KV];
    unroll<KV>([&](auto v) { kv[v] = _mm256_loadu_ps(kt + d * kDecodeKeys + 8 * v); });
    unroll<HT>([&](auto h) {
      const __m256 b = _mm256_broadcast_ss(qh + h * dk + d);
      unroll<KV>([&](auto v) { acc[h][v] = _mm256_fmadd_ps(kv[v], b, acc[h][v]); });
    });
  }
  const __m256 sc = _mm256_set1_ps(scale);
  unroll<HT>([&](auto h) {
    unroll<KV>([&](auto v) { _mm256_storeu_ps(st + h * ld + 8 * v, _mm256_mul_ps(acc[h][v], sc)); });
  });
}

using QkDecodeFn = void (*)(const float*, const float*, int, float, float*, int64_t);

template <int HT>
QkDecodeFn qk_decode_fn(int kv_vecs) {
  switch (kv_vecs) {
    case 1: return qk_decode_tile<1, HT>;
    case 2: return qk_decode_tile<2, HT>;
    case 3: return qk_decode_tile<3, HT>;
    default: return qk_decode_tile<4, HT>;
  }
}

/// One token's rows: keys in lanes for the scores, then a softmax along each row that sums in
/// key order (as the block kernel and the reference do) and the P·V tile. The results are
/// bit-identical to block_job's for the same rows.
void decode_token(const AttnJob& job, int i, Scratch& sc) {
  const AttnShape& s = *job.shape;
  const KvLayerF16& kv = *job.kv;
  const int dk = s.head_dim_k, dv = s.head_dim_v, nh = job.n_heads;
  const int group = s.n_head / s.n_head_kv;
  const int h_first = job.kv_head * group + job.head0;
  const int32_t* cells = job.cells + job.lo[i];
  const int n = job.hi[i] - job.lo[i];
  const int n_pad = (n + 7) & ~7;
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
    const int vecs = std::min(kDecodeKeys / 8, (n - j0 + 7) / 8);
    for (int v = 0; v < vecs; ++v) {
      // Lanes past the span repeat its last key; their scores become -inf below.
      const uint16_t* krows[8];
      for (int k = 0; k < 8; ++k)
        krows[k] = kbase + static_cast<int64_t>(cells[std::min(j0 + 8 * v + k, n - 1)]) * kv.k_stride;
      transpose_keys8(krows, dk, kt + 8 * v, kDecodeKeys);
    }
    for (int h0 = 0; h0 < nh; h0 += 2) {
      (nh - h0 >= 2 ? qk_decode_fn<2>(vecs) : qk_decode_fn<1>(vecs))(kt, qh + h0 * dk, dk, s.scale,
                                                                     st + static_cast<int64_t>(h0) * n_pad + j0, n_pad);
    }
  }
  // Softmax along each row: max and e^(s - max) in vectors (the padding keys get -inf, hence 0),
  // the double sums in key order (two rows at a time, for two independent chains).
  for (int hh = 0; hh < nh; ++hh) {
    float* row = st + static_cast<int64_t>(hh) * n_pad;
    for (int j = n; j < n_pad; ++j) row[j] = -INFINITY;
    __m256 mv = _mm256_set1_ps(-INFINITY);
    for (int j = 0; j < n_pad; j += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(row + j));
    const __m256 mx = _mm256_set1_ps(hmax_ps(mv));
    for (int j = 0; j < n_pad; j += 8) _mm256_storeu_ps(row + j, exp_ps(_mm256_sub_ps(_mm256_loadu_ps(row + j), mx)));
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
      const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / (k == 0 ? s0 : s1)));
      for (int j = 0; j < n_pad; j += 8) _mm256_storeu_ps(row + j, round_f16(_mm256_mul_ps(_mm256_loadu_ps(row + j), inv)));
    }
  }
  const uint16_t* vbase = kv.v + static_cast<int64_t>(job.kv_head) * dv;
  for (int h0 = 0; h0 < nh; h0 += 3) {
    const int rt = std::min(3, nh - h0);
    float* outs[3];
    for (int k = 0; k < rt; ++k) outs[k] = job.out + (t * s.n_head + h_first + h0 + k) * dv;
    pv_rows(rt, st + static_cast<int64_t>(h0) * n_pad, 1, n_pad, 0, n, cells, vbase, kv.v_stride, dv, outs);
  }
}

}  // namespace

void attention_job(const AttnJob& job) {
  Scratch& sc = thread_scratch();
  if (job.n_tokens * job.n_heads >= 8) {
    block_job(job, sc);
  } else {
    for (int i = 0; i < job.n_tokens; ++i) decode_token(job, i, sc);
  }
}

void exp_f32(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp_ps(_mm256_loadu_ps(x + i)));
  if (i < n) {
    alignas(32) float tmp[8] = {};
    for (int64_t k = i; k < n; ++k) tmp[k - i] = x[k];
    _mm256_store_ps(tmp, exp_ps(_mm256_load_ps(tmp)));
    for (int64_t k = i; k < n; ++k) y[k] = tmp[k - i];
  }
}

}  // namespace hearth::kernels::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // x86
