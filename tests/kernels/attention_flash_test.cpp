// Flash attention (kernels/attention.h attention_flash) over F16, BF16, Q8_0 and Q4_0 caches:
// * the scalar reference against attention computed in double from the same stored K and V
//   (dequantized) and the same converted Q (the reference's only errors are f32 roundings);
// * every SIMD path against the scalar reference, on random inputs, causal prompts, mixed and
//   windowed spans, decode and GQA shapes;
// * flash on an F16 cache against the non-flash attention_f16 reference;
// * quantized caches against attention on the unquantized f32 K and V (how much q8_0 / q4_0
//   cost), and bad arguments.
//
// Tolerances, per output element (token t, head h, lane d), with p_j the exact probabilities
// and V_j[d] the stored values:
// * reference vs exact: 2^-24 · Σ_j p_j·|V_j[d]| · (8·n_b·A + 4·n + 64), A = max_j scale·Σ_d
//   |K_j[d]·q'[d]| (the f32 rounding of the scores: n_b block sums, each within n_b ulps of A),
//   n the span length (the f32 sums of S and of P·V);
// * SIMD vs reference: 2^-24 · Σ_j p_j·|V_j[d]| · (8·A + 4·n + 64): the scores are the same
//   bits, the exponential differs by 1 ulp, and P·V adds with FMA (one rounding instead of two)
//   and, for spans that do not start where the block's key list starts, in other tiles.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "hearth/error.h"
#include "kernels/attention.h"
#include "kernels/cpu.h"
#include "kernels/dot.h"
#include "kernels/threadpool.h"
#include "quant/fp16.h"
#include "quant/types.h"

