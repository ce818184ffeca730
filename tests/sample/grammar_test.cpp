// GBNF grammars: the parser (syntax, repetition, classes, escapes, errors with line and column),
// the matcher (strings accepted and rejected, UTF-8 split across feeds, completion), token
// references, and the vocabulary filter against a plain reference recognizer on random
// vocabularies.
#include "sample/grammar.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "hearth/error.h"
#include "sample/json_schema.h"

namespace hearth::sample {
namespace {

std::shared_ptr<const Grammar> parse(const std::string& text) { return Grammar::parse(text); }

// The whole of `s` is a sentence of the grammar.
bool matches(const std::shared_ptr<const Grammar>& g, std::string_view s) {
  GrammarMatcher m(g);
  return m.accept_bytes(s) && m.is_complete();
}
bool matches(const std::string& grammar, std::string_view s) { return matches(parse(grammar), s); }

// `s` can be continued into a sentence.
bool viable(const std::shared_ptr<const Grammar>& g, std::string_view s) {
  GrammarMatcher m(g);
  return m.accept_bytes(s);
}

std::string error_of(const std::string& grammar) {
  try {
    Grammar::parse(grammar);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ----- a reference recognizer: vectors of stacks, no interning, no caches, no trie ------------

class Reference {
 public:
  explicit Reference(std::shared_ptr<const Grammar> g) : g_(std::move(g)) {
    const auto& el = g_->elements();
    for (uint32_t a : g_->alternatives(g_->root())) {
      Stack s;
      if (el[a].kind != Grammar::Kind::End) s.push_back(a);
      close(s, stacks_);
    }
  }

  // Feeds bytes; false if some prefix is impossible. A character may stay unfinished.
  bool feed(std::string_view bytes) {
    for (char ch : bytes) {
      const auto b = static_cast<uint8_t>(ch);
      if (remain_ == 0) {
        if (b < 0x80) {
          if (!advance(b)) return false;
          continue;
        }
        if (b >= 0xC2 && b <= 0xDF) {
          len_ = 2, value_ = b & 0x1F;
        } else if (b >= 0xE0 && b <= 0xEF) {
          len_ = 3, value_ = b & 0x0F;
        } else if (b >= 0xF0 && b <= 0xF4) {
          len_ = 4, value_ = b & 0x07;
        } else {
          return false;
        }
        remain_ = len_ - 1;
      } else {
        if ((b & 0xC0) != 0x80) return false;
        value_ = value_ << 6 | (b & 0x3F);
        if (--remain_ == 0) {
          const uint32_t min = len_ == 2 ? 0x80 : len_ == 3 ? 0x800 : 0x10000;
          if (value_ < min || value_ > 0x10FFFF || (value_ >= 0xD800 && value_ <= 0xDFFF)) return false;
          if (!advance(value_)) return false;
          continue;
        }
      }
      if (!partial_possible()) return false;
    }
    return true;
  }
  bool complete() const {
    return remain_ == 0 && std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.empty(); });
  }

 private:
  using Stack = std::vector<uint32_t>;  // element positions, top last

  void close(Stack s, std::vector<Stack>& out) const {
    const auto& el = g_->elements();
    if (s.empty() || el[s.back()].kind != Grammar::Kind::RuleRef) {
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
      return;
    }
    const uint32_t pos = s.back();
    s.pop_back();
    if (el[pos + 1].kind != Grammar::Kind::End) s.push_back(pos + 1);
    for (uint32_t a : g_->alternatives(el[pos].value)) {
      Stack t = s;
      if (el[a].kind != Grammar::Kind::End) t.push_back(a);
      close(t, out);
    }
  }

  bool advance(uint32_t cp) {
    const auto& el = g_->elements();
    std::vector<Stack> next;
    for (const Stack& s : stacks_) {
      if (s.empty() || el[s.back()].kind != Grammar::Kind::Chars) continue;
      const auto& cls = g_->char_class(el[s.back()].value);
      const bool in =
          std::any_of(cls.begin(), cls.end(), [&](const auto& r) { return r.first <= cp && cp <= r.second; });
      if (!in) continue;
      Stack t = s;
      const uint32_t pos = t.back();
      t.pop_back();
      if (el[pos + 1].kind != Grammar::Kind::End) t.push_back(pos + 1);
      close(t, next);
    }
    stacks_ = std::move(next);
    return !stacks_.empty();
  }

  bool partial_possible() const {
    const auto& el = g_->elements();
    // Every code point this character can still become, checked one by one (slow but plain).
    const uint32_t min = len_ == 2 ? 0x80 : len_ == 3 ? 0x800 : 0x10000;
    const uint32_t max = len_ == 2 ? 0x7FF : len_ == 3 ? 0xFFFF : 0x10FFFF;
    const uint32_t lo = std::max(value_ << (6 * remain_), min);
    const uint32_t hi = std::min((value_ << (6 * remain_)) | ((1u << (6 * remain_)) - 1), max);
    for (const Stack& s : stacks_) {
      if (s.empty() || el[s.back()].kind != Grammar::Kind::Chars) continue;
      for (const auto& [a, b] : g_->char_class(el[s.back()].value)) {
        for (uint32_t cp = std::max(a, lo); cp <= std::min(b, hi); ++cp) {
          if (cp < 0xD800 || cp > 0xDFFF) return true;
        }
      }
    }
    return false;
  }

  std::shared_ptr<const Grammar> g_;
  std::vector<Stack> stacks_;
  uint32_t value_ = 0;
  int remain_ = 0, len_ = 0;
};

// ----- parsing and matching ---------------------------------------------------------------

TEST(Grammar, LiteralsSequencesAndAlternatives) {
  const auto g = parse(R"(root ::= "ab" "c" | "x" ("y" | "zz") "!")");
  EXPECT_TRUE(matches(g, "abc"));
  EXPECT_TRUE(matches(g, "xy!"));
  EXPECT_TRUE(matches(g, "xzz!"));
  EXPECT_FALSE(matches(g, "ab"));  // a prefix, not complete
  EXPECT_TRUE(viable(g, "ab"));
  EXPECT_FALSE(viable(g, "abd"));
  EXPECT_FALSE(viable(g, "abcd"));
  EXPECT_FALSE(viable(g, "xz!"));
  EXPECT_FALSE(matches(g, ""));
}

TEST(Grammar, RepetitionOperatorsAcceptExactlyTheirCounts) {
  struct Case {
    const char* op;
    int min, max;  // max -1: unbounded
  };
  const Case cases[] = {{"*", 0, -1},    {"+", 1, -1},    {"?", 0, 1},         {"{3}", 3, 3}, {"{2,}", 2, -1},
                        {"{2,4}", 2, 4}, {"{0,2}", 0, 2}, {"{ 1 , 3 }", 1, 3}, {"{0}", 0, 0}, {"{0,}", 0, -1}};
  for (const Case& c : cases) {
    // On a literal of two characters, on a rule reference and on a group with alternatives.
    for (const std::string item : {"\"ab\"", "x", "(\"ab\" | \"cd\")"}) {
      const auto g = parse("root ::= \"<\" " + item + c.op + " \">\"\nx ::= [a] [b]");
      for (int n = 0; n <= 7; ++n) {
        std::string s = "<";
        for (int i = 0; i < n; ++i) s += (item[0] == '(' && i % 2) ? "cd" : "ab";
        s += ">";
        const bool want = n >= c.min && (c.max < 0 || n <= c.max);
        EXPECT_EQ(matches(g, s), want) << item << c.op << " on " << s;
      }
    }
  }
}

TEST(Grammar, NestedRepetitionAndLargeBounds) {
  const auto g = parse(R"(root ::= ("a"{2} "b"?){1,3})");
  EXPECT_TRUE(matches(g, "aa"));
  EXPECT_TRUE(matches(g, "aabaa"));
  EXPECT_TRUE(matches(g, "aabaabaab"));
  EXPECT_FALSE(matches(g, "aaaaaaaa"));  // 4 groups
  EXPECT_FALSE(matches(g,
                       "aab"
                       "a"));
  const auto big = parse(R"(root ::= [0-9]{1000,1200})");
  EXPECT_TRUE(matches(big, std::string(1000, '7')));
  EXPECT_TRUE(matches(big, std::string(1200, '7')));
  EXPECT_FALSE(matches(big, std::string(999, '7')));
  EXPECT_FALSE(viable(big, std::string(1201, '7')));
}

TEST(Grammar, CharacterClassesAndEscapes) {
  EXPECT_TRUE(matches(R"(root ::= [a-z]+)", "hello"));
  EXPECT_FALSE(matches(R"(root ::= [a-z]+)", "Hello"));
  EXPECT_TRUE(matches(R"(root ::= [^a-z]+)", "ABC 123!"));
  EXPECT_FALSE(matches(R"(root ::= [^a-z]+)", "ABc"));
  // '-' at the end is literal; escaped ']' and '-' inside a class.
  EXPECT_TRUE(matches(R"(root ::= [a-]+)", "a-a"));
  EXPECT_TRUE(matches(R"(root ::= [\]\-\\]+)", "]-\\"));
  EXPECT_FALSE(matches(R"(root ::= [\]\-\\]+)", "a"));
  EXPECT_TRUE(matches(R"(root ::= [a-cx-z0-2]+)", "abcxyz012"));
  EXPECT_FALSE(matches(R"(root ::= [a-cx-z0-2]+)", "d"));
  EXPECT_TRUE(matches(R"(root ::= "\x41\u00e9\U0001F600\t\n\r\"\\\[\]\-")", "A\xC3\xA9\xF0\x9F\x98\x80\t\n\r\"\\[]-"));
  EXPECT_TRUE(matches(R"(root ::= [\x00-\x1F]+)", std::string("\x01\x1f\n", 3)));
  EXPECT_TRUE(matches(R"(root ::= "a" . "b")", "a\nb"));  // '.' is any code point
  EXPECT_TRUE(matches(R"(root ::= "a" . "b")",
                      "a\xE6\x97\xA5"
                      "b"));  // including multi-byte ones
  EXPECT_FALSE(matches(R"(root ::= "a" . "b")", "ab"));
}

TEST(Grammar, Utf8ClassesAndSplitCharacters) {
  const auto g = parse("root ::= [ぁ-ゟ]+ \"。\"?");
  EXPECT_TRUE(matches(g, "ひらがな"));
  EXPECT_TRUE(matches(g, "ひらがな。"));
  EXPECT_FALSE(viable(g, "カ"));  // katakana
  // Fed one byte at a time: every prefix of a valid character stays viable.
  const std::string text = "ひらがな。";
  GrammarMatcher m(g);
  for (size_t i = 0; i < text.size(); ++i) {
    ASSERT_TRUE(m.accept_bytes(text.substr(i, 1))) << i;
    EXPECT_EQ(m.is_complete(), i % 3 == 2) << i;  // after each whole character
  }
  // A first byte that can only start characters outside the class is rejected at once.
  EXPECT_FALSE(viable(g, "\xE3\x82\xA0"));  // U+30A0, just past ゟ (U+309F)
  EXPECT_TRUE(viable(g, "\xE3\x81"));       // U+3040..U+307F: some are hiragana
  EXPECT_FALSE(viable(g, "\xE4"));          // U+4000.. : none
  // Invalid UTF-8 never matches, even for '.'.
  const auto any = parse("root ::= .*");
  EXPECT_TRUE(viable(any, "\xF0\x9F\x98\x80"));
  EXPECT_FALSE(viable(any, "\xFF"));
  EXPECT_FALSE(viable(any, "\xC0\x80"));      // overlong NUL
  EXPECT_FALSE(viable(any, "\xE0\x80"));      // overlong prefix
  EXPECT_FALSE(viable(any, "\xED\xA0\x80"));  // surrogate U+D800
  EXPECT_FALSE(viable(any, "\xF4\x90"));      // beyond U+10FFFF
  EXPECT_FALSE(viable(any, "\x80"));          // continuation without a start
  GrammarMatcher pending(any);
  ASSERT_TRUE(pending.accept_bytes("\xE6\x97"));
  EXPECT_FALSE(pending.is_complete());  // a character is unfinished
  ASSERT_TRUE(pending.accept_bytes("\xA5"));
  EXPECT_TRUE(pending.is_complete());
}

TEST(Grammar, CommentsNewlinesAndNames) {
  const auto g = parse(R"(
# a comment before the rules
root ::= (
    # inside a group, newlines and comments are free
    "1. " move " " move "\n"
    ([1-9] [0-9]? ". " move " " move "\n")+
)
move ::= (pawn | non_pawn | castle) [+#]?   # trailing comment
pawn ::= [a-h] [1-8]
non_pawn ::= [NBKQR] [a-h] [1-8]
castle ::= "O-O" "-O"? |
  "0-0"
)");
  EXPECT_TRUE(matches(g, "1. e4 e5\n2. Nf3 Nc6\n"));
  EXPECT_TRUE(matches(g, "1. e4 e5\n2. O-O O-O-O+\n10. 0-0 Qh5#\n"));
  EXPECT_FALSE(matches(g, "1. e4 e5\n"));
  EXPECT_FALSE(viable(g, "1. e9"));
  EXPECT_TRUE(g->rule_id("non_pawn").has_value());
  EXPECT_EQ(g->rule_name(g->root()), "root");
}

TEST(Grammar, Arithmetic) {
  const auto g = parse(R"g(
root  ::= expr
expr  ::= term ([-+*/] term)*
term  ::= num | "(" space expr ")" space
num   ::= [0-9]+ space
space ::= [ \t\n]*
)g");
  for (const char* ok : {"1", "1+2", "12 *(3 -4)/5", "((7))", "1+(2*(3+(4)))"}) EXPECT_TRUE(matches(g, ok)) << ok;
  for (const char* bad : {"", "1+", "+1", "(1", "1)", "1 2", "()"}) EXPECT_FALSE(matches(g, bad)) << bad;
  EXPECT_TRUE(viable(g, "(1+"));
  EXPECT_FALSE(viable(g, "1)"));
}

TEST(Grammar, JsonObjectGrammar) {
  const auto g = Grammar::parse(json_object_grammar());
  for (const char* ok : {R"({})", R"({"a": 1})", R"({"a":[1,2.5,-3e10,true,false,null],"b":{"c":"x\n\u00e9\"\\"}})",
                         "{\n  \"k\": [ ]\n}", R"({"emoji":"😀","pair":"\ud83d\ude00"})", R"({"a": -0.0e+5})"}) {
    EXPECT_TRUE(matches(g, ok)) << ok;
  }
  for (const char* bad :
       {R"([1])", R"("x")", R"({"a": 1,})", R"({"a" 1})", R"({a: 1})", R"({"a": 01})", R"({"a": "\ud800"})",
        R"({"a": "\q"})", "{\"a\": \"tab\there\"}", R"({"a": .5})", R"({"a": tru})", R"({} {})"}) {
    EXPECT_FALSE(matches(g, bad)) << bad;
  }
}

