// One HTTP request's generations: submits n GenerationRequests to a Backend and turns their
// tokens into parsed output for the handler thread (api.md 1.1.7 streaming design).
//
// The Backend's callbacks run on the engine thread and must not block: they only find stop
// strings (StopMatcher, so that a match stops the generation at once) and push the safe text
// into a queue (mutex + condition variable). The HTTP handler thread drains the queue with
// next(), which runs the chat output parser (content / reasoning / tool calls, never a partial
// marker) and hands back what can be sent.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "chat/output_parser.h"
#include "server/backend.h"
#include "tokenizer/tokenizer.h"

namespace hearth::server {

/// The log-probability of one generated token and of its most likely alternatives.
struct TokenLogprob {
  std::string token;  ///< its piece (special tokens as their text; may be an incomplete UTF-8 sequence)
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;  ///< most likely first
};

/// What one choice produced since the previous step.
struct StepOutput {
  int choice = 0;
  std::vector<chat::Event> events;     ///< parsed output, in order (Content, Reasoning, ToolCall, Error)
  std::vector<TokenLogprob> logprobs;  ///< of the tokens behind this step (with want_logprobs)
  bool done = false;                   ///< the choice ended (last step of the choice)
  Completion completion;               ///< with done
  std::string stop_string;             ///< with done: the stop string that ended it ("" if none)
  int reasoning_tokens = 0;            ///< with done: generated tokens inside the reasoning
  int tool_calls = 0;                  ///< with done: tool calls parsed in the whole choice
};

/// What to generate.
struct SessionParams {
  /// prompt, sampling, grammar, max_tokens, logprobs; on_token/on_done are set by the Session.
  GenerationRequest request;
  int n = 1;  ///< choices (each with seed + index)
  std::vector<std::string> stop;
  bool parse = true;  ///< run chat::OutputParser; false: all text is content (text completions)
  chat::Family family = chat::Family::Generic;
  chat::ParserOptions parser_options;
};

/// The generations of one request. Not thread-safe (the handler thread owns it); its callbacks
/// are safe on the engine thread and may outlive it.
class Session {
 public:
  Session(std::shared_ptr<Backend> backend, const tokenizer::Tokenizer& tokenizer, SessionParams params);
  /// Cancels the choices that have not finished.
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// Submits the n generations. On an error (QueueFullError, ContextOverflowError, ...) cancels
  /// those already submitted and rethrows it.
  void start();
  /// The next output of any choice, waiting up to `timeout`; nullopt when nothing came.
  std::optional<StepOutput> next(std::chrono::milliseconds timeout);
  /// Every choice has ended (its done step was returned).
  bool finished() const { return finished_ == params_.n; }
  /// Cancels every choice (client gone).
  void cancel();
  int n() const { return params_.n; }

 private:
  struct Shared;
  struct ChoiceState;
  std::shared_ptr<Backend> backend_;
  const tokenizer::Tokenizer& tok_;
  SessionParams params_;
  std::shared_ptr<Shared> shared_;
  std::vector<std::shared_ptr<RequestHandle>> handles_;
  std::vector<std::unique_ptr<ChoiceState>> choices_;
  int finished_ = 0;
};

}  // namespace hearth::server
