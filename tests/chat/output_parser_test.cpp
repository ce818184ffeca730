// The output parser on hand-written model outputs of every family: plain answers, thinking then
// answer, one and several tool calls, a tool call after thinking, malformed tool calls (an error,
// the text kept as content). Each output is fed whole, token by token (markers as single tokens,
// other text in pieces of 1-4 bytes, as a tokenizer's pieces come), byte by byte, and split in
// two at every offset: the joined events must be identical every time.
#include "chat/output_parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "chat/tool_syntax.h"
#include "hearth/error.h"

namespace hearth::chat {
namespace {

using json = nlohmann::json;

// Events with adjacent Content / Reasoning deltas joined (across feed() calls too).
std::vector<Event> join(const std::vector<Event>& events) {
  std::vector<Event> out;
  for (const Event& e : events) {
    if (!out.empty() && out.back().kind == e.kind && (e.kind == EventKind::Content || e.kind == EventKind::Reasoning)) {
      out.back().text += e.text;
    } else {
      out.push_back(e);
    }
  }
  return out;
}

std::string describe(const std::vector<Event>& events) {
  std::string s;
  for (const Event& e : events) {
    switch (e.kind) {
      case EventKind::Content: s += "content[" + e.text + "] "; break;
      case EventKind::Reasoning: s += "reasoning[" + e.text + "] "; break;
      case EventKind::ToolCall: s += "call[" + e.call.id + " " + e.call.name + " " + e.call.arguments + "] "; break;
      case EventKind::Error: s += "error[" + e.text + "] "; break;
      case EventKind::ToolCallBegin:
        s += "begin[" + std::to_string(e.index) + " " + e.call.id + " " + e.call.name + "] ";
        break;
      case EventKind::ToolCallArgs: s += "args[" + std::to_string(e.index) + " " + e.text + "] "; break;
    }
  }
  return s;
}

struct Parse {
  std::vector<Event> events;  // joined
  ParsedOutput result;
};

Parse feed(Family family, const std::vector<std::string>& pieces, const ParserOptions& opt) {
  OutputParser p(family, opt);
  std::vector<Event> all;
  for (const std::string& piece : pieces) {
    const auto ev = p.feed(piece);
    all.insert(all.end(), ev.begin(), ev.end());
  }
  const auto ev = p.finish();
  all.insert(all.end(), ev.begin(), ev.end());
  return {join(all), p.result()};
}

// Pseudo-tokens: the markers of the family whole, other text in pieces of 1-4 bytes that never
// split a UTF-8 character (a detokenizer's pieces).
std::vector<std::string> tokens(const std::string& text, uint32_t seed) {
  static const std::vector<std::string> specials = {"<think>",
                                                    "</think>",
                                                    "<tool_call>",
                                                    "</tool_call>",
                                                    "<|python_tag|>",
                                                    "<|python_start|>",
                                                    "<|python_end|>",
                                                    "<|channel>",
                                                    "<channel|>",
                                                    "<|tool_call>",
                                                    "<tool_call|>",
                                                    "<|\"|>",
                                                    "<|tool_response>",
                                                    "[TOOL_CALLS]",
                                                    "[THINK]",
                                                    "[/THINK]",
                                                    "[ARGS]",
                                                    "<｜tool▁calls▁begin｜>",
                                                    "<｜tool▁calls▁end｜>",
                                                    "<｜tool▁call▁begin｜>",
                                                    "<｜tool▁call▁end｜>",
                                                    "<｜tool▁sep｜>"};
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    bool special = false;
    for (const std::string& s : specials)
      if (text.compare(i, s.size(), s) == 0) {
        out.push_back(s);
        i += s.size();
        special = true;
        break;
      }
    if (special) continue;
    size_t n = 1 + rng() % 4, j = i;
    while (j < text.size() && n > 0) {
      size_t len = 1;
      const unsigned char c = static_cast<unsigned char>(text[j]);
      if (c >= 0xF0)
        len = 4;
      else if (c >= 0xE0)
        len = 3;
      else if (c >= 0xC0)
        len = 2;
      j = std::min(j + len, text.size());
      --n;
      if (text.compare(j, 1, "<") == 0 || text.compare(j, 1, "[") == 0) break;  // a marker may start there
    }
    out.push_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

// Feeds `text` whole, token by token, byte by byte and split at every offset; checks that all
// runs agree and returns the whole run.
Parse parse_all_ways(Family family, const std::string& text, ParserOptions opt = {}) {
  opt.id_seed = 1234;
  const Parse whole = feed(family, {text}, opt);
  const std::string expect = describe(whole.events);
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  EXPECT_EQ(describe(feed(family, bytes, opt).events), expect) << "byte by byte: " << text;
  for (uint32_t seed = 1; seed <= 3; ++seed)
    EXPECT_EQ(describe(feed(family, tokens(text, seed), opt).events), expect) << "token by token: " << text;
  for (size_t cut = 1; cut < text.size(); ++cut) {
    const Parse r = feed(family, {text.substr(0, cut), text.substr(cut)}, opt);
    if (describe(r.events) != expect) {
      ADD_FAILURE() << "split at " << cut << " of " << text << "\n  got  " << describe(r.events) << "\n  want "
                    << expect;
      break;
    }
  }
  // The result agrees with the events.
  std::string content, reasoning;
  size_t calls = 0, errors = 0;
  for (const Event& e : whole.events) {
    if (e.kind == EventKind::Content) content += e.text;
    if (e.kind == EventKind::Reasoning) reasoning += e.text;
    if (e.kind == EventKind::ToolCall) ++calls;
    if (e.kind == EventKind::Error) ++errors;
  }
  EXPECT_EQ(content, whole.result.content);
  EXPECT_EQ(reasoning, whole.result.reasoning);
  EXPECT_EQ(calls, whole.result.tool_calls.size());
  EXPECT_EQ(errors, whole.result.errors.size());
  return whole;
}

struct Call {
  std::string name;
  json arguments;
};

void expect_calls(const ParsedOutput& r, const std::vector<Call>& want) {
  ASSERT_EQ(r.tool_calls.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(r.tool_calls[i].name, want[i].name);
    EXPECT_EQ(json::parse(r.tool_calls[i].arguments), want[i].arguments) << r.tool_calls[i].arguments;
  }
}

void expect_plain(Family f, const std::string& text, const std::string& content) {
  const Parse r = parse_all_ways(f, text);
  EXPECT_EQ(r.result.content, content);
  EXPECT_EQ(r.result.reasoning, "");
  EXPECT_TRUE(r.result.tool_calls.empty());
  EXPECT_TRUE(r.result.errors.empty());
}

const json kParis = {{"city", "Paris"}};

// ---- Qwen 3 (and the generic family): <think>, <tool_call>{json}</tool_call> ----

TEST(OutputParser, Qwen3PlainAnswer) {
  expect_plain(Family::Qwen3, "The capital of France is Paris.", "The capital of France is Paris.");
  // Text that only looks like the start of a marker is content.
  expect_plain(Family::Qwen3, "Use <b> and <tool> tags; 3 < 4 and <thin ice>.",
               "Use <b> and <tool> tags; 3 < 4 and <thin ice>.");
}

TEST(OutputParser, Qwen3ThinkingThenAnswer) {
  const Parse r =
      parse_all_ways(Family::Qwen3, "<think>\nThe user asks about France.\nIts capital is Paris.\n</think>\n\nParis.");
  EXPECT_EQ(r.result.reasoning, "The user asks about France.\nIts capital is Paris.");
  EXPECT_EQ(r.result.content, "Paris.");
  EXPECT_EQ(describe(r.events), "reasoning[The user asks about France.\nIts capital is Paris.] content[Paris.] ");
}

TEST(OutputParser, Qwen3OneToolCall) {
  const Parse r = parse_all_ways(
      Family::Qwen3, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
  expect_calls(r.result, {{"get_weather", kParis}});
  EXPECT_EQ(r.result.tool_calls[0].arguments, "{\"city\":\"Paris\"}");  // compact, as OpenAI sends it
  EXPECT_EQ(r.result.content, "");
  EXPECT_TRUE(r.result.errors.empty());
}

TEST(OutputParser, Qwen3SeveralToolCallsAndContent) {
  const Parse r =
      parse_all_ways(Family::Qwen3,
                     "Let me check both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
                     "\"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": "
                     "{\"tz\": \"Europe/Paris\", \"24h\": true}}\n</tool_call>");
  expect_calls(r.result, {{"get_weather", kParis}, {"get_time", {{"tz", "Europe/Paris"}, {"24h", true}}}});
  EXPECT_EQ(r.result.content, "Let me check both.");
  ASSERT_EQ(r.events.size(), 3u);
  EXPECT_EQ(r.events[0].kind, EventKind::Content);  // the content comes before the calls
  EXPECT_NE(r.result.tool_calls[0].id, r.result.tool_calls[1].id);
}

TEST(OutputParser, Qwen3ToolCallAfterThinking) {
  const Parse r =
      parse_all_ways(Family::Qwen3,
                     "<think>\nI need the weather tool.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", "
                     "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
  EXPECT_EQ(r.result.reasoning, "I need the weather tool.");
  expect_calls(r.result, {{"get_weather", kParis}});
  EXPECT_EQ(r.result.content, "");
}

TEST(OutputParser, Qwen3MalformedToolCallJsonIsAnErrorAndContent) {
  const std::string call =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\",}}\n</tool_call>";
  const Parse r = parse_all_ways(Family::Qwen3, "<think>ok</think>" + call + "\nSorry.");
  EXPECT_TRUE(r.result.tool_calls.empty());
  ASSERT_EQ(r.result.errors.size(), 1u);
  EXPECT_NE(r.result.errors[0].find("invalid JSON"), std::string::npos) << r.result.errors[0];
  EXPECT_EQ(r.result.content, call + "\nSorry.");  // the text is kept, markers included
  EXPECT_EQ(r.result.reasoning, "ok");
  // A call without a name, and a call cut off by the end of the answer.
  const Parse nameless = parse_all_ways(Family::Qwen3, "<tool_call>{\"arguments\": {}}</tool_call>");
  ASSERT_EQ(nameless.result.errors.size(), 1u);
  EXPECT_NE(nameless.result.errors[0].find("\"name\""), std::string::npos);
  const Parse cut = parse_all_ways(Family::Qwen3, "<tool_call>\n{\"name\": \"get_weather\", \"argum");
  ASSERT_EQ(cut.result.errors.size(), 1u);
  EXPECT_EQ(cut.result.content, "<tool_call>\n{\"name\": \"get_weather\", \"argum");
}

TEST(OutputParser, Qwen3CallWithoutClosingTagAtTheEndIsRead) {
  const Parse r =
      parse_all_ways(Family::Qwen3, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n");
  expect_calls(r.result, {{"get_weather", kParis}});
  EXPECT_TRUE(r.result.errors.empty());
}

TEST(OutputParser, PartialMarkersAreHeldBackNeverLeaked) {
  OutputParser p(Family::Qwen3, {});
  EXPECT_EQ(describe(join(p.feed("Hello <thi"))), "content[Hello] ");  // " <thi" held
  EXPECT_FALSE(p.in_reasoning());
  EXPECT_EQ(describe(join(p.feed("nk>Hmm"))), "reasoning[Hmm] ");
  EXPECT_TRUE(p.in_reasoning());
  EXPECT_EQ(describe(join(p.feed(" </th"))), "");
  EXPECT_EQ(describe(join(p.feed("ink> ok <tool_"))), "content[ok] ");
  EXPECT_FALSE(p.in_reasoning());
  EXPECT_EQ(describe(join(p.feed("call>{\"name\":\"f\","))), "");  // the call is not complete yet
  const std::vector<Event> call = join(p.feed("\"arguments\":{}}</tool_call>"));
  ASSERT_EQ(p.result().tool_calls.size(), 1u);
  EXPECT_EQ(describe(call), "call[" + p.result().tool_calls[0].id + " f {}] ");
  EXPECT_EQ(describe(join(p.finish())), "");
  // A held prefix that turns out not to be a marker is content at the end.
  OutputParser q(Family::Qwen3, {});
  EXPECT_EQ(describe(join(q.feed("a <tool_c"))), "content[a] ");
  EXPECT_EQ(describe(join(q.finish())), "content[ <tool_c] ");
  EXPECT_THROW(q.feed("x"), Error);
}

TEST(OutputParser, ToolCallsAreContentWhenNotParsed) {
  ParserOptions opt;
  opt.parse_tool_calls = false;
  const std::string text = "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>";
  const Parse r = parse_all_ways(Family::Qwen3, text, opt);
  EXPECT_EQ(r.result.content, text);
  EXPECT_TRUE(r.result.tool_calls.empty());
  EXPECT_TRUE(r.result.errors.empty());
}

TEST(OutputParser, GenericFamilyReadsThinkTagsAndHermesCalls) {
  const Parse r = parse_all_ways(Family::Generic,
                                 "<think>x</think>y<tool_call>{\"name\":\"f\",\"arguments\":{\"a\":1}}</tool_call>");
  EXPECT_EQ(r.result.reasoning, "x");
  EXPECT_EQ(r.result.content, "y");
  expect_calls(r.result, {{"f", {{"a", 1}}}});
}

TEST(OutputParser, ToolCallIds) {
  const Parse r =
      parse_all_ways(Family::Qwen3, "<tool_call>{\"name\":\"f\"}</tool_call><tool_call>{\"name\":\"g\"}</tool_call>");
  ASSERT_EQ(r.result.tool_calls.size(), 2u);
  for (const ToolCall& c : r.result.tool_calls) {
    ASSERT_EQ(c.id.size(), 29u) << c.id;
    EXPECT_EQ(c.id.substr(0, 5), "call_");
    for (char ch : c.id.substr(5)) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch))) << c.id;
    EXPECT_EQ(c.arguments, "{}");
  }
  EXPECT_NE(r.result.tool_calls[0].id, r.result.tool_calls[1].id);
  // Mistral's templates require 9 letters and digits.
  const Parse m = parse_all_ways(Family::Mistral, "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {}}]");
  ASSERT_EQ(m.result.tool_calls.size(), 1u);
  EXPECT_EQ(m.result.tool_calls[0].id.size(), 9u);
}

// ---- Qwen 3.5: the template opens <think>; XML-ish calls ----

const json kWeatherTools = json::parse(R"([{"type": "function", "function": {"name": "get_weather", "parameters": {
  "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "zip": {"type": "string"},
  "detailed": {"type": "boolean"}, "hours": {"type": "array"}}}}}])");

