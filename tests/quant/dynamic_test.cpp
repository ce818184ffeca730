// quant/dynamic.h: the allocator on made-up sensitivity tables (budget, optimality against brute
// force, monotone in the budget), the weighted error of the quantizers on random data, the
// candidate ladder, the weights, and the plan on the demo model; quantize_file() with
// QuantizeParams::tensor_types.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "gguf/gguf.h"
#include "hearth/error.h"
#include "quant/dynamic.h"
#include "quant/quantize_file.h"
#include "quant/types.h"

namespace hearth::quant {
namespace {

using Items = std::vector<std::vector<AllocationOption>>;

const std::string kModel = std::string(HEARTH_SOURCE_DIR) + "/models/hearth-kjv-F16.gguf";

// A made-up table: each item has `k` options whose bytes grow (multiples of `unit`, as real tensor
// sizes share factors) and whose errors mostly fall, with some options dominated or off the hull.
Items random_items(std::mt19937& rng, int n, int k, uint64_t unit) {
  std::uniform_int_distribution<int> step(1, 6);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Items items(static_cast<size_t>(n));
  for (auto& item : items) {
    uint64_t bytes = unit * static_cast<uint64_t>(step(rng) * 4);
    double error = 1.0 + 10 * u(rng);
    for (int j = 0; j < k; ++j) {
      item.push_back({bytes, error});
      bytes += unit * static_cast<uint64_t>(step(rng));
      error *= u(rng) < 0.15 ? 1.05 : 0.2 + 0.7 * u(rng);  // sometimes worse: a dominated option
    }
  }
  return items;
}

uint64_t bytes_of(const Items& items, const std::vector<size_t>& pick) {
  uint64_t b = 0;
  for (size_t t = 0; t < items.size(); ++t) b += items[t][pick[t]].bytes;
  return b;
}

double error_of(const Items& items, const std::vector<size_t>& pick) {
  double e = 0;
  for (size_t t = 0; t < items.size(); ++t) e += items[t][pick[t]].error;
  return e;
}

// The least total error within the budget, by trying every combination.
double brute_force(const Items& items, uint64_t budget) {
  std::vector<size_t> pick(items.size(), 0);
  double best = INFINITY;
  for (;;) {
    if (bytes_of(items, pick) <= budget) best = std::min(best, error_of(items, pick));
    size_t t = 0;
    while (t < items.size() && ++pick[t] == items[t].size()) pick[t++] = 0;
    if (t == items.size()) return best;
  }
}

std::pair<uint64_t, uint64_t> range_of(const Items& items) {
  uint64_t lo = 0, hi = 0;
  for (const auto& item : items) {
    uint64_t a = UINT64_MAX, b = 0;
    for (const auto& o : item) a = std::min(a, o.bytes), b = std::max(b, o.bytes);
    lo += a, hi += b;
  }
  return {lo, hi};
}

TEST(DynamicAllocate, ExactIsOptimalAgainstBruteForce) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 20; ++trial) {
    const Items items = random_items(rng, 6, 4, trial % 2 ? 128 : 7);
    const auto [lo, hi] = range_of(items);
    for (int s = 0; s <= 10; ++s) {
      const uint64_t budget = lo + (hi - lo) * static_cast<uint64_t>(s) / 10;
      const std::vector<size_t> pick = allocate_types(items, budget, AllocationMethod::kExact);
      ASSERT_EQ(pick.size(), items.size());
      EXPECT_LE(bytes_of(items, pick), budget);
      const double best = brute_force(items, budget);
      EXPECT_NEAR(error_of(items, pick), best, 1e-12 * best) << "trial " << trial << " budget " << budget;
      // kAuto takes the exact path for a table this small.
      EXPECT_EQ(allocate_types(items, budget), pick);
    }
  }
}

