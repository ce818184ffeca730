// hearth bench -m MODEL.gguf [-p 512] [-n 128] [-t THREADS] [-r 5] [-b 2048] [-ub 512] [-ctk f16] [-ctv f16]
//              [-fa 0] [-o md|json]
// hearth bench --bandwidth [-t THREADS] [--bytes 1G] [-r 5] [-o md|json]
//
// llama.cpp's llama-bench, same tests, statistics, table and JSON field names
// (tools/llama-bench/llama-bench.cpp): for every (n_batch, n_ubatch, type_k, type_v, flash_attn,
// threads) combination, one
// "ppN" test per non-zero -p value (N random tokens evaluated in batches of n_batch, the first
// one BOS when the vocabulary adds it) and one "tgN" test per non-zero -n value (N tokens
// generated one at a time from an empty cache). Each test runs one untimed warm-up (the whole
// prompt, resp. one generated token), then -r timed repetitions, each from a cleared KV cache.
// --parallel N (not in llama-bench; llama-batched-bench's -npl): the tg tests generate N
// sequences at once, one token of each per step, as `hearth serve --parallel N` decodes its
// slots; t/s counts the tokens of all N.
// --bandwidth runs the memory-bandwidth probe (runtime/bandwidth.h) instead.
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "commands.h"
#include "common.h"
#include "kernels/threadpool.h"
#include "model/model.h"
#include "runtime/bandwidth.h"
#include "runtime/context.h"
#include "runtime/kv_cache.h"
#include "kernels/cpu.h"

