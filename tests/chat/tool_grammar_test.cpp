// Tool-call grammars (chat/tool_grammar.h): a random-weight model (tiny-llama, 512-token
// byte-level BPE vocabulary) sampled at temperature 1 under each family's lazy tool grammar, with
// the model made to write the family's trigger; every answer must end by the grammar completing,
// parse with the family's output parser into tool calls whose arguments validate against the
// tool's schema, and stream arguments whose pieces join to the final ones. Also: tool_choice
// "required" forces a call from the first token, and the grammars' reasoning prefix and markers.
#include "chat/tool_grammar.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "../sample/schema_validator.h"
#include "chat/output_parser.h"
#include "hearth/error.h"
#include "model/model.h"
#include "model/synth.h"
#include "runtime/context.h"

namespace hearth::chat {
namespace {

using ojson = nlohmann::ordered_json;

const ojson& tools() {
  static const ojson t = ojson::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "description": "Weather at a place", "parameters": {
      "type": "object",
      "properties": {
        "city": {"type": "string", "maxLength": 8},
        "unit": {"enum": ["c", "f"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "where": {"type": "object",
                  "properties": {"lat": {"type": "integer", "minimum": -90, "maximum": 90},
                                 "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2}},
                  "required": ["lat"], "additionalProperties": false}
      },
      "required": ["city", "where"], "additionalProperties": false}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
      "type": "object",
      "properties": {"tz": {"type": "string", "enum": ["UTC", "CET"]}, "h24": {"type": "boolean"}},
      "required": ["tz"], "additionalProperties": false}}}
  ])");
  return t;
}

const ojson* schema_of(const std::string& name) {
  for (const ojson& t : tools())
    if (t["function"]["name"] == name) return &t["function"]["parameters"];
  return nullptr;
}

// The text that starts each family's lazy grammar.
std::string trigger_text(Family f) {
  switch (f) {
    case Family::Generic:
    case Family::Qwen3:
    case Family::Qwen35:
      return "<tool_call>";
    case Family::Llama3:
      return "{\"name\"";
    case Family::Llama4:
      return "<|python_start|>";
    case Family::Gemma4:
      return "<|tool_call>";
    case Family::DeepSeekR1:
      return "<｜tool▁calls▁begin｜>";
    case Family::Mistral:
      return "[TOOL_CALLS]";
  }
  return "";
}

struct TinyModel {
  std::shared_ptr<const model::Model> model;
  std::shared_ptr<const sample::GrammarVocab> vocab;
};

const TinyModel& tiny_model() {
  static const TinyModel s = [] {
    const std::string path =
        (std::filesystem::temp_directory_path() / "hearth-test-toolgrammar-tiny-llama.gguf").string();
    model::SynthOptions opt;
    opt.seed = 5;
    opt.n_threads = 2;
    model::synthesize(model::find_synth_shape("tiny-llama"), opt, path);
    TinyModel r;
    r.model = model::Model::load(path);
    r.vocab = sample::GrammarVocab::from_tokenizer(r.model->tokenizer());
    return r;
  }();
  return s;
}

sample::SamplerParams unfiltered(uint64_t seed) {
  sample::SamplerParams sp;
  sp.temp = 1.0f;
  sp.top_k = 0;
  sp.top_p = 1.0f;
  sp.min_p = 0.0f;
  sp.seed = seed;
  return sp;
}

// Checks one generated answer: it parses (streamed token by token) into tool calls whose names are
// tools, whose arguments validate, and whose streamed pieces join to the final arguments.
void check_answer(Family family, const std::vector<std::string>& pieces, const std::string& what) {
  std::string text;
  for (const std::string& p : pieces) text += p;
  ParserOptions opt;
  opt.tools = tools();
  opt.id_seed = 3;
  opt.stream_tool_calls = true;
  OutputParser parser(family, opt);
  std::map<size_t, std::string> streamed;
  auto take = [&](const std::vector<Event>& events) {
    for (const Event& e : events)
      if (e.kind == EventKind::ToolCallArgs) streamed[e.index] += e.text;
  };
  for (const std::string& p : pieces) take(parser.feed(p));
  take(parser.finish());
  const ParsedOutput& r = parser.result();
  ASSERT_TRUE(r.errors.empty()) << what << ": " << r.errors[0] << "\n" << text;
  ASSERT_FALSE(r.tool_calls.empty()) << what << ": no tool call in\n" << text;
  for (size_t i = 0; i < r.tool_calls.size(); ++i) {
    const ToolCall& c = r.tool_calls[i];
    const ojson* schema = schema_of(c.name);
    ASSERT_NE(schema, nullptr) << what << ": unknown tool " << c.name << "\n" << text;
    ojson args;
    ASSERT_NO_THROW(args = ojson::parse(c.arguments)) << what << ": " << c.arguments;
    ASSERT_TRUE(sample::test::validate(args, *schema)) << what << ": " << c.name << " " << c.arguments << "\n" << text;
    EXPECT_EQ(streamed[i], c.arguments) << what << "\n" << text;
  }
}

