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
// The flash kernel (flash_job, for attention_flash over f16/bf16/q8_0/q4_0 caches) uses the same
// two layouts, a tile of kFlashTileKeys keys at a time with an online softmax (see "flash
// attention" below).
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

#include "kernels/dot.h"
#include "quant/blocks.h"

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

/// Scratch of the flash kernel (flash_job). T = kFlashTileKeys, nb = head_dim_k / 32 (block
/// types), rp = rows rounded up to 8.
struct FlashScratch {
  std::vector<uint8_t> qc;   ///< one query head converted to K's vec_dot_type
  std::vector<float> q;      ///< Q codes: transposed [dk][rp] (block) or [rows][dk] (decode)
  std::vector<float> qs;     ///< Q block scales: [nb][rp] (block) or [rows][nb] (decode)
  std::vector<float> tmp;    ///< one row's codes and scales before they are scattered
  std::vector<float> kf;     ///< K tile codes: [T][dk] (block) or transposed [dk][T] (decode)
  std::vector<float> ks;     ///< K tile block scales: [T][nb] (block) or [nb][T] (decode)
  std::vector<float> vf;     ///< V tile as f32: [T][dv]
  std::vector<float> st;     ///< scores, then probabilities: [T][rp] (block) or [rows][T] (decode)
  std::vector<float> acc;    ///< running P·V: [rows][dv]
  std::vector<float> m, l, alpha;  ///< per row: running max, running sum, this tile's rescale factor
  std::vector<int32_t> lo, hi;     ///< key range of each row
  std::vector<int32_t> vlo, vhi;   ///< key range of each row vector
  std::vector<const float*> qrow;  ///< the Q row of each row (nullptr: padding)
};

FlashScratch& flash_scratch() {
  thread_local FlashScratch s;
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

// ---- flash attention (attention_flash): tiles of keys, online softmax ----
//
// Same two layouts as above: rows in vector lanes for blocks of >= 8 query rows, keys in lanes
// for fewer. Per tile of kFlashTileKeys keys of the job's key list: the tile's K rows are
// decoded to f32 "codes" (F16/BF16 values; Q8_0 codes and Q4_0 codes minus 8, with their block
// scales), the scores are summed exactly as the reference (flash_dot in attention.cpp) sums
// them, the tile's V rows are dequantized to f32, and each row's running max, sum and P·V
// accumulator are updated. The block codes are small integers, so a block's sum of code
// products is exact in f32 (|sum| < 2^24) and the f32 FMAs over codes give the integer sums the
// reference forms. The decode layout takes each token alone, tiles from its span's first key;
// with the same tiles, both layouts add every sum in the same order.

using quant::GgmlType;

/// Reading one head row of a cache type T as f32 "codes", 8 elements at a time: F16/BF16
/// their values; Q8_0 its codes and Q4_0 its codes minus 8 (element j < 16 of a block is the
/// low nibble of qs[j], element j + 16 its high nibble), with the f32 block scales.
template <GgmlType T>
struct RowCodes {
  static constexpr bool kBlocks = T == GgmlType::Q8_0 || T == GgmlType::Q4_0;
  /// Elements d0 .. d0 + 8 (d0 a multiple of 8).
  static __m256 load8(const uint8_t* row, int d0) {
    if constexpr (T == GgmlType::F16) {
      return h8(reinterpret_cast<const uint16_t*>(row) + d0);
    } else if constexpr (T == GgmlType::BF16) {
      const __m256i w = _mm256_cvtepu16_epi32(loadu128(row + 2 * d0));
      return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    } else if constexpr (T == GgmlType::Q8_0) {
      const auto* b = reinterpret_cast<const quant::block_q8_0*>(row) + d0 / 32;
      const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b->qs + d0 % 32));
      return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
    } else {
      const auto* b = reinterpret_cast<const quant::block_q4_0*>(row) + d0 / 32;
      const int e = d0 % 32;
      __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b->qs + (e & 15)));
      if (e >= 16) q = _mm_srli_epi16(q, 4);
      q = _mm_and_si128(q, _mm_set1_epi8(0x0F));
      return _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(q), _mm256_set1_epi32(8)));
    }
  }
  /// Scale of block bi (block types only).
  static float scale(const uint8_t* row, int bi) {
    if constexpr (T == GgmlType::Q8_0) return _cvtsh_ss(reinterpret_cast<const quant::block_q8_0*>(row)[bi].d);
    else return _cvtsh_ss(reinterpret_cast<const quant::block_q4_0*>(row)[bi].d);
  }

  /// n elements into codes[0..n) and, for block types, the n/32 scales into scales.
  static void decode(const uint8_t* src, int n, float* codes, float* scales) {
    for (int d = 0; d < n; d += 8) _mm256_storeu_ps(codes + d, load8(src, d));
    if constexpr (kBlocks)
      for (int bi = 0; bi < n / 32; ++bi) scales[bi] = scale(src, bi);
  }
  /// n elements dequantized as the type's to_float does it (Q8_0: code·d, Q4_0: (code - 8)·d).
  static void dequant(const uint8_t* src, int n, float* dst) {
    if constexpr (kBlocks) {
      for (int bi = 0; bi < n / 32; ++bi) {
        const __m256 d = _mm256_set1_ps(scale(src, bi));
        unroll<4>([&](auto e) {
          _mm256_storeu_ps(dst + 32 * bi + 8 * e, _mm256_mul_ps(load8(src, 32 * bi + 8 * e), d));
        });
      }
    } else {
      for (int d = 0; d < n; d += 8) _mm256_storeu_ps(dst + d, load8(src, d));
    }
  }
  /// The codes of 8 rows (rows[k], n elements each) transposed: kt[d·ld + k] = code_k[d], and
  /// for block types the scales ks[bi·ld + k].
  static void transpose8(const uint8_t* const* rows, int n, float* kt, float* ks, int64_t ld) {
    for (int d0 = 0; d0 < n; d0 += 8) {
      __m256 m[8];
      unroll<8>([&](auto k) { m[k] = load8(rows[k], d0); });
      avx2::transpose8(m);
      unroll<8>([&](auto e) { _mm256_storeu_ps(kt + (d0 + e) * ld, m[e]); });
    }
    if constexpr (kBlocks)
      for (int bi = 0; bi < n / 32; ++bi)
        for (int k = 0; k < 8; ++k) ks[bi * ld + k] = scale(rows[k], bi);
  }
};

