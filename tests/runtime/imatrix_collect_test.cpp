// runtime::Context::set_matmul_observer and imatrix collection (formats.md §3.7): the Σx²
// collected for blk.0.attn_q.weight equals a hand computation from the token embeddings and
// the first RMSNorm; invariants for every other entry.
#include <gtest/gtest.h>

#include <cmath>

#include "model/model.h"
#include "quant/imatrix.h"
#include "quant/types.h"
#include "runtime/context.h"

namespace hearth::runtime {
namespace {

const std::string kModel = std::string(HEARTH_SOURCE_DIR) + "/models/hearth-kjv-F16.gguf";

// Row `row` of tensor `name` of the model's file as f32.
std::vector<float> tensor_row(const gguf::File& f, const std::string& name, int64_t row) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  EXPECT_NE(t, nullptr) << name;
  const size_t bytes = quant::row_size(t->type, t->ne[0]);
  std::vector<float> out(static_cast<size_t>(t->ne[0]));
  quant::traits(t->type).to_float(f.tensor_data(*t).data() + bytes * static_cast<size_t>(row), out.data(), t->ne[0]);
  return out;
}

TEST(ImatrixCollect, AttnQSumOfSquaresMatchesAHandComputation) {
  auto model = model::Model::load(kModel);
  const model::HParams& hp = model->hparams();
  ContextParams cp;
  cp.n_ctx = 64;
  cp.n_ubatch = 64;
  cp.n_threads = 2;
  Context ctx(model, cp);
  quant::Imatrix im;
  int64_t n_calls = 0;
  ctx.set_matmul_observer([&](const std::string& name, const float* x, int64_t n_rows, int64_t n_in) {
    ++n_calls;
    if (quant::Imatrix::wants(name, n_rows)) im.accumulate(name, x, n_rows, n_in);
  });
  const int n = 40;
  Batch batch;
  std::vector<int32_t> tokens;
  for (int i = 0; i < n; ++i) tokens.push_back(static_cast<int32_t>((7 * i + 3) % hp.n_vocab));
  for (int i = 0; i < n; ++i) batch.add(tokens[static_cast<size_t>(i)], i, 0, i + 1 == n);
  ctx.decode(batch);
  // A batch of fewer than 16 rows is observed but not collected.
  batch.clear();
  for (int i = 0; i < 8; ++i) batch.add(tokens[static_cast<size_t>(i)], n + i, 0, i == 7);
  ctx.decode(batch);
  EXPECT_EQ(n_calls, 2 * 7 * static_cast<int64_t>(hp.n_layer));

  ASSERT_EQ(im.entries.size(), 7u * hp.n_layer);
  for (const auto& [name, e] : im.entries) {
    EXPECT_EQ(name.rfind("blk.", 0), 0u) << name;
    ASSERT_EQ(e.counts.size(), 1u);
    EXPECT_EQ(e.counts[0], static_cast<float>(n)) << name;
    for (float v : e.in_sum2) ASSERT_TRUE(std::isfinite(v) && v >= 0) << name;
  }
  // Q, K and V see the same normalized input.
  const quant::ImatrixEntry* q = im.find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->in_sum2, im.find("blk.0.attn_k.weight")->in_sum2);
  EXPECT_EQ(q->in_sum2, im.find("blk.0.attn_v.weight")->in_sum2);

  // Hand computation: x = RMSNorm(token_embd[t]) * attn_norm, Σ over the 40 tokens of x².
  const gguf::File& f = model->file();
  const std::vector<float> norm = tensor_row(f, "blk.0.attn_norm.weight", 0);
  const int64_t d = hp.n_embd;
  ASSERT_EQ(q->n_in, d);
  std::vector<double> want(static_cast<size_t>(d), 0.0);
  for (int32_t t : tokens) {
    const std::vector<float> e = tensor_row(f, "token_embd.weight", t);
    double ss = 0;
    for (float v : e) ss += double(v) * v;
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(d) + hp.rms_eps);
    for (int64_t c = 0; c < d; ++c) {
      const double x = e[static_cast<size_t>(c)] * scale * norm[static_cast<size_t>(c)];
      want[static_cast<size_t>(c)] += x * x;
    }
  }
  for (int64_t c = 0; c < d; ++c)
    EXPECT_NEAR(q->in_sum2[static_cast<size_t>(c)], want[static_cast<size_t>(c)], 1e-4 * want[static_cast<size_t>(c)] + 1e-6)
        << "column " << c;

  // Removing the observer stops the calls.
  ctx.set_matmul_observer(nullptr);
  ctx.kv_cache().clear();
  batch.clear();
  for (int i = 0; i < 20; ++i) batch.add(tokens[static_cast<size_t>(i)], i, 0, i == 19);
  ctx.decode(batch);
  EXPECT_EQ(n_calls, 2 * 7 * static_cast<int64_t>(hp.n_layer));
}

}  // namespace
}  // namespace hearth::runtime

