// UTF-8 helpers for the tokenizers: character lengths, validation, the GPT-2 byte-to-unicode
// table and the White_Space set used by the pre-tokenizers.
// Source: ../shared/docs/formats.md §5.5 (character split), §5.6 (byte table), §5.7 (\s set).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace hearth::tokenizer::unicode {

/// Length of the UTF-8 sequence announced by a lead byte, from its high nibble: 1 for ASCII and
/// for stray continuation bytes, 2 for 0xC_/0xD_, 3 for 0xE_, 4 for 0xF_ (the character split
/// of formats.md §5.5; a truncated tail is cut to what is left).
inline size_t sequence_length(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

/// Appends the UTF-8 encoding of `cp` (≤ U+10FFFF).
void append_utf8(std::string& out, uint32_t cp);

/// Decodes one strictly valid UTF-8 sequence at `pos` (no overlongs, surrogates or values above
/// U+10FFFF). Returns its length (1–4) and sets `cp`, or returns 0 if the bytes there are invalid.
size_t decode_utf8(std::string_view text, size_t pos, uint32_t& cp);

/// True if `text` is strictly valid UTF-8.
bool is_valid_utf8(std::string_view text);

/// `text` with every byte that does not start a valid sequence replaced by U+FFFD (one
/// replacement per bad byte, as llama.cpp's code-point reader does).
std::string replace_invalid_utf8(std::string_view text);

/// Number of bytes at the end of `text` that form the beginning of a valid multi-byte sequence
/// still waiting for continuation bytes (0–3). Used by streaming detokenization (§5.10).
size_t incomplete_tail(std::string_view text);

/// The GPT-2 byte-to-unicode table (formats.md §5.6 step 3): the UTF-8 text of the code point
/// byte `b` maps to.
const std::string& byte_to_unicode(uint8_t b);

/// Inverse of the table: the byte code point `cp` stands for, or -1.
int unicode_to_byte(uint32_t cp);

/// True for the White_Space code points that `\s` means in the pre-tokenizers (§5.7).
bool is_whitespace(uint32_t cp);

/// The White_Space set as the body of a PCRE2 character class (without brackets).
std::string_view whitespace_class_body();

}  // namespace hearth::tokenizer::unicode