/// The row functions of one cache type.
struct RowOps {
  void (*decode)(const uint8_t*, int, float*, float*);
  void (*dequant)(const uint8_t*, int, float*);
  void (*transpose8)(const uint8_t* const*, int, float*, float*, int64_t);
};

template <GgmlType T>
constexpr RowOps row_ops_of() {
  return {RowCodes<T>::decode, RowCodes<T>::dequant, RowCodes<T>::transpose8};
}

RowOps row_ops(GgmlType type) {
  switch (type) {
    case GgmlType::F16: return row_ops_of<GgmlType::F16>();
    case GgmlType::BF16: return row_ops_of<GgmlType::BF16>();
    case GgmlType::Q8_0: return row_ops_of<GgmlType::Q8_0>();
    default: return row_ops_of<GgmlType::Q4_0>();
  }
}

/// Fetches the cache lines of a row's first `bytes` (at most 512) into the cache.
inline void prefetch_row(const uint8_t* p, int64_t bytes) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63};
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(std::min<int64_t>(bytes, 512));
  for (uintptr_t a = first; a < end; a += 64) _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
}

/// Block scores: st[k·rp + 8v + lane] = scale · dot(K_k, q_lane) for KT keys (codes kf[k·dk + d],
/// block scales ks[k·nb + b]) and RV vectors of 8 rows (codes qt[d·rp + 8v + lane], scales
/// qst[b·rp + 8v + lane]), summed as flash_dot does: F16/BF16 over d in order; block types
/// per block the exact integer sum (exact in f32: |sum| < 2^24), then (d_K·d_q)·isum added
/// block by block.
template <int KT, int RV, bool kQuant>
void flash_qk_block(const float* kf, const float* ks, int dk, const float* qt, const float* qst, int64_t rp,
                    float scale, float* st) {
  __m256 tot[KT][RV];
  unroll<KT>([&](auto k) { unroll<RV>([&](auto v) { tot[k][v] = _mm256_setzero_ps(); }); });
  if constexpr (!kQuant) {
    for (int d = 0; d < dk; ++d) {
      __m256 qv[RV];
      unroll<RV>([&](auto v) { qv[v] = _mm256_loadu_ps(qt + d * rp + 8 * v); });
      unroll<KT>([&](auto k) {
        const __m256 b = _mm256_broadcast_ss(kf + k * dk + d);
        unroll<RV>([&](auto v) { tot[k][v] = _mm256_fmadd_ps(b, qv[v], tot[k][v]); });
      });
    }
  } else {
    const int nb = dk / 32;
    for (int bi = 0; bi < nb; ++bi) {
      __m256 isum[KT][RV];
      unroll<KT>([&](auto k) { unroll<RV>([&](auto v) { isum[k][v] = _mm256_setzero_ps(); }); });
      for (int d = 32 * bi; d < 32 * bi + 32; ++d) {
        __m256 qv[RV];
        unroll<RV>([&](auto v) { qv[v] = _mm256_loadu_ps(qt + d * rp + 8 * v); });
        unroll<KT>([&](auto k) {
          const __m256 b = _mm256_broadcast_ss(kf + k * dk + d);
          unroll<RV>([&](auto v) { isum[k][v] = _mm256_fmadd_ps(b, qv[v], isum[k][v]); });
        });
      }
      unroll<KT>([&](auto k) {
        const __m256 dkb = _mm256_broadcast_ss(ks + k * nb + bi);
        unroll<RV>([&](auto v) {
          const __m256 dd = _mm256_mul_ps(dkb, _mm256_loadu_ps(qst + bi * rp + 8 * v));
          tot[k][v] = _mm256_add_ps(tot[k][v], _mm256_mul_ps(dd, isum[k][v]));
        });
      });
    }
  }
  const __m256 sc = _mm256_set1_ps(scale);
  unroll<KT>([&](auto k) {
    unroll<RV>([&](auto v) { _mm256_storeu_ps(st + k * rp + 8 * v, _mm256_mul_ps(tot[k][v], sc)); });
  });
}

