// hearth imatrix MODEL.gguf TEXTFILE -o FILE [-c N_CTX] [--chunks N] [-t THREADS]
// llama-imatrix: evaluates the text in windows of n_ctx tokens (BOS first, each from an empty
// cache) and writes the importance matrix of every blk.* weight (formats.md §3.7).
#include <algorithm>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "common.h"
#include "model/model.h"
#include "quant/imatrix.h"
#include "runtime/context.h"

namespace hearth::app {

void register_imatrix(CLI::App& app) {
  auto* sub = app.add_subcommand("imatrix", "Compute an importance matrix from calibration text (llama-imatrix)");
  struct Opts {
    std::string model, file, out;
    uint32_t n_ctx = 512;
    int chunks = 0;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("model", o->model, "GGUF model file")->required();
  sub->add_option("file", o->file, "calibration text file")->required();
  sub->add_option("-o,--output", o->out, "imatrix file to write (GGUF)")->required();
  auto* ctx_opt = sub->add_option("-c,--ctx-size", o->n_ctx,
                                  "window n_ctx, tokens (default: 512 or the model's training context if smaller)")
                      ->check(CLI::Range(2u, 1u << 20));
  sub->add_option("--chunks", o->chunks, "evaluate at most N windows (0: all)")->check(CLI::NonNegativeNumber);
  sub->add_option("-t,--threads", o->threads, "compute threads (default: all cores)");
  add_command(app, sub, [o, ctx_opt] {
    const std::string text = read_file(o->file);
    auto model = model::Model::load(o->model);
    const uint32_t n_ctx_train = model->hparams().n_ctx_train;
    if (ctx_opt->count() == 0 && n_ctx_train > 1) o->n_ctx = std::min(o->n_ctx, n_ctx_train);
    const uint32_t n_ctx = o->n_ctx;
    const tokenizer::Tokenizer& tok = model->tokenizer();
    const double t0 = now_seconds();
    const std::vector<int32_t> tokens = tok.encode(text, /*add_special=*/true, /*parse_special=*/false);
    if (tokens.size() < n_ctx)
      throw Error(o->file + " has " + std::to_string(tokens.size()) + " tokens; an imatrix with n_ctx = " +
                  std::to_string(n_ctx) + " needs at least " + std::to_string(n_ctx));
    int n_chunks = static_cast<int>(tokens.size() / n_ctx);
    if (o->chunks > 0) n_chunks = std::min(n_chunks, o->chunks);
    if (n_ctx < static_cast<uint32_t>(quant::Imatrix::kMinRows))
      std::fprintf(stderr, "warning: n_ctx %u is below %lld rows; nothing will be collected\n", n_ctx,
                   static_cast<long long>(quant::Imatrix::kMinRows));

    runtime::ContextParams cp;
    cp.n_ctx = n_ctx;
    cp.n_ubatch = n_ctx;  // one window is one micro-batch, as llama-imatrix (n_batch = n_ctx)
    cp.n_threads = o->threads;
    runtime::Context ctx(model, cp);
    quant::Imatrix im;
    im.datasets = {o->file};
    im.chunk_size = n_ctx;
    ctx.set_matmul_observer([&im](const std::string& name, const float* x, int64_t n_rows, int64_t n_in) {
      if (quant::Imatrix::wants(name, n_rows)) im.accumulate(name, x, n_rows, n_in);
    });
    // Expert products (MUL_MAT_ID) are collected whatever their row count, as llama-imatrix does.
    ctx.set_matmul_id_observer([&im](const std::string& name, int64_t expert, int64_t n_expert, const float* x,
                                     int64_t n_rows, int64_t n_in) {
      im.accumulate_expert(name, expert, n_expert, x, n_rows, n_in);
    });
    const std::optional<int32_t> bos = tok.add_bos() ? tok.bos() : std::nullopt;
    std::fprintf(stderr, "imatrix: %zu tokens, %d windows of n_ctx = %u\n", tokens.size(), n_chunks, n_ctx);
    runtime::Batch batch;
    for (int c = 0; c < n_chunks; ++c) {
      const size_t begin = static_cast<size_t>(c) * n_ctx;
      batch.clear();
      for (uint32_t i = 0; i < n_ctx; ++i) {
        int32_t t = tokens[begin + i];
        if (i == 0 && bos) t = *bos;
        batch.add(t, static_cast<int32_t>(i), 0, i + 1 == n_ctx);
      }
      ctx.kv_cache().clear();
      ctx.decode(batch);
      im.chunk_count = static_cast<uint32_t>(c + 1);
      const double dt = now_seconds() - t0;
      std::fprintf(stderr, "[%d/%d] %.1f s, %.1f tokens/s\n", c + 1, n_chunks, dt,
                   static_cast<double>(c + 1) * n_ctx / dt);
    }
    ctx.set_matmul_observer(nullptr);
    ctx.set_matmul_id_observer(nullptr);
    im.write(o->out);
    std::printf("wrote %s: %zu matrices, %u windows of %u tokens\n", o->out.c_str(), im.entries.size(),
                im.chunk_count, im.chunk_size);
    return 0;
  });
}

}  // namespace hearth::app
