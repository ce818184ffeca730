// server::Engine: continuous batching gives every request the tokens it gets alone, prefix reuse,
// the queue, cancellation, stop conditions, logprobs, stats and errors.
#include "server/engine.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "runtime/context.h"
#include "sample/sampler.h"

namespace hearth::server {
namespace {

using namespace std::chrono_literals;

const std::string kModels = std::string(HEARTH_TESTDATA_DIR) + "/models/";

std::shared_ptr<const model::Model> default_model() {
  static const auto m = model::Model::load_default();
  return m;
}

std::shared_ptr<const model::Model> test_model(const std::string& file) {
  static std::map<std::string, std::shared_ptr<const model::Model>> cache;
  auto& m = cache[file];
  if (!m) m = model::Model::load(kModels + file);
  return m;
}

EngineParams engine_params(uint32_t n_parallel, uint32_t n_ctx = 256) {
  EngineParams p;
  p.n_parallel = n_parallel;
  p.n_ctx = n_ctx;
  p.n_threads = 2;
  return p;
}

sample::SamplerParams greedy() {
  sample::SamplerParams p;
  p.temp = 0;
  return p;
}

/// Random prompt of `n` token ids in [3, n_vocab) (ids 0-2 are unk/bos/eos in the test models).
std::vector<int32_t> random_prompt(const model::Model& m, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(3, static_cast<int32_t>(std::min<uint32_t>(m.hparams().n_vocab, 4096)) - 1);
  std::vector<int32_t> p(n);
  for (auto& t : p) t = dist(rng);
  return p;
}

/// Collects what a request reports; wait() blocks until on_done.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<TokenEvent> events;
  std::optional<Completion> done;
  int n_done = 0;

  std::vector<int32_t> tokens() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<int32_t> t;
    for (const auto& e : events) t.push_back(e.token);
    return t;
  }
  Completion wait() {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, 120s, [&] { return done.has_value(); })) << "request did not finish";
    return done.value_or(Completion{});
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu);
    return events.size();
  }
};

GenerationRequest request(const std::vector<int32_t>& prompt, int32_t max_tokens, Collector& c) {
  GenerationRequest r;
  r.prompt = prompt;
  r.sampling = greedy();
  r.max_tokens = max_tokens;
  r.on_token = [&c](const TokenEvent& e) {
    std::lock_guard<std::mutex> lock(c.mu);
    c.events.push_back(e);
    return Next::Continue;
  };
  r.on_done = [&c](const Completion& done) {
    std::lock_guard<std::mutex> lock(c.mu);
    c.done = done;
    ++c.n_done;
    c.cv.notify_all();
  };
  return r;
}

/// Greedy generation with a plain runtime::Context (one sequence, the prompt in one decode):
/// the reference each engine request must reproduce. Stops after `n` tokens or at an EOG token.
std::vector<int32_t> reference_greedy(const std::shared_ptr<const model::Model>& m, const std::vector<int32_t>& prompt,
                                      int n, bool stop_at_eog) {
  runtime::ContextParams cp;
  cp.n_ctx = static_cast<uint32_t>(prompt.size() + n + 1);
  cp.n_threads = 2;
  runtime::Context ctx(m, cp);
  runtime::Batch b;
  for (size_t i = 0; i < prompt.size(); ++i) b.add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
  ctx.decode(b);
  std::vector<int32_t> out;
  int32_t pos = static_cast<int32_t>(prompt.size());
  for (int i = 0; i < n; ++i) {
    const int32_t t = sample::argmax(ctx.logits(b.size() - 1));
    out.push_back(t);
    if (stop_at_eog && m->tokenizer().is_eog(t)) break;
    b.clear();
    b.add(t, pos++, 0, true);
    ctx.decode(b);
  }
  return out;
}

// ---- Determinism: batched == alone ----

class EngineModels : public testing::TestWithParam<std::string> {
 protected:
  std::shared_ptr<const model::Model> model() {
    return GetParam() == "default" ? default_model() : test_model(GetParam());
  }
};