using FlashQkBlockFn = void (*)(const float*, const float*, int, const float*, const float*, int64_t, float, float*);

/// Keys per block score tile: F16/BF16 6 (12 accumulators for 2 row vectors), block types 3
/// (6 block sums + 6 totals).
template <bool kQuant>
constexpr int flash_block_keys() {
  return kQuant ? 3 : 6;
}

template <int RV, bool kQuant, int KT = 1>
FlashQkBlockFn flash_qk_block_fn(int kt) {
  if constexpr (KT == flash_block_keys<kQuant>()) return flash_qk_block<KT, RV, kQuant>;
  else return kt == KT ? flash_qk_block<KT, RV, kQuant> : flash_qk_block_fn<RV, kQuant, KT + 1>(kt);
}

/// Decode scores: st[h·ld + 8v + lane] = scale · dot(K_lane, q_h) for KV vectors of 8 keys
/// (transposed codes kt[d·T + 8v + lane], scales kst[b·T + 8v + lane]) and HT rows (codes
/// qh[h·dk + d], scales qsh[h·nb + b]); the sums of flash_qk_block.
template <int KV, int HT, bool kQuant>
void flash_qk_decode(const float* kt, const float* kst, int dk, const float* qh, const float* qsh, float scale,
                     float* st, int64_t ld) {
  constexpr int T = kFlashTileKeys;
  __m256 tot[HT][KV];
  unroll<HT>([&](auto h) { unroll<KV>([&](auto v) { tot[h][v] = _mm256_setzero_ps(); }); });
  if constexpr (!kQuant) {
    for (int d = 0; d < dk; ++d) {
      __m256 kv[KV];
      unroll<KV>([&](auto v) { kv[v] = _mm256_loadu_ps(kt + d * T + 8 * v); });
      unroll<HT>([&](auto h) {
        const __m256 b = _mm256_broadcast_ss(qh + h * dk + d);
        unroll<KV>([&](auto v) { tot[h][v] = _mm256_fmadd_ps(kv[v], b, tot[h][v]); });
      });
    }
  } else {
    const int nb = dk / 32;
    for (int bi = 0; bi < nb; ++bi) {
      __m256 isum[HT][KV];
      unroll<HT>([&](auto h) { unroll<KV>([&](auto v) { isum[h][v] = _mm256_setzero_ps(); }); });
      for (int d = 32 * bi; d < 32 * bi + 32; ++d) {
        __m256 kv[KV];
        unroll<KV>([&](auto v) { kv[v] = _mm256_loadu_ps(kt + d * T + 8 * v); });
        unroll<HT>([&](auto h) {
          const __m256 b = _mm256_broadcast_ss(qh + h * dk + d);
          unroll<KV>([&](auto v) { isum[h][v] = _mm256_fmadd_ps(kv[v], b, isum[h][v]); });
        });
      }
      unroll<HT>([&](auto h) {
        const __m256 dq = _mm256_broadcast_ss(qsh + h * nb + bi);
        unroll<KV>([&](auto v) {
          const __m256 dd = _mm256_mul_ps(_mm256_loadu_ps(kst + bi * T + 8 * v), dq);
          tot[h][v] = _mm256_add_ps(tot[h][v], _mm256_mul_ps(dd, isum[h][v]));
        });
      });
    }
  }
  const __m256 sc = _mm256_set1_ps(scale);
  unroll<HT>([&](auto h) {
    unroll<KV>([&](auto v) { _mm256_storeu_ps(st + h * ld + 8 * v, _mm256_mul_ps(tot[h][v], sc)); });
  });
}

