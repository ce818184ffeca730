// Small pieces of `hearth serve` that know no HTTP library: stop strings, model names, durations,
// base64, ids, timestamps (api.md sections 0.3, 0.6, 1.1.7, 1.4, 2.1).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "hearth/error.h"

namespace hearth::server {

/// Finds stop strings in generated text that arrives in pieces (api.md 1.1.7 "stop strings must be
/// held back"). feed() returns the text that is certainly before any stop string: a suffix that
/// could be the start of a stop string is held back until later text decides it; once a stop
/// string is complete, the text up to it is returned and everything after is dropped.
class StopMatcher {
 public:
  /// Empty strings in `stops` are ignored.
  explicit StopMatcher(std::vector<std::string> stops = {});
  /// Adds generated text; returns the text that is now safe to emit.
  std::string feed(std::string_view text);
  /// The end of the generation: returns what was held back ("" after a match).
  std::string flush();
  /// A stop string was found.
  bool matched() const { return matched_ >= 0; }
  /// The stop string found ("" if none).
  const std::string& matched_string() const;

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  int matched_ = -1;
};

/// Ollama's canonical short form of a model name (api.md 2.1): lower-cased, the default host
/// (registry.ollama.ai) and namespace (library) dropped, ":latest" added when no tag is given,
/// an "@digest" suffix dropped. "Qwen3" → "qwen3:latest", "library/llama3.2:3b" → "llama3.2:3b".
std::string normalize_model_name(std::string_view name);

/// The name a GGUF file is served under: its file stem, lower-cased, with ":latest"
/// ("/m/Qwen3-8B-Q4_K_M.gguf" → "qwen3-8b-q4_k_m:latest").
std::string model_name_from_path(const std::string& path);

/// A keep_alive value (api.md 2.1): a number of seconds, or a Go duration string ("5m", "1h30m",
/// "300ms", "1.5s"), or "-1"/"0" without a unit. Returns milliseconds; negative means forever.
/// Throws Error naming the value for anything else.
int64_t parse_keep_alive(const nlohmann::json& value);

/// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);
/// The inverse of base64_encode; throws Error for characters outside the alphabet.
std::string base64_decode(std::string_view text);

/// Compares two strings in time that depends only on their lengths (API keys, api.md 0.3).
bool constant_time_equal(std::string_view a, std::string_view b);

/// prefix + n random letters and digits ("chatcmpl-...", "call_...").
std::string random_id(const std::string& prefix, size_t n);

/// RFC 3339 UTC time with nanoseconds ("2026-01-01T12:00:00.123456789Z", api.md 2.1).
std::string rfc3339(std::chrono::system_clock::time_point t);

/// Hex SHA-256 of `data` (FIPS 180-4).
std::string sha256_hex(std::string_view data);

/// The UTF-8 bytes of a string as a JSON array of numbers (logprobs `bytes`).
nlohmann::json byte_array(std::string_view s);

/// Whether `s` is valid UTF-8.
bool valid_utf8(std::string_view s);

}  // namespace hearth::server
