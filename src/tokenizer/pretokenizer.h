// BPE pre-tokenizers: the table of `tokenizer.ggml.pre` names, flags and regex lists, and the
// PCRE2 engine that splits text into words with them.
// Source: ../shared/docs/formats.md §5.7 (regex lists and split semantics), §5.8 (PCRE2 notes).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::tokenizer {

/// Flags a `tokenizer.ggml.pre` value sets (formats.md §5.7, in brackets there).
namespace pre_flag {
inline constexpr uint32_t CLEAN_SPACES_OFF = 1;
inline constexpr uint32_t IGNORE_MERGES = 2;
inline constexpr uint32_t ADD_BOS = 4;
inline constexpr uint32_t ADD_SEP = 8;
inline constexpr uint32_t ESCAPE_WHITESPACES = 16;
inline constexpr uint32_t RAW_UTF8 = 32;  ///< no GPT-2 byte-to-unicode mapping
inline constexpr uint32_t NO_BOS = 64;    ///< the pre-type clears the default BOS id (CHATGLM4)
}  // namespace pre_flag

/// One row of the table of formats.md §5.7: the pre-type, the names that select it with these
/// flags, and its regex list (llama.cpp spellings, applied in order).
struct PreTokenizerSpec {
  std::string_view type;                     ///< "LLAMA3", "GPT2", ...
  std::span<const std::string_view> names;   ///< `tokenizer.ggml.pre` values
  uint32_t flags = 0;                        ///< pre_flag bits
  std::span<const std::string_view> regexes;
};

/// Every row of the table.
std::span<const PreTokenizerSpec> pre_tokenizer_table();
/// The row for a `tokenizer.ggml.pre` value, or nullptr if the name is unknown.
const PreTokenizerSpec* find_pre_tokenizer(std::string_view name);
/// The GEMMA4 row (used for every `tokenizer.ggml.model` = `gemma4` vocabulary).
const PreTokenizerSpec& gemma4_pre_tokenizer();

/// Rewrites one regex of the table for PCRE2 (formats.md §5.8): `\s`/`\S` become explicit
/// White_Space classes and `\d`/`\D` become `[0-9]`/`[^0-9]` (llama.cpp's meanings),
/// `\p{Lu}`…`\p{Lo}` become `\p{L}` (llama.cpp reads them as any letter), and non-ASCII
/// White_Space code points are removed from literal class members (llama.cpp reads such
/// characters only as whitespace). Some regexes are first replaced, by their exact text, with
/// substitutes that give the same words: the ones llama.cpp runs through hand-written splitters
/// (`\p{Han}+` = the Kimi-K2 splitter, `\p{AFMoE_digits}`) and linear-time forms of regexes
/// that would be quadratic on long digit runs (TINY_AYA, SUPERBPE) or need deep JIT stacks
/// (EXAONE_MOE). Throws Error for `\S`/`\D` inside a class (not expressible, not used).
std::string translate_regex(std::string_view pattern);

/// A compiled regex list. split() is const and thread-safe (match data and the JIT stack are
/// per thread).
class PreTokenizer {
 public:
  /// Translates and compiles every regex (with the JIT where available). Throws Error naming
  /// the regex if PCRE2 rejects it.
  explicit PreTokenizer(std::span<const std::string_view> regexes);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  /// Splits `text` (valid UTF-8) into words by the semantics of formats.md §5.7: each regex runs
  /// on every current chunk as its own subject; matches and the non-empty gaps between them
  /// become the new chunks; empty matches only split. Appends views into `text` to `words`.
  /// Throws Error if PCRE2 fails (e.g. its JIT stack limit on pathological input).
  void split(std::string_view text, std::vector<std::string_view>& words) const;

 private:
  struct Regex;
  std::vector<std::unique_ptr<Regex>> regexes_;
};

}  // namespace hearth::tokenizer
