// Evaluation helpers behind `hearth eval` (the conformance interface) and the tests.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/context.h"

namespace hearth::runtime {

/// Receives the logits (n_vocab floats) of token `index` of an evaluation.
using RowSink = std::function<void(size_t index, std::span<const float> logits)>;

/// Evaluates `tokens` as sequence `seq` starting at position `start_pos` and hands the logits
/// of every position to `sink`, in order: in batches of n_ubatch tokens or, with
/// `sequential`, one token per decode() call. Memory stays at n_ubatch rows of logits however
/// long the sequence. Throws Error as Context::decode does.
void evaluate(Context& ctx, std::span<const int32_t> tokens, bool sequential, const RowSink& sink,
              int32_t seq = 0, int32_t start_pos = 0);

/// As above, collecting the rows: returns [tokens.size()][n_vocab] floats, row-major.
std::vector<float> evaluate(Context& ctx, std::span<const int32_t> tokens, bool sequential, int32_t seq = 0,
                            int32_t start_pos = 0);

/// Greedy continuation: from `last_logits` (the row after the token at start_pos - 1) picks
/// the argmax, feeds it at start_pos, and repeats `n` times. Returns the chosen tokens; the
/// logits of each step are appended to `step_logits` if it is not null.
std::vector<int32_t> greedy(Context& ctx, std::span<const float> last_logits, int32_t start_pos, int n,
                            int32_t seq = 0, std::vector<float>* step_logits = nullptr);

}  // namespace hearth::runtime
