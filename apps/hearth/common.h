// Helpers shared by the command files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hearth::app {

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
