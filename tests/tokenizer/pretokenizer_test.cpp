// Pre-tokenizer regexes on PCRE2 (formats.md §5.7–5.8): the table, the regex rewriting, the
// chunk semantics, and agreement of the GPT-2 and LLAMA3 regexes with direct scanners written
// from the regex definitions (the words llama.cpp's hand-written splitters produce).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "hearth/error.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"

namespace {

using namespace hearth::tokenizer;
using Words = std::vector<std::string>;

Words split_with(const PreTokenizerSpec& spec, const std::string& text) {
  const PreTokenizer pre(spec.regexes);
  std::vector<std::string_view> views;
  pre.split(text, views);
  return Words(views.begin(), views.end());
}

Words split(std::string_view pre_name, const std::string& text) {
  const PreTokenizerSpec* spec = find_pre_tokenizer(pre_name);
  if (spec == nullptr) throw std::runtime_error("no pre-tokenizer " + std::string(pre_name));
  return split_with(*spec, text);
}

TEST(PreTokenizerTable, NamesSelectTypesAndFlags) {
  const PreTokenizerSpec* llama3 = find_pre_tokenizer("llama-bpe");
  ASSERT_NE(llama3, nullptr);
  EXPECT_EQ(llama3->type, "LLAMA3");
  EXPECT_EQ(llama3->flags, pre_flag::IGNORE_MERGES | pre_flag::ADD_BOS);
  EXPECT_EQ(find_pre_tokenizer("qwen2")->flags, pre_flag::CLEAN_SPACES_OFF);
  EXPECT_EQ(find_pre_tokenizer("megrez")->flags, 0u);
  EXPECT_EQ(find_pre_tokenizer("megrez")->type, "QWEN2");
  EXPECT_EQ(find_pre_tokenizer("roberta-bpe")->flags, pre_flag::ADD_SEP);
  EXPECT_EQ(find_pre_tokenizer("tekken")->flags,
            pre_flag::CLEAN_SPACES_OFF | pre_flag::IGNORE_MERGES | pre_flag::ADD_BOS);
  EXPECT_EQ(find_pre_tokenizer("sarvam-moe")->flags,
            pre_flag::ESCAPE_WHITESPACES | pre_flag::RAW_UTF8 | pre_flag::CLEAN_SPACES_OFF);
  EXPECT_EQ(find_pre_tokenizer("gpt-4o")->type, "GPT4O");
  EXPECT_EQ(find_pre_tokenizer("deepseek-llm")->regexes.size(), 6u);
  EXPECT_EQ(find_pre_tokenizer("no-such-name"), nullptr);
  EXPECT_EQ(gemma4_pre_tokenizer().type, "GEMMA4");
  // Every name appears once.
  std::vector<std::string_view> all;
  for (const PreTokenizerSpec& spec : pre_tokenizer_table()) all.insert(all.end(), spec.names.begin(), spec.names.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
  EXPECT_EQ(all.size(), 87u);  // every name listed in formats.md §5.7
}

// Every regex list compiles and keeps every byte of a mixed text (matches and gaps are chunks).
TEST(PreTokenizerTable, EveryListCompilesAndLosesNothing) {
  const std::string text =
      "Hello World! I'm   fine\t\t123456 3.14 \xE4\xB8\xAD\xE6\x96\x87 \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 "
      "\xD0\x9F\xD1\x80\xD0\xB8 e\xCC\x81 \xF0\x9F\xA6\x99\xE2\x80\x8D!! \xE3\x80\x80\xE3\x80\x82 \r\n\n  "
      "<sentinel:12> IMGIMGABZ \xC2\xA0x\xC2\x85y\xE2\x80\xA8z   ";
  for (const PreTokenizerSpec& spec : pre_tokenizer_table()) {
    Words words;
    ASSERT_NO_THROW(words = split_with(spec, text)) << spec.type;
    std::string joined;
    for (const std::string& w : words) {
      EXPECT_FALSE(w.empty()) << spec.type;
      EXPECT_TRUE(unicode::is_valid_utf8(w)) << spec.type << " split inside a character: " << w;
      joined += w;
    }
    EXPECT_EQ(joined, text) << spec.type;
  }
}

TEST(PreTokenizerRegex, TranslationFollowsLlamaCpp) {
  const std::string ws = "[" + std::string(unicode::whitespace_class_body()) + "]";
  EXPECT_EQ(translate_regex(R"(\s+(?!\S))"), ws + "+(?![^" + std::string(unicode::whitespace_class_body()) + "])");
  EXPECT_EQ(translate_regex(R"(\d{1,3})"), "[0-9]{1,3}");
  EXPECT_EQ(translate_regex(R"([^\s\p{L}\d])"),
            "[^" + std::string(unicode::whitespace_class_body()) + R"(\p{L}0-9])");
  EXPECT_EQ(translate_regex(R"([\p{Lu}\p{Lt}]\p{Ll})"), R"([\p{L}\p{L}]\p{L})");
  // U+3000 is whitespace in llama.cpp and never a class member: 　-。 becomes 、-。 only.
  EXPECT_EQ(translate_regex("[!-/\xE3\x80\x80-\xE3\x80\x82]"), R"([!-/\x{3001}-\x{3002}])");
  EXPECT_EQ(translate_regex("[\xC2\xB5\xC3\x80-\xC3\x96]"), R"([\x{B5}\x{C0}-\x{D6}])");
  EXPECT_THROW(translate_regex(R"([\S])"), hearth::Error);
  EXPECT_THROW(PreTokenizer(std::vector<std::string_view>{"(unclosed"}), hearth::Error);
}

TEST(PreTokenizerSplit, Gpt2) {
  EXPECT_EQ(split("gpt-2", "Hello world  123 it's"), Words({"Hello", " world", " ", " 123", " it", "'s"}));
  // Only ASCII space joins a word; other whitespace stands alone when a word follows.
  EXPECT_EQ(split("gpt-2", "a\xC2\xA0\xC2\xA0" "b\tc"), Words({"a", "\xC2\xA0", "\xC2\xA0", "b", "\t", "c"}));
  // U+200B is not whitespace (it is "other"); U+0085 and U+2028 are.
  EXPECT_EQ(split("gpt-2", "a\xE2\x80\x8B" "b\xC2\x85\xC2\x85"), Words({"a", "\xE2\x80\x8B", "b", "\xC2\x85\xC2\x85"}));
}

TEST(PreTokenizerSplit, Llama3) {
  EXPECT_EQ(split("llama-bpe", "I'M 12345 ok\n\n  x  "),
            Words({"I", "'M", " ", "123", "45", " ok", "\n\n", " ", " x", "  "}));
  EXPECT_EQ(split("llama-bpe", "HelloWorld \xE3\x80\x80" "b"), Words({"HelloWorld", " ", "\xE3\x80\x80" "b"}));
}

TEST(PreTokenizerSplit, CaseSplittingRegexes) {
  // GPT4O's [^a-z]/[^A-Z] look-aheads split ASCII case changes ...
  EXPECT_EQ(split("gpt-4o", "HelloWorld ABCdef"), Words({"Hello", "World", " ABCdef"}));
  // ... while \p{Lu}/\p{Ll} read as \p{L} (llama.cpp) do not.
  EXPECT_EQ(split("tiny_aya", "HelloWorld"), Words({"HelloWorld"}));
  EXPECT_EQ(split("youtu", "HelloWorld"), Words({"HelloWorld"}));
}

TEST(PreTokenizerSplit, DigitGroupings) {
  // SUPERBPE: zero-length look-ahead matches only split.
  EXPECT_EQ(split("superbpe", "x1234567"), Words({"x", "1", "234", "567"}));
  EXPECT_EQ(split("superbpe", "123456"), Words({"123", "456"}));
  // TINY_AYA: groups of three from the right when the run ends at a word boundary (ASCII \b).
  EXPECT_EQ(split("tiny_aya", "1234567 x"), Words({"1", "234", "567", " x"}));
  EXPECT_EQ(split("tiny_aya", "12345abc"), Words({"123", "45", "abc"}));
  // AFMOE: like llama.cpp's splitter, the text before a digit run rides with its first group;
  // the later regexes split it again.
  EXPECT_EQ(split("afmoe", "ab 12345 c"), Words({"ab", " ", "12", "345", " c"}));
  EXPECT_EQ(split("afmoe", "a  1"), Words({"a", " ", " ", "1"}));
  EXPECT_EQ(split("afmoe", "\xE4\xB8\xAD\xE6\x96\x87" "1234"), Words({"\xE4\xB8\xAD\xE6\x96\x87", "1", "234"}));
}

TEST(PreTokenizerSplit, KimiK2HanAndLetters) {
  EXPECT_EQ(split("kimi-k2", "\xE4\xBD\xA0\xE5\xA5\xBD" "world's 12345"),
            Words({"\xE4\xBD\xA0\xE5\xA5\xBD", "world's", " ", "123", "45"}));
  EXPECT_EQ(split("kimi-k2", " Hello\xE4\xBD\xA0"), Words({" Hello", "\xE4\xBD\xA0"}));
}

TEST(PreTokenizerSplit, DeepseekLlm) {
  EXPECT_EQ(split("deepseek-llm", "Hello, \xE4\xB8\x96\xE7\x95\x8C 42\n  "),
            Words({"Hello", ",", " ", "\xE4\xB8\x96\xE7\x95\x8C", " ", "42", "\n", "  "}));
  // `$` is the end of the chunk only (PCRE2_DOLLAR_ENDONLY).
  EXPECT_EQ(split("deepseek-llm", "a  \n"), Words({"a", "  ", "\n"}));
}

TEST(PreTokenizerSplit, RawUtf8Types) {
  EXPECT_EQ(split("gemma4", "a\xE2\x96\x81" "b\n\nc"), Words({"a\xE2\x96\x81" "b", "\n\n", "c"}));
  EXPECT_EQ(split("whitespace", "ab  c"), Words({"ab", "  ", "c"}));
}

// ---- the GPT-2 and LLAMA3 regexes against direct scanners ----

enum class Cat { Letter, Number, Space, Other };

// Categories of the test alphabet (Unicode general categories; \s as formats.md §5.7).
struct Char {
  const char* utf8;
  Cat cat;
  bool han = false;  // in the Han blocks of llama.cpp's Kimi-K2 splitter
};
const Char kAlphabet[] = {
    {"a", Cat::Letter}, {"Z", Cat::Letter}, {"s", Cat::Letter}, {"t", Cat::Letter}, {"S", Cat::Letter},
    {"l", Cat::Letter}, {"e", Cat::Letter}, {"r", Cat::Letter}, {"\xC3\xA9", Cat::Letter},
    {"\xD0\xB6", Cat::Letter}, {"\xE4\xB8\xAD", Cat::Letter, true}, {"\xC7\x85", Cat::Letter},  // é ж 中 ǅ
    {"\xF0\xA0\x80\x80", Cat::Letter, true}, {"\xE3\x81\x82", Cat::Letter},  // 𠀀 (Han), あ (not Han)
    {"0", Cat::Number}, {"7", Cat::Number}, {"\xD9\xA3", Cat::Number}, {"\xE2\x85\xAB", Cat::Number},
    {"\xC2\xBD", Cat::Number},                                                             // ٣ Ⅻ ½
    {" ", Cat::Space}, {" ", Cat::Space}, {"\t", Cat::Space}, {"\n", Cat::Space}, {"\r", Cat::Space},
    {"\v", Cat::Space}, {"\xC2\xA0", Cat::Space}, {"\xC2\x85", Cat::Space}, {"\xE3\x80\x80", Cat::Space},
    {"\xE2\x80\xA8", Cat::Space},
    {"'", Cat::Other}, {"'", Cat::Other}, {".", Cat::Other}, {"!", Cat::Other}, {"$", Cat::Other},
    {"\xCC\x81", Cat::Other}, {"\xE2\x80\x8B", Cat::Other}, {"\xE2\x80\x8D", Cat::Other},
    {"\xF0\x9F\xA6\x99", Cat::Other}, {"\xEE\x80\x80", Cat::Other}, {"\xE3\x80\x82", Cat::Other},
};

struct Text {
  std::vector<const Char*> chars;
  std::string str(size_t from, size_t to) const {
    std::string s;
    for (size_t i = from; i < to; ++i) s += chars[i]->utf8;
    return s;
  }
  size_t size() const { return chars.size(); }
  Cat cat(size_t i) const { return i < chars.size() ? chars[i]->cat : Cat::Other; }
  std::string_view at(size_t i) const { return i < chars.size() ? chars[i]->utf8 : ""; }
  bool is(size_t i, Cat c) const { return i < chars.size() && chars[i]->cat == c; }
  bool han(size_t i) const { return i < chars.size() && chars[i]->han; }
  bool non_han_letter(size_t i) const { return is(i, Cat::Letter) && !han(i); }
  bool is_crlf(size_t i) const { return at(i) == "\r" || at(i) == "\n"; }
};

// Shared pieces of the two scanners. Each returns the match length at p, or 0.
size_t run(const Text& t, size_t p, Cat c) {
  size_t q = p;
  while (t.is(q, c)) ++q;
  return q - p;
}
size_t ws_then_not_ws(const Text& t, size_t p) {  // \s+(?!\S)
  const size_t k = run(t, p, Cat::Space);
  if (k == 0) return 0;
  if (p + k == t.size()) return k;
  return k >= 2 ? k - 1 : 0;
}
size_t contraction(const Text& t, size_t p, bool any_case) {
  if (t.at(p) != "'") return 0;
  const auto low = [&](size_t i) {
    std::string s(t.at(i));
    if (any_case && s.size() == 1) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
    return s;
  };
  const std::string a = low(p + 1);
  if (a == "s" || a == "t" || a == "m" || a == "d") return 2;
  const std::string ab = a + low(p + 2);
  if (ab == "re" || ab == "ve" || ab == "ll") return 3;
  return 0;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
size_t gpt2_match(const Text& t, size_t p) {
  if (size_t n = contraction(t, p, false)) return n;
  const size_t sp = t.at(p) == " " ? 1 : 0;
  for (Cat c : {Cat::Letter, Cat::Number, Cat::Other}) {
    if (size_t n = run(t, p + sp, c)) return sp + n;
  }
  return ws_then_not_ws(t, p);
}

// The part of LLAMA3 after its letter rules: \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t llama3_tail(const Text& t, size_t p) {
  if (size_t n = run(t, p, Cat::Number)) return std::min<size_t>(n, 3);
  const size_t sp = t.at(p) == " " ? 1 : 0;
  if (size_t n = run(t, p + sp, Cat::Other)) {
    size_t end = p + sp + n;
    while (t.is_crlf(end)) ++end;
    return end - p;
  }
  const size_t k = run(t, p, Cat::Space);
  for (size_t len = k; len > 0; --len) {  // \s*[\r\n]+: the longest run prefix ending in \r or \n
    if (t.is_crlf(p + len - 1)) return len;
  }
  if (size_t n = ws_then_not_ws(t, p)) return n;
  return k;
}

// (?:'[sS]|…)|[^\r\n\p{L}\p{N}]?\p{L}+|<llama3_tail>
size_t llama3_match(const Text& t, size_t p) {
  if (size_t n = contraction(t, p, true)) return n;
  if (size_t n = run(t, p, Cat::Letter)) return n;
  if (p < t.size() && !t.is_crlf(p) && !t.is(p, Cat::Number) && t.is(p + 1, Cat::Letter)) {
    return 1 + run(t, p + 1, Cat::Letter);
  }
  return llama3_tail(t, p);
}

// The Kimi-K2 splitter as formats.md §5.7–5.8 describe it: Han runs, then LLAMA3's rules with
// letters meaning non-Han letters and an optional contraction after a letter run.
size_t kimi_match(const Text& t, size_t p) {
  size_t q = p;
  while (t.han(q)) ++q;
  if (q > p) return q - p;
  const auto letters = [&](size_t from) {
    size_t e = from;
    while (t.non_han_letter(e)) ++e;
    return e + contraction(t, e, true) - p;
  };
  if (t.non_han_letter(p)) return letters(p);
  if (p < t.size() && !t.is_crlf(p) && !t.is(p, Cat::Letter) && !t.is(p, Cat::Number) && t.non_han_letter(p + 1)) {
    return letters(p + 1);
  }
  return llama3_tail(t, p);
}

// Regex-split semantics with one regex: matches plus the gaps between them.
template <class Match>
Words scan(const Text& t, Match&& match) {
  Words words;
  size_t gap = 0;
  for (size_t p = 0; p < t.size();) {
    const size_t n = match(t, p);
    if (n == 0) {
      ++p;
      continue;
    }
    if (p > gap) words.push_back(t.str(gap, p));
    words.push_back(t.str(p, p + n));
    p += n;
    gap = p;
  }
  if (gap < t.size()) words.push_back(t.str(gap, t.size()));
  return words;
}

Text random_text(std::mt19937& rng, std::span<const Char> alphabet, size_t max_len) {
  std::uniform_int_distribution<size_t> len(0, max_len);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  Text t;
  for (size_t n = len(rng); n > 0; --n) t.chars.push_back(&alphabet[pick(rng)]);
  return t;
}

Words split_text(const PreTokenizer& pre, const std::string& text) {
  std::vector<std::string_view> views;
  pre.split(text, views);
  return Words(views.begin(), views.end());
}

TEST(PreTokenizerSplit, KimiK2AgreesWithItsSplitter) {
  std::mt19937 rng(11);
  const PreTokenizer kimi(find_pre_tokenizer("kimi-k2")->regexes);
  for (int i = 0; i < 20000; ++i) {
    const Text t = random_text(rng, kAlphabet, 24);
    const std::string text = t.str(0, t.size());
    ASSERT_EQ(split_text(kimi, text), scan(t, kimi_match)) << "kimi-k2 on '" << text << "'";
  }
}

// Digit-heavy alphabet for the digit-grouping regexes: ASCII and other \p{N} digits, a word
// character, a non-word character, whitespace.
const Char kDigits[] = {
    {"1", Cat::Number}, {"2", Cat::Number}, {"3", Cat::Number}, {"4", Cat::Number}, {"5", Cat::Number},
    {"\xD9\xA3", Cat::Number}, {"\xC2\xBD", Cat::Number}, {"a", Cat::Letter}, {"_", Cat::Other},
    {"-", Cat::Other}, {" ", Cat::Space}, {"\n", Cat::Space}, {"\xC3\xA9", Cat::Letter},
};

// llama.cpp's AFMoE digit splitter: each \p{N} run gives a group of (length % 3) digits, which
// also takes the text since the previous run, then groups of three; trailing text is a chunk.
Words afmoe_reference(const Text& t) {
  Words words;
  size_t start = 0;  // start of the text not yet in a chunk
  for (size_t p = 0; p < t.size();) {
    if (!t.is(p, Cat::Number)) {
      ++p;
      continue;
    }
    const size_t n = run(t, p, Cat::Number);
    const size_t first_end = p + (n % 3 != 0 ? n % 3 : 3);
    words.push_back(t.str(start, first_end));
    for (size_t g = first_end; g < p + n; g += 3) words.push_back(t.str(g, g + 3));
    p += n;
    start = p;
  }
  if (start < t.size()) words.push_back(t.str(start, t.size()));
  return words;
}

TEST(PreTokenizerSplit, AfmoeDigitsAgreeWithTheSplitter) {
  std::mt19937 rng(5);
  const std::string_view afmoe_digits[] = {R"(\p{AFMoE_digits})"};
  const PreTokenizer pre(afmoe_digits);
  for (int i = 0; i < 20000; ++i) {
    const Text t = random_text(rng, kDigits, 30);
    const std::string text = t.str(0, t.size());
    ASSERT_EQ(split_text(pre, text), afmoe_reference(t)) << "on '" << text << "'";
  }
}

// The linear-time substitutes give the words of the table regexes they replace. Wrapping the
// original in (?:…) keeps it from being substituted.
TEST(PreTokenizerSplit, LinearSubstitutesMatchTheirOriginals) {
  const std::string_view originals[] = {
      R"(\d{1,3}(?=(?:\d{3})*\b))",
      R"((?=(\d{3})+(?!\d)))",
      find_pre_tokenizer("exaone-moe")->regexes[0],
  };
  std::mt19937 rng(3);
  for (std::string_view original : originals) {
    const std::string wrapped = "(?:" + std::string(original) + ")";
    ASSERT_NE("(?:" + translate_regex(original) + ")", translate_regex(wrapped)) << "not substituted: " << original;
    const PreTokenizer fast(std::vector<std::string_view>{original});
    const PreTokenizer slow(std::vector<std::string_view>{wrapped});
    for (int i = 0; i < 20000; ++i) {
      const Text t = random_text(rng, i % 2 ? std::span<const Char>(kDigits) : std::span<const Char>(kAlphabet), 30);
      const std::string text = t.str(0, t.size());
      ASSERT_EQ(split_text(fast, text), split_text(slow, text)) << original << " on '" << text << "'";
    }
  }
}

TEST(PreTokenizerSplit, LongRunsStayLinear) {
  // 200 000 digits or letters in one run: quadratic look-aheads would take minutes.
  const std::string digits(200000, '7');
  const std::string letters(200000, 'a');
  for (const PreTokenizerSpec& spec : pre_tokenizer_table()) {
    const PreTokenizer pre(spec.regexes);
    for (const std::string* text : {&digits, &letters}) {
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::string_view> words;
      ASSERT_NO_THROW(pre.split(*text, words)) << spec.type;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      EXPECT_LT(s, 2.0) << spec.type;
    }
  }
}

TEST(PreTokenizerSplit, Gpt2AndLlama3AgreeWithDirectScanners) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> len(0, 24);
  std::uniform_int_distribution<size_t> pick(0, std::size(kAlphabet) - 1);
  const PreTokenizer gpt2(find_pre_tokenizer("gpt-2")->regexes);
  const PreTokenizer llama3(find_pre_tokenizer("llama3")->regexes);
  for (int i = 0; i < 20000; ++i) {
    Text t;
    for (size_t n = len(rng); n > 0; --n) t.chars.push_back(&kAlphabet[pick(rng)]);
    const std::string text = t.str(0, t.size());
    for (auto [pre, expected] : {std::pair{&gpt2, scan(t, gpt2_match)}, std::pair{&llama3, scan(t, llama3_match)}}) {
      std::vector<std::string_view> views;
      pre->split(text, views);
      ASSERT_EQ(Words(views.begin(), views.end()), expected) << (pre == &gpt2 ? "gpt-2" : "llama3") << " on '"
                                                             << text << "'";
    }
  }
}

}  // namespace
