// plan_memory (hearth show --memory) predicts exactly what a Context allocates.
#include "runtime/memory.h"

#include <gtest/gtest.h>

#include "runtime/context.h"

namespace hearth::runtime {
namespace {

const std::string kModels = std::string(HEARTH_TESTDATA_DIR) + "/models/";

class MemoryPlanTest : public testing::TestWithParam<std::string> {};

TEST_P(MemoryPlanTest, PredictedBytesEqualTheContextsAllocation) {
  const auto model = model::Model::load(kModels + GetParam() + ".gguf");
  for (const uint32_t n_ctx : {7u, 100u, 4096u}) {
    for (const uint32_t n_ubatch : {1u, 512u}) {
      for (const uint32_t n_seq : {1u, 4u}) {
        const MemoryPlan plan = plan_memory(*model, n_ctx, n_ubatch, n_seq);
        ContextParams p;
        p.n_ctx = n_ctx;
        p.n_ubatch = n_ubatch;
        p.n_seq_max = n_seq;
        p.n_threads = 1;
        const Context ctx(model, p);
        EXPECT_EQ(plan.kv_bytes, ctx.kv_cache().bytes()) << n_ctx << " " << n_ubatch << " " << n_seq;
        uint64_t kv = 0, weights = plan.other_weight_bytes;
        uint32_t layers = 0;
        for (const MemoryRow& r : plan.rows) {
          kv += r.kv_bytes;
          weights += r.weight_bytes;
          layers += r.n_layers;
        }
        EXPECT_EQ(kv, plan.kv_bytes);
        EXPECT_EQ(weights, plan.weight_bytes);
        EXPECT_EQ(plan.weight_bytes, model->n_weight_bytes());
        EXPECT_EQ(layers, model->hparams().n_layer);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ReferenceModels, MemoryPlanTest,
                         testing::Values("llama-Q4_K_M", "qwen3-F16", "qwen3moe-Q8_0"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(MemoryPlan, FullAttentionKvIsCellsTimesWidths) {
  const auto model = model::Model::load(kModels + "qwen3-F16.gguf");
  const MemoryPlan plan = plan_memory(*model, 1000, 512, 1);
  ASSERT_EQ(plan.rows.size(), 1u);
  EXPECT_EQ(plan.rows[0].kind, "full attention");
  EXPECT_EQ(plan.rows[0].kv_cells, 1000u);
  // qwen3-F16: 3 layers, 2 KV heads x 128 for K and for V, 2 bytes each.
  EXPECT_EQ(plan.kv_bytes, 3u * 1000 * (256 + 256) * 2);
  EXPECT_THROW(plan_memory(*model, 0, 512, 1), Error);
}

}  // namespace
}  // namespace hearth::runtime
