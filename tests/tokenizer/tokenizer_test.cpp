// Tokenizer behaviour beyond the conformance cases: special tokens, BOS/EOS, EOG, streaming,
// invalid ids, random round trips, and malformed vocabulary metadata (formats.md §5).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "hearth/error.h"
#include "tokenizer/tokenizer.h"

namespace {

using hearth::Error;
using hearth::gguf::File;
using hearth::gguf::Value;
using hearth::gguf::Writer;
using namespace hearth::tokenizer;
using Ids = std::vector<int32_t>;

const Tokenizer& real_vocab(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[name];
  if (!slot) {
    const auto file = File::open(std::string(HEARTH_TESTDATA_DIR) + "/tokenizer/ggml-vocab-" + name + ".gguf");
    slot = std::make_unique<Tokenizer>(Tokenizer::from_gguf(file));
  }
  return *slot;
}

std::string streamed(const Tokenizer& tok, const Ids& ids) {
  StreamDecoder stream(tok);
  std::string out;
  for (int32_t id : ids) out += stream.push(id);
  return out + stream.flush();
}

// ---- metadata and accessors ----

TEST(Tokenizer, ReadsSpecialIdsFlagsAndEog) {
  const Tokenizer& spm = real_vocab("llama-spm");
  EXPECT_EQ(spm.vocab().algorithm(), Algorithm::SPM);
  EXPECT_EQ(spm.n_vocab(), 32000);
  EXPECT_EQ(spm.bos(), 1);
  EXPECT_EQ(spm.eos(), 2);
  EXPECT_TRUE(spm.add_bos());
  EXPECT_FALSE(spm.add_eos());
  EXPECT_TRUE(spm.vocab().flags().add_space_prefix);
  EXPECT_FALSE(spm.vocab().flags().clean_spaces);
  EXPECT_EQ(spm.vocab().eog_ids(), Ids({2}));
  EXPECT_TRUE(spm.is_control(1));
  EXPECT_FALSE(spm.is_control(22172));
  EXPECT_EQ(spm.token_text(22172), "\xE2\x96\x81hello");
  EXPECT_EQ(spm.token_type(0), TokenType::UNKNOWN);
  EXPECT_EQ(spm.token_type(13), TokenType::BYTE);
  EXPECT_EQ(spm.find_token("\xE2\x96\x81hello"), 22172);
  EXPECT_EQ(spm.find_token("no such token"), std::nullopt);
  EXPECT_NE(spm.token_score(22172), 0.0f);

  const Tokenizer& gpt2 = real_vocab("gpt-2");
  EXPECT_EQ(gpt2.vocab().algorithm(), Algorithm::BPE);
  EXPECT_EQ(gpt2.n_vocab(), 50257);
  EXPECT_EQ(gpt2.bos(), 50256);
  EXPECT_FALSE(gpt2.add_bos());
  EXPECT_TRUE(gpt2.vocab().flags().clean_spaces);
  EXPECT_EQ(gpt2.vocab().merges().size(), 50000u);
  EXPECT_EQ(gpt2.vocab().merges().rank("\xC4\xA0", "t"), 0);  // "Ġ t" is the first merge
  EXPECT_TRUE(gpt2.is_eog(50256));
  EXPECT_FALSE(gpt2.is_eog(50255));

  // phi-3: EOS is <|endoftext|>; <|end|> and </s> end generation by their texts; </s> is a
  // USER_DEFINED token that the EOG rule also makes CONTROL; special tokens get RSTRIP.
  const Tokenizer& phi3 = real_vocab("phi-3");
  EXPECT_EQ(phi3.eos(), 32000);
  EXPECT_EQ(phi3.vocab().eog_ids(), Ids({2, 32000, 32007}));
  EXPECT_EQ(phi3.vocab().attrs(2), attr::USER_DEFINED | attr::CONTROL | attr::RSTRIP);
  EXPECT_TRUE(phi3.vocab().attrs(32010) & attr::RSTRIP);   // <|user|>
  EXPECT_FALSE(phi3.vocab().attrs(32000) & attr::RSTRIP);  // <|endoftext|>
  EXPECT_FALSE(phi3.vocab().attrs(1) & attr::RSTRIP);      // <s>

  const Tokenizer& deepseek = real_vocab("deepseek-llm");
  EXPECT_TRUE(deepseek.add_bos());
  EXPECT_FALSE(deepseek.vocab().flags().clean_spaces);  // pre 'deepseek-llm' turns it off
  EXPECT_EQ(deepseek.vocab().pre_name(), "deepseek-llm");

  EXPECT_THROW(spm.token_text(32000), Error);
  EXPECT_THROW(spm.token_text(-1), Error);
}

// ---- special tokens (formats.md §5.4) ----

TEST(Tokenizer, SpmParsesSpecialTokenTextOnlyWhenAsked) {
  const Tokenizer& tok = real_vocab("llama-spm");
  // After a special token the raw fragment gets the SPM space prefix again.
  EXPECT_EQ(tok.encode("<s>hello</s>", false, true), Ids({1, 22172, 2}));
  const Ids plain = tok.encode("<s>hello</s>", false, false);
  EXPECT_EQ(plain, Ids({529, 29879, 29958, 12199, 829, 29879, 29958}));
  EXPECT_EQ(tok.decode(plain, false, false), "<s>hello</s>");
  // add_special adds BOS (add_bos) but no EOS (add_eos is false); an empty text gives just BOS.
  EXPECT_EQ(tok.encode("hello", true, false), Ids({1, 22172}));
  EXPECT_EQ(tok.encode("", true, false), Ids({1}));
  EXPECT_EQ(tok.encode("", false, false), Ids());
}

TEST(Tokenizer, Gpt2ParsesEndOfTextOnlyWhenAsked) {
  const Tokenizer& tok = real_vocab("gpt-2");
  EXPECT_EQ(tok.encode("<|endoftext|>", false, true), Ids({50256}));
  EXPECT_EQ(tok.encode("a<|endoftext|>b", false, true), Ids({64, 50256, 65}));
  const Ids plain = tok.encode("<|endoftext|>", false, false);
  EXPECT_EQ(plain, Ids({27, 91, 437, 1659, 5239, 91, 29}));
  EXPECT_EQ(tok.decode(plain, false, false), "<|endoftext|>");
  // gpt-2 sets no add_bos: add_special adds nothing.
  EXPECT_EQ(tok.encode("hi", true, false), tok.encode("hi", false, false));
}

TEST(Tokenizer, UserDefinedTokensAreAlwaysSplitOut) {
  // deepseek-llm has USER_DEFINED single-character tokens such as 'ø' (id 100002).
  const Tokenizer& tok = real_vocab("deepseek-llm");
  EXPECT_EQ(tok.encode("ø", false, false), Ids({100002}));
  EXPECT_EQ(tok.encode("høj ø", false, false), Ids({71, 100002, 73, 207, 100002}));
  EXPECT_EQ(tok.decode(tok.encode("høj ø", false, false), false, false), "høj ø");
  // add_bos comes from the metadata here.
  EXPECT_EQ(tok.encode("ø", true, false), Ids({100000, 100002}));
}

TEST(Tokenizer, Phi3RstripRemovesWhitespaceAfterSpecialTokens) {
  const Tokenizer& tok = real_vocab("phi-3");
  EXPECT_EQ(tok.encode("<|user|>  hello", false, true), Ids({32010, 22172}));
  // </s> is USER_DEFINED but also CONTROL (EOG), so plain text does not split it.
  EXPECT_EQ(tok.encode("</s> x", false, true), Ids({2, 921}));
  const Ids plain = tok.encode("</s> x", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
}

// ---- detokenization (formats.md §5.10) ----

TEST(Tokenizer, DecodeHandlesSpecialTokensAndTheSpmPrefix) {
  const Tokenizer& tok = real_vocab("llama-spm");
  const Ids ids = tok.encode("Hello world", true, false);  // 1 15043 3186
  ASSERT_EQ(ids, Ids({1, 15043, 3186}));
  // llama.cpp quirk (formats.md §5.10 step 2): a sequence that starts with BOS keeps the space,
  // whether or not remove_special drops the BOS.
  EXPECT_EQ(tok.decode(ids, true, false), " Hello world");
  EXPECT_EQ(tok.decode(ids, false, false), " Hello world");
  EXPECT_EQ(tok.decode(ids, false, true), "<s> Hello world");
  EXPECT_EQ(tok.decode(Ids({15043, 3186}), false, false), "Hello world");
  EXPECT_EQ(tok.token_to_piece(15043, false), " Hello");
  EXPECT_EQ(tok.token_to_piece(1, false), "");
  EXPECT_EQ(tok.token_to_piece(1, true), "<s>");
  EXPECT_EQ(tok.token_to_piece(13, false), "\n");  // <0x0A>
}

TEST(Tokenizer, DecodeAppliesCleanSpaces) {
  const Tokenizer& tok = real_vocab("gpt-2");
  EXPECT_EQ(tok.decode(tok.encode("Hello , world ! I 's", false, false), false, false), "Hello, world! I's");
  EXPECT_EQ(tok.decode(tok.encode("don 't , they 're", false, false), false, false), "don 't, they're");
  EXPECT_EQ(tok.decode(tok.encode("a ' b", false, false), false, false), "a'b");
  // deepseek-llm has clean_spaces off.
  const Tokenizer& ds = real_vocab("deepseek-llm");
  EXPECT_EQ(ds.decode(ds.encode("Hello , world ! I 's", false, false), false, false), "Hello , world ! I 's");
}

TEST(Tokenizer, InvalidIdsThrowInsteadOfReadingOutOfBounds) {
  for (const char* name : {"llama-spm", "gpt-2"}) {
    const Tokenizer& tok = real_vocab(name);
    const int32_t n = tok.n_vocab();
    EXPECT_THROW(tok.token_to_piece(n, false), Error) << name;
    EXPECT_THROW(tok.token_to_piece(-1, true), Error) << name;
    EXPECT_THROW(tok.decode(Ids({5, n}), false, false), Error) << name;
    EXPECT_THROW(tok.decode(Ids({-7}), true, true), Error) << name;
    EXPECT_THROW(tok.is_control(n), Error) << name;
    StreamDecoder stream(tok);
    EXPECT_THROW(stream.push(n + 100), Error) << name;
  }
}

// ---- streaming (formats.md §5.10) ----

TEST(StreamDecoder, HoldsBackSpmByteTokensUntilTheCharacterIsComplete) {
  const Tokenizer& tok = real_vocab("llama-spm");
  // "🦙" (F0 9F A6 99) has no token: "▁" and four byte tokens.
  const Ids ids = tok.encode("\xF0\x9F\xA6\x99", false, false);
  ASSERT_EQ(ids, Ids({29871, 243, 162, 169, 156}));
  StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(29871), " ");
  EXPECT_EQ(stream.push(243), "");
  EXPECT_EQ(stream.pending_bytes(), 1u);
  EXPECT_EQ(stream.push(162), "");
  EXPECT_EQ(stream.push(169), "");
  EXPECT_EQ(stream.push(156), "\xF0\x9F\xA6\x99");
  EXPECT_EQ(stream.pending_bytes(), 0u);
  EXPECT_EQ(stream.flush(), "");
}

TEST(StreamDecoder, HoldsBackByteLevelBpeTokens) {
  const Tokenizer& tok = real_vocab("gpt-2");
  // " 🦙" is "Ġð Ł" (space + F0 9F), "¦" (A6), "Ļ" (99).
  const Ids ids = tok.encode(" \xF0\x9F\xA6\x99", false, false);
  ASSERT_EQ(ids, Ids({12520, 99, 247}));
  StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(12520), " ");
  EXPECT_EQ(stream.push(99), "");
  EXPECT_EQ(stream.push(247), "\xF0\x9F\xA6\x99");
}

