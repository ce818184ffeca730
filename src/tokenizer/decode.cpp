// Detokenization: token pieces, whole-sequence decoding and streaming.
// Source: ../shared/docs/formats.md §5.10.
#include <cstdio>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace hearth::tokenizer {

namespace {

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0;;) {
    const size_t hit = text.find(from, pos);
    out.append(text.substr(pos, hit == std::string_view::npos ? std::string_view::npos : hit - pos));
    if (hit == std::string_view::npos) return out;
    out += to;
    pos = hit + from.size();
  }
}

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 '▁'

// Byte-level BPE text back to bytes through the inverse GPT-2 table; a code point outside the
// table is rendered as llama.cpp does: "[UNK_BYTE_0x<hex of its UTF-8>" + token text + "]".
std::string decode_byte_level(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    uint32_t cp = 0xFFFD;
    size_t len = unicode::decode_utf8(text, pos, cp);
    if (len == 0) {
      cp = 0xFFFD;
      len = 1;
    }
    pos += len;
    const int byte = unicode::unicode_to_byte(cp);
    if (byte >= 0) {
      out += static_cast<char>(byte);
      continue;
    }
    std::string utf8;
    unicode::append_utf8(utf8, cp);
    out += "[UNK_BYTE_0x";
    for (char c : utf8) {
      char hex[3];
      std::snprintf(hex, sizeof hex, "%02x", static_cast<unsigned>(static_cast<uint8_t>(c)));
      out += hex;
    }
    out += text;
    out += ']';
  }
  return out;
}

// The byte of a `<0xXX>` token, or -1.
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int value = 0;
  for (char c : text.substr(3, 2)) {
    value <<= 4;
    if (c >= '0' && c <= '9') {
      value |= c - '0';
    } else if (c >= 'A' && c <= 'F') {
      value |= c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      value |= c - 'a' + 10;
    } else {
      return -1;
    }
  }
  return value;
}

// clean_spaces (formats.md §5.10 step 3), three passes as llama.cpp makes them.
std::string clean_spaces(std::string_view text) {
  if (text.empty()) return {};
  // 1: " ?", " !", " .", " ," lose the space.
  std::string a;
  a.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    if (text[i] == ' ' && (next == '?' || next == '!' || next == '.' || next == ',')) continue;
    a += text[i];
  }
  // 2: " ' " becomes "'"; the space consumed after the apostrophe no longer counts as a space.
  std::string b;
  b.reserve(a.size());
  b += a[0];
  char prev = a[0];
  for (size_t i = 1; i < a.size(); ++i) {
    const char c = a[i];
    if (c == '\'' && i + 1 < a.size() && prev == ' ' && a[i + 1] == ' ') {
      b.pop_back();
      b += c;
      ++i;          // drop the following space
      prev = '\0';  // ... which is gone for the next comparison
      continue;
    }
    b += c;
    prev = c;
  }
  // 3: the space before "'s", "'m", "'re", "'ve" goes (not before "'t", "'d", "'ll").
  std::string out;
  out.reserve(b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    if (b[i] == ' ' && i + 2 < b.size() && b[i + 1] == '\'') {
      const char x1 = b[i + 2];
      const char x2 = i + 3 < b.size() ? b[i + 3] : '\0';
      if (x1 == 's' || x1 == 'm' || (i + 3 < b.size() && ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')))) {
        continue;
      }
    }
    out += b[i];
  }
  return out;
}

}  // namespace

// The piece of a token with special = true (formats.md §5.10), computed once per token.
std::string Tokenizer::make_piece(int32_t id) const {
  const uint32_t a = vocab_.attrs(id);
  const std::string& text = vocab_.text(id);
  if (a & (attr::CONTROL | attr::UNKNOWN | attr::USER_DEFINED)) return text;
  if (a & attr::NORMAL) {
    const VocabFlags& flags = vocab_.flags();
    if (vocab_.algorithm() == Algorithm::SPM || flags.escape_whitespaces) return replace_all(text, kSpmSpace, " ");
    return flags.byte_encode ? decode_byte_level(text) : text;
  }
  if (a & attr::BYTE) {
    const int byte = parse_byte_token(text);
    return byte < 0 ? std::string() : std::string(1, static_cast<char>(byte));
  }
  return {};  // UNUSED, UNDEFINED
}

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_.n_vocab()) {
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                std::to_string(vocab_.n_vocab()) + ")");
  }
}

std::string Tokenizer::token_to_piece(int32_t id, bool special) const {
  check_id(id);
  if (!special && (vocab_.attrs(id) & (attr::CONTROL | attr::UNKNOWN))) return {};
  return pieces_[static_cast<size_t>(id)];
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool remove_special, bool unparse_special) const {
  for (int32_t id : ids) check_id(id);
  const VocabFlags& flags = vocab_.flags();
  bool remove_space = flags.add_space_prefix;
  if (remove_special && flags.add_bos && !ids.empty() && ids.front() == vocab_.bos()) {
    remove_space = false;
    ids = ids.subspan(1);
  }
  if (remove_special && flags.add_eos && !ids.empty() && ids.back() == vocab_.eos()) {
    ids = ids.first(ids.size() - 1);
  }
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece = token_to_piece(ids[i], unparse_special);
    // The space SPM added comes off the first piece only (llama.cpp's lstrip = 1).
    if (i == 0 && remove_space && !piece.empty() && piece.front() == ' ') piece.erase(0, 1);
    out += piece;
  }
  return flags.clean_spaces ? clean_spaces(out) : out;
}

// ---- StreamDecoder ----

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool special) : tokenizer_(&tokenizer), special_(special) {}

std::string StreamDecoder::push(int32_t id) {
  pending_ += tokenizer_->token_to_piece(id, special_);
  const size_t ready = pending_.size() - unicode::incomplete_tail(pending_);
  std::string out = pending_.substr(0, ready);
  pending_.erase(0, ready);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace hearth::tokenizer