namespace hearth::kernels {
namespace {

using quant::GgmlType;

const GgmlType kTypes[] = {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0};

/// A random cache of one layer in (k_type, v_type), cells `pad` bytes wider than their rows,
/// with the f32 values it was made from and the stored values dequantized.
struct Cache {
  GgmlType k_type{}, v_type{};
  int n_cells = 0;
  int64_t k_stride = 0, v_stride = 0;  // bytes
  int64_t k_width = 0, v_width = 0;    // values per cell
  std::vector<uint8_t> k, v;
  std::vector<float> k_src, v_src;  ///< [cell][width] the values before storing
  std::vector<float> k_deq, v_deq;  ///< [cell][width] the stored values
  KvLayerView view() const { return {k_type, v_type, k.data(), v.data(), k_stride, v_stride}; }
};

Cache make_cache(const AttnShape& s, GgmlType kt, GgmlType vt, int n_cells, float k_sigma, std::mt19937& rng) {
  Cache c;
  c.k_type = kt;
  c.v_type = vt;
  c.n_cells = n_cells;
  c.k_width = int64_t{s.n_head_kv} * s.head_dim_k;
  c.v_width = int64_t{s.n_head_kv} * s.head_dim_v;
  c.k_stride = static_cast<int64_t>(quant::row_size(kt, c.k_width)) + 6;
  c.v_stride = static_cast<int64_t>(quant::row_size(vt, c.v_width)) + 10;
  std::normal_distribution<float> nk(0.0f, k_sigma), nv(0.0f, 1.0f);
  c.k.assign(static_cast<size_t>(c.k_stride * n_cells), 0xEE);
  c.v.assign(static_cast<size_t>(c.v_stride * n_cells), 0xEE);
  c.k_src.resize(static_cast<size_t>(c.k_width * n_cells));
  c.v_src.resize(static_cast<size_t>(c.v_width * n_cells));
  for (float& x : c.k_src) x = nk(rng);
  for (float& x : c.v_src) x = nv(rng);
  c.k_deq.resize(c.k_src.size());
  c.v_deq.resize(c.v_src.size());
  for (int cell = 0; cell < n_cells; ++cell) {
    uint8_t* kr = c.k.data() + cell * c.k_stride;
    uint8_t* vr = c.v.data() + cell * c.v_stride;
    quant::traits(kt).from_float(c.k_src.data() + cell * c.k_width, kr, c.k_width);
    quant::traits(vt).from_float(c.v_src.data() + cell * c.v_width, vr, c.v_width);
    quant::traits(kt).to_float(kr, c.k_deq.data() + cell * c.k_width, c.k_width);
    quant::traits(vt).to_float(vr, c.v_deq.data() + cell * c.v_width, c.v_width);
  }
  return c;
}

struct Queries {
  std::vector<std::vector<int32_t>> lists;
  std::vector<AttnSpan> spans;
  std::vector<float> q;
};

std::vector<int32_t> shuffled_cells(int n_cells, std::mt19937& rng) {
  std::vector<int32_t> cells(static_cast<size_t>(n_cells));
  std::iota(cells.begin(), cells.end(), 0);
  std::shuffle(cells.begin(), cells.end(), rng);
  return cells;
}

void fill_q(const AttnShape& s, Queries& qs, std::mt19937& rng) {
  std::normal_distribution<float> nq(0.0f, 1.0f);
  qs.q.resize(qs.spans.size() * s.n_head * s.head_dim_k);
  for (float& x : qs.q) x = nq(rng);
}

/// Q of one head as attention_flash sees it: converted to K's vec_dot_type and back to f32.
std::vector<float> converted_q(GgmlType k_type, const float* q, int dk) {
  const GgmlType qt = quant::traits(k_type).vec_dot_type;
  std::vector<uint8_t> bytes(quant::row_size(qt, dk));
  act_quantize_fn(qt, CpuPath::scalar)(q, bytes.data(), dk);
  std::vector<float> out(static_cast<size_t>(dk));
  quant::traits(qt).to_float(bytes.data(), out.data(), dk);
  return out;
}

/// Attention in double over K and V given as f32 rows ([cell][n_head_kv·hd]), with Q given per
/// (token, head) as f32 rows; per output: the result, Σ_j p_j·|V_j[d]| and max_j scale·Σ_d|K·q|,
/// and each span's length.
struct Exact {
  std::vector<double> out, pv_abs, score_abs;
  std::vector<int> n;
};

Exact exact(const AttnShape& s, const std::vector<float>& kvals, const std::vector<float>& vvals,
            const std::vector<float>& q, const Queries& qs) {
  const int64_t n_tokens = static_cast<int64_t>(qs.spans.size());
  const int group = s.n_head / s.n_head_kv;
  const int64_t kw = int64_t{s.n_head_kv} * s.head_dim_k, vw = int64_t{s.n_head_kv} * s.head_dim_v;
  Exact e;
  const size_t n_out = static_cast<size_t>(n_tokens * s.n_head * s.head_dim_v);
  e.out.assign(n_out, 0.0);
  e.pv_abs.assign(n_out, 0.0);
  e.score_abs.assign(n_out, 0.0);
  e.n.assign(n_out, 0);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const AttnSpan& sp = qs.spans[static_cast<size_t>(t)];
    for (int h = 0; h < s.n_head; ++h) {
      const int g = h / group;
      const float* qh = q.data() + (t * s.n_head + h) * s.head_dim_k;
      std::vector<double> sc(static_cast<size_t>(sp.n));
      double mx = -INFINITY, amax = 0;
      for (int j = 0; j < sp.n; ++j) {
        const float* k = kvals.data() + sp.cells[j] * kw + g * s.head_dim_k;
        double dot = 0, dabs = 0;
        for (int d = 0; d < s.head_dim_k; ++d) {
          dot += static_cast<double>(qh[d]) * k[d];
          dabs += std::fabs(static_cast<double>(qh[d]) * k[d]);
        }
        sc[j] = dot * s.scale;
        amax = std::max(amax, dabs * s.scale);
        mx = std::max(mx, sc[j]);
      }
      double sum = 0;
      for (double& x : sc) sum += (x = std::exp(x - mx));
      const size_t o = static_cast<size_t>((t * s.n_head + h) * s.head_dim_v);
      for (int d = 0; d < s.head_dim_v; ++d) {
        double acc = 0, pv = 0;
        for (int j = 0; j < sp.n; ++j) {
          const double v = vvals[static_cast<size_t>(sp.cells[j] * vw + g * s.head_dim_v + d)];
          acc += sc[j] / sum * v;
          pv += sc[j] / sum * std::fabs(v);
        }
        e.out[o + d] = acc;
        e.pv_abs[o + d] = pv;
        e.score_abs[o + d] = amax;
        e.n[o + d] = sp.n;
      }
    }
  }
  return e;
}

/// Q of every (token, head) converted as attention_flash converts it.
std::vector<float> all_converted_q(const AttnShape& s, GgmlType k_type, const Queries& qs) {
  std::vector<float> out(qs.q.size());
  const size_t rows = qs.q.size() / s.head_dim_k;
  for (size_t r = 0; r < rows; ++r) {
    const std::vector<float> c = converted_q(k_type, qs.q.data() + r * s.head_dim_k, s.head_dim_k);
    std::copy(c.begin(), c.end(), out.begin() + static_cast<int64_t>(r * s.head_dim_k));
  }
  return out;
}

std::string describe(const AttnShape& s, const Cache& c, const std::string& what) {
  return what + " (K " + std::string(quant::type_name(c.k_type)) + ", V " + std::string(quant::type_name(c.v_type)) +
         ", head_dim " + std::to_string(s.head_dim_k) + "/" + std::to_string(s.head_dim_v) + ", n_head " +
         std::to_string(s.n_head) + ", n_head_kv " + std::to_string(s.n_head_kv) + ")";
}

/// The largest |got - want| / (2^-24 · Σ p|V|) seen by check_paths, per comparison kind.
double g_worst_ref_units = 0, g_worst_simd_units = 0;

/// Checks the scalar reference against exact(), then every SIMD path against the reference
/// (also on one thread and token by token). `aligned`: every span starts where its key list
/// starts, so the SIMD results must be bit-identical whatever the batch and thread count.
void check_paths(const AttnShape& s, const Cache& c, const Queries& qs, bool aligned, const std::string& what) {
  const int64_t n_tokens = static_cast<int64_t>(qs.spans.size());
  const size_t n_out = static_cast<size_t>(n_tokens * s.n_head * s.head_dim_v);
  const Exact e = exact(s, c.k_deq, c.v_deq, all_converted_q(s, c.k_type, qs), qs);
  const int nb = s.head_dim_k / 32 + 1;
  const ThreadPool pool1(1), pool2(2);
  std::vector<float> ref(n_out, NAN);
  attention_flash_scalar(qs.q.data(), n_tokens, s, c.view(), qs.spans.data(), ref.data(), pool2);
  for (size_t i = 0; i < n_out; ++i) {
    const double unit = std::ldexp(e.pv_abs[i], -24);
    const double tol = unit * (8.0 * nb * e.score_abs[i] + 4.0 * e.n[i] + 64.0);
    ASSERT_NEAR(ref[i], e.out[i], tol) << describe(s, c, what) << ": scalar reference vs exact, output " << i;
    if (unit > 0) g_worst_ref_units = std::max(g_worst_ref_units, std::fabs(ref[i] - e.out[i]) / unit);
  }
  for (CpuPath path : {CpuPath::avx2, CpuPath::avx512}) {
    if (!cpu_supports(path)) continue;
    std::vector<float> got(n_out, NAN);
    attention_flash_path(path, qs.q.data(), n_tokens, s, c.view(), qs.spans.data(), got.data(), pool2);
    for (size_t i = 0; i < n_out; ++i) {
      const double unit = std::ldexp(e.pv_abs[i], -24);
      const double tol = unit * (8.0 * e.score_abs[i] + 4.0 * e.n[i] + 64.0);
      ASSERT_NEAR(got[i], ref[i], tol) << describe(s, c, what) << ": " << cpu_path_name(path) << " vs scalar, output "
                                       << i << " (token " << i / (s.n_head * s.head_dim_v) << ")";
      if (unit > 0) g_worst_simd_units = std::max(g_worst_simd_units, std::fabs(got[i] - ref[i]) / unit);
    }
    std::vector<float> one(n_out, NAN), seq(n_out, NAN);
    attention_flash_path(path, qs.q.data(), n_tokens, s, c.view(), qs.spans.data(), one.data(), pool1);
    for (int64_t t = 0; t < n_tokens; ++t)
      attention_flash_path(path, qs.q.data() + t * s.n_head * s.head_dim_k, 1, s, c.view(), &qs.spans[t],
                           seq.data() + t * s.n_head * s.head_dim_v, pool2);
    if (aligned) {
      ASSERT_EQ(one, got) << describe(s, c, what) << ": " << cpu_path_name(path) << ", 1 thread vs 2";
      ASSERT_EQ(seq, got) << describe(s, c, what) << ": " << cpu_path_name(path) << ", token by token vs batch";
    } else {
      for (size_t i = 0; i < n_out; ++i) {
        const double tol = std::ldexp(e.pv_abs[i], -24) * (16.0 * e.score_abs[i] + 8.0 * e.n[i] + 128.0);
        ASSERT_NEAR(one[i], got[i], tol) << describe(s, c, what) << ": 1 thread vs 2, output " << i;
        ASSERT_NEAR(seq[i], got[i], tol) << describe(s, c, what) << ": token by token vs batch, output " << i;
      }
    }
  }
}

AttnShape make_shape(int head_dim, int group, int n_head_kv) {
  AttnShape s;
  s.n_head_kv = n_head_kv;
  s.n_head = n_head_kv * group;
  s.head_dim_k = s.head_dim_v = head_dim;
  s.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  return s;
}

struct ShapeCase {
  int head_dim;
  int group;
};
const ShapeCase kShapes[] = {{64, 1}, {64, 4}, {128, 1}, {128, 2}, {128, 8}, {256, 4}};

TEST(AttentionFlash, CausalPromptEveryType) {
  // A prompt of 40 tokens after 60 cached cells: token t attends the first 61 + t cells.
  std::mt19937 rng(11);
  for (GgmlType kt : kTypes) {
    for (GgmlType vt : kTypes) {
      for (const ShapeCase& sc : kShapes) {
        if (kt != vt && (sc.head_dim != 128 || sc.group != 2)) continue;  // mixed types: one shape is enough
        const AttnShape s = make_shape(sc.head_dim, sc.group, 2);
        const Cache c = make_cache(s, kt, vt, 100, 1.0f, rng);
        Queries qs;
        qs.lists.push_back(shuffled_cells(c.n_cells, rng));
        for (int t = 0; t < 40; ++t) qs.spans.push_back({qs.lists[0].data(), 61 + t});
        fill_q(s, qs, rng);
        check_paths(s, c, qs, true, "causal prompt");
      }
    }
  }
  std::printf("worst |error| in units of 2^-24·Σp|V|: reference vs exact %.1f, SIMD vs reference %.1f\n",
              g_worst_ref_units, g_worst_simd_units);
}

TEST(AttentionFlash, MixedAndWindowedSpans) {
  std::mt19937 rng(12);
  for (GgmlType t : kTypes) {
    for (const ShapeCase& sc : kShapes) {
      const AttnShape s = make_shape(sc.head_dim, sc.group, 2);
      const Cache c = make_cache(s, t, t, 400, 1.0f, rng);
      Queries qs;
      for (int l = 0; l < 3; ++l) qs.lists.push_back(shuffled_cells(c.n_cells, rng));
      const int32_t* a = qs.lists[0].data();
      const int32_t* b = qs.lists[1].data();
      const int32_t* w = qs.lists[2].data();
      qs.spans = {{a, 0},   {a, 1},       {b, 7},   {a, 300}, {b, 8},      {nullptr, 0},
                  {w, 300}, {w + 5, 300}, {a, 2},   {b, 9},   {w + 90, 7}, {a, 3},
                  {b, 300}, {w + 100, 1}, {a, 299}, {b, 1},   {a, 7},      {w + 11, 250}};
      fill_q(s, qs, rng);
      check_paths(s, c, qs, false, "mixed spans");
    }
  }
}

TEST(AttentionFlash, DecodeEveryType) {
  std::mt19937 rng(13);
  for (GgmlType t : kTypes) {
    for (const ShapeCase& sc : kShapes) {
      for (int n_head_kv : {1, 4}) {
        const AttnShape s = make_shape(sc.head_dim, sc.group, n_head_kv);
        const Cache c = make_cache(s, t, t, 300, 1.0f, rng);
        for (int n : {0, 1, 7, 33, 300}) {
          Queries qs;
          qs.lists.push_back(shuffled_cells(c.n_cells, rng));
          qs.spans.push_back({n > 0 ? qs.lists[0].data() : nullptr, n});
          fill_q(s, qs, rng);
          check_paths(s, c, qs, true, "decode, span " + std::to_string(n));
        }
      }
    }
  }
}

TEST(AttentionFlash, PeakedScoresMoveTheRunningMax) {
  // K with sigma 6: scores spread over about ±70, so the running max moves often and many
  // probabilities underflow.
  std::mt19937 rng(14);
  for (GgmlType t : kTypes) {
    const AttnShape s = make_shape(128, 2, 2);
    const Cache c = make_cache(s, t, t, 300, 6.0f, rng);
    Queries qs;
    qs.lists.push_back(shuffled_cells(c.n_cells, rng));
    for (int t2 = 0; t2 < 20; ++t2) qs.spans.push_back({qs.lists[0].data(), 280 + t2});
    qs.spans.push_back({qs.lists[0].data(), 7});
    fill_q(s, qs, rng);
    check_paths(s, c, qs, true, "peaked scores");
  }
}

TEST(AttentionFlash, F16CacheMatchesTheNonFlashReference) {
  // The non-flash path rounds the probabilities to F16 before P·V (attention_test.cpp): the
  // two agree within one F16 step of every probability plus f32 rounding.
  std::mt19937 rng(15);
  for (const ShapeCase& sc : kShapes) {
    const AttnShape s = make_shape(sc.head_dim, sc.group, 2);
    const Cache c = make_cache(s, GgmlType::F16, GgmlType::F16, 200, 1.0f, rng);
    Queries qs;
    qs.lists.push_back(shuffled_cells(c.n_cells, rng));
    for (int t = 0; t < 30; ++t) qs.spans.push_back({qs.lists[0].data(), 150 + t});
    qs.spans.push_back({qs.lists[0].data() + 3, 9});
    fill_q(s, qs, rng);
    const int64_t n_tokens = static_cast<int64_t>(qs.spans.size());
    const size_t n_out = static_cast<size_t>(n_tokens * s.n_head * s.head_dim_v);
    const Exact e = exact(s, c.k_deq, c.v_deq, all_converted_q(s, c.k_type, qs), qs);
    // The F16 kernels take cell strides in halves: a copy of the cache with even strides.
    const int64_t k_halves = c.k_width, v_halves = c.v_width;
    std::vector<uint16_t> k16(static_cast<size_t>(k_halves * c.n_cells));
    std::vector<uint16_t> v16(static_cast<size_t>(v_halves * c.n_cells));
    for (int cell = 0; cell < c.n_cells; ++cell) {
      std::memcpy(k16.data() + cell * k_halves, c.k.data() + cell * c.k_stride, static_cast<size_t>(k_halves) * 2);
      std::memcpy(v16.data() + cell * v_halves, c.v.data() + cell * c.v_stride, static_cast<size_t>(v_halves) * 2);
    }
    const KvLayerF16 f16{k16.data(), v16.data(), k_halves, v_halves};
    const ThreadPool pool(2);
    std::vector<float> want(n_out, NAN), got(n_out, NAN);
    attention_f16_scalar(qs.q.data(), n_tokens, s, f16, qs.spans.data(), want.data(), pool);
    attention_flash(qs.q.data(), n_tokens, s, c.view(), qs.spans.data(), got.data(), pool);
    double worst = 0;
    for (size_t i = 0; i < n_out; ++i) {
      const double tol = std::ldexp(e.pv_abs[i], -10) +
                         std::ldexp(e.pv_abs[i], -24) * (8.0 * e.score_abs[i] + 4.0 * e.n[i] + 64.0);
      ASSERT_NEAR(got[i], want[i], tol) << "head_dim " << sc.head_dim << ", group " << sc.group << ", output " << i;
      if (e.pv_abs[i] > 0) worst = std::max(worst, std::fabs(got[i] - want[i]) / e.pv_abs[i]);
    }
    std::printf("head_dim %d group %d: flash (F16 cache) vs attention_f16: max |diff| / Σp|V| = %.3g\n", sc.head_dim,
                sc.group, worst);
  }
}

TEST(AttentionFlash, QuantizedCachesStayCloseToUnquantizedAttention) {
  // Attention over the unquantized f32 K and V (Q unrounded) against the flash kernel on a
  // cache of each type: the relative RMS error of the outputs is what storing K and V costs.
  // Measured (head_dim 128, 300 cells, sigma 1; Q itself rounded to F16 / BF16 / Q8_0 as
  // well): F16 3.6e-4, BF16 2.8e-3, Q8_0 9.5e-3, Q4_0 0.126; the bounds have about 3x margin.
  std::mt19937 rng(16);
  const AttnShape s = make_shape(128, 2, 2);
  const std::pair<GgmlType, double> bounds[] = {
      {GgmlType::F16, 1e-3}, {GgmlType::BF16, 8e-3}, {GgmlType::Q8_0, 3e-2}, {GgmlType::Q4_0, 0.35}};
  for (const auto& [t, bound] : bounds) {
    const Cache c = make_cache(s, t, t, 300, 1.0f, rng);
    Queries qs;
    qs.lists.push_back(shuffled_cells(c.n_cells, rng));
    for (int i = 0; i < 16; ++i) qs.spans.push_back({qs.lists[0].data(), 200 + 6 * i});
    fill_q(s, qs, rng);
    const Exact e = exact(s, c.k_src, c.v_src, qs.q, qs);
    const int64_t n_tokens = static_cast<int64_t>(qs.spans.size());
    std::vector<float> got(e.out.size(), NAN);
    const ThreadPool pool(2);
    attention_flash(qs.q.data(), n_tokens, s, c.view(), qs.spans.data(), got.data(), pool);
    double err2 = 0, ref2 = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      err2 += (got[i] - e.out[i]) * (got[i] - e.out[i]);
      ref2 += e.out[i] * e.out[i];
    }
    const double rel = std::sqrt(err2 / ref2);
    std::printf("%s cache: relative RMS error vs unquantized attention %.3g\n",
                std::string(quant::type_name(t)).c_str(), rel);
    EXPECT_LT(rel, bound) << quant::type_name(t);
    EXPECT_GT(rel, 0.0) << quant::type_name(t);
  }
}

