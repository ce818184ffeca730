// Conformance with llama.cpp on the real vocabularies of ../shared/testdata/tokenizer/ (see its
// README): exact token ids for every input, and the round trip back to text.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

using hearth::tokenizer::StreamDecoder;
using hearth::tokenizer::Tokenizer;

const std::string kDir = std::string(HEARTH_TESTDATA_DIR) + "/tokenizer/";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Case {
  std::string input;
  std::vector<int32_t> ids;
};

// NAME.gguf.inp: inputs each followed by "\n__ggml_vocab_test__\n"; NAME.gguf.out: one line of
// space-separated ids per input.
std::vector<Case> load_cases(const std::string& name) {
  const std::string inp = read_file(kDir + name + ".gguf.inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Case> cases;
  for (size_t pos = 0; pos < inp.size();) {
    size_t end = inp.find(sep, pos);
    if (end == std::string::npos) end = inp.size();
    cases.push_back({inp.substr(pos, end - pos), {}});
    pos = end + sep.size();
  }
  std::istringstream out(read_file(kDir + name + ".gguf.out"));
  std::string line;
  for (Case& c : cases) {
    if (!std::getline(out, line)) throw std::runtime_error(name + ".gguf.out has too few lines");
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
  }
  return cases;
}

const Tokenizer& tokenizer_for(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[name];
  if (!slot) {
    const auto file = hearth::gguf::File::open(kDir + name + ".gguf");
    slot = std::make_unique<Tokenizer>(Tokenizer::from_gguf(file));
  }
  return *slot;
}

std::string escaped(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return "\"" + out + "\"";
}

std::string ids_string(const std::vector<int32_t>& ids) {
  std::string out;
  for (int32_t id : ids) out += " " + std::to_string(id);
  return out;
}

class Vocabulary : public ::testing::TestWithParam<std::string> {};

TEST_P(Vocabulary, EncodesEveryCaseExactly) {
  const std::string name = GetParam();
  const Tokenizer& tok = tokenizer_for(name);
  const std::vector<Case> cases = load_cases(name);
  ASSERT_EQ(cases.size(), 46u);
  size_t passed = 0;
  for (const Case& c : cases) {
    const std::vector<int32_t> got = tok.encode(c.input, /*add_special=*/false, /*parse_special=*/false);
    if (got == c.ids) {
      ++passed;
      continue;
    }
    size_t first = 0;
    while (first < got.size() && first < c.ids.size() && got[first] == c.ids[first]) ++first;
    ADD_FAILURE() << name << ": input " << escaped(c.input) << "\n  first difference at token " << first
                  << "\n  expected" << ids_string(c.ids) << "\n  got     " << ids_string(got);
  }
  std::printf("[ %s ] %zu/%zu cases match llama.cpp\n", name.c_str(), passed, cases.size());
}

// Streamed pieces reproduce the input (minus the space SPM adds); decode does too wherever
// clean_spaces cannot change the text.
TEST_P(Vocabulary, RoundTripsEveryCase) {
  const std::string name = GetParam();
  const Tokenizer& tok = tokenizer_for(name);
  const bool spm_prefix = tok.vocab().flags().add_space_prefix;
  const bool clean = tok.vocab().flags().clean_spaces;
  for (const Case& c : load_cases(name)) {
    const std::vector<int32_t> ids = tok.encode(c.input, false, false);
    StreamDecoder stream(tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    if (spm_prefix && !c.input.empty()) {
      ASSERT_FALSE(streamed.empty()) << escaped(c.input);
      ASSERT_EQ(streamed[0], ' ') << escaped(c.input);
      streamed.erase(0, 1);
    }
    EXPECT_EQ(streamed, c.input) << name << ": streamed pieces of " << escaped(c.input);

    const bool clean_applies = clean && [&] {
      for (const char* p : {" ?", " !", " .", " ,", " ' ", " 's", " 'm", " 're", " 've"}) {
        if (c.input.find(p) != std::string::npos) return true;
      }
      return false;
    }();
    if (!clean_applies) {
      EXPECT_EQ(tok.decode(ids, false, false), c.input) << name << ": decode of " << escaped(c.input);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, Vocabulary,
                         ::testing::Values("ggml-vocab-gpt-2", "ggml-vocab-llama-spm", "ggml-vocab-phi-3",
                                           "ggml-vocab-deepseek-llm", "ggml-vocab-falcon"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param.substr(std::string("ggml-vocab-").size());
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

}  // namespace
