// Output formats per model family: how a model writes its thinking and its tool calls, and how
// its chat template switches thinking on and off.
//
// Source: the chat templates themselves (../shared/testdata/chat-templates: what each template
// writes for an assistant turn with reasoning and tool calls is what the model was trained to
// generate), and the family rules of llama.cpp's common/chat.cpp (template markers that identify a
// family; Llama 3.x tool calls as a JSON object at the start of the answer or after <|python_tag|>;
// DeepSeek R1's tool-call tokens).
//
// - generic, qwen3: thinking <think>...</think>; tool calls
//   <tool_call>{"name": ..., "arguments": {...}}</tool_call>
// - qwen3.5: thinking <think>...</think> (its template opens it in the prompt); tool calls
//   <tool_call><function=NAME><parameter=K>\nV\n</parameter>...</function></tool_call>
// - llama3: no thinking; tool calls {"name": ..., "parameters": {...}} at the start of the answer,
//   or after <|python_tag|> (JSON, a builtin NAME.call(k=v), or Python code)
// - llama4: no thinking; tool calls <|python_start|>...<|python_end|> holding JSON or a pythonic
//   list [f(k=v), ...], or either at the start of the answer
// - gemma4: thinking <|channel>thought ...<channel|>; tool calls
//   <|tool_call>call:NAME{k:<|"|>v<|"|>,n:1,...}<tool_call|>
// - deepseek-r1: thinking <think>...</think>; tool calls <｜tool▁calls▁begin｜> then per call
//   <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```<｜tool▁call▁end｜>, then
//   <｜tool▁calls▁end｜>
// - mistral: thinking [THINK]...[/THINK]; tool calls [TOOL_CALLS][{"name": ..., "arguments": {...},
//   "id": ...}] or [TOOL_CALLS]NAME[ARGS]{...}
//
// Both Qwen families accept both tool-call bodies (JSON or <function=...>), as Qwen models mix them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::chat {

/// A family of output syntax (see the table above).
enum class Family { Generic, Qwen3, Qwen35, Llama3, Llama4, Gemma4, DeepSeekR1, Mistral };

/// "generic", "qwen3", "qwen3.5", "llama3", "llama4", "gemma4", "deepseek-r1", "mistral".
const char* family_name(Family family);

/// The family called `name` (as family_name() writes it); nullopt for an unknown name.
std::optional<Family> family_from_name(std::string_view name);

/// All families, in enum order.
const std::vector<Family>& all_families();

/// The family whose markers the chat template `source` writes (llama.cpp's detection order:
/// DeepSeek's tool-call tokens, Gemma 4's <|turn>/<|tool_call>, <tool_call> with <function= for
/// Qwen 3.5, <tool_call> for Qwen 3, <|header_start|> for Llama 4, <|start_header_id|> for
/// Llama 3, [TOOL_CALLS]/[INST] for Mistral). Generic when none matches.
Family detect_family(std::string_view source);

/// How a chat template turns thinking on and off.
enum class ThinkingSwitch {
  None,              ///< it cannot: the model thinks or not on its own
  TemplateVariable,  ///< the template reads `enable_thinking` (Qwen 3, Qwen 3.5, Gemma 4, ...)
  SoftSwitch,        ///< "/think" or "/no_think" at the end of the last user message (Qwen 3 soft switch)
};

/// The switch of template `source` for `family`: TemplateVariable where the source mentions
/// enable_thinking; SoftSwitch for a Qwen 3 template that writes <think> without that variable;
/// None otherwise.
ThinkingSwitch detect_thinking_switch(Family family, std::string_view source);

/// The reasoning markers of a family; all empty for a family without thinking.
struct ThinkingMarkers {
  std::string open;          ///< starts the reasoning ("<think>")
  std::string close;         ///< ends it ("</think>")
  std::string forced_close;  ///< what a thinking budget forces to end it ("\n</think>\n\n")
};

/// See ThinkingMarkers.
ThinkingMarkers thinking_markers(Family family);

}  // namespace hearth::chat
