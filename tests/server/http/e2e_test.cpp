// `hearth serve` end to end: the real program with the real engine on the embedded demo model
// (--port 0), driven over HTTP. Compiled only when src/server/engine.cpp is in the tree.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "server/util.h"

extern char** environ;

namespace hearth::server {
namespace {

using json = nlohmann::json;

// A `hearth serve --port 0 ARGS...` child process; the port is read from its stderr.
class Serve {
 public:
  explicit Serve(std::vector<std::string> args) {
    signal(SIGPIPE, SIG_IGN);
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    std::vector<std::string> full{HEARTH_BINARY, "serve", "--port", "0", "-t", "2", "--no-log"};
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid, HEARTH_BINARY, &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    err_fd = fds[0];
    const std::regex re("listening on http://[^:]+:([0-9]+)");
    std::string line;
    char c;
    while (read(err_fd, &c, 1) == 1) {
      log += c;
      std::smatch m;
      if (c == '\n' && std::regex_search(log, m, re)) {
        port = std::stoi(m[1]);
        break;
      }
    }
    EXPECT_GT(port, 0) << log;
  }
  ~Serve() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    close(err_fd);
  }
  // SIGTERM; returns the exit status.
  int terminate() {
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  httplib::Result post(const std::string& path, const json& body) const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120);
    return c.Post(path.c_str(), body.dump(), "application/json");
  }
  httplib::Result get(const std::string& path) const {
    httplib::Client c("127.0.0.1", port);
    return c.Get(path.c_str());
  }

  pid_t pid = -1;
  int err_fd = -1;
  int port = 0;
  std::string log;
};

json chat(const std::string& text, json extra = json::object()) {
  json b = {{"model", "hearth-kjv"}, {"messages", {{{"role", "user"}, {"content", text}}}}, {"max_tokens", 12}};
  b.update(extra);
  return b;
}

TEST(HearthServe, ChatStreamEmbeddingsAndShutdown) {
  Serve s({"-c", "256", "--parallel", "2"});
  auto r = s.post("/v1/chat/completions", chat("And God said", {{"temperature", 0}}));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json b = json::parse(r->body);
  EXPECT_TRUE(b["choices"][0]["message"]["content"].is_string());
  EXPECT_LE(b["usage"]["completion_tokens"].get<int>(), 12);
  EXPECT_GT(b["usage"]["prompt_tokens"].get<int>(), 3);
  // Greedy twice: the same text, and the second prompt comes from the cache.
  auto r2 = s.post("/v1/chat/completions", chat("And God said", {{"temperature", 0}}));
  json b2 = json::parse(r2->body);
  EXPECT_EQ(b2["choices"][0]["message"]["content"], b["choices"][0]["message"]["content"]);
  EXPECT_GT(b2["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0);

  r = s.post("/v1/chat/completions", chat("In the beginning", {{"stream", true}, {"stream_options", {{"include_usage", true}}}}));
  ASSERT_EQ(r->status, 200);
  EXPECT_TRUE(r->body.ends_with("data: [DONE]\n\n"));
  EXPECT_NE(r->body.find("\"usage\""), std::string::npos);

  r = s.post("/api/chat", chat("In the beginning", {{"options", {{"num_predict", 5}}}}));
  size_t lines = 0;
  for (char c : r->body) lines += c == '\n';
  EXPECT_GE(lines, 2u);

  r = s.post("/v1/embeddings", {{"model", "hearth-kjv"}, {"input", {"In the beginning", "God"}}});
  ASSERT_EQ(r->status, 200) << r->body;
  const json f = json::parse(r->body);
  r = s.post("/v1/embeddings", {{"model", "hearth-kjv"}, {"input", {"In the beginning", "God"}}, {"encoding_format", "base64"}});
  const json e64 = json::parse(r->body);
  for (int i = 0; i < 2; ++i) {
    const std::string bytes = base64_decode(e64["data"][i]["embedding"].get<std::string>());
    const auto floats = f["data"][i]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(bytes.size(), floats.size() * 4);
    std::vector<float> d(floats.size());
    std::memcpy(d.data(), bytes.data(), bytes.size());
    EXPECT_EQ(d, floats);
  }
  EXPECT_EQ(s.terminate(), 0);
}

TEST(HearthServe, JsonSchemaOutputValidates) {
  Serve s({"-c", "512"});
  const json schema = {{"type", "object"},
                       {"properties", {{"name", {{"type", "string"}, {"maxLength", 12}}}, {"age", {{"type", "integer"}}}}},
                       {"required", {"name", "age"}}};
  auto r = s.post("/v1/chat/completions",
                  chat("Who was the first man?", {{"max_tokens", 200},
                                                  {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "p"}, {"schema", schema}}}}}}));
  ASSERT_EQ(r->status, 200) << r->body;
  const json b = json::parse(r->body);
  ASSERT_EQ(b["choices"][0]["finish_reason"], "stop") << r->body;
  const json out = json::parse(b["choices"][0]["message"]["content"].get<std::string>());
  EXPECT_TRUE(out["name"].is_string());
  EXPECT_LE(out["name"].get<std::string>().size(), 12u);
  EXPECT_TRUE(out["age"].is_number_integer());
}

TEST(HearthServe, ContextOverflowStopAndDisconnect) {
  Serve s({"-c", "64", "--parallel", "1"});
  std::string text;
  for (int i = 0; i < 60; ++i) text += "and the earth ";
  auto r = s.post("/v1/chat/completions", chat(text));
  ASSERT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("maximum context length is 64 tokens"), std::string::npos);
  // Ollama's num_ctx below -c is the request's context: a prompt that fits -c but not it is a
  // 400 with its numbers, and generation ends when prompt + output reach it.
  r = s.post("/api/generate", {{"model", "hearth-kjv"}, {"prompt", "and the earth and the earth and the earth"},
                               {"stream", false}, {"options", {{"num_ctx", 4}}}});
  ASSERT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("maximum context length is 4 tokens"), std::string::npos) << r->body;
  r = s.post("/api/generate", {{"model", "hearth-kjv"}, {"prompt", "God"}, {"raw", true}, {"stream", false},
                               {"options", {{"num_ctx", 6}, {"temperature", 0}}}});
  ASSERT_EQ(r->status, 200) << r->body;
  const json g = json::parse(r->body);
  EXPECT_EQ(g["done_reason"], "length") << r->body;
  EXPECT_EQ(g["prompt_eval_count"].get<int>() + g["eval_count"].get<int>(), 6) << r->body;
  // Logprobs shape from the real engine.
  r = s.post("/v1/chat/completions", chat("God", {{"logprobs", true}, {"top_logprobs", 3}, {"max_tokens", 4}}));
  const json lp = json::parse(r->body)["choices"][0]["logprobs"]["content"];
  ASSERT_FALSE(lp.empty());
  for (const json& t : lp) {
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    EXPECT_EQ(t["top_logprobs"].size(), 3u);
    EXPECT_GE(t["top_logprobs"][0]["logprob"].get<double>(), t["logprob"].get<double>() - 1e-4);
  }
  // A disconnected streaming client frees the only slot.
  httplib::Client c("127.0.0.1", s.port);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = chat("God", {{"stream", true}, {"max_tokens", 100000}, {"ignore_eos", true}}).dump();
  int chunks = 0;
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
  c.send(req);
  bool idle = false;
  for (int i = 0; i < 100 && !idle; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    idle = s.get("/metrics")->body.find("llamacpp:requests_processing 0") != std::string::npos;
  }
  EXPECT_TRUE(idle);
  r = s.post("/v1/chat/completions", chat("God", {{"max_tokens", 2}}));
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace hearth::server
