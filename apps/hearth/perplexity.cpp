// hearth perplexity MODEL.gguf FILE [-c N_CTX] [--chunks N] [-t THREADS] [-ctk T] [-ctv T] [-fa on|off|auto]
// llama.cpp's perplexity: non-overlapping windows, BOS first, the second half of each scored.
#include <algorithm>
#include <cstdio>

#include "commands.h"
#include "common.h"
#include "model/model.h"
#include "runtime/eval.h"

namespace hearth::app {

void register_perplexity(CLI::App& app) {
  auto* sub = app.add_subcommand("perplexity", "Perplexity of a model on a text file (llama.cpp's procedure)");
  struct Opts {
    std::string model, file, kl_ref;
    uint32_t n_ctx = 512;
    int chunks = 0;
    int threads = 0;
    uint32_t n_ubatch = 512;
    CacheOptions cache;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("model", o->model, "GGUF model file")->required();
  sub->add_option("file", o->file, "text file")->required();
  auto* ctx_opt = sub->add_option("-c,--ctx-size", o->n_ctx,
                                  "window n_ctx, tokens (default: 512 or the model's training context if smaller)")
                      ->check(CLI::Range(2u, 1u << 20));
  sub->add_option("--kl-divergence", o->kl_ref,
                  "REF.gguf: also compare with this reference model (usually the F16 file; it runs with an f16 "
                  "KV cache): mean KL divergence, top-1 agreement");
  sub->add_option("--chunks", o->chunks, "evaluate at most N windows (0: all)")->check(CLI::NonNegativeNumber);
  sub->add_option("-t,--threads", o->threads, "compute threads (default: all cores)");
  sub->add_option("--ubatch-size", o->n_ubatch, "micro-batch size n_ubatch")->check(CLI::PositiveNumber);
  o->cache.add_to(sub);
  add_command(app, sub, [o, ctx_opt] {
    runtime::ContextParams cp;
    o->cache.apply(cp);
    const std::string text = read_file(o->file);
    auto model = model::Model::load(o->model);
    const uint32_t n_ctx_train = model->hparams().n_ctx_train;
    if (ctx_opt->count() == 0 && n_ctx_train > 1) o->n_ctx = std::min(o->n_ctx, n_ctx_train);
    const tokenizer::Tokenizer& tok = model->tokenizer();
    const double t0 = now_seconds();
    const std::vector<int32_t> tokens = tok.encode(text, /*add_special=*/true, /*parse_special=*/false);
    // Never more cells than the text has tokens: too short a text is reported by perplexity().
    cp.n_ctx = std::max<uint32_t>(1, std::min<uint32_t>(o->n_ctx, static_cast<uint32_t>(tokens.size())));
    cp.n_ubatch = o->n_ubatch;
    cp.n_threads = o->threads;
    runtime::Context ctx(model, cp);
    const std::optional<int32_t> bos = tok.add_bos() ? tok.bos() : std::nullopt;
    if (!o->kl_ref.empty()) {
      auto ref_model = model::Model::load(o->kl_ref);
      // The reference runs with the default F16 cache, so that the model itself may be its own
      // reference when a cache type is measured (--kl-divergence MODEL.gguf -ctk q8_0 -ctv q8_0).
      runtime::ContextParams ref_cp = cp;
      ref_cp.type_k = ref_cp.type_v = quant::GgmlType::F16;
      ref_cp.flash_attn = false;
      runtime::Context ref_ctx(ref_model, ref_cp);
      const runtime::KlDivergenceResult k =
          runtime::kl_divergence(ref_ctx, ctx, tokens, static_cast<int>(o->n_ctx), bos, o->chunks);
      std::printf("Mean PPL(Q)    : %10.4f\n", k.ppl);
      std::printf("Mean PPL(base) : %10.4f\n", k.ppl_ref);
      std::printf("Mean KLD       : %10.6f +/- %.6f\n", k.kld_mean, k.kld_error);
      std::printf("Maximum KLD    : %10.6f\n", k.kld_max);
      std::printf("Same top p     : %9.3f %%\n", 100.0 * k.top1_agree);
      std::fprintf(stderr, "kl-divergence: %d windows of n_ctx = %u, %lld positions scored; %.2f s\n", k.n_chunks,
                   o->n_ctx, static_cast<long long>(k.n_scored), now_seconds() - t0);
      return 0;
    }
    const runtime::PerplexityResult r = runtime::perplexity(
        ctx, tokens, static_cast<int>(o->n_ctx), bos, o->chunks, [](int i, double ppl) {
          std::printf("[%d]%.4f,", i + 1, ppl);
          std::fflush(stdout);
        });
    const double dt = now_seconds() - t0;
    if (n_ctx_train > 0 && o->n_ctx > n_ctx_train)
      std::fprintf(stderr, "warning: n_ctx %u exceeds the model's training context %u; positions past it are untrained\n",
                   o->n_ctx, n_ctx_train);
    std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_error);
    std::fprintf(stderr,
                 "perplexity: %zu tokens; %d windows of n_ctx = %u, the last %u predictions of each scored (%lld in "
                 "all); %.2f s, %.1f tokens/s\n",
                 tokens.size(), r.n_chunks, o->n_ctx, o->n_ctx - 1 - o->n_ctx / 2, static_cast<long long>(r.n_scored), dt,
                 static_cast<double>(r.n_chunks) * o->n_ctx / dt);
    return 0;
  });
}

}  // namespace hearth::app
