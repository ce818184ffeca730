// hearth run [MODEL.gguf] -p PROMPT [-n N] [sampling options] [-t THREADS] [-c N_CTX]
// Streams the generated text to stdout; prompt and generation speed go to stderr.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>

#include "commands.h"
#include "common.h"
#include "model/model.h"
#include "runtime/context.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace hearth::app {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_sigint(int) { g_interrupted.store(true); }

}  // namespace

void register_run(CLI::App& app) {
  auto* sub = app.add_subcommand("run", "Generate text from a prompt");
  struct Opts {
    std::string model, prompt;
    int n_predict = -1;
    int threads = 0;
    uint32_t n_ctx = 4096;
    uint32_t n_ubatch = 512;
    int64_t seed = -1;
    bool no_bos = false;
    bool ignore_eos = false;
    sample::SamplerParams sp;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("model", o->model, "GGUF model file (default: the embedded hearth-kjv model)");
  sub->add_option("-p,--prompt", o->prompt, "prompt text")->required();
  sub->add_option("-n,--n-predict", o->n_predict, "tokens to generate (-1: until end of text or a full context)");
  sub->add_option("--temp", o->sp.temp, "temperature (0: greedy)")->default_val(o->sp.temp);
  sub->add_option("--top-k", o->sp.top_k, "top-k (0: off)")->default_val(o->sp.top_k);
  sub->add_option("--top-p", o->sp.top_p, "top-p (1: off)")->default_val(o->sp.top_p);
  sub->add_option("--min-p", o->sp.min_p, "min-p (0: off)")->default_val(o->sp.min_p);
  sub->add_option("--repeat-penalty", o->sp.repeat_penalty, "repeat penalty (1: off)")->default_val(o->sp.repeat_penalty);
  sub->add_option("--repeat-last-n", o->sp.repeat_last_n, "tokens the penalties look back")->default_val(o->sp.repeat_last_n);
  sub->add_option("--presence-penalty", o->sp.presence_penalty, "presence penalty")->default_val(0.0f);
  sub->add_option("--frequency-penalty", o->sp.frequency_penalty, "frequency penalty")->default_val(0.0f);
  sub->add_option("-s,--seed", o->seed, "random seed (-1: from the clock)");
  sub->add_option("-t,--threads", o->threads, "compute threads (default: all cores)");
  auto* ctx_opt = sub->add_option("-c,--ctx-size", o->n_ctx, "context size n_ctx, tokens (default: 4096 or the model's training context if smaller)")
                      ->check(CLI::PositiveNumber);
  sub->add_option("--ubatch-size", o->n_ubatch, "micro-batch size n_ubatch")->check(CLI::PositiveNumber);
  sub->add_flag("--no-bos", o->no_bos, "do not add the BOS token");
  sub->add_flag("--ignore-eos", o->ignore_eos, "keep generating past end-of-text tokens");
  add_command(app, sub, [o, ctx_opt] {
    o->sp.seed = o->seed < 0 ? static_cast<uint64_t>(std::time(nullptr)) : static_cast<uint64_t>(o->seed);
    sample::Sampler sampler(o->sp);  // validates the settings before the model loads
    const double t_load0 = now_seconds();
    auto model = o->model.empty() ? model::Model::load_default() : model::Model::load(o->model);
    if (ctx_opt->count() == 0) o->n_ctx = std::min<uint32_t>(4096, model->hparams().n_ctx_train);
    const tokenizer::Tokenizer& tok = model->tokenizer();
    const std::vector<int32_t> prompt = tok.encode(o->prompt, !o->no_bos, false);
    if (prompt.empty()) throw Error("the prompt has no tokens");
    if (prompt.size() >= o->n_ctx)
      throw Error("the prompt is " + std::to_string(prompt.size()) + " tokens long, which does not fit in the context of " +
                  std::to_string(o->n_ctx) + " tokens (raise -c)");
    runtime::ContextParams cp;
    cp.n_ctx = o->n_ctx;
    cp.n_ubatch = o->n_ubatch;
    cp.n_threads = o->threads;
    runtime::Context ctx(model, cp);
    const double t_load = now_seconds() - t_load0;

    g_interrupted = false;
    std::signal(SIGINT, on_sigint);
    tokenizer::StreamDecoder stream(tok);
    std::fputs(o->prompt.c_str(), stdout);  // the prompt as given, then the continuation
    std::fflush(stdout);

    const double t0 = now_seconds();
    runtime::Batch batch;
    for (size_t i = 0; i < prompt.size(); ++i)
      batch.add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
    ctx.decode(batch);
    for (int32_t id : prompt) sampler.accept(id);
    const double t_prompt = now_seconds() - t0;
    std::vector<float> logits(ctx.logits(prompt.size() - 1).begin(), ctx.logits(prompt.size() - 1).end());

    int n_gen = 0;
    int32_t pos = static_cast<int32_t>(prompt.size());
    const char* stop_reason = "n_predict reached";
    const double t1 = now_seconds();
    while (o->n_predict < 0 || n_gen < o->n_predict) {
      if (g_interrupted) {
        stop_reason = "interrupted";
        break;
      }
      const int32_t id = sampler.sample(logits);
      if (tok.is_eog(id) && !o->ignore_eos) {
        stop_reason = "end of text";
        break;
      }
      std::fputs(stream.push(id).c_str(), stdout);
      std::fflush(stdout);
      ++n_gen;
      if (static_cast<uint32_t>(pos) >= ctx.n_ctx()) {
        stop_reason = "context full";
        break;
      }
      if (o->n_predict >= 0 && n_gen >= o->n_predict) break;
      batch.clear();
      batch.add(id, pos++, 0, true);
      ctx.decode(batch);
      const auto row = ctx.logits(0);
      logits.assign(row.begin(), row.end());
    }
    const double t_gen = now_seconds() - t1;
    std::fputs(stream.flush().c_str(), stdout);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    std::signal(SIGINT, SIG_DFL);

    std::fprintf(stderr, "\n");
    std::fprintf(stderr, "load:       %8.2f ms\n", t_load * 1e3);
    std::fprintf(stderr, "prompt:     %5zu tokens in %8.2f ms = %8.2f tokens/s\n", prompt.size(), t_prompt * 1e3,
                 static_cast<double>(prompt.size()) / t_prompt);
    std::fprintf(stderr, "generation: %5d tokens in %8.2f ms = %8.2f tokens/s (%s)\n", n_gen, t_gen * 1e3,
                 n_gen > 0 ? n_gen / t_gen : 0.0, stop_reason);
    std::fprintf(stderr, "seed:       %llu, threads: %d, n_ctx: %u\n", static_cast<unsigned long long>(o->sp.seed),
                 ctx.pool().n_threads(), ctx.n_ctx());
    return g_interrupted ? 130 : 0;
  });
}

}  // namespace hearth::app