TEST(Grammar, CompletionAndContinuation) {
  const auto g = parse(R"(root ::= "a" "b"?)");
  GrammarMatcher m(g);
  EXPECT_FALSE(m.is_complete());
  EXPECT_TRUE(m.can_continue());
  ASSERT_TRUE(m.accept_bytes("a"));
  EXPECT_TRUE(m.is_complete());
  EXPECT_TRUE(m.can_continue());
  EXPECT_FALSE(m.accept_bytes("c"));  // rejected: state unchanged
  EXPECT_TRUE(m.is_complete());
  EXPECT_TRUE(m.can_accept_bytes("b"));
  ASSERT_TRUE(m.accept_bytes("b"));
  EXPECT_TRUE(m.is_complete());
  EXPECT_FALSE(m.can_continue());
  m.reset();
  EXPECT_FALSE(m.is_complete());
  EXPECT_TRUE(matches(R"(root ::= "")", ""));
  EXPECT_TRUE(matches(R"(root ::= "x"* )", ""));
}

// ----- errors ------------------------------------------------------------------------------

TEST(Grammar, ErrorsNameLineColumnAndProblem) {
  struct Case {
    const char* grammar;
    const char* expect;
  };
  const Case cases[] = {
      {"root ::= foo", "line 1, column 10: undefined rule 'foo'"},
      {"root ::= a\na ::= \"x\" b\n", "line 2, column 11: undefined rule 'b'"},
      {"root ::= (\"a\" \"b\"", "line 1, column 10: unbalanced parentheses: '(' is never closed"},
      {"root ::= \"a\")", "line 1, column 13: unbalanced parentheses: ')' without a matching '('"},
      {"root ::= (\"a\" ]", "line 1, column 15: expected ')' to close the '(' at line 1, column 10"},
      {"root ::= \"\\q\"", "line 1, column 11: unknown escape '\\q'"},
      {"root ::= \"\\x4\"", "line 1, column 11: bad escape: '\\x' needs 2 hex digits"},
      {"root ::= [\\U00110000]", "beyond U+10FFFF"},
      {"root ::= \"abc", "line 1, column 10: string literal is never closed"},
      {"root ::= [abc", "line 1, column 10: character class '[' is never closed"},
      {"root ::= []", "line 1, column 10: empty character class"},
      {"root ::= [z-a]", "line 1, column 11: reversed range"},
      {"root ::= \"a\"{3,1}", "maximum is below the minimum"},
      {"root ::= \"a\"{20000}", "repetition bound above 10000"},
      {"root ::= \"a\"{2", "expected ',' or '}'"},
      {"root ::= * \"a\"", "line 1, column 10: '*' has nothing before it to repeat"},
      {"root = \"a\"", "line 1, column 6: expected '::=' after the rule name 'root'"},
      {"root ::= \"a\" b ::= \"c\"", "missing newline before the rule 'b'"},
      {"foo ::= \"a\"", "no 'root' rule"},
      {"", "empty"},
      {"root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1: rule 'root' is defined twice (first at line 1, column 1)"},
      {"root ::= expr\nexpr ::= expr \"+\" \"1\" | \"1\"", "left recursion is not supported ('expr' -> 'expr')"},
      {"root ::= a\na ::= b \"x\"\nb ::= \"c\"? a", "left recursion is not supported ('a' -> 'b' -> 'a')"},
      {"root ::= (\"a\"?)*", "repetition of something that can match the empty string"},
      {"root ::= <think>", "needs a vocabulary"},
      {"root ::= !x", "expected a token reference"},
      {"root ::= \"a\" ~", "unexpected '~' in rule 'root'"},
  };
  for (const Case& c : cases) {
    const std::string e = error_of(c.grammar);
    EXPECT_NE(e.find(c.expect), std::string::npos) << "grammar: " << c.grammar << "\nerror: " << e;
    EXPECT_EQ(e.rfind("grammar: ", 0), 0u) << e;
  }
}

