// The hearth commands: each registers its CLI11 subcommand and runs it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "hearth/error.h"

namespace hearth::app {

/// Registers every subcommand on `app`.
void register_commands(CLI::App& app);

/// Runs the subcommand the user chose; returns the process exit code. Throws hearth::Error
/// for bad input, which main() prints as one line.
int run_selected(CLI::App& app);

/// Adds a subcommand whose action is `run` (called after parsing).
void add_command(CLI::App& app, CLI::App* sub, std::function<int()> run);

// One per file.
void register_run(CLI::App& app);
void register_show(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_eval(CLI::App& app);
void register_synth(CLI::App& app);
void register_perplexity(CLI::App& app);
void register_bench(CLI::App& app);
void register_quantize(CLI::App& app);
void register_imatrix(CLI::App& app);
void register_template(CLI::App& app);
void register_serve(CLI::App& app);
void register_fit(CLI::App& app);

}  // namespace hearth::app
