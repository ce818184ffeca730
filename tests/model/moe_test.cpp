// Mixture of experts: the routing kernels (kernels/moe.h) against straightforward references,
// and Compute::moe_ffn (grouped by expert) against a per-token evaluation of the formula of
// architectures.md §1.5.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "kernels/moe.h"
#include "model/compute.h"
#include "quant/types.h"

namespace hearth::model {
namespace {

std::vector<float> random_vector(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// Reference routing of one token: probabilities in double, experts sorted by probability
// (stable, so ties keep the lower id first).
void reference_route(const float* logits, int n_expert, int k, bool renorm, std::vector<int>& ids,
                     std::vector<double>& w) {
  const double mx = *std::max_element(logits, logits + n_expert);
  std::vector<double> p(static_cast<size_t>(n_expert));
  double sum = 0;
  for (int e = 0; e < n_expert; ++e) sum += p[static_cast<size_t>(e)] = std::exp(logits[e] - mx);
  for (double& x : p) x /= sum;
  std::vector<int> order(static_cast<size_t>(n_expert));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return p[static_cast<size_t>(a)] > p[static_cast<size_t>(b)]; });
  ids.assign(order.begin(), order.begin() + k);
  w.clear();
  double s = 0;
  for (int e : ids) s += p[static_cast<size_t>(e)];
  for (int e : ids) w.push_back(renorm ? p[static_cast<size_t>(e)] / s : p[static_cast<size_t>(e)]);
}

// Reference sigmoid routing of one token (llama4): experts sorted by logit (stable, so ties keep
// the lower id first), weights 1 / (1 + e^-logit) in double.
void reference_route_sigmoid(const float* logits, int n_expert, int k, std::vector<int>& ids, std::vector<double>& w) {
  std::vector<int> order(static_cast<size_t>(n_expert));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  ids.assign(order.begin(), order.begin() + k);
  w.clear();
  for (int e : ids) w.push_back(1.0 / (1.0 + std::exp(-static_cast<double>(logits[e]))));
}

TEST(Moe, SigmoidTopKChoosesOnTheLogits) {
  for (const auto& [n_expert, k] : std::vector<std::pair<int, int>>{{16, 1}, {128, 1}, {8, 3}}) {
    const int64_t n = 33;
    const std::vector<float> logits = random_vector(static_cast<size_t>(n * n_expert), 17u + n_expert, 3.0f);
    kernels::MoeRouting r;
    kernels::moe_route_sigmoid(logits.data(), n, n_expert, k, r);
    std::vector<int> ids;
    std::vector<double> w;
    for (int64_t t = 0; t < n; ++t) {
      reference_route_sigmoid(logits.data() + t * n_expert, n_expert, k, ids, w);
      for (int s = 0; s < k; ++s) {
        const size_t i = static_cast<size_t>(t * k + s);
        ASSERT_EQ(r.ids[i], ids[static_cast<size_t>(s)]) << "token " << t << " slot " << s;
        EXPECT_NEAR(r.weights[i], w[static_cast<size_t>(s)], 1e-7) << "token " << t << " slot " << s;
      }
    }
    EXPECT_EQ(r.offsets.back(), n * k);
  }
  // Ties: the lower expert first; weights are not renormalised (σ(2) each, not 1/2).
  const std::vector<float> logits = {0.5f, 2.0f, 1.0f, 2.0f};
  kernels::MoeRouting r;
  kernels::moe_route_sigmoid(logits.data(), 1, 4, 2, r);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{1, 3}));
  for (float x : r.weights) EXPECT_FLOAT_EQ(x, 1.0f / (1.0f + std::exp(-2.0f)));
  EXPECT_THROW(kernels::moe_route_sigmoid(logits.data(), 1, 4, 5, r), Error);
  EXPECT_THROW(kernels::moe_route_sigmoid(logits.data(), 1, 4, 0, r), Error);
}