TEST(StreamDecoder, TruncatedOrInvalidUtf8ComesOutOnFlush) {
  const Tokenizer& tok = real_vocab("llama-spm");
  StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(tok.find_token("<0xE2>").value()), "");
  EXPECT_EQ(stream.push(tok.find_token("<0x96>").value()), "");
  EXPECT_EQ(stream.flush(), "\xE2\x96");  // a truncated sequence, as raw bytes
  EXPECT_EQ(stream.flush(), "");
  // A byte that can never start a character is not held back.
  EXPECT_EQ(stream.push(tok.find_token("<0x80>").value()), "\x80");
  // A lead byte followed by ASCII: the broken sequence is passed on with the ASCII.
  EXPECT_EQ(stream.push(tok.find_token("<0xF0>").value()), "");
  EXPECT_EQ(stream.push(tok.find_token("<0x41>").value()), "\xF0" "A");
  // Special tokens are rendered only on request.
  StreamDecoder special(tok, /*special=*/true);
  EXPECT_EQ(special.push(1), "<s>");
  StreamDecoder plain(tok);
  EXPECT_EQ(plain.push(1), "");
}

// ---- randomized round trips ----

std::string random_text(std::mt19937& rng) {
  static const std::vector<std::string> pieces = {
      "a", "b", "z", "Q", "the", "Hello", "world", "don't", "I'm", "0", "7", "42", "12345", "3.14",
      " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", ".", ",", "!", "?", "'", "\"", "-", "(", ")",
      "<", ">", "|", "$", "#", "@", "~", "`", "_", "é", "ü", "ß", "Ж", "щ", "中", "文", "日本", "한",
      "ก", "ि", "\xCC\x81", "\xE2\x80\x8B", "\xC2\xA0", "\xE3\x80\x80", "\xF0\x9F\xA6\x99",
      "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD", "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9", "\xE2\x82\xAC",
      "\xE2\x85\xAB", "\xD9\xA3", "\xC2\xBD", "\xF0\x9D\x94\x84"};
  std::uniform_int_distribution<size_t> count(0, 12);
  std::uniform_int_distribution<size_t> pick(0, pieces.size() - 1);
  std::string s;
  for (size_t n = count(rng); n > 0; --n) s += pieces[pick(rng)];
  return s;
}