TEST(DynamicAllocate, LagrangianRespectsTheBudgetAndStaysCloseToTheOptimum) {
  std::mt19937 rng(12);
  for (int trial = 0; trial < 20; ++trial) {
    const Items items = random_items(rng, 6, 5, 3);
    // The greedy's gap is at most the error one item can lose by its largest step.
    double max_step = 0;
    for (const auto& item : items) {
      double lo_e = INFINITY;
      for (const auto& o : item) lo_e = std::min(lo_e, o.error);
      max_step = std::max(max_step, item[0].error - lo_e);
    }
    const auto [lo, hi] = range_of(items);
    for (int s = 0; s <= 12; ++s) {
      const uint64_t budget = lo + (hi - lo) * static_cast<uint64_t>(s) / 12;
      const std::vector<size_t> pick = allocate_types(items, budget, AllocationMethod::kLagrangian);
      EXPECT_LE(bytes_of(items, pick), budget);
      const double best = brute_force(items, budget);
      EXPECT_GE(error_of(items, pick), best - 1e-12 * best);
      EXPECT_LE(error_of(items, pick), best + max_step);
    }
    // With the whole range every item takes its least error.
    const std::vector<size_t> all = allocate_types(items, hi, AllocationMethod::kLagrangian);
    double least = 0;
    for (const auto& item : items) {
      double m = INFINITY;
      for (const auto& o : item) m = std::min(m, o.error);
      least += m;
    }
    EXPECT_NEAR(error_of(items, all), least, 1e-12 * least);
  }
}

TEST(DynamicAllocate, LagrangianIsExactOnAConvexTableAtItsBreakpoints) {
  // Two items on convex curves: upgrades by error drop per byte are a (4/1), b (3/1), a (1/1),
  // b (0.5/1): the budgets 2..6 are the greedy's breakpoints.
  const Items items = {{{1, 10}, {2, 6}, {3, 5}}, {{1, 8}, {2, 5}, {3, 4.5}}};
  const std::vector<std::vector<size_t>> want = {{0, 0}, {1, 0}, {1, 1}, {2, 1}, {2, 2}};
  for (uint64_t budget = 2; budget <= 6; ++budget) {
    EXPECT_EQ(allocate_types(items, budget, AllocationMethod::kLagrangian), want[budget - 2]) << budget;
    EXPECT_EQ(allocate_types(items, budget, AllocationMethod::kExact), want[budget - 2]) << budget;
  }
}

TEST(DynamicAllocate, MonotoneInTheBudget) {
  std::mt19937 rng(13);
  for (int trial = 0; trial < 5; ++trial) {
    const Items items = random_items(rng, 40, 7, 64);
    const auto [lo, hi] = range_of(items);
    double last = INFINITY;
    for (int s = 0; s <= 50; ++s) {
      const uint64_t budget = lo + (hi - lo) * static_cast<uint64_t>(s) / 50;
      const std::vector<size_t> pick = allocate_types(items, budget);
      EXPECT_LE(bytes_of(items, pick), budget);
      const double e = error_of(items, pick);
      EXPECT_LE(e, last) << "budget " << budget;
      last = e;
    }
  }
}

TEST(DynamicAllocate, LargeTablesFallBackToTheLagrangian) {
  // Costs with gcd 1 and a budget of ~10^9 bytes: far beyond kExactCells.
  std::mt19937 rng(14);
  Items items = random_items(rng, 300, 6, 1000003);
  for (auto& item : items)
    for (size_t j = 0; j < item.size(); ++j) item[j].bytes += j;  // break the common factor
  const auto [lo, hi] = range_of(items);
  const uint64_t budget = lo + (hi - lo) / 3;
  const std::vector<size_t> pick = allocate_types(items, budget);
  EXPECT_LE(bytes_of(items, pick), budget);
  EXPECT_GT(bytes_of(items, pick), budget - (hi - lo) / 100);  // the budget is used
  EXPECT_EQ(pick, allocate_types(items, budget, AllocationMethod::kLagrangian));
  EXPECT_THROW(allocate_types(items, budget, AllocationMethod::kExact), Error);  // too large a table
}

TEST(DynamicAllocate, NeverPicksADominatedOptionAndRejectsBadTables) {
  // Option 1 costs more than option 2 and is worse.
  const Items items = {{{10, 5.0}, {30, 4.0}, {20, 3.0}}, {{10, 1.0}}};
  for (uint64_t budget = 20; budget <= 40; ++budget)
    for (auto m : {AllocationMethod::kExact, AllocationMethod::kLagrangian})
      EXPECT_NE(allocate_types(items, budget, m)[0], 1u) << budget;
  EXPECT_EQ(allocate_types(items, 30), (std::vector<size_t>{2, 0}));
  EXPECT_EQ(allocate_types(items, 29), (std::vector<size_t>{0, 0}));
  EXPECT_THROW(allocate_types(items, 19), Error);  // the cheapest choices take 20 bytes
  EXPECT_THROW(allocate_types({{{10, 1.0}}, {}}, 100), Error);
  EXPECT_THROW(allocate_types({{{10, -1.0}}}, 100), Error);
  EXPECT_THROW(allocate_types({{{10, NAN}}}, 100), Error);
  EXPECT_TRUE(allocate_types({}, 0).empty());
}