TEST(Moe, SoftmaxTopKMatchesSortedReference) {
  for (const auto& [n_expert, k] : std::vector<std::pair<int, int>>{{8, 2}, {128, 8}, {16, 1}, {4, 4}}) {
    for (bool renorm : {true, false}) {
      const int64_t n = 33;
      const std::vector<float> logits = random_vector(static_cast<size_t>(n * n_expert), 7u + n_expert, 1.5f);
      kernels::MoeRouting r;
      kernels::moe_route_softmax(logits.data(), n, n_expert, k, renorm, r);
      std::vector<int> ids;
      std::vector<double> w;
      for (int64_t t = 0; t < n; ++t) {
        reference_route(logits.data() + t * n_expert, n_expert, k, renorm, ids, w);
        for (int s = 0; s < k; ++s) {
          ASSERT_EQ(r.ids[static_cast<size_t>(t * k + s)], ids[static_cast<size_t>(s)])
              << "token " << t << " slot " << s;
          EXPECT_NEAR(r.weights[static_cast<size_t>(t * k + s)], w[static_cast<size_t>(s)], 2e-7)
              << "token " << t << " slot " << s;
        }
        if (renorm) {
          double sum = 0;
          for (int s = 0; s < k; ++s) sum += r.weights[static_cast<size_t>(t * k + s)];
          EXPECT_NEAR(sum, 1.0, 1e-6);
        }
      }
    }
  }
}

TEST(Moe, TiesPickTheLowerExpertFirstAndBadRoutingsThrow) {
  const std::vector<float> logits = {0.5f, 2.0f, 1.0f, 2.0f, 2.0f, -1.0f};
  kernels::MoeRouting r;
  kernels::moe_route_softmax(logits.data(), 1, 6, 3, true, r);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{1, 3, 4}));
  for (float w : r.weights) EXPECT_FLOAT_EQ(w, 1.0f / 3.0f);
  EXPECT_THROW(kernels::moe_route_softmax(logits.data(), 1, 6, 7, true, r), Error);
  EXPECT_THROW(kernels::moe_route_softmax(logits.data(), 1, 6, 0, true, r), Error);
  r.ids = {0, 6};
  r.n_tokens = 1;
  r.n_used = 2;
  r.n_expert = 6;
  EXPECT_THROW(kernels::moe_group(r), Error);
}

TEST(Moe, GroupingListsEveryEntryOnceByExpert) {
  const int n_expert = 16, k = 4;
  const int64_t n = 50;
  const std::vector<float> logits = random_vector(static_cast<size_t>(n * n_expert), 3);
  kernels::MoeRouting r;
  kernels::moe_route_softmax(logits.data(), n, n_expert, k, true, r);
  ASSERT_EQ(r.offsets.size(), static_cast<size_t>(n_expert + 1));
  EXPECT_EQ(r.offsets.front(), 0);
  EXPECT_EQ(r.offsets.back(), n * k);
  std::set<int32_t> seen;
  for (int e = 0; e < n_expert; ++e) {
    int32_t prev = -1;
    for (int64_t i = 0; i < r.count(e); ++i) {
      const int32_t entry = r.entries(e)[i];
      EXPECT_EQ(r.ids[static_cast<size_t>(entry)], e);
      EXPECT_GT(entry, prev);  // ascending within an expert
      prev = entry;
      EXPECT_TRUE(seen.insert(entry).second);
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(n * k));
}

TEST(Moe, GatherAndWeightedCombine) {
  const int64_t width = 5;
  const std::vector<float> src = random_vector(4 * width, 11);  // 4 tokens
  const std::vector<int32_t> entries = {2, 4, 10};             // token 0 slot 2, token 1 slot 1, token 3 slot 1
  std::vector<float> rows(3 * width);
  kernels::moe_gather(src.data(), width, entries.data(), 3, 3, rows.data());
  const int tokens[] = {0, 1, 3};
  for (int i = 0; i < 3; ++i)
    for (int64_t j = 0; j < width; ++j) EXPECT_EQ(rows[i * width + j], src[tokens[i] * width + j]);

  // Combine: every token's slots, weighted, summed in slot order, read through the grouping.
  kernels::ThreadPool pool(2);
  const int n_expert = 6, k = 3;
  const int64_t n = 7;
  const std::vector<float> logits = random_vector(static_cast<size_t>(n * n_expert), 12);
  kernels::MoeRouting r;
  kernels::moe_route_softmax(logits.data(), n, n_expert, k, true, r);
  std::vector<int32_t> position;
  kernels::moe_positions(r, position);
  for (size_t i = 0; i < r.order.size(); ++i)
    EXPECT_EQ(position[static_cast<size_t>(r.order[i])], static_cast<int32_t>(i));
  const std::vector<float> grouped = random_vector(static_cast<size_t>(n * k * width), 13);
  std::vector<float> y(static_cast<size_t>(n * width), 99.0f);
  kernels::moe_combine(r, position, grouped.data(), width, y.data(), pool);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < width; ++j) {
      float want = 0.0f;
      for (int s = 0; s < k; ++s) {
        const size_t entry = static_cast<size_t>(t * k + s);
        want += r.weights[entry] * grouped[static_cast<size_t>(position[entry] * width + j)];
      }
      EXPECT_EQ(y[static_cast<size_t>(t * width + j)], want) << "token " << t;
    }
}

