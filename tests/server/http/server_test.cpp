// The HTTP routes end to end over a socket (httplib::Client), with the scripted FakeBackend in
// place of the engine: JSON shapes of every route, SSE and NDJSON framing, thinking and tool calls
// split from the content, stop strings, n, logprobs, errors and their status codes, API keys, the
// queue limit, keep_alive, client disconnects.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "fake_backend.h"
#include "server/http_server.h"
#include "server/util.h"

namespace hearth::server {
namespace {

using json = nlohmann::json;
using test::FakeBackend;
using test::FakeConfig;

const std::string kDemoF16 = std::string(HEARTH_SOURCE_DIR) + "/models/hearth-kjv-F16.gguf";

struct ServerSetup {
  uint32_t n_parallel = 2, max_queue = 8, n_ctx = 256;
  std::string api_key;
  bool two_models = true;
  int64_t keep_alive_ms = 300000;
};

class Server {
 public:
  explicit Server(ServerSetup s = {}) : cfg(std::make_shared<FakeConfig>()) {
    signal(SIGPIPE, SIG_IGN);
    RegistryOptions ro;
    ro.engine.n_parallel = s.n_parallel;
    ro.engine.max_queue = s.max_queue;
    ro.engine.n_ctx = s.n_ctx;
    ro.default_keep_alive_ms = s.keep_alive_ms;
    auto c = cfg;
    ro.factory = [c](std::shared_ptr<const model::Model> m, const EngineParams& p) -> std::shared_ptr<Backend> {
      return std::make_shared<FakeBackend>(std::move(m), p, c);
    };
    registry = std::make_unique<ModelRegistry>(ro);
    registry->add_default();
    if (s.two_models) registry->add_file(kDemoF16);
    ServerOptions so;
    so.port = 0;
    so.api_key = s.api_key;
    so.access_log = false;
    http = std::make_unique<HttpServer>(*registry, so);
    port = http->bind();
    thread = std::thread([this] { http->listen(); });
  }
  ~Server() {
    http->stop();
    thread.join();
    http.reset();
    registry.reset();
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(30);
    return c;
  }
  httplib::Result post(const std::string& path, const std::string& body, httplib::Headers h = {}) const {
    return client().Post(path.c_str(), h, body, "application/json");
  }
  httplib::Result get(const std::string& path, httplib::Headers h = {}) const { return client().Get(path.c_str(), h); }

  std::shared_ptr<FakeConfig> cfg;
  std::unique_ptr<ModelRegistry> registry;
  std::unique_ptr<HttpServer> http;
  std::thread thread;
  int port = 0;
};

// The JSON events of an SSE body; `done` says whether it ended with data: [DONE].
std::vector<json> sse_events(const std::string& body, bool* done) {
  std::vector<json> out;
  *done = false;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "an SSE event without its blank line";
    if (end == std::string::npos) break;
    const std::string ev = body.substr(pos, end - pos);
    pos = end + 2;
    if (ev.rfind(":", 0) == 0) continue;  // comment (ping)
    EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    const std::string data = ev.substr(6);
    EXPECT_FALSE(*done) << "data after [DONE]";
    if (data == "[DONE]") *done = true;
    else out.push_back(json::parse(data));
  }
  return out;
}

std::vector<json> ndjson_lines(const std::string& body) {
  std::vector<json> out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find('\n', pos);
    EXPECT_NE(end, std::string::npos) << "an NDJSON line without its newline";
    if (end == std::string::npos) break;
    out.push_back(json::parse(body.substr(pos, end - pos)));
    pos = end + 1;
  }
  return out;
}

json chat_body(const std::string& model, json extra = json::object()) {
  json b = {{"model", model}, {"messages", {{{"role", "user"}, {"content", "Say hello"}}}}};
  b.update(extra);
  return b;
}

void expect_openai_error(const httplib::Result& r, int status, const std::string& type) {
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, status) << r->body;
  const json b = json::parse(r->body);
  ASSERT_TRUE(b.contains("error")) << r->body;
  EXPECT_TRUE(b["error"]["message"].is_string());
  EXPECT_EQ(b["error"]["type"], type);
  EXPECT_TRUE(b["error"]["code"].is_string() || b["error"]["code"].is_null());
  EXPECT_TRUE(b["error"].contains("param"));
}