// Rows of Gaussian values with a few outliers, and log-uniform importance.
struct RandomRows {
  std::vector<float> x, imp;
};

RandomRows random_rows(int64_t n_rows, int64_t ne0, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.f, 1.f);
  std::uniform_real_distribution<double> u(std::log(1e-2), std::log(1e2));
  RandomRows r;
  r.x.resize(static_cast<size_t>(n_rows * ne0));
  for (auto& v : r.x) v = gauss(rng) * (rng() % 64 == 0 ? 5.f : 1.f);
  r.imp.resize(static_cast<size_t>(ne0));
  for (auto& v : r.imp) v = static_cast<float>(std::exp(u(rng)));
  return r;
}

TEST(DynamicSensitivity, ErrorFallsWithTheBitsOfTheType) {
  const RandomRows r = random_rows(64, 512, 5);
  const GgmlType ladder[] = {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                             GgmlType::Q8_0};
  for (const float* imp : {static_cast<const float*>(nullptr), r.imp.data()}) {
    double last = INFINITY;
    for (GgmlType type : ladder) {
      const WeightedError e = weighted_error(type, r.x.data(), 64, 512, imp, nullptr, 2);
      EXPECT_GT(e.signal, 0);
      EXPECT_LT(e.relative(), last) << type_name(type) << (imp ? " weighted" : "");
      last = e.relative();
    }
    EXPECT_LT(last, 1e-4);  // Q8_0
  }
}

TEST(DynamicSensitivity, MatchesADirectComputationAndIgnoresTheThreadCount) {
  const RandomRows r = random_rows(16, 256, 6);
  // Q8_0 has no weighted quantizer: the reference quantizer, error weighted by imp.
  const TypeTraits& tt = traits(GgmlType::Q8_0);
  std::vector<uint8_t> q(row_size(GgmlType::Q8_0, 256));
  std::vector<float> y(256);
  double err = 0, sig = 0;
  for (int64_t row = 0; row < 16; ++row) {
    const float* x = r.x.data() + row * 256;
    tt.from_float(x, q.data(), 256);
    tt.to_float(q.data(), y.data(), 256);
    for (int j = 0; j < 256; ++j) {
      err += r.imp[j] * double(x[j] - y[j]) * (x[j] - y[j]);
      sig += r.imp[j] * double(x[j]) * x[j];
    }
  }
  const WeightedError e = weighted_error(GgmlType::Q8_0, r.x.data(), 16, 256, r.imp.data(), nullptr, 1);
  EXPECT_NEAR(e.error, err, 1e-9 * err);
  EXPECT_NEAR(e.signal, sig, 1e-9 * sig);
  EXPECT_NEAR(e.relative(), err / sig, 1e-9 * err / sig);
  for (GgmlType type : {GgmlType::Q3_K, GgmlType::IQ4_XS}) {
    const WeightedError a = weighted_error(type, r.x.data(), 16, 256, r.imp.data(), nullptr, 1);
    const WeightedError b = weighted_error(type, r.x.data(), 16, 256, r.imp.data(), nullptr, 3);
    EXPECT_EQ(a.error, b.error);
    EXPECT_EQ(a.signal, b.signal);
  }
}

TEST(DynamicSensitivity, EachRowUsesItsMatrixImportance) {
  // Two matrices of importance: all weight on the first half of the columns, or on the second.
  const RandomRows r = random_rows(2, 256, 7);
  std::vector<float> imp(512, 0.f);
  std::fill(imp.begin(), imp.begin() + 128, 1.f);
  std::fill(imp.begin() + 256 + 128, imp.end(), 1.f);
  const int32_t rows_to_matrix[] = {0, 1};
  const WeightedError both = weighted_error(GgmlType::Q8_0, r.x.data(), 2, 256, imp.data(), rows_to_matrix, 1);
  double sig = 0;
  for (int j = 0; j < 128; ++j) sig += double(r.x[j]) * r.x[j];
  for (int j = 128; j < 256; ++j) sig += double(r.x[256 + j]) * r.x[256 + j];
  EXPECT_NEAR(both.signal, sig, 1e-9 * sig);
}

TEST(DynamicSensitivity, RejectsTypesAndRowsItCannotQuantize) {
  const RandomRows r = random_rows(1, 256, 8);
  EXPECT_THROW(weighted_error(GgmlType::Q8_K, r.x.data(), 1, 96, nullptr, nullptr, 1), Error);  // not whole blocks
  EXPECT_THROW(weighted_error(GgmlType::I8, r.x.data(), 1, 256, nullptr, nullptr, 1), Error);   // no quantizer
}