ParserOptions qwen35(bool thinking) {
  ParserOptions o;
  o.starts_in_reasoning = thinking;
  o.tools = kWeatherTools;
  return o;
}

TEST(OutputParser, Qwen35PlainAnswer) {
  const Parse r = parse_all_ways(Family::Qwen35, "Paris is the capital of France.", qwen35(false));
  EXPECT_EQ(r.result.content, "Paris is the capital of France.");
  EXPECT_EQ(r.result.reasoning, "");
}

TEST(OutputParser, Qwen35ThinkingThenAnswer) {
  // The prompt ended with "<think>\n": the output starts inside the reasoning.
  const Parse r = parse_all_ways(Family::Qwen35, "The user asks about France.\n</think>\n\nParis.", qwen35(true));
  EXPECT_EQ(r.result.reasoning, "The user asks about France.");
  EXPECT_EQ(r.result.content, "Paris.");
}

const std::string kXmlCall =
    "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n"
    "<parameter=zip>\n75001\n</parameter>\n<parameter=detailed>\nTrue\n</parameter>\n<parameter=hours>\n[9, 12]\n"
    "</parameter>\n</function>\n</tool_call>";
const json kXmlArgs = {{"city", "Paris"}, {"days", 3}, {"zip", "75001"}, {"detailed", true}, {"hours", {9, 12}}};

