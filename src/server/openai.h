// The OpenAI-compatible API (api.md section 1): request parsing into JobSpec and the shapes of
// chat.completion, chat.completion.chunk, text_completion, model and embedding objects.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "server/api.h"

namespace hearth::server::openai {

/// POST /v1/chat/completions body → JobSpec (api.md 1.1.1-1.1.4, 1.1.6). Throws ApiError 400 for
/// missing or mistyped fields (messages not a non-empty array, n < 1, top_logprobs outside 0..20
/// or without logprobs, an unknown response_format type, a bad reasoning_effort ...).
JobSpec parse_chat(const nlohmann::json& body);
/// POST /v1/completions body → JobSpec (api.md 1.2): prompt a string, [string] of one, token ids.
JobSpec parse_completion(const nlohmann::json& body);

/// The embeddings request (api.md 1.4).
struct EmbeddingsSpec {
  std::string model;
  std::vector<std::string> texts;                ///< string inputs
  std::vector<std::vector<int32_t>> token_inputs;  ///< pre-tokenised inputs (used when texts is empty)
  bool base64 = false;
  int dimensions = 0;  ///< 0: all
};
EmbeddingsSpec parse_embeddings(const nlohmann::json& body);

/// An OpenAI error object {"error": {message, type, param, code, ...extra}}.
ojson error_body(const ApiError& e);

/// The usage object from the done steps of every choice (prompt_tokens_details.cached_tokens,
/// completion_tokens_details.reasoning_tokens).
ojson usage(const std::vector<StepOutput>& done);
/// llama-server's `timings` (api.md 3.8) of choice 0.
ojson timings(const StepOutput& done);

/// Turns the steps of a chat or text completion into SSE chunks (api.md 1.1.7): role first,
/// content / reasoning_content / tool_calls deltas (a call's index, id, type and name first, then
/// its arguments in pieces as the parser streams them — ParserOptions::stream_tool_calls — or the
/// whole call at once), logprobs per chunk, the finish chunk with an empty delta.
class StreamShaper {
 public:
  StreamShaper(std::string id, int64_t created, std::string model, int n, bool chat, std::string reasoning_field);
  /// The chunks for one step (possibly none).
  std::vector<ojson> step(const StepOutput& s);
  /// The final usage chunk ("choices": []).
  ojson usage_chunk(const ojson& usage) const;

 private:
  ojson chunk(int choice, ojson delta, const ojson& logprobs, const ojson& finish) const;
  std::string id_, model_, reasoning_field_;
  int64_t created_;
  bool chat_;
  std::vector<bool> role_sent_;
  std::vector<std::set<size_t>> streamed_calls_;  ///< per choice: calls sent as Begin + argument pieces
};

/// Collects the steps of a non-streamed request into one response.
class Collector {
 public:
  Collector(int n, bool chat, std::string reasoning_field);
  void step(const StepOutput& s);
  /// The chat.completion / text_completion object.
  ojson response(const std::string& id, int64_t created, const std::string& model) const;
  const std::vector<StepOutput>& done() const { return done_; }

 private:
  struct Choice {
    std::string content, reasoning;
    ojson tool_calls = ojson::array();
    std::vector<TokenLogprob> logprobs;
  };
  bool chat_;
  std::string reasoning_field_;
  std::vector<Choice> choices_;
  std::vector<StepOutput> done_;
  bool any_logprobs_ = false;
};

/// logprobs of a chat choice: {"content": [{token, logprob, bytes, top_logprobs}]}; -inf as a
/// large negative number.
ojson chat_logprobs(const std::vector<TokenLogprob>& lps);
/// logprobs of a text completion: {tokens, token_logprobs, top_logprobs, text_offset}.
ojson completion_logprobs(const std::vector<TokenLogprob>& lps, size_t text_offset);

/// A /v1/models item.
ojson model_object(const ModelEntry& e, bool loaded, uint32_t n_ctx);

}  // namespace hearth::server::openai
