// End to end: a random-weight model (tiny-llama, 512-token byte-level BPE vocabulary) sampled at
// temperature 1 under a JSON-schema grammar. Every output must end by the grammar completing
// (an end-of-generation token, allowed only then) within the length cap, parse as JSON and
// validate against the schema.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <set>

#include "model/model.h"
#include "model/synth.h"
#include "runtime/context.h"
#include "sample/grammar.h"
#include "sample/json_schema.h"
#include "sample/sampler.h"
#include "schema_validator.h"

namespace hearth::sample {
namespace {

using ojson = nlohmann::ordered_json;

std::shared_ptr<const model::Model> tiny_llama() {
  const std::string path = (std::filesystem::temp_directory_path() / "hearth-test-grammar-tiny-llama.gguf").string();
  model::SynthOptions opt;
  opt.seed = 5;
  opt.n_threads = 2;
  model::synthesize(model::find_synth_shape("tiny-llama"), opt, path);
  return model::Model::load(path);
}

TEST(GrammarGenerate, SampledOutputsOfARandomModelFollowTheSchema) {
  const ojson schema = ojson::parse(R"({
    "type": "object",
    "properties": {
      "name": {"type": "string", "maxLength": 8},
      "kind": {"enum": ["cat", "dog", "bird"]},
      "age": {"type": "integer", "minimum": 0, "maximum": 30},
      "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
      "owner": {
        "type": "object",
        "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 999}, "vip": {"type": "boolean"}},
        "required": ["id"],
        "additionalProperties": false
      },
      "weight": {"type": ["number", "null"], "minimum": 0, "maximum": 100}
    },
    "required": ["name", "kind", "owner"],
    "additionalProperties": false
  })");
  const auto model = tiny_llama();
  const tokenizer::Tokenizer& tok = model->tokenizer();
  const auto vocab = GrammarVocab::from_tokenizer(tok);
  const auto grammar = Grammar::parse(json_schema_to_grammar(schema), vocab.get());

  runtime::ContextParams cp;
  cp.n_ctx = 512;
  cp.n_threads = 1;  // a tiny model: one thread is fastest on a busy machine
  runtime::Context ctx(model, cp);
  const std::vector<int32_t> prompt = tok.encode("Answer in JSON:", true, false);
  runtime::Batch batch;
  for (size_t i = 0; i < prompt.size(); ++i) batch.add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
  ctx.decode(batch);
  const std::span<const float> last = ctx.logits(prompt.size() - 1);
  const std::vector<float> prompt_logits(last.begin(), last.end());
  const auto n_prompt = static_cast<int32_t>(prompt.size());

  // A random model spends most tokens on the whitespace the grammar allows (about 110 on average).
  constexpr int kRuns = 200, kMaxTokens = 256;
  std::set<std::string> distinct;
  int max_tokens = 0, total_tokens = 0;
  for (int run = 0; run < kRuns; ++run) {
    ctx.kv_cache().seq_rm(0, n_prompt, -1);
    SamplerParams sp;
    sp.temp = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.seed = 1000 + static_cast<uint64_t>(run);
    Sampler sampler(sp);
    sampler.set_grammar(grammar, vocab);
    std::vector<float> logits = prompt_logits;
    std::string text;
    bool ended = false;
    for (int n = 0; n < kMaxTokens; ++n) {
      const int32_t t = sampler.sample(logits);
      if (tok.is_eog(t)) {
        EXPECT_TRUE(sampler.grammar()->is_complete());
        ended = true;
        max_tokens = std::max(max_tokens, n);
        total_tokens += n;
        break;
      }
      text += tok.token_to_piece(t, false);
      batch.clear();
      batch.add(t, n_prompt + n, 0, true);
      ctx.decode(batch);
      const std::span<const float> row = ctx.logits(0);
      logits.assign(row.begin(), row.end());
    }
    ASSERT_TRUE(ended) << "run " << run << " did not finish in " << kMaxTokens << " tokens: " << text;
    ojson doc;
    ASSERT_NO_THROW(doc = ojson::parse(text)) << "run " << run << ": " << text;
    ASSERT_TRUE(test::validate(doc, schema)) << "run " << run << ": " << text;
    distinct.insert(text);
  }
  EXPECT_GE(distinct.size(), 190u);  // different seeds give different documents
  std::printf("grammar-constrained generation: %d runs, %.1f tokens on average, longest %d, e.g. %s\n", kRuns,
              static_cast<double>(total_tokens) / kRuns, max_tokens, distinct.begin()->c_str());
}

}  // namespace
}  // namespace hearth::sample
