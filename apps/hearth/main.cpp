// hearth: the command-line program. One file per command; this one dispatches.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "commands.h"
#include "common.h"
#include "hearth/error.h"

int main(int argc, char** argv) {
  CLI::App app{"hearth: run open-weight language models from GGUF files"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hearth 0.1.0");
  hearth::app::register_commands(app);
  // llama.cpp's -ctk, -ctv, -fa as their long names (CLI11 cannot declare them).
  std::vector<std::string> args = hearth::app::expand_short_flags(argc, argv);
  std::vector<char*> arg_ptrs;
  for (std::string& a : args) arg_ptrs.push_back(a.data());
  try {
    app.parse(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return hearth::app::run_selected(app);
  } catch (const hearth::Error& e) {
    std::fprintf(stderr, "hearth: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "hearth: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hearth: internal error: %s\n", e.what());
    return 2;
  }
}