TEST(Moe, BothSchedulesComputeWhatMatmulComputes) {
  // Three products of different sizes (one spanning several blocks), Q8_0 weights.
  kernels::ThreadPool pool(2);
  const int64_t n_in = 64;
  const int64_t n_out[] = {48, 700, 16}, n_rows[] = {3, 1, 5};
  std::vector<std::vector<uint8_t>> weights;
  std::vector<std::vector<float>> xs;
  std::vector<kernels::MoeMatmul> jobs;
  const quant::TypeTraits& q8 = quant::traits(quant::GgmlType::Q8_0);
  const size_t rb = quant::row_size(quant::GgmlType::Q8_0, n_in);
  for (int j = 0; j < 3; ++j) {
    const std::vector<float> w = random_vector(static_cast<size_t>(n_in * n_out[j]), 20u + j);
    weights.emplace_back(rb * static_cast<size_t>(n_out[j]));
    for (int64_t o = 0; o < n_out[j]; ++o) q8.from_float(w.data() + o * n_in, weights.back().data() + o * rb, n_in);
    xs.push_back(random_vector(static_cast<size_t>(n_in * n_rows[j]), 30u + j));
  }
  std::vector<std::vector<float>> want(3), got(3);
  kernels::MatmulScratch ms;
  for (int j = 0; j < 3; ++j) {
    kernels::MatrixView w;
    w.type = quant::GgmlType::Q8_0;
    w.n_in = n_in;
    w.n_out = n_out[j];
    w.data = weights[static_cast<size_t>(j)].data();
    w.row_bytes = rb;
    const int64_t ldy = n_out[j] + 3;  // row stride wider than the row
    want[static_cast<size_t>(j)].assign(static_cast<size_t>(n_rows[j] * ldy), -1.0f);
    kernels::matmul(w, xs[static_cast<size_t>(j)].data(), n_rows[j], want[static_cast<size_t>(j)].data(), ldy, pool,
                    ms);
    jobs.push_back({w, xs[static_cast<size_t>(j)].data(), n_rows[j], nullptr, ldy});
  }
  for (kernels::MoeSchedule sched : {kernels::MoeSchedule::kPerMatrix, kernels::MoeSchedule::kUnits}) {
    for (int j = 0; j < 3; ++j) {
      got[static_cast<size_t>(j)].assign(want[static_cast<size_t>(j)].size(), -1.0f);
      jobs[static_cast<size_t>(j)].y = got[static_cast<size_t>(j)].data();
    }
    std::vector<kernels::MatmulScratch> scratch;
    kernels::moe_matmuls(jobs, sched, pool, scratch);
    EXPECT_EQ(got, want);
  }
}

TEST(Moe, ExpertMatrixIsAContiguousSlice) {
  kernels::MatrixView stack;
  stack.type = quant::GgmlType::Q8_0;
  stack.n_in = 64;
  stack.n_out = 3 * 10;
  stack.row_bytes = quant::row_size(stack.type, 64);
  std::vector<uint8_t> data(stack.row_bytes * 30);
  stack.data = data.data();
  const kernels::MatrixView e2 = kernels::expert_matrix(stack, 10, 2);
  EXPECT_EQ(e2.data, data.data() + 2 * 10 * stack.row_bytes);
  EXPECT_EQ(e2.n_out, 10);
  EXPECT_EQ(e2.n_in, 64);
  EXPECT_EQ(e2.type, quant::GgmlType::Q8_0);
  EXPECT_THROW(kernels::expert_matrix(stack, 10, 3), Error);
  EXPECT_THROW(kernels::expert_matrix(stack, 10, -1), Error);
}