bool clean_spaces_could_change(const std::string& s) {
  for (const char* p : {" ?", " !", " .", " ,", " ' ", " 's", " 'm", " 're", " 've"}) {
    if (s.find(p) != std::string::npos) return true;
  }
  return false;
}

TEST(Tokenizer, RandomStringsRoundTrip) {
  for (const char* name : {"llama-spm", "gpt-2"}) {
    const Tokenizer& tok = real_vocab(name);
    const bool spm = tok.vocab().flags().add_space_prefix;
    std::mt19937 rng(1234);
    int checked_decode = 0;
    for (int i = 0; i < 3000; ++i) {
      const std::string text = random_text(rng);
      const Ids ids = tok.encode(text, false, false);
      std::string s = streamed(tok, ids);
      if (spm && !text.empty()) {
        ASSERT_EQ(s.substr(0, 1), " ") << name << ": " << text;
        s.erase(0, 1);
      }
      ASSERT_EQ(s, text) << name << ": streamed pieces";
      if (!(tok.vocab().flags().clean_spaces && clean_spaces_could_change(text))) {
        ASSERT_EQ(tok.decode(ids, false, false), text) << name;
        ++checked_decode;
      }
      // With BOS added and removed again, the SPM space stays (the llama.cpp quirk).
      if (spm) {
        ASSERT_EQ(tok.decode(tok.encode(text, true, false), true, false), text.empty() ? "" : " " + text) << name;
      }
    }
    EXPECT_GT(checked_decode, 1500) << name;
  }
}

