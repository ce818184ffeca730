// hearth synth NAME -o FILE [--type T] [--seed S] [--layers N] [--list]: random-weight models of real
// shapes, optionally only their first N layers (to benchmark a few layers of a large model).
#include <unistd.h>

#include <cstdio>

#include "commands.h"
#include "common.h"
#include "model/synth.h"

namespace hearth::app {

void register_synth(CLI::App& app) {
  auto* sub = app.add_subcommand("synth", "Write a random-weight GGUF model with the shape of a real one");
  struct Opts {
    std::string name, out, type = "F16";
    uint64_t seed = 1;
    int threads = 0;
    uint32_t layers = 0;
    bool list = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("name", o->name, "model shape (see --list)");
  sub->add_option("-o,--output", o->out, "GGUF file to write");
  sub->add_option("--type", o->type, "type of the weight matrices: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K")
      ->default_val("F16");
  sub->add_option("--seed", o->seed, "random seed")->default_val(1);
  sub->add_option("-t,--threads", o->threads, "threads (default: all cores)");
  sub->add_option("--layers", o->layers, "write only the first N layers of the shape (default: all)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--list", o->list, "list the known shapes");
  add_command(app, sub, [o] {
    if (o->list || o->name.empty()) {
      std::printf("%-16s %-8s %6s %6s %5s %5s %6s %7s %12s %8s  %s\n", "name", "arch", "layers", "n_embd", "heads",
                  "kv", "hd", "n_ff", "experts", "vocab", "params");
      for (const model::SynthShape& s : model::synth_shapes()) {
        const std::string experts =
            s.n_expert > 0 ? std::to_string(s.n_expert_used) + "/" + std::to_string(s.n_expert) + " x" +
                                 std::to_string(s.n_ff_exp)
                           : "-";
        std::string params = format_count(s.n_params());
        if (s.n_expert > 0) params += " (" + format_count(s.n_active_params()) + " active)";
        std::printf("%-16s %-8s %6u %6u %5u %5u %6u %7u %12s %8u  %s\n", s.name.c_str(), s.arch.c_str(), s.n_layer,
                    s.n_embd, s.n_head, s.n_head_kv, s.head_dim, s.n_ff, experts.c_str(), s.n_vocab, params.c_str());
      }
      if (!o->list) throw Error("give a shape name and -o FILE");
      return 0;
    }
    if (o->out.empty()) throw Error("give the output file with -o FILE");
    const auto type = quant::type_from_name(o->type);
    if (!type) throw Error("unknown tensor type '" + o->type + "'");
    const model::SynthShape& full = model::find_synth_shape(o->name);
    const model::SynthShape shape = o->layers > 0 ? model::first_layers(full, o->layers) : full;
    model::SynthOptions opt;
    opt.type = *type;
    opt.seed = o->seed;
    opt.n_threads = o->threads;
    const bool tty = isatty(fileno(stderr));
    opt.progress = [tty](uint64_t done, uint64_t total) {
      if (tty) std::fprintf(stderr, "\rwriting: %5.1f%% of %s", 100.0 * static_cast<double>(done) / static_cast<double>(total),
                            format_bytes(total).c_str());
    };
    const double t0 = now_seconds();
    model::synthesize(shape, opt, o->out);
    std::fprintf(stderr, "%swrote %s: %s, %s parameters, %s, in %.1f s\n", tty ? "\r" : "", o->out.c_str(),
                 shape.name.c_str(), format_count(shape.n_params()).c_str(), quant::traits(*type).name,
                 now_seconds() - t0);
    return 0;
  });
}

}  // namespace hearth::app