namespace hearth::runtime {
namespace {

// MoE stacks are collected per expert (formats.md §3.7): every token adds its row to the k
// experts it is routed to, so summed over experts the gate/up stacks see k times what the router
// sees (the same normalized input), and the counts add up to k rows per token.
TEST(ImatrixCollect, ExpertStacksAreCollectedPerSelectedExpert) {
  auto model = model::Model::load(std::string(HEARTH_TESTDATA_DIR) + "/models/qwen3moe-F16.gguf");
  const model::HParams& hp = model->hparams();
  ContextParams cp;
  cp.n_ctx = 64;
  cp.n_ubatch = 64;
  cp.n_threads = 2;
  Context ctx(model, cp);
  quant::Imatrix im;
  ctx.set_matmul_observer([&](const std::string& name, const float* x, int64_t n_rows, int64_t n_in) {
    if (quant::Imatrix::wants(name, n_rows)) im.accumulate(name, x, n_rows, n_in);
  });
  ctx.set_matmul_id_observer([&](const std::string& name, int64_t e, int64_t n_e, const float* x, int64_t n_rows,
                                 int64_t n_in) { im.accumulate_expert(name, e, n_e, x, n_rows, n_in); });
  const int n = 48;
  Batch batch;
  for (int i = 0; i < n; ++i) batch.add(static_cast<int32_t>((11 * i + 5) % hp.n_vocab), i, 0, i + 1 == n);
  ctx.decode(batch);
  const int64_t k = hp.n_expert_used, n_expert = hp.n_expert;
  for (uint32_t il = 0; il < hp.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    const quant::ImatrixEntry* router = im.find(p + "ffn_gate_inp.weight");
    const quant::ImatrixEntry* gate = im.find(p + "ffn_gate_exps.weight");
    const quant::ImatrixEntry* up = im.find(p + "ffn_up_exps.weight");
    const quant::ImatrixEntry* down = im.find(p + "ffn_down_exps.weight");
    ASSERT_TRUE(router && gate && up && down) << p;
    ASSERT_EQ(gate->n_mat, n_expert);
    ASSERT_EQ(down->n_mat, n_expert);
    EXPECT_EQ(down->n_in, static_cast<int64_t>(hp.n_ff_exp));
    float rows = 0;
    for (float c : gate->counts) rows += c;
    EXPECT_EQ(rows, static_cast<float>(k * n));
    EXPECT_EQ(gate->counts, down->counts);
    EXPECT_EQ(gate->in_sum2, up->in_sum2);  // the same gathered rows
    for (int64_t c = 0; c < gate->n_in; ++c) {
      double sum = 0;
      for (int64_t e = 0; e < n_expert; ++e) sum += gate->in_sum2[static_cast<size_t>(e * gate->n_in + c)];
      EXPECT_NEAR(sum, k * router->in_sum2[static_cast<size_t>(c)], 1e-4 * sum) << p << " column " << c;
    }
  }
  EXPECT_THROW(im.accumulate_expert("blk.0.ffn_gate_exps.weight", n_expert, n_expert, nullptr, 0, hp.n_embd), Error);
  EXPECT_THROW(im.accumulate_expert("blk.0.ffn_gate_exps.weight", 0, n_expert, nullptr, 0, hp.n_embd + 1), Error);
}

}  // namespace
}  // namespace hearth::runtime
