#include "chat/pystr.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "hearth/error.h"
#include "tokenizer/unicode.h"

namespace hearth::chat::py {

size_t next_cp(std::string_view s, size_t pos, uint32_t& cp) {
  if (pos >= s.size()) return 0;
  const uint8_t b = static_cast<uint8_t>(s[pos]);
  if (b < 0x80) {
    cp = b;
    return 1;
  }
  const size_t n = tokenizer::unicode::decode_utf8(s, pos, cp);
  if (n == 0) {
    cp = 0xDC00 + b;  // Python's surrogateescape: the byte survives a round trip
    return 1;
  }
  return n;
}

void append_cp(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
    return;
  }
  if (cp >= 0xDC80 && cp <= 0xDCFF) {  // an escaped invalid byte
    out.push_back(static_cast<char>(cp - 0xDC00));
    return;
  }
  tokenizer::unicode::append_utf8(out, cp);
}

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<uint8_t>(c) >= 0x80) return false;
  return true;
}

size_t length(std::string_view s) {
  if (is_ascii(s)) return s.size();
  size_t n = 0;
  uint32_t cp;
  for (size_t pos = 0, len; (len = next_cp(s, pos, cp)) != 0; pos += len) ++n;
  return n;
}

std::vector<size_t> cp_offsets(std::string_view s) {
  std::vector<size_t> off;
  off.reserve(s.size() + 1);
  uint32_t cp;
  size_t pos = 0;
  for (size_t len; (len = next_cp(s, pos, cp)) != 0; pos += len) off.push_back(pos);
  off.push_back(s.size());
  return off;
}

bool is_space(uint32_t cp) {
  if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool is_printable(uint32_t cp) {
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0)) return false;
  if (cp < 0x100) return cp != 0xAD;
  if ((cp >= 0x600 && cp <= 0x605) || cp == 0x61C || cp == 0x6DD || cp == 0x70F || cp == 0x1680 || cp == 0x180E)
    return false;
  if ((cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x206F))
    return false;
  if (cp == 0x3000 || (cp >= 0xD800 && cp <= 0xF8FF) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB) ||
      cp == 0xFFFE || cp == 0xFFFF)
    return false;
  if ((cp >= 0xE0000 && cp <= 0xE007F) || cp >= 0xF0000) return false;
  return cp <= 0x10FFFF;
}

bool is_word(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  if (is_space(cp) || !is_printable(cp)) return false;
  if (cp < 0xC0)
    return cp == 0xAA || cp == 0xB2 || cp == 0xB3 || cp == 0xB5 || cp == 0xB9 || cp == 0xBA ||
           (cp >= 0xBC && cp <= 0xBE);
  if (cp == 0xD7 || cp == 0xF7) return false;
  if ((cp >= 0x2000 && cp <= 0x206F) || (cp >= 0x2190 && cp <= 0x2BFF) || (cp >= 0x2E00 && cp <= 0x2E7F)) return false;
  if ((cp >= 0x3000 && cp <= 0x3003) || (cp >= 0x3008 && cp <= 0x301F) || (cp >= 0xFE30 && cp <= 0xFE4F)) return false;
  if ((cp >= 0xFF01 && cp <= 0xFF0F) || (cp >= 0xFF1A && cp <= 0xFF20) || (cp >= 0xFF3B && cp <= 0xFF40) ||
      (cp >= 0xFF5B && cp <= 0xFF65))
    return false;
  if (cp >= 0x1F000 && cp <= 0x1FAFF) return false;
  return true;
}

namespace {

// True if `cp` lies in [lo, hi]: a block of (upper, lower) pairs of adjacent code points.
bool in_pair_range(uint32_t cp, uint32_t lo, uint32_t hi) { return cp >= lo && cp <= hi; }

}  // namespace

