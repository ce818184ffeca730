#include "runtime/eval.h"

#include <algorithm>
#include <cmath>
#include <string>

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

PerplexityResult perplexity(Context& ctx, std::span<const int32_t> tokens, int n_ctx, std::optional<int32_t> bos,
                            int max_chunks, const std::function<void(int, double)>& on_chunk) {
  if (n_ctx < 2) throw Error("perplexity needs a window of at least 2 tokens");
  if (tokens.size() < 2 * static_cast<size_t>(n_ctx))
    throw Error("the text has " + std::to_string(tokens.size()) + " tokens; perplexity with n_ctx = " +
                std::to_string(n_ctx) + " needs at least " + std::to_string(2 * n_ctx));
  if (ctx.n_ctx() < static_cast<uint32_t>(n_ctx))
    throw Error("the context has " + std::to_string(ctx.n_ctx()) + " cells, fewer than the window of " +
                std::to_string(n_ctx));
  int n_chunks = static_cast<int>(tokens.size() / static_cast<size_t>(n_ctx));
  if (max_chunks > 0) n_chunks = std::min(n_chunks, max_chunks);
  const int first = n_ctx / 2;
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  std::vector<int32_t> window(static_cast<size_t>(n_ctx));
  for (int c = 0; c < n_chunks; ++c) {
    std::copy(tokens.begin() + static_cast<ptrdiff_t>(c) * n_ctx, tokens.begin() + static_cast<ptrdiff_t>(c + 1) * n_ctx,
              window.begin());
    if (bos) window[0] = *bos;
    ctx.kv_cache().clear();
    evaluate(ctx, window, /*sequential=*/false, [&](size_t i, std::span<const float> row) {
      if (i < static_cast<size_t>(first) || i + 1 >= static_cast<size_t>(n_ctx)) return;
      // -log softmax(row)[next token], in double.
      double mx = row[0];
      for (float x : row) mx = std::max(mx, static_cast<double>(x));
      double sum = 0;
      for (float x : row) sum += std::exp(static_cast<double>(x) - mx);
      const double v = mx + std::log(sum) - row[static_cast<size_t>(window[i + 1])];
      nll += v;
      nll2 += v * v;
      ++count;
    });
    if (on_chunk) on_chunk(c, std::exp(nll / static_cast<double>(count)));
  }
  ctx.kv_cache().clear();
  PerplexityResult r;
  r.n_chunks = n_chunks;
  r.n_scored = count;
  const double mean = nll / static_cast<double>(count);
  r.ppl = std::exp(mean);
  const double var = nll2 / static_cast<double>(count) - mean * mean;
  if (var > 0 && count > 1) r.ppl_error = std::sqrt(var / static_cast<double>(count - 1)) * r.ppl;
  return r;
}

}  // namespace hearth::runtime
