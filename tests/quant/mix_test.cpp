// Quantization mixes and whole-file quantization (formats.md §4) against the files
// llama-quantize wrote in ../shared/testdata/models/ (`<model>-<Q>.gguf` from `<model>-F16.gguf`,
// no imatrix; see that folder's README).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "hearth/error.h"
#include "quant/imatrix.h"
#include "quant/mix.h"
#include "quant/quantize_file.h"

namespace hearth::quant {
namespace {

const std::string kModels = std::string(HEARTH_TESTDATA_DIR) + "/models/";

TEST(FileTypes, NamesIdsAndDefaults) {
  EXPECT_EQ(file_type_from_name("q4_k_m"), FileType::Q4_K_M);
  EXPECT_EQ(file_type_from_name("Q4_K"), FileType::Q4_K_M);  // llama-quantize's alias
  EXPECT_EQ(file_type_from_name("Q5_K"), FileType::Q5_K_M);
  EXPECT_EQ(file_type_from_name("IQ2_M"), FileType::IQ2_M);
  EXPECT_FALSE(file_type_from_name("Q4_K_X").has_value());
  EXPECT_EQ(static_cast<int>(FileType::Q4_K_M), 15);
  EXPECT_EQ(static_cast<int>(FileType::IQ4_XS), 30);
  EXPECT_EQ(file_type_info(FileType::IQ2_S).default_type, GgmlType::IQ2_XS);  // sic, formats.md §4.1
  EXPECT_EQ(file_type_info(FileType::IQ3_XS).default_type, GgmlType::IQ3_S);
  EXPECT_EQ(file_type_info(FileType::MXFP4_MOE).default_type, GgmlType::MXFP4);
}

TEST(FileTypes, WhichTensorsAreQuantized) {
  EXPECT_TRUE(should_quantize("blk.0.attn_q.weight", 2));
  EXPECT_TRUE(should_quantize("blk.3.ffn_down_exps.weight", 3));
  EXPECT_FALSE(should_quantize("blk.0.attn_norm.weight", 1));
  EXPECT_FALSE(should_quantize("blk.0.attn_q_norm.weight", 2));  // a norm, whatever its shape
  EXPECT_FALSE(should_quantize("blk.0.ffn_gate_inp.weight", 2));  // the MoE router
  EXPECT_FALSE(should_quantize("blk.0.ssm_conv1d.weight", 2));
  EXPECT_FALSE(should_quantize("blk.0.attn_q.bias", 2));
  EXPECT_TRUE(should_quantize("output.weight", 2));
  EXPECT_FALSE(should_quantize("output.weight", 2, /*leave_output=*/true));
}

TEST(FileTypes, LoaderOrderPutsGlobalTensorsFirstThenLayersNumerically) {
  std::vector<gguf::TensorInfo> t(5);
  t[0].name = "blk.10.attn_q.weight";
  t[1].name = "blk.2.ffn_up.weight";
  t[2].name = "output.weight";
  t[3].name = "blk.2.attn_k.weight";
  t[4].name = "token_embd.weight";
  const std::vector<size_t> order = loader_order(t);
  EXPECT_EQ(order, (std::vector<size_t>{2, 4, 3, 1, 0}));
}

// The mix picks, tensor by tensor, the type llama-quantize picked; and tensors come in its order.
class MixMatchesLlamaQuantize : public testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(MixMatchesLlamaQuantize, TensorTypesAndOrder) {
  const auto [model, ftype_name] = GetParam();
  const std::string ref_path = kModels + model + "-" + ftype_name + ".gguf";
  if (!std::filesystem::exists(ref_path)) GTEST_SKIP() << "no reference file " << ref_path;
  const gguf::File f16 = gguf::File::open(kModels + model + "-F16.gguf");
  const gguf::File ref = gguf::File::open(ref_path);
  MixOptions opt;
  opt.ftype = *file_type_from_name(ftype_name);
  EXPECT_EQ(ref.get<uint32_t>("general.file_type"), static_cast<uint32_t>(opt.ftype));
  MixPlanner planner(MixModelInfo::from_file(f16), opt);
  const std::vector<size_t> order = loader_order(f16.tensors());
  ASSERT_EQ(order.size(), ref.tensors().size());
  int n_quantized = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const gguf::TensorInfo& t = f16.tensors()[order[k]];
    EXPECT_EQ(t.name, ref.tensors()[k].name) << "tensor #" << k;
    const GgmlType chosen = planner.choose(t);
    EXPECT_EQ(type_name(chosen), type_name(ref.tensors()[k].type)) << t.name;
    n_quantized += chosen != t.type;
  }
  EXPECT_GT(n_quantized, 5);
}

INSTANTIATE_TEST_SUITE_P(Reference, MixMatchesLlamaQuantize,
                         testing::Combine(testing::Values("llama", "qwen3", "qwen3moe", "qwen35"),
                                          testing::Values("Q8_0", "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_XS")),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) + "_" + std::get<1>(info.param);
                         });