uint32_t to_upper(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
  if (cp < 0x100) {
    if (cp == 0xB5) return 0x39C;
    if (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) return cp - 32;
    if (cp == 0xFF) return 0x178;
    return cp;
  }
  if (cp < 0x180) {
    if (cp == 0x131) return 'I';
    if (cp == 0x17F) return 'S';
    const bool odd = cp & 1;
    if (in_pair_range(cp, 0x100, 0x12F) || in_pair_range(cp, 0x132, 0x137) || in_pair_range(cp, 0x14A, 0x177))
      return odd ? cp - 1 : cp;
    if (in_pair_range(cp, 0x139, 0x148) || in_pair_range(cp, 0x179, 0x17E)) return odd ? cp : cp - 1;
    return cp;
  }
  if (cp < 0x250) {
    if (cp == 0x1C5 || cp == 0x1C6) return 0x1C4;
    if (cp == 0x1C8 || cp == 0x1C9) return 0x1C7;
    if (cp == 0x1CB || cp == 0x1CC) return 0x1CA;
    if (cp == 0x1F2 || cp == 0x1F3) return 0x1F1;
    const bool odd = cp & 1;
    if (in_pair_range(cp, 0x1CD, 0x1DC)) return odd ? cp : cp - 1;
    if (in_pair_range(cp, 0x1DE, 0x1EF) || in_pair_range(cp, 0x1F8, 0x21F) || in_pair_range(cp, 0x222, 0x233) ||
        in_pair_range(cp, 0x246, 0x24F))
      return odd ? cp - 1 : cp;
    return cp;
  }
  if (cp >= 0x370 && cp < 0x400) {
    if (cp == 0x3C2) return 0x3A3;
    if ((cp >= 0x3B1 && cp <= 0x3C1) || (cp >= 0x3C3 && cp <= 0x3CB)) return cp - 32;
    if (cp == 0x3AC) return 0x386;
    if (cp >= 0x3AD && cp <= 0x3AF) return cp - 37;
    if (cp == 0x3CC) return 0x38C;
    if (cp == 0x3CD || cp == 0x3CE) return cp - 63;
    return cp;
  }
  if (cp >= 0x400 && cp < 0x530) {
    if (cp >= 0x430 && cp <= 0x44F) return cp - 32;
    if (cp >= 0x450 && cp <= 0x45F) return cp - 80;
    const bool odd = cp & 1;
    if (in_pair_range(cp, 0x460, 0x481) || in_pair_range(cp, 0x48A, 0x4BF) || in_pair_range(cp, 0x4D0, 0x52F))
      return odd ? cp - 1 : cp;
    if (cp == 0x4CF) return 0x4C0;
    if (in_pair_range(cp, 0x4C1, 0x4CE)) return odd ? cp : cp - 1;
    return cp;
  }
  if (cp >= 0x561 && cp <= 0x586) return cp - 48;
  if (in_pair_range(cp, 0x1E00, 0x1E95) || in_pair_range(cp, 0x1EA0, 0x1EFF)) return (cp & 1) ? cp - 1 : cp;
  if (cp >= 0xFF41 && cp <= 0xFF5A) return cp - 32;
  return cp;
}

