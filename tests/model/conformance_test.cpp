// Conformance with llama.cpp: hearth's logits for the reference models in
// ../shared/testdata/models must match llama.cpp's within the tolerances of that folder's
// README ("Tolerance guidance"), in batch and sequential mode, and the greedy continuation
// must equal llama.cpp's up to the first step where llama.cpp's own margin is not clear.
//
// Mixture-of-experts models (qwen3moe): as the README's criterion 2 suggests, the strict bounds
// apply to the positions before the first router near-tie, the first position p whose
// `moe_router.min_topk_gap[p]` (the smallest gap, over the MoE layers, between the k-th and the
// (k+1)-th router logit) is below kNearTieGap. There any numeric difference may pick another
// expert, and through attention that changes every later position. Later positions are checked
// loosely (median d16 <= kLooseMedian s, every d16 <= kLooseMax s; a flipped expert moves a
// position by up to ~1 s), and the greedy continuation is only compared without a near-tie.
//
// Hybrid Gated DeltaNet models (qwen35, qwen35moe): the reference rows include positions 63 and
// 64, the last token of the first 64-token DeltaNet chunk and the first of the second. A prompt
// runs the chunked form of the recurrence and a single token its step form, two exact
// reformulations that round differently: there batch and sequential logits are compared with a
// bound (kRecurrentBatchVsSequential) instead of bit for bit.
//
// llama4's s8256 (8256 tokens) crosses the attention chunk boundary at 8192; its reference has
// per-position output from position 8128 on and full rows at 8191, 8192, 8193 and 8255.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>

#include "kernels/cpu.h"
#include "model/model.h"
#include "runtime/context.h"
#include "runtime/eval.h"