// 16 greedy requests at once on 4 slots: each gets exactly the tokens of the same request run
// alone (plain Context), whatever the batch it is decoded in.
TEST_P(EngineModels, SixteenBatchedRequestsMatchRunsAlone) {
  const auto m = model();
  const int n_gen = 20;
  std::vector<std::vector<int32_t>> prompts;
  for (uint32_t i = 0; i < 16; ++i) prompts.push_back(random_prompt(*m, 5 + 7 * i, 100 + i));
  std::vector<std::vector<int32_t>> want;
  for (const auto& p : prompts) want.push_back(reference_greedy(m, p, n_gen, false));

  Engine engine(m, engine_params(4));
  std::vector<Collector> got(16);
  for (size_t i = 0; i < 16; ++i) {
    GenerationRequest r = request(prompts[i], n_gen, got[i]);
    r.ignore_eos = true;
    engine.submit(std::move(r));
  }
  for (size_t i = 0; i < 16; ++i) {
    const Completion c = got[i].wait();
    EXPECT_EQ(c.reason, FinishReason::Length) << "request " << i;
    EXPECT_EQ(c.generated_tokens, static_cast<uint32_t>(n_gen));
    EXPECT_EQ(got[i].tokens(), want[i]) << "request " << i << " (prompt of " << prompts[i].size() << " tokens)";
  }
  const EngineStats st = engine.stats();
  EXPECT_EQ(st.requests_total, 16u);
  EXPECT_EQ(st.generated_tokens_total, 16u * n_gen);
  EXPECT_EQ(st.requests_running, 0u);
  EXPECT_EQ(st.requests_queued, 0u);
}

