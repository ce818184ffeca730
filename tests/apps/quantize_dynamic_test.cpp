// `hearth quantize --dynamic` end to end: the written file keeps to the budget (bits per weight,
// or a mix's size), overrides are kept, the table lists every quantized tensor; bad arguments
// give one-line errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <set>
#include <sys/wait.h>

#include "gguf/gguf.h"
#include "quant/mix.h"
#include "quant/types.h"

namespace {

struct CliRun {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

CliRun hearth(const std::string& args) {
  const std::string cmd = std::string(HEARTH_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  CliRun r;
  if (p == nullptr) return r;
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, got);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return r;
}

std::string temp(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("hearth-quantize-dynamic-" + name)).string();
}

const std::string kModel = std::string(HEARTH_SOURCE_DIR) + "/models/hearth-kjv-F16.gguf";
const std::string kText = std::string(HEARTH_SOURCE_DIR) + "/models/kjv-heldout-ci.txt";

// Bytes and weights of the tensors a mix quantizes (should_quantize()), read from a written file.
struct Quantized {
  uint64_t bytes = 0, weights = 0;
  double bpw() const { return 8.0 * static_cast<double>(bytes) / static_cast<double>(weights); }
};

Quantized quantized_part(const hearth::gguf::File& f) {
  Quantized q;
  for (const auto& t : f.tensors())
    if (hearth::quant::should_quantize(t.name, t.n_dims)) q.bytes += t.nbytes, q.weights += t.n_elements();
  return q;
}

class QuantizeDynamicCli : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    imatrix_ = new std::string(temp("kjv.imatrix.gguf"));
    const CliRun r = hearth("imatrix " + kModel + " " + kText + " -o " + *imatrix_ + " -c 64 --chunks 4 -t 2");
    ASSERT_EQ(r.exit_code, 0) << r.out;
  }
  static void TearDownTestSuite() {
    std::filesystem::remove(*imatrix_);
    delete imatrix_;
  }
  static std::string* imatrix_;
};

std::string* QuantizeDynamicCli::imatrix_ = nullptr;

TEST_F(QuantizeDynamicCli, KeepsToABitsPerWeightBudget) {
  const std::string out = temp("3.9.gguf");
  const CliRun r = hearth("quantize " + kModel + " " + out + " --dynamic 3.9 --imatrix " + *imatrix_ +
                          " --dynamic-sample 16384 -t 2 --tensor-type attn_v=Q8_0");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const hearth::gguf::File f = hearth::gguf::File::open(out);
  const Quantized q = quantized_part(f);
  EXPECT_EQ(q.weights, 5770496u - 3328u);  // all but the F32 norms
  EXPECT_LE(q.bpw(), 3.9);
  EXPECT_GT(q.bpw(), 3.8);  // the budget is used
  // The override holds; the norms stay F32; the table has a row per quantized tensor.
  int n_v = 0;
  for (const auto& t : f.tensors()) {
    if (t.name.find("attn_v") != std::string::npos) {
      EXPECT_EQ(t.type, hearth::quant::GgmlType::Q8_0) << t.name;
      ++n_v;
      EXPECT_NE(r.out.find(t.name + std::string(32 - t.name.size(), ' ') + " Q8_0"), std::string::npos) << r.out;
    }
    if (t.name.find("_norm") != std::string::npos) {
      EXPECT_EQ(t.type, hearth::quant::GgmlType::F32) << t.name;
    }
    if (hearth::quant::should_quantize(t.name, t.n_dims)) {
      EXPECT_NE(r.out.find("\n" + t.name + " "), std::string::npos) << t.name;
    }
  }
  EXPECT_EQ(n_v, 6);
  EXPECT_NE(r.out.find("dynamic: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("wrote " + out), std::string::npos) << r.out;
  // Several types are used: the budget lies between rungs.
  std::set<hearth::quant::GgmlType> types;
  for (const auto& t : f.tensors())
    if (hearth::quant::should_quantize(t.name, t.n_dims)) types.insert(t.type);
  EXPECT_GE(types.size(), 3u);
  std::filesystem::remove(out);
}

TEST_F(QuantizeDynamicCli, KeepsToTheSizeOfAMix) {
  const std::string fixed = temp("q3km.gguf"), dyn = temp("dyn-q3km.gguf");
  CliRun r = hearth("quantize " + kModel + " " + fixed + " Q3_K_M --imatrix " + *imatrix_ + " -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = hearth("quantize " + kModel + " " + dyn + " --dynamic q3_k_m --imatrix " + *imatrix_ +
             " --dynamic-sample 16384 --dynamic-weighting tensor -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("the size of Q3_K_M"), std::string::npos) << r.out;
  const Quantized a = quantized_part(hearth::gguf::File::open(fixed));
  const Quantized b = quantized_part(hearth::gguf::File::open(dyn));
  EXPECT_EQ(a.weights, b.weights);
  EXPECT_LE(b.bytes, a.bytes);
  EXPECT_GT(b.bytes, a.bytes * 99 / 100);
  std::filesystem::remove(fixed);
  std::filesystem::remove(dyn);
}

TEST_F(QuantizeDynamicCli, BadArgumentsAreOneLineErrors) {
  const std::string out = temp("bad.gguf");
  const std::string base = "quantize " + kModel + " " + out + " ";
  const std::string im = " --imatrix " + *imatrix_;
  struct Case {
    std::string args, message;
    bool parse_error = false;  // rejected by the option parser (CLI11's exit codes), not hearth::Error (1)
  };
  const Case cases[] = {
      {"Q4_K_M --dynamic 4.5" + im, "not both"},
      {im, "or --dynamic BPW"},
      {"--dynamic 4.5", "needs an importance matrix"},
      {"--dynamic 1.0" + im, "out of reach"},
      {"--dynamic 9" + im, "out of reach"},
      {"--dynamic 0" + im, "positive number"},
      {"--dynamic Q4_K_X" + im, "expected bits per weight"},
      {"--dynamic 4.5 --pure" + im, "--pure and --dynamic"},
      {"Q4_K_M --dynamic-weighting tensor" + im, "requires --dynamic", true},
      {"--dynamic 4.5 --dynamic-weighting bits" + im, "dynamic-weighting", true},
  };
  for (const Case& c : cases) {
    const CliRun r = hearth(base + c.args);
    if (c.parse_error) EXPECT_GT(r.exit_code, 1) << c.args << "\n" << r.out;
    else EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << c.args << "\n" << r.out;
    EXPECT_FALSE(std::filesystem::exists(out)) << c.args;
  }
  // The range is named; its top is every tensor in Q8_0, the dearest rung.
  const CliRun r = hearth(base + "--dynamic 9" + im);
  EXPECT_NE(r.out.find("to 8.5 bits per weight"), std::string::npos) << r.out;
  const size_t at = r.out.find("hearth: error: ");
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin() + static_cast<std::ptrdiff_t>(at), r.out.end(), '\n'), 1) << r.out;
}

}  // namespace