using FlashQkDecodeFn = void (*)(const float*, const float*, int, const float*, const float*, float, float*, int64_t);

template <int HT, bool kQuant>
FlashQkDecodeFn flash_qk_decode_fn(int kv_vecs) {
  switch (kv_vecs) {
    case 1: return flash_qk_decode<1, HT, kQuant>;
    case 2: return flash_qk_decode<2, HT, kQuant>;
    case 3: return flash_qk_decode<3, HT, kQuant>;
    default: return flash_qk_decode<4, HT, kQuant>;
  }
}

/// acc_i[d0 + 8k ..] = alpha_i · acc_i[..] + Σ_{j < nk} P_i[j] · vf[j·dv + d0 + 8k ..] for RT rows
/// and DV vectors of 8 head-dim lanes (P_i[j] at p[j·pjs + i·prs]; vf already offset by d0).
template <int RT, int DV>
void flash_pv_tile(const float* p, int64_t pjs, int64_t prs, int nk, const float* vf, int dv, const float* alpha,
                   float* const* accs) {
  __m256 acc[RT][DV];
  unroll<RT>([&](auto i) {
    const __m256 a = _mm256_set1_ps(alpha[i]);
    unroll<DV>([&](auto k) { acc[i][k] = _mm256_mul_ps(_mm256_loadu_ps(accs[i] + 8 * k), a); });
  });
  for (int j = 0; j < nk; ++j) {
    __m256 pb[RT];
    unroll<RT>([&](auto i) { pb[i] = _mm256_broadcast_ss(p + j * pjs + i * prs); });
    unroll<DV>([&](auto k) {
      const __m256 vv = _mm256_loadu_ps(vf + j * dv + 8 * k);
      unroll<RT>([&](auto i) { acc[i][k] = _mm256_fmadd_ps(pb[i], vv, acc[i][k]); });
    });
  }
  unroll<RT>([&](auto i) { unroll<DV>([&](auto k) { _mm256_storeu_ps(accs[i] + 8 * k, acc[i][k]); }); });
}

using FlashPvFn = void (*)(const float*, int64_t, int64_t, int, const float*, int, const float*, float* const*);

template <int RT, int DV = 1>
FlashPvFn flash_pv_fn(int vecs) {
  if constexpr (DV == pv_max_vecs<RT>()) return flash_pv_tile<RT, DV>;
  else return vecs == DV ? flash_pv_tile<RT, DV> : flash_pv_fn<RT, DV + 1>(vecs);
}

/// P·V of one tile for rt <= 3 rows over all head-dim lanes (flash_pv_tile per chunk).
template <int RT>
void flash_pv_rows_rt(const float* p, int64_t pjs, int64_t prs, int nk, const float* vf, int dv, const float* alpha,
                      float* const* accs) {
  constexpr int kWidth = 8 * pv_max_vecs<RT>();
  for (int d0 = 0; d0 < dv; d0 += kWidth) {
    float* a[RT];
    for (int i = 0; i < RT; ++i) a[i] = accs[i] + d0;
    flash_pv_fn<RT>(std::min(kWidth, dv - d0) / 8)(p, pjs, prs, nk, vf + d0, dv, alpha, a);
  }
}

void flash_pv_rows(int rt, const float* p, int64_t pjs, int64_t prs, int nk, const float* vf, int dv,
                   const float* alpha, float* const* accs) {
  switch (rt) {
    case 1: return flash_pv_rows_rt<1>(p, pjs, prs, nk, vf, dv, alpha, accs);
    case 2: return flash_pv_rows_rt<2>(p, pjs, prs, nk, vf, dv, alpha, accs);
    default: return flash_pv_rows_rt<3>(p, pjs, prs, nk, vf, dv, alpha, accs);
  }
}

