// The hearth program end to end: each command on real files, its output format, its errors
// (one line on stderr, non-zero exit, never a crash) and Ctrl-C during generation.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "gguf/gguf.h"
#include "model/model.h"
#include "runtime/eval.h"

extern char** environ;

namespace {

const std::string kModels = std::string(HEARTH_TESTDATA_DIR) + "/models/";
const std::string kTokenizer = std::string(HEARTH_TESTDATA_DIR) + "/tokenizer/";

struct Result {
  int exit_code = -1;
  std::string out, err;
};

// Copies the GGUF file `src` to `dst` with tensor `name` retyped to `type` (its data cut or
// zero-padded to the new size): a file whose only fault is one tensor type.
std::string with_tensor_type(const std::string& src, const std::string& dst, const std::string& name,
                             hearth::quant::GgmlType type, const std::string& arch = "") {
  const hearth::gguf::File f = hearth::gguf::File::open(src);
  hearth::gguf::Writer w;
  const std::string from = *f.get<std::string>("general.architecture");
  for (const auto& [k, v] : f.metadata()) {
    // With `arch`: the file relabelled as that architecture (its keys renamed).
    if (!arch.empty() && k.rfind(from + ".", 0) == 0) w.set(arch + k.substr(from.size()), v);
    else w.set(k, v);
  }
  if (!arch.empty()) w.set("general.architecture", hearth::gguf::Value::of(arch));
  for (const hearth::gguf::TensorInfo& t : f.tensors())
    w.add_tensor(t.name, t.name == name ? type : t.type, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims));
  w.begin(dst);
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto data = f.tensor_data(f.tensors()[i]);
    std::vector<uint8_t> bytes(data.begin(), data.end());
    bytes.resize(w.tensors()[i].nbytes, 0);
    w.write_data(bytes);
  }
  w.finish();
  return dst;
}

