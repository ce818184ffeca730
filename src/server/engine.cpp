#include "server/engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "runtime/context.h"
#include "tokenizer/tokenizer.h"

namespace hearth::server {

namespace {

using Clock = std::chrono::steady_clock;

int64_t ns_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

/// What the engine thread waits on; shared with the handles so that a handle may outlive the engine.
struct Signal {
  std::mutex mu;
  std::condition_variable cv;
  bool wake = false;  // a handle was cancelled
};

class Request final : public RequestHandle {
 public:
  Request(GenerationRequest r, std::shared_ptr<Signal> signal)
      : req(std::move(r)), submitted(Clock::now()), signal_(std::move(signal)) {}

  void cancel() override {
    if (cancelled.exchange(true)) return;
    std::lock_guard<std::mutex> lock(signal_->mu);
    signal_->wake = true;
    signal_->cv.notify_all();
  }
  bool done() const override { return finished.load(); }

  GenerationRequest req;
  Clock::time_point submitted;
  std::atomic<bool> cancelled{false};
  std::atomic<bool> finished{false};

 private:
  std::shared_ptr<Signal> signal_;
};

/// An embed() call waiting for the engine thread.
struct EmbedJob {
  std::vector<int32_t> tokens;
  std::promise<std::vector<float>> result;
};

/// One slot: a sequence id of the context, the tokens its cache holds, and the request in it.
struct Slot {
  int32_t seq = 0;
  std::vector<int32_t> cache;  // tokens the sequence holds, at positions 0 .. cache.size()-1
  uint64_t last_used = 0;      // step counter of the last assignment (least recently used first)

  std::shared_ptr<Request> req;  // null: free
  uint64_t order = 0;            // assignment order (prompt chunks are scheduled first come first served)
  size_t next_prompt = 0;        // index of the first prompt token not yet evaluated
  size_t chunk_base = 0;         // prompt chunks start at chunk_base + k·chunk (fixed boundaries)
  int32_t pending = -1;          // sampled token to evaluate in the next step (-1: none)
  std::optional<sample::Sampler> sampler;
  std::optional<tokenizer::StreamDecoder> stream;
  Completion comp;
  Clock::time_point t_prompt0, t_gen0;
  bool prompt_started = false;

  bool generating() const { return req && pending >= 0; }
  bool in_prompt() const { return req && pending < 0; }
};

/// ln Σ exp(logits), computed stably.
double log_sum_exp(std::span<const float> logits) {
  float mx = -INFINITY;
  for (float v : logits) mx = std::max(mx, v);
  if (!std::isfinite(mx)) return mx;
  double s = 0;
  for (float v : logits) s += std::exp(static_cast<double>(v) - mx);
  return mx + std::log(s);
}

}  // namespace

uint32_t request_n_ctx(const GenerationRequest& request, const EngineParams& params) {
  return request.n_ctx == 0 ? params.n_ctx : std::min(request.n_ctx, params.n_ctx);
}

ContextOverflowError::ContextOverflowError(uint32_t n_prompt_, uint32_t n_ctx_)
    : Error("the prompt has " + std::to_string(n_prompt_) + " tokens, which does not fit in the context of " +
            std::to_string(n_ctx_) + " tokens per request"),
      n_prompt(n_prompt_),
      n_ctx(n_ctx_) {}

struct Engine::Impl {
  Impl(std::shared_ptr<const model::Model> m, const EngineParams& p);

  void run();
  void step(bool cancel_everything);
  bool has_work() const;  // with signal->mu held
  void admit(const std::shared_ptr<Request>& r);
  void run_embeds();
  bool run_embed(EmbedJob& job);
  void build_and_decode();
  void on_logits(Slot& s, std::span<const float> logits);
  void finish(Slot& s, FinishReason reason, std::string error = {});
  void finish_queued(const std::shared_ptr<Request>& r);
  void clear_sequence(Slot& s);
  void publish_cells();

