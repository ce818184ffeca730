// `hearth imatrix` end to end: the written file parses with the reader and has an entry for
// every blk.* matrix of the model; `hearth quantize --imatrix` uses it; errors are one line.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <sys/wait.h>

#include "gguf/gguf.h"
#include "quant/imatrix.h"

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
  return (std::filesystem::temp_directory_path() / ("hearth-imatrix-cli-" + name)).string();
}

const std::string kModel = std::string(HEARTH_SOURCE_DIR) + "/models/hearth-kjv-F16.gguf";
const std::string kText = std::string(HEARTH_SOURCE_DIR) + "/models/kjv-heldout-ci.txt";

TEST(ImatrixCli, WritesAnEntryForEveryLayerMatrix) {
  const std::string out = temp("kjv.imatrix.gguf");
  std::filesystem::remove(out);
  const CliRun r = hearth("imatrix " + kModel + " " + kText + " -o " + out + " -c 64 --chunks 3 -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("wrote " + out), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[3/3]"), std::string::npos) << r.out;
  const hearth::quant::Imatrix m = hearth::quant::Imatrix::read(out);
  EXPECT_EQ(m.chunk_count, 3u);
  EXPECT_EQ(m.chunk_size, 64u);
  EXPECT_EQ(m.datasets, std::vector<std::string>{kText});
  const hearth::gguf::File model = hearth::gguf::File::open(kModel);
  size_t n_blk = 0;
  for (const auto& t : model.tensors()) {
    if (t.name.rfind("blk.", 0) != 0 || t.n_dims < 2) continue;
    ++n_blk;
    const hearth::quant::ImatrixEntry* e = m.find(t.name);
    ASSERT_NE(e, nullptr) << t.name;
    EXPECT_EQ(e->n_in, t.ne[0]) << t.name;
    EXPECT_EQ(e->counts, std::vector<float>{3 * 64.f}) << t.name;
  }
  EXPECT_EQ(m.entries.size(), n_blk);
  EXPECT_GT(n_blk, 0u);

  // The file feeds hearth quantize.
  const std::string q = temp("kjv-q4km.gguf");
  const CliRun qr = hearth("quantize " + kModel + " " + q + " q4_k_m -t 2 --imatrix " + out);
  ASSERT_EQ(qr.exit_code, 0) << qr.out;
  EXPECT_NE(qr.out.find("entries"), std::string::npos) << qr.out;
  std::filesystem::remove(q);
}

// An MoE model: expert stacks get one vector per expert, and the file is complete enough for a
// type that needs an importance matrix everywhere (IQ2_XXS).
TEST(ImatrixCli, MoeStacksHaveOneVectorPerExpert) {
  const std::string moe = std::string(HEARTH_TESTDATA_DIR) + "/models/qwen3moe-F16.gguf";
  const std::string out = temp("moe.imatrix.gguf");
  std::filesystem::remove(out);
  const CliRun r = hearth("imatrix " + moe + " " + kText + " -o " + out + " -c 64 --chunks 2 -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const hearth::quant::Imatrix m = hearth::quant::Imatrix::read(out);
  const hearth::gguf::File model = hearth::gguf::File::open(moe);
  const uint32_t k = *model.get<uint32_t>("qwen3moe.expert_used_count");
  for (const auto& t : model.tensors()) {
    if (t.name.find("_exps.weight") == std::string::npos) continue;
    const hearth::quant::ImatrixEntry* e = m.find(t.name);
    ASSERT_NE(e, nullptr) << t.name;
    EXPECT_EQ(e->n_mat, t.ne[2]) << t.name;
    float rows = 0;
    for (float c : e->counts) rows += c;
    EXPECT_EQ(rows, static_cast<float>(k * 2 * 64)) << t.name;
  }
  const std::string q = temp("moe-iq2xxs.gguf");
  const CliRun qr = hearth("quantize " + moe + " " + q + " iq2_xxs -t 2 --imatrix " + out);
  ASSERT_EQ(qr.exit_code, 0) << qr.out;
  std::filesystem::remove(q);
}

TEST(ImatrixCli, ErrorsNameTheProblem) {
  CliRun r = hearth("imatrix " + kModel + " /no/such.txt -o " + temp("x.gguf"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("/no/such.txt"), std::string::npos) << r.out;
  r = hearth("imatrix " + kModel + " " + kText + " -o " + temp("y.gguf") + " -c 100000");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("needs at least"), std::string::npos) << r.out;
  r = hearth("quantize " + kModel + " " + temp("z.gguf") + " q4_k_m --imatrix " + kText);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find(kText), std::string::npos) << r.out;
}

}  // namespace