TEST(DynamicLadder, CandidatesFitTheRowsAndRiseInBits) {
  const std::vector<GgmlType> c = dynamic_candidates(256, true);
  for (GgmlType t : {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::IQ4_XS, GgmlType::Q4_K, GgmlType::Q5_K,
                     GgmlType::Q6_K, GgmlType::Q8_0})
    EXPECT_NE(std::find(c.begin(), c.end(), t), c.end()) << type_name(t);
  EXPECT_EQ(std::find(c.begin(), c.end(), GgmlType::IQ4_NL), c.end());  // 32-blocks only for odd rows
  for (size_t i = 1; i < c.size(); ++i) EXPECT_LE(row_size(c[i - 1], 256), row_size(c[i], 256));
  for (GgmlType t : c) EXPECT_NE(traits(t).from_float, nullptr) << type_name(t);
  // Without importance no type that needs it.
  for (GgmlType t : dynamic_candidates(256, false))
    for (const DynamicLadderEntry& e : dynamic_ladder())
      if (e.type == t) {
        EXPECT_FALSE(e.needs_imatrix) << type_name(t);
      }
  // Rows of 96: 32-element blocks only.
  const std::vector<GgmlType> odd = dynamic_candidates(96, true);
  EXPECT_EQ(odd, (std::vector<GgmlType>{GgmlType::IQ4_NL, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0}));
  EXPECT_TRUE(dynamic_candidates(100, true).empty());
}

DynamicTensor made_up_tensor(const std::string& name, int64_t n) {
  DynamicTensor d;
  d.name = name;
  d.n_elements = n;
  d.n_rows = n / 256;
  d.types = {GgmlType::Q4_K, GgmlType::Q8_0};
  d.bytes = {static_cast<uint64_t>(n) * 9 / 16, static_cast<uint64_t>(n) * 17 / 16};
  d.rel_error = {4e-3, 1e-5};
  return d;
}

TEST(DynamicWeights, ParameterShareCountsATiedEmbeddingTwice) {
  DynamicPlan plan;
  plan.tensors = {made_up_tensor("token_embd.weight", 4096 * 256), made_up_tensor("blk.0.attn_q.weight", 256 * 256),
                  made_up_tensor("blk.0.ffn_up.weight", 768 * 256)};
  for (const auto& t : plan.tensors) plan.n_elements += static_cast<uint64_t>(t.n_elements);
  const double n = static_cast<double>(plan.n_elements);
  plan.tied_output = false;
  std::vector<double> w = dynamic_weights(plan, DynamicWeighting::kParameters);
  EXPECT_DOUBLE_EQ(w[0], 4096 * 256 / n);
  EXPECT_DOUBLE_EQ(w[1], 256 * 256 / n);
  EXPECT_DOUBLE_EQ(w[2], 768 * 256 / n);
  plan.tied_output = true;
  w = dynamic_weights(plan, DynamicWeighting::kParameters);
  EXPECT_DOUBLE_EQ(w[0], 2 * 4096 * 256 / n);
  EXPECT_DOUBLE_EQ(w[1], 256 * 256 / n);
  EXPECT_EQ(dynamic_weights(plan, DynamicWeighting::kTensor), (std::vector<double>{1, 1, 1}));
}

