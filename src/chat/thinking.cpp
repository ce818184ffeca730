// Thinking budget (thinking.h).
#include "chat/thinking.h"

#include <utility>

#include "hearth/error.h"

namespace hearth::chat {

ThinkingBudget::ThinkingBudget(int max_tokens, std::vector<int32_t> end_tokens)
    : max_(max_tokens), end_(std::move(end_tokens)) {
  if (max_ >= 0 && end_.empty()) throw Error("a thinking budget needs the tokens of the end-of-thinking marker");
}

std::vector<int32_t> ThinkingBudget::next(bool in_reasoning) {
  if (!in_reasoning) return {};
  if (max_ >= 0 && used_ >= max_) {
    ++forced_;
    return end_;
  }
  ++used_;
  return {};
}

}  // namespace hearth::chat