uint32_t to_lower(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp < 0x100) return (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) ? cp + 32 : cp;
  if (cp < 0x180) {
    if (cp == 0x130) return 'i';
    if (cp == 0x178) return 0xFF;
    const bool odd = cp & 1;
    if (in_pair_range(cp, 0x100, 0x12F) || in_pair_range(cp, 0x132, 0x137) || in_pair_range(cp, 0x14A, 0x177))
      return odd ? cp : cp + 1;
    if (in_pair_range(cp, 0x139, 0x148) || in_pair_range(cp, 0x179, 0x17E)) return odd ? cp + 1 : cp;
    return cp;
  }
  if (cp < 0x250) {
    if (cp == 0x1C4 || cp == 0x1C5) return 0x1C6;
    if (cp == 0x1C7 || cp == 0x1C8) return 0x1C9;
    if (cp == 0x1CA || cp == 0x1CB) return 0x1CC;
    if (cp == 0x1F1 || cp == 0x1F2) return 0x1F3;
    const bool odd = cp & 1;
    if (in_pair_range(cp, 0x1CD, 0x1DC)) return odd ? cp + 1 : cp;
    if (in_pair_range(cp, 0x1DE, 0x1EF) || in_pair_range(cp, 0x1F8, 0x21F) || in_pair_range(cp, 0x222, 0x233) ||
        in_pair_range(cp, 0x246, 0x24F))
      return odd ? cp : cp + 1;
    return cp;
  }
  if (cp >= 0x370 && cp < 0x400) {
    if ((cp >= 0x391 && cp <= 0x3A1) || (cp >= 0x3A3 && cp <= 0x3AB)) return cp + 32;
    if (cp == 0x386) return 0x3AC;
    if (cp >= 0x388 && cp <= 0x38A) return cp + 37;
    if (cp == 0x38C) return 0x3CC;
    if (cp == 0x38E || cp == 0x38F) return cp + 63;
    return cp;
  }
  if (cp >= 0x400 && cp < 0x530) {
    if (cp >= 0x410 && cp <= 0x42F) return cp + 32;
    if (cp >= 0x400 && cp <= 0x40F) return cp + 80;
    const bool odd = cp & 1;
    if (in_pair_range(cp, 0x460, 0x481) || in_pair_range(cp, 0x48A, 0x4BF) || in_pair_range(cp, 0x4D0, 0x52F))
      return odd ? cp : cp + 1;
    if (cp == 0x4C0) return 0x4CF;
    if (in_pair_range(cp, 0x4C1, 0x4CE)) return odd ? cp + 1 : cp;
    return cp;
  }
  if (cp >= 0x531 && cp <= 0x556) return cp + 48;
  if (cp == 0x1E9E) return 0xDF;
  if (in_pair_range(cp, 0x1E00, 0x1E95) || in_pair_range(cp, 0x1EA0, 0x1EFF)) return (cp & 1) ? cp : cp + 1;
  if (cp >= 0xFF21 && cp <= 0xFF3A) return cp + 32;
  return cp;
}

bool is_cased(uint32_t cp) { return to_upper(cp) != cp || to_lower(cp) != cp || cp == 0xDF || cp == 0x149; }

namespace {

void append_upper(std::string& out, uint32_t cp) {
  if (cp == 0xDF) {
    out += "SS";
    return;
  }
  append_cp(out, to_upper(cp));
}

void append_title(std::string& out, uint32_t cp) {
  if (cp == 0xDF) {
    out += "Ss";
    return;
  }
  append_cp(out, to_upper(cp));
}

void append_lower(std::string& out, uint32_t cp) {
  if (cp == 0x130) {
    out += "i\xCC\x87";
    return;
  }
  append_cp(out, to_lower(cp));
}

}  // namespace

std::string upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  uint32_t cp;
  for (size_t pos = 0, len; (len = next_cp(s, pos, cp)) != 0; pos += len) append_upper(out, cp);
  return out;
}

std::string lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  uint32_t cp;
  for (size_t pos = 0, len; (len = next_cp(s, pos, cp)) != 0; pos += len) append_lower(out, cp);
  return out;
}

std::string title(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool previous_cased = false;
  uint32_t cp;
  for (size_t pos = 0, len; (len = next_cp(s, pos, cp)) != 0; pos += len) {
    if (previous_cased) append_lower(out, cp);
    else append_title(out, cp);
    previous_cased = is_cased(cp);
  }
  return out;
}

std::string capitalize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  uint32_t cp;
  bool first = true;
  for (size_t pos = 0, len; (len = next_cp(s, pos, cp)) != 0; pos += len) {
    if (first) append_title(out, cp);
    else append_lower(out, cp);
    first = false;
  }
  return out;
}

std::string swapcase(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  uint32_t cp;
  for (size_t pos = 0, len; (len = next_cp(s, pos, cp)) != 0; pos += len) {
    if (to_lower(cp) != cp) append_lower(out, cp);
    else append_upper(out, cp);
  }
  return out;
}