TEST(MixRules, UseMoreBitsAndCounters) {
  // A 32-layer GQA-4 dense model, Q4_K_M: attn_v and ffn_down get Q6_K on layers 0-3, 6, 9,
  // ..., 27 and 28-31 (formats.md §4.3 use_more_bits), Q4_K elsewhere.
  MixModelInfo m;
  m.arch = "llama";
  m.n_layer = 32;
  m.n_head = 32;
  m.n_head_kv = 8;
  m.has_output = true;
  m.n_attention_wv = 32;
  MixOptions opt;
  opt.ftype = FileType::Q4_K_M;
  MixPlanner planner(m, opt);
  std::string v_types, down_types;
  for (int i = 0; i < 32; ++i) {
    gguf::TensorInfo v, down;
    v.name = "blk." + std::to_string(i) + ".attn_v.weight";
    v.type = GgmlType::F16;
    v.n_dims = 2;
    v.ne = {4096, 1024, 1, 1};
    down = v;
    down.name = "blk." + std::to_string(i) + ".ffn_down.weight";
    down.ne = {14336, 4096, 1, 1};
    v_types += planner.choose(v) == GgmlType::Q6_K ? '6' : '4';
    down_types += planner.choose(down) == GgmlType::Q6_K ? '6' : '4';
  }
  EXPECT_EQ(v_types, "66664464464464464464464464466666");
  EXPECT_EQ(down_types, v_types);

  // Q2_K with gqa 4: attn_v Q4_K; ffn_down Q3_K; attn_output Q3_K; output Q6_K.
  opt.ftype = FileType::Q2_K;
  MixPlanner q2(m, opt);
  gguf::TensorInfo t;
  t.type = GgmlType::F16;
  t.n_dims = 2;
  t.ne = {4096, 1024, 1, 1};
  t.name = "blk.0.attn_v.weight";
  EXPECT_EQ(q2.choose(t), GgmlType::Q4_K);
  t.name = "blk.0.ffn_down.weight";
  EXPECT_EQ(q2.choose(t), GgmlType::Q3_K);
  t.name = "blk.0.attn_output.weight";
  EXPECT_EQ(q2.choose(t), GgmlType::Q3_K);
  t.name = "output.weight";
  EXPECT_EQ(q2.choose(t), GgmlType::Q6_K);
  // Rows that are not whole 256-blocks fall back (§4.4 step 4): Q3_K -> Q4_0 (32 divides 4128).
  t.name = "blk.1.ffn_down.weight";
  t.ne = {4128, 64, 1, 1};
  EXPECT_EQ(q2.choose(t), GgmlType::Q4_0);
  t.ne = {100, 64, 1, 1};
  EXPECT_EQ(q2.choose(t), GgmlType::F16);
}