namespace hearth::app {
namespace {

// llama-bench's defaults (cmd_params_defaults).
constexpr int kDefaultBatch = 2048;
constexpr int kDefaultUbatch = 512;

// ---- argument parsing ----

/// Parses "512" or "0,512,1024" into integers; throws Error naming `flag` and the bad item.
std::vector<int> parse_int_list(const std::string& flag, const std::string& text) {
  std::vector<int> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno != 0 || v < INT32_MIN || v > INT32_MAX)
      throw Error(flag + ": '" + item + "' is not an integer (give a comma-separated list such as 1,2,4)");
    out.push_back(static_cast<int>(v));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

/// The list of `flag`, each at least `min`; throws Error naming the flag, value and bound.
std::vector<int> parse_bounded_list(const std::string& flag, const std::string& text, int min, const char* what) {
  std::vector<int> v = parse_int_list(flag, text);
  for (int x : v)
    if (x < min)
      throw Error(flag + ": " + std::to_string(x) + " is not a valid " + what + " (must be at least " +
                  std::to_string(min) + ")");
  return v;
}

/// Parses "f16" or "q8_0,q4_0" into cache types; throws Error naming `flag`, the bad item and
/// the valid names.
std::vector<quant::GgmlType> parse_cache_types(const std::string& flag, const std::string& text) {
  std::vector<quant::GgmlType> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    try {
      out.push_back(runtime::parse_kv_cache_type(item));
    } catch (const Error& e) {
      throw Error(flag + ": " + e.what());
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// ---- model description, as llama.cpp's llama_model_desc() writes it ----

// llama.cpp's llama_model_ftype_name() for a general.file_type id.
std::string ftype_name(uint32_t ftype) {
  static const std::map<uint32_t, const char*> names = {
      {0, "all F32"}, {1, "F16"}, {32, "BF16"}, {2, "Q4_0"}, {3, "Q4_1"}, {8, "Q5_0"}, {9, "Q5_1"}, {7, "Q8_0"},
      {38, "MXFP4 MoE"}, {10, "Q2_K - Medium"}, {21, "Q2_K - Small"}, {11, "Q3_K - Small"}, {12, "Q3_K - Medium"},
      {13, "Q3_K - Large"}, {14, "Q4_K - Small"}, {15, "Q4_K - Medium"}, {16, "Q5_K - Small"},
      {17, "Q5_K - Medium"}, {18, "Q6_K"}, {36, "TQ1_0 - 1.69 bpw ternary"}, {37, "TQ2_0 - 2.06 bpw ternary"},
      {19, "IQ2_XXS - 2.0625 bpw"}, {20, "IQ2_XS - 2.3125 bpw"}, {28, "IQ2_S - 2.5 bpw"}, {29, "IQ2_M - 2.7 bpw"},
      {22, "IQ3_XS - 3.3 bpw"}, {23, "IQ3_XXS - 3.0625 bpw"}, {24, "IQ1_S - 1.5625 bpw"}, {31, "IQ1_M - 1.75 bpw"},
      {25, "IQ4_NL - 4.5 bpw"}, {30, "IQ4_XS - 4.25 bpw"}, {26, "IQ3_S - 3.4375 bpw"}, {27, "IQ3_S mix - 3.66 bpw"},
  };
  const auto it = names.find(ftype);
  return it != names.end() ? it->second : "unknown, may not work";
}

// Without general.file_type llama.cpp guesses the ftype from the most common tensor type.
std::string guessed_ftype_name(const gguf::File& f) {
  using T = quant::GgmlType;
  std::map<T, int> count;
  for (const gguf::TensorInfo& t : f.tensors()) ++count[t.type];
  T best = T::F32;
  int best_n = -1;
  for (const auto& [type, n] : count)
    if (n > best_n) best = type, best_n = n;
  static const std::map<T, uint32_t> ftype_of = {
      {T::F32, 0}, {T::F16, 1}, {T::BF16, 32}, {T::Q4_0, 2}, {T::Q4_1, 3}, {T::Q5_0, 8}, {T::Q5_1, 9},
      {T::Q8_0, 7}, {T::Q2_K, 10}, {T::Q3_K, 12}, {T::Q4_K, 15}, {T::Q5_K, 17}, {T::Q6_K, 18},
      {T::IQ2_XXS, 19}, {T::IQ2_XS, 20}, {T::IQ2_S, 28}, {T::IQ3_XXS, 23}, {T::IQ1_S, 24}, {T::IQ1_M, 31},
      {T::IQ4_NL, 25}, {T::IQ4_XS, 30}, {T::IQ3_S, 26}, {T::TQ1_0, 36}, {T::TQ2_0, 37}, {T::MXFP4, 38},
  };
  const auto it = ftype_of.find(best);
  return (it != ftype_of.end() ? ftype_name(it->second) : "unknown, may not work") + std::string(" (guessed)");
}

// llama.cpp's model size label (llm_type), chosen from the layer count as its loader does for
// the architectures hearth runs; "?B" where llama.cpp would not know the shape either.
std::string size_label(const model::HParams& hp) {
  const uint32_t n_head = hp.n_head.empty() ? 0 : hp.n_head[0];
  const uint32_t n_head_kv = hp.n_head_kv.empty() ? 0 : hp.n_head_kv[0];
  if (hp.arch == "llama") {
    if (hp.n_expert == 8) return hp.n_layer == 32 ? "8x7B" : hp.n_layer == 56 ? "8x22B" : "?B";
    switch (hp.n_layer) {
      case 16: case 22: return "1B";
      case 26: case 28: return "3B";
      case 30: return "256M";
      case 32: return hp.n_vocab == 49152 ? "3B" : hp.n_vocab < 40000 ? "7B" : "8B";
      case 36: return "8B";
      case 40: return "13B";
      case 48: return "34B";
      case 60: return "30B";
      case 80: return n_head == n_head_kv ? "65B" : "70B";
      default: return "?B";
    }
  }
  if (hp.arch == "qwen3") {
    switch (hp.n_layer) {
      case 28: return hp.n_embd == 1024 ? "0.6B" : "1.7B";
      case 36: return hp.n_embd == 2560 ? "4B" : "8B";
      case 40: return "14B";
      case 64: return "32B";
      default: return "?B";
    }
  }
  return "?B";
}

/// "qwen3 1.7B Q8_0": architecture, size label and file type, as llama_model_desc().
std::string model_desc(const model::Model& m) {
  const gguf::File& f = m.file();
  std::string ftype;
  try {
    const std::optional<uint32_t> id = f.get<uint32_t>("general.file_type");
    ftype = id ? ftype_name(*id) : guessed_ftype_name(f);
  } catch (const Error&) {  // a general.file_type of another type: guess, as for a missing one
    ftype = guessed_ftype_name(f);
  }
  return m.hparams().arch + " " + size_label(m.hparams()) + " " + ftype;
}

// ---- measurement ----

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

/// Random token ids in [0, n_vocab) from one seeded generator (llama-bench uses std::rand()).
struct TokenSource {
  std::mt19937 rng;
  std::uniform_int_distribution<int32_t> dist;
  std::optional<int32_t> bos;  // first token of a prompt / generation when the vocabulary adds BOS

  int32_t next() { return dist(rng); }
};

// llama-bench's test_prompt(): n_prompt tokens in batches of n_batch, logits of each batch's
// last token only.
void run_prompt(runtime::Context& ctx, int n_prompt, int n_batch, TokenSource& src) {
  runtime::Batch batch;
  for (int done = 0; done < n_prompt;) {
    const int n = std::min(n_prompt - done, n_batch);
    batch.clear();
    for (int i = 0; i < n; ++i) {
      const int32_t tok = done == 0 && i == 0 && src.bos ? *src.bos : src.next();
      batch.add(tok, done + i, 0, i == n - 1);
    }
    ctx.decode(batch);
    done += n;
  }
}

// llama-bench's test_gen(): n_gen single-token decodes at positions 0, 1, ...; with n_parallel
// sequences, each step decodes one token of each (sequence ids 0 .. n_parallel-1).
void run_gen(runtime::Context& ctx, int n_gen, int n_parallel, TokenSource& src) {
  runtime::Batch batch;
  for (int i = 0; i < n_gen; ++i) {
    batch.clear();
    for (int s = 0; s < n_parallel; ++s) batch.add(i == 0 && src.bos ? *src.bos : src.next(), i, s, true);
    ctx.decode(batch);
  }
}

/// One benchmark (llama-bench's `test`): its settings and the wall time of each repetition.
struct Test {
  int n_batch = 0, n_ubatch = 0, n_threads = 0;
  quant::GgmlType type_k = quant::GgmlType::F16, type_v = quant::GgmlType::F16;
  bool flash_attn = false;
  int n_prompt = 0, n_gen = 0;
  int n_parallel = 1;     // sequences generated together (tg tests)
  std::string test_time;  // RFC 3339, UTC, when the test started
  std::vector<uint64_t> samples_ns;

  int n_tokens() const { return n_prompt + n_gen * n_parallel; }
  std::string name() const {
    if (n_gen == 0) return "pp" + std::to_string(n_prompt);
    if (n_prompt == 0) return "tg" + std::to_string(n_gen);
    return "pp" + std::to_string(n_prompt) + "+tg" + std::to_string(n_gen);
  }
  /// Tokens per second of each repetition: n_tokens · 1e9 / ns.
  std::vector<double> samples_ts() const {
    std::vector<double> ts;
    for (uint64_t ns : samples_ns) ts.push_back(1e9 * n_tokens() / static_cast<double>(ns));
    return ts;
  }
};

double mean(const std::vector<double>& v) {
  if (v.empty()) return 0;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

// Sample standard deviation (n − 1 in the denominator), 0 for fewer than two values: llama-bench's stdev().
double sample_stdev(const std::vector<double>& v) {
  if (v.size() <= 1) return 0;
  const double m = mean(v);
  double sq = 0;
  for (double x : v) sq += (x - m) * (x - m);
  return std::sqrt(sq / static_cast<double>(v.size() - 1));
}

std::vector<double> as_double(const std::vector<uint64_t>& v) { return std::vector<double>(v.begin(), v.end()); }

// llama-bench's avg<uint64_t>: the integer mean, truncated.
uint64_t avg_ns(const Test& t) {
  if (t.samples_ns.empty()) return 0;
  uint64_t s = 0;
  for (uint64_t x : t.samples_ns) s += x;
  return s / t.samples_ns.size();
}

uint64_t stddev_ns(const Test& t) { return static_cast<uint64_t>(sample_stdev(as_double(t.samples_ns))); }

std::string utc_now_rfc3339() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%FT%TZ", &tm);
  return buf;
}

/// Peak resident memory of this process, bytes (getrusage ru_maxrss, which Linux gives in KiB).
uint64_t peak_rss_bytes() {
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

/// The CPU's name from /proc/cpuinfo ("model name"), "" where it has none.
std::string cpu_info() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        size_t b = line.find_first_not_of(" \t", colon + 1);
        return b == std::string::npos ? "" : line.substr(b);
      }
    }
  }
  return "";
}

// ---- output: llama-bench's markdown_printer ----

struct Column {
  std::string name;
  int width;  // printf width; negative: left-aligned (text)
};

std::vector<Column> md_columns(bool show_batch, bool show_ubatch, bool show_type_k, bool show_type_v, bool show_fa,
                               bool show_parallel) {
  std::vector<Column> c = {{"model", -30}, {"size", 10}, {"params", 10}, {"backend", -10}, {"threads", 7}};
  if (show_batch) c.push_back({"n_batch", 7});
  if (show_ubatch) c.push_back({"n_ubatch", 8});
  if (show_type_k) c.push_back({"type_k", -6});
  if (show_type_v) c.push_back({"type_v", -6});
  if (show_fa) c.push_back({"fa", 2});
  if (show_parallel) c.push_back({"n_parallel", 10});
  c.push_back({"test", 15});
  c.push_back({"t/s", 20});
  return c;
}

void print_md_header(const std::vector<Column>& cols) {
  std::printf("|");
  for (const Column& c : cols) std::printf(" %*s |", c.width, c.name.c_str());
  std::printf("\n|");
  for (const Column& c : cols)
    std::printf(" %s%s |", std::string(static_cast<size_t>(std::abs(c.width) - 1), '-').c_str(), c.width > 0 ? ":" : "-");
  std::printf("\n");
}

/// Bytes of weights one generated token reads: every tensor once, except the token embedding
/// when a separate output matrix exists (one row is read, counted as 0), and only the used
/// share (expert_used_count / expert_count) of MoE expert tensors ("_exps").
uint64_t weights_read_per_token(const gguf::File& f) {
  const bool untied = f.find_tensor("output.weight") != nullptr;
  const std::string arch = f.get<std::string>("general.architecture").value_or("");
  const double n_expert = static_cast<double>(f.get<uint32_t>(arch + ".expert_count").value_or(0));
  const double n_used = static_cast<double>(f.get<uint32_t>(arch + ".expert_used_count").value_or(0));
  double bytes = 0;
  for (const gguf::TensorInfo& t : f.tensors()) {
    if (untied && t.name == "token_embd.weight") continue;
    const bool expert = t.name.find("_exps") != std::string::npos;
    bytes += expert && n_expert > 0 ? static_cast<double>(t.nbytes) * n_used / n_expert : static_cast<double>(t.nbytes);
  }
  return static_cast<uint64_t>(bytes);
}

void print_md_row(const std::vector<Column>& cols, const Test& t, const std::string& desc, uint64_t size_bytes,
                  uint64_t n_params) {
  std::printf("|");
  char buf[128];
  for (const Column& c : cols) {
    std::string v;
    int width = c.width;
    if (c.name == "model") {
      v = desc;
    } else if (c.name == "size") {
      if (size_bytes < (uint64_t{1} << 30)) std::snprintf(buf, sizeof buf, "%.2f MiB", size_bytes / 1024.0 / 1024.0);
      else std::snprintf(buf, sizeof buf, "%.2f GiB", size_bytes / 1024.0 / 1024.0 / 1024.0);
      v = buf;
    } else if (c.name == "params") {
      if (n_params < 1000000000ull) std::snprintf(buf, sizeof buf, "%.2f M", n_params / 1e6);
      else std::snprintf(buf, sizeof buf, "%.2f B", n_params / 1e9);
      v = buf;
    } else if (c.name == "backend") {
      v = "CPU";
    } else if (c.name == "threads") {
      v = std::to_string(t.n_threads);
    } else if (c.name == "n_batch") {
      v = std::to_string(t.n_batch);
    } else if (c.name == "n_ubatch") {
      v = std::to_string(t.n_ubatch);
    } else if (c.name == "type_k") {
      v = runtime::kv_cache_type_name(t.type_k);
    } else if (c.name == "type_v") {
      v = runtime::kv_cache_type_name(t.type_v);
    } else if (c.name == "fa") {
      v = t.flash_attn ? "1" : "0";
    } else if (c.name == "n_parallel") {
      v = std::to_string(t.n_parallel);
    } else if (c.name == "test") {
      v = t.name();
    } else if (c.name == "t/s") {
      const std::vector<double> ts = t.samples_ts();
      std::snprintf(buf, sizeof buf, "%.2f \u00b1 %.2f", mean(ts), sample_stdev(ts));
      v = buf;
      width += 1;  // "±" is two bytes of UTF-8 but one column
    }
    std::printf(" %*s |", width, v.c_str());
  }
  std::printf("\n");
  std::fflush(stdout);
}

// ---- the two modes ----

struct Opts {
  std::string model;
  std::string n_prompt = "512", n_gen = "128", threads, n_batch = std::to_string(kDefaultBatch),
              n_ubatch = std::to_string(kDefaultUbatch), output = "md", bytes;
  std::string type_k = "f16", type_v = "f16", flash_attn = "0", parallel = "1";
  int reps = 5;
  std::string reps_text;
  int64_t seed = 1;
  bool no_warmup = false;
  bool bandwidth = false;
};

int run_bandwidth(const Opts& o, const std::vector<int>& threads, bool json) {
  uint64_t bytes = runtime::kBandwidthDefaultBytes;
  try {
    if (!o.bytes.empty()) bytes = runtime::parse_size_bytes(o.bytes);
  } catch (const Error& e) {
    throw Error(std::string("--bytes: ") + e.what());
  }
  const std::vector<runtime::BandwidthResult> rs = runtime::measure_read_bandwidth(bytes, threads, o.reps);
  if (json) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (const runtime::BandwidthResult& r : rs)
      a.push_back({{"test", "read_bandwidth"},
                   {"n_threads", r.n_threads},
                   {"buffer_bytes", r.bytes},
                   {"passes", r.passes},
                   {"best_ns", static_cast<uint64_t>(std::llround(r.best_seconds * 1e9))},
                   {"gb_per_s", r.gb_per_s}});
    std::printf("%s\n", a.dump(2).c_str());
  } else {
    for (const runtime::BandwidthResult& r : rs)
      std::printf("read bandwidth: %.2f GB/s (%d threads)\n", r.gb_per_s, r.n_threads);
  }
  return 0;
}

