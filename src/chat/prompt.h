// Prompts for a model: its chat template (tokenizer.chat_template in the GGUF), the context the
// template is rendered with (messages, tools, add_generation_prompt, bos_token/eos_token from the
// vocabulary, thinking on or off, extra variables), and what the parser of the answer needs to
// know (the output family, whether the prompt ended inside the reasoning).
//
//     const ChatTemplate t = ChatTemplate::from_gguf(model.file(), model.tokenizer());
//     ChatInputs in;
//     in.messages = {{{"role", "user"}, {"content", "Hi"}}};
//     in.thinking = Thinking::Off;
//     const RenderedPrompt p = t.render(in);
//     OutputParser parser(p.family, p.parser_options());
#pragma once

#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "chat/formats.h"
#include "chat/output_parser.h"
#include "chat/template.h"
#include "hearth/error.h"

namespace hearth::gguf {
class File;
}
namespace hearth::tokenizer {
class Tokenizer;
}

namespace hearth::chat {

/// Thinking on or off; Default leaves the template's own default.
enum class Thinking { Default, On, Off };

/// What to render.
struct ChatInputs {
  /// OpenAI-style messages: [{"role", "content", "tool_calls"?, "reasoning_content"?, ...}].
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  /// OpenAI-style tools ([{"type": "function", "function": {...}}]) or null for none.
  nlohmann::ordered_json tools;
  bool add_generation_prompt = true;
  /// Through the template's switch (ThinkingSwitch): enable_thinking = true/false, or "/think" /
  /// "/no_think" appended to the last user message; nothing for a template without a switch.
  Thinking thinking = Thinking::Default;
  /// More template variables (chat_template_kwargs); an enable_thinking here wins over `thinking`.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  /// The date strftime_now() formats (unset: now).
  std::optional<std::tm> now;
};

/// A rendered prompt and how to read the answer to it.
struct RenderedPrompt {
  std::string text;
  Family family = Family::Generic;
  /// The prompt ends with the family's opening reasoning marker (after trailing whitespace): the
  /// template opened the reasoning (Qwen 3.5, DeepSeek R1 with thinking on).
  bool starts_in_reasoning = false;
  /// Tool calls are expected (tools were given).
  bool parse_tool_calls = false;
  nlohmann::ordered_json tools;

  /// Options for an OutputParser of the answer.
  ParserOptions parser_options() const;
};

/// The GGUF has no tokenizer.chat_template.
class NoChatTemplateError : public Error {
 public:
  using Error::Error;
};

/// The ChatML template hearth falls back to (<|im_start|>ROLE\nCONTENT<|im_end|>\n per message).
extern const char* const kChatMlTemplate;

/// A parsed chat template with the family of its output and the vocabulary's BOS/EOS text.
class ChatTemplate {
 public:
  /// Parses `source`. `family` overrides detect_family(source). Throws TemplateError for a
  /// template that does not parse.
  ChatTemplate(std::string source, std::string name, std::string bos_token, std::string eos_token,
               std::optional<Family> family = std::nullopt);

  /// The template of a GGUF (tokenizer.chat_template), bos_token/eos_token the texts of the
  /// vocabulary's BOS/EOS tokens ("" when it has none). Throws NoChatTemplateError naming the key
  /// when the file has no template, TemplateError when it does not parse.
  static ChatTemplate from_gguf(const gguf::File& file, const tokenizer::Tokenizer& tokenizer,
                                std::optional<Family> family = std::nullopt);

  /// kChatMlTemplate with these BOS/EOS texts (family Generic: <think> tags are still read).
  static ChatTemplate chatml(std::string bos_token = "", std::string eos_token = "");

  /// Renders the prompt. Throws TemplateError (the template's own raise_exception, ...) and
  /// hearth::Error for messages or tools that are not JSON arrays.
  RenderedPrompt render(const ChatInputs& inputs) const;

  const std::string& source() const { return source_; }
  const std::string& name() const { return template_.name(); }
  Family family() const { return family_; }
  ThinkingSwitch thinking_switch() const { return switch_; }
  const std::string& bos_token() const { return bos_; }
  const std::string& eos_token() const { return eos_; }

 private:
  std::string source_;
  Template template_;
  std::string bos_, eos_;
  Family family_;
  ThinkingSwitch switch_;
};

/// " /think" or " /no_think" (Qwen 3's soft switch, appended to a user message); "" for Default.
const char* soft_switch_suffix(Thinking thinking);

}  // namespace hearth::chat
