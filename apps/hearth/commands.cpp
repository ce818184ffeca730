#include "commands.h"

#include <map>

namespace hearth::app {
namespace {
std::map<const CLI::App*, std::function<int()>>& actions() {
  static std::map<const CLI::App*, std::function<int()>> a;
  return a;
}
}  // namespace

void add_command(CLI::App& app, CLI::App* sub, std::function<int()> run) { actions()[sub] = std::move(run); }

void register_commands(CLI::App& app) {
  register_run(app);
  register_show(app);
  register_tokenize(app);
  register_eval(app);
  register_synth(app);
  register_perplexity(app);
  register_bench(app);
  register_quantize(app);
  register_imatrix(app);
  register_template(app);
  register_serve(app);
  register_fit(app);
}

int run_selected(CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands())
    if (auto it = actions().find(sub); it != actions().end()) return it->second();
  return 1;
}

}  // namespace hearth::app
