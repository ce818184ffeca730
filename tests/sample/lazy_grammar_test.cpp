// The lazy grammar of Sampler::set_lazy_grammar: draws are those of an unconstrained sampler
// until a trigger (a word, a word at the start, a token) appears; then the grammar constrains
// the rest, fed from the trigger on (also when the trigger ends inside a token).
#include <gtest/gtest.h>

#include <random>

#include "hearth/error.h"
#include "sample/sampler.h"

namespace hearth::sample {
namespace {

// 0 "a", 1 "<t", 2 "ool>", 3 "b", 4 EOG, 5 a control token "[TC]" (no piece), 6 " ", 7 "{",
// 8 "}", 9 "ool>{", 10 "x<tool>{}".
std::shared_ptr<const GrammarVocab> vocab() {
  return std::make_shared<const GrammarVocab>(
      std::vector<std::string>{"a", "<t", "ool>", "b", "", "", " ", "{", "}", "ool>{", "x<tool>{}"},
      std::vector<int32_t>{4},
      std::vector<std::string>{"a", "<t", "ool>", "b", "</s>", "[TC]", " ", "{", "}", "ool>{", "x<tool>{}"});
}

SamplerParams params(uint64_t seed) {
  SamplerParams p;
  p.temp = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

// Logits that make `token` all but certain.
std::vector<float> force(int32_t token) {
  std::vector<float> l(11, 0.0f);
  l[static_cast<size_t>(token)] = 60.0f;
  return l;
}

TEST(LazyGrammar, BeforeTheTriggerSamplingIsUnconstrained) {
  const auto g = Grammar::parse(R"(root ::= "<tool>{" "}")");
  std::mt19937 rng(7);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Sampler lazy(params(seed)), plain(params(seed));
    lazy.set_lazy_grammar(g, vocab(), {{GrammarTrigger::Kind::Word, "<tool>", -1}});
    for (int n = 0; n < 200; ++n) {
      std::vector<float> l(11);
      for (float& x : l) x = std::normal_distribution<float>(0.0f, 2.0f)(rng);
      l[1] = -100.0f;  // "<t" never: no trigger
      l[10] = -100.0f;
      const int32_t a = lazy.sample(l), b = plain.sample(l);
      ASSERT_EQ(a, b) << "seed " << seed << " step " << n;
      ASSERT_FALSE(lazy.grammar_active());
    }
  }
}

TEST(LazyGrammar, AWordTriggerAcrossTokensStartsTheGrammarMidToken) {
  const auto g = Grammar::parse(R"(root ::= "<tool>{" "}")");
  Sampler s(params(1));
  s.set_lazy_grammar(g, vocab(), {{GrammarTrigger::Kind::Word, "<tool>", -1}});
  EXPECT_EQ(s.sample(force(0)), 0);  // "a"
  EXPECT_EQ(s.sample(force(1)), 1);  // "<t": not yet
  EXPECT_FALSE(s.grammar_active());
  EXPECT_EQ(s.sample(force(9)), 9);  // "ool>{": "<tool>" complete, "{" already fed to the grammar
  EXPECT_TRUE(s.grammar_active());
  EXPECT_EQ(s.sample(force(0)), 8);  // only "}" may follow, whatever the logits say
  EXPECT_EQ(s.sample(force(0)), 4);  // then only the end
  // The whole trigger inside one token, with text before it in that token.
  Sampler t(params(2));
  t.set_lazy_grammar(g, vocab(), {{GrammarTrigger::Kind::Word, "<tool>", -1}});
  EXPECT_EQ(t.sample(force(10)), 10);  // "x<tool>{}": the grammar is complete at once
  EXPECT_TRUE(t.grammar()->is_complete());
  EXPECT_EQ(t.sample(force(0)), 4);
  // reset() waits for the trigger again.
  t.reset();
  EXPECT_FALSE(t.grammar_active());
  EXPECT_EQ(t.sample(force(3)), 3);
}

TEST(LazyGrammar, TokenAndStartTriggers) {
  // A control token (empty piece) triggers as a token; the grammar starts with it.
  const auto g = Grammar::parse("root ::= <[5]> \"{\" \"}\"", vocab().get());
  Sampler s(params(3));
  s.set_lazy_grammar(g, vocab(), {{GrammarTrigger::Kind::Token, "", 5}});
  EXPECT_EQ(s.sample(force(3)), 3);
  EXPECT_EQ(s.sample(force(5)), 5);
  EXPECT_TRUE(s.grammar_active());
  EXPECT_EQ(s.sample(force(3)), 7);
  EXPECT_EQ(s.sample(force(3)), 8);
  // A start word counts after whitespace only.
  const auto braces = Grammar::parse(R"(root ::= "{" "}")");
  Sampler at_start(params(4)), later(params(4));
  at_start.set_lazy_grammar(braces, vocab(), {{GrammarTrigger::Kind::StartWord, "{", -1}});
  later.set_lazy_grammar(braces, vocab(), {{GrammarTrigger::Kind::StartWord, "{", -1}});
  EXPECT_EQ(at_start.sample(force(6)), 6);
  EXPECT_EQ(at_start.sample(force(7)), 7);
  EXPECT_TRUE(at_start.grammar_active());
  EXPECT_EQ(at_start.sample(force(3)), 8);
  EXPECT_EQ(later.sample(force(0)), 0);
  EXPECT_EQ(later.sample(force(7)), 7);
  EXPECT_FALSE(later.grammar_active());
  // accept_generated() advances the trigger search like a sampled token.
  Sampler forced(params(5));
  forced.set_lazy_grammar(g, vocab(), {{GrammarTrigger::Kind::Token, "", 5}});
  EXPECT_TRUE(forced.accept_generated(5));
  EXPECT_TRUE(forced.grammar_active());
  EXPECT_FALSE(forced.accept_generated(0));  // "a" cannot follow
  EXPECT_TRUE(forced.accept_generated(7));
}

TEST(LazyGrammar, Errors) {
  const auto g = Grammar::parse(R"(root ::= "<tool>{" "}")");
  Sampler s(params(1));
  EXPECT_THROW(s.set_lazy_grammar(g, vocab(), {}), Error);
  EXPECT_THROW(s.set_lazy_grammar(g, vocab(), {{GrammarTrigger::Kind::Word, "", -1}}), Error);
  EXPECT_THROW(s.set_lazy_grammar(g, vocab(), {{GrammarTrigger::Kind::Token, "", 11}}), Error);
  // A trigger whose text the grammar cannot start with.
  s.set_lazy_grammar(g, vocab(), {{GrammarTrigger::Kind::Word, "ab", -1}});
  EXPECT_EQ(s.sample(force(0)), 0);
  EXPECT_THROW(s.sample(force(3)), Error);
}

}  // namespace
}  // namespace hearth::sample