TEST(HttpServer, HealthRootVersion) {
  Server s;
  auto r = s.get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["status"], "ok");
  r = s.get("/");
  EXPECT_EQ(r->body, "Ollama is running");
  r = s.get("/api/version");
  EXPECT_TRUE(json::parse(r->body)["version"].is_string());
  EXPECT_FALSE(r->get_header_value("X-Request-Id").empty());
}

TEST(HttpServer, ModelListsAndShow) {
  Server s;
  auto r = s.get("/v1/models");
  ASSERT_EQ(r->status, 200);
  json b = json::parse(r->body);
  EXPECT_EQ(b["object"], "list");
  ASSERT_EQ(b["data"].size(), 2u);
  EXPECT_EQ(b["data"][0]["id"], "hearth-kjv:latest");
  EXPECT_EQ(b["data"][1]["id"], "hearth-kjv-f16:latest");
  for (const auto& m : b["data"]) {
    EXPECT_EQ(m["object"], "model");
    EXPECT_TRUE(m["created"].is_number_integer());
    EXPECT_TRUE(m["owned_by"].is_string());
    EXPECT_EQ(m["meta"]["loaded"], false);
  }
  EXPECT_EQ(b["models"].size(), 2u);

  r = s.get("/v1/models/hearth-kjv-f16:latest");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["id"], "hearth-kjv-f16:latest");
  r = s.get("/v1/models/hearth-kjv-f16%3Alatest");
  EXPECT_EQ(r->status, 200);
  expect_openai_error(s.get("/v1/models/gpt-4o"), 404, "not_found_error");

  r = s.get("/api/tags");
  b = json::parse(r->body);
  ASSERT_EQ(b["models"].size(), 2u);
  const json& t = b["models"][1];
  EXPECT_EQ(t["name"], "hearth-kjv-f16:latest");
  EXPECT_EQ(t["model"], t["name"]);
  EXPECT_EQ(t["size"], 11646208);
  EXPECT_EQ(t["digest"].get<std::string>().size(), 64u);
  EXPECT_TRUE(t["modified_at"].get<std::string>().ends_with("Z"));
  EXPECT_EQ(t["details"]["format"], "gguf");
  EXPECT_EQ(t["details"]["family"], "llama");
  EXPECT_EQ(t["details"]["quantization_level"], "F16");
  EXPECT_EQ(b["models"][0]["details"]["quantization_level"], "Q8_0");

  r = s.post("/api/show", R"({"model":"hearth-kjv-f16"})");
  ASSERT_EQ(r->status, 200) << r->body;
  b = json::parse(r->body);
  EXPECT_EQ(b["model_info"]["general.architecture"], "llama");
  EXPECT_TRUE(b["model_info"]["llama.context_length"].is_number_integer());
  EXPECT_EQ(b["model_info"]["tokenizer.ggml.tokens"], json::array());  // large arrays only with verbose
  EXPECT_TRUE(b["capabilities"].is_array());
  r = s.post("/api/show", R"({"model":"nope"})");
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body)["error"], "model 'nope' not found");
}

