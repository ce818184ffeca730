// What the OpenAI (/v1) and Ollama (/api) routes have in common: the request as hearth understands
// it (JobSpec), API errors with their HTTP status, and turning a JobSpec into a prompt, a grammar
// and the SessionParams of a loaded model (api.md sections 0.5, 1.1, 2.2-2.4, 4).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "chat/prompt.h"
#include "hearth/error.h"
#include "server/models.h"
#include "server/session.h"

namespace hearth::server {

using ojson = nlohmann::ordered_json;

/// An error answered with an HTTP status (api.md 0.5): `type`/`code` for the OpenAI shape
/// (code "" → null), the message for both shapes.
class ApiError : public Error {
 public:
  ApiError(int status, std::string type, std::string code, std::string message, std::string param = "")
      : Error(message), status(status), type(std::move(type)), code(std::move(code)), param(std::move(param)) {}
  int status;
  std::string type, code, param;
  ojson extra = ojson::object();  ///< more fields of the OpenAI error object (n_prompt_tokens, n_ctx)
  int retry_after_s = 0;           ///< > 0: a Retry-After header
};

/// 400 invalid_request_error.
ApiError bad_request(const std::string& message, const std::string& param = "");
/// 400 context_length_exceeded naming both numbers ("maximum context length is N tokens").
ApiError context_overflow(uint32_t n_prompt, uint32_t n_ctx);

/// One generation request of either API, read from its JSON.
struct JobSpec {
  std::string model;     ///< as requested (echoed in responses)
  bool chat = true;      ///< messages through the chat template; false: `prompt` as plain text
  ojson messages = ojson::array();
  ojson tools;           ///< null for none
  std::string tool_choice = "auto";  ///< "auto", "none", "required" or a function name
  bool parallel_tool_calls = false;  ///< several calls in one answer (llama.cpp's default: one)
  std::string prompt;    ///< for !chat
  std::vector<int32_t> prompt_tokens;  ///< for !chat: pre-tokenised prompt (used when not empty)
  bool raw = false;      ///< Ollama generate raw: no template (also for !chat)
  std::string system;    ///< Ollama generate `system`
  chat::Thinking thinking = chat::Thinking::Default;
  bool thinking_explicit = false;
  ojson template_kwargs = ojson::object();
  sample::SamplerParams sampling;
  int32_t max_tokens = -1;
  uint32_t n_ctx = 0;  ///< Ollama options.num_ctx (0: the server's -c; larger values are capped to it)
  std::vector<std::string> stop;
  int n = 1;
  bool logprobs = false;
  int top_logprobs = 0;
  std::optional<ojson> schema;  ///< JSON Schema constraint
  bool json_object = false;     ///< any JSON object
  bool stream = false;
  bool include_usage = false;
  std::optional<int64_t> keep_alive_ms;
  bool ignore_eos = false;
};

/// Sampler options of both APIs from an object of llama.cpp/Ollama names (temperature, top_k,
/// top_p, min_p, repeat_penalty, repeat_last_n, presence_penalty, frequency_penalty, seed,
/// num_predict, stop, num_ctx, num_thread are read; unknown names are ignored). Wrong types → 400
/// `option "top_k" must be of type integer`; num_ctx below 1 → 400. num_ctx limits the request's
/// context to at most the server's -c; num_thread is checked and not applied (the slots share
/// one batch computed by the server's -t threads).
void read_options(const nlohmann::json& options, JobSpec& job);

/// The number at `key` of `obj` as an int (integers written as floats accepted), or nullopt when
/// absent or null. Throws bad_request for another type or a non-integral value.
std::optional<int64_t> get_int(const nlohmann::json& obj, const char* key);
/// The number at `key` as a double, or nullopt; bad_request for another type.
std::optional<double> get_number(const nlohmann::json& obj, const char* key);
/// The bool at `key`, or nullopt; bad_request for another type.
std::optional<bool> get_bool(const nlohmann::json& obj, const char* key);
/// The string at `key`, or nullopt; bad_request for another type.
std::optional<std::string> get_string(const nlohmann::json& obj, const char* key);

/// Normalises chat messages to what chat templates expect: roles lower-cased, "developer" →
/// "system", "function" → "tool"; content parts arrays flattened to their text; prior reasoning
/// under "reasoning" or "thinking" moved to "reasoning_content"; tool call arguments given as
/// JSON text parsed into objects (templates iterate them). Throws bad_request for a malformed
/// message (no role, an image part).
ojson normalize_messages(const nlohmann::json& messages);

/// A job made ready for one model.
struct PreparedJob {
  SessionParams params;
  std::string prompt_text;  ///< the rendered prompt (chat) or the prompt
  size_t n_prompt = 0;
};

/// Renders/tokenises the prompt, builds the grammar (after the reasoning for thinking models,
/// api.md 1.1.3) and fills the SessionParams. Throws ApiError for a prompt that does not fit in
/// n_ctx, a schema the grammar engine cannot enforce, a template error.
PreparedJob prepare_job(const JobSpec& job, const LoadedModel& model);

/// The GBNF of `json_gbnf` (whose start rule is `root`) preceded by a reasoning section
/// `open ... close` (optional unless `starts_in_reasoning`, where the output starts inside it and
/// only `... close` comes first). Reasoning text is anything without `close`.
std::string grammar_after_reasoning(const std::string& json_gbnf, const std::string& open, const std::string& close,
                                    bool starts_in_reasoning);

/// finish_reason of a finished choice: "stop", "length", "tool_calls" (with calls, when
/// `tool_calls_reason`) or "cancelled"/"error".
std::string finish_reason(const StepOutput& done, bool tool_calls_reason);

/// JSON text of `j`, invalid UTF-8 replaced (never throws for generated text).
std::string dump(const nlohmann::ordered_json& j);
std::string dump(const nlohmann::json& j);

}  // namespace hearth::server