  std::shared_ptr<const model::Model> model;
  EngineParams params;
  std::shared_ptr<const sample::GrammarVocab> grammar_vocab;
  std::unique_ptr<runtime::Context> ctx;
  bool can_truncate = true;  // every layer keeps K/V per token (no recurrent state): seq_rm of a tail works
  int32_t embed_seq = -1;    // sequence of embed() (-1: borrow a free slot's, n_parallel = 64)
  uint32_t step_budget = 0;  // tokens per step: min(n_batch, n_ubatch), one micro-batch
  uint32_t chunk = 0;        // prompt chunk length (fixed, so a prompt is cut the same way whatever else runs)

  // Engine thread only.
  std::vector<Slot> slots;
  uint64_t n_steps = 0;
  uint64_t n_assigned = 0;
  uint32_t gen_rotation = 0;

  // Guarded by signal->mu.
  std::shared_ptr<Signal> signal = std::make_shared<Signal>();
  std::deque<std::shared_ptr<Request>> queue;
  std::deque<std::shared_ptr<EmbedJob>> embeds;
  bool accepting = true;
  bool cancel_all = false;
  bool exit = false;
  bool embed_waiting = false;  // an embed needs cells: admit no new requests until it ran
  uint32_t n_running = 0;
  EngineStats st;
  std::condition_variable idle_cv;  // n_running == 0 && queue empty
  std::thread::id engine_thread;

