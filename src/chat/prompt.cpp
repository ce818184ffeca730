// Chat templates of models and the rendering of prompts (prompt.h).
#include "chat/prompt.h"

#include <utility>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace hearth::chat {

const char* const kChatMlTemplate =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] if message['content'] is string else '') + "
    "'<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

const char* soft_switch_suffix(Thinking thinking) {
  switch (thinking) {
    case Thinking::On: return " /think";
    case Thinking::Off: return " /no_think";
    case Thinking::Default: return "";
  }
  return "";
}

ParserOptions RenderedPrompt::parser_options() const {
  ParserOptions o;
  o.starts_in_reasoning = starts_in_reasoning;
  o.parse_tool_calls = parse_tool_calls;
  o.tools = tools;
  return o;
}

ChatTemplate::ChatTemplate(std::string source, std::string name, std::string bos_token, std::string eos_token,
                           std::optional<Family> family)
    : source_(std::move(source)),
      template_(Template::parse(source_, name)),
      bos_(std::move(bos_token)),
      eos_(std::move(eos_token)),
      family_(family ? *family : detect_family(source_)),
      switch_(detect_thinking_switch(family_, source_)) {}

ChatTemplate ChatTemplate::from_gguf(const gguf::File& file, const tokenizer::Tokenizer& tokenizer,
                                     std::optional<Family> family) {
  const gguf::Value* t = file.find("tokenizer.chat_template");
  if (t == nullptr || t->type() != gguf::ValueType::STRING)
    throw NoChatTemplateError("the model has no chat template (no tokenizer.chat_template string in its GGUF)");
  // The defaults come from the vocabulary, as llama.cpp fills them in.
  std::string bos = tokenizer.bos() ? tokenizer.token_text(*tokenizer.bos()) : "";
  std::string eos = tokenizer.eos() ? tokenizer.token_text(*tokenizer.eos()) : "";
  return ChatTemplate(t->str(), "tokenizer.chat_template", std::move(bos), std::move(eos), family);
}

ChatTemplate ChatTemplate::chatml(std::string bos_token, std::string eos_token) {
  return ChatTemplate(kChatMlTemplate, "built-in ChatML template", std::move(bos_token), std::move(eos_token),
                      Family::Generic);
}

RenderedPrompt ChatTemplate::render(const ChatInputs& in) const {
  if (!in.messages.is_array()) throw Error("the chat messages must be a JSON array");
  if (!in.tools.is_null() && !in.tools.is_array()) throw Error("the chat tools must be a JSON array");
  if (!in.extra.is_object()) throw Error("the extra template variables must be a JSON object");
  nlohmann::ordered_json messages = in.messages;
  if (switch_ == ThinkingSwitch::SoftSwitch && in.thinking != Thinking::Default) {
    for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
      if (!it->is_object() || it->value("role", "") != "user") continue;
      auto content = it->find("content");
      if (content != it->end() && content->is_string()) {
        const std::string text = content->get<std::string>();
        const bool has_switch = text.ends_with("/think") || text.ends_with("/no_think");
        if (!has_switch) *content = text + soft_switch_suffix(in.thinking);
      }
      break;
    }
  }
  nlohmann::ordered_json ctx = {{"messages", std::move(messages)}};
  const bool has_tools = in.tools.is_array() && !in.tools.empty();
  if (has_tools) ctx["tools"] = in.tools;
  ctx["add_generation_prompt"] = in.add_generation_prompt;
  ctx["bos_token"] = bos_;
  ctx["eos_token"] = eos_;
  nlohmann::ordered_json extra = in.extra;
  if (switch_ == ThinkingSwitch::TemplateVariable && in.thinking != Thinking::Default &&
      !extra.contains("enable_thinking"))
    extra["enable_thinking"] = in.thinking == Thinking::On;
  ctx["extra"] = std::move(extra);

  RenderOptions options;
  options.now = in.now;
  RenderedPrompt out;
  out.text = template_.render(chat_context(ctx), options);
  out.family = family_;
  out.parse_tool_calls = has_tools;
  if (has_tools) out.tools = in.tools;
  const std::string& open = thinking_markers(family_).open;
  if (in.add_generation_prompt && !open.empty()) {
    size_t end = out.text.size();
    while (end > 0 && (out.text[end - 1] == ' ' || out.text[end - 1] == '\n' || out.text[end - 1] == '\t' ||
                       out.text[end - 1] == '\r'))
      --end;
    out.starts_in_reasoning = std::string_view(out.text).substr(0, end).ends_with(open);
  }
  return out;
}

}  // namespace hearth::chat