// A prompt longer than one step's budget (n_batch 32) is evaluated in chunks beside generating
// requests, with the same result.
TEST_P(EngineModels, ChunkedPromptsMatchRunsAlone) {
  const auto m = model();
  EngineParams p = engine_params(3);
  p.n_batch = 32;
  Engine engine(m, p);
  std::vector<std::vector<int32_t>> prompts{random_prompt(*m, 9, 1), random_prompt(*m, 100, 2),
                                            random_prompt(*m, 61, 3), random_prompt(*m, 33, 4)};
  std::vector<Collector> got(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest r = request(prompts[i], 12, got[i]);
    r.ignore_eos = true;
    engine.submit(std::move(r));
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    got[i].wait();
    EXPECT_EQ(got[i].tokens(), reference_greedy(m, prompts[i], 12, false)) << "request " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, EngineModels,
                         testing::Values("default", "qwen3-Q8_0.gguf", "qwen35-Q8_0.gguf", "gemma3-F16.gguf"),
                         [](const testing::TestParamInfo<std::string>& i) {
                           std::string s = i.param.substr(0, i.param.find('.'));
                           for (char& ch : s)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return s;
                         });

// ---- Prefix reuse ----

TEST(Engine, ReusesTheLongestCachedPrefix) {
  const auto m = default_model();
  Engine engine(m, engine_params(2));
  const std::vector<int32_t> a = random_prompt(*m, 40, 7), b = random_prompt(*m, 30, 8);
  // Fill both slots: a in one, b in the other.
  {
    Collector ca, cb;
    engine.submit(request(a, 4, ca));
    engine.submit(request(b, 4, cb));
    EXPECT_EQ(ca.wait().cached_tokens, 0u);
    EXPECT_EQ(cb.wait().cached_tokens, 0u);
  }
  // b's first 25 tokens and new ones: the slot holding b is chosen, 25 tokens come from its cache.
  std::vector<int32_t> b2(b.begin(), b.begin() + 25);
  const std::vector<int32_t> tail = random_prompt(*m, 12, 9);
  b2.insert(b2.end(), tail.begin(), tail.end());
  Collector c2;
  engine.submit(request(b2, 10, c2));
  const Completion d2 = c2.wait();
  EXPECT_EQ(d2.cached_tokens, 25u);
  EXPECT_EQ(d2.prompt_tokens, b2.size());
  EXPECT_EQ(c2.tokens(), reference_greedy(m, b2, 10, true));
  // The same prompt again: all but the last token come from the cache, same output.
  Collector c3;
  engine.submit(request(b2, 10, c3));
  const Completion d3 = c3.wait();
  EXPECT_EQ(d3.cached_tokens, b2.size() - 1);
  EXPECT_EQ(c3.tokens(), c2.tokens());
  // a's slot was not touched.
  Collector c4;
  engine.submit(request(a, 4, c4));
  EXPECT_EQ(c4.wait().cached_tokens, a.size() - 1);
  const EngineStats st = engine.stats();
  EXPECT_EQ(st.cached_tokens_total, 25u + (b2.size() - 1) + (a.size() - 1));
  EXPECT_EQ(st.prompt_tokens_total + st.cached_tokens_total, a.size() * 2 + b.size() + b2.size() * 2);
}

// Recurrent layers cannot drop a partial sequence: a shorter shared prefix starts over (no
// cached tokens) and still gives the cold result; a prompt that continues the cache reuses it.
TEST(Engine, RecurrentModelPrefixReuse) {
  const auto m = test_model("qwen35-Q8_0.gguf");
  Engine engine(m, engine_params(1));
  const std::vector<int32_t> a = random_prompt(*m, 30, 11);
  Collector c1;
  engine.submit(request(a, 1, c1));
  c1.wait();
  // The cache holds a (the one generated token is not evaluated): a + more continues it.
  std::vector<int32_t> longer = a;
  const auto more = random_prompt(*m, 5, 12);
  longer.insert(longer.end(), more.begin(), more.end());
  Collector c2;
  engine.submit(request(longer, 6, c2));
  EXPECT_EQ(c2.wait().cached_tokens, a.size());
  EXPECT_EQ(c2.tokens(), reference_greedy(m, longer, 6, true));
  // A prefix of it: the state cannot be cut back, so it is evaluated from the start.
  const std::vector<int32_t> shorter(a.begin(), a.begin() + 20);
  Collector c3;
  engine.submit(request(shorter, 6, c3));
  EXPECT_EQ(c3.wait().cached_tokens, 0u);
  EXPECT_EQ(c3.tokens(), reference_greedy(m, shorter, 6, true));
}

// Windowed layers (window 16): a kept prefix whose window was evicted is evaluated again.
TEST(Engine, WindowedModelPrefixReuse) {
  const auto m = test_model("gemma3-F16.gguf");
  Engine engine(m, engine_params(1));
  const std::vector<int32_t> a = random_prompt(*m, 60, 13);
  Collector c1;
  engine.submit(request(a, 30, c1));
  c1.wait();
  for (size_t keep : {size_t(58), size_t(20)}) {
    std::vector<int32_t> p(a.begin(), a.begin() + keep);
    const auto tail = random_prompt(*m, 4, 14);
    p.insert(p.end(), tail.begin(), tail.end());
    Collector c;
    engine.submit(request(p, 8, c));
    const Completion d = c.wait();
    EXPECT_TRUE(d.cached_tokens == keep || d.cached_tokens == 0) << d.cached_tokens;
    EXPECT_EQ(c.tokens(), reference_greedy(m, p, 8, true)) << "keep " << keep;
  }
}

// ---- Queue, cancellation, shutdown ----

TEST(Engine, QueueFullCancelWhileQueuedAndShutdown) {
  const auto m = default_model();
  EngineParams p = engine_params(1);
  p.max_queue = 2;
  Engine engine(m, p);
  // The first request holds the only slot until released.
  std::mutex mu;
  std::condition_variable cv;
  bool started = false, release = false;
  Collector c1;
  GenerationRequest r1 = request(random_prompt(*m, 8, 1), 3, c1);
  r1.on_token = [&](const TokenEvent& e) {
    std::unique_lock<std::mutex> lock(mu);
    started = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    std::lock_guard<std::mutex> l2(c1.mu);
    c1.events.push_back(e);
    return Next::Continue;
  };
  auto h1 = engine.submit(std::move(r1));
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 60s, [&] { return started; }));
  }
  Collector c2, c3, c4;
  auto h2 = engine.submit(request(random_prompt(*m, 8, 2), 3, c2));
  auto h3 = engine.submit(request(random_prompt(*m, 8, 3), 3, c3));
  EXPECT_EQ(engine.stats().requests_queued, 2u);
  EXPECT_EQ(engine.stats().requests_running, 1u);
  EXPECT_THROW(engine.submit(request(random_prompt(*m, 8, 4), 3, c4)), QueueFullError);
  h3->cancel();
  h3->cancel();  // twice is harmless
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
    cv.notify_all();
  }
  const Completion d3 = c3.wait();
  EXPECT_EQ(d3.reason, FinishReason::Cancelled);
  EXPECT_EQ(d3.generated_tokens, 0u);
  EXPECT_EQ(c3.count(), 0u);
  EXPECT_EQ(c1.wait().reason, FinishReason::Length);
  EXPECT_EQ(c2.wait().reason, FinishReason::Length);
  EXPECT_TRUE(h1->done());
  EXPECT_TRUE(h2->done());
  EXPECT_TRUE(h3->done());
  h2->cancel();  // after the end: nothing happens
  engine.shutdown(false);
  EXPECT_THROW(engine.submit(request(random_prompt(*m, 8, 5), 3, c4)), ShuttingDownError);
  EXPECT_THROW(engine.embed({1, 2, 3}), ShuttingDownError);
  EXPECT_EQ(c1.n_done + c2.n_done + c3.n_done, 3);
  EXPECT_EQ(c4.n_done, 0);
}