  std::thread thread;
};

Engine::Impl::Impl(std::shared_ptr<const model::Model> m, const EngineParams& p) : model(std::move(m)), params(p) {
  if (!model) throw Error("engine: no model");
  if (params.n_parallel < 1 || params.n_parallel > static_cast<uint32_t>(runtime::kMaxSequences))
    throw Error("n_parallel = " + std::to_string(params.n_parallel) + " is out of range (1 .. " +
                std::to_string(runtime::kMaxSequences) + ")");
  if (params.n_ctx == 0) throw Error("n_ctx must be at least 1");
  if (params.n_batch == 0) throw Error("n_batch must be at least 1");
  if (params.n_ubatch == 0) throw Error("n_ubatch must be at least 1");
  const uint64_t cells = static_cast<uint64_t>(params.n_ctx) * params.n_parallel;
  if (cells > INT32_MAX)
    throw Error("n_ctx · n_parallel = " + std::to_string(cells) + " cells is too large");
  embed_seq = params.n_parallel < static_cast<uint32_t>(runtime::kMaxSequences)
                  ? static_cast<int32_t>(params.n_parallel)
                  : -1;
  runtime::ContextParams cp;
  cp.n_ctx = static_cast<uint32_t>(cells);
  cp.n_ubatch = params.n_ubatch;
  cp.n_threads = params.n_threads;
  cp.n_seq_max = params.n_parallel + (embed_seq >= 0 ? 1 : 0);
  cp.type_k = params.type_k;
  cp.type_v = params.type_v;
  cp.flash_attn = params.flash_attn;
  ctx = std::make_unique<runtime::Context>(model, cp);
  for (const auto& spec : ctx->kv_cache().specs()) can_truncate = can_truncate && !spec.recurrent();
  step_budget = std::min(params.n_batch, params.n_ubatch);
  chunk = step_budget > params.n_parallel - 1 ? step_budget - (params.n_parallel - 1) : 1;
  grammar_vocab = sample::GrammarVocab::from_tokenizer(model->tokenizer());
  slots.resize(params.n_parallel);
  for (uint32_t i = 0; i < params.n_parallel; ++i) slots[i].seq = static_cast<int32_t>(i);
  st.n_parallel = params.n_parallel;
  st.kv_cells_total = cells;
}

bool Engine::Impl::has_work() const {
  return exit || signal->wake || cancel_all || n_running > 0 || !embeds.empty() ||
         (!queue.empty() && n_running < params.n_parallel && !embed_waiting);
}

void Engine::Impl::run() {
  for (;;) {
    std::vector<std::shared_ptr<Request>> dropped, admitted;
    bool cancel_now = false;
    {
      std::unique_lock<std::mutex> lock(signal->mu);
      signal->cv.wait(lock, [&] { return has_work(); });
      signal->wake = false;
      cancel_now = cancel_all;
      cancel_all = false;
      if (exit && n_running == 0 && queue.empty() && embeds.empty()) return;
      for (auto it = queue.begin(); it != queue.end();) {
        if (cancel_now || (*it)->cancelled.load()) {
          dropped.push_back(*it);
          it = queue.erase(it);
        } else {
          ++it;
        }
      }
      while (!queue.empty() && n_running < params.n_parallel && !embed_waiting) {
        admitted.push_back(queue.front());
        queue.pop_front();
        ++n_running;
      }
      st.requests_queued = static_cast<uint32_t>(queue.size());
      st.requests_running = n_running;
    }
    for (const auto& r : dropped) finish_queued(r);
    for (const auto& r : admitted) admit(r);
    run_embeds();
    step(cancel_now);
    {
      std::lock_guard<std::mutex> lock(signal->mu);
      if (n_running == 0 && queue.empty()) idle_cv.notify_all();
    }
  }
}

void Engine::Impl::finish_queued(const std::shared_ptr<Request>& r) {
  Completion c;
  c.reason = FinishReason::Cancelled;
  c.prompt_tokens = static_cast<uint32_t>(r->req.prompt.size());
  c.queue_ns = ns_between(r->submitted, Clock::now());
  r->finished = true;  // before on_done: whoever on_done wakes sees done()
  try {
    if (r->req.on_done) r->req.on_done(c);
  } catch (...) {
  }
  std::lock_guard<std::mutex> lock(signal->mu);
  st.requests_queued = static_cast<uint32_t>(queue.size());
  if (n_running == 0 && queue.empty()) idle_cv.notify_all();
}

void Engine::Impl::admit(const std::shared_ptr<Request>& r) {
  const std::vector<int32_t>& prompt = r->req.prompt;
  // The free slot whose cache shares the longest prefix with the prompt; ties: least recently used.
  Slot* best = nullptr;
  size_t best_lcp = 0;
  for (Slot& s : slots) {
    if (s.req) continue;
    size_t lcp = 0;
    while (lcp < s.cache.size() && lcp < prompt.size() && s.cache[lcp] == prompt[lcp]) ++lcp;
    if (!best || lcp > best_lcp || (lcp == best_lcp && s.last_used < best->last_used)) {
      best = &s;
      best_lcp = lcp;
    }
  }
  Slot& s = *best;  // admitted only while a slot is free
  s.req = r;
  s.order = n_assigned++;
  s.last_used = s.order + 1;
  s.comp = Completion{};
  s.comp.prompt_tokens = static_cast<uint32_t>(prompt.size());
  s.comp.queue_ns = ns_between(r->submitted, Clock::now());
  s.pending = -1;
  s.prompt_started = false;
  // Keep the common prefix, but evaluate at least the last prompt token (its logits start the answer).
  size_t keep = std::min(best_lcp, prompt.size() - 1);
  runtime::KvCache& kv = ctx->kv_cache();
  if (keep < s.cache.size()) {
    if (can_truncate) {
      kv.seq_rm(s.seq, static_cast<int32_t>(keep), -1);
      s.cache.resize(keep);
    } else {
      // A recurrent state cannot drop its last tokens.
      clear_sequence(s);
      keep = 0;
    }
  }
  if (keep > 0 && kv.n_windows() > 1) {
    try {
      kv.check_window(s.seq, static_cast<int32_t>(keep));
    } catch (const Error&) {
      // A windowed layer evicted what the kept prefix needs: start over.
      clear_sequence(s);
      keep = 0;
    }
  }
  s.next_prompt = keep;
  s.chunk_base = keep;
  s.comp.cached_tokens = static_cast<uint32_t>(keep);
  try {
    s.sampler.emplace(r->req.sampling);
    if (r->req.grammar && !r->req.grammar_triggers.empty())
      s.sampler->set_lazy_grammar(r->req.grammar, grammar_vocab, r->req.grammar_triggers);
    else if (r->req.grammar)
      s.sampler->set_grammar(r->req.grammar, grammar_vocab);
    for (int32_t t : prompt) s.sampler->accept(t);
  } catch (const std::exception& e) {
    finish(s, FinishReason::Error, e.what());
    return;
  }
  s.stream.emplace(model->tokenizer(), /*special=*/true);
  std::lock_guard<std::mutex> lock(signal->mu);
  st.cached_tokens_total += keep;
}

void Engine::Impl::clear_sequence(Slot& s) {
  ctx->kv_cache().seq_rm(s.seq, 0, -1);
  s.cache.clear();
}

void Engine::Impl::run_embeds() {
  for (;;) {
    std::shared_ptr<EmbedJob> job;
    {
      std::lock_guard<std::mutex> lock(signal->mu);
      if (embeds.empty()) {
        embed_waiting = false;
        return;
      }
      job = embeds.front();
    }
    if (!run_embed(*job)) {
      std::lock_guard<std::mutex> lock(signal->mu);
      embed_waiting = true;  // retried after the next step; no admissions until then
      return;
    }
    std::lock_guard<std::mutex> lock(signal->mu);
    embeds.pop_front();
  }
}

bool Engine::Impl::run_embed(EmbedJob& job) {
  runtime::KvCache& kv = ctx->kv_cache();
  const size_t n = job.tokens.size();
  // Cells: drop the caches of free slots, least recently used first, until the tokens fit.
  int32_t seq = embed_seq;
  Slot* borrowed = nullptr;
  std::vector<Slot*> idle;
  for (Slot& s : slots)
    if (!s.req) idle.push_back(&s);
  std::sort(idle.begin(), idle.end(), [](const Slot* a, const Slot* b) { return a->last_used < b->last_used; });
  if (seq < 0) {
    if (idle.empty()) return false;
    borrowed = idle.front();
    clear_sequence(*borrowed);
    seq = borrowed->seq;
  }
  for (Slot* s : idle) {
    if (kv.n_free() >= n) break;
    clear_sequence(*s);
  }
  if (kv.n_free() < n) return false;
  try {
    runtime::Batch batch;
    for (size_t i = 0; i < n; ++i) batch.add(job.tokens[i], static_cast<int32_t>(i), seq, true);
    ctx->set_embeddings(true);
    struct Restore {
      runtime::Context& c;
      ~Restore() { c.set_embeddings(false); }
    } restore{*ctx};
    ctx->decode(batch);
    const size_t d = model->hparams().n_embd;
    std::vector<double> sum(d, 0.0);
    for (size_t i = 0; i < n; ++i) {
      const auto row = ctx->embeddings(i);
      for (size_t j = 0; j < d; ++j) sum[j] += row[j];
    }
    double norm2 = 0;
    for (size_t j = 0; j < d; ++j) {
      sum[j] /= static_cast<double>(n);
      norm2 += sum[j] * sum[j];
    }
    const double inv = norm2 > 0 ? 1.0 / std::sqrt(norm2) : 0.0;
    std::vector<float> out(d);
    for (size_t j = 0; j < d; ++j) out[j] = static_cast<float>(sum[j] * inv);
    kv.seq_rm(seq, 0, -1);
    job.result.set_value(std::move(out));
  } catch (...) {
    kv.seq_rm(seq, 0, -1);
    job.result.set_exception(std::current_exception());
  }
  if (borrowed) borrowed->cache.clear();
  publish_cells();
  return true;
}

void Engine::Impl::publish_cells() {
  const uint64_t used = ctx->kv_cache().n_used();
  std::lock_guard<std::mutex> lock(signal->mu);
  st.kv_cells_used = used;
}

void Engine::Impl::step(bool cancel_everything) {
  for (Slot& s : slots)
    if (s.req && (cancel_everything || s.req->cancelled.load())) finish(s, FinishReason::Cancelled);
  if (std::none_of(slots.begin(), slots.end(), [](const Slot& s) { return static_cast<bool>(s.req); })) return;
  build_and_decode();
  publish_cells();
}

void Engine::Impl::build_and_decode() {
  ++n_steps;
  // Part of the batch that belongs to one slot: batch indices [begin, end), logits at end-1 if wanted.
  struct Part {
    Slot* slot;
    size_t begin, end;
    bool logits;
    bool prompt;
  };
  std::vector<Part> parts;
  runtime::Batch batch;
  std::vector<Slot*> prompting;
  for (Slot& s : slots)
    if (s.in_prompt()) prompting.push_back(&s);
  std::sort(prompting.begin(), prompting.end(), [](const Slot* a, const Slot* b) { return a->order < b->order; });
  // One token of each generating slot (rotating the start when there are more than fit, and
  // leaving room for a prompt chunk).
  std::vector<Slot*> gen;
  for (Slot& s : slots)
    if (s.generating()) gen.push_back(&s);
  if (!gen.empty()) {
    std::rotate(gen.begin(), gen.begin() + gen_rotation % gen.size(), gen.end());
    ++gen_rotation;
  }
  const size_t gen_limit = prompting.empty() || step_budget <= chunk ? step_budget : step_budget - chunk;
  for (Slot* s : gen) {
    if (batch.size() >= std::max<size_t>(gen_limit, 1)) break;
    const size_t b = batch.size();
    batch.add(s->pending, static_cast<int32_t>(s->cache.size()), s->seq, true);
    parts.push_back({s, b, b + 1, true, false});
  }
  const size_t n_gen_tokens = batch.size();
  // Then prompt chunks, first come first served. A chunk is [chunk_base + k·chunk, ...) and is
  // scheduled whole: where a prompt is cut does not depend on the other requests (recurrent layers
  // evaluate a prompt chunk in a form whose rounding depends on the chunk).
  for (Slot* s : prompting) {
    const std::vector<int32_t>& prompt = s->req->req.prompt;
    const size_t from = s->next_prompt;
    const size_t to = std::min(prompt.size(), s->chunk_base + ((from - s->chunk_base) / chunk + 1) * chunk);
    if (batch.size() + (to - from) > step_budget) continue;
    if (!s->prompt_started) {
      s->prompt_started = true;
      s->t_prompt0 = Clock::now();
    }
    const size_t b = batch.size();
    for (size_t i = from; i < to; ++i)
      batch.add(prompt[i], static_cast<int32_t>(i), s->seq, i + 1 == prompt.size());
    parts.push_back({s, b, batch.size(), to == prompt.size(), true});
  }
  if (batch.size() == 0) return;

  const Clock::time_point t0 = Clock::now();
  // After a successful decode: record the evaluated tokens, then sample where logits came.
  auto commit = [&](const Part& p, size_t logits_index) {
    Slot& s = *p.slot;
    for (size_t i = p.begin; i < p.end; ++i) s.cache.push_back(batch.tokens[i]);
    if (p.prompt) {
      s.next_prompt += p.end - p.begin;
      if (p.logits) s.comp.prompt_ns = ns_between(s.t_prompt0, Clock::now());
    }
    if (p.logits) on_logits(s, ctx->logits(logits_index));
  };
  bool ok = true;
  try {
    ctx->decode(batch);
  } catch (const std::exception&) {
    ok = false;
  }
  const Clock::time_point t1 = Clock::now();
  if (ok) {
    for (const Part& p : parts) commit(p, p.end - 1);
  } else {
    // Find the request(s) at fault: evaluate each slot's part alone; the others go on.
    runtime::KvCache& kv = ctx->kv_cache();
    for (const Part& p : parts) {
      Slot& s = *p.slot;
      bool partial = false;
      for (size_t i = p.begin; i < p.end; ++i) partial = partial || kv.contains(s.seq, batch.pos[i]);
      std::string why = "another request's tokens failed in the same batch after these were stored";
      if (!partial) {
        runtime::Batch one;
        for (size_t i = p.begin; i < p.end; ++i)
          one.add(batch.tokens[i], batch.pos[i], batch.seq[i], batch.want_logits[i] != 0);
        try {
          ctx->decode(one);
          commit(p, one.size() - 1);
          continue;
        } catch (const std::exception& e) {
          why = e.what();
        }
      }
      finish(s, FinishReason::Error, "decoding failed: " + why);
    }
  }
  const double dt = static_cast<double>(ns_between(t0, t1));
  const size_t n_prompt_tokens = batch.size() - n_gen_tokens;
  std::lock_guard<std::mutex> lock(signal->mu);
  st.prompt_tokens_total += n_prompt_tokens;
  st.prompt_ns_total += dt * static_cast<double>(n_prompt_tokens) / static_cast<double>(batch.size());
  st.generation_ns_total += dt * static_cast<double>(n_gen_tokens) / static_cast<double>(batch.size());
}

void Engine::Impl::on_logits(Slot& s, std::span<const float> logits) {
  GenerationRequest& req = s.req->req;
  TokenEvent ev;
  try {
    ev.token = s.sampler->sample(logits);
  } catch (const std::exception& e) {
    finish(s, FinishReason::Error, std::string("sampling failed: ") + e.what());
    return;
  }
  if (s.comp.generated_tokens == 0) s.t_gen0 = Clock::now();
  ++s.comp.generated_tokens;
  const tokenizer::Tokenizer& tok = model->tokenizer();
  ev.eog = !req.ignore_eos && tok.is_eog(ev.token);
  std::optional<FinishReason> end;
  if (ev.eog)
    end = FinishReason::Stop;
  else if ((req.max_tokens >= 0 && s.comp.generated_tokens >= static_cast<uint32_t>(req.max_tokens)) ||
           s.cache.size() + 1 >= request_n_ctx(req, params))
    end = FinishReason::Length;  // the request has used max_tokens, or n_ctx tokens
  if (!ev.eog) {
    try {
      ev.text = s.stream->push(ev.token);
    } catch (const Error&) {
      ev.text.clear();  // a token the tokenizer does not know (model vocabulary larger than the tokenizer's)
    }
    if (end) ev.text += s.stream->flush();
  }
  if (req.want_logprobs) {
    const double lse = log_sum_exp(logits);
    ev.logprob = static_cast<float>(logits[static_cast<size_t>(ev.token)] - lse);
    const size_t k = std::min(static_cast<size_t>(req.top_logprobs), logits.size());
    if (k > 0) {
      std::vector<int32_t> ids(logits.size());
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
      std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(), [&](int32_t a, int32_t b) {
        const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
        return la > lb || (la == lb && a < b);
      });
      ev.top.resize(k);
      for (size_t i = 0; i < k; ++i)
        ev.top[i] = {ids[i], static_cast<float>(logits[static_cast<size_t>(ids[i])] - lse)};
    }
  }
  {
    std::lock_guard<std::mutex> lock(signal->mu);
    ++st.generated_tokens_total;
  }
  if (req.on_token) {
    try {
      if (req.on_token(ev) == Next::Stop && !end) end = FinishReason::Stop;
    } catch (const std::exception& e) {
      finish(s, FinishReason::Error, std::string("on_token failed: ") + e.what());
      return;
    } catch (...) {
      finish(s, FinishReason::Error, "on_token failed");
      return;
    }
  }
  if (end) {
    finish(s, *end);
  } else {
    s.pending = ev.token;
  }
}

