#include "runtime/eval.h"

#include <algorithm>

#include "sample/sampler.h"

namespace hearth::runtime {

std::vector<float> evaluate(Context& ctx, std::span<const int32_t> tokens, bool sequential, int32_t seq,
                            int32_t start_pos) {
  const size_t n_vocab = ctx.model().hparams().n_vocab;
  std::vector<float> out(tokens.size() * n_vocab);
  Batch batch;
  if (sequential) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      batch.clear();
      batch.add(tokens[i], start_pos + static_cast<int32_t>(i), seq, true);
      ctx.decode(batch);
      const auto row = ctx.logits(0);
      std::copy(row.begin(), row.end(), out.begin() + static_cast<ptrdiff_t>(i * n_vocab));
    }
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) batch.add(tokens[i], start_pos + static_cast<int32_t>(i), seq, true);
    ctx.decode(batch);
    for (size_t i = 0; i < tokens.size(); ++i) {
      const auto row = ctx.logits(i);
      std::copy(row.begin(), row.end(), out.begin() + static_cast<ptrdiff_t>(i * n_vocab));
    }
  }
  return out;
}

std::vector<int32_t> greedy(Context& ctx, std::span<const float> last_logits, int32_t start_pos, int n, int32_t seq,
                            std::vector<float>* step_logits) {
  std::vector<int32_t> out;
  std::vector<float> logits(last_logits.begin(), last_logits.end());
  Batch batch;
  for (int i = 0; i < n; ++i) {
    if (step_logits != nullptr) step_logits->insert(step_logits->end(), logits.begin(), logits.end());
    const int32_t tok = sample::argmax(logits);
    out.push_back(tok);
    if (i + 1 == n) break;
    batch.clear();
    batch.add(tok, start_pos + i, seq, true);
    ctx.decode(batch);
    const auto row = ctx.logits(0);
    logits.assign(row.begin(), row.end());
  }
  return out;
}

}  // namespace hearth::runtime
