// Sampler properties: greedy = argmax, seed reproducibility, what top-k / top-p / min-p /
// penalties keep and change, temperature's effect on the distribution.
#include "sample/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

#include "hearth/error.h"

namespace hearth::sample {
namespace {

std::vector<Candidate> candidates(const std::vector<float>& logits) {
  std::vector<Candidate> c;
  for (size_t i = 0; i < logits.size(); ++i) c.push_back({static_cast<int32_t>(i), logits[i], 0.0f});
  return c;
}

std::set<int32_t> ids(const std::vector<Candidate>& c) {
  std::set<int32_t> s;
  for (const Candidate& x : c) s.insert(x.id);
  return s;
}

// Settings that sample from the full softmax(logits / temp): every filter off.
SamplerParams unfiltered(float temp, uint64_t seed) {
  SamplerParams p;
  p.temp = temp;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

// Logits whose softmax is exactly `p` (up to float rounding).
std::vector<float> logits_for(const std::vector<double>& p) {
  std::vector<float> l;
  for (double x : p) l.push_back(static_cast<float>(std::log(x)));
  return l;
}

TEST(Sampler, GreedyIsArgmax) {
  SamplerParams p;
  p.temp = 0.0f;
  Sampler s(p);
  EXPECT_EQ(s.sample(std::vector<float>{0.1f, 3.0f, -1.0f, 2.9f}), 1);
  EXPECT_EQ(s.sample(std::vector<float>{5.0f, 5.0f, 1.0f}), 0);  // ties: lowest id
  EXPECT_EQ(argmax(std::vector<float>{-3.0f, -2.0f, -2.5f}), 1);
}

// Greedy with penalties takes the general path (penalized candidates), greedy without them the
// direct argmax: both pick the first largest (penalized) logit, step after step.
TEST(Sampler, GreedyWithAndWithoutPenaltiesFollowsThePenalizedLogits) {
  const std::vector<float> logits = {2.0f, 4.0f, 3.9f, -1.0f, 4.0f};
  SamplerParams plain;
  plain.temp = 0.0f;
  Sampler a(plain);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a.sample(logits), 1);  // ties: the lower id, every step
  SamplerParams pen = plain;
  pen.repeat_penalty = 1.1f;  // 4.0 / 1.1 = 3.64 once token 1 (then 4) is in the history
  Sampler b(pen);
  EXPECT_EQ(b.sample(logits), 1);
  EXPECT_EQ(b.sample(logits), 4);  // token 1 penalized: the other 4.0
  EXPECT_EQ(b.sample(logits), 2);  // both penalized: 3.9 is the largest
  pen.repeat_penalty = 1.0f;
  pen.presence_penalty = 0.5f;
  Sampler c(pen);
  EXPECT_EQ(c.sample(logits), 1);
  EXPECT_EQ(c.sample(logits), 4);
  EXPECT_EQ(c.sample(logits), 2);  // 3.9 > 4.0 - 0.5
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(std::sin(i * 1.3)) * 2.0f;
  auto run = [&](uint64_t seed) {
    Sampler s(unfiltered(1.0f, seed));
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) out.push_back(s.sample(logits));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
  // reset() restarts the same sequence.
  SamplerParams p;
  p.seed = 7;
  Sampler s(p);
  const int32_t a = s.sample(logits), b = s.sample(logits);
  s.reset();
  EXPECT_EQ(s.sample(logits), a);
  EXPECT_EQ(s.sample(logits), b);
}

TEST(Sampler, TopKKeepsTheKLargest) {
  auto c = candidates({1.0f, 5.0f, 3.0f, 4.0f, 2.0f});
  Sampler::top_k(c, 3);
  EXPECT_EQ(ids(c), (std::set<int32_t>{1, 2, 3}));
  auto all = candidates({1.0f, 2.0f});
  Sampler::top_k(all, 0);  // off
  EXPECT_EQ(all.size(), 2u);
  // Sampling with top_k = 2 only ever returns the two best tokens.
  SamplerParams p;
  p.top_k = 2;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.temp = 5.0f;
  Sampler s(p);
  std::set<int32_t> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(s.sample(std::vector<float>{1.0f, 5.0f, 3.0f, 4.0f, 2.0f}));
  EXPECT_EQ(seen, (std::set<int32_t>{1, 3}));
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  const std::vector<float> l = logits_for({0.5, 0.3, 0.15, 0.05});
  auto c = candidates(l);
  Sampler::top_p(c, 0.79f);
  EXPECT_EQ(ids(c), (std::set<int32_t>{0, 1}));
  c = candidates(l);
  Sampler::top_p(c, 0.81f);
  EXPECT_EQ(ids(c), (std::set<int32_t>{0, 1, 2}));
  c = candidates(l);
  Sampler::top_p(c, 0.1f);
  EXPECT_EQ(ids(c), (std::set<int32_t>{0}));
  c = candidates(l);
  Sampler::top_p(c, 1.0f);  // off
  EXPECT_EQ(c.size(), 4u);
}

TEST(Sampler, MinPKeepsTokensAboveFractionOfTheBest) {
  const std::vector<float> l = logits_for({0.5, 0.3, 0.15, 0.05});
  auto c = candidates(l);
  Sampler::min_p(c, 0.25f);  // threshold 0.125
  EXPECT_EQ(ids(c), (std::set<int32_t>{0, 1, 2}));
  c = candidates(l);
  Sampler::min_p(c, 0.7f);  // threshold 0.35
  EXPECT_EQ(ids(c), (std::set<int32_t>{0}));
}

TEST(Sampler, PenaltiesFollowLlamaCpp) {
  std::deque<int32_t> history{1, 2, 2};
  auto c = candidates({1.0f, 2.0f, -2.0f, 4.0f});
  Sampler::apply_penalties(c, history, 2.0f, 0.5f, 0.25f);
  EXPECT_FLOAT_EQ(c[0].logit, 1.0f);                     // not in history
  EXPECT_FLOAT_EQ(c[1].logit, 2.0f / 2.0f - 0.5f - 0.25f);  // positive: divided; count 1
  EXPECT_FLOAT_EQ(c[2].logit, -2.0f * 2.0f - 1.0f - 0.25f); // negative: multiplied; count 2
  EXPECT_FLOAT_EQ(c[3].logit, 4.0f);
  // The history window is repeat_last_n tokens.
  SamplerParams p;
  p.temp = 0.0f;
  p.repeat_penalty = 100.0f;
  p.repeat_last_n = 1;
  Sampler s(p);
  s.accept(0);
  s.accept(1);  // only token 1 is in the window now
  EXPECT_EQ(s.sample(std::vector<float>{3.0f, 10.0f, 2.9f}), 0);
}

TEST(Sampler, TemperatureShapesTheDistribution) {
  // With top-k/p/min-p off, empirical frequencies follow softmax(l / T).
  const std::vector<float> l{0.0f, 1.0f, 2.0f};
  for (float temp : {0.5f, 2.0f}) {
    Sampler s(unfiltered(temp, 11));
    std::map<int32_t, int> count;
    const int n = 20000;
    for (int i = 0; i < n; ++i) ++count[s.sample(l)];
    double z = 0;
    for (float x : l) z += std::exp(x / temp);
    for (int i = 0; i < 3; ++i) {
      const double expect = std::exp(l[i] / temp) / z;
      EXPECT_NEAR(count[i] / static_cast<double>(n), expect, 0.015) << "temp " << temp << " token " << i;
    }
  }
}

TEST(Sampler, RejectsOutOfRangeParameters) {
  auto bad = [](auto set) {
    SamplerParams p;
    set(p);
    EXPECT_THROW(Sampler{p}, Error);
  };
  bad([](SamplerParams& p) { p.top_p = 1.5f; });
  bad([](SamplerParams& p) { p.min_p = -0.1f; });
  bad([](SamplerParams& p) { p.repeat_penalty = 0.0f; });
  bad([](SamplerParams& p) { p.repeat_last_n = -1; });
  bad([](SamplerParams& p) { p.temp = NAN; });
  try {
    SamplerParams p;
    p.top_p = 2.0f;
    Sampler s(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("top_p"), std::string::npos);
  }
  SamplerParams ok;
  Sampler s(ok);
  EXPECT_THROW(s.sample(std::vector<float>{}), Error);
}

// Vocabulary of the grammar tests below: 0 "1", 1 "2", 2 "+", 3 "12", 4 "x", 5 EOG, 6 "+1".
std::shared_ptr<const GrammarVocab> sum_vocab() {
  return std::make_shared<const GrammarVocab>(std::vector<std::string>{"1", "2", "+", "12", "x", "", "+1"},
                                              std::vector<int32_t>{5});
}

TEST(Sampler, GrammarMasksBeforeTheChainAndEndsOnlyWhenComplete) {
  const auto vocab = sum_vocab();
  const auto g = Grammar::parse(R"(root ::= [12]+ ("+" [12]+){2})");
  // Greedy: the best token the grammar allows, whatever the raw argmax.
  SamplerParams p;
  p.temp = 0.0f;
  Sampler greedy(p);
  greedy.set_grammar(g, vocab);
  //                          "1"   "2"   "+"   "12"  "x"   EOG   "+1"
  const std::vector<float> l{0.1f, 0.2f, 0.9f, 0.3f, 5.0f, 4.0f, 0.8f};
  EXPECT_EQ(greedy.sample(l), 3);  // "+" cannot come first, "x" never, EOG not yet
  EXPECT_EQ(greedy.sample(l), 2);  // "12+"
  EXPECT_EQ(greedy.sample(l), 3);  // "12+12"
  EXPECT_EQ(greedy.sample(l), 2);
  EXPECT_EQ(greedy.sample(l), 3);  // "12+12+12": complete
  EXPECT_EQ(greedy.sample(l), 5);  // EOG now wins
  EXPECT_TRUE(greedy.grammar()->is_complete());

  // Sampling: every draw is allowed, and outputs end with EOG only once complete.
  std::mt19937 rng(3);
  for (uint64_t seed = 0; seed < 50; ++seed) {
    Sampler s(unfiltered(1.0f, seed));
    s.set_grammar(g, vocab);
    std::string text;
    for (int n = 0; n < 100; ++n) {
      std::vector<float> logits(7);
      for (float& x : logits) x = std::normal_distribution<float>(0.0f, 2.0f)(rng);
      const int32_t t = s.sample(logits);
      if (t == 5) break;
      text += vocab->piece(t);
    }
    GrammarMatcher check(g);
    EXPECT_TRUE(check.accept_bytes(text) && check.is_complete()) << text;
  }
}

TEST(Sampler, WithoutGrammarTheDrawsAreUnchanged) {
  std::vector<float> logits(7);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(std::cos(i * 0.7)) * 1.5f;
  SamplerParams p;
  p.seed = 9;
  Sampler plain(p), cleared(p);
  cleared.set_grammar(Grammar::parse(R"(root ::= "1"+)"), sum_vocab());
  cleared.clear_grammar();
  EXPECT_EQ(cleared.grammar(), nullptr);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(plain.sample(logits), cleared.sample(logits));
}

TEST(Sampler, GrammarErrors) {
  Sampler s(unfiltered(1.0f, 1));
  EXPECT_THROW(s.set_grammar(nullptr, sum_vocab()), Error);
  s.set_grammar(Grammar::parse(R"(root ::= "1" "q")"), sum_vocab());
  EXPECT_THROW(s.sample(std::vector<float>(3, 0.0f)), Error);  // logits for another vocabulary
  EXPECT_EQ(s.sample(std::vector<float>(7, 0.0f)), 0);         // "1": the only choice
  try {
    s.sample(std::vector<float>(7, 0.0f));  // "q" is no token's text
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no token of the vocabulary can continue"), std::string::npos);
  }
  s.reset();  // restarts the grammar too
  EXPECT_EQ(s.sample(std::vector<float>(7, 0.0f)), 0);
}

}  // namespace
}  // namespace hearth::sample
