// Thinking budget: a cap on the tokens of reasoning, after which the end-of-thinking marker is
// forced (llama.cpp's --reasoning-budget; api.md §1.1 `thinking_budget_tokens`: "at the cap the
// engine injects the end-of-thinking marker").
//
// The generation loop asks the budget before sampling each token:
//
//     ThinkingBudget budget(512, tok.encode(thinking_markers(family).forced_close, false, true));
//     while (...) {
//       std::vector<int32_t> forced = budget.next(parser.in_reasoning());
//       if (forced.empty()) forced = {sampler.sample(logits)};
//       for (int32_t t : forced) { parser.feed(detok.push(t)); ... decode t ... }
//     }
#pragma once

#include <cstdint>
#include <vector>

namespace hearth::chat {

/// Counts reasoning tokens and says when to force the end of the reasoning.
class ThinkingBudget {
 public:
  /// `max_tokens` reasoning tokens at most (< 0: no limit; 0: the reasoning is closed before its
  /// first token). `end_tokens`: the tokens of the family's forced_close text (formats.h).
  ThinkingBudget(int max_tokens, std::vector<int32_t> end_tokens);

  /// Called before each token is chosen, with whether the output so far ends inside a reasoning
  /// section (OutputParser::in_reasoning()). Returns the tokens to evaluate now instead of a
  /// sampled one (end_tokens) when the reasoning already has max_tokens tokens; otherwise an
  /// empty list, and the token about to be sampled counts as reasoning if `in_reasoning`.
  std::vector<int32_t> next(bool in_reasoning);

  /// Reasoning tokens counted so far (forced tokens are not counted).
  int reasoning_tokens() const { return used_; }
  /// How many times the end was forced.
  int forced() const { return forced_; }
  int max_tokens() const { return max_; }

 private:
  int max_;
  std::vector<int32_t> end_;
  int used_ = 0;
  int forced_ = 0;
};

}  // namespace hearth::chat