/// Converts one query head (dk floats) to K's vec_dot_type and decodes it: codes[0..dk) and,
/// for the block types, scales[0..dk/32).
void convert_q_row(ActQuantizeFn convert, const RowOps& q_ops, const float* src, int dk, FlashScratch& sc,
                   float* codes, float* scales) {
  convert(src, sc.qc.data(), dk);
  q_ops.decode(sc.qc.data(), dk, codes, scales);
}

/// What both flash layouts need about a job.
struct FlashJobInfo {
  const AttnJob* job;
  const AttnShape* s;
  const KvLayerView* kv;
  int dk, dv, nh, h_first, nb;
  bool quant;  ///< K is a block type
  GgmlType qtype;
  ActQuantizeFn convert_q;
  RowOps q_ops, k_ops, v_ops;  ///< of qtype, K's type, V's type
  int64_t k_head, v_head;  ///< bytes of one KV head's K / V row
};

FlashJobInfo flash_info(const AttnJob& job) {
  FlashJobInfo f;
  f.job = &job;
  f.s = job.shape;
  f.kv = job.view;
  f.dk = f.s->head_dim_k;
  f.dv = f.s->head_dim_v;
  f.nh = job.n_heads;
  f.h_first = job.kv_head * (f.s->n_head / f.s->n_head_kv) + job.head0;
  f.quant = f.kv->k_type == GgmlType::Q8_0 || f.kv->k_type == GgmlType::Q4_0;
  f.nb = f.quant ? f.dk / 32 : 0;
  f.qtype = quant::traits(f.kv->k_type).vec_dot_type;
  f.convert_q = act_quantize_fn(f.qtype, CpuPath::avx2);
  f.q_ops = row_ops(f.qtype);
  f.k_ops = row_ops(f.kv->k_type);
  f.v_ops = row_ops(f.kv->v_type);
  f.k_head = static_cast<int64_t>(quant::row_size(f.kv->k_type, f.dk));
  f.v_head = static_cast<int64_t>(quant::row_size(f.kv->v_type, f.dv));
  return f;
}