// A random MoE block: F32 router and expert stacks of `type`.
struct MoeBlock {
  int d, f, n_expert, k;
  quant::GgmlType type = quant::GgmlType::F32;
  std::vector<float> router, gate, up, down;      // float values (after the round trip through `type`)
  std::vector<uint8_t> gate_q, up_q, down_q;      // stored rows
  MoeFfn view;

  std::vector<uint8_t> store(std::vector<float>& w, int64_t n_in) {
    const quant::TypeTraits& tt = quant::traits(type);
    const size_t rb = quant::row_size(type, n_in);
    const int64_t rows = static_cast<int64_t>(w.size()) / n_in;
    std::vector<uint8_t> q(rb * static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      tt.from_float(w.data() + r * n_in, q.data() + static_cast<size_t>(r) * rb, n_in);
      tt.to_float(q.data() + static_cast<size_t>(r) * rb, w.data() + r * n_in, n_in);
    }
    return q;
  }
  static kernels::MatrixView matrix(quant::GgmlType t, const uint8_t* data, int64_t n_in, int64_t n_out) {
    kernels::MatrixView m;
    m.type = t;
    m.n_in = n_in;
    m.n_out = n_out;
    m.data = data;
    m.row_bytes = quant::row_size(t, n_in);
    return m;
  }
  MoeBlock(int n_expert_, int k_, quant::GgmlType type_, int d_ = 64, int f_ = 32)
      : d(d_), f(f_), n_expert(n_expert_), k(k_), type(type_) {
    router = random_vector(static_cast<size_t>(d * n_expert), 1, 1.5f / std::sqrt(static_cast<float>(d)));
    gate = random_vector(static_cast<size_t>(d * f * n_expert), 2, 1.0f / std::sqrt(static_cast<float>(d)));
    up = random_vector(static_cast<size_t>(d * f * n_expert), 3, 1.0f / std::sqrt(static_cast<float>(d)));
    down = random_vector(static_cast<size_t>(f * d * n_expert), 4, 1.0f / std::sqrt(static_cast<float>(f)));
    gate_q = store(gate, d);
    up_q = store(up, d);
    down_q = store(down, f);
    view.router = matrix(quant::GgmlType::F32, reinterpret_cast<const uint8_t*>(router.data()), d, n_expert);
    view.gate = matrix(type, gate_q.data(), d, int64_t{f} * n_expert);
    view.up = matrix(type, up_q.data(), d, int64_t{f} * n_expert);
    view.down = matrix(type, down_q.data(), f, int64_t{d} * n_expert);
    view.n_expert = n_expert;
    view.n_used = k;
    view.n_ff = f;
  }

  // y = Σ_{e chosen} w_e · down_e(silu(gate_e h) ⊙ up_e h), in double; with the llama4 options
  // of `view` (sigmoid gating, weight_input) y = Σ_{e chosen} down_e(silu(gate_e w_e h) ⊙ up_e w_e h).
  std::vector<double> reference(const float* h) const {
    std::vector<float> logits(static_cast<size_t>(n_expert));
    for (int e = 0; e < n_expert; ++e) {
      double s = 0;
      for (int i = 0; i < d; ++i) s += static_cast<double>(router[static_cast<size_t>(e * d + i)]) * h[i];
      logits[static_cast<size_t>(e)] = static_cast<float>(s);
    }
    std::vector<int> ids;
    std::vector<double> w;
    if (view.gating == MoeGating::kSigmoid) {
      reference_route_sigmoid(logits.data(), n_expert, k, ids, w);
    } else {
      reference_route(logits.data(), n_expert, k, true, ids, w);
    }
    std::vector<double> y(static_cast<size_t>(d), 0.0);
    for (int s = 0; s < k; ++s) {
      const size_t e = static_cast<size_t>(ids[static_cast<size_t>(s)]);
      const double w_in = view.weight_input ? w[static_cast<size_t>(s)] : 1.0;
      const double w_out = view.weight_input ? 1.0 : w[static_cast<size_t>(s)];
      std::vector<double> a(static_cast<size_t>(f));
      for (int j = 0; j < f; ++j) {
        double g = 0, u = 0;
        for (int i = 0; i < d; ++i) {
          g += static_cast<double>(gate[(e * f + j) * d + i]) * w_in * h[i];
          u += static_cast<double>(up[(e * f + j) * d + i]) * w_in * h[i];
        }
        a[static_cast<size_t>(j)] = g / (1 + std::exp(-g)) * u;
      }
      for (int o = 0; o < d; ++o) {
        double acc = 0;
        for (int j = 0; j < f; ++j) acc += static_cast<double>(down[(e * d + o) * f + j]) * a[static_cast<size_t>(j)];
        y[static_cast<size_t>(o)] += w_out * acc;
      }
    }
    return y;
  }
};

