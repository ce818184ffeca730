// Unit tests of the HTTP layer's pieces that need no server: stop strings, model names,
// keep_alive durations, base64, SHA-256, the reasoning-then-JSON grammar, request parsing.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sample/grammar.h"
#include "sample/json_schema.h"
#include "server/api.h"
#include "server/ollama.h"
#include "server/openai.h"
#include "server/util.h"

namespace hearth::server {
namespace {

using json = nlohmann::json;

// Feeds `text` in pieces of `step` bytes; returns everything emitted (feed + flush).
std::string run_stops(const std::vector<std::string>& stops, const std::string& text, size_t step, bool* matched = nullptr) {
  StopMatcher m(stops);
  std::string out;
  for (size_t i = 0; i < text.size(); i += step) {
    const std::string piece = m.feed(text.substr(i, step));
    // Nothing emitted may be (or end inside) a stop string.
    for (const std::string& s : stops) EXPECT_EQ(piece.find(s), std::string::npos);
    out += piece;
    if (m.matched()) break;
  }
  out += m.flush();
  if (matched) *matched = m.matched();
  return out;
}

TEST(StopMatcher, FindsStopStringsAcrossPieces) {
  for (size_t step : {1u, 2u, 3u, 7u, 100u}) {
    bool matched = false;
    EXPECT_EQ(run_stops({"three"}, "one two three four", step, &matched), "one two ") << step;
    EXPECT_TRUE(matched);
    EXPECT_EQ(run_stops({"xyz"}, "one two three", step, &matched), "one two three") << step;
    EXPECT_FALSE(matched);
    // The earliest of several stop strings wins; a partial match that fails is released.
    EXPECT_EQ(run_stops({"four", "thr"}, "one thx two three four", step), "one thx two ") << step;
  }
}

TEST(StopMatcher, HoldsBackOnlyAPossibleStart) {
  StopMatcher m({"</end>"});
  EXPECT_EQ(m.feed("abc</e"), "abc");
  EXPECT_EQ(m.feed("x"), "</ex");
  EXPECT_EQ(m.feed("<"), "");
  EXPECT_EQ(m.flush(), "<");
  StopMatcher m2({"</end>"});
  EXPECT_EQ(m2.feed("a</en"), "a");
  EXPECT_EQ(m2.feed("d>tail"), "");
  EXPECT_TRUE(m2.matched());
  EXPECT_EQ(m2.matched_string(), "</end>");
  EXPECT_EQ(m2.feed("more"), "");
  EXPECT_EQ(m2.flush(), "");
}

TEST(Names, OllamaNormalisation) {
  EXPECT_EQ(normalize_model_name("Qwen3"), "qwen3:latest");
  EXPECT_EQ(normalize_model_name("library/llama3.2:3b"), "llama3.2:3b");
  EXPECT_EQ(normalize_model_name("registry.ollama.ai/library/llama3.2"), "llama3.2:latest");
  EXPECT_EQ(normalize_model_name("me/model:Q4"), "me/model:q4");
  EXPECT_EQ(normalize_model_name("host:5000/me/model"), "host:5000/me/model:latest");
  EXPECT_EQ(normalize_model_name("qwen3:8b@sha256:abc"), "qwen3:8b");
  EXPECT_EQ(model_name_from_path("/m/Qwen3-8B-Q4_K_M.gguf"), "qwen3-8b-q4_k_m:latest");
}

TEST(KeepAlive, NumbersAndDurations) {
  EXPECT_EQ(parse_keep_alive(json(30)), 30000);
  EXPECT_EQ(parse_keep_alive(json(0)), 0);
  EXPECT_LT(parse_keep_alive(json(-1)), 0);
  EXPECT_EQ(parse_keep_alive(json("5m")), 300000);
  EXPECT_EQ(parse_keep_alive(json("1h30m")), 5400000);
  EXPECT_EQ(parse_keep_alive(json("300ms")), 300);
  EXPECT_EQ(parse_keep_alive(json("1.5s")), 1500);
  EXPECT_EQ(parse_keep_alive(json("0")), 0);
  EXPECT_LT(parse_keep_alive(json("-1")), 0);
  EXPECT_LT(parse_keep_alive(json("-5m")), 0);
  EXPECT_THROW(parse_keep_alive(json("5 minutes")), Error);
  EXPECT_THROW(parse_keep_alive(json("m")), Error);
  EXPECT_THROW(parse_keep_alive(json(true)), Error);
}

TEST(Base64, RoundTripAndRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  EXPECT_EQ(base64_decode(base64_encode(bytes)), bytes);
  EXPECT_THROW(base64_decode("ab$d"), Error);
}

TEST(Sha256, FipsVectors) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(ConstantTimeEqual, ComparesWholeStrings) {
  EXPECT_TRUE(constant_time_equal("secret-key", "secret-key"));
  EXPECT_FALSE(constant_time_equal("secret-key", "secret-kez"));
  EXPECT_FALSE(constant_time_equal("secret-key", "secret"));
  EXPECT_FALSE(constant_time_equal("secret-key", ""));
  EXPECT_FALSE(constant_time_equal("abc", "abcabc"));
}

bool accepts(const std::shared_ptr<const sample::Grammar>& g, const std::string& text) {
  sample::GrammarMatcher m(g);
  return m.accept_bytes(text) && m.is_complete();
}

TEST(GrammarAfterReasoning, JsonAfterOptionalOrOpenReasoning) {
  const json schema = json::parse(R"({"type":"object","properties":{"root":{"type":"integer"}},"required":["root"]})");
  const std::string js = sample::json_schema_to_grammar(schema);
  const auto optional = sample::Grammar::parse(grammar_after_reasoning(js, "<think>", "</think>", false));
  EXPECT_TRUE(accepts(optional, R"({"root": 1})"));
  EXPECT_TRUE(accepts(optional, "<think>a < b, </thin </think>\n{\"root\": 2}"));
  EXPECT_FALSE(accepts(optional, "<think>x</think></think>{\"root\": 2}"));
  EXPECT_FALSE(accepts(optional, R"({"root": "x"})"));
  EXPECT_FALSE(accepts(optional, "hello"));
  const auto open = sample::Grammar::parse(grammar_after_reasoning(js, "<think>", "</think>", true));
  EXPECT_TRUE(accepts(open, "thinking...</think>{\"root\": 3}"));
  EXPECT_FALSE(accepts(open, R"({"root": 3})"));
}

TEST(OpenAiParse, ChatFieldsAndErrors) {
  const JobSpec j = openai::parse_chat(json::parse(R"({
    "model": "m", "messages": [{"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
                               {"role": "user", "content": "hi"},
                               {"role": "assistant", "content": null, "reasoning": "r",
                                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}],
    "max_tokens": 5, "max_completion_tokens": 7.0, "temperature": 0, "stop": "END", "n": 2, "seed": 9,
    "logprobs": true, "top_logprobs": 3, "stream": true, "stream_options": {"include_usage": true},
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
    "reasoning_effort": "none", "unknown_field": {"ignored": true}})"));
  EXPECT_EQ(j.messages[0]["role"], "system");
  EXPECT_EQ(j.messages[0]["content"], "be brief");
  EXPECT_EQ(j.messages[2]["reasoning_content"], "r");
  EXPECT_EQ(j.messages[2]["tool_calls"][0]["function"]["arguments"]["a"], 1);
  EXPECT_EQ(j.max_tokens, 7);
  EXPECT_EQ(j.sampling.temp, 0.0f);
  EXPECT_EQ(j.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(j.n, 2);
  EXPECT_EQ(j.sampling.seed, 9u);
  EXPECT_TRUE(j.logprobs);
  EXPECT_EQ(j.top_logprobs, 3);
  EXPECT_TRUE(j.stream && j.include_usage);
  ASSERT_TRUE(j.schema.has_value());
  EXPECT_EQ(j.thinking, chat::Thinking::Off);

  const auto status_of = [](const char* body) {
    try {
      openai::parse_chat(json::parse(body));
    } catch (const ApiError& e) {
      return e.status;
    }
    return 200;
  };
  EXPECT_EQ(status_of(R"({"model":"m"})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","messages":[]})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":0})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"5"})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"reasoning_effort":"huge"})"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":"x"}]}]})"), 400);
}

TEST(OllamaParse, OptionsThinkFormat) {
  const JobSpec j = ollama::parse_chat(json::parse(R"({"model":"m","messages":[{"role":"USER","content":"hi"}],
    "options":{"num_predict":4,"temperature":0.5,"top_k":3,"stop":["x","y"],"seed":1,"num_ctx":2048},
    "think":true,"format":"json","keep_alive":"1m"})"));
  EXPECT_TRUE(j.stream);
  EXPECT_EQ(j.messages[0]["role"], "user");
  EXPECT_EQ(j.max_tokens, 4);
  EXPECT_EQ(j.sampling.top_k, 3);
  EXPECT_EQ(j.stop.size(), 2u);
  EXPECT_EQ(j.thinking, chat::Thinking::On);
  EXPECT_TRUE(j.json_object);
  EXPECT_EQ(j.keep_alive_ms, 60000);
  EXPECT_EQ(j.n_ctx, 2048u);
  EXPECT_EQ(ollama::parse_chat(json::parse(R"({"model":"m","options":{"num_ctx":1e12}})")).n_ctx, UINT32_MAX);
  EXPECT_EQ(ollama::parse_chat(json::parse(R"({"model":"m"})")).n_ctx, 0u);  // the server's -c
  for (const char* bad : {R"({"model":"m","options":{"num_ctx":0}})", R"({"model":"m","options":{"num_ctx":-5}})"}) {
    try {
      ollama::parse_chat(json::parse(bad));
      FAIL() << bad;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_STREQ(e.what(), "option \"num_ctx\" must be at least 1");
    }
  }
  try {
    ollama::parse_chat(json::parse(R"({"model":"m","options":{"top_k":"many"}})"));
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_STREQ(e.what(), "option \"top_k\" must be of type integer");
  }
  EXPECT_THROW(ollama::parse_chat(json::parse(R"({"model":"m","think":"very"})")), ApiError);
  EXPECT_THROW(ollama::parse_generate(json::parse(R"({"model":"m","prompt":"x","raw":true,"system":"s"})")), ApiError);
  const JobSpec g = ollama::parse_generate(json::parse(R"({"model":"m","prompt":"p","system":"s"})"));
  ASSERT_EQ(g.messages.size(), 2u);
  EXPECT_EQ(g.messages[1]["content"], "p");
}

TEST(Shapes, StreamShaperNumbersToolCallsAndEndsWithFinish) {
  openai::StreamShaper sh("chatcmpl-1", 100, "m", 1, true, "reasoning_content");
  StepOutput s;
  s.events.push_back({chat::EventKind::Reasoning, "hmm", {}});
  s.events.push_back({chat::EventKind::Content, "Hi", {}});
  s.events.push_back({chat::EventKind::ToolCall, "", {"call_a", "f", "{\"x\":1}"}});
  s.events.push_back({chat::EventKind::ToolCall, "", {"call_b", "g", "{}"}});
  s.events.back().index = 1;  // the parser numbers the calls of an answer
  const auto chunks = sh.step(s);
  ASSERT_EQ(chunks.size(), 4u);  // role, reasoning, content, both calls
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(chunks[1]["choices"][0]["delta"]["reasoning_content"], "hmm");
  EXPECT_EQ(chunks[2]["choices"][0]["delta"]["content"], "Hi");
  const auto& calls = chunks[3]["choices"][0]["delta"]["tool_calls"];
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["index"], 0);
  EXPECT_EQ(calls[1]["index"], 1);
  EXPECT_EQ(calls[1]["id"], "call_b");
  EXPECT_EQ(calls[0]["function"]["arguments"], "{\"x\":1}");
  StepOutput d;
  d.done = true;
  d.tool_calls = 2;
  const auto last = sh.step(d);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0]["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_TRUE(last[0]["choices"][0]["delta"].empty());
  for (const auto& c : chunks) EXPECT_EQ(c["id"], "chatcmpl-1");
}

}  // namespace
}  // namespace hearth::server

