// Runtime: several sequences sharing one KV cache, micro-batching, cache editing, and the
// errors decode() raises (with the cache left unchanged).
#include "runtime/context.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "kernels/gemm.h"
#include "model/synth.h"
#include "runtime/eval.h"

namespace hearth::runtime {
namespace {

std::shared_ptr<const model::Model> tiny(const std::string& name) {
  static std::map<std::string, std::shared_ptr<const model::Model>> cache;
  auto& m = cache[name];
  if (!m) {
    const std::string path = (std::filesystem::temp_directory_path() / ("hearth-test-" + name + ".gguf")).string();
    model::SynthOptions opt;
    opt.seed = 5;
    model::synthesize(model::find_synth_shape(name), opt, path);
    m = model::Model::load(path);
  }
  return m;
}

ContextParams params(uint32_t n_ctx, uint32_t n_ubatch = 512) {
  ContextParams p;
  p.n_ctx = n_ctx;
  p.n_ubatch = n_ubatch;
  p.n_threads = 2;
  return p;
}

const std::vector<int32_t> kA{496, 70, 111, 318, 275, 99, 337, 289};
const std::vector<int32_t> kB{496, 298, 265, 274, 332, 44};

class ContextTest : public testing::TestWithParam<std::string> {};

TEST_P(ContextTest, MicroBatchSizeDoesNotChangeLogits) {
  const auto m = tiny(GetParam());
  Context big(m, params(64));
  Context small(m, params(64, 3));
  EXPECT_EQ(evaluate(big, kA, false), evaluate(small, kA, false));
}

TEST_P(ContextTest, SequencesSharingTheCacheDoNotSeeEachOther) {
  const auto m = tiny(GetParam());
  Context alone_a(m, params(64)), alone_b(m, params(64));
  const auto la = evaluate(alone_a, kA, false);
  const auto lb = evaluate(alone_b, kB, false);
  // Both prompts interleaved in one batch, as sequences 3 and 5.
  Context shared(m, params(64, 4));
  Batch batch;
  size_t ia = 0, ib = 0;
  std::vector<std::pair<int, size_t>> order;  // (sequence, index)
  while (ia < kA.size() || ib < kB.size()) {
    if (ia < kA.size()) {
      batch.add(kA[ia], static_cast<int32_t>(ia), 3, true);
      order.emplace_back(3, ia++);
    }
    if (ib < kB.size()) {
      batch.add(kB[ib], static_cast<int32_t>(ib), 5, true);
      order.emplace_back(5, ib++);
    }
  }
  shared.decode(batch);
  const size_t n_vocab = m->hparams().n_vocab;
  for (size_t i = 0; i < order.size(); ++i) {
    const auto row = shared.logits(i);
    const auto& want = order[i].first == 3 ? la : lb;
    const std::vector<float> expect(want.begin() + order[i].second * n_vocab, want.begin() + (order[i].second + 1) * n_vocab);
    EXPECT_EQ(std::vector<float>(row.begin(), row.end()), expect) << "batch index " << i;
  }
  EXPECT_EQ(shared.kv_cache().n_used(), kA.size() + kB.size());
  EXPECT_EQ(shared.kv_cache().seq_pos_max(3), static_cast<int32_t>(kA.size()) - 1);
}

TEST_P(ContextTest, RemovedTokensCanBeEvaluatedAgain) {
  const auto m = tiny(GetParam());
  Context ctx(m, params(32));
  const auto first = evaluate(ctx, kA, false);
  ctx.kv_cache().seq_rm(0, 4, -1);  // keep positions 0-3
  EXPECT_EQ(ctx.kv_cache().n_used(), 4u);
  const std::vector<int32_t> tail(kA.begin() + 4, kA.end());
  const auto again = evaluate(ctx, tail, false, 0, 4);
  const size_t n_vocab = m->hparams().n_vocab;
  EXPECT_EQ(again, std::vector<float>(first.begin() + 4 * n_vocab, first.end()));
}

TEST_P(ContextTest, CopiedPrefixIsShared) {
  const auto m = tiny(GetParam());
  Context ctx(m, params(32));
  const std::vector<int32_t> prefix(kA.begin(), kA.begin() + 5);
  evaluate(ctx, prefix, false, 0);
  ctx.kv_cache().seq_cp(0, 1, 0, -1);
  EXPECT_EQ(ctx.kv_cache().n_used(), 5u);  // shared, not copied
  const std::vector<int32_t> tail(kB.begin() + 1, kB.end());
  const auto branched = evaluate(ctx, tail, false, 1, 5);
  Context fresh(m, params(32));
  std::vector<int32_t> whole = prefix;
  whole.insert(whole.end(), tail.begin(), tail.end());
  const auto direct = evaluate(fresh, whole, false);
  const size_t n_vocab = m->hparams().n_vocab;
  EXPECT_EQ(branched, std::vector<float>(direct.begin() + 5 * n_vocab, direct.end()));
  // Removing sequence 0 keeps the cells sequence 1 still uses.
  ctx.kv_cache().seq_rm(0, 0, -1);
  EXPECT_EQ(ctx.kv_cache().n_used(), 5u + tail.size());
  ctx.kv_cache().clear();
  EXPECT_EQ(ctx.kv_cache().n_used(), 0u);
}

TEST_P(ContextTest, BadBatchesAreRejectedWithoutChangingTheCache) {
  const auto m = tiny(GetParam());
  Context ctx(m, params(8));
  evaluate(ctx, std::vector<int32_t>(kA.begin(), kA.begin() + 3), false);
  auto expect_error = [&](const Batch& b, const std::string& what) {
    try {
      ctx.decode(b);
      FAIL() << "expected an error about " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
    EXPECT_EQ(ctx.kv_cache().n_used(), 3u);
  };
  Batch b;
  b.add(100000, 3, 0, true);
  expect_error(b, "out of range");
  b.clear();
  b.add(5, 2, 0, true);  // position 2 is taken
  expect_error(b, "already has a token at position 2");
  b.clear();
  b.add(5, 3, 0, true);
  b.add(6, 3, 0, true);
  expect_error(b, "already has a token at position 3");
  b.clear();
  for (int i = 0; i < 6; ++i) b.add(5, 3 + i, 0, true);
  expect_error(b, "does not fit in the context");
  b.clear();
  b.add(5, 3, 64, true);
  expect_error(b, "sequence id 64");
  b.clear();
  b.add(5, -1, 0, true);
  expect_error(b, "negative position");
  EXPECT_THROW(ctx.decode(Batch{}), Error);
  // The logits of the last successful decode are still there.
  EXPECT_EQ(ctx.logits(2).size(), m->hparams().n_vocab);
  EXPECT_THROW(ctx.logits(3), Error);
}

TEST_P(ContextTest, KvCacheSizeFollowsTheShape) {
  const auto m = tiny(GetParam());
  Context ctx(m, params(100));
  const model::HParams& hp = m->hparams();
  uint64_t want = 0;
  for (uint32_t il = 0; il < hp.n_layer; ++il) want += 100ull * (hp.n_embd_k_gqa(il) + hp.n_embd_v_gqa(il)) * 2;
  EXPECT_EQ(ctx.kv_cache().bytes(), want);
}

// Weights the loader repacks give the logits of the file's layout: bit for bit in the lane
// layout (kernels/gemm.h: the same arithmetic), within float rounding in the x16 layout (its
// arithmetic sums each chunk's integers before converting them: max |difference| at most 1e-4
// of the largest logit), for every repackable type of the shared models, tied output head
// included (qwen3).
TEST(RepackedWeights, GiveTheLogitsOfTheFileLayout) {
  const std::vector<int32_t> tokens{1, 450, 3996, 1354, 1701, 2, 99};
  int repacked_models = 0;
  for (const char* name : {"llama-Q4_K_M", "llama-Q5_K_M", "llama-Q6_K", "llama-Q8_0", "llama-IQ4_XS", "qwen3-Q4_K_M",
                           "qwen3moe-Q4_K_M"}) {
    const std::string path = std::string(HEARTH_TESTDATA_DIR) + "/models/" + name + ".gguf";
    setenv("HEARTH_REPACK", "0", 1);
    const auto plain = model::Model::load(path);
    unsetenv("HEARTH_REPACK");
    const auto repacked = model::Model::load(path);
    uint64_t n_plain = 0, n_repacked = 0, n_x16 = 0;
    for (const auto& t : plain->file().tensors()) n_plain += plain->file().tensor_layout(t) != 0 ? 1 : 0;
    for (const auto& t : repacked->file().tensors()) {
      n_repacked += repacked->file().tensor_layout(t) != 0 ? 1 : 0;
      n_x16 += repacked->file().tensor_layout(t) == 2 ? 1 : 0;
    }
    EXPECT_EQ(n_plain, 0u) << name;
    if (!kernels::gemm::prefers_lane_layout(quant::GgmlType::Q4_K, 256)) {
      EXPECT_EQ(n_repacked, 0u) << name << ": repacked on a path without lane-layout kernels";
      continue;
    }
    EXPECT_GT(n_repacked, 0u) << name;
    repacked_models += n_repacked > 0;
    Context a(plain, params(64)), b(repacked, params(64));
    const std::vector<float> la = evaluate(a, tokens, false), lb = evaluate(b, tokens, false);
    if (n_x16 == 0) {
      EXPECT_EQ(la, lb) << name;
      continue;
    }
    ASSERT_EQ(la.size(), lb.size());
    float top = 0.0f, diff = 0.0f;
    for (size_t i = 0; i < la.size(); ++i) {
      top = std::max(top, std::fabs(la[i]));
      diff = std::max(diff, std::fabs(la[i] - lb[i]));
    }
    EXPECT_GT(diff, 0.0f) << name << ": the x16 arithmetic rounds differently; identical logits mean it did not run";
    EXPECT_LE(diff, 1e-4f * top) << name;
  }
  if (repacked_models == 0) GTEST_SKIP() << "no lane-layout kernels on this CPU path";
}

INSTANTIATE_TEST_SUITE_P(Tiny, ContextTest, testing::Values("tiny-llama", "tiny-qwen3"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace hearth::runtime
