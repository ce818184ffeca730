// Grammars for tool calls: the GBNF that makes a family's tool calls (formats.h) well formed with
// arguments valid against the tools' JSON schemas, and the triggers of the lazy grammar that
// leaves the rest of the answer free.
//
// As llama.cpp does for tool calls (common/chat.cpp): with tool_choice "auto" the grammar is lazy
// (sample::Sampler::set_lazy_grammar): the model answers freely until it writes the family's
// opening marker (`<tool_call>`, `[TOOL_CALLS]`, ...; a Llama JSON call at the start of the
// answer), and from there on the call must follow the grammar; after the call(s) only the end of
// generation may come. With tool_choice "required" or a named function the grammar is not lazy:
// the answer is the call (after the reasoning section, for families that think).
//
// Each family's syntax is the one its output parser reads (tool_syntax.h), written the way its
// chat template writes calls:
// - generic, qwen3: <tool_call>\n{"name": "NAME", "arguments": ARGS}\n</tool_call>
// - qwen3.5: <tool_call>\n<function=NAME>\n<parameter=K>\nVALUE\n</parameter>\n...</function>\n</tool_call>
//   (string parameters raw, others JSON)
// - llama3: {"name": "NAME", "parameters": ARGS} at the start of the answer, or after <|python_tag|>
// - llama4: the same at the start, or <|python_start|>CALL; CALL<|python_end|>
// - gemma4: <|tool_call>call:NAME{k:<|"|>text<|"|>,n:1}<tool_call|>
// - deepseek-r1: <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```
//   <｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
// - mistral: [TOOL_CALLS][{"name": "NAME", "arguments": ARGS, "id": "9 letters/digits"}, ...]
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "chat/formats.h"
#include "sample/grammar.h"
#include "sample/sampler.h"

namespace hearth::chat {

/// How the tool-call grammar is built.
struct ToolGrammarOptions {
  /// tool_choice "required": the answer must be a tool call (a grammar that is not lazy).
  bool required = false;
  /// tool_choice {"type": "function", "function": {"name": NAME}}: only this tool, and a call is
  /// required. Empty: any of the tools.
  std::string function;
  /// parallel_tool_calls: several calls may follow one another (false: exactly one, as llama.cpp's default).
  bool parallel = false;
  /// For a required call in a family that thinks: the prompt opened the reasoning section
  /// (ParserOptions::starts_in_reasoning), so the grammar starts inside it.
  bool starts_in_reasoning = false;
  /// For a required call in a family that thinks: a reasoning section may come before the call.
  bool allow_reasoning = true;
};

/// A tool-call grammar and how it starts.
struct ToolGrammar {
  std::string gbnf;  ///< GBNF; `root` matches the call(s) from the opening marker on (required: the whole answer)
  bool lazy = true;  ///< set with Sampler::set_lazy_grammar (true) or set_grammar (false)
  std::vector<sample::GrammarTrigger> triggers;  ///< what starts a lazy grammar
};

/// Builds the tool-call grammar of `family` for `tools` (OpenAI form: [{"type": "function",
/// "function": {"name", "description", "parameters"}}], or the bare function objects). A tool
/// without parameters takes any JSON object. Markers that are single tokens of `vocab` whose piece
/// is empty (control tokens) are written as token references `<[id]>` and triggered as tokens;
/// other markers are text (triggered as words). Without `vocab` every marker is text.
/// Throws Error naming what is wrong: tools not an array or empty, a tool without a name, a
/// parameters schema json_schema_to_grammar rejects (the tool named), or options.function not
/// among the tools.
/// Limits: Qwen 3.5 string values cannot contain "</" and Gemma 4 strings neither "<|" nor "<t"
/// (what could end them early); strings of those two with a maxLength contain no '<' (minLength
/// and maxLength are enforced, in code points; other string keywords are not). Gemma 4 values
/// follow types, properties, required, enum/const, items, min/maxItems and anyOf/oneOf (numbers,
/// booleans and null with the JSON schema rules). A JSON string argument that contains the
/// family's closing marker ends the block early (as in llama.cpp). A reasoning section before a
/// required call cannot contain the first two characters of the family's closing marker. The
/// Llama start-of-answer triggers are {"name" and { "name". A trigger the model writes inside its
/// reasoning starts the grammar there too.
ToolGrammar build_tool_grammar(Family family, const nlohmann::ordered_json& tools,
                               const ToolGrammarOptions& options = {}, const sample::GrammarVocab* vocab = nullptr);

/// Parses `grammar.gbnf` over `vocab` and sets it on `sampler` (lazy or not, as built). Throws
/// Error if the grammar does not parse.
void set_tool_grammar(sample::Sampler& sampler, const ToolGrammar& grammar,
                      std::shared_ptr<const sample::GrammarVocab> vocab);

}  // namespace hearth::chat
