// Incremental parser of generated text into content, reasoning and tool calls (formats.h gives
// each family's syntax).
//
// Text comes in arbitrary pieces (a token's piece, a byte, the whole answer); the events that
// come out are the same whatever the pieces, once adjacent deltas of one kind are joined:
// a piece that may be the start of a marker (`<thi`, `<tool_` ...) is held back until the
// following text decides it, and a tool call is reported once it is complete. Each section of
// content and each reasoning section is trimmed: leading whitespace is dropped and trailing
// whitespace is held until more text of that section follows. Where the prompt opened the
// reasoning (ParserOptions::starts_in_reasoning), an opening marker the model writes again at
// its start is dropped.
//
// A tool call that cannot be read (bad JSON, a missing closing tag at the end) is reported as an
// Error event and its text, markers included, goes to the content (never lost, never aborting).
//
//     OutputParser p(Family::Qwen3, {});
//     for (const std::string& piece : pieces) for (const Event& e : p.feed(piece)) show(e);
//     for (const Event& e : p.finish()) show(e);
//     const ParsedOutput& all = p.result();
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "chat/formats.h"

namespace hearth::chat {

/// One tool call: the function's name, its arguments as a JSON text (an object, compact, in the
/// order the model wrote the keys) and an id ("call_" + 24 letters and digits; 9 letters and
/// digits for Mistral, whose templates require that; or the id the model wrote).
struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;
};

/// What the parser found.
enum class EventKind {
  Content,    ///< text of the answer (`text`)
  Reasoning,  ///< text of the thinking (`text`)
  ToolCall,   ///< a complete tool call (`call`)
  Error,      ///< a tool call that could not be read (`text`: what is wrong); its text went to content
  /// With ParserOptions::stream_tool_calls only: a tool call starts (`call.id`, `call.name`;
  /// `index`: its place in ParsedOutput::tool_calls). Its ToolCallArgs follow, then its ToolCall.
  ToolCallBegin,
  /// With ParserOptions::stream_tool_calls only: the next piece of the arguments of call `index`
  /// (`text`; `call.id` names the call). The pieces of a call joined are its final arguments text.
  ToolCallArgs,
};

/// One step of the parse.
struct Event {
  EventKind kind = EventKind::Content;
  std::string text;
  ToolCall call;
  size_t index = 0;  ///< ToolCallBegin, ToolCallArgs, ToolCall: the call's place in ParsedOutput::tool_calls
};

/// Everything parsed so far.
struct ParsedOutput {
  std::string content;
  std::string reasoning;
  std::vector<ToolCall> tool_calls;
  std::vector<std::string> errors;

  /// The assistant message in OpenAI form: role, content (null when empty and there are tool
  /// calls), reasoning_content when there is reasoning, tool_calls ([{id, type: "function",
  /// function: {name, arguments}}]) when there are calls.
  nlohmann::ordered_json to_message() const;
};

/// How to parse.
struct ParserOptions {
  /// The prompt ended inside the reasoning section (its template wrote the opening marker, as
  /// Qwen 3.5 and DeepSeek R1 templates do): the output starts as reasoning.
  bool starts_in_reasoning = false;
  /// Recognise tool calls (false: their markers are plain content, as when no tools were given).
  bool parse_tool_calls = true;
  /// The tools offered (OpenAI form: [{type, function: {name, parameters}}]) or null. Used for the
  /// parameter types of Qwen 3.5's <parameter=K> values: a parameter declared "string" stays a
  /// string; any other value that is valid JSON (number, true, object ...) becomes that JSON, and
  /// Python's True/False/None (what the template writes for them) become true/false/null.
  nlohmann::ordered_json tools;
  /// Seed of the generated tool-call ids (0: from std::random_device).
  uint64_t id_seed = 0;
  /// Report tool calls while they are generated, as the OpenAI streaming API sends them: a
  /// ToolCallBegin once the call's name is known, ToolCallArgs pieces of its arguments as they
  /// become certain, then the complete ToolCall as without this option. JSON arguments grow value
  /// by value (strings character by character); Qwen 3.5 <parameter=K> values one parameter at a
  /// time; Gemma 4, pythonic and Llama 4 calls and Mistral's JSON list in one piece at their end.
  /// A call whose block then turns out malformed ends with the Error event, without its ToolCall
  /// (its index is reused by the next call). The pieces of a call joined equal its final
  /// arguments, except for a JSON object that repeats a key (the last value wins in the final
  /// text; only the ToolCall has it). Once a call has begun it keeps the id given in its
  /// ToolCallBegin, even if the model writes an id after the arguments.
  bool stream_tool_calls = false;
};

/// The incremental parser. Not thread-safe; one per generated answer.
class OutputParser {
 public:
  OutputParser(Family family, ParserOptions options = {});
  ~OutputParser();
  OutputParser(OutputParser&&) noexcept;
  OutputParser& operator=(OutputParser&&) noexcept;

  /// Adds the next piece of generated text (bytes; a UTF-8 sequence may be split between pieces)
  /// and returns what became certain. Throws hearth::Error if called after finish().
  std::vector<Event> feed(std::string_view text);

  /// Ends the text: what was held back is decided (a partial marker is content, an unfinished
  /// reasoning section is reasoning, an unfinished tool call is read if it can be, else reported
  /// as an Error with its text as content). Later calls return nothing.
  std::vector<Event> finish();

  /// Whether the text so far ends inside a reasoning section (what a thinking budget counts).
  bool in_reasoning() const;

  /// Everything parsed so far.
  const ParsedOutput& result() const;

  Family family() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Parses a whole text at once (feed + finish).
ParsedOutput parse_output(Family family, std::string_view text, const ParserOptions& options = {});

}  // namespace hearth::chat