namespace {

using nlohmann::json;

const std::string kModels = std::string(HEARTH_TESTDATA_DIR) + "/models/";

struct Case {
  std::string model;  // file stem, e.g. "llama-Q4_K_M"
  std::string seq;    // "s7", "s64", "s150", "s8256"
  size_t seq_from = 0;  // sequential mode starts here, after the batch pass's prefix (0: from scratch)
  bool scalar = true;   // also run on the scalar kernel path (HEARTH_CPU=scalar)
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
  std::string n = info.param.model + "_" + info.param.seq;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

// Tolerances in units of the reference logit_std `s` (README "Suggested acceptance criteria").
struct Tolerance {
  double d16_max;     // every position
  double d16_median;  // over the sequence (< 0: not checked)
  double d16_p99;
  double dlse_max;
  double top1_margin;  // top-1 must agree where llama.cpp's margin is at least this
  double row_max;      // full rows: max |diff| (< 0: not checked)
  double row_rms;
};

constexpr Tolerance kF16{0.10, 0.01, 0.05, 0.02, 0.05, 0.10, 0.01};
// Quantized files, engine quantizing activations like llama.cpp's CPU backend (Q8_K/Q8_0):
// the bounds for llama.cpp's own kernel-to-kernel noise (d16 <= 0.15 s everywhere, top-1
// identical where the margin is >= 0.1 s), except p99. The README suggests p99 <= 0.08 s, but
// llama.cpp fails that against itself on these files: its batch vs sequential passes reach
// p99 0.084 s (llama-Q4_K_M.s64, qwen3-Q4_K_M.s64). The differences are 8-bit activation
// codes that flip when a value sits within float rounding of a rounding boundary, and any two
// implementations that are not bit-identical flip different codes. Ours, measured against
// llama.cpp's batch pass, reaches p99 0.11 s with the row-by-row dot products (HEARTH_CPU=avx2,
// scalar) and 0.138 s with the AVX-512 tiled matmul (llama-Q5_K_M.s150; every other file
// <= 0.112 s), whose per-run float sums round differently again. The bound is 0.14 s; every
// position stays within llama.cpp's own 0.15 s.
constexpr Tolerance kQuant{0.15, -1.0, 0.14, 0.05, 0.10, -1.0, -1.0};

// Largest |batch − sequential| logit difference over whole rows of a recurrent model, units of s
// (the bounds of batch_split_test.cpp; measured: F16 files up to 0.008 s, quantized ones up to
// 0.19 s where a rounding difference moves an activation across a Q8_K/Q8_0 rounding boundary, as
// between llama.cpp's own batch and sequential passes, README "Tolerance guidance").
constexpr double kRecurrentBatchVsSequential[2] = {0.02, 0.25};  // {F16, quantized}

// Router near-ties (README criterion 2; router-logit units, the router logits have std ~1.5).
constexpr double kNearTieGap = 0.01;
constexpr double kLooseMedian = 0.05;  // after the first near-tie, units of s
constexpr double kLooseMax = 1.5;

// First position with per-position reference output (8128 for llama4's s8256, else 0).
size_t out_from(const json& ref) { return ref.value("out_from", size_t{0}); }

// Positions before the first router near-tie (all of them for dense models). Per-position
// arrays start at out_from(ref); near-ties before it are not recorded.
size_t strict_prefix(const json& ref) {
  const size_t n = ref["n_tokens"];
  if (!ref.contains("moe_router")) return n;
  const json& gap = ref["moe_router"]["min_topk_gap"];
  for (size_t i = 0; i < gap.size(); ++i)
    if (gap[i].get<double>() < kNearTieGap) return out_from(ref) + i;
  return n;
}

const json& reference(const std::string& model, const std::string& seq) {
  static std::map<std::string, json> cache;
  const std::string key = model + "." + seq;
  auto it = cache.find(key);
  if (it == cache.end()) {
    std::ifstream in(kModels + "refs/" + key + ".json");
    if (!in) throw std::runtime_error("missing reference " + key);
    it = cache.emplace(key, json::parse(in)).first;
  }
  return it->second;
}

std::shared_ptr<const hearth::model::Model> load(const std::string& model) {
  static std::map<std::string, std::shared_ptr<const hearth::model::Model>> cache;
  auto& m = cache[model];
  if (!m) m = hearth::model::Model::load(kModels + model + ".gguf");
  return m;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

double log_sum_exp(const float* row, size_t n) {
  const double mx = *std::max_element(row, row + n);
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(row[i]) - mx);
  return mx + std::log(s);
}

// Checks one evaluation (batch or sequential) against the reference batch pass: `logits` holds
// the rows of positions out_from(ref) .. n_tokens-1.
void check_logits(const json& ref, const std::vector<float>& logits, const Tolerance& tol, const std::string& mode) {
  const size_t n_vocab = ref["n_vocab"];
  const size_t n = ref["n_tokens"];
  const size_t from = out_from(ref);
  const double s = ref["logit_std"];
  const json& batch = ref["batch"];
  const size_t strict = strict_prefix(ref);
  ASSERT_EQ(logits.size(), (n - from) * n_vocab) << mode;
  // Another expert at a near-tie moves that position (and, through attention, later ones) by
  // ~0.1-1 s. Before the first position after the near-tie whose d16 exceeds the strict bound,
  // the engine evidently chose llama.cpp's experts: the full rows there get the strict bounds.
  size_t same_experts = n;
  std::vector<double> d16s, loose;
  for (size_t p = from; p < n; ++p) {
    const float* row = logits.data() + (p - from) * n_vocab;
    for (size_t i = 0; i < n_vocab; ++i) ASSERT_TRUE(std::isfinite(row[i])) << mode << " pos " << p;
    double d16 = 0;
    const json& ids = batch["top_ids"][p - from];
    const json& tl = batch["top_logits"][p - from];
    for (size_t k = 0; k < ids.size(); ++k)
      d16 = std::max(d16, std::abs(static_cast<double>(row[ids[k].get<int>()]) - tl[k].get<double>()));
    if (p >= strict) {  // after a router near-tie: loose checks only
      loose.push_back(d16 / s);
      if (d16 / s > tol.d16_max) same_experts = std::min(same_experts, p);
      EXPECT_LE(d16 / s, kLooseMax) << mode << ": d16 at position " << p << " (after a router near-tie)";
      continue;
    }
    d16s.push_back(d16 / s);
    EXPECT_LE(d16 / s, tol.d16_max) << mode << ": d16 at position " << p;
    const double dlse = std::abs(log_sum_exp(row, n_vocab) - batch["lse"][p - from].get<double>());
    EXPECT_LE(dlse / s, tol.dlse_max) << mode << ": dlse at position " << p;
    const double margin = tl[0].get<double>() - tl[1].get<double>();
    if (margin >= tol.top1_margin * s) {
      const int top1 = static_cast<int>(std::max_element(row, row + n_vocab) - row);
      EXPECT_EQ(top1, ids[0].get<int>()) << mode << ": top-1 at position " << p << " (margin " << margin / s << " s)";
    }
  }
  std::printf("[ stats    ] %-20s %-5s %-10s d16/s median %.4f p99 %.4f max %.4f",
              ref["model_file"].get<std::string>().c_str(), ref["sequence"].get<std::string>().c_str(), mode.c_str(),
              quantile(d16s, 0.5), quantile(d16s, 0.99), quantile(d16s, 1.0));
  if (!loose.empty())
    std::printf(" (positions %zu-%zu; after the near-tie median %.4f max %.4f, same experts up to %zu)", from,
                strict - 1, quantile(loose, 0.5), quantile(loose, 1.0), same_experts - 1);
  std::printf("\n");
  if (!loose.empty()) {
    EXPECT_LE(quantile(loose, 0.5), kLooseMedian) << mode << ": median d16 after the first router near-tie";
  }
  if (d16s.empty()) return;
  if (tol.d16_median >= 0) {
    EXPECT_LE(quantile(d16s, 0.5), tol.d16_median) << mode << ": median d16";
  }
  EXPECT_LE(quantile(d16s, 0.99), tol.d16_p99) << mode << ": p99 d16";
  if (tol.row_max >= 0) {
    const json& fr = ref["full_rows"];
    for (size_t r = 0; r < fr["positions"].size(); ++r) {
      const size_t p = fr["positions"][r];
      if (p >= same_experts || p < from) continue;
      const json& want = fr["logits"][r];
      double mx = 0, sq = 0;
      for (size_t i = 0; i < n_vocab; ++i) {
        const double d = std::abs(static_cast<double>(logits[(p - from) * n_vocab + i]) - want[i].get<double>());
        mx = std::max(mx, d);
        sq += d * d;
      }
      EXPECT_LE(mx / s, tol.row_max) << mode << ": full row " << p << " max diff";
      EXPECT_LE(std::sqrt(sq / static_cast<double>(n_vocab)) / s, tol.row_rms) << mode << ": full row " << p << " RMS";
    }
  }
}

// Logits of positions `from` .. n-1 of `tokens` ([n - from][n_vocab]): evaluates the tokens
// from position `start` on (those before it are already in ctx's cache), in micro-batches of
// n_ubatch tokens or, with `sequential`, one token per decode() call. start <= from.
std::vector<float> evaluate_rows(hearth::runtime::Context& ctx, const std::vector<int32_t>& tokens, bool sequential,
                                 size_t from, size_t start = 0) {
  const size_t n_vocab = ctx.model().hparams().n_vocab;
  std::vector<float> out((tokens.size() - from) * n_vocab);
  hearth::runtime::evaluate(
      ctx, std::span<const int32_t>(tokens).subspan(start), sequential,
      [&](size_t i, std::span<const float> row) {
        if (start + i >= from) std::copy(row.begin(), row.end(), out.begin() + (start + i - from) * n_vocab);
      },
      0, static_cast<int32_t>(start));
  return out;
}

class Conformance : public testing::TestWithParam<Case> {};

TEST_P(Conformance, LogitsAndGreedyMatchLlamaCpp) {
  const Case& c = GetParam();
  if (!c.scalar && hearth::kernels::active_cpu_path() == hearth::kernels::CpuPath::scalar)
    GTEST_SKIP() << c.model << " " << c.seq << " is too slow for the scalar kernels";
  const json& ref = reference(c.model, c.seq);
  const auto model = load(c.model);
  const std::vector<int32_t> tokens = ref["tokens"].get<std::vector<int32_t>>();
  const bool f16 = c.model.find("-F16") != std::string::npos;
  const Tolerance& tol = f16 ? kF16 : kQuant;
  const int n_greedy = static_cast<int>(ref["greedy"]["tokens"].size());

  const size_t from = out_from(ref);
  // Micro-batches of 512 tokens, as llama.cpp's reference (settings.n_ubatch: 512 for s8256, the
  // whole sequence for the others, which are shorter).
  hearth::runtime::ContextParams cp;
  cp.n_ctx = static_cast<uint32_t>(tokens.size() + n_greedy);
  cp.n_threads = 2;
  cp.n_ubatch = 512;
  ASSERT_LE(ref["settings"]["n_ubatch"].get<size_t>(), std::max<size_t>(cp.n_ubatch, tokens.size()));
  std::vector<float> batch_logits;
  hearth::runtime::Context ctx(model, cp);
  {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<float> logits = evaluate_rows(ctx, tokens, /*sequential=*/false, from);
    std::printf("[ time     ] batch %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    check_logits(ref, logits, tol, "batch");
    batch_logits = logits;

    // Greedy: identical tokens up to the first step where llama.cpp's margin is not clear.
    const size_t n_vocab = ref["n_vocab"];
    const std::span<const float> last(logits.data() + (tokens.size() - 1 - from) * n_vocab, n_vocab);
    const std::vector<int32_t> got =
        hearth::runtime::greedy(ctx, last, static_cast<int32_t>(tokens.size()), n_greedy);
    const json& g = ref["greedy"];
    const double s = ref["logit_std"];
    // After a router near-tie in the prompt the KV cache may hold other values than llama.cpp's.
    const int n_check = strict_prefix(ref) == tokens.size() ? n_greedy : 0;
    for (int k = 0; k < n_check; ++k) {
      if (g["margin"][k].get<double>() < tol.top1_margin * s) break;
      ASSERT_EQ(got[k], g["tokens"][k].get<int32_t>()) << "greedy step " << k;
    }
  }
  {
    // Sequential: from an empty cache or, for long sequences, one token at a time from seq_from
    // on, after the batch pass's prefix (its later positions removed from the cache).
    std::optional<hearth::runtime::Context> fresh;
    if (c.seq_from == 0) {
      fresh.emplace(model, cp);
    } else {
      ctx.kv_cache().seq_rm(0, static_cast<int32_t>(c.seq_from), -1);
    }
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<float> logits =
        evaluate_rows(fresh ? *fresh : ctx, tokens, /*sequential=*/true, from, c.seq_from);
    std::printf("[ time     ] sequential %.1f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    check_logits(ref, logits, tol, "sequential");
    ASSERT_EQ(logits.size(), batch_logits.size());
    if (ctx.kv_cache().recurrent()) {
      // Chunked vs step form of the recurrence (see the top of this file).
      const double s = ref["logit_std"];
      const size_t n_vocab = ref["n_vocab"];
      const size_t strict = strict_prefix(ref);
      double max_diff = 0;
      for (size_t i = 0; i < strict * n_vocab; ++i)
        max_diff = std::max(max_diff, std::abs(static_cast<double>(logits[i]) - batch_logits[i]));
      std::printf("[ stats    ] batch vs sequential: max |diff|/s %.4f (first %zu positions)\n", max_diff / s, strict);
      EXPECT_LE(max_diff / s, kRecurrentBatchVsSequential[f16 ? 0 : 1]) << "sequential and batch logits";
    } else {
      // hearth computes each row the same way whatever the batch size: bit-identical.
      size_t n_diff = 0;
      for (size_t i = 0; i < logits.size(); ++i) n_diff += logits[i] != batch_logits[i];
      EXPECT_EQ(n_diff, 0u) << "sequential and batch logits differ";
    }
  }
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (const char* arch : {"llama", "qwen3", "qwen3moe", "qwen35"})
    for (const char* type : {"F16", "Q8_0", "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_XS"})
      for (const char* seq : {"s7", "s64", "s150"}) out.push_back({std::string(arch) + "-" + type, seq});
  for (const char* seq : {"s7", "s64", "s150"}) out.push_back({"qwen35moe-F16", seq});
  for (const char* seq : {"s7", "s64", "s150"}) out.push_back({"llama4-F16", seq});
  // 8256 tokens across Llama 4's attention chunk boundary (8192): the batch pass in micro-batches
  // of 512 and the last 128 positions one token at a time. About 15 s with AVX-512 and 20-40 s
  // with AVX2 on 2 threads, but 55-100 s with the scalar kernels: skipped there.
  out.push_back({"llama4-F16", "s8256", 8128, false});
  // Gemma: only F16 files; the sliding window (16) makes s64 and s150 cross it (full rows at
  // W-1 and W included).
  for (const char* model : {"gemma3-F16", "gemma4-F16", "gemma4moe-F16"})
    for (const char* seq : {"s7", "s64", "s150"}) out.push_back({model, seq});
  return out;
}

INSTANTIATE_TEST_SUITE_P(LlamaCppReference, Conformance, testing::ValuesIn(all_cases()), case_name);

}  // namespace
