// The generation engine behind `hearth serve`: one model, one KV cache pool shared by
// n_parallel slots (one sequence id each), a scheduler thread that runs continuous batching
// (each step decodes one token of every generating slot plus chunks of new prompts, all in one
// Context::decode), reuse of the longest cached prompt prefix, a bounded queue, cancellation.
// It knows tokens, not HTTP or JSON (design.md: server/ = scheduler + HTTP; this is the scheduler).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hearth/error.h"
#include "model/model.h"
#include "quant/types.h"
#include "sample/grammar.h"
#include "sample/sampler.h"

namespace hearth::server {

/// Settings of an Engine (llama-server names).
struct EngineParams {
  /// Tokens one request may use, prompt plus generation. The cache pool holds n_ctx ·
  /// n_parallel cells: n_ctx is never divided among the slots.
  uint32_t n_ctx = 4096;
  uint32_t n_parallel = 1;  ///< slots (sequences decoded together), 1 .. 64
  uint32_t n_batch = 512;   ///< most tokens in one scheduler step (prompt chunks + one per generating slot)
  uint32_t n_ubatch = 512;  ///< micro-batch of Context::decode
  uint32_t max_queue = 64;  ///< requests waiting for a slot; one more is refused with QueueFullError
  int n_threads = 0;        ///< compute threads (0: all hardware threads)
  quant::GgmlType type_k = quant::GgmlType::F16;  ///< KV cache row types (ContextParams)
  quant::GgmlType type_v = quant::GgmlType::F16;
  bool flash_attn = false;
};

/// One of the most likely tokens at a step.
struct TopLogprob {
  int32_t token = -1;
  float logprob = 0;  ///< natural log of its probability under softmax(raw logits)
};

/// One generated token, as handed to GenerationRequest::on_token.
struct TokenEvent {
  int32_t token = -1;
  /// The text this token completes (tokenizer::StreamDecoder with special tokens rendered, so
  /// an incomplete UTF-8 sequence is held back until later tokens finish it); may be "".
  /// Empty for an end-of-generation token.
  std::string text;
  bool eog = false;          ///< an end-of-generation token (the generation ends with it)
  float logprob = 0;         ///< ln p(token) under softmax(raw logits); set when want_logprobs
  std::vector<TopLogprob> top;  ///< the top_logprobs most likely tokens, most likely first
};

/// Why a generation ended (OpenAI finish_reason / Ollama done_reason).
enum class FinishReason {
  Stop,       ///< an end-of-generation token, or on_token returned Next::Stop
  Length,     ///< max_tokens generated, or the request's n_ctx is full
  Cancelled,  ///< RequestHandle::cancel() or Engine::shutdown(cancel)
  Error,      ///< decoding failed (Completion::error says why)
};

/// The end of a generation, with its counts and times.
struct Completion {
  FinishReason reason = FinishReason::Stop;
  std::string error;             ///< for FinishReason::Error
  uint32_t prompt_tokens = 0;    ///< tokens of the prompt
  uint32_t cached_tokens = 0;    ///< of those, taken from the slot's cache (not evaluated again)
  uint32_t generated_tokens = 0; ///< tokens handed to on_token (an end-of-generation token included)
  int64_t queue_ns = 0;          ///< from submit() to the slot being assigned
  int64_t prompt_ns = 0;         ///< evaluating the uncached prompt tokens
  int64_t generation_ns = 0;     ///< from the first generated token to the end
};

/// What on_token asks for after a token.
enum class Next { Continue, Stop };

/// One generation.
struct GenerationRequest {
  std::vector<int32_t> prompt;  ///< non-empty; token ids of the model's vocabulary
  sample::SamplerParams sampling;
  /// Constrains the sampled tokens (JSON mode, JSON schema); nullptr for none.
  std::shared_ptr<const sample::Grammar> grammar;
  /// Non-empty: the grammar is lazy (sample::Sampler::set_lazy_grammar): sampling is free until
  /// one of these triggers appears in the output, and constrained from it on (tool calls with
  /// tool_choice "auto", chat::build_tool_grammar).
  std::vector<sample::GrammarTrigger> grammar_triggers;
  int32_t max_tokens = -1;   ///< < 0: until end of generation or the request's n_ctx is full
  /// Tokens this request may use (prompt and output; Ollama's options.num_ctx): 0 for the
  /// engine's n_ctx, else the smaller of the two (the KV pool is sized by the engine's).
  uint32_t n_ctx = 0;
  bool want_logprobs = false;
  int32_t top_logprobs = 0;  ///< 0 .. 20, with want_logprobs
  bool ignore_eos = false;   ///< end-of-generation tokens are sampled like any other
  /// Called on the engine thread for every generated token, in order; must not block (hand the
  /// event to the HTTP thread). Returning Next::Stop ends the generation with FinishReason::Stop
  /// (a stop string was found, the client asked no more).
  std::function<Next(const TokenEvent&)> on_token;
  /// Called on the engine thread exactly once, after the last on_token (also for a request
  /// cancelled while queued).
  std::function<void(const Completion&)> on_done;
};

/// The queue is full (HTTP 503 with Retry-After).
class QueueFullError : public Error {
 public:
  using Error::Error;
};

/// The context one request may use: its n_ctx where set and smaller than the engine's, else
/// the engine's n_ctx, tokens.
uint32_t request_n_ctx(const GenerationRequest& request, const EngineParams& params);

/// The prompt does not fit in n_ctx (HTTP 400). The message says both numbers.
class ContextOverflowError : public Error {
 public:
  ContextOverflowError(uint32_t n_prompt, uint32_t n_ctx);
  uint32_t n_prompt = 0, n_ctx = 0;
};

/// The engine is shutting down and takes no new requests (HTTP 503).
class ShuttingDownError : public Error {
 public:
  using Error::Error;
};

/// A submitted request. Thread-safe.
class RequestHandle {
 public:
  virtual ~RequestHandle() = default;
  /// Stops the generation within one scheduler step (or drops it from the queue) and frees its
  /// slot; on_done follows with FinishReason::Cancelled unless it already finished.
  virtual void cancel() = 0;
  /// on_done has been called (true from just before the call, so whatever on_done wakes sees it).
  virtual bool done() const = 0;
};

/// Counters for /metrics and /props.
struct EngineStats {
  uint64_t requests_total = 0;          ///< submitted and accepted
  uint64_t prompt_tokens_total = 0;     ///< prompt tokens evaluated (cached ones not counted)
  uint64_t generated_tokens_total = 0;
  uint64_t cached_tokens_total = 0;     ///< prompt tokens taken from caches
  uint32_t requests_running = 0;        ///< in slots
  uint32_t requests_queued = 0;
  uint32_t n_parallel = 0;
  uint64_t kv_cells_used = 0;           ///< cells holding tokens, all slots
  uint64_t kv_cells_total = 0;          ///< n_ctx · n_parallel
  /// Time spent in prompt evaluation / in generation: each step's decode time is split between
  /// the two in proportion to its prompt and generated tokens.
  double prompt_ns_total = 0;
  double generation_ns_total = 0;
};

/// The engine. Thread-safe: submit(), embed(), stats() and shutdown() may be called from any
/// thread; callbacks run on the engine thread.
///
/// Scheduling (one step = one Context::decode of at most min(n_batch, n_ubatch) tokens, so one
/// micro-batch): first one token of every generating slot, then prompt chunks of the slots still
/// evaluating their prompt, first come first served. A prompt is cut at fixed offsets (chunks of
/// min(n_batch, n_ubatch) - (n_parallel - 1) tokens from the first uncached token), whatever else
/// runs, so a request's arithmetic does not depend on the other requests: with greedy sampling
/// (and with a seed) a request gives the same tokens alone or among others. The scheduler thread
/// sleeps while there is nothing to do.
///
/// Slots: a request gets the free slot whose cached tokens share the longest prefix with its
/// prompt (ties: the least recently used), keeps that prefix and evaluates the rest (at least
/// the last prompt token). Where the prefix cannot be kept (recurrent layers, which cannot drop
/// the end of a sequence; windowed layers that evicted what it needs) the slot starts over.
/// The penalties' history starts with the whole prompt (sample::Sampler::accept).
///
/// Errors of one request (decoding, sampling, a callback that throws) end it with
/// FinishReason::Error and clear its sequence; the others go on. The text of a generation that
/// ends with FinishReason::Length includes the bytes the stream decoder held back; before an
/// end-of-generation token they are dropped (an unfinished UTF-8 sequence).
class Engine {
 public:
  /// Creates the context (n_ctx · n_parallel cells, n_parallel sequences) and starts the
  /// scheduler thread. Throws Error for settings out of range (n_parallel outside 1 .. 64,
  /// n_ctx 0, cache types the model cannot use).
  Engine(std::shared_ptr<const model::Model> model, const EngineParams& params);
  ~Engine();  ///< shutdown(true), then joins the thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Queues a generation. Throws ContextOverflowError when prompt.size() >= n_ctx,
  /// QueueFullError when max_queue requests wait already, ShuttingDownError after shutdown(),
  /// Error for an empty prompt, a token id out of range, sampler settings out of range or
  /// top_logprobs outside 0 .. 20.
  std::shared_ptr<RequestHandle> submit(GenerationRequest request);