// ----- tokens --------------------------------------------------------------------------------

TEST(Grammar, TokenReferencesAndEndOfGeneration) {
  // 0 "a", 1 "b", 2 "ab", 3 <think> (no text), 4 </think> (no text), 5 EOG, 6 "c"
  auto vocab = std::make_shared<const GrammarVocab>(
      std::vector<std::string>{"a", "b", "ab", "", "", "", "c"}, std::vector<int32_t>{5},
      std::vector<std::string>{"a", "b", "ab", "<think>", "</think>", "<eos>", "c"});
  const auto g = Grammar::parse(R"(root ::= <think> !</think>* </think> "a"+)", vocab.get());
  GrammarMatcher m(g, vocab);
  std::vector<uint8_t> allowed;
  m.fill_allowed(allowed);
  EXPECT_EQ(allowed, (std::vector<uint8_t>{0, 0, 0, 1, 0, 0, 0}));
  ASSERT_TRUE(m.accept_token(3));
  m.fill_allowed(allowed);  // any token but </think> (and never EOG), or </think>
  EXPECT_EQ(allowed, (std::vector<uint8_t>{1, 1, 1, 1, 1, 0, 1}));
  ASSERT_TRUE(m.accept_token(6));
  ASSERT_TRUE(m.accept_token(2));
  EXPECT_FALSE(m.accept_token(5));  // EOG before completion
  ASSERT_TRUE(m.accept_token(4));
  m.fill_allowed(allowed);
  EXPECT_EQ(allowed, (std::vector<uint8_t>{1, 0, 0, 0, 0, 0, 0}));
  ASSERT_TRUE(m.accept_token(0));
  m.fill_allowed(allowed);
  EXPECT_EQ(allowed, (std::vector<uint8_t>{1, 0, 0, 0, 0, 1, 0}));  // more "a" or the end
  EXPECT_TRUE(m.token_allowed(5));
  EXPECT_TRUE(m.accept_token(5));
  EXPECT_TRUE(m.is_complete());
  EXPECT_THROW(m.accept_token(7), Error);
  // <[id]> form, and its bounds check.
  const auto byid = Grammar::parse("root ::= <[1]> \"a\"", vocab.get());
  GrammarMatcher k(byid, vocab);
  EXPECT_FALSE(k.accept_token(0));
  EXPECT_TRUE(k.accept_token(1));
  try {
    Grammar::parse("root ::= <[7]>", vocab.get());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos) << e.what();
  }
  try {
    Grammar::parse("root ::= <nope>", vocab.get());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("<nope> is not a single token"), std::string::npos) << e.what();
  }
  GrammarMatcher novocab(byid);
  EXPECT_THROW(novocab.fill_allowed(allowed), Error);
}

