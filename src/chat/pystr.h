// Python `str` semantics on UTF-8 strings, as the Jinja interpreter needs them: code-point length
// and slicing, whitespace (str.isspace), case mapping, strip/split/replace/find, repr() quoting,
// float repr() and json.dumps string escapes.
// Source: the Python 3 language reference (str methods, repr, float.__repr__) and the json module.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::chat::py {

/// Decodes the code point starting at byte `pos` of `s`. Lenient: a byte that does not start a
/// valid UTF-8 sequence is one unit, U+DC00 + the byte (Python's surrogateescape), which
/// append_cp() writes back as that byte. Returns the byte length (1-4), or 0 when `pos` is at or
/// past the end.
size_t next_cp(std::string_view s, size_t pos, uint32_t& cp);

/// Appends the UTF-8 encoding of `cp` (U+DC80..U+DCFF: the raw byte they escape).
void append_cp(std::string& out, uint32_t cp);

/// True if every byte is below 0x80 (then byte offsets are code-point offsets).
bool is_ascii(std::string_view s);

/// Number of code points in `s` (len() of the Python string).
size_t length(std::string_view s);

/// Byte offset of every code point of `s`, followed by s.size() (so the result has length()+1
/// entries).
std::vector<size_t> cp_offsets(std::string_view s);

/// str.isspace() of one code point (the Unicode White_Space set Python uses, including the
/// 0x1C-0x1F separators).
bool is_space(uint32_t cp);
/// str.isprintable() of one code point, approximated without the full Unicode tables: control,
/// format, separator (other than ' '), surrogate and private-use code points are not printable.
bool is_printable(uint32_t cp);
/// `\w` of Python's re module for one code point (letters, digits, underscore), approximated:
/// ASCII alphanumerics and '_', and non-ASCII code points that are not whitespace or punctuation.
bool is_word(uint32_t cp);

/// Simple case mappings (one code point to one) for Latin (ASCII, Latin-1, Extended-A), Greek,
/// Cyrillic, Armenian and fullwidth Latin; other code points map to themselves.
uint32_t to_upper(uint32_t cp);
uint32_t to_lower(uint32_t cp);
/// True for code points with case (an upper- or lowercase letter in the ranges above).
bool is_cased(uint32_t cp);

/// str.upper() / str.lower() ('ß' upper-cases to "SS", 'İ' lower-cases to "i̇").
std::string upper(std::string_view s);
std::string lower(std::string_view s);
/// str.title(): the first cased character after an uncased one is upper-cased, the rest lowered.
std::string title(std::string_view s);
/// str.capitalize(): first character upper-cased, the rest lowered.
std::string capitalize(std::string_view s);
/// str.swapcase().
std::string swapcase(std::string_view s);

/// str.strip/lstrip/rstrip: without `chars` removes whitespace (is_space), else any code point
/// of `chars`.
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);

/// str.split(sep, maxsplit) and str.rsplit: without `sep`, splits on runs of whitespace and drops
/// empty parts. Throws hearth::Error for an empty separator ("empty separator").
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);

/// str.splitlines(keepends): \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, U+2028 and U+2029 end lines.
std::vector<std::string> splitlines(std::string_view s, bool keepends);

/// str.replace(old, new, count); count < 0 replaces every occurrence. An empty `old` inserts
/// `neu` between code points (and at both ends), as Python does.
std::string replace(std::string_view s, std::string_view old, std::string_view neu, int64_t count);

/// str.find / str.rfind: code-point index of the first / last occurrence of `sub` within the
/// code-point range [start, end) (Python slice rules for negative and missing bounds), or -1.
int64_t find(std::string_view s, std::string_view sub, std::optional<int64_t> start, std::optional<int64_t> end,
             bool reverse);
/// str.count(sub): non-overlapping occurrences (len+1 for an empty `sub`).
int64_t count(std::string_view s, std::string_view sub);

/// repr() of a string: single quotes unless the text has ' and no ", backslash escapes for the
/// quote, '\\', \t \n \r and non-printable code points (\xNN, \uNNNN, \UNNNNNNNN).
std::string repr(std::string_view s);

/// float.__repr__: the shortest text that reads back to `v`, fixed notation for exponents in
/// [-4, 16) with at least one fractional digit ("1.0"), else "1e+16" style; "nan", "inf", "-inf".
std::string float_repr(double v);

/// A JSON string literal as json.dumps writes it: \" \\ \n \r \t \b \f, other C0 controls as
/// \u00XX; with `ensure_ascii`, every non-ASCII code point (and DEL) as \uXXXX (surrogate pairs
/// above U+FFFF), else kept as UTF-8.
std::string json_quote(std::string_view s, bool ensure_ascii);

}  // namespace hearth::chat::py