TEST(Engine, CancelMidGenerationFreesTheSlot) {
  const auto m = default_model();
  Engine engine(m, engine_params(1, 4096));
  Collector c1;
  GenerationRequest r = request(random_prompt(*m, 8, 1), -1, c1);
  r.ignore_eos = true;
  auto h = engine.submit(std::move(r));
  for (int i = 0; i < 6000 && c1.count() < 5; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_GE(c1.count(), 5u);
  h->cancel();
  const Completion d = c1.wait();
  EXPECT_EQ(d.reason, FinishReason::Cancelled);
  EXPECT_LT(d.generated_tokens, 4000u);
  EXPECT_EQ(d.generated_tokens, c1.count());
  EXPECT_EQ(c1.n_done, 1);
  Collector c2;
  engine.submit(request(random_prompt(*m, 8, 2), 4, c2));
  EXPECT_EQ(c2.wait().reason, FinishReason::Length);
  EXPECT_EQ(c2.count(), 4u);
}

TEST(Engine, ShutdownWithCancelEndsRunningAndQueued) {
  const auto m = default_model();
  auto engine = std::make_unique<Engine>(m, engine_params(2, 2048));
  std::vector<Collector> c(5);
  for (size_t i = 0; i < c.size(); ++i) {
    GenerationRequest r = request(random_prompt(*m, 8, static_cast<uint32_t>(i)), -1, c[i]);
    r.ignore_eos = true;
    engine->submit(std::move(r));
  }
  for (int i = 0; i < 6000 && c[0].count() < 2; ++i) std::this_thread::sleep_for(10ms);
  engine->shutdown(true);
  for (auto& x : c) {
    EXPECT_EQ(x.wait().reason, FinishReason::Cancelled);
    EXPECT_EQ(x.n_done, 1);
  }
  EXPECT_EQ(engine->stats().requests_running, 0u);
  engine.reset();  // joins
}

// ---- Stop conditions ----

TEST(Engine, StopConditions) {
  const auto m = default_model();
  Engine engine(m, engine_params(2, 24));
  const auto prompt = random_prompt(*m, 20, 3);
  const auto want = reference_greedy(m, prompt, 4, false);
  {  // max_tokens
    Collector c;
    GenerationRequest r = request(prompt, 2, c);
    r.ignore_eos = true;
    engine.submit(std::move(r));
    const Completion d = c.wait();
    EXPECT_EQ(d.reason, FinishReason::Length);
    EXPECT_EQ(d.generated_tokens, 2u);
    EXPECT_EQ(c.tokens(), std::vector<int32_t>(want.begin(), want.begin() + 2));
  }
  {  // the request's n_ctx (24) is full: 20 prompt + 4 generated
    Collector c;
    GenerationRequest r = request(prompt, -1, c);
    r.ignore_eos = true;
    engine.submit(std::move(r));
    const Completion d = c.wait();
    EXPECT_EQ(d.reason, FinishReason::Length);
    EXPECT_EQ(d.generated_tokens, 4u);
    EXPECT_EQ(d.prompt_tokens, 20u);
    EXPECT_EQ(c.tokens(), want);
  }
  {  // Next::Stop after the third token
    Collector c;
    GenerationRequest r = request(prompt, -1, c);
    r.ignore_eos = true;
    auto inner = r.on_token;
    r.on_token = [&, inner](const TokenEvent& e) {
      inner(e);
      return c.count() == 3 ? Next::Stop : Next::Continue;
    };
    engine.submit(std::move(r));
    const Completion d = c.wait();
    EXPECT_EQ(d.reason, FinishReason::Stop);
    EXPECT_EQ(d.generated_tokens, 3u);
  }
}

// An end-of-generation token ends the request (Stop) as the last event, with eog set and no
// text. A grammar that is complete after "the" leaves only EOG tokens to pick from then.
TEST(Engine, EndOfGenerationToken) {
  const auto m = default_model();
  const tokenizer::Tokenizer& tok = m->tokenizer();
  Engine engine(m, engine_params(2));
  for (float temp : {0.0f, 0.7f}) {
    Collector c;
    GenerationRequest r = request(tok.encode("In the beginning", true, false), 20, c);
    r.grammar = sample::Grammar::parse("root ::= \" the\" | \"the\"", engine.grammar_vocab().get());
    r.sampling.temp = temp;
    engine.submit(std::move(r));
    const Completion d = c.wait();
    EXPECT_EQ(d.reason, FinishReason::Stop) << d.error;
    ASSERT_GE(c.events.size(), 2u);
    EXPECT_EQ(d.generated_tokens, c.events.size());
    EXPECT_TRUE(c.events.back().eog);
    EXPECT_TRUE(tok.is_eog(c.events.back().token));
    EXPECT_EQ(c.events.back().text, "");
    std::string text;
    for (size_t i = 0; i + 1 < c.events.size(); ++i) {
      EXPECT_FALSE(c.events[i].eog);
      text += c.events[i].text;
    }
    EXPECT_TRUE(text == " the" || text == "the") << text;
  }
}

// ---- Logprobs ----

TEST(Engine, LogprobsAreTheLogSoftmaxOfTheRawLogits) {
  const auto m = default_model();
  Engine engine(m, engine_params(2));
  const auto prompt = random_prompt(*m, 12, 21);
  // Another request runs beside it.
  Collector other;
  GenerationRequest ro = request(random_prompt(*m, 17, 22), 8, other);
  ro.ignore_eos = true;
  engine.submit(std::move(ro));
  Collector c;
  GenerationRequest r = request(prompt, 6, c);
  r.want_logprobs = true;
  r.top_logprobs = 5;
  r.ignore_eos = true;
  engine.submit(std::move(r));
  c.wait();
  other.wait();
  ASSERT_EQ(c.events.size(), 6u);

  // Reference: the logits of a plain Context along the same tokens.
  runtime::ContextParams cp;
  cp.n_ctx = 64;
  cp.n_threads = 2;
  runtime::Context ctx(m, cp);
  runtime::Batch b;
  for (size_t i = 0; i < prompt.size(); ++i) b.add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
  ctx.decode(b);
  int32_t pos = static_cast<int32_t>(prompt.size());
  for (const TokenEvent& e : c.events) {
    const auto logits = ctx.logits(b.size() - 1);
    double mx = -INFINITY;
    for (float v : logits) mx = std::max(mx, static_cast<double>(v));
    double sum = 0;
    for (float v : logits) sum += std::exp(v - mx);
    const double lse = mx + std::log(sum);
    EXPECT_NEAR(e.logprob, logits[static_cast<size_t>(e.token)] - lse, 1e-4);
    ASSERT_EQ(e.top.size(), 5u);
    EXPECT_EQ(e.top[0].token, e.token);  // greedy: the most likely token
    EXPECT_EQ(e.top[0].token, sample::argmax(logits));
    for (size_t k = 0; k < e.top.size(); ++k) {
      EXPECT_NEAR(e.top[k].logprob, logits[static_cast<size_t>(e.top[k].token)] - lse, 1e-4);
      if (k > 0) {
        EXPECT_GE(e.top[k - 1].logprob, e.top[k].logprob);
      }
    }
    // No token outside the list is more likely than its last entry.
    size_t above = 0;
    for (float v : logits)
      if (v > logits[static_cast<size_t>(e.top.back().token)]) ++above;
    EXPECT_LE(above, 4u);
    b.clear();
    b.add(e.token, pos++, 0, true);
    ctx.decode(b);
  }
  // Without want_logprobs nothing is filled in.
  for (const TokenEvent& e : other.events) {
    EXPECT_TRUE(e.top.empty());
    EXPECT_EQ(e.logprob, 0.0f);
  }
}

// ---- Sampling settings and grammar ----

TEST(Engine, SeededSamplingIsReproducibleUnderLoad) {
  const auto m = default_model();
  Engine engine(m, engine_params(3));
  const auto prompt = random_prompt(*m, 10, 31);
  auto run = [&](bool load) {
    std::vector<Collector> others(load ? 4 : 0);
    for (size_t i = 0; i < others.size(); ++i) {
      GenerationRequest r = request(random_prompt(*m, 9 + i, 40 + static_cast<uint32_t>(i)), 10, others[i]);
      r.sampling.temp = 1.0f;
      r.sampling.seed = i;
      engine.submit(std::move(r));
    }
    Collector c;
    GenerationRequest r = request(prompt, 16, c);
    r.sampling = sample::SamplerParams{};
    r.sampling.temp = 1.0f;
    r.sampling.seed = 1234;
    r.ignore_eos = true;
    engine.submit(std::move(r));
    c.wait();
    for (auto& o : others) o.wait();
    return c.tokens();
  };
  const auto alone = run(false);
  EXPECT_EQ(alone.size(), 16u);
  EXPECT_EQ(run(true), alone);
}

TEST(Engine, GrammarConstrainsTheText) {
  const auto m = default_model();
  Engine engine(m, engine_params(2));
  auto grammar = sample::Grammar::parse("root ::= [a-z ]+ \".\"", engine.grammar_vocab().get());
  Collector c;
  GenerationRequest r = request(m->tokenizer().encode("In the beginning", true, false), 40, c);
  r.grammar = grammar;
  r.sampling.temp = 0.8f;
  r.sampling.seed = 3;
  engine.submit(std::move(r));
  const Completion d = c.wait();
  EXPECT_NE(d.reason, FinishReason::Error) << d.error;
  std::string text;
  for (const auto& e : c.events) text += e.text;
  ASSERT_FALSE(text.empty());
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    EXPECT_TRUE((ch >= 'a' && ch <= 'z') || ch == ' ' || (ch == '.' && i + 1 == text.size()))
        << "character " << i << " of '" << text << "'";
  }
  if (d.reason == FinishReason::Stop) {
    EXPECT_TRUE(c.events.back().eog);
    EXPECT_EQ(text.back(), '.');
  }
}