TEST(HttpServer, ChatCompletionNonStreaming) {
  Server s;
  s.cfg->set_script("Hello world, friend.");
  auto r = s.post("/v1/chat/completions", chat_body("hearth-kjv").dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json; charset=utf-8");
  const json b = json::parse(r->body);
  EXPECT_TRUE(b["id"].get<std::string>().starts_with("chatcmpl-"));
  EXPECT_EQ(b["object"], "chat.completion");
  EXPECT_TRUE(b["created"].is_number_integer());
  EXPECT_EQ(b["model"], "hearth-kjv");  // the requested string
  ASSERT_EQ(b["choices"].size(), 1u);
  EXPECT_EQ(b["choices"][0]["index"], 0);
  EXPECT_EQ(b["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(b["choices"][0]["message"]["content"], "Hello world, friend.");
  EXPECT_EQ(b["choices"][0]["finish_reason"], "stop");
  const json& u = b["usage"];
  EXPECT_GT(u["prompt_tokens"].get<int>(), 3);
  EXPECT_GT(u["completion_tokens"].get<int>(), 3);
  EXPECT_EQ(u["total_tokens"], u["prompt_tokens"].get<int>() + u["completion_tokens"].get<int>());
  EXPECT_EQ(u["prompt_tokens_details"]["cached_tokens"], 1);
  // The prompt went through the (built-in ChatML) template.
  const GenerationRequest last = s.cfg->last();
  EXPECT_EQ(u["prompt_tokens"], last.prompt.size());
  // Same route without /v1 (api.md 0.1).
  r = s.post("/chat/completions", chat_body("hearth-kjv").dump());
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServer, ChatCompletionStreamingSse) {
  Server s;
  s.cfg->set_script("Hello world, friend.");
  auto r = s.post("/v1/chat/completions",
                  chat_body("hearth-kjv", {{"stream", true}, {"stream_options", {{"include_usage", true}}}}).dump());
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  bool done = false;
  const auto ev = sse_events(r->body, &done);
  EXPECT_TRUE(done);
  ASSERT_GE(ev.size(), 4u);
  EXPECT_EQ(ev[0]["choices"][0]["delta"]["role"], "assistant");
  std::string content;
  for (size_t i = 0; i + 2 < ev.size(); ++i) {
    EXPECT_EQ(ev[i]["object"], "chat.completion.chunk");
    EXPECT_EQ(ev[i]["id"], ev[0]["id"]);
    EXPECT_TRUE(ev[i]["choices"][0]["finish_reason"].is_null());
    content += ev[i]["choices"][0]["delta"].value("content", "");
  }
  EXPECT_EQ(content, "Hello world, friend.");
  const json& fin = ev[ev.size() - 2];
  EXPECT_EQ(fin["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(fin["choices"][0]["delta"].empty());
  const json& usage = ev.back();
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_GT(usage["usage"]["completion_tokens"].get<int>(), 0);
}

TEST(HttpServer, ThinkingIsSplitFromContent) {
  Server s;
  s.cfg->set_script("<think>Let me ponder.</think>The answer is four.");
  auto r = s.post("/v1/chat/completions", chat_body("hearth-kjv").dump());
  json b = json::parse(r->body);
  EXPECT_EQ(b["choices"][0]["message"]["content"], "The answer is four.");
  EXPECT_EQ(b["choices"][0]["message"]["reasoning_content"], "Let me ponder.");
  EXPECT_GT(b["usage"]["completion_tokens_details"]["reasoning_tokens"].get<int>(), 0);
  // Streamed: no delta ever carries a piece of a tag.
  r = s.post("/v1/chat/completions", chat_body("hearth-kjv", {{"stream", true}}).dump());
  bool done = false;
  std::string content, reasoning;
  for (const json& e : sse_events(r->body, &done)) {
    const json& d = e["choices"][0]["delta"];
    content += d.value("content", "");
    reasoning += d.value("reasoning_content", "");
  }
  EXPECT_EQ(content, "The answer is four.");
  EXPECT_EQ(reasoning, "Let me ponder.");
  // Ollama: message.thinking.
  r = s.post("/api/chat", chat_body("hearth-kjv", {{"stream", false}}).dump());
  b = json::parse(r->body);
  EXPECT_EQ(b["message"]["thinking"], "Let me ponder.");
  EXPECT_EQ(b["message"]["content"], "The answer is four.");
}

const json kTools = json::parse(R"([{"type":"function","function":{"name":"get_weather","description":"Weather",
  "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}])");

TEST(HttpServer, ToolCallsOpenAiAndOllama) {
  Server s;
  s.cfg->set_script(
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>");
  auto r = s.post("/v1/chat/completions", chat_body("hearth-kjv", {{"tools", kTools}}).dump());
  ASSERT_EQ(r->status, 200) << r->body;
  json b = json::parse(r->body);
  const json& msg = b["choices"][0]["message"];
  EXPECT_TRUE(msg["content"].is_null());
  ASSERT_EQ(msg["tool_calls"].size(), 2u);
  EXPECT_EQ(msg["tool_calls"][0]["type"], "function");
  EXPECT_TRUE(msg["tool_calls"][0]["id"].get<std::string>().starts_with("call_"));
  EXPECT_EQ(msg["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(msg["tool_calls"][0]["function"]["arguments"].get<std::string>())["city"], "Paris");
  EXPECT_EQ(json::parse(msg["tool_calls"][1]["function"]["arguments"].get<std::string>())["city"], "Rome");
  EXPECT_EQ(b["choices"][0]["finish_reason"], "tool_calls");

  r = s.post("/v1/chat/completions", chat_body("hearth-kjv", {{"tools", kTools}, {"stream", true}}).dump());
  bool done = false;
  // Streamed calls: each call's index, id, type and name once, then its arguments in pieces.
  std::vector<json> calls;
  std::string finish;
  size_t n_deltas = 0;
  for (const json& e : sse_events(r->body, &done)) {
    const json& c = e["choices"][0];
    if (c["delta"].contains("tool_calls"))
      for (const json& t : c["delta"]["tool_calls"]) {
        ++n_deltas;
        const size_t i = t["index"].get<size_t>();
        ASSERT_LE(i, calls.size());
        if (i == calls.size()) {
          ASSERT_TRUE(t.contains("id"));
          EXPECT_EQ(t["type"], "function");
          calls.push_back(t);
        } else {
          EXPECT_FALSE(t.contains("id"));
          calls[i]["function"]["arguments"] =
              calls[i]["function"]["arguments"].get<std::string>() + t["function"]["arguments"].get<std::string>();
        }
      }
    if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
  }
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_GT(n_deltas, 4u);  // the arguments came in pieces
  EXPECT_EQ(calls[1]["function"]["name"], "get_weather");
  EXPECT_EQ(calls[0]["function"]["arguments"], msg["tool_calls"][0]["function"]["arguments"]);
  EXPECT_EQ(json::parse(calls[1]["function"]["arguments"].get<std::string>())["city"], "Rome");
  EXPECT_EQ(finish, "tool_calls");

  // tool_choice none: the markers are plain text.
  r = s.post("/v1/chat/completions", chat_body("hearth-kjv", {{"tools", kTools}, {"tool_choice", "none"}}).dump());
  b = json::parse(r->body);
  EXPECT_FALSE(b["choices"][0]["message"].contains("tool_calls"));

  // Ollama: arguments as an object, stream by default, one call per chunk.
  r = s.post("/api/chat", chat_body("hearth-kjv", {{"tools", kTools}}).dump());
  ASSERT_EQ(r->status, 400);  // the embedded model's (built-in) template has no tools
  EXPECT_EQ(json::parse(r->body)["error"], "\"hearth-kjv\" does not support tools");
}

TEST(HttpServer, OllamaChatNdjsonAndGenerate) {
  Server s;
  s.cfg->set_script("In the beginning.");
  auto r = s.post("/api/chat", chat_body("hearth-kjv").dump());
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/x-ndjson");
  const auto lines = ndjson_lines(r->body);
  ASSERT_GE(lines.size(), 2u);
  std::string content;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["done"], false);
    EXPECT_EQ(lines[i]["model"], "hearth-kjv");
    EXPECT_EQ(lines[i]["message"]["role"], "assistant");
    EXPECT_TRUE(lines[i]["created_at"].get<std::string>().ends_with("Z"));
    content += lines[i]["message"]["content"].get<std::string>();
  }
  EXPECT_EQ(content, "In the beginning.");
  const json& last = lines.back();
  EXPECT_EQ(last["done"], true);
  EXPECT_EQ(last["done_reason"], "stop");
  for (const char* k : {"total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
                        "eval_duration"})
    EXPECT_TRUE(last[k].is_number_integer()) << k;
  EXPECT_GT(last["eval_count"].get<int>(), 0);
  EXPECT_GE(last["total_duration"].get<int64_t>(), last["eval_duration"].get<int64_t>());

  r = s.post("/api/generate", R"({"model":"hearth-kjv","prompt":"And God said","stream":false,"options":{"num_predict":3}})");
  ASSERT_EQ(r->status, 200) << r->body;
  const json g = json::parse(r->body);
  EXPECT_EQ(g["done"], true);
  EXPECT_EQ(g["done_reason"], "length");
  EXPECT_EQ(g["eval_count"], 3);
  EXPECT_FALSE(g["response"].get<std::string>().empty());
  EXPECT_EQ(s.cfg->last().max_tokens, 3);
  r = s.post("/api/generate", R"({"model":"hearth-kjv","prompt":"x","raw":true,"stream":false})");
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServer, TextCompletionStopNAndLogprobs) {
  Server s;
  s.cfg->set_script("one two three four five");
  auto r = s.post("/v1/completions", R"({"model":"hearth-kjv","prompt":"count:","stop":["three"]})");
  ASSERT_EQ(r->status, 200) << r->body;
  json b = json::parse(r->body);
  EXPECT_EQ(b["object"], "text_completion");
  EXPECT_EQ(b["choices"][0]["text"], " one two ");  // SPM pieces keep their space
  EXPECT_EQ(b["choices"][0]["finish_reason"], "stop");
  // The generation stopped at the stop string, not at the end of the script.
  EXPECT_LT(b["usage"]["completion_tokens"].get<int>(), 7);

  r = s.post("/v1/chat/completions", chat_body("hearth-kjv", {{"n", 2}, {"seed", 5}, {"stop", "five"}}).dump());
  b = json::parse(r->body);
  ASSERT_EQ(b["choices"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(b["choices"][i]["index"], i);
    EXPECT_EQ(b["choices"][i]["message"]["content"], "one two three four");
  }
  EXPECT_EQ(s.cfg->seen[s.cfg->seen.size() - 2].sampling.seed, 5u);
  EXPECT_EQ(s.cfg->seen[s.cfg->seen.size() - 1].sampling.seed, 6u);

  r = s.post("/v1/chat/completions", chat_body("hearth-kjv", {{"logprobs", true}, {"top_logprobs", 2}}).dump());
  b = json::parse(r->body);
  const json& lp = b["choices"][0]["logprobs"]["content"];
  ASSERT_GE(lp.size(), 5u);
  EXPECT_FLOAT_EQ(lp[0]["logprob"].get<float>(), -0.25f);
  EXPECT_FLOAT_EQ(lp[1]["logprob"].get<float>(), -0.5f);
  std::string joined;
  for (const json& t : lp) {
    ASSERT_EQ(t["top_logprobs"].size(), 2u);
    EXPECT_EQ(t["top_logprobs"][0]["token"], t["token"]);
    EXPECT_EQ(t["bytes"].size(), t["token"].get<std::string>().size());
    joined += t["token"].get<std::string>();
  }
  EXPECT_NE(joined.find("one two three"), std::string::npos);
  EXPECT_TRUE(s.cfg->last().want_logprobs);
  EXPECT_EQ(s.cfg->last().top_logprobs, 2);
}

TEST(HttpServer, JsonSchemaBecomesAGrammar) {
  Server s;
  s.cfg->set_script("{\"name\": \"Abel\"}");
  const json schema = {{"type", "object"}, {"properties", {{"name", {{"type", "string"}}}}}, {"required", {"name"}}};
  auto r = s.post("/v1/chat/completions",
                  chat_body("hearth-kjv", {{"response_format",
                                            {{"type", "json_schema"}, {"json_schema", {{"name", "p"}, {"schema", schema}}}}}})
                      .dump());
  ASSERT_EQ(r->status, 200) << r->body;
  const auto g = s.cfg->last().grammar;
  ASSERT_TRUE(g);
  sample::GrammarMatcher m(g);
  EXPECT_TRUE(m.accept_bytes("{\"name\": \"Abel\"}") && m.is_complete());
  sample::GrammarMatcher m2(g);
  EXPECT_FALSE(m2.accept_bytes("{\"age\": 3}") && m2.is_complete());
  EXPECT_EQ(json::parse(json::parse(r->body)["choices"][0]["message"]["content"].get<std::string>())["name"], "Abel");
  // Ollama format "json" and a schema the grammar engine cannot enforce.
  r = s.post("/api/chat", chat_body("hearth-kjv", {{"format", "json"}, {"stream", false}}).dump());
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(s.cfg->last().grammar);
  r = s.post("/v1/chat/completions",
             chat_body("hearth-kjv", {{"response_format", {{"type", "json_schema"},
                                                           {"json_schema", {{"schema", {{"not", {{"type", "string"}}}}}}}}}})
                 .dump());
  expect_openai_error(r, 400, "invalid_request_error");
}

TEST(HttpServer, ErrorsAndStatusCodes) {
  Server s;
  expect_openai_error(s.post("/v1/chat/completions", "{not json"), 400, "invalid_request_error");
  expect_openai_error(s.post("/v1/chat/completions", ""), 400, "invalid_request_error");
  expect_openai_error(s.post("/v1/chat/completions", R"({"model":"hearth-kjv","messages":"hi"})"), 400,
                      "invalid_request_error");
  auto r = s.post("/v1/chat/completions", chat_body("gpt-4o").dump());
  expect_openai_error(r, 404, "not_found_error");
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "model_not_found");
  r = s.post("/api/chat", chat_body("llama9").dump());
  EXPECT_EQ(r->status, 404);
  EXPECT_TRUE(json::parse(r->body)["error"].is_string());
  r = s.post("/api/chat", "{bad");
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(json::parse(r->body)["error"].is_string());
  r = s.post("/api/chat", R"({"messages":[]})");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"], "model is required");
  expect_openai_error(s.get("/v1/nothing"), 404, "not_found_error");
  r = s.get("/v1/chat/completions");
  expect_openai_error(r, 405, "invalid_request_error");
  EXPECT_EQ(r->get_header_value("Allow"), "POST");

  // Longer than the context (n_ctx 256): 400 naming both numbers.
  std::string longtext;
  for (int i = 0; i < 300; ++i) longtext += "and the earth ";
  r = s.post("/v1/chat/completions",
             json{{"model", "hearth-kjv"}, {"messages", {{{"role", "user"}, {"content", longtext}}}}}.dump());
  expect_openai_error(r, 400, "invalid_request_error");
  const json e = json::parse(r->body)["error"];
  EXPECT_EQ(e["code"], "context_length_exceeded");
  EXPECT_EQ(e["n_ctx"], 256);
  EXPECT_GT(e["n_prompt_tokens"].get<int>(), 256);
  EXPECT_NE(e["message"].get<std::string>().find("maximum context length is 256 tokens"), std::string::npos);
  EXPECT_NE(e["message"].get<std::string>().find(std::to_string(e["n_prompt_tokens"].get<int>())), std::string::npos);
}

TEST(HttpServer, ErrorAfterTheStreamStarted) {
  Server s;
  s.cfg->set_script("one two three four five six");
  s.cfg->fail = true;
  auto r = s.post("/v1/chat/completions", chat_body("hearth-kjv", {{"stream", true}}).dump());
  ASSERT_EQ(r->status, 200);
  bool done = false;
  const auto ev = sse_events(r->body, &done);
  EXPECT_FALSE(done);  // no [DONE] after an error
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back()["error"]["message"], "scripted failure");
  r = s.post("/api/chat", chat_body("hearth-kjv").dump());
  EXPECT_EQ(ndjson_lines(r->body).back()["error"], "scripted failure");
  r = s.post("/v1/chat/completions", chat_body("hearth-kjv").dump());
  expect_openai_error(r, 500, "server_error");
}

TEST(HttpServer, ApiKey) {
  ServerSetup setup;
  setup.api_key = "sk-test-123";
  Server s(setup);
  EXPECT_EQ(s.get("/health")->status, 200);
  EXPECT_EQ(s.get("/api/version")->status, 200);
  auto r = s.get("/v1/models");
  expect_openai_error(r, 401, "authentication_error");
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "invalid_api_key");
  expect_openai_error(s.get("/v1/models", {{"Authorization", "Bearer sk-test-12"}}), 401, "authentication_error");
  EXPECT_EQ(s.get("/v1/models", {{"Authorization", "Bearer sk-test-123"}})->status, 200);
  EXPECT_EQ(s.get("/v1/models", {{"X-Api-Key", "sk-test-123"}})->status, 200);
  r = s.get("/api/tags");
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json::parse(r->body)["error"], "unauthorized");
  EXPECT_EQ(s.get("/api/tags", {{"Authorization", "Bearer sk-test-123"}})->status, 200);
  EXPECT_EQ(s.get("/metrics")->status, 401);
}

TEST(HttpServer, Embeddings) {
  Server s;
  auto r = s.post("/v1/embeddings", R"({"model":"hearth-kjv","input":["In the beginning","God"]})");
  ASSERT_EQ(r->status, 200) << r->body;
  const json f = json::parse(r->body);
  EXPECT_EQ(f["object"], "list");
  ASSERT_EQ(f["data"].size(), 2u);
  EXPECT_EQ(f["data"][1]["index"], 1);
  EXPECT_EQ(f["data"][0]["object"], "embedding");
  EXPECT_GT(f["usage"]["prompt_tokens"].get<int>(), 2);
  r = s.post("/v1/embeddings", R"({"model":"hearth-kjv","input":["In the beginning","God"],"encoding_format":"base64"})");
  const json b = json::parse(r->body);
  for (int i = 0; i < 2; ++i) {
    const std::string bytes = base64_decode(b["data"][i]["embedding"].get<std::string>());
    const auto floats = f["data"][i]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(bytes.size(), floats.size() * 4);
    std::vector<float> decoded(floats.size());
    std::memcpy(decoded.data(), bytes.data(), bytes.size());
    EXPECT_EQ(decoded, floats);
    double norm = 0;
    for (float x : decoded) norm += x * x;
    EXPECT_NEAR(norm, 1.0, 1e-5);
  }
  r = s.post("/v1/embeddings", R"({"model":"hearth-kjv","input":"God","dimensions":4})");
  EXPECT_EQ(json::parse(r->body)["data"][0]["embedding"].size(), 4u);
  r = s.post("/api/embed", R"({"model":"hearth-kjv","input":["In the beginning","God"]})");
  const json o = json::parse(r->body);
  ASSERT_EQ(o["embeddings"].size(), 2u);
  EXPECT_EQ(o["embeddings"][0].get<std::vector<float>>(), f["data"][0]["embedding"].get<std::vector<float>>());
  EXPECT_TRUE(o["prompt_eval_count"].is_number_integer());
  r = s.post("/api/embeddings", R"({"model":"hearth-kjv","prompt":"God"})");
  EXPECT_EQ(json::parse(r->body)["embedding"].size(), 16u);
}

TEST(HttpServer, QueueFullIs503WithRetryAfter) {
  ServerSetup setup;
  setup.n_parallel = 1;
  setup.max_queue = 1;
  Server s(setup);
  std::string script;
  for (int i = 0; i < 120; ++i) script += "word ";
  s.cfg->set_script(script);
  s.cfg->delay = std::chrono::milliseconds(25);
  ASSERT_EQ(s.post("/api/generate", R"({"model":"hearth-kjv"})")->status, 200);  // loaded before the race
  std::thread a([&] { s.post("/v1/chat/completions", chat_body("hearth-kjv").dump()); });
  // b only once a holds the slot (else b, not the third request, finds the queue full).
  for (int i = 0; i < 2000 && s.cfg->running < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::thread b([&] { s.post("/v1/chat/completions", chat_body("hearth-kjv").dump()); });
  for (int i = 0; i < 2000 && s.cfg->submitted < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(s.cfg->submitted, 2);
  auto r = s.post("/v1/chat/completions", chat_body("hearth-kjv").dump());
  expect_openai_error(r, 503, "unavailable_error");
  EXPECT_EQ(r->get_header_value("Retry-After"), "2");
  r = s.post("/api/chat", chat_body("hearth-kjv").dump());
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(json::parse(r->body)["error"], "server busy, please try again.  maximum pending requests exceeded");
  // /metrics sees the busy slot and the queued request.
  const std::string m = s.get("/metrics")->body;
  EXPECT_NE(m.find("llamacpp:requests_processing 1"), std::string::npos) << m;
  EXPECT_NE(m.find("llamacpp:requests_deferred 1"), std::string::npos);
  EXPECT_NE(m.find("# TYPE hearth_kv_cache_usage_ratio gauge"), std::string::npos);
  a.join();
  b.join();
}

TEST(HttpServer, ClientDisconnectCancelsTheRequest) {
  Server s;
  std::string script;
  for (int i = 0; i < 200; ++i) script += "word ";
  s.cfg->set_script(script);
  s.cfg->delay = std::chrono::milliseconds(10);
  for (const bool stream : {true, false}) {
    const int cancelled_before = s.cfg->cancelled;
    httplib::Client c("127.0.0.1", s.port);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.body = chat_body("hearth-kjv", {{"stream", stream}}).dump();
    req.set_header("Content-Type", "application/json");
    std::thread closer;
    if (stream) {
      int chunks = 0;
      req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
      c.send(req);
    } else {
      c.set_read_timeout(0, 300000);  // gives up after 0.3 s: the socket is closed
      c.send(req);
    }
    for (int i = 0; i < 300 && (s.cfg->running > 0 || s.cfg->cancelled == cancelled_before); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(s.cfg->cancelled, cancelled_before + 1) << "stream " << stream;
    EXPECT_EQ(s.cfg->running, 0);
  }
}

TEST(HttpServer, KeepAliveLoadAndUnload) {
  Server s;
  auto r = s.post("/api/generate", R"({"model":"hearth-kjv"})");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["done_reason"], "load");
  json ps = json::parse(s.get("/api/ps")->body);
  ASSERT_EQ(ps["models"].size(), 1u);
  EXPECT_EQ(ps["models"][0]["name"], "hearth-kjv:latest");
  EXPECT_EQ(ps["models"][0]["context_length"], 256);
  EXPECT_TRUE(ps["models"][0]["expires_at"].get<std::string>().ends_with("Z"));
  EXPECT_EQ(json::parse(s.get("/v1/models")->body)["data"][0]["meta"]["loaded"], true);
  r = s.post("/api/generate", R"({"model":"hearth-kjv","keep_alive":0})");
  EXPECT_EQ(json::parse(r->body)["done_reason"], "unload");
  EXPECT_TRUE(json::parse(s.get("/api/ps")->body)["models"].empty());
  // keep_alive 0 on a generation: unloaded when it ends.
  r = s.post("/api/chat", chat_body("hearth-kjv-f16", {{"stream", false}, {"keep_alive", 0}}).dump());
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(json::parse(s.get("/api/ps")->body)["models"].empty());
  // A short keep_alive expires on its own.
  r = s.post("/api/chat", chat_body("hearth-kjv-f16", {{"stream", false}, {"keep_alive", "300ms"}}).dump());
  EXPECT_EQ(json::parse(s.get("/api/ps")->body)["models"].size(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  EXPECT_TRUE(json::parse(s.get("/api/ps")->body)["models"].empty());
}

TEST(HttpServer, SingleModelModeTakesAnyName) {
  ServerSetup setup;
  setup.two_models = false;
  Server s(setup);
  auto r = s.post("/v1/chat/completions", chat_body("gpt-4o-mini").dump());
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["model"], "gpt-4o-mini");
  r = s.post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServer, TokenizeDetokenizeProps) {
  Server s;
  auto r = s.post("/tokenize", R"({"model":"hearth-kjv","content":"In the beginning"})");
  ASSERT_EQ(r->status, 200) << r->body;
  const auto ids = json::parse(r->body)["tokens"];
  ASSERT_FALSE(ids.empty());
  EXPECT_NE(ids[0], 1);  // no BOS unless add_special
  r = s.post("/tokenize", R"({"model":"hearth-kjv","content":"In the beginning","add_special":true,"with_pieces":true})");
  const auto pieces = json::parse(r->body)["tokens"];
  EXPECT_EQ(pieces[0]["id"], 1);
  EXPECT_EQ(pieces.size(), ids.size() + 1);
  r = s.post("/detokenize", json{{"model", "hearth-kjv"}, {"tokens", ids}}.dump());
  EXPECT_EQ(json::parse(r->body)["content"], "In the beginning");
  r = s.get("/props?model=hearth-kjv");
  ASSERT_EQ(r->status, 200) << r->body;
  const json p = json::parse(r->body);
  EXPECT_EQ(p["default_generation_settings"]["n_ctx"], 256);
  EXPECT_EQ(p["total_slots"], 2);
  EXPECT_EQ(p["eos_token"], "</s>");
}

}  // namespace
}  // namespace hearth::server