TEST(OutputParser, Qwen35OneToolCall) {
  const Parse r = parse_all_ways(Family::Qwen35, kXmlCall, qwen35(false));
  // Types from the tool's schema: "75001" stays a string, 3 is an integer, True a boolean.
  expect_calls(r.result, {{"get_weather", kXmlArgs}});
  EXPECT_TRUE(r.result.errors.empty());
  // Without the schema the values are read as JSON where they are JSON, and as the Python
  // True/False/None the template writes for booleans and None.
  const Parse untyped = parse_all_ways(Family::Qwen35, kXmlCall);
  expect_calls(
      untyped.result,
      {{"get_weather", {{"city", "Paris"}, {"days", 3}, {"zip", 75001}, {"detailed", true}, {"hours", {9, 12}}}}});
}

TEST(OutputParser, Qwen35SeveralToolCalls) {
  const std::string second =
      "<tool_call>\n<function=get_time>\n<parameter=text>\nline one\nline two\n</parameter>\n</function>\n</tool_call>";
  const Parse r = parse_all_ways(Family::Qwen35, kXmlCall + "\n" + second, qwen35(false));
  expect_calls(r.result, {{"get_weather", kXmlArgs}, {"get_time", {{"text", "line one\nline two"}}}});
  // The JSON body of Qwen 3 is read too.
  const Parse j = parse_all_ways(
      Family::Qwen35, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
  expect_calls(j.result, {{"get_weather", kParis}});
}

TEST(OutputParser, Qwen35ToolCallAfterThinking) {
  const Parse r =
      parse_all_ways(Family::Qwen35, "I should call the tool.\n</think>\n\nChecking.\n\n" + kXmlCall, qwen35(true));
  EXPECT_EQ(r.result.reasoning, "I should call the tool.");
  EXPECT_EQ(r.result.content, "Checking.");
  expect_calls(r.result, {{"get_weather", kXmlArgs}});
}

TEST(OutputParser, Qwen35MalformedToolCall) {
  const std::string bad = "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</function>\n</tool_call>";
  const Parse r = parse_all_ways(Family::Qwen35, bad, qwen35(false));
  EXPECT_TRUE(r.result.tool_calls.empty());
  ASSERT_EQ(r.result.errors.size(), 1u);
  EXPECT_NE(r.result.errors[0].find("</parameter>"), std::string::npos) << r.result.errors[0];
  EXPECT_EQ(r.result.content, bad);
  const std::string bad_json =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": Paris}}\n</tool_call>";
  const Parse j = parse_all_ways(Family::Qwen35, bad_json, qwen35(false));
  ASSERT_EQ(j.result.errors.size(), 1u);
  EXPECT_EQ(j.result.content, bad_json);
}

// ---- Llama 3.x: JSON at the start of the answer, <|python_tag|> ----

TEST(OutputParser, Llama3PlainAnswer) {
  expect_plain(Family::Llama3, "Paris is the capital of France.", "Paris is the capital of France.");
  // JSON that is not a call at the start, or a call later in the text, is content.
  expect_plain(Family::Llama3, "{\"city\": \"Paris\"}", "{\"city\": \"Paris\"}");
  expect_plain(Family::Llama3, "Call it like {\"name\": \"f\", \"parameters\": {}}.",
               "Call it like {\"name\": \"f\", \"parameters\": {}}.");
}

TEST(OutputParser, Llama3HasNoThinking) {
  // Llama 3 does not think: think tags are plain content.
  expect_plain(Family::Llama3, "<think>hmm</think>Paris.", "<think>hmm</think>Paris.");
}

TEST(OutputParser, Llama3OneToolCall) {
  const Parse r = parse_all_ways(Family::Llama3, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}");
  expect_calls(r.result, {{"get_weather", kParis}});
  EXPECT_EQ(r.result.content, "");
  const Parse typed = parse_all_ways(
      Family::Llama3, "  {\"type\": \"function\", \"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}");
  expect_calls(typed.result, {{"get_weather", kParis}});
  const Parse tag = parse_all_ways(Family::Llama3,
                                   "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}");
  expect_calls(tag.result, {{"get_weather", kParis}});
}

TEST(OutputParser, Llama3SeveralToolCalls) {
  const Parse r =
      parse_all_ways(Family::Llama3,
                     "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; {\"name\": \"get_time\", "
                     "\"parameters\": {\"tz\": \"CET\"}}");
  expect_calls(r.result, {{"get_weather", kParis}, {"get_time", {{"tz", "CET"}}}});
  EXPECT_EQ(r.result.content, "");
}

TEST(OutputParser, Llama3BuiltinToolsAfterPythonTag) {
  const Parse r =
      parse_all_ways(Family::Llama3, "<|python_tag|>brave_search.call(query=\"weather in Paris\", count=3)");
  expect_calls(r.result, {{"brave_search", {{"query", "weather in Paris"}, {"count", 3}}}});
  const Parse code = parse_all_ways(Family::Llama3, "<|python_tag|>print(2 ** 10)\n");
  expect_calls(code.result, {{"python", {{"code", "print(2 ** 10)"}}}});
}

TEST(OutputParser, Llama3MalformedToolCall) {
  const std::string cut = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"";
  const Parse r = parse_all_ways(Family::Llama3, cut);
  EXPECT_TRUE(r.result.tool_calls.empty());
  ASSERT_EQ(r.result.errors.size(), 1u);
  EXPECT_EQ(r.result.content, cut);
  const std::string bad = "{\"name\": \"get_weather\", \"parameters\": {\"city\": 'Paris'}} and more";
  const Parse b = parse_all_ways(Family::Llama3, bad);
  ASSERT_EQ(b.result.errors.size(), 1u);
  EXPECT_NE(b.result.errors[0].find("invalid JSON"), std::string::npos);
  EXPECT_EQ(b.result.content, bad);
}

// ---- Llama 4: pythonic lists, <|python_start|> ----

TEST(OutputParser, Llama4PlainAnswer) {
  expect_plain(Family::Llama4, "[Paris](https://en.wikipedia.org/wiki/Paris) is the capital.",
               "[Paris](https://en.wikipedia.org/wiki/Paris) is the capital.");
}

TEST(OutputParser, Llama4PythonicToolCalls) {
  const Parse one = parse_all_ways(Family::Llama4, "[get_weather(city=\"Paris\")]");
  expect_calls(one.result, {{"get_weather", kParis}});
  const Parse r = parse_all_ways(Family::Llama4,
                                 "[get_weather(city='Paris', days=3, hourly=True), get_time(tz=\"Europe/Paris\", "
                                 "fields=[\"h\", \"m\"], opts={'round': None, 'x': -1.5})]");
  expect_calls(
      r.result,
      {{"get_weather", {{"city", "Paris"}, {"days", 3}, {"hourly", true}}},
       {"get_time", {{"tz", "Europe/Paris"}, {"fields", {"h", "m"}}, {"opts", {{"round", nullptr}, {"x", -1.5}}}}}});
  EXPECT_EQ(r.result.content, "");
}

TEST(OutputParser, Llama4JsonToolCalls) {
  const Parse r = parse_all_ways(Family::Llama4,
                                 "<|python_start|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}"
                                 "<|python_end|>");
  expect_calls(r.result, {{"get_weather", kParis}});
  const Parse two = parse_all_ways(
      Family::Llama4, "{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"x\": 1}}");
  expect_calls(two.result, {{"a", json::object()}, {"b", {{"x", 1}}}});
}

TEST(OutputParser, Llama4MalformedToolCall) {
  const std::string bad = "[get_weather(city=Paris)]";
  const Parse r = parse_all_ways(Family::Llama4, bad);
  ASSERT_EQ(r.result.errors.size(), 1u);
  EXPECT_NE(r.result.errors[0].find("unknown name 'Paris'"), std::string::npos) << r.result.errors[0];
  EXPECT_EQ(r.result.content, bad);
  const std::string bad_json = "<|python_start|>{\"name\": \"f\", \"parameters\": {]}<|python_end|>";
  const Parse j = parse_all_ways(Family::Llama4, bad_json);
  ASSERT_EQ(j.result.errors.size(), 1u);
  EXPECT_EQ(j.result.content, bad_json);
}

// ---- Gemma 4: <|channel>thought ... <channel|>, <|tool_call>call:NAME{...}<tool_call|> ----

TEST(OutputParser, Gemma4PlainAnswer) { expect_plain(Family::Gemma4, "Paris.", "Paris."); }

TEST(OutputParser, Gemma4ThinkingThenAnswer) {
  const Parse r = parse_all_ways(Family::Gemma4, "<|channel>thought\nThe user asks about France.<channel|>Paris.");
  EXPECT_EQ(r.result.reasoning, "The user asks about France.");
  EXPECT_EQ(r.result.content, "Paris.");
}

TEST(OutputParser, Gemma4ToolCalls) {
  const Parse one = parse_all_ways(Family::Gemma4,
                                   "<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>}<tool_call|><|tool_response>");
  expect_calls(one.result, {{"get_weather", kParis}});
  EXPECT_EQ(one.result.content, "");
  const Parse two = parse_all_ways(Family::Gemma4,
                                   "<|tool_call>call:get_weather{city:<|\"|>Paris, France<|\"|>,days:3}<tool_call|>"
                                   "<|tool_call>call:search{exact:true,filters:{max:10,tags:[<|\"|>a<|\"|>,<|\"|>b: "
                                   "c<|\"|>]},none:null}<tool_call|>");
  expect_calls(two.result,
               {{"get_weather", {{"city", "Paris, France"}, {"days", 3}}},
                {"search", {{"exact", true}, {"filters", {{"max", 10}, {"tags", {"a", "b: c"}}}}, {"none", nullptr}}}});
}

TEST(OutputParser, Gemma4ToolCallAfterThinking) {
  const Parse r =
      parse_all_ways(Family::Gemma4,
                     "<|channel>thought\nI need the weather.<channel|><|tool_call>call:get_weather{city:<|\"|>"
                     "Paris<|\"|>}<tool_call|><|tool_response>");
  EXPECT_EQ(r.result.reasoning, "I need the weather.");
  expect_calls(r.result, {{"get_weather", kParis}});
  EXPECT_EQ(r.result.content, "");
}

TEST(OutputParser, Gemma4MalformedToolCall) {
  const std::string bad = "<|tool_call>call:get_weather{city:<|\"|>Paris}<tool_call|>";
  const Parse r = parse_all_ways(Family::Gemma4, bad);
  ASSERT_EQ(r.result.errors.size(), 1u);
  EXPECT_NE(r.result.errors[0].find("unterminated"), std::string::npos) << r.result.errors[0];
  EXPECT_EQ(r.result.content, bad);
}

// ---- DeepSeek R1: <think>, <｜tool▁calls▁begin｜> ... ----

const std::string kDsCall =
    "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>";

TEST(OutputParser, DeepSeekR1PlainAnswer) { expect_plain(Family::DeepSeekR1, "Paris.", "Paris."); }

TEST(OutputParser, DeepSeekR1ThinkingThenAnswer) {
  ParserOptions opened;
  opened.starts_in_reasoning = true;  // its template ends the prompt with "<think>\n"
  const Parse r = parse_all_ways(Family::DeepSeekR1, "Okay, the user wants the capital.\n</think>\n\nParis.", opened);
  EXPECT_EQ(r.result.reasoning, "Okay, the user wants the capital.");
  EXPECT_EQ(r.result.content, "Paris.");
  const Parse tagged = parse_all_ways(Family::DeepSeekR1, "<think>\nHmm.\n</think>\nParis.");
  EXPECT_EQ(tagged.result.reasoning, "Hmm.");
  EXPECT_EQ(tagged.result.content, "Paris.");
  // A model that writes the opening marker again after the prompt's is read the same.
  const Parse twice = parse_all_ways(Family::DeepSeekR1, "\n<think>\nHmm.\n</think>\nParis.", opened);
  EXPECT_EQ(twice.result.reasoning, "Hmm.");
  EXPECT_EQ(twice.result.content, "Paris.");
}

TEST(OutputParser, DeepSeekR1ToolCalls) {
  const Parse one = parse_all_ways(Family::DeepSeekR1, "<｜tool▁calls▁begin｜>" + kDsCall + "<｜tool▁calls▁end｜>");
  expect_calls(one.result, {{"get_weather", kParis}});
  const Parse two =
      parse_all_ways(Family::DeepSeekR1, "<｜tool▁calls▁begin｜>" + kDsCall +
                                             "\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{\"tz\": "
                                             "\"CET\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
  expect_calls(two.result, {{"get_weather", kParis}, {"get_time", {{"tz", "CET"}}}});
  EXPECT_EQ(two.result.content, "");
}

TEST(OutputParser, DeepSeekR1ToolCallAfterThinking) {
  ParserOptions opened;
  opened.starts_in_reasoning = true;
  const Parse r = parse_all_ways(
      Family::DeepSeekR1,
      "The weather tool fits.\n</think>\n\n<｜tool▁calls▁begin｜>" + kDsCall + "<｜tool▁calls▁end｜>", opened);
  EXPECT_EQ(r.result.reasoning, "The weather tool fits.");
  expect_calls(r.result, {{"get_weather", kParis}});
}

TEST(OutputParser, DeepSeekR1MalformedToolCall) {
  const std::string bad =
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": "
      "\"Paris\"\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
  const Parse r = parse_all_ways(Family::DeepSeekR1, bad);
  ASSERT_EQ(r.result.errors.size(), 1u);
  EXPECT_NE(r.result.errors[0].find("invalid JSON"), std::string::npos) << r.result.errors[0];
  EXPECT_EQ(r.result.content, bad);
}

// ---- Mistral: [TOOL_CALLS], [THINK] ----

TEST(OutputParser, MistralPlainAnswer) { expect_plain(Family::Mistral, "Paris [1].", "Paris [1]."); }

TEST(OutputParser, MistralThinkingThenAnswer) {
  const Parse r = parse_all_ways(Family::Mistral, "[THINK]The capital of France.[/THINK]Paris.");
  EXPECT_EQ(r.result.reasoning, "The capital of France.");
  EXPECT_EQ(r.result.content, "Paris.");
}

TEST(OutputParser, MistralToolCalls) {
  const Parse one = parse_all_ways(
      Family::Mistral,
      "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abc123XYZ\"}]");
  expect_calls(one.result, {{"get_weather", kParis}});
  EXPECT_EQ(one.result.tool_calls[0].id, "abc123XYZ");  // the model's id is kept
  const Parse two = parse_all_ways(Family::Mistral,
                                   "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, "
                                   "{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}]");
  expect_calls(two.result, {{"get_weather", kParis}, {"get_time", {{"tz", "CET"}}}});
  // The newer NAME[ARGS]{...} form, one [TOOL_CALLS] per call.
  const Parse v11 = parse_all_ways(
      Family::Mistral,
      "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_time[CALL_ID]x1y2z3w4v[ARGS]{}");
  expect_calls(v11.result, {{"get_weather", kParis}, {"get_time", json::object()}});
  EXPECT_EQ(v11.result.tool_calls[1].id, "x1y2z3w4v");
}

TEST(OutputParser, MistralToolCallAfterThinking) {
  const Parse r = parse_all_ways(Family::Mistral,
                                 "[THINK]Use the tool.[/THINK][TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": "
                                 "{\"city\": \"Paris\"}}]");
  EXPECT_EQ(r.result.reasoning, "Use the tool.");
  expect_calls(r.result, {{"get_weather", kParis}});
}

TEST(OutputParser, MistralMalformedToolCall) {
  const std::string bad = "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": Paris}}]";
  const Parse r = parse_all_ways(Family::Mistral, bad);
  ASSERT_EQ(r.result.errors.size(), 1u);
  EXPECT_EQ(r.result.content, bad);
  EXPECT_TRUE(r.result.tool_calls.empty());
}