namespace hearth::server {
namespace {

TEST(Shapes, OllamaToolCallsAreObjectsAndFinalHasDurations) {
  ollama::Shaper sh("qwen3", true);
  StepOutput s;
  s.events.push_back({chat::EventKind::Content, "Let me check.", {}});
  s.events.push_back({chat::EventKind::ToolCall, "", {"call_x", "get_weather", "{\"city\":\"Tokyo\"}"}});
  const auto chunks = sh.step(s);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0]["message"]["content"], "Let me check.");
  const auto& call = chunks[1]["message"]["tool_calls"][0];
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(call["function"]["index"], 0);
  EXPECT_EQ(call["function"]["arguments"]["city"], "Tokyo");  // an object, not a string
  StepOutput d;
  d.done = true;
  d.completion.reason = FinishReason::Length;
  d.completion.prompt_tokens = 7;
  d.completion.generated_tokens = 3;
  d.completion.generation_ns = 5000;
  const ojson fin = sh.final_object(d, 9000, 100, true);
  EXPECT_EQ(fin["done"], true);
  EXPECT_EQ(fin["done_reason"], "length");
  EXPECT_EQ(fin["prompt_eval_count"], 7);
  EXPECT_EQ(fin["eval_count"], 3);
  EXPECT_EQ(fin["eval_duration"], 5000);
  EXPECT_EQ(fin["total_duration"], 9000);
  EXPECT_EQ(fin["load_duration"], 100);
  EXPECT_EQ(fin["message"]["content"], "Let me check.");  // stream false: everything in the final object
  EXPECT_EQ(fin["message"]["tool_calls"].size(), 1u);
}

}  // namespace
}  // namespace hearth::server