// ---- Errors ----

TEST(Engine, SubmitRejectsBadRequests) {
  const auto m = default_model();
  Engine engine(m, engine_params(1, 32));
  Collector c;
  EXPECT_THROW(engine.submit(request({}, 3, c)), Error);
  EXPECT_THROW(engine.submit(request({1, static_cast<int32_t>(m->hparams().n_vocab)}, 3, c)), Error);
  EXPECT_THROW(engine.submit(request({1, -1}, 3, c)), Error);
  {
    GenerationRequest r = request({1, 2}, 3, c);
    r.want_logprobs = true;
    r.top_logprobs = 21;
    EXPECT_THROW(engine.submit(std::move(r)), Error);
  }
  {
    GenerationRequest r = request({1, 2}, 3, c);
    r.sampling.top_p = 2;
    EXPECT_THROW(engine.submit(std::move(r)), Error);
  }
  try {
    engine.submit(request(random_prompt(*m, 40, 1), 3, c));
    FAIL() << "no ContextOverflowError";
  } catch (const ContextOverflowError& e) {
    EXPECT_EQ(e.n_prompt, 40u);
    EXPECT_EQ(e.n_ctx, 32u);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("40"), std::string::npos) << msg;
    EXPECT_NE(msg.find("32"), std::string::npos) << msg;
  }
  EXPECT_THROW(engine.submit(request(random_prompt(*m, 32, 1), 3, c)), ContextOverflowError);
  EXPECT_THROW(engine.embed(random_prompt(*m, 33, 1)), ContextOverflowError);
  EXPECT_THROW(engine.embed({}), Error);
  EXPECT_EQ(engine.stats().requests_total, 0u);
  EXPECT_EQ(c.n_done, 0);
  // A prompt of n_ctx - 1 tokens fits and gets one token.
  engine.submit(request(random_prompt(*m, 31, 1), -1, c));
  const Completion d = c.wait();
  EXPECT_EQ(d.reason, FinishReason::Length);
  EXPECT_EQ(d.generated_tokens, 1u);
}