/// Rows in lanes: the job's n_tokens × n_heads rows (>= 8), tiles over the job's key list.
void flash_block_job(const FlashJobInfo& f, FlashScratch& sc) {
  const AttnJob& job = *f.job;
  const AttnShape& s = *f.s;
  const KvLayerView& kv = *f.kv;
  const int dk = f.dk, dv = f.dv, nh = f.nh, nb = f.nb;
  const int rows = job.n_tokens * nh;
  const int rp = (rows + 7) & ~7;
  const int nvec = rp / 8;
  constexpr int T = kFlashTileKeys;

  sc.qc.resize(quant::row_size(f.qtype, dk));
  sc.q.assign(static_cast<size_t>(dk) * rp, 0.0f);
  sc.qs.assign(static_cast<size_t>(std::max(nb, 1)) * rp, 0.0f);
  sc.tmp.resize(static_cast<size_t>(dk + nb + 1));
  sc.lo.assign(static_cast<size_t>(rp), 0);
  sc.hi.assign(static_cast<size_t>(rp), 0);
  float* qt = sc.q.data();
  float* qst = sc.qs.data();
  for (int i = 0; i < job.n_tokens; ++i) {
    for (int hh = 0; hh < nh; ++hh) {
      const int r = i * nh + hh;
      convert_q_row(f.convert_q, f.q_ops, job.q + (job.tokens[i] * s.n_head + f.h_first + hh) * dk, dk, sc,
                    sc.tmp.data(), sc.tmp.data() + dk);
      for (int d = 0; d < dk; ++d) qt[d * rp + r] = sc.tmp[d];
      for (int b = 0; b < nb; ++b) qst[b * rp + r] = sc.tmp[dk + b];
      sc.lo[r] = job.lo[i];
      sc.hi[r] = job.hi[i];
    }
  }
  sc.vlo.resize(static_cast<size_t>(nvec));
  sc.vhi.resize(static_cast<size_t>(nvec));
  int32_t jmin = job.n_cells, jmax = 0;
  for (int v = 0; v < nvec; ++v) {
    int32_t a = job.n_cells, b = 0;
    for (int r = 8 * v; r < std::min(rows, 8 * v + 8); ++r) {
      a = std::min(a, sc.lo[r]);
      b = std::max(b, sc.hi[r]);
    }
    sc.vlo[v] = a;
    sc.vhi[v] = b;
    jmin = std::min(jmin, a);
    jmax = std::max(jmax, b);
  }
  sc.m.assign(static_cast<size_t>(rp), -INFINITY);
  sc.l.assign(static_cast<size_t>(rp), 0.0f);
  sc.alpha.assign(static_cast<size_t>(rp), 1.0f);
  sc.acc.assign(static_cast<size_t>(rows) * dv, 0.0f);
  sc.kf.resize(static_cast<size_t>(T) * dk);
  sc.ks.resize(static_cast<size_t>(T) * std::max(nb, 1));
  sc.vf.resize(static_cast<size_t>(T) * dv);
  sc.st.resize(static_cast<size_t>(T) * rp);
  float* kf = sc.kf.data();
  float* ks = sc.ks.data();
  float* vf = sc.vf.data();
  float* st = sc.st.data();
  const uint8_t* kbase = kv.k + job.kv_head * f.k_head;
  const uint8_t* vbase = kv.v + job.kv_head * f.v_head;
  auto active = [&](int v, int j0, int j1) { return v < nvec && sc.vlo[v] < j1 && sc.vhi[v] > j0; };
  const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
  const __m256i one = _mm256_set1_epi32(1);

  for (int j0 = jmin; j0 < jmax; j0 += T) {
    const int j1 = std::min(jmax, j0 + T), nk = j1 - j0;
    bool any = false;
    for (int v = 0; v < nvec; ++v) any = any || active(v, j0, j1);
    if (!any) continue;
    // The next tile's rows are fetched one at a time while this tile's are converted.
    for (int k = 0; k < nk; ++k) {
      if (j1 + k < jmax) prefetch_row(kbase + job.cells[j1 + k] * kv.k_stride, f.k_head);
      f.k_ops.decode(kbase + job.cells[j0 + k] * kv.k_stride, dk, kf + k * dk, ks + k * nb);
    }
    // Scores of the active row vectors, two at a time.
    const int kt_max = f.quant ? flash_block_keys<true>() : flash_block_keys<false>();
    for (int k0 = 0; k0 < nk; k0 += kt_max) {
      const int kt = std::min(kt_max, nk - k0);
      for (int v = 0; v < nvec; v += 2) {
        const bool a0 = active(v, j0, j1), a1 = active(v + 1, j0, j1);
        if (!a0 && !a1) continue;
        const int w = a0 ? v : v + 1;
        FlashQkBlockFn fn = (a0 && a1) ? (f.quant ? flash_qk_block_fn<2, true>(kt) : flash_qk_block_fn<2, false>(kt))
                                       : (f.quant ? flash_qk_block_fn<1, true>(kt) : flash_qk_block_fn<1, false>(kt));
        fn(kf + k0 * dk, ks + k0 * nb, dk, qt + 8 * w, qst + 8 * w, rp, s.scale, st + k0 * rp + 8 * w);
      }
    }
    for (int k = 0; k < nk; ++k) {
      if (j1 + k < jmax) prefetch_row(vbase + job.cells[j1 + k] * kv.v_stride, f.v_head);
      f.v_ops.dequant(vbase + job.cells[j0 + k] * kv.v_stride, dv, vf + k * dv);
    }
    // Online softmax of each active row vector: lanes outside a row's range get -inf, hence 0.
    for (int v = 0; v < nvec; ++v) {
      if (!active(v, j0, j1)) {
        _mm256_storeu_ps(sc.alpha.data() + 8 * v, _mm256_set1_ps(1.0f));
        continue;
      }
      const __m256i nlo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc.lo.data() + 8 * v));
      const __m256i nhi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc.hi.data() + 8 * v));
      auto in_range = [&](int j) {
        const __m256i jv = _mm256_set1_epi32(j);
        return _mm256_castsi256_ps(
            _mm256_and_si256(_mm256_cmpgt_epi32(nhi, jv), _mm256_cmpgt_epi32(_mm256_add_epi32(jv, one), nlo)));
      };
      float* col = st + 8 * v;
      __m256 mt = neg_inf;
      for (int k = 0; k < nk; ++k)
        mt = _mm256_max_ps(mt, _mm256_blendv_ps(neg_inf, _mm256_loadu_ps(col + k * rp), in_range(j0 + k)));
      const __m256 mo = _mm256_loadu_ps(sc.m.data() + 8 * v);
      const __m256 mn = _mm256_max_ps(mo, mt);
      // Rows without any key so far keep m = -inf: subtract 0 instead (their sum and
      // accumulator are 0, and e^-inf = 0).
      const __m256 msafe = _mm256_andnot_ps(_mm256_cmp_ps(mn, neg_inf, _CMP_EQ_OQ), mn);
      const __m256 alpha = exp_ps(_mm256_sub_ps(mo, msafe));
      __m256 l = _mm256_mul_ps(_mm256_loadu_ps(sc.l.data() + 8 * v), alpha);
      for (int k = 0; k < nk; ++k) {
        const __m256 p = _mm256_and_ps(exp_ps(_mm256_sub_ps(_mm256_loadu_ps(col + k * rp), msafe)), in_range(j0 + k));
        _mm256_storeu_ps(col + k * rp, p);
        l = _mm256_add_ps(l, p);
      }
      _mm256_storeu_ps(sc.l.data() + 8 * v, l);
      _mm256_storeu_ps(sc.m.data() + 8 * v, mn);
      _mm256_storeu_ps(sc.alpha.data() + 8 * v, alpha);
    }
    // P·V, three rows at a time within each row vector, over the keys of the tile the rows see.
    for (int r0 = 0; r0 < rows;) {
      const int vend = std::min(rows, (r0 / 8 + 1) * 8);
      const int rt = std::min(3, vend - r0);
      int klo = nk, khi = 0;
      float* accs[3];
      for (int i = 0; i < rt; ++i) {
        const int r = r0 + i;
        klo = std::min(klo, std::max(0, sc.lo[r] - j0));
        khi = std::max(khi, std::min(nk, sc.hi[r] - j0));
        accs[i] = sc.acc.data() + static_cast<int64_t>(r) * dv;
      }
      // Rows without a key in this tile keep their accumulator (their alpha is 1, or 0 on a zero one).
      if (khi > klo)
        flash_pv_rows(rt, st + klo * rp + r0, rp, 1, khi - klo, vf + klo * dv, dv, sc.alpha.data() + r0, accs);
      r0 += rt;
    }
  }
  for (int r = 0; r < rows; ++r) {
    float* o = job.out + (job.tokens[r / nh] * s.n_head + f.h_first + r % nh) * dv;
    const float* a = sc.acc.data() + static_cast<int64_t>(r) * dv;
    const __m256 inv = _mm256_set1_ps(sc.l[r] > 0.0f ? 1.0f / sc.l[r] : 0.0f);
    for (int d = 0; d < dv; d += 8) _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_loadu_ps(a + d), inv));
  }
}