// ----- the vocabulary filter against the reference ---------------------------------------------

// Random token texts over `alphabet` (UTF-8 strings), 1..4 characters, some cut inside a
// multi-byte character, plus a few raw bytes.
std::vector<std::string> random_vocab(const std::vector<std::string>& alphabet, size_t n, std::mt19937& rng) {
  std::set<std::string> seen;
  std::vector<std::string> out;
  for (const std::string& a : alphabet) {
    if (seen.insert(a).second) out.push_back(a);
  }
  while (out.size() < n) {
    std::string t;
    const int len = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < len; ++i) t += alphabet[rng() % alphabet.size()];
    if (rng() % 8 == 0 && t.size() > 1) t.pop_back();  // may cut a character
    if (rng() % 50 == 0) t = std::string(1, static_cast<char>(0x80 + rng() % 128));
    if (seen.insert(t).second) out.push_back(t);
  }
  out.push_back("");  // a token without text
  return out;
}

void check_filter(const std::shared_ptr<const Grammar>& g, const std::vector<std::string>& alphabet, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> pieces = random_vocab(alphabet, 600, rng);
  const int32_t eog = static_cast<int32_t>(pieces.size());
  pieces.push_back("");
  auto vocab = std::make_shared<const GrammarVocab>(pieces, std::vector<int32_t>{eog});
  GrammarMatcher m(g, vocab);
  std::string text;  // bytes accepted so far
  std::vector<uint8_t> allowed;
  for (int step = 0; step < 30; ++step) {
    m.fill_allowed(allowed);
    std::vector<int32_t> ok;
    for (int32_t id = 0; id < static_cast<int32_t>(pieces.size()); ++id) {
      bool want;
      if (id == eog) {
        Reference r(g);
        want = r.feed(text) && r.complete();
      } else {
        Reference r(g);
        want = !pieces[static_cast<size_t>(id)].empty() && r.feed(text + pieces[static_cast<size_t>(id)]);
      }
      ASSERT_EQ(allowed[static_cast<size_t>(id)] != 0, want)
          << "step " << step << " after '" << text << "' token '" << pieces[static_cast<size_t>(id)] << "'";
      if (want && id != eog) ok.push_back(id);
    }
    if (ok.empty()) break;
    const int32_t pick = ok[rng() % ok.size()];
    ASSERT_TRUE(m.accept_token(pick));
    text += pieces[static_cast<size_t>(pick)];
  }
}

