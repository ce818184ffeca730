#include "runtime/eval.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

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

namespace {

// The checks perplexity() and kl_divergence() share; returns the number of windows.
int count_windows(const Context& ctx, size_t n_tokens, int n_ctx, int max_chunks) {
  if (n_ctx < 2) throw Error("perplexity needs a window of at least 2 tokens");
  if (n_tokens < 2 * static_cast<size_t>(n_ctx))
    throw Error("the text has " + std::to_string(n_tokens) + " tokens; perplexity with n_ctx = " +
                std::to_string(n_ctx) + " needs at least " + std::to_string(2 * n_ctx));
  if (ctx.n_ctx() < static_cast<uint32_t>(n_ctx))
    throw Error("the context has " + std::to_string(ctx.n_ctx()) + " cells, fewer than the window of " +
                std::to_string(n_ctx));
  int n_chunks = static_cast<int>(n_tokens / static_cast<size_t>(n_ctx));
  if (max_chunks > 0) n_chunks = std::min(n_chunks, max_chunks);
  return n_chunks;
}

// Window c of `tokens` with its first token replaced by BOS (when given).
void fill_window(std::span<const int32_t> tokens, int c, int n_ctx, std::optional<int32_t> bos,
                 std::vector<int32_t>& window) {
  window.assign(tokens.begin() + static_cast<ptrdiff_t>(c) * n_ctx,
                tokens.begin() + static_cast<ptrdiff_t>(c + 1) * n_ctx);
  if (bos) window[0] = *bos;
}

// log(sum(exp(row))), in double.
double log_sum_exp(std::span<const float> row) {
  double mx = row[0];
  for (float x : row) mx = std::max(mx, static_cast<double>(x));
  double sum = 0;
  for (float x : row) sum += std::exp(static_cast<double>(x) - mx);
  return mx + std::log(sum);
}

// Mean and standard error of a sum and sum of squares over n samples.
std::pair<double, double> mean_and_error(double sum, double sum2, int64_t n) {
  const double mean = sum / static_cast<double>(n);
  const double var = sum2 / static_cast<double>(n) - mean * mean;
  return {mean, (var > 0 && n > 1) ? std::sqrt(var / static_cast<double>(n - 1)) : 0.0};
}

}  // namespace

PerplexityResult perplexity(Context& ctx, std::span<const int32_t> tokens, int n_ctx, std::optional<int32_t> bos,
                            int max_chunks, const std::function<void(int, double)>& on_chunk) {
  const int n_chunks = count_windows(ctx, tokens.size(), n_ctx, max_chunks);
  const int first = n_ctx / 2;
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  std::vector<int32_t> window;
  for (int c = 0; c < n_chunks; ++c) {
    fill_window(tokens, c, n_ctx, bos, window);
    ctx.kv_cache().clear();
    evaluate(ctx, window, /*sequential=*/false, [&](size_t i, std::span<const float> row) {
      if (i < static_cast<size_t>(first) || i + 1 >= static_cast<size_t>(n_ctx)) return;
      const double v = log_sum_exp(row) - row[static_cast<size_t>(window[i + 1])];  // -log softmax[next]
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
  const auto [mean, error] = mean_and_error(nll, nll2, count);
  r.ppl = std::exp(mean);
  r.ppl_error = error * r.ppl;
  return r;
}

KlDivergenceResult kl_divergence(Context& ref, Context& test, std::span<const int32_t> tokens, int n_ctx,
                                 std::optional<int32_t> bos, int max_chunks) {
  const int n_chunks = count_windows(ref, tokens.size(), n_ctx, max_chunks);
  count_windows(test, tokens.size(), n_ctx, max_chunks);
  const size_t n_vocab = ref.model().hparams().n_vocab;
  if (test.model().hparams().n_vocab != n_vocab)
    throw Error("the models have different vocabularies (" + std::to_string(n_vocab) + " and " +
                std::to_string(test.model().hparams().n_vocab) + " tokens)");
  const size_t first = static_cast<size_t>(n_ctx / 2);
  const size_t n_rows = static_cast<size_t>(n_ctx) - 1 - first;  // positions first .. n_ctx-2
  std::vector<float> ref_logp(n_rows * n_vocab);                   // the reference's log-softmax rows
  std::vector<int32_t> ref_top(n_rows);
  std::vector<int32_t> window;
  double nll_ref = 0, nll = 0, kld = 0, kld2 = 0, kld_max = 0;
  int64_t count = 0, agree = 0;
  for (int c = 0; c < n_chunks; ++c) {
    fill_window(tokens, c, n_ctx, bos, window);
    ref.kv_cache().clear();
    evaluate(ref, window, false, [&](size_t i, std::span<const float> row) {
      if (i < first || i + 1 >= static_cast<size_t>(n_ctx)) return;
      const double lse = log_sum_exp(row);
      float* out = ref_logp.data() + (i - first) * n_vocab;
      for (size_t v = 0; v < n_vocab; ++v) out[v] = static_cast<float>(row[v] - lse);
      ref_top[i - first] = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
      nll_ref += lse - row[static_cast<size_t>(window[i + 1])];
    });
    test.kv_cache().clear();
    evaluate(test, window, false, [&](size_t i, std::span<const float> row) {
      if (i < first || i + 1 >= static_cast<size_t>(n_ctx)) return;
      const double lse = log_sum_exp(row);
      const float* lp_ref = ref_logp.data() + (i - first) * n_vocab;
      double d = 0;
      for (size_t v = 0; v < n_vocab; ++v) {
        const double a = lp_ref[v];
        d += std::exp(a) * (a - (static_cast<double>(row[v]) - lse));
      }
      kld += d;
      kld2 += d * d;
      kld_max = std::max(kld_max, d);
      nll += lse - row[static_cast<size_t>(window[i + 1])];
      agree += (std::max_element(row.begin(), row.end()) - row.begin()) == ref_top[i - first];
      ++count;
    });
  }
  ref.kv_cache().clear();
  test.kv_cache().clear();
  KlDivergenceResult r;
  r.n_chunks = n_chunks;
  r.n_scored = count;
  r.ppl_ref = std::exp(nll_ref / static_cast<double>(count));
  r.ppl = std::exp(nll / static_cast<double>(count));
  std::tie(r.kld_mean, r.kld_error) = mean_and_error(kld, kld2, count);
  r.kld_max = kld_max;
  r.top1_agree = static_cast<double>(agree) / static_cast<double>(count);
  return r;
}

}  // namespace hearth::runtime
