// Runtime: the per-sequence recurrent state of hybrid Gated DeltaNet models (qwen35,
// qwen35moe, qwen3next; architectures.md §7.4) beside the KV cache: its size, sequences sharing a batch,
// n_seq_max and consecutive positions, and what seq_rm / seq_cp / clear do to it. Tiny
// synthesized models; every comparison is bit for bit, since the same tokens in the same
// decode() calls run the same arithmetic whatever else shares the batch.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "model/synth.h"
#include "runtime/context.h"
#include "runtime/eval.h"

namespace hearth::runtime {
namespace {

std::shared_ptr<const model::Model> tiny(const std::string& name) {
  static std::map<std::string, std::shared_ptr<const model::Model>> cache;
  auto& m = cache[name];
  if (!m) {
    const std::string path = (std::filesystem::temp_directory_path() / ("hearth-test-" + name + ".gguf")).string();
    model::SynthOptions opt;
    opt.seed = 9;
    model::synthesize(model::find_synth_shape(name), opt, path);
    m = model::Model::load(path);
  }
  return m;
}

ContextParams params(uint32_t n_ctx, uint32_t n_seq_max = 1, uint32_t n_ubatch = 512) {
  ContextParams p;
  p.n_ctx = n_ctx;
  p.n_ubatch = n_ubatch;
  p.n_threads = 2;
  p.n_seq_max = n_seq_max;
  return p;
}

const std::vector<int32_t> kA{496, 70, 111, 318, 275, 99, 337, 289};
const std::vector<int32_t> kB{496, 298, 265, 274, 332, 44};

template <class F>
void expect_error(F&& f, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << "expected an error about " << what;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

class RecurrentState : public testing::TestWithParam<std::string> {};

TEST_P(RecurrentState, StateIsSizedPerSequenceBesideTheKvCache) {
  const auto m = tiny(GetParam());
  const model::SynthShape& s = model::find_synth_shape(GetParam());
  const std::vector<model::KvLayerSpec> specs = m->arch().kv_layers();
  ASSERT_EQ(specs.size(), s.n_layer);
  // §7.4: (K−1)·(2·H_k·d + H_v·d) conv floats and H_v·d·d state floats per linear layer.
  const uint32_t c_conv = 2 * s.ssm_n_k_heads * s.ssm_head_dim + s.ssm_n_v_heads * s.ssm_head_dim;
  const uint32_t n_r = (s.ssm_conv_kernel - 1) * c_conv, n_s = s.ssm_n_v_heads * s.ssm_head_dim * s.ssm_head_dim;
  uint64_t kv_halves = 0, state_floats = 0;
  for (uint32_t il = 0; il < s.n_layer; ++il) {
    const bool linear = (il + 1) % s.full_attention_interval != 0;
    EXPECT_EQ(specs[il].recurrent(), linear) << "layer " << il;
    EXPECT_EQ(specs[il].n_embd_r, linear ? n_r : 0u) << "layer " << il;
    EXPECT_EQ(specs[il].n_embd_s, linear ? n_s : 0u) << "layer " << il;
    EXPECT_EQ(specs[il].n_embd_k, linear ? 0u : s.n_head_kv * s.head_dim) << "layer " << il;
    kv_halves += specs[il].n_embd_k + specs[il].n_embd_v;
    state_floats += uint64_t{specs[il].n_embd_r} + specs[il].n_embd_s;
  }
  Context ctx(m, params(100, 3));
  EXPECT_TRUE(ctx.kv_cache().recurrent());
  EXPECT_EQ(ctx.kv_cache().n_seq_max(), 3u);
  EXPECT_EQ(ctx.kv_cache().bytes(), 100 * kv_halves * 2);
  EXPECT_EQ(ctx.kv_cache().recurrent_bytes(), 3 * state_floats * 4);
  // Models without recurrent layers allocate none.
  Context plain(tiny("tiny-qwen3"), params(100, 3));
  EXPECT_FALSE(plain.kv_cache().recurrent());
  EXPECT_EQ(plain.kv_cache().recurrent_bytes(), 0u);
}

TEST_P(RecurrentState, SequencesSharingABatchKeepTheirOwnState) {
  const auto m = tiny(GetParam());
  Context alone_a(m, params(64)), alone_b(m, params(64));
  const auto la = evaluate(alone_a, kA, false);
  const auto lb = evaluate(alone_b, kB, false);
  Context shared(m, params(64, 2));
  Batch batch;
  std::vector<std::pair<int, size_t>> order;  // (sequence, index)
  for (size_t i = 0; i < kA.size(); ++i) {
    batch.add(kA[i], static_cast<int32_t>(i), 1, true);
    order.emplace_back(1, i);
    if (i < kB.size()) {
      batch.add(kB[i], static_cast<int32_t>(i), 0, true);
      order.emplace_back(0, i);
    }
  }
  shared.decode(batch);
  const size_t n_vocab = m->hparams().n_vocab;
  for (size_t i = 0; i < order.size(); ++i) {
    const auto row = shared.logits(i);
    const auto& want = order[i].first == 1 ? la : lb;
    const std::vector<float> expect(want.begin() + static_cast<std::ptrdiff_t>(order[i].second * n_vocab),
                                    want.begin() + static_cast<std::ptrdiff_t>((order[i].second + 1) * n_vocab));
    EXPECT_EQ(std::vector<float>(row.begin(), row.end()), expect) << "batch index " << i;
  }
  // One more token for each, again in one batch, continues each sequence's own state.
  Batch next;
  next.add(7, static_cast<int32_t>(kB.size()), 0, true);
  next.add(7, static_cast<int32_t>(kA.size()), 1, true);
  shared.decode(next);
  Batch one;
  one.add(7, static_cast<int32_t>(kA.size()), 0, true);
  alone_a.decode(one);
  one.clear();
  one.add(7, static_cast<int32_t>(kB.size()), 0, true);
  alone_b.decode(one);
  EXPECT_TRUE(std::equal(shared.logits(0).begin(), shared.logits(0).end(), alone_b.logits(0).begin()));
  EXPECT_TRUE(std::equal(shared.logits(1).begin(), shared.logits(1).end(), alone_a.logits(0).begin()));
}

TEST_P(RecurrentState, SequenceIdsAndPositionsAreChecked) {
  const auto m = tiny(GetParam());
  expect_error([&] { Context c(m, params(16, 0)); }, "n_seq_max = 0");
  expect_error([&] { Context c(m, params(16, 65)); }, "n_seq_max = 65");
  Context ctx(m, params(16, 2));
  evaluate(ctx, std::vector<int32_t>(kA.begin(), kA.begin() + 3), false);
  auto decode_error = [&](const Batch& b, const std::string& what) {
    expect_error([&] { ctx.decode(b); }, what);
    EXPECT_EQ(ctx.kv_cache().n_used(), 3u);
  };
  Batch b;
  b.add(5, 0, 2, true);
  decode_error(b, "sequence id 2 at batch index 0 has no recurrent state: this model keeps one for n_seq_max = 2");
  b.clear();
  b.add(5, 4, 0, true);  // position 3 comes next
  decode_error(b, "sequence 0 continues at position 4 (batch index 0) but its next position is 3");
  b.clear();
  b.add(5, 3, 0, true);
  b.add(6, 5, 0, true);
  decode_error(b, "its next position is 4");
  b.clear();
  b.add(5, 3, 1, true);  // a new sequence may start anywhere, then runs on consecutively
  b.add(6, 4, 1, true);
  b.add(6, 3, 0, true);
  ctx.decode(b);
  EXPECT_EQ(ctx.kv_cache().n_used(), 6u);
  expect_error([&] { ctx.kv_cache().seq_cp(0, 2, 0, -1); }, "sequence id 2 has no recurrent state");
  expect_error([&] { ctx.kv_cache().seq_rm(64, 0, -1); }, "sequence id 64 is out of range");
}

TEST_P(RecurrentState, RemovingWholeSequencesResetsTheirState) {
  const auto m = tiny(GetParam());
  Context fresh(m, params(32));
  const auto want = evaluate(fresh, kB, false);
  Context ctx(m, params(32));
  evaluate(ctx, kA, false);
  ctx.kv_cache().seq_rm(0, 0, -1);
  EXPECT_EQ(ctx.kv_cache().n_used(), 0u);
  EXPECT_EQ(evaluate(ctx, kB, false), want);
  ctx.kv_cache().seq_rm(-1, -1, -1);  // every sequence
  EXPECT_EQ(evaluate(ctx, kB, false), want);
  ctx.kv_cache().clear();
  EXPECT_EQ(evaluate(ctx, kB, false), want);
  // Without the reset the state of the removed tokens would still be there.
  Context stale(m, params(32));
  evaluate(stale, kA, false);
  EXPECT_NE(evaluate(stale, kB, false, 0, static_cast<int32_t>(kA.size())), want);
}

TEST_P(RecurrentState, PartialRemovalIsAnErrorAndChangesNothing) {
  const auto m = tiny(GetParam());
  Context ctx(m, params(32)), ref(m, params(32));
  evaluate(ctx, kA, false);
  evaluate(ref, kA, false);
  expect_error([&] { ctx.kv_cache().seq_rm(0, 4, -1); },
               "cannot remove positions 4..end of sequence 0, which holds positions 0..7");
  expect_error([&] { ctx.kv_cache().seq_rm(-1, 0, 3); }, "cannot be rolled back");
  EXPECT_EQ(ctx.kv_cache().n_used(), kA.size());
  ctx.kv_cache().seq_rm(0, 8, -1);  // nothing at or after position 8: allowed, no change
  ctx.kv_cache().seq_rm(1, 0, -1);  // an empty sequence
  const int32_t next = static_cast<int32_t>(kA.size());
  EXPECT_EQ(evaluate(ctx, kB, false, 0, next), evaluate(ref, kB, false, 0, next));
}

TEST_P(RecurrentState, CopiedSequencesContinueFromTheCopiedState) {
  const auto m = tiny(GetParam());
  const std::vector<int32_t> prefix(kA.begin(), kA.begin() + 5), tail(kB.begin() + 1, kB.end());
  Context ctx(m, params(32, 2));
  evaluate(ctx, prefix, false, 0);
  expect_error([&] { ctx.kv_cache().seq_cp(0, 1, 0, 3); }, "can only be copied with the whole sequence");
  ctx.kv_cache().seq_cp(0, 1, 0, -1);
  EXPECT_EQ(ctx.kv_cache().n_used(), prefix.size());  // K/V shared, not copied
  expect_error([&] { ctx.kv_cache().seq_cp(0, 1, 0, -1); }, "sequence 1 already holds tokens");
  const auto branched = evaluate(ctx, tail, false, 1, 5);
  // Sequence 0 is not affected by what sequence 1 did.
  const auto own = evaluate(ctx, kB, false, 0, 5);
  Context fresh(m, params(32));
  evaluate(fresh, prefix, false);
  EXPECT_EQ(branched, evaluate(fresh, tail, false, 0, 5));
  Context fresh2(m, params(32));
  evaluate(fresh2, prefix, false);
  EXPECT_EQ(own, evaluate(fresh2, kB, false, 0, 5));
}

INSTANTIATE_TEST_SUITE_P(Tiny, RecurrentState, testing::Values("tiny-qwen35", "tiny-qwen35moe", "tiny-qwen3next"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace hearth::runtime