TEST(Grammar, FilterMatchesReferenceOnRandomVocabularies) {
  check_filter(parse(R"g(
root  ::= expr
expr  ::= term ([-+*/] term)*
term  ::= num | "(" space expr ")" space
num   ::= [0-9]+ space
space ::= [ \t\n]*
)g"),
               {"1", "2", "0", "+", "*", "-", "(", ")", " ", "\n", "x"}, 1);
  check_filter(Grammar::parse(json_object_grammar()), {"{", "}", "[", "]", "\"", ":", ",",  " ", "\n", "a", "1",
                                                       "-", ".", "e", "t", "r",  "u", "\\", "n", "é",  "😀", "\t"},
               2);
  check_filter(parse("root ::= ([ぁ-ゟ] | [a-c]{2,3} | \"é\"){1,6} \"。\""),
               {"ひ", "ら", "a", "b", "c", "é", "。", "カ"}, 3);
  check_filter(parse(R"(root ::= ("ab" | "a" "b"? "c"*)+ [^a-c]?)"), {"a", "b", "c", "d", "é"}, 4);
}

TEST(Grammar, CachesAreDroppedAndRebuiltTransparently) {
  // A grammar with very many distinct states: counting up to 27000 characters.
  const auto g = parse("root ::= [a-z]{9000} [a-z]{9000} [a-z]{0,9000} \".\"");
  GrammarMatcher m(g);
  const std::string chunk(1000, 'q');
  for (int i = 0; i < 27; ++i) {
    EXPECT_FALSE(m.is_complete());
    ASSERT_TRUE(m.accept_bytes(chunk)) << i;
    if (i == 17) {
      EXPECT_TRUE(m.can_accept_bytes("."));
    }
    if (i == 16) {
      EXPECT_FALSE(m.can_accept_bytes("."));
    }
  }
  EXPECT_LT(m.n_states(), 20000u);  // bounded by the flush
  EXPECT_FALSE(m.accept_bytes("q"));
  EXPECT_TRUE(m.accept_bytes("."));
  EXPECT_TRUE(m.is_complete());
}