TEST(Tokenizer, InvalidUtf8NeverThrows) {
  const std::string bad = "ok \xFF\xFE \xF0\x9F tail \xC3";
  const Tokenizer& spm = real_vocab("llama-spm");
  // SPM keeps the raw bytes (byte fallback). Characters are cut by the lead byte's length, so
  // a bad lead byte swallows the '▁' after it, which then comes back as its raw bytes.
  EXPECT_EQ(streamed(spm, spm.encode(bad, false, false)),
            " ok \xFF\xFE\xE2\x96\x81\xF0\x9F\xE2\x96\x81tail \xC3");
  // Byte-level BPE reads each bad byte as U+FFFD.
  const Tokenizer& gpt2 = real_vocab("gpt-2");
  EXPECT_EQ(gpt2.decode(gpt2.encode(bad, false, false), false, false),
            "ok \xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD tail \xEF\xBF\xBD");
}

// ---- small vocabularies written with gguf::Writer ----

std::vector<uint8_t> to_bytes(Writer& w) {
  std::ostringstream out;
  w.begin(out);
  w.finish();
  const std::string s = out.str();
  return {s.begin(), s.end()};
}

// A tiny SPM vocabulary: <unk> <s> </s>, byte tokens for 'a'/'b', and a few pieces.
Writer spm_writer() {
  Writer w;
  w.set("general.architecture", Value::of("llama"));
  w.set("tokenizer.ggml.model", Value::of("llama"));
  w.set("tokenizer.ggml.tokens", Value::array(std::vector<std::string>{
                                     "<unk>", "<s>", "</s>", "<0x61>", "<0x62>", "\xE2\x96\x81", "a", "b",
                                     "\xE2\x96\x81" "a", "ab", "\xE2\x96\x81" "ab"}));
  w.set("tokenizer.ggml.scores",
        Value::array(std::vector<float>{0, 0, 0, 0, 0, -1, -2, -2, -3, -1, -0.5f}));
  w.set("tokenizer.ggml.token_type",
        Value::array(std::vector<int32_t>{2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 1}));
  return w;
}

