// Grammar-constrained decoding cost: filtering a whole vocabulary (the llama-spm vocabulary of
// ../shared/testdata/tokenizer/, 32000 tokens) against a grammar at one step, reported as
// per_token (seconds per vocabulary token per step, CPU time: 6.5n = 6.5 ns).
// - BM_GrammarFilter/<grammar>/<state>: fill_allowed() at a fixed state, the automaton warm, the
//   per-state answer cache off (mask_cached: on, the cost when a state comes back).
// - BM_GrammarGenerate/<grammar>/<warm|cold>: 64 steps of a seeded random walk (fill_allowed,
//   pick an allowed token, accept it); warm keeps the matcher's automaton between walks, cold
//   starts a new matcher for every walk (the first request with a grammar).
// - BM_GrammarPerTokenCheck: token_allowed() for each token separately (no trie), to compare.
// The data folder is HEARTH_TESTDATA_DIR (environment or compile definition), else the one
// beside this source tree.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "gguf/gguf.h"
#include "sample/grammar.h"
#include "sample/json_schema.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace hearth::sample;

std::string testdata_dir() {
  if (const char* env = std::getenv("HEARTH_TESTDATA_DIR")) return env;
#ifdef HEARTH_TESTDATA_DIR
  return HEARTH_TESTDATA_DIR;
#else
  // Beside the source tree, seen from the repository root or from a build folder in it.
  const std::string here = __FILE__;  // .../bench/grammar_bench.cpp, possibly relative
  for (const std::string& dir : {here.substr(0, here.rfind("/bench/")) + "/../shared/testdata",
                                 std::string("../shared/testdata"), std::string("../../shared/testdata")}) {
    if (std::filesystem::exists(dir + "/tokenizer")) return dir;
  }
  return "../shared/testdata";
#endif
}

const std::shared_ptr<const GrammarVocab>& vocab() {
  static const std::shared_ptr<const GrammarVocab> v = [] {
    const auto file = hearth::gguf::File::open(testdata_dir() + "/tokenizer/ggml-vocab-llama-spm.gguf");
    return GrammarVocab::from_tokenizer(hearth::tokenizer::Tokenizer::from_gguf(file));
  }();
  return v;
}

const std::string& schema_grammar() {
  static const std::string g = json_schema_to_grammar(nlohmann::ordered_json::parse(R"({
    "type": "object",
    "properties": {
      "name": {"type": "string", "maxLength": 40},
      "age": {"type": "integer", "minimum": 0, "maximum": 150},
      "email": {"type": "string", "pattern": "^[a-z0-9.]+@[a-z0-9]+\\.[a-z]{2,4}$"},
      "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
      "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                  "required": ["city"]},
      "role": {"enum": ["admin", "user", "guest"]}
    },
    "required": ["name", "age", "address", "role"]
  })"));
  return g;
}

std::shared_ptr<const Grammar> grammar(const std::string& which) {
  static const auto json = Grammar::parse(json_object_grammar());
  static const auto schema = Grammar::parse(schema_grammar());
  return which == "json" ? json : schema;
}

// Seconds per vocabulary token (printed with an SI prefix: 6.5n = 6.5 ns).
void set_rate(benchmark::State& state, double tokens_per_iteration) {
  state.counters["per_token"] = benchmark::Counter(
      tokens_per_iteration, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_GrammarFilter(benchmark::State& state, std::string which, std::string prefix, bool cached) {
  GrammarMatcher m(grammar(which), vocab());
  if (!cached) m.set_mask_cache(0);
  if (!m.accept_bytes(prefix)) {
    state.SkipWithError("prefix rejected");
    return;
  }
  std::vector<uint8_t> allowed;
  m.fill_allowed(allowed);
  size_t n_allowed = 0;
  for (uint8_t a : allowed) n_allowed += a;
  for (auto _ : state) {
    m.fill_allowed(allowed);
    benchmark::DoNotOptimize(allowed.data());
  }
  set_rate(state, vocab()->n_vocab());
  state.counters["allowed"] = static_cast<double>(n_allowed);
}
BENCHMARK_CAPTURE(BM_GrammarFilter, json/start, "json", "", false);
BENCHMARK_CAPTURE(BM_GrammarFilter, json/in_string, "json", "{\"key\": \"some text", false);
BENCHMARK_CAPTURE(BM_GrammarFilter, json/in_string/mask_cached, "json", "{\"key\": \"some text", true);
BENCHMARK_CAPTURE(BM_GrammarFilter, json/in_number, "json", "{\"a\": [1, 2, 35", false);
BENCHMARK_CAPTURE(BM_GrammarFilter, json/after_value, "json", "{\"a\": {\"b\": [true]", false);
BENCHMARK_CAPTURE(BM_GrammarFilter, schema/key, "schema", "{\"name\": \"Ann\", ", false);
BENCHMARK_CAPTURE(BM_GrammarFilter, schema/in_string, "schema", "{\"name\": \"Ann Lee", false);
BENCHMARK_CAPTURE(BM_GrammarFilter, schema/in_pattern, "schema", "{\"name\": \"A\", \"age\": 3, \"email\": \"a.b@",
                  false);

// Picks a pseudo-random allowed token, preferring short walks through strings.
int32_t pick(const std::vector<uint8_t>& allowed, std::mt19937& rng) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < allowed.size(); ++i) {
    if (allowed[i]) ids.push_back(static_cast<int32_t>(i));
  }
  return ids.empty() ? -1 : ids[rng() % ids.size()];
}

void BM_GrammarGenerate(benchmark::State& state, std::string which, bool warm) {
  constexpr int kSteps = 64;
  std::vector<uint8_t> allowed;
  GrammarMatcher kept(grammar(which), vocab());
  int64_t steps = 0;
  for (auto _ : state) {
    GrammarMatcher fresh(grammar(which), vocab());
    GrammarMatcher& m = warm ? kept : fresh;
    m.reset();
    std::mt19937 rng(7);
    for (int i = 0; i < kSteps; ++i) {
      m.fill_allowed(allowed);
      const int32_t t = pick(allowed, rng);
      if (t < 0 || vocab()->is_eog(t)) break;
      m.accept_token(t);
      ++steps;
    }
  }
  state.counters["per_token"] = benchmark::Counter(static_cast<double>(steps) * vocab()->n_vocab(),
                                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  if (warm) state.counters["states"] = static_cast<double>(kept.n_states());
}
BENCHMARK_CAPTURE(BM_GrammarGenerate, json/warm, "json", true);
BENCHMARK_CAPTURE(BM_GrammarGenerate, json/cold, "json", false);
BENCHMARK_CAPTURE(BM_GrammarGenerate, schema/warm, "schema", true);
BENCHMARK_CAPTURE(BM_GrammarGenerate, schema/cold, "schema", false);

void BM_GrammarPerTokenCheck(benchmark::State& state) {
  GrammarMatcher m(grammar("json"), vocab());
  m.accept_bytes("{\"key\": \"some text");
  for (auto _ : state) {
    int n = 0;
    for (int32_t id = 0; id < vocab()->n_vocab(); ++id) n += m.token_allowed(id);
    benchmark::DoNotOptimize(n);
  }
  set_rate(state, vocab()->n_vocab());
}
BENCHMARK(BM_GrammarPerTokenCheck);

}  // namespace
