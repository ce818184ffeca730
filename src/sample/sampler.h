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
  /// Removes the grammar: sampling is exactly as without one.
  void clear_grammar() { grammar_.reset(); }
  /// The grammar's matcher (its state after the sampled tokens), or nullptr without a grammar.
  GrammarMatcher* grammar() { return grammar_ ? &*grammar_ : nullptr; }

  /// Adds a token (e.g. of the prompt) to the penalty history without sampling.
  void accept(int32_t token);
  /// Clears the history, re-seeds the random state and restarts the grammar, if any.
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
  std::optional<GrammarMatcher> grammar_;
  std::vector<uint8_t> allowed_;
};

/// Index of the largest logit (the lowest index on ties).
int32_t argmax(std::span<const float> logits);

}  // namespace hearth::sample
