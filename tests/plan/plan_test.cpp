// The planner (src/plan) against the runtime: from a header alone it predicts exactly the bytes a
// Context allocates for weights, KV cache and recurrent state, on the shared reference models of
// every architecture and on synthesized ones; its compute estimate against the measured buffers;
// max_context, placement, the catalogue's parameter counts against the published sizes.
#include "plan/plan.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/kv_layout.h"
#include "model/model.h"
#include "model/synth.h"
#include "plan/catalogue.h"
#include "plan/header.h"
#include "runtime/context.h"
#include "runtime/kv_cache.h"

namespace hearth::plan {
namespace {

using quant::GgmlType;

const std::string kModels = std::string(HEARTH_TESTDATA_DIR) + "/models/";

// The first bytes of `path` up to the end of its tensor table, parsed as a header-only file:
// what a URL gives the planner. No tensor data is held.
gguf::File header_only(const std::string& path) {
  const gguf::File full = gguf::File::open(path);
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes(full.data_offset());
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return gguf::File::from_header(std::move(bytes), full.file_size(), path);
}

// Checks the plan of the header at `path` against Contexts of the loaded model.
void expect_plan_equals_runtime(const std::string& path) {
  const auto model = model::Model::load(path);
  const ModelInfo info = ModelInfo::from_header(header_only(path));
  ASSERT_TRUE(info.file.header_only());
  const std::vector<model::KvLayerSpec> specs = model->arch().kv_layers();
  ASSERT_EQ(info.specs.size(), specs.size());
  for (size_t il = 0; il < specs.size(); ++il) {
    EXPECT_EQ(info.specs[il].n_embd_k, specs[il].n_embd_k) << il;
    EXPECT_EQ(info.specs[il].n_embd_v, specs[il].n_embd_v) << il;
    EXPECT_EQ(info.specs[il].window, specs[il].window) << il;
    EXPECT_EQ(info.specs[il].n_embd_r, specs[il].n_embd_r) << il;
    EXPECT_EQ(info.specs[il].n_embd_s, specs[il].n_embd_s) << il;
  }
  std::vector<std::pair<GgmlType, GgmlType>> types = {{GgmlType::F16, GgmlType::F16}};
  if (model->hparams().head_dim_k % 32 == 0 && model->hparams().head_dim_v % 32 == 0)
    types.push_back({GgmlType::Q8_0, GgmlType::Q4_0});
  for (const uint32_t n_ctx : {7u, 300u, 4096u}) {
    for (const uint32_t n_seq : {1u, 3u}) {
      for (const auto& [tk, tv] : types) {
        PlanParams p;
        p.n_ctx = n_ctx;
        p.n_ubatch = 64;
        p.n_seq_max = n_seq;
        p.type_k = tk;
        p.type_v = tv;
        const Plan plan = make_plan(info, p);
        runtime::ContextParams cp;
        cp.n_ctx = n_ctx;
        cp.n_ubatch = 64;
        cp.n_seq_max = n_seq;
        cp.n_threads = 1;
        cp.type_k = tk;
        cp.type_v = tv;
        const runtime::Context ctx(model, cp);
        EXPECT_EQ(plan.weights_bytes(), model->n_weight_bytes());
        EXPECT_EQ(plan.kv_bytes(), ctx.kv_cache().bytes()) << n_ctx << " " << n_seq;
        EXPECT_EQ(plan.state_bytes(), ctx.kv_cache().recurrent_bytes()) << n_ctx << " " << n_seq;
        EXPECT_EQ(plan.repacked_bytes, 0u);
        uint64_t layers = plan.other_bytes;
        for (uint64_t b : plan.layer_bytes) layers += b;
        EXPECT_EQ(layers, plan.weights_bytes() + plan.kv_bytes() + plan.state_bytes());
      }
    }
  }
}

class SharedModelPlan : public testing::TestWithParam<std::string> {};

TEST_P(SharedModelPlan, HeaderPlanEqualsTheContextsAllocation) {
  expect_plan_equals_runtime(kModels + GetParam() + ".gguf");
}

INSTANTIATE_TEST_SUITE_P(ReferenceModels, SharedModelPlan,
                         testing::Values("llama-Q4_K_M", "qwen3-F16", "qwen3moe-Q8_0", "qwen3moe-IQ4_XS", "qwen35-Q4_K_M",
                                         "qwen35moe-F16", "gemma3-F16", "gemma4-F16", "gemma4moe-F16", "llama4-F16"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("hearth-plan-test-" + std::to_string(getpid()) + "-" + name))
      .string();
}

class SynthModelPlan : public testing::TestWithParam<std::string> {};

TEST_P(SynthModelPlan, HeaderPlanEqualsTheContextsAllocation) {
  const std::string path = temp_file(GetParam() + ".gguf");
  model::SynthOptions opt;
  opt.type = GgmlType::Q8_0;
  opt.n_threads = 1;
  const model::SynthShape& shape = model::find_synth_shape(GetParam());
  model::synthesize(shape, opt, path);
  expect_plan_equals_runtime(path);
  // The virtual header (what the catalogue plans with) is the file's header.
  const gguf::File virt = model::synth_header(shape, GgmlType::Q8_0);
  const gguf::File real = gguf::File::open(path);
  EXPECT_EQ(virt.file_size(), real.file_size());
  ASSERT_EQ(virt.tensors().size(), real.tensors().size());
  for (size_t i = 0; i < real.tensors().size(); ++i) {
    EXPECT_EQ(virt.tensors()[i].name, real.tensors()[i].name);
    EXPECT_EQ(virt.tensors()[i].type, real.tensors()[i].type);
    EXPECT_EQ(virt.tensors()[i].nbytes, real.tensors()[i].nbytes);
  }
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(Tiny, SynthModelPlan,
                         testing::Values("tiny-llama", "tiny-qwen3", "tiny-qwen3moe", "tiny-qwen35", "tiny-qwen35moe",
                                         "tiny-qwen3next", "tiny-llama4", "tiny-gemma3", "tiny-gemma4e",
                                         "tiny-gemma4moe"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// The compute buffers decode() grows for a micro-batch of n_ubatch tokens (logits of the last
// one), against the estimate: at most 10% below the measurement, at most 50% above it.
class ComputeEstimate : public testing::TestWithParam<std::string> {};

TEST_P(ComputeEstimate, CoversTheMeasuredBuffers) {
  const std::string path = kModels + GetParam() + ".gguf";
  const auto model = model::Model::load(path);
  const ModelInfo info = ModelInfo::from_header(header_only(path));
  for (const uint32_t n_ubatch : {1u, 64u}) {
    runtime::ContextParams cp;
    cp.n_ctx = 256;
    cp.n_ubatch = n_ubatch;
    cp.n_threads = 2;
    runtime::Context ctx(model, cp);
    runtime::Batch b;
    for (uint32_t i = 0; i < n_ubatch; ++i) b.add(static_cast<int32_t>(i % 7 + 1), static_cast<int32_t>(i), 0, i + 1 == n_ubatch);
    ctx.decode(b);
    const uint64_t measured = ctx.compute_bytes();
    PlanParams p;
    p.n_ctx = 256;
    p.n_ubatch = n_ubatch;
    p.n_threads = 2;
    const uint64_t predicted = make_plan(info, p).compute_bytes;
    std::printf("%s n_ubatch %u: compute measured %llu predicted %llu (%.2f)\n", GetParam().c_str(), n_ubatch,
                static_cast<unsigned long long>(measured), static_cast<unsigned long long>(predicted),
                static_cast<double>(predicted) / static_cast<double>(measured));
    EXPECT_GE(predicted, measured - measured / 10);
    EXPECT_LE(predicted, measured + measured / 2);
  }
}

INSTANTIATE_TEST_SUITE_P(ReferenceModels, ComputeEstimate,
                         testing::Values("llama-Q4_K_M", "qwen3-F16", "qwen3moe-Q8_0", "qwen35-Q4_K_M", "qwen35moe-F16",
                                         "gemma3-F16", "gemma4-F16", "gemma4moe-F16", "llama4-F16"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(MaxContext, IsTheLargestThatFitsAndGrowsWithTheBudget) {
  const ModelInfo m = open_model("qwen3-8b", quant::FileType::Q4_K_M);
  PlanParams p;
  uint32_t prev = 0;
  for (double gib : {4.0, 5.0, 6.0, 8.0, 16.0}) {
    const uint64_t budget = static_cast<uint64_t>(gib * (1u << 30));
    const uint32_t n = max_context(m, p, budget, 1u << 20);
    EXPECT_GE(n, prev) << gib;
    prev = n;
    if (n == 0) {
      p.n_ctx = 1;
      EXPECT_GT(make_plan(m, p).total_bytes(), budget);
      continue;
    }
    p.n_ctx = n;
    EXPECT_LE(make_plan(m, p).total_bytes(), budget) << gib;
    if (n < (1u << 20)) {
      p.n_ctx = n + 1;
      EXPECT_GT(make_plan(m, p).total_bytes(), budget) << gib;
    }
  }
  // Qwen3-8B Q4_K_M: ~4.7 GiB of weights never fit in 4 GiB; in 16 GiB the KV cache (36 layers x
  // 8 KV heads x 128 x 2 (K, V) x 2 bytes = 144 KiB per token) holds (16 - 4.7) GiB / 144 KiB
  // = about 82000 tokens.
  EXPECT_EQ(max_context(m, p, uint64_t{4} << 30, 1u << 20), 0u);
  const uint32_t n16 = max_context(m, p, uint64_t{16} << 30, 1u << 20);
  EXPECT_GT(n16, 70000u);
  EXPECT_LT(n16, 85000u);
}

TEST(MaxContext, QuantizedKvHoldsMoreContext) {
  const ModelInfo m = open_model("llama3.1-8b", quant::FileType::Q4_K_M);
  PlanParams p;
  const uint64_t budget = uint64_t{12} << 30;
  const uint32_t f16 = max_context(m, p, budget, 1u << 22);
  p.type_k = p.type_v = GgmlType::Q8_0;
  const uint32_t q8 = max_context(m, p, budget, 1u << 22);
  p.type_k = p.type_v = GgmlType::Q4_0;
  const uint32_t q4 = max_context(m, p, budget, 1u << 22);
  // q8_0 stores 34 bytes per 32 values (f16: 64), q4_0 18: the KV part scales by those ratios.
  EXPECT_NEAR(static_cast<double>(q8) / f16, 64.0 / 34.0, 0.05);
  EXPECT_NEAR(static_cast<double>(q4) / f16, 64.0 / 18.0, 0.1);
}

TEST(Placement, SplitsLayersBetweenGpuAndRam) {
  const ModelInfo m = open_model("llama3.1-70b", quant::FileType::Q4_K_M);
  PlanParams p;
  p.n_ctx = 8192;
  const Plan plan = make_plan(m, p);
  const std::vector<Device> devices = {{"gpu", uint64_t{24} << 30, 1000}, {"ram", uint64_t{64} << 30, 80}};
  const Placement pl = place(plan, devices);
  ASSERT_EQ(pl.parts.size(), 2u);
  EXPECT_TRUE(pl.fits);
  EXPECT_EQ(pl.parts[0].first_layer, 0u);
  EXPECT_EQ(pl.parts[1].first_layer, pl.parts[0].n_layers);
  EXPECT_EQ(pl.parts[0].n_layers + pl.parts[1].n_layers, 80u);
  EXPECT_LE(pl.parts[0].bytes, devices[0].memory_bytes);
  // One more layer would not have fit on the GPU.
  EXPECT_GT(pl.parts[0].bytes + plan.layer_bytes[pl.parts[0].n_layers], devices[0].memory_bytes);
  EXPECT_EQ(pl.parts[0].bytes + pl.parts[1].bytes, plan.total_bytes() + plan.compute_bytes);
  EXPECT_EQ(pl.parts[0].read_bytes + pl.parts[1].read_bytes, plan.read_bytes_per_token());
  const double seconds = pl.parts[0].read_bytes / 1000e9 + pl.parts[1].read_bytes / 80e9;
  EXPECT_NEAR(pl.tg_tokens_per_s, 1.0 / seconds, 1e-9);
  // Alone on the GPU it does not fit; with 256 GiB of RAM alone it does.
  EXPECT_FALSE(place(plan, {devices[0]}).fits);
  EXPECT_TRUE(place(plan, {{"ram", uint64_t{256} << 30, 80}}).fits);
}

TEST(ReadBytes, MoeReadsOnlyTheActiveExperts) {
  // Qwen3-30B-A3B: 8 of 128 experts per token, so a token reads far less than the weights.
  const ModelInfo m = open_model("qwen3-30b-a3b", quant::FileType::Q8_0);
  PlanParams p;
  p.n_ctx = 1;
  const Plan plan = make_plan(m, p);
  const double ratio = static_cast<double>(plan.read_bytes_per_token()) / plan.weights_bytes();
  const double active = static_cast<double>(m.n_active_params()) / m.n_params();
  EXPECT_NEAR(ratio, active, 0.02);
  EXPECT_LT(ratio, 0.15);
}

// Published sizes (model cards; architectures.md §12 names the models). The GGUFs hold the text
// model only: the Llama 4 and Qwen 3.5 cards count their vision encoders too (about 1-2% of
// Scout, Maverick; under 5% of Qwen 3.5), hence the tolerances.
struct Published {
  const char* name;
  double total_b, active_b, tolerance;
};

TEST(Catalogue, ParameterCountsMatchThePublishedSizes) {
  const Published published[] = {
      {"llama3.2-1b", 1.24, 1.24, 0.01},     // Llama 3.2 card: 1.23B
      {"llama3.2-3b", 3.21, 3.21, 0.01},     // 3.21B
      {"llama3.1-8b", 8.03, 8.03, 0.01},     // 8.03B
      {"llama3.1-70b", 70.6, 70.6, 0.01},    // 70.6B
      {"qwen3-0.6b", 0.6, 0.6, 0.05},        // Qwen3 cards: 0.6B
      {"qwen3-1.7b", 1.7, 1.7, 0.05},        // 1.7B
      {"qwen3-4b", 4.0, 4.0, 0.03},          // 4.0B
      {"qwen3-8b", 8.2, 8.2, 0.01},          // 8.2B
      {"qwen3-14b", 14.8, 14.8, 0.01},       // 14.8B
      {"qwen3-32b", 32.8, 32.8, 0.01},       // 32.8B
      {"qwen3-30b-a3b", 30.5, 3.3, 0.02},    // 30.5B total, 3.3B activated
      {"qwen3-235b-a22b", 235, 22, 0.02},    // 235B total, 22B activated
      {"llama4-scout", 109, 17, 0.02},       // 109B total, 17B active (with the vision encoder)
      {"llama4-maverick", 400, 17, 0.02},    // 400B total, 17B active
      {"qwen3.5-9b", 9, 9, 0.05},
      {"qwen3.5-27b", 27, 27, 0.05},
      {"qwen3.5-35b-a3b", 35, 3, 0.05},  // "A3B": 3.45B active here (rounded name), see below
      {"qwen3.5-397b-a17b", 397, 17, 0.05},
      {"gemma3-27b", 27, 27, 0.05},
      {"gemma4-31b", 31, 31, 0.05},
  };
  for (const Published& pub : published) {
    const ModelInfo m = open_model(pub.name, quant::FileType::F16);
    const double total = m.n_params() / 1e9, active = m.n_active_params() / 1e9;
    std::printf("%-20s total %8.2f B (published %6.1f)  active %7.2f B (published %5.1f)\n", pub.name, total,
                pub.total_b, active, pub.active_b);
    EXPECT_NEAR(total / pub.total_b, 1.0, pub.tolerance) << pub.name;
    // Active counts are rounded in the names ("A3B" for Qwen3.5-35B-A3B's 3.45B): within 0.5B.
    EXPECT_NEAR(active, pub.active_b, std::max(0.5, pub.active_b * pub.tolerance)) << pub.name;
  }
}

TEST(Catalogue, QuantMixesGiveTheirBitsPerWeight) {
  const CatalogueModel* m = find_catalogue_model("Qwen3-8B");
  ASSERT_NE(m, nullptr);
  const ModelInfo f16 = ModelInfo::from_header(catalogue_header(*m, quant::FileType::F16));
  const ModelInfo q8 = ModelInfo::from_header(catalogue_header(*m, quant::FileType::Q8_0));
  const ModelInfo q4 = ModelInfo::from_header(catalogue_header(*m, quant::FileType::Q4_K_M));
  auto bpw = [](const ModelInfo& x) {
    uint64_t bytes = 0;
    for (const gguf::TensorInfo& t : x.file.tensors()) bytes += t.nbytes;
    return 8.0 * bytes / x.n_params();
  };
  EXPECT_NEAR(bpw(f16), 16.0, 0.01);  // norms are F32 but tiny
  EXPECT_NEAR(bpw(q8), 8.5, 0.02);    // Q8_0: 34 bytes per 32 weights
  // Q4_K_M: Q4_K (4.5 bpw) with Q6_K (6.5625) for the output head, half of ffn_down and attn_v.
  EXPECT_GT(bpw(q4), 4.8);
  EXPECT_LT(bpw(q4), 5.1);
  EXPECT_EQ(find_catalogue_model("no-such-model"), nullptr);
  EXPECT_THROW(open_model("no-such-model"), Error);
}

TEST(Hardware, CatalogueHasTheNamedDevices) {
  for (const char* name : {"rtx3070", "rtx3090", "rtx4080", "rtx4090", "rtx5090", "rtx-pro-6000", "a6000", "a100-40gb",
                           "a100-80gb", "h100", "h200", "m4-16gb", "m3-ultra-512gb", "pi5-8gb", "ddr5-2ch-64gb"}) {
    const Hardware h = find_hardware(name);
    EXPECT_GT(h.memory_bytes, 0u) << name;
    EXPECT_GT(h.bandwidth_gb_s, 0.0) << name;
    EXPECT_FALSE(h.source.empty()) << name;
  }
  EXPECT_EQ(find_hardware("RTX4090").memory_bytes, uint64_t{24} << 30);
  EXPECT_THROW(find_hardware("tpu"), Error);
}

TEST(DefaultContext, ShrinksToTheFreeMemoryAndRefusesWithNumbers) {
  const ModelInfo m = open_model("qwen3-8b", quant::FileType::Q4_K_M);
  PlanParams p;
  p.n_ctx = 4096;
  const Plan small = make_plan(m, p);
  // Plenty of memory: the preferred 4096; the trained 40960 is the cap.
  EXPECT_EQ(default_context(m, p, uint64_t{64} << 30, 4096), 4096u);
  EXPECT_EQ(default_context(m, p, uint64_t{64} << 30, 1u << 20), 40960u);
  // A budget 1000 tokens of KV short of 4096: fewer cells.
  const uint64_t per_token = 36 * 8 * 128 * 2 * 2;
  const uint32_t n = default_context(m, p, small.total_bytes() - 1000 * per_token, 4096);
  EXPECT_EQ(n, 3096u);
  EXPECT_THROW(default_context(m, p, uint64_t{1} << 30, 4096), Error);
  check_context(m, p, small.total_bytes());
  try {
    check_context(m, p, small.total_bytes() - 1);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("4096"), std::string::npos) << what;
    EXPECT_NE(what.find("-c 4095"), std::string::npos) << what;
  }
}

TEST(FetchHeader, ReadsGrowingRangesUntilTheHeaderParses) {
  // A GGUF whose header is larger than the first 1 MiB read: the 262144-token vocabulary of a
  // Gemma shape, then 3 GiB of (absent) tensor data.
  const gguf::File virt = catalogue_header(*find_catalogue_model("gemma3-4b"), quant::FileType::Q4_K_M);
  ASSERT_GT(virt.data_offset(), uint64_t{1} << 20);
  // Re-serialise the header bytes.
  gguf::Writer w;
  for (const auto& [k, v] : virt.metadata()) w.set(k, v);
  for (const gguf::TensorInfo& t : virt.tensors())
    w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims));
  std::ostringstream os;
  w.begin(os);
  const std::string header = os.str();
  const uint64_t total = w.file_size();
  uint64_t served = 0;
  int requests = 0;
  RangeReader reader{[&](uint64_t first, uint64_t length, uint64_t& size) {
    ++requests;
    size = total;
    const uint64_t end = std::min<uint64_t>(first + length, total);
    std::string out;
    for (uint64_t i = first; i < end; ++i) out.push_back(i < header.size() ? header[i] : '\0');
    served += out.size();
    return out;
  }};
  uint64_t read = 0;
  const gguf::File f = fetch_header(reader, "test://gemma3-4b", &read);
  EXPECT_EQ(read, served);
  EXPECT_LT(served, 4 * header.size());
  EXPECT_GE(requests, 2);
  EXPECT_EQ(f.file_size(), total);
  EXPECT_EQ(f.tensors().size(), virt.tensors().size());
  EXPECT_THROW(f.tensor_data(f.tensors()[0]), Error);
  // Not GGUF: one read, a clear error.
  RangeReader html{[](uint64_t, uint64_t, uint64_t& size) {
    size = 100;
    return std::string("<html>not a model</html>");
  }};
  EXPECT_THROW(fetch_header(html, "test://page"), Error);
}

}  // namespace
}  // namespace hearth::plan
