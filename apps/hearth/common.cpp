#include "common.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "hearth/error.h"

namespace hearth::app {

namespace {

// `value` divided by `base` until below it, with the matching unit: "6.59 MiB", "3.41 M".
std::string format_scaled(double value, double base, const char* const units[5]) {
  int u = 0;
  while (value >= base && u < 4) {
    value /= base;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.2f%s", value, units[u]);
  return buf;
}

}  // namespace

std::string format_bytes(uint64_t bytes) {
  static const char* const units[] = {" B", " KiB", " MiB", " GiB", " TiB"};
  return format_scaled(static_cast<double>(bytes), 1024.0, units);
}

std::string format_count(uint64_t n) {
  static const char* const units[] = {"", " K", " M", " B", " T"};
  return format_scaled(static_cast<double>(n), 1000.0, units);
}

std::vector<int32_t> parse_token_ids(const std::string& text) {
  std::vector<int32_t> out;
  std::string item;
  auto flush = [&]() {
    if (item.empty()) return;
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (*end != '\0' || errno != 0 || v < INT32_MIN || v > INT32_MAX)
      throw Error("'" + item + "' is not a token id");
    out.push_back(static_cast<int32_t>(v));
    item.clear();
  };
  for (char c : text) {
    if (c == ' ' || c == ',' || c == '\t' || c == '\n' || c == '\r' || c == '[' || c == ']') {
      flush();
    } else {
      item += c;
    }
  }
  flush();
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path + ": cannot write: " + std::strerror(errno));
  out << text;
  out.flush();
  if (!out) throw Error(path + ": cannot write: " + std::strerror(errno));
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace hearth::app