// A request's own n_ctx (Ollama num_ctx) below the engine's: its prompt is checked against it
// and its generation ends there; above the engine's, the engine's applies.
TEST(Engine, RequestContextSmallerThanTheEnginesLimitsThatRequest) {
  const auto m = default_model();
  Engine engine(m, engine_params(1, 32));
  Collector c;
  {
    GenerationRequest r = request(random_prompt(*m, 12, 1), -1, c);
    r.n_ctx = 12;
    try {
      engine.submit(std::move(r));
      FAIL() << "no ContextOverflowError";
    } catch (const ContextOverflowError& e) {
      EXPECT_EQ(e.n_prompt, 12u);
      EXPECT_EQ(e.n_ctx, 12u);
    }
  }
  GenerationRequest r = request(random_prompt(*m, 10, 1), -1, c);
  r.n_ctx = 16;
  r.ignore_eos = true;
  engine.submit(std::move(r));
  Completion d = c.wait();
  EXPECT_EQ(d.reason, FinishReason::Length);
  EXPECT_EQ(d.generated_tokens, 6u);  // 10 + 6 = 16 tokens
  Collector c2;
  r = request(random_prompt(*m, 10, 1), -1, c2);
  r.n_ctx = 1000;  // capped to the engine's 32
  r.ignore_eos = true;
  engine.submit(std::move(r));
  d = c2.wait();
  EXPECT_EQ(d.reason, FinishReason::Length);
  EXPECT_EQ(d.generated_tokens, 22u);
}

