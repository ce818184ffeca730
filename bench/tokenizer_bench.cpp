// Encode and decode throughput of the tokenizers on a few KB of mixed text, for one SPM
// (llama-spm) and one byte-level BPE (gpt-2) vocabulary from ../shared/testdata/tokenizer/.
// The data folder is HEARTH_TESTDATA_DIR (environment or compile definition), else the one
// beside this source tree.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

using hearth::tokenizer::Tokenizer;

std::string testdata_dir() {
  if (const char* env = std::getenv("HEARTH_TESTDATA_DIR")) return env;
#ifdef HEARTH_TESTDATA_DIR
  return HEARTH_TESTDATA_DIR;
#else
  const std::string here = __FILE__;  // .../main/bench/tokenizer_bench.cpp
  return here.substr(0, here.rfind("/bench/")) + "/../shared/testdata";
#endif
}

const Tokenizer& vocab(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[name];
  if (!slot) {
    const auto file = hearth::gguf::File::open(testdata_dir() + "/tokenizer/ggml-vocab-" + name + ".gguf");
    slot = std::make_unique<Tokenizer>(Tokenizer::from_gguf(file));
  }
  return *slot;
}

// About 4 KB: English prose, code, numbers, whitespace runs, accented Latin, Cyrillic, CJK, emoji.
const std::string& mixed_text() {
  static const std::string text = [] {
    const std::string block =
        "The quick brown fox jumps over the lazy dog. It's 2024, and we've shipped 1,234,567 units!\n"
        "    def tokenize(text: str) -> list[int]:\n        return [ord(c) for c in text if c != ' ']\n\n"
        "Übermäßig schöne Grüße aus Köln — naïve café, señor. Привет, как дела? Всё хорошо.\n"
        "中文分词是一个有趣的问题。日本語の文章も少し。한국어 문장도 있습니다.\n"
        "Emoji: 🦙🚀👍🏽 👨‍👩‍👧 ✅ — and some math: x² + y² = z², π ≈ 3.14159, ∑ᵢ aᵢ.\n"
        "\t\tTabs\tand   multiple    spaces,\r\nWindows line endings, and trailing spaces   \n";
    std::string out;
    while (out.size() < 4000) out += block;
    return out;
  }();
  return text;
}

void BM_Encode(benchmark::State& state, const std::string& name) {
  const Tokenizer& tok = vocab(name);
  const std::string& text = mixed_text();
  size_t n_tokens = 0;
  for (auto _ : state) {
    auto ids = tok.encode(text, /*add_special=*/true, /*parse_special=*/false);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(n_tokens);
  state.counters["text_bytes"] = static_cast<double>(text.size());
}

void BM_Decode(benchmark::State& state, const std::string& name) {
  const Tokenizer& tok = vocab(name);
  const std::string& text = mixed_text();
  const auto ids = tok.encode(text, false, false);
  for (auto _ : state) {
    std::string out = tok.decode(ids, false, false);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

BENCHMARK_CAPTURE(BM_Encode, spm_llama, std::string("llama-spm"))->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Encode, bpe_gpt2, std::string("gpt-2"))->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decode, spm_llama, std::string("llama-spm"))->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decode, bpe_gpt2, std::string("gpt-2"))->Unit(benchmark::kMicrosecond);

}  // namespace
