// Readers of the tool-call blocks of each family (internal to chat/output_parser.cpp; exposed
// for its tests). A reader gets the text of one block as far as it has arrived and says whether
// it needs more text, read calls, or found the block malformed.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::chat::detail {

/// A tool call as written, before an id is given to it.
struct RawCall {
  std::string name;
  std::string arguments;  ///< compact JSON object text
  std::string id;         ///< the id the model wrote (Mistral), else empty
};

/// The kinds of tool-call block. The text a reader gets starts after the opening marker, except
/// where noted.
enum class BlockKind {
  Hermes,           ///< after <tool_call>: a JSON object or <function=...>, then </tool_call>
  XmlFunction,      ///< from <function=NAME> (marker included) to </function>
  Llama3Json,       ///< from '{' of {"name": ..., "parameters": ...} at the start of the answer
  Llama3PythonTag,  ///< after <|python_tag|>: JSON, NAME.call(k=v, ...) or Python code, to the end
  Llama4Tag,        ///< after <|python_start|>: JSON object(s) or a pythonic list, then <|python_end|>
  Pythonic,         ///< from '[' of [f(k=v), g()] at the start of the answer
  Gemma4,           ///< after <|tool_call>: call:NAME{k:v,...}, then <tool_call|>
  DeepSeekCalls,    ///< after <｜tool▁calls▁begin｜>: calls, then <｜tool▁calls▁end｜>
  DeepSeekCall,     ///< from <｜tool▁call▁begin｜> (marker included) to <｜tool▁call▁end｜>
  Mistral,          ///< after [TOOL_CALLS]: a JSON array of calls, or NAME[ARGS]{...}
};

/// What a reader decided.
struct BlockResult {
  enum class Status { NeedMore, Done, Invalid };
  Status status = Status::NeedMore;
  size_t consumed = 0;         ///< bytes of the text the block took (Done, Invalid; >= 1 for Invalid)
  std::vector<RawCall> calls;  ///< Done: at least one
  std::string error;           ///< Invalid: what is wrong
};

/// Reads one block of `kind` from `text`. With `at_end` the text is complete (the answer ended):
/// the result is never NeedMore. `tools` (OpenAI form or null) gives parameter types for
/// <parameter=K> values.
BlockResult read_block(BlockKind kind, std::string_view text, bool at_end, const nlohmann::ordered_json& tools);

/// A tool call of a block that has not been read yet, as far as the text so far makes it certain
/// (for streaming the arguments while they are generated).
struct PartialCall {
  std::string name;       ///< the function's name (complete)
  std::string id;         ///< an id the model wrote before the arguments (Mistral [CALL_ID]), else empty
  std::string arguments;  ///< a prefix of the call's final compact arguments text (RawCall::arguments)
};

/// The calls of the unfinished block `text` of `kind` whose names are known, in order, with the
/// part of their compact arguments that the text so far decides: JSON arguments grow value by
/// value as they arrive (strings character by character, numbers and literals once complete);
/// Qwen 3.5 <parameter=K> values once each parameter is closed; other syntaxes (Gemma 4,
/// pythonic lists, Llama 4 blocks, Mistral JSON lists) report no arguments before the block ends.
/// When the block is then read, each call's arguments start with what was reported here, except
/// for a JSON object that repeats a key (the last value wins in the final text).
std::vector<PartialCall> read_partial_block(BlockKind kind, std::string_view text, const nlohmann::ordered_json& tools);

/// The compact JSON text (as nlohmann's dump(-1) writes it) of the start of the JSON value at
/// text[pos], as far as the text decides it; *complete tells whether the value ended. Stops
/// before anything that is not JSON.
std::string compact_json_prefix(std::string_view text, size_t pos, bool* complete);

/// Three-way answer of a prefix test on text that may still grow.
enum class Match { No, Maybe, Yes };

/// Whether `text` starts like a Llama JSON tool call, /\s*\{\s*("type"\s*:\s*"function"\s*,\s*)?"name"\s*:/
/// (llama.cpp's Llama 3.x trigger), after any `skip` characters (e.g. ";" between calls) mixed
/// with the leading whitespace. Yes sets *start to the offset of '{'.
Match match_json_call_start(std::string_view text, std::string_view skip, size_t* start);

/// Whether `text` starts like a pythonic call list /\s*\[\s*NAME\s*\(/ (Llama 4). Yes sets *start
/// to the offset of '['.
Match match_pythonic_start(std::string_view text, size_t* start);

/// One past the bracket that closes the JSON object or array at text[pos] ('{' or '['), or npos
/// if the text ends first. A closing bracket of the wrong kind sets *mismatch to its offset + 1
/// and returns npos.
size_t json_extent(std::string_view text, size_t pos, size_t* mismatch);

/// A Python literal (str, int, float, True/False/None, list, tuple, dict) as JSON. Throws
/// hearth::Error naming what is wrong.
nlohmann::ordered_json parse_python_literal(std::string_view text);

/// The value of Gemma 4's call syntax ({k:v,...}, [..], <|"|>string<|"|>, numbers, true, false,
/// null) as JSON. Throws hearth::Error naming what is wrong.
nlohmann::ordered_json parse_gemma4_value(std::string_view text);

}  // namespace hearth::chat::detail