int run_bench(const Opts& o, const std::vector<int>& threads, bool json) {
  const std::vector<int> prompts = parse_bounded_list("-p", o.n_prompt, 0, "prompt length in tokens");
  const std::vector<int> gens = parse_bounded_list("-n", o.n_gen, 0, "number of generated tokens");
  const std::vector<int> batches = parse_bounded_list("-b", o.n_batch, 1, "batch size n_batch");
  const std::vector<int> ubatches = parse_bounded_list("-ub", o.n_ubatch, 1, "micro-batch size n_ubatch");
  const std::vector<quant::GgmlType> types_k = parse_cache_types("-ctk", o.type_k);
  const std::vector<quant::GgmlType> types_v = parse_cache_types("-ctv", o.type_v);
  const std::vector<int> parallel = parse_bounded_list("--parallel", o.parallel, 1, "number of sequences");
  for (int n : parallel)
    if (n > static_cast<int>(runtime::kMaxSequences))
      throw Error("--parallel: " + std::to_string(n) + " sequences are more than a context holds (" +
                  std::to_string(runtime::kMaxSequences) + ")");
  std::vector<bool> flash;
  for (int f : parse_bounded_list("-fa", o.flash_attn, 0, "flash attention switch (0 or 1)")) {
    if (f > 1) throw Error("-fa: '" + std::to_string(f) + "' is not 0 or 1");
    flash.push_back(f == 1);
  }
  const bool any_test = std::any_of(prompts.begin(), prompts.end(), [](int p) { return p > 0; }) ||
                        std::any_of(gens.begin(), gens.end(), [](int n) { return n > 0; });
  if (!any_test) throw Error("nothing to benchmark: every -p and -n value is 0");
  if (o.model.empty()) throw Error("no model given: hearth bench -m MODEL.gguf (or --bandwidth for the memory probe)");

  auto model = model::Model::load(o.model);
  const std::string desc = model_desc(*model);
  const uint64_t size_bytes = model->n_weight_bytes();
  const uint64_t n_params = model->n_params();
  const tokenizer::Tokenizer& tok = model->tokenizer();
  TokenSource src{std::mt19937(static_cast<uint32_t>(o.seed)),
                  std::uniform_int_distribution<int32_t>(0, static_cast<int32_t>(model->hparams().n_vocab) - 1),
                  tok.add_bos() ? tok.bos() : std::nullopt};

#if !defined(__OPTIMIZE__)
  std::fprintf(stderr, "warning: debug build, performance may be affected\n");
#endif
#if defined(__SANITIZE_ADDRESS__)
  std::fprintf(stderr, "warning: sanitizer enabled, performance may be affected\n");
#endif

  // llama-bench's order: batch sizes, cache types, flash attention, then threads; per
  // combination the pp tests, then the tg tests. Cache types other than f16 always use flash
  // attention (-fa 0 runs them with it, as -fa 1; with -fa 0,1 they run once).
  std::vector<Test> plan;
  for (int nb : batches)
    for (int nub : ubatches)
      for (quant::GgmlType tk : types_k)
        for (quant::GgmlType tv : types_v)
          for (bool fa : flash)
            for (int nt : threads) {
              const bool fa_used = fa || tk != quant::GgmlType::F16 || tv != quant::GgmlType::F16;
              // -fa 0,1 with such a type: run it once, as -fa 1.
              if (fa_used && !fa && std::find(flash.begin(), flash.end(), true) != flash.end()) continue;
              for (int p : prompts)
                if (p > 0) plan.push_back(Test{nb, nub, nt, tk, tv, fa_used, p, 0, 1, "", {}});
              for (int n : gens)
                for (int np : parallel)
                  if (n > 0) plan.push_back(Test{nb, nub, nt, tk, tv, fa_used, 0, n, np, "", {}});
            }

  const std::vector<Column> cols =
      md_columns(batches != std::vector<int>{kDefaultBatch}, ubatches != std::vector<int>{kDefaultUbatch},
                 types_k != std::vector<quant::GgmlType>{quant::GgmlType::F16},
                 types_v != std::vector<quant::GgmlType>{quant::GgmlType::F16}, flash != std::vector<bool>{false},
                 parallel != std::vector<int>{1});
  if (!json) print_md_header(cols);

  for (Test& t : plan) {
    runtime::ContextParams cp;
    cp.n_ctx = static_cast<uint32_t>(t.n_tokens());
    cp.n_seq_max = static_cast<uint32_t>(t.n_parallel);
    cp.n_ubatch = static_cast<uint32_t>(std::min(t.n_ubatch, t.n_batch));  // llama.cpp: n_ubatch <= n_batch
    cp.n_threads = t.n_threads;
    cp.type_k = t.type_k;
    cp.type_v = t.type_v;
    cp.flash_attn = t.flash_attn;
    runtime::Context ctx(model, cp);
    t.test_time = utc_now_rfc3339();
    if (!o.no_warmup) {
      if (t.n_prompt > 0) run_prompt(ctx, t.n_prompt, t.n_batch, src);
      if (t.n_gen > 0) {
        ctx.kv_cache().clear();
        run_gen(ctx, 1, t.n_parallel, src);
      }
    }
    for (int i = 0; i < o.reps; ++i) {
      ctx.kv_cache().clear();
      const uint64_t t0 = now_ns();
      if (t.n_prompt > 0) run_prompt(ctx, t.n_prompt, t.n_batch, src);
      if (t.n_gen > 0) run_gen(ctx, t.n_gen, t.n_parallel, src);
      t.samples_ns.push_back(std::max<uint64_t>(1, now_ns() - t0));
    }
    if (!json) print_md_row(cols, t, desc, size_bytes, n_params);
  }

  if (!json) return 0;
  const uint64_t rss = peak_rss_bytes();
  const uint64_t read_per_token = weights_read_per_token(model->file());
  const std::string cpu = cpu_info();
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (const Test& t : plan) {
    const std::vector<double> ts = t.samples_ts();
    nlohmann::ordered_json j;
    j["cpu_info"] = cpu;
    j["gpu_info"] = "";
    j["backends"] = "CPU";
    j["model_filename"] = o.model;
    j["model_type"] = desc;
    j["model_size"] = size_bytes;
    j["model_n_params"] = n_params;
    j["n_batch"] = t.n_batch;
    j["n_ubatch"] = t.n_ubatch;
    j["n_threads"] = t.n_threads;
    j["type_k"] = runtime::kv_cache_type_name(t.type_k);
    j["type_v"] = runtime::kv_cache_type_name(t.type_v);
    j["n_gpu_layers"] = 0;
    j["flash_attn"] = t.flash_attn;
    j["n_prompt"] = t.n_prompt;
    j["n_gen"] = t.n_gen;
    j["n_depth"] = 0;
    j["n_parallel"] = t.n_parallel;  // not llama-bench's: sequences of a tg test (avg_ts counts all)
    j["test_time"] = t.test_time;
    j["avg_ns"] = avg_ns(t);
    j["stddev_ns"] = stddev_ns(t);
    j["avg_ts"] = mean(ts);
    j["stddev_ts"] = sample_stdev(ts);
    j["samples_ns"] = t.samples_ns;
    j["samples_ts"] = ts;
    j["cpu_path"] = kernels::cpu_path_name(kernels::active_cpu_path());  // scalar, avx2 or avx512 (HEARTH_CPU)
    j["peak_rss_bytes"] = rss;
    j["weights_read_per_token_bytes"] = read_per_token;  // tg: divide by the measured bandwidth
    a.push_back(std::move(j));
  }
  std::printf("%s\n", a.dump(2).c_str());
  return 0;
}

}  // namespace