std::string temp_path(const std::string& name) {
  // The pid keeps test programs running at the same time (other checkouts) apart.
  return (std::filesystem::temp_directory_path() / ("hearth-cli-test-" + std::to_string(getpid()) + "-" + name)).string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Starts `hearth args...` with stdout/stderr going to files; returns its pid.
pid_t spawn(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> full{HEARTH_BINARY};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, HEARTH_BINARY, &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

Result wait_for(pid_t pid, const std::string& out, const std::string& err) {
  int status = 0;
  waitpid(pid, &status, 0);
  Result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

Result hearth(const std::vector<std::string>& args) {
  const std::string out = temp_path("stdout"), err = temp_path("stderr");
  return wait_for(spawn(args, out, err), out, err);
}

// An error is one line on stderr naming `what`, with exit code 1 (not a crash).
void expect_error(const Result& r, const std::string& what) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

std::string tokens_of(const std::string& ref) {
  std::ifstream in(kModels + "refs/" + ref + ".json");
  const auto j = nlohmann::json::parse(in);
  std::string s;
  for (int t : j["tokens"]) s += (s.empty() ? "" : " ") + std::to_string(t);
  return s;
}

TEST(Cli, EvalDumpsTheLogitsOfEveryPositionAndGreedyTokens) {
  const std::string dump = temp_path("logits.bin");
  for (const bool sequential : {false, true}) {
    std::vector<std::string> args{"eval", kModels + "llama-F16.gguf", "--tokens", tokens_of("llama-F16.s64"),
                                  "--dump-logits", dump, "--greedy", "16", "-t", "2"};
    if (sequential) args.push_back("--sequential");
    const Result r = hearth(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // The greedy continuation llama.cpp produced for this file and sequence.
    std::ifstream in(kModels + "refs/llama-F16.s64.json");
    const auto ref = nlohmann::json::parse(in);
    std::string want;
    for (int t : ref["greedy"]["tokens"]) want += (want.empty() ? "" : " ") + std::to_string(t);
    EXPECT_EQ(r.out, want + "\n");
    // The dump is float32 [64][4096], identical to what the library computes in process.
    const std::string bytes = slurp(dump);
    ASSERT_EQ(bytes.size(), 64u * 4096 * 4);
    auto model = hearth::model::Model::load(kModels + "llama-F16.gguf");
    hearth::runtime::ContextParams cp;
    cp.n_ctx = 64;
    hearth::runtime::Context ctx(model, cp);
    const std::vector<int32_t> toks = ref["tokens"].get<std::vector<int32_t>>();
    const std::vector<float> logits = hearth::runtime::evaluate(ctx, toks, sequential);
    EXPECT_EQ(std::memcmp(bytes.data(), logits.data(), bytes.size()), 0);
  }
}

TEST(Cli, TokenizeAddsBosAndParsesSpecialTokensOnRequest) {
  const std::string vocab = kTokenizer + "ggml-vocab-llama-spm.gguf";
  Result r = hearth({"tokenize", vocab, "Hello world", "--ids"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 15043 3186\n");
  r = hearth({"tokenize", vocab, "Hello world", "--ids", "--no-bos"});
  EXPECT_EQ(r.out, "15043 3186\n");
  r = hearth({"tokenize", vocab, "<s>Hi", "--ids", "--no-bos", "--parse-special"});
  EXPECT_EQ(r.out.substr(0, 2), "1 ");
  r = hearth({"tokenize", vocab, "<s>Hi", "--ids", "--no-bos"});
  EXPECT_NE(r.out.substr(0, 2), "1 ");
  r = hearth({"tokenize", vocab, "Hello"});
  EXPECT_NE(r.out.find("15043 -> ' Hello'"), std::string::npos) << r.out;
  const std::string text = temp_path("text.txt");
  std::ofstream(text) << "Hello world";
  r = hearth({"tokenize", vocab, "--file", text, "--ids"});
  EXPECT_EQ(r.out, "1 15043 3186\n");
}

TEST(Cli, ShowDescribesTheModel) {
  Result r = hearth({"show", kModels + "qwen3-Q4_K_M.gguf", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "qwen3");
  EXPECT_EQ(j["n_params"], 3410432);
  EXPECT_EQ(j["n_layer"], 3);
  EXPECT_EQ(j["head_dim"], 128);
  EXPECT_EQ(j["context_length"].get<int>(), j["metadata"]["qwen3.context_length"].get<int>());
  EXPECT_EQ(j["tensor_types"]["Q6_K"]["count"], 3);
  EXPECT_EQ(j["tensor_types"]["Q4_K"]["count"], 19);
  EXPECT_EQ(j["tokenizer"]["model"], "llama");
  EXPECT_EQ(j["chat_template"], false);
  r = hearth({"show", kModels + "llama-F16.gguf"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("architecture   llama"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("parameters     3.41 M"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("F16"), std::string::npos);
  // --memory: what a context allocates, per layer kind.
  r = hearth({"show", "--memory", kModels + "qwen3-F16.gguf", "-c", "1000", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto m = nlohmann::json::parse(r.out);
  EXPECT_EQ(m["kv_cache_bytes"], 3 * 1000 * (256 + 256) * 2);
  EXPECT_EQ(m["layers"][0]["kind"], "full attention");
  EXPECT_EQ(m["total_bytes"].get<uint64_t>(), m["weights_bytes"].get<uint64_t>() + m["kv_cache_bytes"].get<uint64_t>());
  // With cache types (-ctk / -ctv): Q8_0 rows of 256 values are 8 blocks x 34 bytes, Q4_0 8 x 18.
  r = hearth({"show", "--memory", kModels + "qwen3-F16.gguf", "-c", "1000", "-ctk", "q8_0", "--cache-type-v", "q4_0",
              "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto mq = nlohmann::json::parse(r.out);
  EXPECT_EQ(mq["kv_cache_bytes"], 3 * 1000 * (272 + 144));
  EXPECT_EQ(mq["type_k"], "q8_0");
  EXPECT_EQ(mq["type_v"], "q4_0");
  r = hearth({"show", "--memory", kModels + "qwen3-F16.gguf", "-ctv", "q4_k"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--cache-type-v: unsupported KV cache type 'q4_k' (valid: f16, bf16, q8_0, q4_0)"),
            std::string::npos)
      << r.err;
  // show reads any GGUF, even an architecture hearth cannot run.
  r = hearth({"show", kModels + "gemma4-F16.gguf"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

class CliWithTinyModel : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = temp_path("tiny-llama.gguf");
    const Result r = hearth({"synth", "tiny-llama", "-o", path_, "--type", "Q8_0", "--seed", "4"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static std::string path_;
};
std::string CliWithTinyModel::path_;

TEST_F(CliWithTinyModel, RunStreamsTextAndReportsSpeed) {
  const Result r = hearth({"run", path_, "-p", "Four score and seven", "-n", "12", "--seed", "3", "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Four score and seven", 0), 0u) << r.out;
  EXPECT_GT(r.out.size(), std::string("Four score and seven").size());
  EXPECT_NE(r.err.find("prompt:"), std::string::npos);
  EXPECT_NE(r.err.find("generation:    12 tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos);
  // Same seed, same text; greedy is reproducible too.
  const Result again = hearth({"run", path_, "-p", "Four score and seven", "-n", "12", "--seed", "3"});
  EXPECT_EQ(again.out, r.out);
  const Result g1 = hearth({"run", path_, "-p", "We the People", "-n", "8", "--temp", "0"});
  const Result g2 = hearth({"run", path_, "-p", "We the People", "-n", "8", "--temp", "0", "--seed", "99"});
  EXPECT_EQ(g1.out, g2.out);
}

// --json-schema / --grammar: whatever the random model prefers, the text it writes after the
// prompt is a document of the schema, and generation ends when the grammar is complete.
TEST_F(CliWithTinyModel, RunFollowsAJsonSchemaOrAGrammar) {
  const std::string schema =
      R"({"type": "object", "properties": {"pick": {"enum": ["red", "green"]}, "n": {"type": "integer"}},)"
      R"( "required": ["pick", "n"], "additionalProperties": false})";
  for (const char* seed : {"1", "2", "3"}) {
    const Result r = hearth({"run", path_, "-p", "JSON:", "-n", "400", "--seed", seed, "--temp", "1", "-j", schema});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(r.out.rfind("JSON:", 0), 0u) << r.out;
    const auto doc = nlohmann::json::parse(r.out.substr(5));  // throws if the text is not JSON
    ASSERT_TRUE(doc.is_object()) << r.out;
    EXPECT_EQ(doc.size(), 2u) << r.out;
    EXPECT_TRUE(doc["pick"] == "red" || doc["pick"] == "green") << r.out;
    EXPECT_TRUE(doc["n"].is_number_integer()) << r.out;
  }
  const Result g = hearth({"run", path_, "-p", "Answer:", "-n", "50", "--seed", "4", "--grammar", R"(root ::= "yes" | "no")"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_TRUE(g.out == "Answer:yes\n" || g.out == "Answer:no\n") << g.out;
  expect_error(hearth({"run", path_, "-p", "x", "--grammar", "root ::= undefined_rule"}), "undefined_rule");
  expect_error(hearth({"run", path_, "-p", "x", "-j", "{not json"}), "--json-schema is not valid JSON");
}

TEST_F(CliWithTinyModel, RunWithCacheTypes) {
  // tiny-llama has head_dim 16: bf16 (blocks of 1) works, q8_0 (blocks of 32) cannot hold a head.
  Result r = hearth({"run", path_, "-p", "We the People", "-n", "4", "--temp", "0", "-ctk", "bf16", "-ctv", "bf16"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("We the People", 0), 0u) << r.out;
  r = hearth({"run", path_, "-p", "We the People", "-n", "4", "-ctk", "q8_0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("K cache type q8_0 needs head_dim_k (16) to be a multiple of its block size 32"),
            std::string::npos)
      << r.err;
  r = hearth({"run", path_, "-p", "We", "-n", "1", "-ctv", "q4"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--cache-type-v: unsupported KV cache type 'q4' (valid: f16, bf16, q8_0, q4_0)"),
            std::string::npos)
      << r.err;
  r = hearth({"run", path_, "-p", "We", "-n", "1", "-ctk", "bf16", "-fa", "off"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("need flash attention"), std::string::npos) << r.err;
  r = hearth({"run", path_, "-p", "We", "-n", "1", "-fa", "sometimes"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--flash-attn: unknown value 'sometimes' (on, off or auto)"), std::string::npos) << r.err;
}

TEST(Cli, EvalWithQuantizedCacheStaysCloseToF16) {
  // hearth eval -ctk q8_0 -ctv q8_0 on llama-F16 (head_dim 64): the logits move, but little
  // (kv_cache_types_test.cpp measures this in detail).
  const std::string f16 = temp_path("eval-f16.bin"), q8 = temp_path("eval-q8.bin");
  const std::string model = kModels + "llama-F16.gguf";
  const std::string tokens = "1 550 1047 1396 2592 3229 3919";
  Result r = hearth({"eval", model, "--tokens", tokens, "--dump-logits", f16});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = hearth({"eval", model, "--tokens", tokens, "--dump-logits", q8, "-ctk", "q8_0", "-ctv", "q8_0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string a = slurp(f16), b = slurp(q8);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size() % 4, 0u);
  std::vector<float> x(a.size() / 4), y(b.size() / 4);
  std::memcpy(x.data(), a.data(), a.size());
  std::memcpy(y.data(), b.data(), b.size());
  double max_diff = 0;
  for (size_t i = 0; i < x.size(); ++i) max_diff = std::max(max_diff, std::fabs(static_cast<double>(x[i]) - y[i]));
  EXPECT_GT(max_diff, 0.0);
  EXPECT_LT(max_diff, 0.5);  // logit std ~1
  std::filesystem::remove(f16);
  std::filesystem::remove(q8);
}

TEST_F(CliWithTinyModel, CtrlCStopsGenerationCleanly) {
  const std::string out = temp_path("run-out"), err = temp_path("run-err");
  const pid_t pid = spawn({"run", path_, "-p", "Once", "-n", "-1", "-c", "100000", "--ignore-eos", "-t", "1"}, out, err);
  // The prompt is echoed after the handler is installed: wait for it, then a little longer.
  for (int i = 0; i < 3000 && slurp(out).empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(pid, SIGINT);
  const Result r = wait_for(pid, out, err);
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_NE(r.err.find("(interrupted)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
}

TEST_F(CliWithTinyModel, ErrorsAreOneClearLine) {
  expect_error(hearth({"run", "/nonexistent/m.gguf", "-p", "hi"}), "/nonexistent/m.gguf");
  const std::string not_gguf = temp_path("not.gguf");
  std::ofstream(not_gguf) << "this is not a model";
  expect_error(hearth({"run", not_gguf, "-p", "hi"}), "not a GGUF file");
  expect_error(hearth({"run",
                       with_tensor_type(kModels + "llama-F16.gguf", temp_path("falcon.gguf"), "", hearth::quant::GgmlType::F16,
                                        "falcon"),
                       "-p", "hi"}),
               "unsupported architecture 'falcon'");
  expect_error(hearth({"run", with_tensor_type(kModels + "qwen3-F16.gguf", temp_path("nvfp4.gguf"), "blk.0.ffn_up.weight",
                                               hearth::quant::GgmlType::NVFP4),
                       "-p", "hi"}),
               "NVFP4");
  expect_error(hearth({"run", path_, "-p", "Four score and seven years ago", "-c", "4"}), "does not fit in the context");
  expect_error(hearth({"run", path_, "-p", "hi", "--top-p", "3"}), "top_p");
  expect_error(hearth({"eval", path_, "--tokens", "1 2 x", "--dump-logits", temp_path("x.bin")}), "'x' is not a token id");
  expect_error(hearth({"eval", path_, "--tokens", "1 99999", "--dump-logits", temp_path("x.bin")}), "out of range");
  expect_error(hearth({"synth", "no-such-model", "-o", temp_path("y.gguf")}), "unknown model shape");
  std::vector<char> truncated(1000);
  std::ifstream(path_, std::ios::binary).read(truncated.data(), 1000);
  const std::string cut = temp_path("cut.gguf");
  std::ofstream(cut, std::ios::binary).write(truncated.data(), 1000);
  expect_error(hearth({"show", cut}), "invalid GGUF");
  // Usage errors come from the argument parser, with its own non-zero exit code.
  EXPECT_NE(hearth({"run", "--no-such-option"}).exit_code, 0);
}

TEST(Cli, RunWithoutAModelUsesTheEmbeddedDefault) {
  const std::string model = std::string(HEARTH_SOURCE_DIR) + "/models/hearth-kjv-Q8_0.gguf";
  const Result a = hearth({"run", "-p", "And God said", "-n", "24", "--seed", "5"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const Result b = hearth({"run", model, "-p", "And God said", "-n", "24", "--seed", "5"});
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.out.rfind("And God said", 0), 0u);
  EXPECT_GT(a.out.size(), 40u);
  const Result show = hearth({"show", "--json"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_EQ(nlohmann::json::parse(show.out)["name"], "hearth-kjv");
}

TEST(Cli, PerplexityPrintsLlamaCppsFinalEstimateLine) {
  const std::string model = std::string(HEARTH_SOURCE_DIR) + "/models/hearth-kjv-Q8_0.gguf";
  const std::string text = std::string(HEARTH_SOURCE_DIR) + "/models/kjv-heldout-ci.txt";
  const Result r = hearth({"perplexity", model, text, "-c", "128", "--chunks", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("[1]", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(",[3]"), std::string::npos) << r.out;
  const size_t at = r.out.find("Final estimate: PPL = ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const double ppl = std::stod(r.out.substr(at + 22));
  EXPECT_GT(ppl, 1.0);
  EXPECT_LT(ppl, 1000.0);
  // Without -c the window is the model's training context (256) when that is below 512.
  const Result d = hearth({"perplexity", model, text, "--chunks", "1"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_NE(d.err.find("n_ctx = 256"), std::string::npos) << d.err;
  // KL divergence from the F16 file, llama.cpp's summary lines.
  const Result k = hearth({"perplexity", model, text, "--chunks", "2", "--kl-divergence",
                           std::string(HEARTH_SOURCE_DIR) + "/models/hearth-kjv-F16.gguf"});
  ASSERT_EQ(k.exit_code, 0) << k.err;
  const size_t kat = k.out.find("Mean KLD       : ");
  ASSERT_NE(kat, std::string::npos) << k.out;
  const double kld = std::stod(k.out.substr(kat + 17));
  EXPECT_GT(kld, 0.0);
  EXPECT_LT(kld, 0.01);  // Q8_0 of trained weights
  EXPECT_NE(k.out.find("Same top p"), std::string::npos) << k.out;
  expect_error(hearth({"perplexity", model, text, "-c", "100000"}), "needs at least");
  expect_error(hearth({"perplexity", model, "/no/such.txt"}), "/no/such.txt");
}

TEST(Cli, QuantizeWritesLlamaQuantizesFileAndNamesWhatIsWrong) {
  const std::string out = temp_path("q4km.gguf");
  const Result r = hearth({"quantize", kModels + "llama-F16.gguf", out, "q4_k_m", "-t", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Q4_K_M"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bits per weight"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("token_embd.weight F16 -> Q6_K"), std::string::npos) << r.err;  // the progress lines
  EXPECT_TRUE(slurp(out) == slurp(kModels + "llama-Q4_K_M.gguf")) << "not byte for byte llama-quantize's file";
  expect_error(hearth({"quantize", kModels + "llama-F16.gguf", out, "Q4_K_X"}), "unknown file type 'Q4_K_X'");
  expect_error(hearth({"quantize", kModels + "llama-F16.gguf", out, "IQ2_XXS"}), "IQ2_XXS");
  expect_error(hearth({"quantize", kModels + "llama-Q8_0.gguf", out, "Q4_K_M"}), "--allow-requantize");
  expect_error(hearth({"quantize", kModels + "llama-F16.gguf", out, "Q4_K_M", "--tensor-type", "attn_v"}),
               "PATTERN=TYPE");
  std::filesystem::remove(out);
}

}  // namespace