TEST(ToolGrammar, LazyGrammarSampledCallsOfARandomModelParseAndValidate) {
  const TinyModel& s = tiny_model();
  const tokenizer::Tokenizer& tok = s.model->tokenizer();
  std::map<Family, ToolGrammar> grammars;
  std::map<Family, std::shared_ptr<const sample::Grammar>> parsed;
  for (Family f : all_families()) {
    grammars[f] = build_tool_grammar(f, tools(), {}, s.vocab.get());
    ASSERT_TRUE(grammars[f].lazy);
    parsed[f] = sample::Grammar::parse(grammars[f].gbnf, s.vocab.get());
  }
  runtime::ContextParams cp;
  cp.n_ctx = 1024;
  cp.n_threads = 1;
  runtime::Context ctx(s.model, cp);
  const std::vector<int32_t> prompt = tok.encode("Call a tool:", true, false);
  runtime::Batch batch;
  for (size_t i = 0; i < prompt.size(); ++i) batch.add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
  ctx.decode(batch);
  const std::span<const float> last = ctx.logits(prompt.size() - 1);
  const std::vector<float> prompt_logits(last.begin(), last.end());
  const auto n_prompt = static_cast<int32_t>(prompt.size());

  constexpr int kRuns = 200, kMaxTokens = 400;
  int total_tokens = 0, calls = 0;
  for (int run = 0; run < kRuns; ++run) {
    const Family family = all_families()[static_cast<size_t>(run) % all_families().size()];
    const std::string what = std::string(family_name(family)) + " run " + std::to_string(run);
    ctx.kv_cache().seq_rm(0, n_prompt, -1);
    sample::Sampler sampler(unfiltered(500 + static_cast<uint64_t>(run)));
    sampler.set_lazy_grammar(parsed[family], s.vocab, grammars[family].triggers);
    sample::Sampler plain(unfiltered(500 + static_cast<uint64_t>(run)));  // the same draws before the trigger
    // A few free tokens (none for the Llama families, whose trigger counts at the start only),
    // then the model is made to write the trigger.
    const bool at_start = family == Family::Llama3 || family == Family::Llama4;
    const int n_free = at_start ? 0 : run % 5;
    const std::vector<int32_t> trigger = tok.encode(trigger_text(family), false, false);
    std::vector<float> logits = prompt_logits;
    std::vector<std::string> pieces;
    bool ended = false;
    for (int n = 0; n < kMaxTokens; ++n) {
      std::vector<float> biased = logits;
      const int k = n - n_free;
      if (n < n_free) {
        for (int32_t t : s.model->tokenizer().vocab().eog_ids()) biased[static_cast<size_t>(t)] = -1e9f;
        ASSERT_FALSE(sampler.grammar_active()) << what;
      } else if (k < static_cast<int>(trigger.size())) {
        biased[static_cast<size_t>(trigger[static_cast<size_t>(k)])] += 1000.0f;
      }
      const int32_t t = sampler.sample(biased);
      if (n < n_free) {
        ASSERT_EQ(plain.sample(biased), t) << what << ": a draw before the trigger differs from an unconstrained one";
      }
      if (k == static_cast<int>(trigger.size()) - 1) {
        ASSERT_TRUE(sampler.grammar_active()) << what;
      }
      if (tok.is_eog(t)) {
        ASSERT_TRUE(sampler.grammar_active()) << what;
        EXPECT_TRUE(sampler.grammar()->is_complete()) << what;
        ended = true;
        total_tokens += n;
        break;
      }
      pieces.push_back(tok.token_to_piece(t, false));
      batch.clear();
      batch.add(t, n_prompt + n, 0, true);
      ctx.decode(batch);
      const std::span<const float> row = ctx.logits(0);
      logits.assign(row.begin(), row.end());
    }
    std::string text;
    for (const std::string& p : pieces) text += p;
    ASSERT_TRUE(ended) << what << " did not finish in " << kMaxTokens << " tokens: " << text;
    check_answer(family, pieces, what);
    if (HasFatalFailure()) return;
    calls += static_cast<int>(parse_output(family, text, {.tools = tools()}).tool_calls.size());
  }
  std::printf("lazy tool grammars: %d runs, %d calls, %.1f tokens on average\n", kRuns, calls,
              static_cast<double>(total_tokens) / kRuns);
}