namespace {

// The code points of `chars`, for strip().
std::vector<uint32_t> code_points(std::string_view s) {
  std::vector<uint32_t> cps;
  uint32_t cp;
  for (size_t pos = 0, len; (len = next_cp(s, pos, cp)) != 0; pos += len) cps.push_back(cp);
  return cps;
}

// Length of the code point that ends at byte `end` (> 0).
size_t prev_cp(std::string_view s, size_t end, uint32_t& cp) {
  size_t start = end - 1;
  while (start > 0 && end - start < 4 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
  size_t len = next_cp(s, start, cp);
  if (start + len != end) {  // not a valid sequence ending here: take the last byte alone
    return next_cp(s, end - 1, cp);
  }
  return len;
}

}  // namespace

std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  std::vector<uint32_t> set;
  if (chars) set = code_points(*chars);
  auto strips = [&](uint32_t cp) {
    if (!chars) return is_space(cp);
    for (uint32_t c : set)
      if (c == cp) return true;
    return false;
  };
  size_t b = 0, e = s.size();
  uint32_t cp;
  if (left)
    for (size_t len; b < e && (len = next_cp(s, b, cp)) != 0 && strips(cp);) b += len;
  if (right)
    while (e > b) {
      const size_t len = prev_cp(s, e, cp);
      if (!strips(cp)) break;
      e -= len;
    }
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) throw Error("empty separator");
    size_t pos = 0;
    for (int64_t n = 0; maxsplit < 0 || n < maxsplit; ++n) {
      const size_t f = s.find(*sep, pos);
      if (f == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, f - pos));
      pos = f + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  size_t i = 0;
  uint32_t cp;
  for (int64_t n = 0;; ++n) {
    for (size_t len; (len = next_cp(s, i, cp)) != 0 && is_space(cp);) i += len;
    if (i >= s.size()) break;
    if (maxsplit >= 0 && n == maxsplit) {
      out.emplace_back(s.substr(i));
      break;
    }
    size_t j = i;
    for (size_t len; (len = next_cp(s, j, cp)) != 0 && !is_space(cp);) j += len;
    out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) throw Error("empty separator");
    size_t end = s.size();
    for (int64_t n = 0; maxsplit < 0 || n < maxsplit; ++n) {
      if (end < sep->size()) break;
      const size_t f = s.rfind(*sep, end - sep->size());
      if (f == std::string_view::npos) break;
      out.emplace_back(s.substr(f + sep->size(), end - f - sep->size()));
      end = f;
    }
    out.emplace_back(s.substr(0, end));
  } else {
    size_t e = s.size();
    uint32_t cp;
    for (int64_t n = 0;; ++n) {
      while (e > 0) {
        const size_t len = prev_cp(s, e, cp);
        if (!is_space(cp)) break;
        e -= len;
      }
      if (e == 0) break;
      if (maxsplit >= 0 && n == maxsplit) {
        out.emplace_back(s.substr(0, e));
        break;
      }
      size_t b = e;
      while (b > 0) {
        const size_t len = prev_cp(s, b, cp);
        if (is_space(cp)) break;
        b -= len;
      }
      out.emplace_back(s.substr(b, e - b));
      e = b;
    }
  }
  return {out.rbegin(), out.rend()};
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
  std::vector<std::string> out;
  size_t start = 0, pos = 0;
  uint32_t cp;
  while (pos < s.size()) {
    const size_t len = next_cp(s, pos, cp);
    const bool brk = cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || (cp >= 0x1C && cp <= 0x1E) ||
                     cp == 0x85 || cp == 0x2028 || cp == 0x2029;
    if (!brk) {
      pos += len;
      continue;
    }
    size_t end = pos + len;
    if (cp == '\r' && end < s.size() && s[end] == '\n') ++end;
    out.emplace_back(s.substr(start, (keepends ? end : pos) - start));
    start = pos = end;
  }
  if (start < s.size()) out.emplace_back(s.substr(start));
  return out;
}

