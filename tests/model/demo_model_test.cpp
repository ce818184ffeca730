// hearth's demo model (models/hearth-kjv-*.gguf, trained by tools/kjv/train.py): hearth
// reproduces the training script's held-out perplexity and greedy continuation, and the
// embedded default model is the committed Q8_0 file.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "model/embedded.h"
#include "model/model.h"
#include "runtime/eval.h"

namespace hearth::model {
namespace {

const std::string kDir = std::string(HEARTH_SOURCE_DIR) + "/models/";

nlohmann::json fixture() {
  std::ifstream in(kDir + "hearth-kjv.fixture.json");
  return nlohmann::json::parse(in);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

double heldout_ci_perplexity(const std::string& file) {
  const auto model = Model::load(kDir + file);
  const auto tokens = model->tokenizer().encode(slurp(kDir + "kjv-heldout-ci.txt"), true, false);
  const int n_ctx = fixture()["n_ctx"];
  runtime::ContextParams cp;
  cp.n_ctx = static_cast<uint32_t>(n_ctx);
  cp.n_threads = 2;
  runtime::Context ctx(model, cp);
  const runtime::PerplexityResult r = runtime::perplexity(ctx, tokens, n_ctx, model->tokenizer().bos());
  EXPECT_EQ(r.n_chunks, fixture()["heldout_ci"]["n_chunks"].get<int>());
  return r.ppl;
}

TEST(DemoModel, HeldOutPerplexityMatchesTheTrainingScript) {
  const double want = fixture()["heldout_ci"]["ppl_f16_weights"];
  const double f16 = heldout_ci_perplexity("hearth-kjv-F16.gguf");
  EXPECT_NEAR(f16, want, 0.01 * want) << "F16 vs the training script's figure";
  const double q8 = heldout_ci_perplexity("hearth-kjv-Q8_0.gguf");
  EXPECT_NEAR(q8, f16, 0.02 * f16) << "Q8_0 vs F16";
  // Trained: far below the unigram baseline of the same text.
  EXPECT_LT(f16, 0.5 * fixture()["heldout"]["ppl_unigram"].get<double>());
}

TEST(DemoModel, GreedyContinuationMatchesPyTorch) {
  const nlohmann::json g = fixture()["greedy"];
  const auto model = Model::load(kDir + "hearth-kjv-F16.gguf");
  const std::vector<int32_t> prompt = model->tokenizer().encode(g["prompt"].get<std::string>(), true, false);
  ASSERT_EQ(prompt, g["prompt_ids"].get<std::vector<int32_t>>());  // hearth tokenized it for training
  runtime::ContextParams cp;
  cp.n_ctx = 64;
  runtime::Context ctx(model, cp);
  const std::vector<float> logits = runtime::evaluate(ctx, prompt, false);
  const size_t n_vocab = model->hparams().n_vocab;
  const std::span<const float> last(logits.data() + (prompt.size() - 1) * n_vocab, n_vocab);
  const std::vector<int32_t> got =
      runtime::greedy(ctx, last, static_cast<int32_t>(prompt.size()), static_cast<int>(g["ids"].size()));
  EXPECT_EQ(got, g["ids"].get<std::vector<int32_t>>());
}

TEST(DemoModel, EmbeddedDefaultIsTheCommittedQ8_0File) {
  const std::string file = slurp(kDir + "hearth-kjv-Q8_0.gguf");
  const std::span<const uint8_t> embedded = embedded_default_model();
  ASSERT_EQ(embedded.size(), file.size());
  EXPECT_EQ(std::memcmp(embedded.data(), file.data(), file.size()), 0);
  const auto m = Model::load_default();
  EXPECT_EQ(m->hparams().arch, "llama");
  EXPECT_EQ(m->file().path(), "<embedded hearth-kjv-Q8_0.gguf>");
  EXPECT_EQ(m->file().require<std::string>("general.name"), "hearth-kjv");
  EXPECT_EQ(m->file().require<std::string>("general.license"), "CC0-1.0");
  EXPECT_TRUE(m->file().find("tokenizer.chat_template") != nullptr);
  EXPECT_EQ(m->tokenizer().n_vocab(), 4096);
}

}  // namespace
}  // namespace hearth::model