// ----- robustness ------------------------------------------------------------------------------

TEST(Grammar, MutatedGrammarsParseOrFailWithAnError) {
  const std::vector<std::string> seeds = {
      R"g(root ::= expr
expr ::= term ([-+*/] term)*
term ::= num | "(" space expr ")" space
num ::= [0-9]+ space
space ::= [ \t\n]*)g",
      json_object_grammar(),
      "root ::= [ぁ-ゟ]{2,5} (\"x\" | [^a-c\\]]?)* .\n",
      "root ::= \"\\x41\\u00e9\" a{0,3}\na ::= ( \"q\" | b )+ # c\nb ::= [\\x00-\\x1F]",
  };
  const std::string specials = "()[]{}|*+?.\"\\#:=-^,<>!0123456789\n axé";
  std::mt19937 rng(11);
  auto vocab = std::make_shared<const GrammarVocab>(std::vector<std::string>{"a", "(", "1", "\"", "{", " ", "é", ""},
                                                    std::vector<int32_t>{7});
  std::vector<uint8_t> allowed;
  int parsed = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::string g = seeds[rng() % seeds.size()];
    const int n_mut = 1 + static_cast<int>(rng() % 2);
    for (int k = 0; k < n_mut && !g.empty(); ++k) {
      const size_t at = rng() % g.size();
      switch (rng() % 4) {
        case 0:
          g.insert(at, 1, specials[rng() % specials.size()]);
          break;
        case 1:
          g.erase(at, 1);
          break;
        case 2:
          g[at] = specials[rng() % specials.size()];
          break;
        default:
          g.insert(at, g.substr(at, rng() % 12));
          break;
      }
    }
    try {
      const auto grammar = Grammar::parse(g);
      ++parsed;
      GrammarMatcher m(grammar, vocab);
      for (int step = 0; step < 20; ++step) {
        m.fill_allowed(allowed);
        std::vector<int32_t> ok;
        for (int32_t id = 0; id < 7; ++id) {
          if (allowed[static_cast<size_t>(id)]) ok.push_back(id);
        }
        if (ok.empty()) break;
        ASSERT_TRUE(m.accept_token(ok[rng() % ok.size()]));
      }
    } catch (const Error&) {
      // a clear error is fine; anything else fails the test
    }
  }
  EXPECT_GT(parsed, 500);  // the mutations leave many grammars valid
}