std::string replace(std::string_view s, std::string_view old, std::string_view neu, int64_t count) {
  std::string out;
  if (old.empty()) {
    const std::vector<size_t> off = cp_offsets(s);
    int64_t done = 0;
    for (size_t i = 0; i + 1 < off.size(); ++i) {
      if (count < 0 || done < count) {
        out += neu;
        ++done;
      }
      out += s.substr(off[i], off[i + 1] - off[i]);
    }
    if (count < 0 || done < count) out += neu;
    return out;
  }
  size_t pos = 0;
  for (int64_t n = 0; count < 0 || n < count; ++n) {
    const size_t f = s.find(old, pos);
    if (f == std::string_view::npos) break;
    out += s.substr(pos, f - pos);
    out += neu;
    pos = f + old.size();
  }
  out += s.substr(pos);
  return out;
}

int64_t find(std::string_view s, std::string_view sub, std::optional<int64_t> start, std::optional<int64_t> end,
             bool reverse) {
  const bool ascii = is_ascii(s);
  std::vector<size_t> off;
  if (!ascii) off = cp_offsets(s);
  const int64_t n = ascii ? static_cast<int64_t>(s.size()) : static_cast<int64_t>(off.size()) - 1;
  auto clamp = [n](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v < 0 ? *v + n : *v;
    return x < 0 ? 0 : (x > n ? n : x);
  };
  const int64_t a = start && *start > n ? n + 1 : clamp(start, 0);
  const int64_t b = clamp(end, n);
  if (a > n || a > b) return -1;
  auto byte = [&](int64_t i) { return ascii ? static_cast<size_t>(i) : off[static_cast<size_t>(i)]; };
  const std::string_view window = s.substr(byte(a), byte(b) - byte(a));
  const size_t f = reverse ? window.rfind(sub) : window.find(sub);
  if (f == std::string_view::npos) return -1;
  const size_t at = byte(a) + f;
  if (ascii) return static_cast<int64_t>(at);
  return static_cast<int64_t>(std::lower_bound(off.begin(), off.end(), at) - off.begin());
}

int64_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(length(s)) + 1;
  int64_t n = 0;
  for (size_t pos = s.find(sub); pos != std::string_view::npos; pos = s.find(sub, pos + sub.size())) ++n;
  return n;
}

std::string repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back(quote);
  uint32_t cp;
  char buf[16];
  for (size_t pos = 0, len; (len = next_cp(s, pos, cp)) != 0; pos += len) {
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (is_printable(cp)) {
      out.append(s.substr(pos, len));
    } else {
      if (cp <= 0xFF) std::snprintf(buf, sizeof buf, "\\x%02x", cp);
      else if (cp <= 0xFFFF) std::snprintf(buf, sizeof buf, "\\u%04x", cp);
      else std::snprintf(buf, sizeof buf, "\\U%08x", cp);
      out += buf;
    }
  }
  out.push_back(quote);
  return out;
}

std::string float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));  // [-]d[.ddd]e[+-]dd
  std::string digits;
  size_t i = 0;
  const bool neg = sci[0] == '-';
  if (neg) ++i;
  for (; i < sci.size() && sci[i] != 'e'; ++i)
    if (sci[i] != '.') digits.push_back(sci[i]);
  const int exp = std::atoi(std::string(sci.substr(i + 1)).c_str());
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      const size_t int_len = static_cast<size_t>(exp) + 1;
      if (digits.size() <= int_len) {
        out += digits + std::string(int_len - digits.size(), '0') + ".0";
      } else {
        out += digits.substr(0, int_len) + "." + digits.substr(int_len);
      }
    } else {
      out += "0.";
      out.append(static_cast<size_t>(-exp - 1), '0');
      out += digits;
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1, std::string::npos);
    }
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += e;
  }
  return out;
}

std::string json_quote(std::string_view s, bool ensure_ascii) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  uint32_t cp;
  char buf[16];
  for (size_t pos = 0, len; (len = next_cp(s, pos, cp)) != 0; pos += len) {
    switch (cp) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (cp < 0x20 || (ensure_ascii && cp >= 0x7F)) {
      if (cp > 0xFFFF) {
        const uint32_t v = cp - 0x10000;
        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        std::snprintf(buf, sizeof buf, "\\u%04x", cp);
      }
      out += buf;
    } else {
      out.append(s.substr(pos, len));
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace hearth::chat::py