  /// Embedding of `tokens`: the mean over the tokens of the final hidden state after the
  /// output norm (n_embd floats), L2-normalised. Evaluated on the engine thread between steps
  /// in a sequence of its own (id n_parallel; with n_parallel = 64, a free slot's), in one
  /// Context::decode in embeddings mode (runtime::Context::set_embeddings); the cached tokens of
  /// free slots are dropped, least recently used first, when the pool lacks cells, and no new
  /// request gets a slot while it waits for cells. Blocks the caller until done. Throws
  /// ContextOverflowError when tokens.size() > n_ctx, Error for no tokens or an id out of range
  /// (or when called from a callback), ShuttingDownError after shutdown().
  std::vector<float> embed(const std::vector<int32_t>& tokens);

  EngineStats stats() const;

  /// Takes no new requests; with `cancel` cancels queued and running ones, else lets them
  /// finish. Returns when none is left (called from a callback: returns at once).
  void shutdown(bool cancel);

  const model::Model& model() const;
  std::shared_ptr<const model::Model> model_ptr() const;
  const EngineParams& params() const;

  /// The vocabulary grammars are matched against (GrammarVocab::from_tokenizer of the model's
  /// tokenizer, built once); pass it to sample::Grammar::parse to resolve `<token>` references.
  std::shared_ptr<const sample::GrammarVocab> grammar_vocab() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hearth::server
