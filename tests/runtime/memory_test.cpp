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
        EXPECT_EQ(plan.state_bytes, ctx.kv_cache().recurrent_bytes()) << n_ctx << " " << n_ubatch << " " << n_seq;
        uint64_t kv = 0, state = 0, weights = plan.other_weight_bytes;
        uint32_t layers = 0;
        for (const MemoryRow& r : plan.rows) {
          kv += r.kv_bytes;
          state += r.state_bytes;
          weights += r.weight_bytes;
          layers += r.n_layers;
        }
        EXPECT_EQ(kv, plan.kv_bytes);
        EXPECT_EQ(state, plan.state_bytes);
        EXPECT_EQ(weights, plan.weight_bytes);
        EXPECT_EQ(plan.weight_bytes, model->n_weight_bytes());
        EXPECT_EQ(layers, model->hparams().n_layer);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ReferenceModels, MemoryPlanTest,
                         testing::Values("llama-Q4_K_M", "qwen3-F16", "qwen3moe-Q8_0", "qwen35-Q4_K_M", "gemma3-F16", "llama4-F16",
                                         "qwen35moe-F16"),
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

TEST(MemoryPlan, SlidingWindowLayersKeepTheirWindowPlusAMicroBatch) {
  // gemma3-F16: 5 sliding layers (window 16) and 1 global, one KV head of 128 (K and V).
  const auto model = model::Model::load(kModels + "gemma3-F16.gguf");
  const MemoryPlan plan = plan_memory(*model, 8192, 512, 1);
  ASSERT_EQ(plan.rows.size(), 2u);
  EXPECT_EQ(plan.rows[0].kind, "sliding window 16");
  EXPECT_EQ(plan.rows[0].n_layers, 5u);
  EXPECT_EQ(plan.rows[0].kv_cells, 16u + 512u);
  EXPECT_EQ(plan.rows[0].kv_bytes, 5u * (16 + 512) * 256 * 2);
  EXPECT_EQ(plan.rows[1].kind, "full attention");
  EXPECT_EQ(plan.rows[1].kv_bytes, 8192u * 256 * 2);
}

TEST(MemoryPlan, GatedDeltaNetLayersKeepAFixedStatePerSequence) {
  const auto model = model::Model::load(kModels + "qwen35-F16.gguf");
  const MemoryPlan small = plan_memory(*model, 100, 512, 2), large = plan_memory(*model, 100000, 512, 2);
  ASSERT_EQ(small.rows.size(), 2u);
  EXPECT_EQ(small.rows[0].kind, "recurrent");
  EXPECT_EQ(small.rows[0].n_layers, 3u);
  EXPECT_EQ(small.rows[0].kv_bytes, 0u);
  // qwen35-F16 (testdata README): conv kernel 4 over 2x64 q, 2x64 k and 4x64 v channels, and a
  // 64x64 state per v-head (4 of them), per sequence, f32.
  EXPECT_EQ(small.rows[0].state_bytes, 2u * 3 * (3 * (2 * 64 + 2 * 64 + 4 * 64) + 4 * 64 * 64) * 4);
  EXPECT_EQ(large.state_bytes, small.state_bytes);  // whatever the context
  EXPECT_EQ(small.rows[1].kind, "full attention");
  EXPECT_EQ(large.rows[1].kv_bytes, 1000u * small.rows[1].kv_bytes);
}

}  // namespace
}  // namespace hearth::runtime