TEST(ToolGrammar, RequiredForcesACallFromTheFirstToken) {
  const TinyModel& s = tiny_model();
  const tokenizer::Tokenizer& tok = s.model->tokenizer();
  runtime::ContextParams cp;
  cp.n_ctx = 1024;
  cp.n_threads = 1;
  runtime::Context ctx(s.model, cp);
  int run = 0;
  for (Family family : all_families()) {
    ToolGrammarOptions opt;
    opt.required = true;
    opt.allow_reasoning = false;                             // a random model would never close its reasoning
    if (family == Family::Qwen3) opt.function = "get_time";  // a named function: only that one
    const ToolGrammar g = build_tool_grammar(family, tools(), opt, s.vocab.get());
    EXPECT_FALSE(g.lazy);
    for (int i = 0; i < 5; ++i, ++run) {
      const std::string what = std::string(family_name(family)) + " run " + std::to_string(run);
      sample::Sampler sampler(unfiltered(900 + static_cast<uint64_t>(run)));
      set_tool_grammar(sampler, g, s.vocab);
      ASSERT_TRUE(sampler.grammar_active());
      ctx.kv_cache().clear();
      const std::vector<int32_t> prompt = tok.encode("Hello", true, false);
      runtime::Batch batch;
      for (size_t j = 0; j < prompt.size(); ++j)
        batch.add(prompt[j], static_cast<int32_t>(j), 0, j + 1 == prompt.size());
      ctx.decode(batch);
      std::vector<float> logits(ctx.logits(prompt.size() - 1).begin(), ctx.logits(prompt.size() - 1).end());
      std::vector<std::string> pieces;
      bool ended = false;
      for (int n = 0; n < 400; ++n) {
        const int32_t t = sampler.sample(logits);
        if (tok.is_eog(t)) {
          ended = true;
          break;
        }
        pieces.push_back(tok.token_to_piece(t, false));
        batch.clear();
        batch.add(t, static_cast<int32_t>(prompt.size()) + n, 0, true);
        ctx.decode(batch);
        logits.assign(ctx.logits(0).begin(), ctx.logits(0).end());
      }
      ASSERT_TRUE(ended) << what;
      check_answer(family, pieces, what);
      if (HasFatalFailure()) return;
      if (family == Family::Qwen3) {
        std::string text;
        for (const std::string& p : pieces) text += p;
        for (const ToolCall& c : parse_output(family, text, {.tools = tools()}).tool_calls)
          EXPECT_EQ(c.name, "get_time");
      }
    }
  }
}

TEST(ToolGrammar, ReasoningBeforeARequiredCallAndControlTokenMarkers) {
  // Qwen 3 with thinking: an optional reasoning section, then the call.
  ToolGrammarOptions opt;
  opt.required = true;
  const auto g = sample::Grammar::parse(build_tool_grammar(Family::Qwen3, tools(), opt).gbnf);
  const std::string call = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}\n</tool_call>";
  for (const std::string& text : {"<think>\nHmm, the time.\n</think>\n\n" + call, call}) {
    sample::GrammarMatcher m(g);
    EXPECT_TRUE(m.accept_bytes(text) && m.is_complete()) << text;
  }
  sample::GrammarMatcher m(g);
  EXPECT_FALSE(m.accept_bytes("Sure! " + call));  // no content before a required call
  sample::GrammarMatcher bad(g);
  EXPECT_FALSE(bad.accept_bytes("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"PST\"}}"));  // enum
  // The prompt opened the reasoning: it must be closed first.
  opt.starts_in_reasoning = true;
  const auto opened = sample::Grammar::parse(build_tool_grammar(Family::Qwen3, tools(), opt).gbnf);
  sample::GrammarMatcher o(opened);
  EXPECT_TRUE(o.accept_bytes("the time\n</think>\n\n" + call) && o.is_complete());
  // A marker that is a control token of the vocabulary is a token reference and a token trigger.
  const auto vocab = std::make_shared<const sample::GrammarVocab>(
      std::vector<std::string>{"", "{", "}", "\"", "x", ""}, std::vector<int32_t>{5},
      std::vector<std::string>{"[TOOL_CALLS]", "{", "}", "\"", "x", "</s>"});
  const ToolGrammar mg = build_tool_grammar(Family::Mistral, tools(), {}, vocab.get());
  ASSERT_EQ(mg.triggers.size(), 1u);
  EXPECT_EQ(mg.triggers[0].kind, sample::GrammarTrigger::Kind::Token);
  EXPECT_EQ(mg.triggers[0].token, 0);
  EXPECT_NE(mg.gbnf.find("<[0]>"), std::string::npos);
  sample::GrammarMatcher mm(sample::Grammar::parse(mg.gbnf, vocab.get()), vocab);
  EXPECT_TRUE(mm.accept_token(0));
  EXPECT_TRUE(mm.accept_bytes("[{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}, \"id\": \"abcdefghi\"}]"));
  EXPECT_TRUE(mm.is_complete());
  // Parallel calls: one block after another; without the option, exactly one.
  ToolGrammarOptions par;
  par.parallel = true;
  const auto pg = sample::Grammar::parse(build_tool_grammar(Family::Qwen3, tools(), par).gbnf);
  sample::GrammarMatcher two(pg);
  EXPECT_TRUE(two.accept_bytes(call + "\n" + call) && two.is_complete());
  sample::GrammarMatcher one(sample::Grammar::parse(build_tool_grammar(Family::Qwen3, tools()).gbnf));
  EXPECT_TRUE(one.accept_bytes(call));
  EXPECT_FALSE(one.accept_bytes("\n" + call));
  // Errors name what is wrong.
  EXPECT_THROW(build_tool_grammar(Family::Qwen3, ojson::array()), Error);
  opt = {};
  opt.function = "nope";
  EXPECT_THROW(build_tool_grammar(Family::Qwen3, tools(), opt), Error);
  try {
    build_tool_grammar(Family::Qwen3, ojson::parse(R"([{"function": {"name": "f", "parameters": {"not": {}}}}])"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tool 'f'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hearth::chat
