// Chat templates of models: family detection on the real templates of testdata/chat-templates,
// thinking switches (enable_thinking, the /think soft switch), where the prompt leaves the model
// (inside the reasoning or not), the GGUF without a template, and round trips: what a template
// writes for an assistant turn with reasoning and tool calls, the parser reads back.
#include "chat/prompt.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "chat/formats.h"
#include "chat/output_parser.h"
#include "chat/thinking.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace hearth::chat {
namespace {

using json = nlohmann::ordered_json;

const std::string kTemplates = std::string(HEARTH_TESTDATA_DIR) + "/chat-templates/";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

ChatTemplate load(const std::string& name) {
  return ChatTemplate(slurp(kTemplates + name + ".jinja"), name, "<BOS>", "<EOS>");
}

json find_case(const std::string& name, const std::string& case_name) {
  const json j = json::parse(slurp(kTemplates + name + ".jinja.cases.json"));
  for (const json& c : j.at("cases"))
    if (c.at("name") == case_name) return c;
  ADD_FAILURE() << "no case " << case_name;
  return {};
}

std::tm date() { return parse_date("2026-07-26"); }

TEST(ChatFormats, FamilyOfEachRealTemplate) {
  const std::vector<std::pair<std::string, Family>> expected = {
      {"Qwen-Qwen2.5-7B-Instruct", Family::Qwen3},
      {"Qwen-Qwen3-0.6B", Family::Qwen3},
      {"Qwen3.5-4B", Family::Qwen35},
      {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", Family::DeepSeekR1},
      {"google-gemma-2-2b-it", Family::Generic},
      {"google-gemma-4-31B-it", Family::Gemma4},
      {"meta-llama-Llama-3.1-8B-Instruct", Family::Llama3},
      {"microsoft-Phi-3.5-mini-instruct", Family::Generic},
      {"mistralai-Mistral-Nemo-Instruct-2407", Family::Mistral},
      {"HuggingFaceTB-SmolLM3-3B", Family::Generic},
  };
  for (const auto& [name, family] : expected) {
    EXPECT_EQ(family_name(load(name).family()), std::string(family_name(family))) << name;
  }
  // Llama 4's markers (no Llama 4 template in the test data).
  EXPECT_EQ(detect_family("{{ '<|header_start|>' + role + '<|header_end|>' }}"), Family::Llama4);
  for (Family f : all_families()) EXPECT_EQ(family_from_name(family_name(f)), f);
  EXPECT_EQ(family_from_name("gpt-oss"), std::nullopt);
}

TEST(ChatFormats, ThinkingSwitchOfEachTemplate) {
  EXPECT_EQ(load("Qwen-Qwen3-0.6B").thinking_switch(), ThinkingSwitch::TemplateVariable);
  EXPECT_EQ(load("Qwen3.5-4B").thinking_switch(), ThinkingSwitch::TemplateVariable);
  EXPECT_EQ(load("google-gemma-4-31B-it").thinking_switch(), ThinkingSwitch::TemplateVariable);
  EXPECT_EQ(load("meta-llama-Llama-3.1-8B-Instruct").thinking_switch(), ThinkingSwitch::None);
  EXPECT_EQ(load("Qwen-Qwen2.5-7B-Instruct").thinking_switch(), ThinkingSwitch::None);  // no <think>: not a thinker
  EXPECT_EQ(ChatTemplate::chatml().thinking_switch(), ThinkingSwitch::None);
}

TEST(ChatTemplate, ThinkingOffThroughEnableThinkingRendersTheConformanceCase) {
  // Thinking::Off must give exactly what jinja2 gave with enable_thinking=false.
  for (const std::string name : {"Qwen-Qwen3-0.6B", "Qwen3.5-4B", "google-gemma-4-31B-it"}) {
    const json c = find_case(name, "thinking_off");
    ASSERT_EQ(c.at("extra").at("enable_thinking"), false);
    ChatInputs in;
    in.messages = c.at("messages");
    in.thinking = Thinking::Off;
    in.now = date();
    const RenderedPrompt p = load(name).render(in);
    EXPECT_EQ(p.text, c.at("expected").get<std::string>()) << name;
    EXPECT_FALSE(p.starts_in_reasoning) << name;
    const json on = find_case(name, "thinking_on");
    in.thinking = Thinking::On;
    EXPECT_EQ(load(name).render(in).text, on.at("expected").get<std::string>()) << name;
  }
}

TEST(ChatTemplate, PromptEndsInsideTheReasoningWhereTheTemplateOpensIt) {
  ChatInputs in;
  in.messages = json::array({{{"role", "user"}, {"content", "Hi"}}});
  // Qwen 3.5 opens <think> in the generation prompt unless thinking is off.
  EXPECT_TRUE(load("Qwen3.5-4B").render(in).starts_in_reasoning);
  in.thinking = Thinking::Off;
  EXPECT_FALSE(load("Qwen3.5-4B").render(in).starts_in_reasoning);
  // This DeepSeek R1 template closes the reasoning unless enable_thinking is true.
  in.thinking = Thinking::On;
  const RenderedPrompt ds = load("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B").render(in);
  EXPECT_TRUE(ds.text.ends_with("<｜Assistant｜><think>\n")) << ds.text;
  EXPECT_TRUE(ds.starts_in_reasoning);
  in.thinking = Thinking::Off;
  EXPECT_FALSE(load("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B").render(in).starts_in_reasoning);
  // Qwen 3 lets the model open it.
  in.thinking = Thinking::On;
  EXPECT_FALSE(load("Qwen-Qwen3-0.6B").render(in).starts_in_reasoning);
  // Without a generation prompt the answer is not being generated.
  in.add_generation_prompt = false;
  EXPECT_FALSE(load("Qwen3.5-4B").render(in).starts_in_reasoning);
}

TEST(ChatTemplate, ExtraEnableThinkingWinsOverThinking) {
  ChatInputs in;
  in.messages = json::array({{{"role", "user"}, {"content", "Hi"}}});
  in.thinking = Thinking::On;
  in.extra = {{"enable_thinking", false}};
  EXPECT_TRUE(load("Qwen-Qwen3-0.6B").render(in).text.ends_with("<think>\n\n</think>\n\n"));
}

TEST(ChatTemplate, SoftSwitchOnTheLastUserMessage) {
  // A Qwen 3 template without enable_thinking (as older GGUFs carry) gets Qwen 3's soft switch.
  std::string source = slurp(kTemplates + "Qwen-Qwen3-0.6B.jinja");
  for (size_t p; (p = source.find("enable_thinking")) != std::string::npos;) source.replace(p, 15, "thinking_flag_x");
  const ChatTemplate t(source, "qwen3-no-switch", "", "");
  ASSERT_EQ(t.thinking_switch(), ThinkingSwitch::SoftSwitch);
  ChatInputs in;
  in.messages = json::array({{{"role", "user"}, {"content", "First"}},
                             {{"role", "assistant"}, {"content", "Ok"}},
                             {{"role", "user"}, {"content", "Second"}}});
  in.thinking = Thinking::Off;
  const std::string off = t.render(in).text;
  EXPECT_NE(off.find("<|im_start|>user\nSecond /no_think<|im_end|>"), std::string::npos) << off;
  EXPECT_NE(off.find("<|im_start|>user\nFirst<|im_end|>"), std::string::npos) << off;
  in.thinking = Thinking::On;
  EXPECT_NE(t.render(in).text.find("Second /think<|im_end|>"), std::string::npos);
  in.thinking = Thinking::Default;
  EXPECT_NE(t.render(in).text.find("Second<|im_end|>"), std::string::npos);
  EXPECT_STREQ(soft_switch_suffix(Thinking::Off), " /no_think");
}

TEST(ChatTemplate, ChatMlFallback) {
  const ChatTemplate t = ChatTemplate::chatml();
  ChatInputs in;
  in.messages = json::array({{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}});
  const RenderedPrompt p = t.render(in);
  EXPECT_EQ(p.text, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(p.family, Family::Generic);
  EXPECT_FALSE(p.parse_tool_calls);
  in.messages = json::object();
  EXPECT_THROW(t.render(in), Error);
}

TEST(ChatTemplate, FromGgufTakesTheTemplateAndTheVocabularysBos) {
  // ggml-vocab-phi-3.gguf carries Phi 3's template ("{{ bos_token }}..."), BOS id 1 = "<s>".
  const gguf::File f = gguf::File::open(std::string(HEARTH_TESTDATA_DIR) + "/tokenizer/ggml-vocab-phi-3.gguf");
  const tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_gguf(f);
  const ChatTemplate t = ChatTemplate::from_gguf(f, tok);
  EXPECT_EQ(t.bos_token(), "<s>");
  EXPECT_EQ(t.eos_token(), tok.token_text(*tok.eos()));
  EXPECT_EQ(t.family(), Family::Generic);
  ChatInputs in;
  in.messages = json::array({{{"role", "user"}, {"content", "Hi"}}});
  EXPECT_EQ(t.render(in).text, "<s><|user|>\nHi<|end|>\n<|assistant|>\n");
  // The family can be given instead of detected.
  EXPECT_EQ(ChatTemplate::from_gguf(f, tok, Family::Mistral).family(), Family::Mistral);
}

TEST(ChatTemplate, GgufWithoutTemplateIsAClearError) {
  const gguf::File f = gguf::File::open(std::string(HEARTH_TESTDATA_DIR) + "/models/qwen3-F16.gguf");
  const tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_gguf(f);
  try {
    ChatTemplate::from_gguf(f, tok);
    FAIL() << "no error";
  } catch (const NoChatTemplateError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.chat_template"), std::string::npos) << e.what();
  }
}

// ---- round trips: the template writes an assistant turn, the parser reads it back ----

struct RoundTrip {
  std::string name;
  std::string turn_start, turn_end;  // around the assistant turn in the rendered text
  bool two_calls = true;
  bool tools_in_context = true;
};

// Renders [user, assistant(tool calls)] and returns the assistant turn's text.
std::string assistant_turn(const RoundTrip& rt, const json& assistant) {
  const json c = find_case(rt.name, "tools_roundtrip");
  ChatInputs in;
  in.messages = json::array({c.at("messages")[0], assistant});
  if (rt.tools_in_context) in.tools = c.at("tools");
  in.add_generation_prompt = false;
  in.now = date();
  const std::string text = load(rt.name).render(in).text;
  const size_t b = text.find(rt.turn_start);
  EXPECT_NE(b, std::string::npos) << rt.name << ": " << text;
  const size_t start = b + rt.turn_start.size();
  const size_t e = rt.turn_end.empty() ? std::string::npos : text.find(rt.turn_end, start);
  return text.substr(start, e == std::string::npos ? std::string::npos : e - start);
}

TEST(ChatTemplate, ParserReadsBackTheToolCallsTemplatesWrite) {
  const std::vector<RoundTrip> cases = {
      {"Qwen-Qwen3-0.6B", "<|im_start|>assistant\n", "<|im_end|>"},
      {"Qwen3.5-4B", "<|im_start|>assistant\n", "<|im_end|>"},
      {"google-gemma-4-31B-it", "<|turn>model\n", ""},
      {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"},
      {"mistralai-Mistral-Nemo-Instruct-2407", "[/INST]", "<EOS>"},
      {"meta-llama-Llama-3.1-8B-Instruct", "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>", false},
  };
  const json args1 = {{"city", "Paris"}, {"unit", "celsius"}};
  const json args2 = {{"city", "Rome, Italy"}, {"days", 3}, {"hourly", true}, {"fields", {"temp", "wind"}}};
  for (const RoundTrip& rt : cases) {
    SCOPED_TRACE(rt.name);
    const Family family = load(rt.name).family();
    json calls = json::array();
    calls.push_back(
        {{"id", "call00001"}, {"type", "function"}, {"function", {{"name", "get_weather"}, {"arguments", args1}}}});
    if (rt.two_calls)
      calls.push_back(
          {{"id", "call00002"}, {"type", "function"}, {"function", {{"name", "get_forecast"}, {"arguments", args2}}}});
    const json assistant = {{"role", "assistant"}, {"content", ""}, {"tool_calls", calls}};
    const std::string turn = assistant_turn(rt, assistant);
    ParserOptions opt;
    opt.tools = find_case(rt.name, "tools_roundtrip").at("tools");
    const ParsedOutput r = parse_output(family, turn, opt);
    EXPECT_TRUE(r.errors.empty()) << turn << "\n" << (r.errors.empty() ? "" : r.errors[0]);
    EXPECT_EQ(r.content, "") << turn;
    ASSERT_EQ(r.tool_calls.size(), calls.size()) << turn;
    for (size_t i = 0; i < calls.size(); ++i) {
      EXPECT_EQ(r.tool_calls[i].name, calls[i]["function"]["name"]);
      EXPECT_EQ(nlohmann::json::parse(r.tool_calls[i].arguments),
                nlohmann::json::parse(calls[i]["function"]["arguments"].dump()))
          << turn;
    }
    if (family == Family::Mistral) {
      EXPECT_EQ(r.tool_calls[0].id, "call00001");  // Mistral writes the ids
    }
  }
}

TEST(ChatTemplate, ParserReadsBackReasoningAndContent) {
  // The last assistant turn keeps its reasoning in Qwen's templates.
  for (const std::string name : {"Qwen-Qwen3-0.6B", "Qwen3.5-4B"}) {
    ChatInputs in;
    in.messages =
        json::array({{{"role", "user"}, {"content", "What is 2+2?"}},
                     {{"role", "assistant"}, {"content", "It is 4."}, {"reasoning_content", "Two plus two.\nFour."}}});
    in.add_generation_prompt = false;
    const std::string text = load(name).render(in).text;
    const size_t b = text.rfind("<|im_start|>assistant\n") + 22;
    const std::string turn = text.substr(b, text.find("<|im_end|>", b) - b);
    const ParsedOutput r = parse_output(load(name).family(), turn);
    EXPECT_EQ(r.reasoning, "Two plus two.\nFour.") << name << ": " << turn;
    EXPECT_EQ(r.content, "It is 4.") << name;
  }
}

// ---- thinking budget ----

TEST(ThinkingBudget, ForcesTheEndAfterMaxTokens) {
  ThinkingBudget b(3, {101, 102});
  EXPECT_TRUE(b.next(false).empty());  // content does not count
  EXPECT_TRUE(b.next(true).empty());
  EXPECT_TRUE(b.next(true).empty());
  EXPECT_TRUE(b.next(true).empty());
  EXPECT_EQ(b.reasoning_tokens(), 3);
  EXPECT_EQ(b.next(true), (std::vector<int32_t>{101, 102}));
  EXPECT_EQ(b.forced(), 1);
  EXPECT_TRUE(b.next(false).empty());
  ThinkingBudget unlimited(-1, {});
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(unlimited.next(true).empty());
  ThinkingBudget zero(0, {7});
  EXPECT_EQ(zero.next(true), std::vector<int32_t>{7});
  EXPECT_THROW(ThinkingBudget(5, {}), Error);
}

// A scripted model that thinks "step" forever until the end marker is in its output, then answers.
TEST(ThinkingBudget, DrivesTheParserOutOfTheReasoning) {
  for (const Family family : {Family::Qwen35, Family::Gemma4, Family::Mistral}) {
    const ThinkingMarkers m = thinking_markers(family);
    const bool opened = family == Family::Qwen35;  // the template opened the reasoning
    ParserOptions opt;
    opt.starts_in_reasoning = opened;
    OutputParser parser(family, opt);
    ThinkingBudget budget(5, {-1});  // -1 stands for the tokens of m.forced_close
    std::string text;
    int sampled = 0;
    for (int step = 0; step < 40; ++step) {
      const std::vector<int32_t> forced = budget.next(parser.in_reasoning());
      std::string piece;
      if (!forced.empty()) {
        piece = m.forced_close;
      } else if (!opened && step == 0) {
        piece = m.open;  // the model opens its thinking itself
        ++sampled;
      } else {
        piece = text.find(m.close) == std::string::npos ? " step" : " answer";
        ++sampled;
      }
      text += piece;
      parser.feed(piece);
    }
    parser.finish();
    SCOPED_TRACE(family_name(family));
    EXPECT_EQ(budget.forced(), 1);
    // The model's own opening marker is not reasoning yet: 5 reasoning tokens either way.
    EXPECT_EQ(parser.result().reasoning, "step step step step step");
    EXPECT_EQ(parser.result().content.substr(0, 13), "answer answer");
    EXPECT_FALSE(parser.in_reasoning());
  }
}

}  // namespace
}  // namespace hearth::chat