void Engine::Impl::finish(Slot& s, FinishReason reason, std::string error) {
  std::shared_ptr<Request> r = std::move(s.req);
  s.req.reset();
  s.pending = -1;
  s.sampler.reset();
  s.stream.reset();
  if (reason == FinishReason::Error) clear_sequence(s);
  Completion c = s.comp;
  c.reason = reason;
  c.error = std::move(error);
  if (c.generated_tokens > 0) c.generation_ns = ns_between(s.t_gen0, Clock::now());
  {
    std::lock_guard<std::mutex> lock(signal->mu);
    --n_running;
    st.requests_running = n_running;
  }
  r->finished = true;  // before on_done: whoever on_done wakes sees done()
  try {
    if (r->req.on_done) r->req.on_done(c);
  } catch (...) {
  }
}

// ---- Engine ----

Engine::Engine(std::shared_ptr<const model::Model> model, const EngineParams& params)
    : impl_(std::make_unique<Impl>(std::move(model), params)) {
  impl_->thread = std::thread([this] {
    {
      std::lock_guard<std::mutex> lock(impl_->signal->mu);
      impl_->engine_thread = std::this_thread::get_id();
    }
    impl_->run();
  });
}

Engine::~Engine() {
  shutdown(true);
  {
    std::lock_guard<std::mutex> lock(impl_->signal->mu);
    impl_->exit = true;
    impl_->signal->cv.notify_all();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::shared_ptr<RequestHandle> Engine::submit(GenerationRequest request) {
  const uint32_t n_vocab = impl_->model->hparams().n_vocab;
  if (request.prompt.empty()) throw Error("the prompt has no tokens");
  for (size_t i = 0; i < request.prompt.size(); ++i)
    if (request.prompt[i] < 0 || static_cast<uint32_t>(request.prompt[i]) >= n_vocab)
      throw Error("prompt token " + std::to_string(i) + " has id " + std::to_string(request.prompt[i]) +
                  ", outside the vocabulary (0 .. " + std::to_string(n_vocab - 1) + ")");
  request.sampling.validate();
  if (request.top_logprobs < 0 || request.top_logprobs > 20)
    throw Error("top_logprobs = " + std::to_string(request.top_logprobs) + " is out of range (0 .. 20)");
  const uint32_t n_ctx = request_n_ctx(request, impl_->params);
  if (request.prompt.size() >= n_ctx) throw ContextOverflowError(static_cast<uint32_t>(request.prompt.size()), n_ctx);
  auto r = std::make_shared<Request>(std::move(request), impl_->signal);
  std::lock_guard<std::mutex> lock(impl_->signal->mu);
  if (!impl_->accepting) throw ShuttingDownError("the server is shutting down");
  if (impl_->queue.size() >= impl_->params.max_queue)
    throw QueueFullError("the queue is full (" + std::to_string(impl_->params.max_queue) +
                         " requests wait for a slot); retry later");
  impl_->queue.push_back(r);
  ++impl_->st.requests_total;
  impl_->st.requests_queued = static_cast<uint32_t>(impl_->queue.size());
  impl_->signal->cv.notify_all();
  return r;
}

std::vector<float> Engine::embed(const std::vector<int32_t>& tokens) {
  const uint32_t n_vocab = impl_->model->hparams().n_vocab;
  if (tokens.empty()) throw Error("nothing to embed: no tokens");
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || static_cast<uint32_t>(tokens[i]) >= n_vocab)
      throw Error("token " + std::to_string(i) + " has id " + std::to_string(tokens[i]) +
                  ", outside the vocabulary (0 .. " + std::to_string(n_vocab - 1) + ")");
  if (tokens.size() > impl_->params.n_ctx)
    throw ContextOverflowError(static_cast<uint32_t>(tokens.size()), impl_->params.n_ctx);
  auto job = std::make_shared<EmbedJob>();
  job->tokens = tokens;
  std::future<std::vector<float>> result = job->result.get_future();
  {
    std::lock_guard<std::mutex> lock(impl_->signal->mu);
    if (!impl_->accepting) throw ShuttingDownError("the server is shutting down");
    if (std::this_thread::get_id() == impl_->engine_thread)
      throw Error("embed() called from an engine callback (it would wait for itself)");
    impl_->embeds.push_back(job);
    impl_->signal->cv.notify_all();
  }
  return result.get();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(impl_->signal->mu);
  return impl_->st;
}

void Engine::shutdown(bool cancel) {
  std::unique_lock<std::mutex> lock(impl_->signal->mu);
  impl_->accepting = false;
  if (cancel) impl_->cancel_all = true;
  impl_->signal->cv.notify_all();
  if (std::this_thread::get_id() == impl_->engine_thread) return;  // from a callback: cannot wait for itself
  impl_->idle_cv.wait(lock, [&] { return impl_->n_running == 0 && impl_->queue.empty(); });
}

const model::Model& Engine::model() const { return *impl_->model; }
std::shared_ptr<const model::Model> Engine::model_ptr() const { return impl_->model; }
const EngineParams& Engine::params() const { return impl_->params; }
std::shared_ptr<const sample::GrammarVocab> Engine::grammar_vocab() const { return impl_->grammar_vocab; }

}  // namespace hearth::server