TEST(AttentionFlash, BadArgumentsThrow) {
  const ThreadPool pool(1);
  AttnShape s = make_shape(64, 2, 1);
  std::vector<float> q(256, 0.5f), out(256);
  std::vector<uint8_t> k(4096), v(4096);
  const int32_t cells[1] = {0};
  const AttnSpan span{cells, 1};
  KvLayerView view{GgmlType::Q4_K, GgmlType::F16, k.data(), v.data(), 1024, 1024};
  try {
    attention_flash(q.data(), 1, s, view, &span, out.data(), pool);
    FAIL() << "Q4_K K cache accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Q4_K"), std::string::npos) << e.what();
  }
  view.k_type = GgmlType::Q8_0;
  s.head_dim_k = s.head_dim_v = 48;
  try {
    attention_flash(q.data(), 1, s, view, &span, out.data(), pool);
    FAIL() << "head_dim 48 accepted for Q8_0";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("48"), std::string::npos) << m;
    EXPECT_NE(m.find("32"), std::string::npos) << m;
  }
  s.head_dim_k = s.head_dim_v = 64;
  view.k_stride = 60;  // a Q8_0 row of 64 values is 68 bytes
  EXPECT_THROW(attention_flash(q.data(), 1, s, view, &span, out.data(), pool), Error);
  view.k_stride = 68;
  view.k = nullptr;
  EXPECT_THROW(attention_flash(q.data(), 1, s, view, &span, out.data(), pool), Error);
  view.k = k.data();
  EXPECT_NO_THROW(attention_flash(q.data(), 1, s, view, &span, out.data(), pool));
  EXPECT_FALSE(attention_flash_supports(GgmlType::Q4_K));
  EXPECT_TRUE(attention_flash_supports(GgmlType::Q4_0));
}

}  // namespace
}  // namespace hearth::kernels
