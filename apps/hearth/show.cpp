#include "commands.h"

namespace hearth::app {
void register_show(CLI::App& app) {
  auto* sub = app.add_subcommand("show", "Show a model's architecture, tensors and tokenizer");
  add_command(app, sub, [] { return 0; });
}
}  // namespace hearth::app
