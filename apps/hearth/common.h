// Helpers shared by the command files.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/context.h"

namespace hearth::app {

/// The command line with llama.cpp's two-letter flags, which CLI11 cannot declare (one dash,
/// several letters), spelled as hearth's long names: -ctk → --cache-type-k, -ctv →
/// --cache-type-v, -fa → --flash-attn (also as "-ctk=q8_0"). Other arguments are unchanged;
/// argv[0] is kept. For CLI::App::parse.
std::vector<std::string> expand_short_flags(int argc, const char* const* argv);

/// The KV cache options of run, perplexity and eval (llama.cpp's common/arg.cpp names):
/// --cache-type-k / -ctk and --cache-type-v / -ctv (f16, bf16, q8_0, q4_0), --flash-attn / -fa
/// (on, off or auto; auto: flash attention where the cache type needs it, i.e. for every type
/// but f16).
struct CacheOptions {
  std::string type_k = "f16";
  std::string type_v = "f16";
  std::string flash_attn = "auto";

  /// Declares the three options on `sub` (flash attention only when `with_flash`).
  void add_to(CLI::App* sub, bool with_flash = true);
  /// Sets params.type_k, type_v and flash_attn. Throws Error naming the flag, the value and
  /// the valid values.
  void apply(runtime::ContextParams& params) const;
};

/// "6.59 MiB", "1.20 GiB": bytes in binary units.
std::string format_bytes(uint64_t bytes);

/// "3.41 M", "1.72 B": a count in decimal units.
std::string format_count(uint64_t n);

/// Parses space- or comma-separated integers ("1 550 1047" or "[1, 550]"). Throws Error
/// naming the first bad item.
std::vector<int32_t> parse_token_ids(const std::string& text);

/// The whole content of a file; throws Error naming the path.
std::string read_file(const std::string& path);

/// Writes `text` to a file (replacing it); throws Error naming the path.
void write_file(const std::string& path, const std::string& text);

/// Seconds since an arbitrary fixed point (steady clock).
double now_seconds();

}  // namespace hearth::app