/// Keys in lanes: one token's rows (fewer than 8), tiles over its own span.
void flash_decode_token(const FlashJobInfo& f, int i, FlashScratch& sc) {
  const AttnJob& job = *f.job;
  const AttnShape& s = *f.s;
  const KvLayerView& kv = *f.kv;
  const int dk = f.dk, dv = f.dv, nh = f.nh, nb = f.nb;
  constexpr int T = kFlashTileKeys;
  const int32_t* cells = job.cells + job.lo[i];
  const int n = job.hi[i] - job.lo[i];
  const int64_t t = job.tokens[i];

  sc.qc.resize(quant::row_size(f.qtype, dk));
  sc.q.resize(static_cast<size_t>(nh) * dk);
  sc.qs.resize(static_cast<size_t>(nh) * std::max(nb, 1));
  for (int hh = 0; hh < nh; ++hh)
    convert_q_row(f.convert_q, f.q_ops, job.q + (t * s.n_head + f.h_first + hh) * dk, dk, sc, sc.q.data() + hh * dk,
                  sc.qs.data() + hh * nb);
  sc.kf.resize(static_cast<size_t>(T) * dk);
  sc.ks.resize(static_cast<size_t>(T) * std::max(nb, 1));
  sc.vf.resize(static_cast<size_t>(T) * dv);
  sc.st.resize(static_cast<size_t>(nh) * T);
  sc.acc.assign(static_cast<size_t>(nh) * dv, 0.0f);
  sc.m.assign(static_cast<size_t>(nh), -INFINITY);
  sc.l.assign(static_cast<size_t>(nh), 0.0f);
  sc.alpha.resize(static_cast<size_t>(nh));
  float* kt = sc.kf.data();
  float* kst = sc.ks.data();
  float* vf = sc.vf.data();
  float* st = sc.st.data();
  const uint8_t* kbase = kv.k + job.kv_head * f.k_head;
  const uint8_t* vbase = kv.v + job.kv_head * f.v_head;
  for (int j0 = 0; j0 < n; j0 += T) {
    const int nk = std::min(T, n - j0);
    const int vecs = (nk + 7) / 8;
    for (int v = 0; v < vecs; ++v) {
      // Fetch the next tile's K rows a group at a time while this tile's are transposed.
      for (int j = j0 + T + 8 * v; j < std::min(n, j0 + T + 8 * v + 8); ++j)
        prefetch_row(kbase + cells[j] * kv.k_stride, f.k_head);
      // Lanes past the span repeat its last key; their scores become -inf below.
      const uint8_t* rows[8];
      for (int k = 0; k < 8; ++k) rows[k] = kbase + cells[std::min(j0 + 8 * v + k, n - 1)] * kv.k_stride;
      f.k_ops.transpose8(rows, dk, kt + 8 * v, kst + 8 * v, T);
    }
    for (int h0 = 0; h0 < nh; h0 += 2) {
      const bool two = nh - h0 >= 2;
      FlashQkDecodeFn fn = f.quant ? (two ? flash_qk_decode_fn<2, true>(vecs) : flash_qk_decode_fn<1, true>(vecs))
                                   : (two ? flash_qk_decode_fn<2, false>(vecs) : flash_qk_decode_fn<1, false>(vecs));
      fn(kt, kst, dk, sc.q.data() + h0 * dk, sc.qs.data() + h0 * nb, s.scale, st + h0 * T, T);
    }
    for (int k = 0; k < nk; ++k) {
      if (j0 + T + k < n) prefetch_row(vbase + cells[j0 + T + k] * kv.v_stride, f.v_head);
      f.v_ops.dequant(vbase + cells[j0 + k] * kv.v_stride, dv, vf + k * dv);
    }
    for (int hh = 0; hh < nh; ++hh) {
      float* row = st + hh * T;
      for (int k = nk; k < 8 * vecs; ++k) row[k] = -INFINITY;
      __m256 mv = _mm256_set1_ps(-INFINITY);
      for (int k = 0; k < 8 * vecs; k += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(row + k));
      const float mo = sc.m[hh], mn = std::max(mo, hmax_ps(mv));
      const float msafe = mn == -INFINITY ? 0.0f : mn;
      const __m256 ms = _mm256_set1_ps(msafe);
      sc.alpha[hh] = _mm256_cvtss_f32(exp_ps(_mm256_set1_ps(mo - msafe)));
      for (int k = 0; k < 8 * vecs; k += 8)
        _mm256_storeu_ps(row + k, exp_ps(_mm256_sub_ps(_mm256_loadu_ps(row + k), ms)));
      float l = sc.l[hh] * sc.alpha[hh];
      for (int k = 0; k < nk; ++k) l += row[k];
      sc.l[hh] = l;
      sc.m[hh] = mn;
    }
    for (int h0 = 0; h0 < nh; h0 += 3) {
      const int rt = std::min(3, nh - h0);
      float* accs[3];
      for (int k = 0; k < rt; ++k) accs[k] = sc.acc.data() + static_cast<int64_t>(h0 + k) * dv;
      flash_pv_rows(rt, st + h0 * T, 1, T, nk, vf, dv, sc.alpha.data() + h0, accs);
    }
  }
  for (int hh = 0; hh < nh; ++hh) {
    float* o = job.out + (t * s.n_head + f.h_first + hh) * dv;
    const float* a = sc.acc.data() + static_cast<int64_t>(hh) * dv;
    const __m256 inv = _mm256_set1_ps(sc.l[hh] > 0.0f ? 1.0f / sc.l[hh] : 0.0f);
    for (int d = 0; d < dv; d += 8) _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_loadu_ps(a + d), inv));
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

void flash_job(const AttnJob& job) {
  FlashScratch& sc = flash_scratch();
  const FlashJobInfo f = flash_info(job);
  if (job.n_tokens * job.n_heads >= 8) {
    flash_block_job(f, sc);
  } else {
    for (int i = 0; i < job.n_tokens; ++i) flash_decode_token(f, i, sc);
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

namespace {
/// g / (1 + e^-g) · u, the scalar reference's steps in its order.
inline __m256 silu_mul(__m256 g, __m256 u) {
  const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}
}  // namespace

void swiglu_f32(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, silu_mul(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n) {
    alignas(32) float g[8] = {}, u[8] = {};
    for (int64_t k = i; k < n; ++k) {
      g[k - i] = gate[k];
      u[k - i] = up[k];
    }
    _mm256_store_ps(g, silu_mul(_mm256_load_ps(g), _mm256_load_ps(u)));
    for (int64_t k = i; k < n; ++k) out[k] = g[k - i];
  }
}

}  // namespace hearth::kernels::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // x86
