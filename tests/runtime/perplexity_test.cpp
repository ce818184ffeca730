// runtime::perplexity against an independent computation from the logits of evaluate().
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "model/model.h"
#include "runtime/eval.h"

namespace hearth::runtime {
namespace {

TEST(Perplexity, ScoresTheSecondHalfOfEachWindowWithBosFirst) {
  const auto m = model::Model::load(std::string(HEARTH_TESTDATA_DIR) + "/models/qwen3-Q8_0.gguf");
  std::vector<int32_t> tokens;
  for (int i = 0; i < 70; ++i) tokens.push_back(3 + (i * 37) % 4000);
  const int n_ctx = 16, bos = 1;
  ContextParams cp;
  cp.n_ctx = 32;
  Context ctx(m, cp);
  const PerplexityResult r = perplexity(ctx, tokens, n_ctx, bos);
  EXPECT_EQ(r.n_chunks, 4);            // 70 tokens: 4 whole windows of 16
  EXPECT_EQ(r.n_scored, 4 * (16 - 1 - 8));
  // By hand: each window from an empty cache with BOS first; positions 8..14 predict 9..15.
  double nll = 0;
  for (int c = 0; c < 4; ++c) {
    std::vector<int32_t> w(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    w[0] = bos;
    Context fresh(m, cp);
    const std::vector<float> logits = evaluate(fresh, w, false);
    const size_t V = m->hparams().n_vocab;
    for (int p = 8; p < 15; ++p) {
      double z = 0;
      for (size_t i = 0; i < V; ++i) z += std::exp(static_cast<double>(logits[p * V + i]));
      nll += std::log(z) - logits[p * V + static_cast<size_t>(w[p + 1])];
    }
  }
  EXPECT_NEAR(r.ppl, std::exp(nll / 28.0), 1e-6 * r.ppl);
  EXPECT_GT(r.ppl_error, 0.0);
  EXPECT_EQ(ctx.kv_cache().n_used(), 0u);  // the cache is left empty
  // At most max_chunks windows; errors for too little text or too small a context.
  EXPECT_EQ(perplexity(ctx, tokens, n_ctx, bos, 2).n_chunks, 2);
  EXPECT_THROW(perplexity(ctx, std::vector<int32_t>(tokens.begin(), tokens.begin() + 31), n_ctx, bos), Error);
  EXPECT_THROW(perplexity(ctx, tokens, 33, bos), Error);
}

TEST(KlDivergence, IsZeroForTheSameModelAndMatchesAHandComputation) {
  const std::string dir = std::string(HEARTH_TESTDATA_DIR) + "/models/";
  const auto f16 = model::Model::load(dir + "qwen3-F16.gguf");
  const auto q8 = model::Model::load(dir + "qwen3-Q8_0.gguf");
  std::vector<int32_t> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back(3 + (i * 53) % 4000);
  const int n_ctx = 16, bos = 1;
  ContextParams cp;
  cp.n_ctx = 16;
  Context a(f16, cp), b(f16, cp), q(q8, cp);
  const KlDivergenceResult same = kl_divergence(a, b, tokens, n_ctx, bos);
  EXPECT_EQ(same.n_chunks, 2);
  EXPECT_EQ(same.n_scored, 2 * 7);
  EXPECT_LT(std::abs(same.kld_mean), 1e-6);
  EXPECT_EQ(same.top1_agree, 1.0);
  EXPECT_DOUBLE_EQ(same.ppl, same.ppl_ref);

  const KlDivergenceResult r = kl_divergence(a, q, tokens, n_ctx, bos);
  EXPECT_NEAR(r.ppl, perplexity(q, tokens, n_ctx, bos).ppl, 1e-9 * r.ppl);
  EXPECT_NEAR(r.ppl_ref, perplexity(a, tokens, n_ctx, bos).ppl, 1e-9 * r.ppl_ref);
  // By hand on the first window's first scored position (8).
  std::vector<int32_t> w(tokens.begin(), tokens.begin() + n_ctx);
  w[0] = bos;
  Context fa(f16, cp), fq(q8, cp);
  const std::vector<float> la = evaluate(fa, w, false), lq = evaluate(fq, w, false);
  const size_t V = f16->hparams().n_vocab;
  auto log_softmax = [V](const float* row, size_t v) {
    double z = 0;
    for (size_t i = 0; i < V; ++i) z += std::exp(static_cast<double>(row[i]));
    return row[v] - std::log(z);
  };
  double d = 0;
  for (size_t v = 0; v < V; ++v) {
    const double pa = log_softmax(&la[8 * V], v);
    d += std::exp(pa) * (pa - log_softmax(&lq[8 * V], v));
  }
  EXPECT_GT(d, 0.0);
  EXPECT_GE(r.kld_max, d * (1 - 1e-4));
  EXPECT_GT(r.kld_mean, 0.0);
  EXPECT_LT(r.kld_mean, 0.05);  // Q8_0 of a random model stays close to F16
  EXPECT_GE(r.top1_agree, 0.5);
}

}  // namespace
}  // namespace hearth::runtime
