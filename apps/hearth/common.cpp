#include "common.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "hearth/error.h"
#include "runtime/kv_cache.h"

namespace hearth::app {

std::vector<std::string> expand_short_flags(int argc, const char* const* argv) {
  static const std::pair<const char*, const char*> kFlags[] = {
      {"-ctk", "--cache-type-k"}, {"-ctv", "--cache-type-v"}, {"-fa", "--flash-attn"}};
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i > 0) {
      for (const auto& [shrt, lng] : kFlags) {
        const std::string s = shrt;
        if (a == s) a = lng;
        else if (a.rfind(s + "=", 0) == 0) a = std::string(lng) + a.substr(s.size());
      }
    }
    out.push_back(std::move(a));
  }
  return out;
}

void CacheOptions::add_to(CLI::App* sub, bool with_flash) {
  sub->add_option("--cache-type-k", type_k, "KV cache type of K: f16, bf16, q8_0, q4_0 (also -ctk)")
      ->default_val("f16");
  sub->add_option("--cache-type-v", type_v, "KV cache type of V: f16, bf16, q8_0, q4_0 (also -ctv)")
      ->default_val("f16");
  if (with_flash)
    sub->add_option("--flash-attn", flash_attn,
                    "flash attention: on, off or auto (auto: for every cache type but f16; also -fa)")
        ->default_val("auto");
}

void CacheOptions::apply(runtime::ContextParams& params) const {
  try {
    params.type_k = runtime::parse_kv_cache_type(type_k);
  } catch (const Error& e) {
    throw Error(std::string("--cache-type-k: ") + e.what());
  }
  try {
    params.type_v = runtime::parse_kv_cache_type(type_v);
  } catch (const Error& e) {
    throw Error(std::string("--cache-type-v: ") + e.what());
  }
  if (flash_attn == "on" || flash_attn == "1" || flash_attn == "true") {
    params.flash_attn = true;
  } else if (flash_attn == "off" || flash_attn == "0" || flash_attn == "false") {
    if (params.type_k != quant::GgmlType::F16 || params.type_v != quant::GgmlType::F16)
      throw Error("--flash-attn off: the cache types " + runtime::kv_cache_type_name(params.type_k) + "/" +
                  runtime::kv_cache_type_name(params.type_v) + " need flash attention (only f16 has another kernel)");
    params.flash_attn = false;
  } else if (flash_attn == "auto") {
    params.flash_attn = false;  // f16 keeps the non-flash kernel; the other types always use flash attention
  } else {
    throw Error("--flash-attn: unknown value '" + flash_attn + "' (on, off or auto)");
  }
}

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
