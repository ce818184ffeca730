// Embeddings: Context's embeddings mode (the final hidden state after the output norm) and
// Engine::embed (its mean over the tokens, L2-normalised).
#include <gtest/gtest.h>

#include <cmath>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "kernels/matmul.h"
#include "model/weights.h"
#include "runtime/context.h"
#include "server/engine.h"

namespace hearth::server {
namespace {

const std::string kModels = std::string(HEARTH_TESTDATA_DIR) + "/models/";

std::shared_ptr<const model::Model> load(const std::string& name) {
  static std::map<std::string, std::shared_ptr<const model::Model>> cache;
  auto& m = cache[name];
  if (!m) m = name == "default" ? model::Model::load_default() : model::Model::load(kModels + name);
  return m;
}

std::vector<int32_t> random_tokens(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(3, 4095);
  std::vector<int32_t> p(n);
  for (auto& t : p) t = dist(rng);
  return p;
}

class Embeddings : public testing::TestWithParam<std::string> {};

// The embeddings are what the output head multiplies: W_out · e_t, computed here from the
// dequantized output matrix, equals the logits a normal decode gives for the same tokens.
TEST_P(Embeddings, OutputHeadOfTheEmbeddingsGivesTheLogits) {
  const auto m = load(GetParam());
  const auto& hp = m->hparams();
  runtime::ContextParams cp;
  cp.n_ctx = 64;
  cp.n_threads = 2;
  const auto tokens = random_tokens(11, 5);
  runtime::Batch b;
  for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], static_cast<int32_t>(i), 0, i % 3 != 1);

  runtime::Context lctx(m, cp);
  lctx.decode(b);
  runtime::Context ectx(m, cp);
  ectx.set_embeddings(true);
  ectx.decode(b);
  EXPECT_THROW(ectx.logits(0), Error);
  EXPECT_THROW(lctx.embeddings(0), Error);
  EXPECT_THROW(ectx.embeddings(1), Error);  // did not ask for output

