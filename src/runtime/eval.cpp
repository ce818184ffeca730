#include "runtime/eval.h"

#include <algorithm>

#include "sample/sampler.h"

namespace hearth::runtime {

void evaluate(Context& ctx, std::span<const int32_t> tokens, bool sequential, const RowSink& sink, int32_t seq,
              int32_t start_pos) {
  const size_t step = sequential ? 1 : ctx.params().n_ubatch;
  Batch batch;
  for (size_t begin = 0; begin < tokens.size(); begin += step) {
    const size_t end = std::min(tokens.size(), begin + step);
    batch.clear();
    for (size_t i = begin; i < end; ++i) batch.add(tokens[i], start_pos + static_cast<int32_t>(i), seq, true);
    ctx.decode(batch);
    for (size_t i = begin; i < end; ++i) sink(i, ctx.logits(i - begin));
  }
}

std::vector<float> evaluate(Context& ctx, std::span<const int32_t> tokens, bool sequential, int32_t seq,
                            int32_t start_pos) {
  const size_t n_vocab = ctx.model().hparams().n_vocab;
  std::vector<float> out(tokens.size() * n_vocab);
  evaluate(
      ctx, tokens, sequential,
      [&](size_t i, std::span<const float> row) { std::copy(row.begin(), row.end(), out.begin() + i * n_vocab); },
      seq, start_pos);
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
