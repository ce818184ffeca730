// Evaluation helpers behind `hearth eval` (the conformance interface) and the tests.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/context.h"

namespace hearth::runtime {

/// Evaluates `tokens` as sequence `seq` starting at position `start_pos`, keeping the logits
/// of every position: in one batch (split into n_ubatch micro-batches) or, with
/// `sequential`, one token per decode() call. Returns [tokens.size()][n_vocab] floats,
/// row-major. Throws Error as Context::decode does.
std::vector<float> evaluate(Context& ctx, std::span<const int32_t> tokens, bool sequential, int32_t seq = 0,
                            int32_t start_pos = 0);

/// Greedy continuation: from `last_logits` (the row after the token at start_pos - 1) picks
/// the argmax, feeds it at start_pos, and repeats `n` times. Returns the chosen tokens; the
/// logits of each step are appended to `step_logits` if it is not null.
std::vector<int32_t> greedy(Context& ctx, std::span<const float> last_logits, int32_t start_pos, int n,
                            int32_t seq = 0, std::vector<float>* step_logits = nullptr);

}  // namespace hearth::runtime
