// `hearth template` end to end: a conformance case renders byte for byte on stdout, a GGUF's
// tokenizer.chat_template renders with the vocabulary's BOS token, and errors (the template's
// raise_exception, bad JSON, a GGUF without a template) are one line on stderr with exit code 1.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

extern char** environ;

namespace {

const std::string kTemplates = std::string(HEARTH_TESTDATA_DIR) + "/chat-templates/";
const std::string kTokenizer = std::string(HEARTH_TESTDATA_DIR) + "/tokenizer/";

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("hearth-template-cli-" + name)).string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

CliResult hearth(std::vector<std::string> args) {
  const std::string out = temp_path("stdout"), err = temp_path("stderr");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  args.insert(args.begin(), HEARTH_BINARY);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  CliResult r;
  const int rc = posix_spawn(&pid, HEARTH_BINARY, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return r;
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// The case called `name` of a conformance file.
nlohmann::ordered_json find_case(const std::string& file, const std::string& name) {
  const auto j = nlohmann::ordered_json::parse(slurp(kTemplates + file));
  for (const auto& c : j.at("cases"))
    if (c.at("name") == name) return c;
  ADD_FAILURE() << "no case " << name << " in " << file;
  return {};
}

TEST(TemplateCli, RendersAConformanceCaseByteExactly) {
  // Qwen3 with tools and a tool-call round trip, and with enable_thinking=false from `extra`.
  for (const char* name : {"tools_roundtrip", "thinking_off"}) {
    const auto c = find_case("Qwen-Qwen3-0.6B.jinja.cases.json", name);
    const std::string ctx = temp_path(std::string(name) + ".json");
    write(ctx, c.dump());
    const CliResult r =
        hearth({"template", kTemplates + "Qwen-Qwen3-0.6B.jinja", "--context", ctx, "--date", "2026-07-26"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, c.at("expected").get<std::string>()) << name;
    EXPECT_EQ(r.err, "");
  }
}

TEST(TemplateCli, RendersTheChatTemplateOfAGgufWithItsBosToken) {
  // ggml-vocab-phi-3.gguf: "{{ bos_token }}{% for message in messages %}..." and BOS id 1 = "<s>".
  const std::string vocab = kTokenizer + "ggml-vocab-phi-3.gguf";
  const std::string ctx = temp_path("phi3.json");
  write(ctx, R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})");
  CliResult r = hearth({"template", vocab, "--context", ctx});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<s><|user|>\nHi<|end|>\n<|assistant|>\nHello<|end|>\n");
  // A bos_token in the context wins over the vocabulary's.
  write(ctx, R"({"messages": [{"role": "user", "content": "Hi"}], "bos_token": "[B]"})");
  r = hearth({"template", vocab, "--context", ctx});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[B]<|user|>\nHi<|end|>\n<|assistant|>\n");
}

TEST(TemplateCli, ErrorsAreOneLineOnStderrWithExitCode1) {
  // Gemma 2 refuses a system message with raise_exception: the message, at the template position.
  const auto c = find_case("google-gemma-2-2b-it.jinja.cases.json", "system_user");
  const std::string ctx = temp_path("gemma2.json");
  write(ctx, c.dump());
  const std::string tmpl = kTemplates + "google-gemma-2-2b-it.jinja";
  const size_t column = slurp(tmpl).find("raise_exception('System") + 1;
  CliResult r = hearth({"template", tmpl, "--context", ctx});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "hearth: error: " + tmpl + ":1:" + std::to_string(column) + ": System role not supported\n");

  write(ctx, "{\"messages\": [");
  r = hearth({"template", tmpl, "--context", ctx});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not valid JSON"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  const std::string bad = temp_path("bad.jinja");
  write(bad, "line one\n{% for m in messages %}{{ m.content }}\n");
  write(ctx, R"({"messages": []})");
  r = hearth({"template", bad, "--context", ctx});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(bad + ":2:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Unexpected end of template"), std::string::npos) << r.err;

  r = hearth({"template", kTokenizer + "ggml-vocab-llama-spm.gguf", "--context", ctx});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("has no tokenizer.chat_template"), std::string::npos) << r.err;
}

}  // namespace