TEST(DynamicPlanTest, DemoModelCandidatesRangeAndBudget) {
  const gguf::File in = gguf::File::open(kModel);
  QuantizeParams params;
  DynamicPlan plan = dynamic_candidates(in, params);
  ASSERT_EQ(plan.tensors.size(), 43u);  // 6 layers x 7 matrices + token_embd (tied output)
  EXPECT_TRUE(plan.tied_output);
  EXPECT_EQ(plan.n_elements, 5770496u - 3328u);  // all parameters but the 13 F32 norms
  EXPECT_EQ(plan.tensors[0].name, "token_embd.weight");
  // Without an imatrix the cheapest candidate is Q2_K (2.625 bpw) and the dearest Q8_0 (8.5).
  EXPECT_DOUBLE_EQ(plan.min_bits_per_weight(), 2.625);
  EXPECT_DOUBLE_EQ(plan.max_bits_per_weight(), 8.5);
  EXPECT_THROW(allocate_dynamic(plan, 4.5), Error);  // not measured yet

  measure_sensitivity(in, params, plan, /*max_sample_elements=*/4096);
  for (const DynamicTensor& d : plan.tensors) {
    EXPECT_EQ(d.sampled_rows, std::min<int64_t>(d.n_rows, 4096 / in.find_tensor(d.name)->ne[0])) << d.name;
    ASSERT_EQ(d.rel_error.size(), d.types.size());
    EXPECT_GT(d.rel_error.front(), d.rel_error.back()) << d.name;
  }
  double last = INFINITY;
  for (double bpw : {2.625, 3.5, 4.5, 5.5, 8.5}) {
    allocate_dynamic(plan, bpw);
    EXPECT_LE(plan.bits_per_weight(), bpw);
    EXPECT_GT(plan.bits_per_weight(), bpw - 0.1);  // the demo's tensors are small enough to fill it
    const std::vector<double> w = dynamic_weights(plan, DynamicWeighting::kParameters);
    double e = 0;
    for (size_t t = 0; t < plan.tensors.size(); ++t) e += w[t] * plan.tensors[t].rel_error[plan.tensors[t].chosen];
    EXPECT_LE(e, last) << bpw;
    last = e;
  }
  EXPECT_EQ(plan.file_type(), FileType::Q8_0);  // at 8.5 bpw everything is Q8_0
  try {
    allocate_dynamic(plan, 2.0);
    ADD_FAILURE() << "2 bpw is below the range";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2.625"), std::string::npos) << e.what();
  }
  EXPECT_THROW(allocate_dynamic(plan, 9.0), Error);
  EXPECT_THROW(allocate_dynamic(plan, -1.0), Error);

  // Overrides fix a tensor's type; the budget of a mix is its bytes for the same tensors.
  params.mix.overrides.push_back(TensorTypeOverride::parse("attn_v=Q8_0"));
  const DynamicPlan fixed = dynamic_candidates(in, params);
  int n_fixed = 0;
  for (const DynamicTensor& d : fixed.tensors)
    if (d.name.find("attn_v") != std::string::npos) {
      EXPECT_TRUE(d.fixed);
      EXPECT_EQ(d.types, std::vector<GgmlType>{GgmlType::Q8_0});
      ++n_fixed;
    }
  EXPECT_EQ(n_fixed, 6);
  params.mix.overrides.clear();
  params.mix.ftype = FileType::Q8_0;
  EXPECT_EQ(mix_bytes(in, params, plan), plan.n_elements / 32 * 34);
}

TEST(DynamicPlanTest, RequantizingNeedsTheFlag) {
  const gguf::File q8 = gguf::File::open(std::string(HEARTH_SOURCE_DIR) + "/models/hearth-kjv-Q8_0.gguf");
  QuantizeParams params;
  EXPECT_THROW(dynamic_candidates(q8, params), Error);
  params.allow_requantize = true;
  EXPECT_EQ(dynamic_candidates(q8, params).tensors.size(), 43u);
}

TEST(QuantizeFileTensorTypes, ExactTypesReplaceTheMixAndAreChecked) {
  const std::string out = (std::filesystem::temp_directory_path() / "hearth-dynamic-tensor-types.gguf").string();
  QuantizeParams params;
  params.mix.ftype = FileType::Q4_K_M;
  params.n_threads = 2;
  params.tensor_types = {{"blk.0.attn_q.weight", GgmlType::Q8_0}, {"token_embd.weight", GgmlType::Q2_K}};
  quantize_file(kModel, out, params);
  const gguf::File f = gguf::File::open(out);
  EXPECT_EQ(f.find_tensor("blk.0.attn_q.weight")->type, GgmlType::Q8_0);
  EXPECT_EQ(f.find_tensor("token_embd.weight")->type, GgmlType::Q2_K);
  EXPECT_EQ(f.find_tensor("blk.0.attn_k.weight")->type, GgmlType::Q4_K);  // the mix's
  std::filesystem::remove(out);

  const gguf::File in = gguf::File::open(kModel);
  params.tensor_types = {{"blk.0.no_such.weight", GgmlType::Q8_0}};
  EXPECT_THROW(plan_quantization(in, params), Error);
  params.tensor_types = {{"blk.0.attn_norm.weight", GgmlType::Q8_0}};  // norms are not quantized
  EXPECT_THROW(plan_quantization(in, params), Error);
  params.tensor_types = {{"blk.0.ffn_down.weight", GgmlType::IQ4_NL}};  // 768 = 24 blocks of 32: fine
  EXPECT_EQ(plan_quantization(in, params).size(), in.tensors().size());
}

}  // namespace
}  // namespace hearth::quant