TEST(Grammar, DeepNestingIsAnErrorOrFollowedNotACrash) {
  std::string deep = "root ::= ";
  deep.append(5000, '(');
  deep += "\"a\"";
  deep.append(5000, ')');
  EXPECT_NE(error_of(deep).find("groups nested deeper than 256"), std::string::npos);
  std::string chain = "root ::= r0\n";
  for (int i = 0; i < 20000; ++i) {
    chain.append("r").append(std::to_string(i)).append(" ::= r").append(std::to_string(i + 1)).append(" | \"x\"\n");
  }
  chain += "r20000 ::= \"y\"\n";
  EXPECT_NE(error_of(chain).find("(no error)"), std::string::npos);  // parses: no recursion in the checks
  // 20000 rules each starting the next or ending: 20001 stacks at the start, each level's
  // expansion holding all the deeper ones (quadratic): an error rather than gigabytes.
  try {
    GrammarMatcher m(Grammar::parse(chain));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too ambiguous"), std::string::npos) << e.what();
  }
  // 3000 such rules are followed.
  std::string shorter = "root ::= r0\n";
  for (int i = 0; i < 3000; ++i) {
    shorter.append("r").append(std::to_string(i)).append(" ::= r").append(std::to_string(i + 1)).append(" | \"x\"\n");
  }
  shorter += "r3000 ::= \"y\"\n";
  EXPECT_TRUE(matches(Grammar::parse(shorter), "y"));
  EXPECT_TRUE(matches(Grammar::parse(shorter), "x"));
  // Nested text in an ambiguous grammar: every level may end at once, so each step keeps one
  // stack per level (and costs the square of the depth).
  const auto g = parse(R"g(root ::= "(" root? ")"?)g");
  GrammarMatcher m(g);
  ASSERT_TRUE(m.accept_bytes(std::string(300, '(')));
  EXPECT_TRUE(m.is_complete());
  ASSERT_TRUE(m.accept_bytes(std::string(300, ')')));
  EXPECT_TRUE(m.is_complete());
  EXPECT_FALSE(m.accept_bytes(")"));
}

}  // namespace
}  // namespace hearth::sample
