// A scripted Backend for the HTTP tests: it "generates" a fixed text (tokenised with the real
// tokenizer of the embedded model) on threads of its own, one per slot, like the engine's
// scheduler thread: callbacks come from another thread than the handler's. It has slots, a bounded
// queue (QueueFullError), cancellation, a delay per token, and records what it was asked.
#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/backend.h"
#include "tokenizer/tokenizer.h"

namespace hearth::server::test {

/// Settings the tests change and counters they read; shared by every FakeBackend a registry makes.
struct FakeConfig {
  std::mutex mutex;
  std::string script = "Hello world";
  std::chrono::milliseconds delay{0};
  bool fail = false;  ///< end every generation with FinishReason::Error after 2 tokens
  std::atomic<int> submitted{0}, cancelled{0}, running{0}, finished{0}, created{0};
  std::vector<GenerationRequest> seen;  // copies without callbacks

  std::string get_script() {
    std::lock_guard<std::mutex> lock(mutex);
    return script;
  }
  void set_script(std::string s) {
    std::lock_guard<std::mutex> lock(mutex);
    script = std::move(s);
  }
  GenerationRequest last() {
    std::lock_guard<std::mutex> lock(mutex);
    return seen.back();
  }
};

class FakeBackend : public Backend {
 public:
  struct Handle : RequestHandle {
    std::atomic<bool> cancelled{false}, finished{false};
    void cancel() override { cancelled = true; }
    bool done() const override { return finished; }
  };

  FakeBackend(std::shared_ptr<const model::Model> model, EngineParams params, std::shared_ptr<FakeConfig> config)
      : model_(std::move(model)), params_(params), cfg_(std::move(config)) {
    ++cfg_->created;
    for (uint32_t i = 0; i < params_.n_parallel; ++i) workers_.emplace_back([this] { work(); });
  }
  ~FakeBackend() override {
    shutdown(true);
    for (auto& t : workers_) t.join();
  }

  std::shared_ptr<RequestHandle> submit(GenerationRequest r) override {
    auto h = std::make_shared<Handle>();
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw ShuttingDownError("shutting down");
    if (r.prompt.empty()) throw Error("empty prompt");
    if (queue_.size() >= params_.max_queue) throw QueueFullError(std::to_string(queue_.size()) + "/" + std::to_string(params_.max_queue));
    {
      std::lock_guard<std::mutex> l2(cfg_->mutex);
      GenerationRequest copy = r;
      copy.on_token = nullptr;
      copy.on_done = nullptr;
      cfg_->seen.push_back(std::move(copy));
    }
    ++cfg_->submitted;
    queue_.push_back({std::move(r), h});
    cv_.notify_one();
    return h;
  }

  std::vector<float> embed(const std::vector<int32_t>& tokens) override {
    std::vector<float> v(16);
    double norm = 0;
    for (size_t k = 0; k < v.size(); ++k) {
      double s = 0;
      for (int32_t t : tokens) s += std::sin(0.37 * t * static_cast<double>(k + 1));
      v[k] = static_cast<float>(s);
      norm += s * s;
    }
    for (float& x : v) x = static_cast<float>(x / std::sqrt(norm > 0 ? norm : 1));
    return v;
  }

  EngineStats stats() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    EngineStats s;
    s.requests_total = static_cast<uint64_t>(cfg_->submitted.load());
    s.requests_running = static_cast<uint32_t>(running_.load());
    s.requests_queued = static_cast<uint32_t>(queue_.size());
    s.n_parallel = params_.n_parallel;
    s.kv_cells_total = uint64_t(params_.n_ctx) * params_.n_parallel;
    s.kv_cells_used = uint64_t(running_.load()) * 10;
    s.generated_tokens_total = generated_total_;
    s.generation_ns_total = 1e9;
    return s;
  }

  void shutdown(bool cancel) override {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    cv_.notify_all();
  }

 private:
  struct Job {
    GenerationRequest r;
    std::shared_ptr<Handle> h;
  };

  void work() {
    while (true) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      ++running_;
      ++cfg_->running;
      run(job);
      --running_;
      --cfg_->running;
      ++cfg_->finished;
      job.h->finished = true;
    }
  }

  void run(Job& job) {
    const tokenizer::Tokenizer& tok = model_->tokenizer();
    Completion c;
    c.prompt_tokens = static_cast<uint32_t>(job.r.prompt.size());
    c.cached_tokens = 1;
    c.prompt_ns = 1000000;
    const auto t0 = std::chrono::steady_clock::now();
    std::string script;
    std::chrono::milliseconds delay;
    bool fail;
    {
      std::lock_guard<std::mutex> lock(cfg_->mutex);
      script = cfg_->script;
      delay = cfg_->delay;
      fail = cfg_->fail;
    }
    std::vector<int32_t> ids = tok.encode(script, false, true);
    if (tok.eos()) ids.push_back(*tok.eos());
    tokenizer::StreamDecoder dec(tok, true);
    c.reason = FinishReason::Stop;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (job.h->cancelled || stopping_now()) {
        c.reason = FinishReason::Cancelled;
        ++cfg_->cancelled;
        break;
      }
      if (job.r.max_tokens >= 0 && c.generated_tokens >= static_cast<uint32_t>(job.r.max_tokens)) {
        c.reason = FinishReason::Length;
        break;
      }
      if (fail && i == 2) {
        c.reason = FinishReason::Error;
        c.error = "scripted failure";
        break;
      }
      if (delay.count() > 0) std::this_thread::sleep_for(delay);
      TokenEvent ev;
      ev.token = ids[i];
      ev.eog = tok.is_eog(ids[i]);
      ev.text = ev.eog ? "" : dec.push(ids[i]);
      ev.logprob = -0.25f * static_cast<float>(i + 1);
      for (int k = 0; k < job.r.top_logprobs; ++k) ev.top.push_back({(ids[i] + k) % tok.n_vocab(), ev.logprob - k});
      ++c.generated_tokens;
      ++generated_total_;
      const Next next = job.r.on_token(ev);
      if (ev.eog) break;
      if (next == Next::Stop) break;
    }
    c.generation_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    job.r.on_done(c);
  }

  bool stopping_now() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopping_;
  }

  std::shared_ptr<const model::Model> model_;
  EngineParams params_;
  std::shared_ptr<FakeConfig> cfg_;
  std::atomic<int> running_{0};
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::atomic<uint64_t> generated_total_{0};
  std::vector<std::thread> workers_;
};

}  // namespace hearth::server::test