TEST(MixRules, OverridesAndErrors) {
  EXPECT_THROW(TensorTypeOverride::parse("attn_v"), Error);
  EXPECT_THROW(TensorTypeOverride::parse("attn_v=Q9_K"), Error);
  EXPECT_THROW(TensorTypeOverride::parse("attn_[v=Q8_0"), Error);
  MixModelInfo m;
  m.arch = "llama";
  m.n_layer = 4;
  m.n_head = m.n_head_kv = 4;
  m.has_output = true;
  MixOptions opt;
  opt.ftype = FileType::Q4_K_M;
  opt.overrides.push_back(TensorTypeOverride::parse("ffn_(up|gate)=Q8_0"));
  opt.overrides.push_back(TensorTypeOverride::parse("ffn=Q6_K"));
  MixPlanner planner(m, opt);
  gguf::TensorInfo t;
  t.type = GgmlType::F16;
  t.n_dims = 2;
  t.ne = {256, 256, 1, 1};
  t.name = "blk.0.ffn_gate.weight";
  EXPECT_EQ(planner.choose(t), GgmlType::Q8_0);  // the first matching pattern wins
  t.name = "blk.0.ffn_down.weight";
  EXPECT_EQ(planner.choose(t), GgmlType::Q6_K);
  t.name = "blk.0.attn_q.weight";
  EXPECT_EQ(planner.choose(t), GgmlType::Q4_K);
  t.name = "blk.0.ffn_up.weight";
  t.ne = {100, 256, 1, 1};  // rows are not whole Q8_0 blocks: an override is never silently changed
  EXPECT_THROW(planner.choose(t), Error);

  EXPECT_TRUE(requires_imatrix(GgmlType::IQ2_XXS, FileType::IQ2_XXS, "blk.0.attn_q.weight"));
  EXPECT_FALSE(requires_imatrix(GgmlType::IQ2_XXS, FileType::IQ2_XXS, "token_embd.weight"));
  EXPECT_TRUE(requires_imatrix(GgmlType::Q2_K, FileType::Q2_K_S, "blk.0.attn_q.weight"));
  EXPECT_FALSE(requires_imatrix(GgmlType::Q2_K, FileType::Q2_K, "blk.0.attn_q.weight"));
  EXPECT_FALSE(requires_imatrix(GgmlType::Q4_K, FileType::Q4_K_M, "blk.0.attn_q.weight"));
}

// hearth quantize writes the file llama-quantize wrote: same metadata, tensors, types and bytes.
class QuantizeFileMatchesLlamaQuantize : public testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(QuantizeFileMatchesLlamaQuantize, ByteForByte) {
  const auto [model, ftype_name] = GetParam();
  const std::string out = testing::TempDir() + "hearth-quantize-" + model + "-" + ftype_name + ".gguf";
  QuantizeParams params;
  params.mix.ftype = *file_type_from_name(ftype_name);
  params.n_threads = 2;
  size_t calls = 0;
  const QuantizeReport r = quantize_file(kModels + model + "-F16.gguf", out, params,
                                         [&](size_t done, size_t total, const TensorPlan&) {
                                           ++calls;
                                           EXPECT_EQ(done, calls);
                                           EXPECT_LE(done, total);
                                         });
  EXPECT_EQ(calls, r.tensors.size());
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  const gguf::File got = gguf::File::open(out);
  const gguf::File ref = gguf::File::open(kModels + model + "-" + ftype_name + ".gguf");
  ASSERT_EQ(got.metadata().size(), ref.metadata().size());
  for (const auto& [key, value] : ref.metadata()) {
    const gguf::Value* v = got.find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->to_string(1 << 20), value.to_string(1 << 20)) << key;
  }
  ASSERT_EQ(got.tensors().size(), ref.tensors().size());
  for (size_t i = 0; i < ref.tensors().size(); ++i) {
    const gguf::TensorInfo& a = got.tensors()[i];
    const gguf::TensorInfo& b = ref.tensors()[i];
    ASSERT_EQ(a.name, b.name);
    EXPECT_EQ(a.type, b.type) << a.name;
    EXPECT_EQ(a.ne, b.ne) << a.name;
    const auto da = got.tensor_data(a);
    const auto db = ref.tensor_data(b);
    EXPECT_TRUE(std::equal(da.begin(), da.end(), db.begin(), db.end())) << a.name << " bytes differ";
  }
  EXPECT_EQ(got.file_size(), ref.file_size());
  EXPECT_GT(r.bits_per_weight(), 4.0);
  std::filesystem::remove(out);
}

INSTANTIATE_TEST_SUITE_P(Reference, QuantizeFileMatchesLlamaQuantize,
                         testing::Combine(testing::Values("llama", "qwen3"),
                                          testing::Values("Q8_0", "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_XS")),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) + "_" + std::get<1>(info.param);
                         });

TEST(QuantizeFile, ErrorsNameTheProblemAndLeaveNoFile) {
  const std::string in = kModels + "llama-F16.gguf";
  const std::string out = testing::TempDir() + "hearth-quantize-error.gguf";
  QuantizeParams params;
  params.mix.ftype = FileType::Q4_K_M;
  try {
    quantize_file(in, in, params);
    FAIL() << "quantizing a file onto itself must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is the input file"), std::string::npos) << e.what();
  }
  // Requantizing needs --allow-requantize.
  try {
    quantize_file(kModels + "llama-Q8_0.gguf", out, params);
    FAIL() << "requantizing must need allow_requantize";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--allow-requantize"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  EXPECT_THROW(quantize_file("/no/such/model.gguf", out, params), Error);
}