TEST(OutputParser, ToMessageIsTheOpenAiAssistantMessage) {
  ParserOptions opt;
  opt.id_seed = 7;
  const ParsedOutput r = parse_output(
      Family::Qwen3, "<think>r</think><tool_call>{\"name\":\"f\",\"arguments\":{\"a\":1}}</tool_call>", opt);
  const auto m = r.to_message();
  EXPECT_EQ(m["role"], "assistant");
  EXPECT_TRUE(m["content"].is_null());
  EXPECT_EQ(m["reasoning_content"], "r");
  EXPECT_EQ(m["tool_calls"][0]["type"], "function");
  EXPECT_EQ(m["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
  EXPECT_EQ(m["tool_calls"][0]["id"], r.tool_calls[0].id);
  EXPECT_EQ(parse_output(Family::Qwen3, "hi").to_message().dump(), R"({"role":"assistant","content":"hi"})");
}

// Random texts made of markers, pieces of markers, JSON and call fragments and words, for every
// family: never an exception, and the same events however the text is cut.
TEST(OutputParser, RandomTextsParseTheSameWhateverThePieces) {
  const std::vector<std::string> parts = {"<think>",
                                          "</think>",
                                          "<tool_call>",
                                          "</tool_call>",
                                          "<function=f>",
                                          "<parameter=a>\n1\n</parameter>",
                                          "</function>",
                                          "<|python_tag|>",
                                          "<|python_start|>",
                                          "<|python_end|>",
                                          "<|channel>thought",
                                          "<channel|>",
                                          "<|tool_call>",
                                          "call:f{a:<|\"|>x<|\"|>}",
                                          "<tool_call|>",
                                          "<|tool_response>",
                                          "[TOOL_CALLS]",
                                          "[THINK]",
                                          "[/THINK]",
                                          "[ARGS]",
                                          "<｜tool▁calls▁begin｜>",
                                          "<｜tool▁call▁begin｜>",
                                          "function<｜tool▁sep｜>f\n```json\n",
                                          "<｜tool▁call▁end｜>",
                                          "<｜tool▁calls▁end｜>",
                                          "{\"name\": \"f\", \"arguments\": {\"a\": 1}}",
                                          "{\"name\": \"g\", \"parameters\": {}}",
                                          "[f(a=1)]",
                                          "{",
                                          "}",
                                          "[",
                                          "]",
                                          "\"",
                                          ",",
                                          ";",
                                          "<",
                                          "<th",
                                          "</t",
                                          "<tool_",
                                          "[TOOL",
                                          "<|",
                                          "é",
                                          "\n",
                                          " ",
                                          "hello",
                                          "world 42",
                                          "\xff"};
  std::mt19937 rng(99);
  for (Family family : all_families()) {
    for (int i = 0; i < 200; ++i) {
      std::string text;
      const int n = 1 + static_cast<int>(rng() % 12);
      for (int k = 0; k < n; ++k) text += parts[rng() % parts.size()];
      ParserOptions opt;
      opt.starts_in_reasoning = rng() % 4 == 0;
      opt.id_seed = 5;
      const std::string whole = describe(feed(family, {text}, opt).events);
      std::vector<std::string> bytes;
      for (char c : text) bytes.emplace_back(1, c);
      ASSERT_EQ(describe(feed(family, bytes, opt).events), whole) << family_name(family) << ": " << text;
      ASSERT_EQ(describe(feed(family, tokens(text, static_cast<uint32_t>(i)), opt).events), whole)
          << family_name(family) << ": " << text;
    }
  }
}

// ---- streamed tool calls (ParserOptions::stream_tool_calls) ----

// What a streaming run says, per call and overall, independent of how the pieces came.
struct Streamed {
  std::string text;  // content, reasoning and errors joined, and per call: begin, joined args, final call
  size_t args_events = 0;
  size_t args_before_first_call = 0;  // ToolCallArgs events before the first ToolCall
};

Streamed stream(Family family, const std::vector<std::string>& pieces, ParserOptions opt) {
  opt.stream_tool_calls = true;
  OutputParser p(family, opt);
  std::vector<Event> all;
  for (const std::string& piece : pieces) {
    const auto ev = p.feed(piece);
    all.insert(all.end(), ev.begin(), ev.end());
  }
  const auto ev = p.finish();
  all.insert(all.end(), ev.begin(), ev.end());
  struct PerCall {
    std::string id, name, args;
    bool begun = false;
  };
  std::map<size_t, PerCall> calls;
  std::vector<Event> plain;
  Streamed out;
  bool seen_call = false;
  for (const Event& e : all) {
    if (e.kind == EventKind::ToolCallBegin) {
      PerCall& c = calls[e.index];
      EXPECT_FALSE(c.begun) << "two begins for call " << e.index;
      // A call whose block turned out malformed is abandoned: its index starts over.
      c = {e.call.id, e.call.name, "", true};
    } else if (e.kind == EventKind::ToolCallArgs) {
      PerCall& c = calls[e.index];
      EXPECT_TRUE(c.begun) << "arguments before the begin of call " << e.index;
      EXPECT_EQ(e.call.id, c.id);
      c.args += e.text;
      ++out.args_events;
      if (!seen_call) ++out.args_before_first_call;
    } else {
      if (e.kind == EventKind::ToolCall) {
        seen_call = true;
        PerCall& c = calls[e.index];
        EXPECT_TRUE(c.begun) << "call " << e.index << " without a begin";
        EXPECT_EQ(c.id, e.call.id);
        EXPECT_EQ(c.name, e.call.name);
        EXPECT_EQ(c.args, e.call.arguments) << "the streamed arguments of call " << e.index;
        EXPECT_EQ(p.result().tool_calls.at(e.index).arguments, e.call.arguments);
        c.begun = false;
      }
      if (e.kind == EventKind::Error) calls.clear();
      plain.push_back(e);
    }
  }
  for (const auto& [i, c] : calls) EXPECT_FALSE(c.begun) << "call " << i << " begun and never ended";
  out.text = describe(join(plain));
  return out;
}

TEST(OutputParser, StreamedToolCallArgumentsJoinToTheFinalArguments) {
  struct Case {
    Family family;
    std::string text;
    bool streams;  // its arguments arrive before the block ends (else in one piece at its end)
  };
  const std::string rich = "{\"name\": \"f\", \"arguments\": {\"s\": \"a\\\"b\\\\ \\u00e9\\ud83d\\ude00 é\\/\", \"n\": -1.50e2, "
                           "\"i\": 12, \"t\": true, \"z\": null, \"arr\": [1, {\"x\": []}, \"\\n\"], \"o\": {}}}";
  const std::vector<Case> cases = {
      {Family::Qwen3, "<tool_call>\n" + rich + "\n</tool_call>", true},
      {Family::Qwen3,
       "Let me check both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
       "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"Europe/Paris\", \"24h\": true}}\n</tool_call>",
       true},
      {Family::Qwen3, "<think>\nI need the weather tool.\n</think>\n\n<tool_call>\n{\"arguments\": {\"city\": \"Paris\"}, "
                      "\"name\": \"get_weather\"}\n</tool_call>",
       false},  // the name after the arguments: everything at the end
      {Family::Qwen3, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\",}}\n</tool_call>x",
       true},  // streamed until the block turns out malformed
      {Family::Qwen3, "<tool_call>{\"name\":\"f\",\"arguments\":\"{\\\"a\\\": 1}\"}</tool_call>", false},
      {Family::Generic, "<tool_call>{\"name\":\"f\",\"arguments\":{\"a\":[1,2.0,3e1]}}</tool_call>", true},
      {Family::Qwen35, kXmlCall, true},
      {Family::Qwen35,
       kXmlCall + "\n<tool_call>\n<function=get_time>\n<parameter=text>\nline one\nline two\n</parameter>\n</function>"
                  "\n</tool_call>",
       true},
      {Family::Qwen35, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", true},
      {Family::Qwen35, "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</function>\n</tool_call>", false},
      {Family::Llama3, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"days\": 3}}", true},
      {Family::Llama3, "  {\"type\": \"function\", \"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", true},
      {Family::Llama3, "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", true},
      {Family::Llama3,
       "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; {\"name\": \"get_time\", \"parameters\": "
       "{\"tz\": \"CET\"}}",
       true},
      {Family::Llama3, "<|python_tag|>brave_search.call(query=\"weather in Paris\", count=3)", false},
      {Family::Llama4, "[get_weather(city=\"Paris\", days=3), get_time(tz=\"CET\")]", false},
      {Family::Llama4, "<|python_start|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|python_end|>",
       false},
      {Family::Gemma4,
       "<|tool_call>call:get_weather{city:<|\"|>Paris, France<|\"|>,days:3}<tool_call|><|tool_call>call:search{exact:"
       "true,filters:{max:10}}<tool_call|>",
       false},
      {Family::DeepSeekR1,
       "<｜tool▁calls▁begin｜>" + kDsCall +
           "\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{\"tz\": \"CET\"}\n```<｜tool▁call▁end｜>"
           "<｜tool▁calls▁end｜>",
       true},
      {Family::DeepSeekR1, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": "
                           "\"Paris\"\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
       true},  // malformed: streamed until the block ends
      {Family::Mistral,
       "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abc123XYZ\"}]", false},
      {Family::Mistral,
       "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_time[CALL_ID]x1y2z3w4v[ARGS]{\"tz\": \"CET\"}",
       true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(family_name(c.family)) + ": " + c.text);
    ParserOptions opt;
    opt.id_seed = 77;
    opt.tools = kWeatherTools;
    const Streamed whole = stream(c.family, {c.text}, opt);
    std::vector<std::string> bytes;
    for (char ch : c.text) bytes.emplace_back(1, ch);
    const Streamed by_byte = stream(c.family, bytes, opt);
    EXPECT_EQ(by_byte.text, whole.text);
    for (uint32_t seed = 1; seed <= 3; ++seed) EXPECT_EQ(stream(c.family, tokens(c.text, seed), opt).text, whole.text);
    // The events other than the new ones are those of a parser that does not stream.
    EXPECT_EQ(whole.text, describe(feed(c.family, {c.text}, opt).events));
    if (c.streams) {
      EXPECT_GT(by_byte.args_before_first_call, 1u) << "the arguments came only at the end";
    } else {
      EXPECT_LE(by_byte.args_before_first_call, 1u) << "arguments before the end of the block";
    }
  }
  // The model's own id (Mistral) is the call's id; a later block reuses the index of a malformed one.
  ParserOptions opt;
  opt.stream_tool_calls = true;
  OutputParser p(Family::Mistral, opt);
  std::vector<Event> ev = p.feed("[TOOL_CALLS]get_time[CALL_ID]x1y2z3w4v[ARGS]{\"tz\": \"CE");
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].kind, EventKind::ToolCallBegin);
  EXPECT_EQ(ev[0].call.id, "x1y2z3w4v");
  EXPECT_EQ(ev[0].call.name, "get_time");
  EXPECT_EQ(ev[1].kind, EventKind::ToolCallArgs);
  EXPECT_EQ(ev[1].text, "{\"tz\":\"CE");
}

// ---- the literal readers ----

TEST(ToolSyntax, PythonLiterals) {
  EXPECT_EQ(detail::parse_python_literal("'a\\'b\\n\\u00e9'"), json("a'b\né"));
  EXPECT_EQ(detail::parse_python_literal("[1, 2.5, -3e2, True, None, (1, 'x'), {'k': [ ]}]"),
            json::parse(R"([1, 2.5, -300.0, true, null, [1, "x"], {"k": []}])"));
  EXPECT_THROW(detail::parse_python_literal("[1, 2"), Error);
  EXPECT_THROW(detail::parse_python_literal("foo"), Error);
  EXPECT_THROW(detail::parse_python_literal("'open"), Error);
}

TEST(ToolSyntax, Gemma4Values) {
  EXPECT_EQ(detail::parse_gemma4_value("{a:<|\"|>x, y<|\"|>,b:[1,2.5,false],c:{<|\"|>d e<|\"|>:null}}"),
            json::parse(R"({"a": "x, y", "b": [1, 2.5, false], "c": {"d e": null}})"));
  EXPECT_EQ(detail::parse_gemma4_value("{w:bare word}"), json::parse(R"({"w": "bare word"})"));
  EXPECT_THROW(detail::parse_gemma4_value("{a:1"), Error);
}

TEST(ToolSyntax, JsonExtent) {
  size_t mismatch = 0;
  EXPECT_EQ(detail::json_extent(R"({"a": "}]", "b": [1, {"c": "\"}"}]} tail)", 0, &mismatch), 35u);
  EXPECT_EQ(detail::json_extent(R"({"a": [1, 2)", 0, &mismatch), std::string::npos);
  EXPECT_EQ(mismatch, 0u);
  EXPECT_EQ(detail::json_extent(R"({"a": ])", 0, &mismatch), std::string::npos);
  EXPECT_EQ(mismatch, 7u);
}

TEST(ToolSyntax, CallStartPatterns) {
  size_t start = 0;
  EXPECT_EQ(detail::match_json_call_start("  {\"na", "", &start), detail::Match::Maybe);
  EXPECT_EQ(detail::match_json_call_start("  { \"name\" :", "", &start), detail::Match::Yes);
  EXPECT_EQ(start, 2u);
  EXPECT_EQ(detail::match_json_call_start("{\"city\"", "", &start), detail::Match::No);
  EXPECT_EQ(detail::match_json_call_start("; {\"name\":", ";", &start), detail::Match::Yes);
  EXPECT_EQ(detail::match_json_call_start("; {\"name\":", "", &start), detail::Match::No);
  EXPECT_EQ(detail::match_pythonic_start("[get_wea", &start), detail::Match::Maybe);
  EXPECT_EQ(detail::match_pythonic_start("[get_weather (", &start), detail::Match::Yes);
  EXPECT_EQ(detail::match_pythonic_start("[1, 2]", &start), detail::Match::No);
  EXPECT_EQ(detail::match_pythonic_start("[Paris]", &start), detail::Match::No);
}

}  // namespace
}  // namespace hearth::chat