  model::Weights w(m->file());
  auto out = w.matrix_opt("output.weight", hp.n_embd, hp.n_vocab);
  const kernels::MatrixView head = out ? *out : w.embedding("token_embd.weight", hp.n_embd, hp.n_vocab);
  std::vector<float> row(hp.n_embd);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!b.want_logits[i]) continue;
    const auto e = ectx.embeddings(i);
    const auto logits = lctx.logits(i);
    ASSERT_EQ(e.size(), hp.n_embd);
    // RMS-normed with weights ~1: the mean square is of order 1, not 0 and not huge.
    double ms = 0;
    for (float v : e) ms += static_cast<double>(v) * v;
    ms /= static_cast<double>(e.size());
    EXPECT_GT(ms, 0.05);
    EXPECT_LT(ms, 50.0);
    double max_err = 0, max_abs = 0;
    for (uint32_t v = 0; v < hp.n_vocab; ++v) {
      kernels::get_row(head, v, row.data());
      double dot = 0;
      for (uint32_t j = 0; j < hp.n_embd; ++j) dot += static_cast<double>(row[j]) * e[j];
      max_err = std::max(max_err, std::abs(dot - logits[v]));
      max_abs = std::max(max_abs, std::abs(dot));
    }
    // The head rounds its input to the weight type's dot partner (Q8_0 / F16): a few per mille.
    EXPECT_LT(max_err, 0.01 * max_abs + 1e-3) << "token " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, Embeddings, testing::Values("default", "qwen3-F16.gguf", "qwen35-Q8_0.gguf"),
                         [](const testing::TestParamInfo<std::string>& i) {
                           std::string s = i.param.substr(0, i.param.find('.'));
                           for (char& ch : s)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

std::vector<float> reference_embedding(const std::shared_ptr<const model::Model>& m, const std::vector<int32_t>& t) {
  runtime::ContextParams cp;
  cp.n_ctx = static_cast<uint32_t>(t.size());
  cp.n_threads = 2;
  runtime::Context ctx(m, cp);
  ctx.set_embeddings(true);
  runtime::Batch b;
  for (size_t i = 0; i < t.size(); ++i) b.add(t[i], static_cast<int32_t>(i), 0, true);
  ctx.decode(b);
  std::vector<double> mean(m->hparams().n_embd, 0.0);
  for (size_t i = 0; i < t.size(); ++i)
    for (size_t j = 0; j < mean.size(); ++j) mean[j] += ctx.embeddings(i)[j] / static_cast<double>(t.size());
  double n2 = 0;
  for (double v : mean) n2 += v * v;
  std::vector<float> out(mean.size());
  for (size_t j = 0; j < mean.size(); ++j) out[j] = static_cast<float>(mean[j] / std::sqrt(n2));
  return out;
}

TEST(EngineEmbed, MeanPooledNormalisedAndIndependentOfLoad) {
  for (const std::string name : {"default", "gemma3-F16.gguf", "qwen35-Q8_0.gguf"}) {
    SCOPED_TRACE(name);
    const auto m = load(name);
    EngineParams p;
    p.n_parallel = 3;
    p.n_ctx = 128;
    p.n_threads = 2;
    Engine engine(m, p);
    const auto text = random_tokens(40, 9);
    const std::vector<float> alone = engine.embed(text);
    ASSERT_EQ(alone.size(), m->hparams().n_embd);
    double n2 = 0;
    for (float v : alone) n2 += static_cast<double>(v) * v;
    EXPECT_NEAR(n2, 1.0, 1e-5);
    const std::vector<float> want = reference_embedding(m, text);
    for (size_t j = 0; j < want.size(); ++j) ASSERT_NEAR(alone[j], want[j], 1e-5) << j;
    // A different text gives a different vector.
    const std::vector<float> other = engine.embed(random_tokens(40, 10));
    double cos = 0;
    for (size_t j = 0; j < other.size(); ++j) cos += static_cast<double>(other[j]) * alone[j];
    EXPECT_LT(cos, 0.9999);

    // While three requests generate (and others wait), the same text gives the same vector.
    std::atomic<int> done{0};
    std::vector<std::shared_ptr<RequestHandle>> handles;
    for (uint32_t i = 0; i < 5; ++i) {
      GenerationRequest r;
      r.prompt = random_tokens(20 + i, 20 + i);
      r.sampling.temp = 0;
      r.max_tokens = 60;
      r.ignore_eos = true;
      r.on_token = [](const TokenEvent&) { return Next::Continue; };
      r.on_done = [&done](const Completion&) { ++done; };
      handles.push_back(engine.submit(std::move(r)));
    }
    for (int i = 0; i < 3; ++i) {
      const std::vector<float> busy = engine.embed(text);
      EXPECT_EQ(busy, alone);
    }
    engine.shutdown(false);
    EXPECT_EQ(done.load(), 5);
  }
}

// Embedding texts as long as n_ctx while every cell of the pool is in use by slot caches: the
// caches of free slots are dropped to make room.
TEST(EngineEmbed, MakesRoomInAFullCache) {
  const auto m = load("default");
  EngineParams p;
  p.n_parallel = 2;
  p.n_ctx = 48;
  p.n_threads = 2;
  Engine engine(m, p);
  for (uint32_t i = 0; i < 2; ++i) {
    GenerationRequest r;
    r.prompt = random_tokens(40, 50 + i);
    r.sampling.temp = 0;
    r.ignore_eos = true;
    auto h = engine.submit(std::move(r));
    while (!h->done()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(engine.stats().kv_cells_used, 2u * 40);
  const auto text = random_tokens(48, 60);
  const std::vector<float> got = engine.embed(text), want = reference_embedding(m, text);
  ASSERT_EQ(got.size(), want.size());
  for (size_t j = 0; j < want.size(); ++j) ASSERT_NEAR(got[j], want[j], 1e-5) << j;
  EXPECT_EQ(engine.stats().kv_cells_total, 96u);
}

}  // namespace
}  // namespace hearth::server
