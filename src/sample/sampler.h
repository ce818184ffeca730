// Token sampling: an optional grammar (grammar.h), penalties, top-k, top-p, min-p, temperature,
// seeded draw.
// The chain order and the formulas are llama.cpp's defaults (common/sampling): penalties →
// top-k → top-p → min-p → temperature → draw; temperature <= 0 means greedy (argmax).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "sample/grammar.h"

namespace hearth::sample {

/// Sampler settings (llama.cpp names and defaults).
struct SamplerParams {
  float temp = 0.8f;            ///< <= 0: greedy
  int32_t top_k = 40;           ///< <= 0: off
  float top_p = 0.95f;          ///< >= 1: off
  float min_p = 0.05f;          ///< <= 0: off
  float repeat_penalty = 1.0f;  ///< 1: off; > 1 discourages tokens of the last repeat_last_n
  int32_t repeat_last_n = 64;   ///< window of recent tokens for the penalties (0: off)
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  uint64_t seed = 0;

  /// Throws Error naming the first out-of-range setting (negative temperature is allowed
  /// and means greedy; top_p and min_p must lie in [0, 1]; repeat_penalty > 0; ...).
  void validate() const;
};

/// What starts a lazy grammar (Sampler::set_lazy_grammar), as llama.cpp's grammar triggers
/// (common/common.h common_grammar_trigger: words and tokens) are: the grammar then matches the
/// generated text from the start of the trigger on.
struct GrammarTrigger {
  enum class Kind {
    Word,       ///< `word` anywhere in the generated text (it may span tokens or end inside one)
    StartWord,  ///< `word` at the start of the generated text, after whitespace only
    Token,      ///< the token `token` is generated (e.g. a control token whose piece is empty)
  };
  Kind kind = Kind::Word;
  std::string word;
  int32_t token = -1;
};

/// A candidate token during sampling.
struct Candidate {
  int32_t id;
  float logit;
  float p;
};

/// A sampler chain with its own random state and token history.
class Sampler {
 public:
  /// Throws Error if params are out of range.
  explicit Sampler(const SamplerParams& params);

  /// Picks the next token from one row of logits (n_vocab floats) and records it in the
  /// history used by the penalties. Same seed, settings and logits give the same tokens.
  /// With a grammar (set_grammar), throws Error if logits.size() is not the vocabulary's size or
  /// if the grammar allows no token at all.
  int32_t sample(std::span<const float> logits);

  /// Constrains the following draws to `grammar` over `vocab`, applied before the chain as
  /// llama.cpp's grammar sampler is: tokens the grammar cannot take next are dropped from the
  /// candidates (as if their logit were -inf), end-of-generation tokens are kept only once the
  /// grammar is complete, and sample() advances the grammar with the token it picks (accept()
  /// does not: prompt tokens are not grammar text). Throws Error if either is null.
  void set_grammar(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const GrammarVocab> vocab);
  /// A lazy grammar (llama.cpp's lazy grammar sampler, used for tool calls): sampling is exactly
  /// as without a grammar until a trigger appears in the sampled tokens' text (pieces of `vocab`);
  /// then the grammar is fed the text from the start of the trigger to the end of that token (a
  /// Token trigger: the token itself, through GrammarMatcher::accept_token) and constrains every
  /// following draw as set_grammar does. Several triggers: the one that starts first wins (the
  /// longest on a tie). Throws Error if either pointer is null, `triggers` is empty, a word is
  /// empty or a token id is out of range. sample() throws Error if the text from the trigger on
  /// cannot start the grammar (the grammar must begin with the trigger's text, or its token).
  void set_lazy_grammar(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const GrammarVocab> vocab,
                        std::vector<GrammarTrigger> triggers);
  /// Removes the grammar: sampling is exactly as without one.
  void clear_grammar() {
    grammar_.reset();
    lazy_ = false;
  }
  /// Whether the grammar constrains the next draw: a grammar is set and it is not lazy or its
  /// trigger has appeared.
  bool grammar_active() const { return grammar_.has_value() && (!lazy_ || triggered_); }
  /// Records a token that was generated without sample() (e.g. forced by a thinking budget): it
  /// goes to the penalty history and advances the grammar (or the lazy grammar's trigger search)
  /// as a sampled token would. Returns false, grammar unchanged, if an active grammar rejects it.
  bool accept_generated(int32_t token);
  /// The grammar's matcher (its state after the sampled tokens), or nullptr without a grammar.
  GrammarMatcher* grammar() { return grammar_ ? &*grammar_ : nullptr; }

  /// Adds a token (e.g. of the prompt) to the penalty history without sampling.
  void accept(int32_t token);
  /// Clears the history, re-seeds the random state and restarts the grammar, if any (a lazy one
  /// waits for its trigger again).
  void reset();

  const SamplerParams& params() const { return params_; }

  // The individual steps, each applied to a candidate list (exposed for testing).
  static void apply_penalties(std::vector<Candidate>& c, const std::deque<int32_t>& history, float repeat,
                              float frequency, float presence);
  static void top_k(std::vector<Candidate>& c, int32_t k);
  /// Keeps the smallest set of most probable tokens whose probability mass reaches p.
  static void top_p(std::vector<Candidate>& c, float p);
  /// Keeps tokens whose probability is at least min_p times the top one.
  static void min_p(std::vector<Candidate>& c, float min_p);
  static void temperature(std::vector<Candidate>& c, float t);
  /// Sorts by logit (descending) and fills p with the softmax of the logits.
  static void softmax(std::vector<Candidate>& c);

 private:
  SamplerParams params_;
  std::mt19937_64 rng_;
  std::deque<int32_t> history_;
  std::vector<Candidate> cand_;
  // Advances the grammar (or the trigger search) with a generated token; throws where sample()
  // documents it.
  void advance_grammar(int32_t token);
  // sample()'s token from the candidate list (grammar, penalties, the filters, the draw); the
  // grammar is not advanced and the token not accepted yet.
  int32_t sample_candidates(std::span<const float> logits);

  std::optional<GrammarMatcher> grammar_;
  std::shared_ptr<const GrammarVocab> vocab_;
  std::vector<uint8_t> allowed_;
  bool lazy_ = false, triggered_ = false;
  std::vector<GrammarTrigger> triggers_;
  std::string pending_;   // generated text that may still hold the start of a trigger word
  bool only_ws_ = true;   // the text before pending_ is whitespace only (StartWord triggers)
  size_t max_word_ = 0;   // longest trigger word
};

/// Index of the largest logit (the lowest index on ties).
int32_t argmax(std::span<const float> logits);

}  // namespace hearth::sample