// A tiny byte-level BPE vocabulary with the GPT-2 pre-tokenizer.
Writer bpe_writer() {
  Writer w;
  w.set("general.architecture", Value::of("gpt2"));
  w.set("tokenizer.ggml.model", Value::of("gpt2"));
  w.set("tokenizer.ggml.pre", Value::of("gpt-2"));
  w.set("tokenizer.ggml.tokens", Value::array(std::vector<std::string>{
                                     "a", "b", "\xC4\xA0", "ab", "\xC4\xA0" "ab", "<|endoftext|>"}));
  w.set("tokenizer.ggml.token_type", Value::array(std::vector<int32_t>{1, 1, 1, 1, 1, 3}));
  w.set("tokenizer.ggml.merges", Value::array(std::vector<std::string>{"a b", "\xC4\xA0 ab"}));
  w.set("tokenizer.ggml.eos_token_id", Value::of(uint32_t{5}));
  return w;
}

Tokenizer load(Writer& w) { return Tokenizer::from_gguf(File::from_bytes(to_bytes(w), "tiny.gguf")); }

// The Error of loading `w`, or "" if it loaded.
std::string load_error(Writer& w) {
  try {
    load(w);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TinyVocab, SpmMergesByScoreAndFallsBackToBytes) {
  Writer w = spm_writer();
  const Tokenizer tok = load(w);
  // "▁ab" (score -0.5) beats "▁a" (-3) and "ab" (-1).
  EXPECT_EQ(tok.encode("ab", false, false), Ids({10}));
  EXPECT_EQ(tok.encode("ab ab", true, false), Ids({1, 10, 10}));
  // 'c' has neither a piece nor a byte token: it becomes <unk>.
  EXPECT_EQ(tok.encode("c", false, false), Ids({5, 0}));
  EXPECT_EQ(tok.decode(Ids({10, 10}), false, false), "ab ab");
  EXPECT_EQ(tok.decode(Ids({3, 4}), false, false), "ab");
}

TEST(TinyVocab, BpeMergesByRank) {
  Writer w = bpe_writer();
  const Tokenizer tok = load(w);
  EXPECT_EQ(tok.encode("ab ab", false, false), Ids({3, 4}));
  EXPECT_EQ(tok.encode("ba", false, false), Ids({1, 0}));
  // No token for 'c' or its mapped byte: dropped, as llama.cpp does.
  EXPECT_EQ(tok.encode("acb", false, false), Ids({0, 1}));
  EXPECT_EQ(tok.decode(Ids({3, 4}), false, false), "ab ab");
  EXPECT_EQ(tok.eos(), 5);
  EXPECT_EQ(tok.bos(), std::nullopt);  // the default id 11 is outside this vocabulary
  EXPECT_TRUE(tok.is_eog(5));
}

TEST(TinyVocab, Gemma4IsRawUtf8BpeWithEscapedSpaces) {
  Writer w;
  w.set("tokenizer.ggml.model", Value::of("gemma4"));
  w.set("tokenizer.ggml.tokens",
        Value::array(std::vector<std::string>{"<pad>", "<eos>", "<bos>", "\xE2\x96\x81", "h", "i", "hi",
                                              "\xE2\x96\x81" "hi", "\n", "\n\n", "<0x41>"}));
  w.set("tokenizer.ggml.token_type", Value::array(std::vector<int32_t>{3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 6}));
  w.set("tokenizer.ggml.merges", Value::array(std::vector<std::string>{"h i", "\xE2\x96\x81 hi"}));
  w.set("tokenizer.ggml.bos_token_id", Value::of(uint32_t{2}));
  w.set("tokenizer.ggml.eos_token_id", Value::of(uint32_t{1}));
  w.set("tokenizer.ggml.add_bos_token", Value::of(false));  // gemma4 forces add_bos anyway
  const Tokenizer tok = load(w);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_FALSE(tok.vocab().flags().byte_encode);
  EXPECT_EQ(tok.encode("hi hi\n\nA", true, false), Ids({2, 6, 7, 9, 10}));
  EXPECT_EQ(tok.decode(Ids({6, 7, 9, 10}), false, false), "hi hi\n\nA");
}

TEST(TinyVocab, MalformedMetadataNamesTheKey) {
  {
    Writer w = spm_writer();
    w.remove("tokenizer.ggml.tokens");
    EXPECT_NE(load_error(w).find("'tokenizer.ggml.tokens' is missing"), std::string::npos) << load_error(w);
  }
  {
    Writer w = spm_writer();
    w.set("tokenizer.ggml.tokens", Value::array(std::vector<int32_t>{1, 2, 3}));
    EXPECT_NE(load_error(w).find("tokenizer.ggml.tokens"), std::string::npos) << load_error(w);
  }
  {
    Writer w = spm_writer();
    w.set("tokenizer.ggml.tokens", Value::array(std::vector<std::string>{}));
    EXPECT_NE(load_error(w).find("tokenizer.ggml.tokens"), std::string::npos) << load_error(w);
  }
  {
    Writer w = spm_writer();
    w.set("tokenizer.ggml.scores", Value::array(std::vector<float>{0, 0, 0}));
    EXPECT_NE(load_error(w).find("'tokenizer.ggml.scores' has 3 entries, fewer than the 11 tokens"),
              std::string::npos)
        << load_error(w);
  }
  {
    Writer w = spm_writer();
    w.set("tokenizer.ggml.token_type", Value::array(std::vector<float>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
    EXPECT_NE(load_error(w).find("'tokenizer.ggml.token_type' must be an array of integers"), std::string::npos)
        << load_error(w);
  }
  {
    Writer w = spm_writer();
    w.set("tokenizer.ggml.token_type", Value::array(std::vector<int32_t>{1, 1}));
    EXPECT_NE(load_error(w).find("tokenizer.ggml.token_type"), std::string::npos) << load_error(w);
  }
  {
    Writer w = spm_writer();
    w.set("tokenizer.ggml.tokens", Value::array(std::vector<std::string>{"<unk>", "a", "a"}));
    w.remove("tokenizer.ggml.scores");
    w.remove("tokenizer.ggml.token_type");
    EXPECT_NE(load_error(w).find("holds the text 'a' twice"), std::string::npos) << load_error(w);
  }
  {
    Writer w = spm_writer();
    w.remove("tokenizer.ggml.model");
    EXPECT_NE(load_error(w).find("'tokenizer.ggml.model' is missing"), std::string::npos) << load_error(w);
  }
  {
    Writer w = spm_writer();
    w.set("tokenizer.ggml.model", Value::of("frobnicate"));
    const std::string e = load_error(w);
    EXPECT_NE(e.find("'frobnicate'"), std::string::npos) << e;
    EXPECT_NE(e.find("tokenizer.ggml.model"), std::string::npos) << e;
  }
  for (const char* model : {"bert", "t5", "rwkv"}) {
    Writer w = spm_writer();
    w.set("tokenizer.ggml.model", Value::of(model));
    EXPECT_NE(load_error(w).find(std::string("'") + model + "'"), std::string::npos) << load_error(w);
  }
  {
    Writer w = bpe_writer();
    w.set("tokenizer.ggml.pre", Value::of("no-such-pre"));
    const std::string e = load_error(w);
    EXPECT_NE(e.find("'no-such-pre'"), std::string::npos) << e;
    EXPECT_NE(e.find("tokenizer.ggml.pre"), std::string::npos) << e;
  }
  {
    Writer w = bpe_writer();
    w.remove("tokenizer.ggml.merges");
    EXPECT_NE(load_error(w).find("'tokenizer.ggml.merges' is missing"), std::string::npos) << load_error(w);
  }
  {
    Writer w = bpe_writer();
    w.set("tokenizer.ggml.merges", Value::of("a b"));
    EXPECT_NE(load_error(w).find("'tokenizer.ggml.merges' must be an array of strings"), std::string::npos)
        << load_error(w);
  }
  {
    Writer w = bpe_writer();
    w.set("tokenizer.ggml.add_bos_token", Value::of(uint32_t{1}));  // must be BOOL
    EXPECT_NE(load_error(w).find("tokenizer.ggml.add_bos_token"), std::string::npos) << load_error(w);
  }
}

TEST(TinyVocab, ToleratedProblemsBecomeWarnings) {
  Writer w = spm_writer();
  w.set("tokenizer.ggml.token_type", Value::array(std::vector<int32_t>{2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 99}));
  w.set("tokenizer.ggml.eos_token_id", Value::of(uint32_t{500}));
  w.set("tokenizer.ggml.suppress_tokens", Value::array(std::vector<int32_t>{3, -1, 11, 7}));
  w.set("tokenizer.ggml.tokens", Value::array(std::vector<std::string>{
                                     "<unk>", "<s>", "</s>", "<0x61>", "<0x62>", "\xE2\x96\x81", "a", "b",
                                     "\xE2\x96\x81" "a", "", "\xE2\x96\x81" "ab"}));
  const Tokenizer tok = load(w);
  EXPECT_EQ(tok.token_type(10), TokenType::UNDEFINED);  // type 99
  EXPECT_EQ(tok.token_to_piece(10, true), "");          // UNDEFINED renders as nothing
  EXPECT_EQ(tok.token_text(9), "[EMPTY_9]");
  EXPECT_EQ(tok.eos(), 2);  // 500 is out of range: the default stays
  EXPECT_EQ(tok.vocab().suppress_tokens(), Ids({3, 7}));
  EXPECT_EQ(tok.vocab().warnings().size(), 2u);

  Writer b = bpe_writer();
  b.remove("tokenizer.ggml.pre");
  const Tokenizer bpe = load(b);
  EXPECT_EQ(bpe.vocab().pre_name(), "default");
  ASSERT_EQ(bpe.vocab().warnings().size(), 1u);
  EXPECT_NE(bpe.vocab().warnings()[0].find("tokenizer.ggml.pre"), std::string::npos);
}

TEST(TinyVocab, PreTokenizerFlagsAndEogTexts) {
  Writer w = bpe_writer();
  w.set("tokenizer.ggml.pre", Value::of("llama-bpe"));  // LLAMA3: ignore_merges, add_bos
  w.set("tokenizer.ggml.bos_token_id", Value::of(uint32_t{5}));
  w.set("tokenizer.ggml.tokens", Value::array(std::vector<std::string>{
                                     "a", "b", "\xC4\xA0", "ab", "\xC4\xA0" "ab", "<|begin_of_text|>",
                                     "<|eot_id|>", "<|fim_pad|>", "<unused0>", "<|channel|>"}));
  w.set("tokenizer.ggml.token_type", Value::array(std::vector<int32_t>{1, 1, 1, 1, 1, 3, 1, 3, 3, 3}));
  w.set("tokenizer.ggml.token_type", Value::array(std::vector<int32_t>{1, 1, 1, 1, 1, 3, 1, 3, 3, 3, 3}));
  const Tokenizer tok = load(w);
  EXPECT_TRUE(tok.vocab().flags().ignore_merges);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_TRUE(tok.vocab().flags().clean_spaces);
  EXPECT_EQ(tok.encode("ab", true, false), Ids({5, 3}));
  // <|eot_id|> is found by text, becomes EOT and CONTROL; <|fim_pad|> is EOG; <unused0> UNUSED;
  // <|channel|> is forced to USER_DEFINED (split even without parse_special).
  EXPECT_EQ(tok.vocab().special().eot, 6);
  EXPECT_TRUE(tok.is_control(6));
  EXPECT_EQ(tok.vocab().eog_ids(), Ids({5, 6, 7}));  // 5 is eos_token_id
  EXPECT_TRUE(tok.vocab().is_unused(8));
  EXPECT_EQ(tok.vocab().attrs(9), attr::USER_DEFINED);
  EXPECT_EQ(tok.encode("a<|channel|>b", false, false), Ids({0, 9, 1}));
  EXPECT_EQ(tok.encode("a<|eot_id|>b", false, true), Ids({0, 6, 1}));
}

}  // namespace