TEST(Engine, BadSettings) {
  const auto m = default_model();
  EXPECT_THROW(Engine(m, engine_params(0)), Error);
  EXPECT_THROW(Engine(m, engine_params(65)), Error);
  EXPECT_THROW(Engine(m, engine_params(1, 0)), Error);
}

// A failing callback ends its own request with Error; the engine and the other requests go on.
TEST(Engine, ACallbackErrorEndsOnlyItsRequest) {
  const auto m = default_model();
  Engine engine(m, engine_params(2));
  Collector bad, good;
  GenerationRequest rb = request(random_prompt(*m, 10, 1), 10, bad);
  rb.on_token = [](const TokenEvent&) -> Next { throw Error("boom"); };
  GenerationRequest rg = request(random_prompt(*m, 10, 2), 10, good);
  rg.ignore_eos = true;
  engine.submit(std::move(rb));
  engine.submit(std::move(rg));
  const Completion db = bad.wait();
  EXPECT_EQ(db.reason, FinishReason::Error);
  EXPECT_NE(db.error.find("boom"), std::string::npos) << db.error;
  EXPECT_EQ(good.wait().reason, FinishReason::Length);
  EXPECT_EQ(good.tokens(), reference_greedy(m, random_prompt(*m, 10, 2), 10, false));
}

}  // namespace
}  // namespace hearth::server
