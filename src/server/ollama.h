// The Ollama native API (api.md section 2): /api/chat and /api/generate requests into JobSpec,
// their NDJSON chunks and final objects (durations in nanoseconds), /api/tags, /api/ps, /api/show
// objects.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/api.h"

namespace hearth::server::ollama {

/// The Ollama version /api/version reports (the feature level implemented).
extern const char* const kVersion;

/// POST /api/chat body → JobSpec (api.md 2.4). Throws ApiError 400 (`model is required`,
/// `invalid think value: ...`, a bad `format`, options of the wrong type ...). Streams by default.
JobSpec parse_chat(const nlohmann::json& body);
/// POST /api/generate body → JobSpec (api.md 2.3): non-raw prompts go through the chat template
/// as one user message (with `system`), raw ones are continued as text.
JobSpec parse_generate(const nlohmann::json& body);

/// The `think` value of a request was given as true or a level.
bool wants_thinking(const nlohmann::json& body);

/// Turns steps into chat or generate chunks and the final object.
class Shaper {
 public:
  Shaper(std::string model, bool chat) : model_(std::move(model)), chat_(chat) {}
  /// The done:false chunks for one step (content/thinking grouped, one chunk per tool call).
  std::vector<ojson> step(const StepOutput& s);
  /// The final done:true object: with `whole` (stream false) the full content, thinking, tool calls
  /// and logprobs; durations in ns (total from the request's start, load time from the lease).
  ojson final_object(const StepOutput& done, int64_t total_ns, int64_t load_ns, bool whole) const;

 private:
  ojson base(bool done) const;
  ojson payload(const std::string& content, const std::string& thinking, const ojson& calls) const;
  std::string model_;
  bool chat_;
  std::string content_, thinking_;
  ojson calls_ = ojson::array();
  ojson logprobs_ = ojson::array();
  int n_calls_ = 0;
};

/// A tool call in Ollama's form: {id, function: {index, name, arguments (an object)}}.
ojson tool_call(const chat::ToolCall& call, int index);
/// Ollama logprobs: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}].
ojson logprobs(const std::vector<TokenLogprob>& lps);

/// /api/tags item (name, model, modified_at, size, digest, details, capabilities).
ojson tag_object(const ModelEntry& e);
/// /api/ps item (name, model, size, digest, details, expires_at, size_vram, context_length).
ojson ps_object(const ModelEntry& e, uint32_t n_ctx);
/// /api/show response (license, modelfile, parameters, template, details, model_info,
/// capabilities, modified_at). Large arrays are [] unless `verbose`.
ojson show_object(const ModelEntry& e, const gguf::File& file, const std::string& chat_template, bool verbose);

}  // namespace hearth::server::ollama