double gelu_exact(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

// Gemma 4's MoE (architectures.md §11) in double: routed on router·r (not h), GeGLU experts of h,
// each expert's output times scale[e], then its renormalised weight.
std::vector<double> reference_gemma4(const MoeBlock& b, const float* h, const float* r, const float* scale) {
  std::vector<float> logits(static_cast<size_t>(b.n_expert));
  for (int e = 0; e < b.n_expert; ++e) {
    double s = 0;
    for (int i = 0; i < b.d; ++i) s += static_cast<double>(b.router[static_cast<size_t>(e * b.d + i)]) * r[i];
    logits[static_cast<size_t>(e)] = static_cast<float>(s);
  }
  std::vector<int> ids;
  std::vector<double> w;
  reference_route(logits.data(), b.n_expert, b.k, true, ids, w);
  std::vector<double> y(static_cast<size_t>(b.d), 0.0);
  const size_t d = static_cast<size_t>(b.d), f = static_cast<size_t>(b.f);
  for (int s = 0; s < b.k; ++s) {
    const size_t e = static_cast<size_t>(ids[static_cast<size_t>(s)]);
    std::vector<double> a(f);
    for (size_t j = 0; j < f; ++j) {
      double g = 0, u = 0;
      for (size_t i = 0; i < d; ++i) {
        g += static_cast<double>(b.gate[(e * f + j) * d + i]) * h[i];
        u += static_cast<double>(b.up[(e * f + j) * d + i]) * h[i];
      }
      a[j] = gelu_exact(g) * u;
    }
    for (size_t o = 0; o < d; ++o) {
      double acc = 0;
      for (size_t j = 0; j < f; ++j) acc += static_cast<double>(b.down[(e * d + o) * f + j]) * a[j];
      y[o] += w[static_cast<size_t>(s)] * scale[e] * acc;
    }
  }
  return y;
}

TEST(Moe, FusedGateUpGeluExpertScalesAndOwnRouterInput) {
  // Gemma 4: one ffn_gate_up_exps stack (per expert: the f gate rows, then the f up rows), GeGLU,
  // ffn_down_exps.scale per expert, and a router that reads another input than the experts.
  kernels::ThreadPool pool(2);
  MoeBlock b(8, 2, quant::GgmlType::F32);
  std::vector<float> gate_up;
  for (int e = 0; e < b.n_expert; ++e) {
    const auto rows = [&](const std::vector<float>& m) {
      gate_up.insert(gate_up.end(), m.begin() + int64_t{e} * b.f * b.d, m.begin() + int64_t{e + 1} * b.f * b.d);
    };
    rows(b.gate);
    rows(b.up);
  }
  std::vector<float> scale(static_cast<size_t>(b.n_expert));
  for (int e = 0; e < b.n_expert; ++e) scale[static_cast<size_t>(e)] = 0.5f + 0.25f * static_cast<float>(e);
  MoeFfn m = b.view;
  m.gate = m.up = kernels::MatrixView{};
  m.gate_up = MoeBlock::matrix(quant::GgmlType::F32, reinterpret_cast<const uint8_t*>(gate_up.data()), b.d,
                               int64_t{2} * b.f * b.n_expert);
  m.gelu = true;
  m.down_scale = scale.data();
  const int64_t n = 23;
  const std::vector<float> h = random_vector(static_cast<size_t>(n * b.d), 21);
  const std::vector<float> r = random_vector(static_cast<size_t>(n * b.d), 22);
  ForwardState st;
  st.pool = &pool;
  UBatch ub;
  ub.n_tokens = n;
  Compute c(ub, st);
  std::vector<float> out(static_cast<size_t>(n * b.d));
  c.moe_ffn(h.data(), m, out.data(), r.data());
  double max_diff = 0, max_ref = 0;
  for (int64_t t = 0; t < n; ++t) {
    const std::vector<double> ref = reference_gemma4(b, h.data() + t * b.d, r.data() + t * b.d, scale.data());
    for (int o = 0; o < b.d; ++o) {
      max_diff = std::max(max_diff, std::abs(ref[static_cast<size_t>(o)] - out[static_cast<size_t>(t * b.d + o)]));
      max_ref = std::max(max_ref, std::abs(ref[static_cast<size_t>(o)]));
    }
  }
  // GELU goes through F16 (kernels::gelu): a few 1e-4 relative, far below what a swapped gate/up,
  // a missing scale or routing on h would change.
  EXPECT_GT(max_ref, 0.1);
  EXPECT_LT(max_diff, 2e-3 * max_ref);
}

// Runs Compute::moe_ffn on n rows of h.
std::vector<float> run_moe(const MoeBlock& b, const float* h, int64_t n, ForwardState& st) {
  UBatch ub;
  ub.n_tokens = n;
  Compute c(ub, st);
  std::vector<float> out(static_cast<size_t>(n * b.d));
  c.moe_ffn(h, b.view, out.data());
  return out;
}

TEST(Moe, GroupedFfnMatchesPerTokenFormula) {
  kernels::ThreadPool pool(2);
  for (const auto& [n_expert, k] : std::vector<std::pair<int, int>>{{8, 2}, {16, 8}}) {
    MoeBlock b(n_expert, k, quant::GgmlType::F32);
    const int64_t n = 29;
    const std::vector<float> h = random_vector(static_cast<size_t>(n * b.d), 5);
    ForwardState st;
    st.pool = &pool;
    const std::vector<float> out = run_moe(b, h.data(), n, st);
    double max_diff = 0, max_ref = 0;
    for (int64_t t = 0; t < n; ++t) {
      const std::vector<double> ref = b.reference(h.data() + t * b.d);
      for (int o = 0; o < b.d; ++o) {
        max_diff = std::max(max_diff, std::abs(ref[static_cast<size_t>(o)] - out[static_cast<size_t>(t * b.d + o)]));
        max_ref = std::max(max_ref, std::abs(ref[static_cast<size_t>(o)]));
      }
    }
    EXPECT_GT(max_ref, 0.1);
    EXPECT_LT(max_diff, 1e-5 * max_ref) << n_expert << " experts, top " << k;
  }
}

TEST(Moe, InputWeightedSigmoidFfnMatchesPerTokenFormula) {
  // llama4 (architectures.md §3): experts chosen on the router logits, σ(logit) scales the
  // expert's input. The output weighting gives another result (SwiGLU is not linear).
  kernels::ThreadPool pool(2);
  for (const auto& [n_expert, k] : std::vector<std::pair<int, int>>{{16, 1}, {8, 2}}) {
    MoeBlock b(n_expert, k, quant::GgmlType::F32);
    b.view.gating = MoeGating::kSigmoid;
    b.view.renormalize = false;
    b.view.weight_input = true;
    const int64_t n = 29;
    const std::vector<float> h = random_vector(static_cast<size_t>(n * b.d), 15);
    ForwardState st;
    st.pool = &pool;
    const std::vector<float> out = run_moe(b, h.data(), n, st);
    MoeBlock output_weighted = b;
    output_weighted.view.weight_input = false;
    double max_diff = 0, max_ref = 0, max_other = 0;
    for (int64_t t = 0; t < n; ++t) {
      const std::vector<double> ref = b.reference(h.data() + t * b.d);
      const std::vector<double> other = output_weighted.reference(h.data() + t * b.d);
      for (int o = 0; o < b.d; ++o) {
        const double got = out[static_cast<size_t>(t * b.d + o)];
        max_diff = std::max(max_diff, std::abs(ref[static_cast<size_t>(o)] - got));
        max_other = std::max(max_other, std::abs(other[static_cast<size_t>(o)] - got));
        max_ref = std::max(max_ref, std::abs(ref[static_cast<size_t>(o)]));
      }
    }
    EXPECT_GT(max_ref, 0.1);
    EXPECT_LT(max_diff, 1e-5 * max_ref) << n_expert << " experts, top " << k;
    EXPECT_GT(max_other, 0.01 * max_ref) << "input and output weighting should differ";
  }
}

TEST(Moe, BatchOfTokensEqualsTokensOneAtATime) {
  // Quantized experts (activations quantized to Q8_K per row): grouping the rows of a batch by
  // expert gives each token what it gets alone (each row is computed the same way).
  kernels::ThreadPool pool(1);
  MoeBlock b(8, 2, quant::GgmlType::Q4_K, 256, 256);
  const int64_t n = 40;
  const std::vector<float> h = random_vector(static_cast<size_t>(n * b.d), 8);
  ForwardState st;
  st.pool = &pool;
  const std::vector<float> batch = run_moe(b, h.data(), n, st);
  double max_diff = 0, max_abs = 0;
  for (int64_t t = 0; t < n; ++t) {
    const std::vector<float> one = run_moe(b, h.data() + t * b.d, 1, st);
    for (int o = 0; o < b.d; ++o) {
      max_diff = std::max(max_diff, static_cast<double>(std::abs(one[static_cast<size_t>(o)] -
                                                                 batch[static_cast<size_t>(t * b.d + o)])));
      max_abs = std::max(max_abs, static_cast<double>(std::abs(one[static_cast<size_t>(o)])));
    }
  }
  EXPECT_GT(max_abs, 0.1);
  EXPECT_LE(max_diff, 1e-6 * max_abs);
  // And it is the formula (on the dequantized weights) up to the Q8_K rounding of the activations.
  double ref_diff = 0;
  for (int64_t t = 0; t < n; ++t) {
    const std::vector<double> ref = b.reference(h.data() + t * b.d);
    for (int o = 0; o < b.d; ++o)
      ref_diff = std::max(ref_diff, std::abs(ref[static_cast<size_t>(o)] - batch[static_cast<size_t>(t * b.d + o)]));
  }
  EXPECT_LT(ref_diff, 0.02 * max_abs);
}

TEST(Moe, ExpertHookSeesTheRoutedRowsOnly) {
  kernels::ThreadPool pool(1);
  MoeBlock b(8, 2, quant::GgmlType::F32);
  const int64_t n = 20;
  const std::vector<float> h = random_vector(static_cast<size_t>(n * b.d), 6);
  ForwardState st;
  st.pool = &pool;
  std::map<std::pair<const uint8_t*, int64_t>, int64_t> rows;  // (stack, expert) -> rows seen
  int n_router_calls = 0;
  int64_t n_run = n;
  st.on_matmul = [&](const kernels::MatrixView& w, const float*, int64_t r) {
    EXPECT_EQ(w.data, b.view.router.data);  // only the router goes through on_matmul
    EXPECT_EQ(r, n_run);
    ++n_router_calls;
  };
  st.on_matmul_id = [&](const kernels::MatrixView& stack, int64_t e, int64_t n_expert, const float* x, int64_t r) {
    EXPECT_EQ(n_expert, 8);
    rows[{stack.data, e}] += r;
    if (stack.data == b.view.gate.data) {  // the gate input rows are the tokens' rows of h
      const kernels::MoeRouting& rt = st.scratch.moe;
      for (int64_t i = 0; i < r; ++i)
        EXPECT_EQ(x[i * b.d], h[static_cast<size_t>(rt.entries(static_cast<int>(e))[i] / 2 * b.d)]);
    }
  };
  run_moe(b, h.data(), n, st);
  EXPECT_EQ(n_router_calls, 1);
  const kernels::MoeRouting& rt = st.scratch.moe;
  for (const uint8_t* stack : {b.view.gate.data, b.view.up.data, b.view.down.data}) {
    int64_t total = 0;
    for (int e = 0; e < 8; ++e) {
      const auto it = rows.find({stack, e});
      const int64_t seen = it == rows.end() ? 0 : it->second;
      EXPECT_EQ(seen, rt.count(e)) << "expert " << e;
      total += seen;
    }
    EXPECT_EQ(total, n * 2);
  }

  // One token (decode) multiplies with its two experts only.
  rows.clear();
  n_run = 1;
  run_moe(b, h.data(), 1, st);
  std::set<int64_t> experts;
  for (const auto& [key, r] : rows) {
    EXPECT_EQ(r, 1);
    experts.insert(key.second);
  }
  EXPECT_EQ(rows.size(), 6u);  // 2 experts x (gate, up, down)
  EXPECT_EQ(experts, (std::set<int64_t>{st.scratch.moe.ids[0], st.scratch.moe.ids[1]}));
}

}  // namespace
}  // namespace hearth::model
