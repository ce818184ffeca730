// Attention (kernels/attention.h): the scalar reference against attention computed in double
// from the same F16-rounded Q, K and V, and every SIMD path this CPU runs against the scalar
// reference, on random inputs; the vector exponential against std::exp.
//
// Tolerance, per output element (token t, head h, lane d), with p_j the exact probabilities
// (double softmax of the F16-rounded scores) and V_j[d] the cached values:
//   |got - want| <= 2^-10 · Σ_j p_j·|V_j[d]| + 2^-24 · Σ_j |V_j[d]| + n·2^-24 · Σ_j p_j·|V_j[d]|.
// The first term is one F16 step of every probability (the reference rounds p_j to F16 before
// P·V, and a kernel whose score or exponential differs in the last f32 bit may round it to the
// neighbouring F16 value), the second the same for probabilities below the F16 normal range
// (steps of 2^-24), the third the f32 rounding of n-term sums (n = span length).
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "hearth/error.h"
#include "kernels/attention.h"
#include "kernels/cpu.h"
#include "kernels/threadpool.h"
#include "quant/fp16.h"

namespace hearth::kernels {
namespace {

/// A random F16 KV cache of one layer, cells `pad` halves wider than their heads.
struct Cache {
  int n_cells = 0;
  int64_t k_stride = 0, v_stride = 0;
  std::vector<uint16_t> k, v;
  KvLayerF16 view() const { return {k.data(), v.data(), k_stride, v_stride}; }
};

Cache make_cache(const AttnShape& s, int n_cells, float k_sigma, std::mt19937& rng) {
  Cache c;
  c.n_cells = n_cells;
  c.k_stride = static_cast<int64_t>(s.n_head_kv) * s.head_dim_k + 8;
  c.v_stride = static_cast<int64_t>(s.n_head_kv) * s.head_dim_v + 16;
  std::normal_distribution<float> nk(0.0f, k_sigma), nv(0.0f, 1.0f);
  c.k.resize(static_cast<size_t>(c.k_stride * n_cells));
  c.v.resize(static_cast<size_t>(c.v_stride * n_cells));
  for (auto& h : c.k) h = quant::fp32_to_fp16(nk(rng));
  for (auto& h : c.v) h = quant::fp32_to_fp16(nv(rng));
  return c;
}

/// Query tokens and the cell lists their spans point into.
struct Queries {
  std::vector<std::vector<int32_t>> lists;  ///< owned cell lists (spans point into them)
  std::vector<AttnSpan> spans;
  std::vector<float> q;
};

/// A random permutation of the cells: span cells are not contiguous in the cache.
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

/// Exact attention in double (F16-rounded q, probabilities not rounded) and the tolerance of
/// each output element (see the top of this file).
void exact(const AttnShape& s, const Cache& c, const Queries& qs, std::vector<double>& want, std::vector<double>& tol) {
  const int64_t n_tokens = static_cast<int64_t>(qs.spans.size());
  const int group = s.n_head / s.n_head_kv;
  want.assign(static_cast<size_t>(n_tokens * s.n_head * s.head_dim_v), 0.0);
  tol.assign(want.size(), 0.0);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const AttnSpan& sp = qs.spans[static_cast<size_t>(t)];
    for (int h = 0; h < s.n_head; ++h) {
      const int g = h / group;
      const float* q = qs.q.data() + (t * s.n_head + h) * s.head_dim_k;
      std::vector<double> sc(static_cast<size_t>(sp.n));
      double mx = -INFINITY;
      for (int j = 0; j < sp.n; ++j) {
        const uint16_t* k = c.k.data() + sp.cells[j] * c.k_stride + g * s.head_dim_k;
        double dot = 0;
        for (int d = 0; d < s.head_dim_k; ++d)
          dot += static_cast<double>(quant::round_to_fp16(q[d])) * quant::fp16_to_fp32(k[d]);
        sc[j] = dot * s.scale;
        mx = std::max(mx, sc[j]);
      }
      double sum = 0;
      for (double& x : sc) sum += (x = std::exp(x - mx));
      const size_t o = static_cast<size_t>((t * s.n_head + h) * s.head_dim_v);
      for (int d = 0; d < s.head_dim_v; ++d) {
        double acc = 0, pv_abs = 0, v_abs = 0;
        for (int j = 0; j < sp.n; ++j) {
          const double v = quant::fp16_to_fp32(c.v[sp.cells[j] * c.v_stride + g * s.head_dim_v + d]);
          acc += sc[j] / sum * v;
          pv_abs += sc[j] / sum * std::fabs(v);
          v_abs += std::fabs(v);
        }
        want[o + d] = acc;
        tol[o + d] = std::ldexp(pv_abs, -10) + std::ldexp(v_abs, -24) + sp.n * std::ldexp(pv_abs, -24);
      }
    }
  }
}

std::string describe(const AttnShape& s, const std::string& what) {
  return what + " (head_dim " + std::to_string(s.head_dim_k) + ", n_head " + std::to_string(s.n_head) +
         ", n_head_kv " + std::to_string(s.n_head_kv) + ")";
}

/// Runs `path` on one token at a time (as sequential decoding does), into out.
void run_token_by_token(CpuPath path, const AttnShape& s, const Cache& c, const Queries& qs, const ThreadPool& pool,
                        std::vector<float>& out) {
  for (size_t t = 0; t < qs.spans.size(); ++t)
    attention_f16_path(path, qs.q.data() + t * s.n_head * s.head_dim_k, 1, s, c.view(), &qs.spans[t],
                       out.data() + t * s.n_head * s.head_dim_v, pool);
}

/// Checks the scalar reference against exact(), then every SIMD path against the scalar
/// reference (within the tolerance, and mostly bit-identical: the SIMD kernels add the same
/// terms in the same order, only their exponential differs from std::exp in the last bit for
/// some inputs), on one and two threads and token by token; a path's results must be
/// bit-identical whatever the batch and the thread count, and the AVX2 and AVX-512 results
/// bit-identical to each other.
void check_all_paths(const AttnShape& s, const Cache& c, const Queries& qs, const std::string& what) {
  const int64_t n_tokens = static_cast<int64_t>(qs.spans.size());
  const size_t n_out = static_cast<size_t>(n_tokens * s.n_head * s.head_dim_v);
  std::vector<double> want, tol;
  exact(s, c, qs, want, tol);
  const ThreadPool pool1(1), pool2(2);
  std::vector<float> ref(n_out, NAN);
  attention_f16_scalar(qs.q.data(), n_tokens, s, c.view(), qs.spans.data(), ref.data(), pool2);
  for (size_t i = 0; i < n_out; ++i)
    ASSERT_NEAR(ref[i], want[i], tol[i]) << describe(s, what) << ": scalar reference vs exact, output " << i;
  std::vector<float> seq(n_out, NAN);
  run_token_by_token(CpuPath::scalar, s, c, qs, pool1, seq);
  ASSERT_EQ(seq, ref) << describe(s, what) << ": scalar, token by token vs batch";

  std::vector<float> first;  // the first SIMD path's results
  for (CpuPath path : {CpuPath::avx2, CpuPath::avx512}) {
    if (!cpu_supports(path)) continue;
    std::vector<float> got(n_out, NAN);
    attention_f16_path(path, qs.q.data(), n_tokens, s, c.view(), qs.spans.data(), got.data(), pool2);
    size_t identical = 0;
    for (size_t i = 0; i < n_out; ++i) {
      ASSERT_NEAR(got[i], ref[i], tol[i]) << describe(s, what) << ": " << cpu_path_name(path) << " vs scalar, output "
                                          << i << " (token " << i / (s.n_head * s.head_dim_v) << ")";
      identical += got[i] == ref[i];
    }
    EXPECT_GE(identical, n_out * 3 / 4) << describe(s, what) << ": " << cpu_path_name(path);
    std::vector<float> again(n_out, NAN);
    attention_f16_path(path, qs.q.data(), n_tokens, s, c.view(), qs.spans.data(), again.data(), pool1);
    ASSERT_EQ(again, got) << describe(s, what) << ": " << cpu_path_name(path) << ", 1 thread vs 2";
    run_token_by_token(path, s, c, qs, pool2, again);
    ASSERT_EQ(again, got) << describe(s, what) << ": " << cpu_path_name(path) << ", token by token vs batch";
    if (first.empty()) first = got;
    else ASSERT_EQ(got, first) << describe(s, what) << ": avx512 vs avx2";
  }
}

struct ShapeCase {
  int head_dim;
  int group;
};

const ShapeCase kShapes[] = {{64, 1}, {64, 2}, {64, 4}, {64, 8}, {128, 1}, {128, 2},
                             {128, 4}, {128, 8}, {256, 1}, {256, 2}, {256, 4}, {256, 8}};

AttnShape make_shape(const ShapeCase& c, int n_head_kv) {
  AttnShape s;
  s.n_head_kv = n_head_kv;
  s.n_head = n_head_kv * c.group;
  s.head_dim_k = s.head_dim_v = c.head_dim;
  s.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  return s;
}

TEST(AttentionF16, PromptWithCausalSpans) {
  // A prompt of 45 tokens after 255 cached cells: token t attends the first 256 + t cells of
  // one shuffled list (the last ones attend 300).
  std::mt19937 rng(1);
  for (const ShapeCase& sc : kShapes) {
    const AttnShape s = make_shape(sc, 2);
    const Cache c = make_cache(s, 320, 1.0f, rng);
    Queries qs;
    qs.lists.push_back(shuffled_cells(c.n_cells, rng));
    for (int t = 0; t < 45; ++t) qs.spans.push_back({qs.lists[0].data(), 256 + t});
    fill_q(s, qs, rng);
    check_all_paths(s, c, qs, "causal prompt");
  }
}

TEST(AttentionF16, SpansOfLength0_1_7_300FromSeveralLists) {
  // Tokens of three sequences interleaved in one batch, spans 0, 1, 7, 300 and prefixes
  // of different lengths, plus windows (sub-ranges that do not start at the list's start).
  std::mt19937 rng(2);
  for (const ShapeCase& sc : kShapes) {
    const AttnShape s = make_shape(sc, 2);
    const Cache c = make_cache(s, 400, 1.0f, rng);
    Queries qs;
    for (int l = 0; l < 3; ++l) qs.lists.push_back(shuffled_cells(c.n_cells, rng));
    const int32_t* a = qs.lists[0].data();
    const int32_t* b = qs.lists[1].data();
    const int32_t* w = qs.lists[2].data();
    const std::vector<AttnSpan> spans = {{a, 0},   {a, 1},        {b, 7},   {a, 300}, {b, 8},      {nullptr, 0},
                                         {w, 300}, {w + 5, 300},  {a, 2},   {b, 9},   {w + 90, 7}, {a, 3},
                                         {b, 300}, {w + 100, 1},  {a, 299}, {b, 1},   {a, 7},      {w + 11, 250}};
    qs.spans = spans;
    fill_q(s, qs, rng);
    check_all_paths(s, c, qs, "mixed spans");
  }
}

TEST(AttentionF16, SingleTokenDecode) {
  std::mt19937 rng(3);
  for (const ShapeCase& sc : kShapes) {
    for (int n_head_kv : {1, 4}) {
      const AttnShape s = make_shape(sc, n_head_kv);
      const Cache c = make_cache(s, 300, 1.0f, rng);
      for (int n : {0, 1, 7, 300}) {
        Queries qs;
        qs.lists.push_back(shuffled_cells(c.n_cells, rng));
        qs.spans.push_back({n > 0 ? qs.lists[0].data() : nullptr, n});
        fill_q(s, qs, rng);
        check_all_paths(s, c, qs, "decode, span " + std::to_string(n));
      }
    }
  }
}

TEST(AttentionF16, PeakedScoresWithUnderflowingProbabilities) {
  // K with sigma 6: scores spread over about ±70, so many probabilities fall into the F16
  // subnormal range or to zero, and e^x underflows.
  std::mt19937 rng(4);
  for (const ShapeCase& sc : {ShapeCase{128, 2}, ShapeCase{64, 8}}) {
    const AttnShape s = make_shape(sc, 2);
    const Cache c = make_cache(s, 300, 6.0f, rng);
    Queries qs;
    qs.lists.push_back(shuffled_cells(c.n_cells, rng));
    for (int t = 0; t < 20; ++t) qs.spans.push_back({qs.lists[0].data(), 280 + t});
    qs.spans.push_back({qs.lists[0].data(), 7});
    fill_q(s, qs, rng);
    check_all_paths(s, c, qs, "peaked scores");
  }
}

TEST(AttentionF16, HeadDimNotAMultipleOf8UsesTheReference) {
  std::mt19937 rng(5);
  AttnShape s;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.head_dim_k = 20;
  s.head_dim_v = 12;
  s.scale = 0.25f;
  const Cache c = make_cache(s, 50, 1.0f, rng);
  Queries qs;
  qs.lists.push_back(shuffled_cells(c.n_cells, rng));
  for (int t = 0; t < 9; ++t) qs.spans.push_back({qs.lists[0].data(), 40 + t});
  fill_q(s, qs, rng);
  check_all_paths(s, c, qs, "odd head dims");
}

TEST(AttentionF16, BadArgumentsThrow) {
  const ThreadPool pool(1);
  std::vector<float> q(64), out(64);
  std::vector<uint16_t> kv(64);
  for (size_t i = 0; i < kv.size(); ++i) kv[i] = quant::fp32_to_fp16(0.25f * static_cast<float>(i) - 3.0f);
  const KvLayerF16 cache{kv.data(), kv.data(), 8, 8};
  const int32_t cells[1] = {0};
  const AttnSpan ok{cells, 1}, negative{cells, -1};
  AttnShape s;
  s.n_head = 3;
  s.n_head_kv = 2;
  s.head_dim_k = s.head_dim_v = 4;
  EXPECT_THROW(attention_f16(q.data(), 1, s, cache, &ok, out.data(), pool), Error);  // 3 % 2 != 0
  s.n_head = 2;
  s.head_dim_k = 0;
  EXPECT_THROW(attention_f16(q.data(), 1, s, cache, &ok, out.data(), pool), Error);
  s.head_dim_k = 4;
  EXPECT_THROW(attention_f16(q.data(), 1, s, cache, &negative, out.data(), pool), Error);
  EXPECT_THROW(attention_f16(q.data(), 1, s, cache, nullptr, out.data(), pool), Error);
  const KvLayerF16 narrow{kv.data(), kv.data(), 4, 8};  // a cell holds 2 × 4 halves of K
  EXPECT_THROW(attention_f16(q.data(), 1, s, narrow, &ok, out.data(), pool), Error);
  EXPECT_NO_THROW(attention_f16(q.data(), 1, s, cache, &ok, out.data(), pool));
  EXPECT_FLOAT_EQ(out[0], -3.0f);  // one cell: probability 1, out = V of cell 0
  EXPECT_FLOAT_EQ(out[4], -2.0f);  // head 1 reads KV head 1: V halves 4..7
}

// ---- the vector exponential ----

TEST(AttentionF16, VectorExpMatchesStdExp) {
  for (CpuPath path : {CpuPath::avx2, CpuPath::avx512}) {
    if (!cpu_supports(path)) continue;
    // 2^24 points evenly over [-104, 89], plus the edges.
    const int64_t n = int64_t{1} << 24;
    std::vector<float> x(static_cast<size_t>(n) + 9), y(x.size());
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(-104.0 + 193.0 * static_cast<double>(i) / (n - 1));
    const float inf = std::numeric_limits<float>::infinity();
    const float specials[9] = {0.0f, -0.0f, -inf, inf, 88.72f, 88.73f, -87.33f, -103.9f, -1000.0f};
    std::copy(specials, specials + 9, x.begin() + n);
    attention_exp_f32(path, x.data(), y.data(), static_cast<int64_t>(x.size()));
    double max_rel = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const float want = std::exp(x[i]);
      if (std::isinf(want) || want == 0.0f) {
        ASSERT_EQ(y[i], want) << cpu_path_name(path) << ": exp(" << x[i] << ")";
      } else if (want < FLT_MIN) {  // subnormal: at most one step of 2^-149
        ASSERT_LE(std::fabs(y[i] - want), std::ldexp(1.0f, -149)) << cpu_path_name(path) << ": exp(" << x[i] << ")";
      } else {
        const double rel = std::fabs(static_cast<double>(y[i]) - want) / want;
        max_rel = std::max(max_rel, rel);
        ASSERT_LE(rel, 2.5e-7) << cpu_path_name(path) << ": exp(" << x[i] << ") = " << y[i] << ", want " << want;
      }
    }
    EXPECT_EQ(y[n], 1.0f);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    float yn = 0;
    attention_exp_f32(path, &nan, &yn, 1);
    EXPECT_TRUE(std::isnan(yn)) << cpu_path_name(path);
    RecordProperty(std::string("max_rel_error_") + cpu_path_name(path), std::to_string(max_rel));
    std::printf("%s exp: max relative error vs std::exp %.3g\n", cpu_path_name(path), max_rel);
  }
}

}  // namespace
}  // namespace hearth::kernels
