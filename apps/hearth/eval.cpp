// hearth eval MODEL --tokens "ID ..." [--sequential] --dump-logits FILE [--greedy N]
//             [-ctk T] [-ctv T] [-fa on|off|auto]
// The conformance interface: raw little-endian float32 logits, row-major [n_tokens][n_vocab].
#include <cstdio>
#include <fstream>

#include "commands.h"
#include "common.h"
#include "model/model.h"
#include "runtime/eval.h"

namespace hearth::app {

void register_eval(CLI::App& app) {
  auto* sub = app.add_subcommand("eval", "Evaluate token ids and dump the logits of every position");
  struct Opts {
    std::string model, tokens, dump;
    bool sequential = false;
    int greedy = 0;
    int threads = 0;
    uint32_t ubatch = 512;
    CacheOptions cache;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("model", o->model, "GGUF model file")->required();
  sub->add_option("--tokens", o->tokens, "token ids, space-separated")->required();
  sub->add_flag("--sequential", o->sequential, "evaluate one token per decode call");
  sub->add_option("--dump-logits", o->dump, "write float32 logits [n_tokens][n_vocab] here")->required();
  sub->add_option("--greedy", o->greedy, "then print N greedily generated token ids")->check(CLI::NonNegativeNumber);
  sub->add_option("-t,--threads", o->threads, "compute threads (default: all cores)");
  sub->add_option("--ubatch-size", o->ubatch, "micro-batch size n_ubatch")->check(CLI::PositiveNumber);
  o->cache.add_to(sub);
  add_command(app, sub, [o] {
    runtime::ContextParams cp;
    o->cache.apply(cp);
    const std::vector<int32_t> tokens = parse_token_ids(o->tokens);
    if (tokens.empty()) throw Error("--tokens is empty");
    auto model = model::Model::load(o->model);
    cp.n_ctx = static_cast<uint32_t>(tokens.size()) + static_cast<uint32_t>(o->greedy);
    cp.n_ubatch = o->ubatch;
    cp.n_threads = o->threads;
    runtime::Context ctx(model, cp);
    std::ofstream out(o->dump, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(o->dump + ": cannot open for writing");
    // Rows are written as they are computed: thousands of positions times a 150k vocabulary
    // would not fit in memory at once.
    std::vector<float> last;
    runtime::evaluate(ctx, tokens, o->sequential, [&](size_t i, std::span<const float> row) {
      out.write(reinterpret_cast<const char*>(row.data()), static_cast<std::streamsize>(row.size() * sizeof(float)));
      if (i + 1 == tokens.size()) last.assign(row.begin(), row.end());
    });
    out.close();
    if (!out) throw Error(o->dump + ": write failed");
    if (o->greedy > 0) {
      const std::vector<int32_t> gen =
          runtime::greedy(ctx, last, static_cast<int32_t>(tokens.size()), o->greedy);
      for (size_t i = 0; i < gen.size(); ++i) std::printf("%s%d", i ? " " : "", gen[i]);
      std::printf("\n");
    }
    return 0;
  });
}

}  // namespace hearth::app