void register_bench(CLI::App& app) {
  auto* sub = app.add_subcommand("bench", "Measure prompt and generation speed (llama-bench compatible), or memory bandwidth");
  auto o = std::make_shared<Opts>();
  sub->add_option("-m,--model", o->model, "GGUF model file");
  sub->add_option("-p,--n-prompt", o->n_prompt, "prompt lengths, tokens, comma-separated (0: no pp test)")->default_val("512");
  sub->add_option("-n,--n-gen", o->n_gen, "generated tokens, comma-separated (0: no tg test)")->default_val("128");
  sub->add_option("-t,--threads", o->threads, "thread counts, comma-separated (default: all cores; with --bandwidth: 1,all)");
  sub->add_option("-r,--repetitions", o->reps_text, "timed repetitions of each test (passes of --bandwidth)")->default_val("5");
  sub->add_option("-b,--batch-size", o->n_batch, "batch sizes n_batch, comma-separated")->default_val(std::to_string(kDefaultBatch));
  sub->add_option("--ubatch-size", o->n_ubatch, "micro-batch sizes n_ubatch, comma-separated (also -ub)")
      ->default_val(std::to_string(kDefaultUbatch));
  sub->add_option("--cache-type-k", o->type_k,
                  "KV cache types of K, comma-separated: f16, bf16, q8_0, q4_0 (also -ctk)")
      ->default_val("f16");
  sub->add_option("--cache-type-v", o->type_v, "KV cache types of V, comma-separated (also -ctv)")->default_val("f16");
  sub->add_option("--flash-attn", o->flash_attn,
                  "flash attention, comma-separated 0/1 (also -fa; types other than f16 always use it)")
      ->default_val("0");
  sub->add_option("--parallel", o->parallel,
                  "sequences generated together in the tg tests, comma-separated (t/s counts all of them)")
      ->default_val("1");
  sub->add_option("-o,--output", o->output, "output format: md (table) or json")->default_val("md");
  sub->add_option("-s,--seed", o->seed, "seed of the random token ids")->default_val(1);
  sub->add_flag("--no-warmup", o->no_warmup, "skip the warm-up run before each test");
  sub->add_flag("--bandwidth", o->bandwidth, "measure memory read bandwidth instead of a model");
  sub->add_option("--bytes", o->bytes, "bandwidth probe buffer size (default 1G; K, M, G suffixes)");
  sub->allow_extras();  // llama-bench's two-letter "-ub", which CLI11 cannot name
  add_command(app, sub, [o, sub] {
    const std::vector<std::string> extra = sub->remaining();
    for (size_t i = 0; i < extra.size(); ++i) {
      if (extra[i] == "-ub" && i + 1 < extra.size()) o->n_ubatch = extra[++i];
      else if (extra[i].rfind("-ub=", 0) == 0) o->n_ubatch = extra[i].substr(4);
      else if (extra[i] == "-ub") throw Error("-ub: missing value (a micro-batch size such as 512)");
      else throw Error("unknown argument '" + extra[i] + "' (see hearth bench --help)");
    }
    if (o->output != "md" && o->output != "json")
      throw Error("-o: unknown output format '" + o->output + "' (md or json)");
    const std::vector<int> reps = parse_bounded_list("-r", o->reps_text, 1, "repetition count");
    if (reps.size() != 1) throw Error("-r: give one repetition count, not a list");
    o->reps = reps[0];
    const int hw = kernels::ThreadPool::hardware_threads();
    std::vector<int> threads;
    if (!o->threads.empty()) threads = parse_bounded_list("-t", o->threads, 1, "thread count");
    else if (o->bandwidth && hw > 1) threads = {1, hw};
    else threads = {hw};
    const bool json = o->output == "json";
    if (o->bandwidth) {
      if (!o->model.empty()) throw Error("--bandwidth measures memory, not a model: leave out -m");
      return run_bandwidth(*o, threads, json);
    }
    if (!o->bytes.empty()) throw Error("--bytes only applies to --bandwidth");
    return run_bench(*o, threads, json);
  });
}

}  // namespace hearth::app
