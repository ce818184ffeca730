// Evaluation helpers behind `hearth eval` (the conformance interface) and the tests.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
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

/// Result of perplexity().
struct PerplexityResult {
  double ppl = 0;        ///< exp(mean negative log-likelihood), nats per token
  double ppl_error = 0;  ///< one standard error of ppl (from the variance of the per-token NLL)
  int64_t n_scored = 0;  ///< tokens scored
  int n_chunks = 0;      ///< windows evaluated
};

/// Perplexity the way llama.cpp's perplexity tool computes it: `tokens` (the whole text
/// tokenized with BOS) is cut into non-overlapping windows of `n_ctx` tokens (the tail that
/// does not fill a window is dropped; at most `max_chunks` windows if > 0). In each window the
/// first token is replaced by `bos` (when given), the window is evaluated from an empty cache
/// (sequence 0), and the predictions of the second half are scored: the logits of positions
/// n_ctx/2 .. n_ctx-2 against the tokens that follow them. `on_chunk(i, running_ppl)` is
/// called after each window. Needs a context of at least n_ctx cells; throws Error if there
/// are fewer than 2·n_ctx tokens (as llama.cpp) or n_ctx < 2.
PerplexityResult perplexity(Context& ctx, std::span<const int32_t> tokens, int n_ctx, std::optional<int32_t> bos,
                            int max_chunks = 0, const std::function<void(int, double)>& on_chunk = nullptr);

/// Result of kl_divergence().
struct KlDivergenceResult {
  double ppl_ref = 0;     ///< perplexity of the reference model on the scored tokens
  double ppl = 0;         ///< perplexity of the tested model on the same tokens
  double kld_mean = 0;    ///< mean KL(P_ref || P) over scored positions, nats
  double kld_error = 0;   ///< one standard error of kld_mean
  double kld_max = 0;     ///< largest per-position KL divergence, nats
  double top1_agree = 0;  ///< fraction of scored positions where both models' argmax agree
  int64_t n_scored = 0;
  int n_chunks = 0;
};

/// Compares a model with a reference on the windows and positions perplexity() scores (the
/// same text, n_ctx and BOS handling; llama.cpp's `perplexity --kl-divergence`): per scored
/// position the KL divergence sum_v p_ref(v)·(log p_ref(v) − log p(v)) of the two softmax
/// distributions, in double. Both contexts need n_ctx cells and the same vocabulary size.
/// Throws Error as perplexity() does, or if the vocabularies differ.
KlDivergenceResult kl_divergence(Context& ref, Context& test, std::span<const int32_t> tokens, int n_ctx,
                                 std::optional<int32_t> bos, int max_chunks = 0);

}  // namespace hearth::runtime
