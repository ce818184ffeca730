// The public header compiles on its own and its example works as written.
#include "hearth/hearth.h"

#include <gtest/gtest.h>

TEST(PublicApi, TheHeaderExampleGeneratesText) {
  auto model = hearth::Model::load(std::string(HEARTH_TESTDATA_DIR) + "/models/qwen3-Q8_0.gguf");
  std::vector<int32_t> prompt = model->tokenizer().encode("Hello", true, false);
  ASSERT_FALSE(prompt.empty());
  hearth::Context ctx(model, {.n_ctx = 64});
  hearth::Batch batch;
  for (size_t i = 0; i < prompt.size(); ++i)
    batch.add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
  ctx.decode(batch);
  hearth::Sampler sampler({.temp = 0.8f, .seed = 42});
  const int32_t next = sampler.sample(ctx.logits(prompt.size() - 1));
  EXPECT_GE(next, 0);
  EXPECT_LT(next, model->tokenizer().n_vocab());
  hearth::StreamDecoder text(model->tokenizer());
  EXPECT_NO_THROW(text.push(next));
  EXPECT_THROW(hearth::Model::load("/no/such/file.gguf"), hearth::Error);
}