// The lattice i-quant mixes (formats.md §4.4, §4.5 "imatrix requirement"): without an imatrix
// the mixes that plan IQ1_*, IQ2_* or IQ3_XXS tensors are refused before anything is written;
// with one, the file has the planned types and every quantized tensor decodes close to its input.
TEST(QuantizeFile, LatticeMixesNeedAnImatrixAndQuantizeWithIt) {
  const std::string in = kModels + "llama-F16.gguf";
  const std::string out = testing::TempDir() + "hearth-quantize-lattice.gguf";
  const gguf::File model = gguf::File::open(in);
  auto im = std::make_shared<Imatrix>();
  for (const auto& t : model.tensors()) {
    if (t.name.rfind("blk.", 0) != 0 || t.n_dims < 2) continue;
    ImatrixEntry e;
    e.n_in = t.ne[0];
    for (int64_t c = 0; c < t.ne[0]; ++c) e.in_sum2.push_back(1.f + static_cast<float>(c % 7));
    e.counts = {1.f};
    im->entries[t.name] = e;
  }
  const FileType needs[] = {FileType::IQ2_XXS, FileType::IQ2_XS, FileType::IQ2_S, FileType::IQ2_M,
                            FileType::IQ3_XXS, FileType::IQ3_XS, FileType::IQ1_S, FileType::IQ1_M};
  for (FileType ftype : {FileType::IQ2_XXS, FileType::IQ2_XS, FileType::IQ2_S, FileType::IQ2_M, FileType::IQ3_XXS,
                         FileType::IQ3_XS, FileType::IQ3_S, FileType::IQ3_M, FileType::IQ1_S, FileType::IQ1_M}) {
    const char* name = file_type_info(ftype).name;
    QuantizeParams params;
    params.mix.ftype = ftype;
    params.n_threads = 2;
    const bool need = std::find(std::begin(needs), std::end(needs), ftype) != std::end(needs);
    if (need) {
      try {
        plan_quantization(model, params);
        ADD_FAILURE() << name << " without an imatrix must be refused";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("needs an importance matrix"), std::string::npos) << e.what();
      }
    } else {
      EXPECT_NO_THROW(plan_quantization(model, params)) << name;
    }
    params.imatrix = im;
    const std::vector<TensorPlan> plan = plan_quantization(model, params);
    size_t n_default = 0;
    for (const TensorPlan& p : plan) n_default += p.to == file_type_info(ftype).default_type;
    EXPECT_GT(n_default, 0u) << name;
    if (ftype != FileType::IQ2_XXS && ftype != FileType::IQ3_XS && ftype != FileType::IQ1_M && ftype != FileType::IQ2_M)
      continue;  // the four written ones hold every lattice type but IQ1_S (tests/quant/quantize_lattice_test.cpp)
    quantize_file(in, out, params);
    const gguf::File got = gguf::File::open(out);
    ASSERT_EQ(got.tensors().size(), plan.size());
    for (const TensorPlan& p : plan) {
      const gguf::TensorInfo* t = nullptr;
      for (const auto& g : got.tensors())
        if (g.name == p.name) t = &g;
      ASSERT_NE(t, nullptr) << p.name;
      EXPECT_EQ(t->type, p.to) << name << " " << p.name;
      if (p.to == p.from) continue;
      const int64_t n = t->n_elements();
      std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
      traits(p.from).to_float(model.tensor_data(model.tensors()[p.index]).data(), x.data(), n);
      traits(p.to).to_float(got.tensor_data(*t).data(), y.data(), n);
      double num = 0, den = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_TRUE(std::isfinite(y[i])) << name << " " << p.name;
        num += double(x[i] - y[i]) * (x[i] - y[i]);
        den += double(x[i]) * x[i];
      }
      // Relative RMSE: about 0.45 for IQ1_M, 0.3 for IQ2_XXS, 0.15 for IQ3_S on Gaussian weights.
      EXPECT_LT(std::sqrt(num / den), 0.6) << name << " " << p.name << " as " << traits(p.to).name;
    }
  }
  std::filesystem::remove(out);
}

}  // namespace
}  // namespace hearth::quant
