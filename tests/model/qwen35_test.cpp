// qwen35 / qwen35moe loading (architectures.md §7-§9): hyper-parameters and layer pattern of the
// reference models, the MTP block that the forward pass skips, errors naming missing and
// unknown tensors and bad Gated DeltaNet metadata, and synthesized Qwen 3.5 shapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>

#include "gguf/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include "runtime/eval.h"

namespace hearth::model {
namespace {

const std::string kModels = std::string(HEARTH_TESTDATA_DIR) + "/models/";
const std::vector<int32_t> kTokens{1, 300, 120, 47, 290, 315, 400, 12};  // below 512 (the tiny vocabularies)

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("hearth-qwen35-test-" + name)).string();
}

// Copies `src` to a new file: metadata edited by `edit`, tensors kept where keep(name), plus
// zero-filled F32 tensors `extra` (name, shape) at the end.
std::string rewrite(const std::string& src, const std::string& out_name, const std::function<void(gguf::Writer&)>& edit,
                    const std::function<bool(const std::string&)>& keep = nullptr,
                    const std::vector<std::pair<std::string, std::vector<int64_t>>>& extra = {}) {
  const gguf::File f = gguf::File::open(src);
  gguf::Writer w;
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  edit(w);
  std::vector<const gguf::TensorInfo*> kept;
  for (const gguf::TensorInfo& t : f.tensors()) {
    if (keep && !keep(t.name)) continue;
    w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims));
    kept.push_back(&t);
  }
  for (const auto& [name, ne] : extra) w.add_tensor(name, quant::GgmlType::F32, ne);
  const std::string path = temp_path(out_name);
  w.begin(path);
  for (const gguf::TensorInfo* t : kept) {
    auto data = f.tensor_data(*t);
    w.write_data(std::vector<uint8_t>(data.begin(), data.end()));
  }
  for (size_t i = kept.size(); i < w.tensors().size(); ++i)
    w.write_data(std::vector<uint8_t>(w.tensors()[i].nbytes, 0));
  w.finish();
  return path;
}

void expect_load_error(const std::string& path, const std::string& what) {
  try {
    Model::load(path);
    FAIL() << "expected an error about " << what;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

std::vector<float> logits_of(const std::shared_ptr<const Model>& m) {
  runtime::ContextParams cp;
  cp.n_ctx = 64;
  cp.n_threads = 2;
  runtime::Context ctx(m, cp);
  return runtime::evaluate(ctx, kTokens, false);
}

TEST(Qwen35, HyperParametersAndLayerPatternOfTheReferenceModels) {
  const auto m = Model::load(kModels + "qwen35-F16.gguf");
  const HParams& hp = m->hparams();
  EXPECT_EQ(hp.arch, "qwen35");
  EXPECT_EQ(hp.n_layer_all, 5u);
  EXPECT_EQ(hp.n_layer, 4u);           // blk.4 is the MTP block (nextn_predict_layers 1)
  EXPECT_EQ(hp.n_rot, 32u);            // partial RoPE: 32 of 128 dims
  EXPECT_EQ(m->n_params(), 4473048u);  // manifest.json
  const std::vector<KvLayerSpec> specs = m->arch().kv_layers();
  ASSERT_EQ(specs.size(), 4u);
  // Linear layers 0-2 (conv 4, 2 k-heads and 4 v-heads of 64), full attention at layer 3.
  for (int il = 0; il < 3; ++il) {
    EXPECT_EQ(specs[il].n_embd_k, 0u);
    EXPECT_EQ(specs[il].n_embd_r, 3u * (2 * 2 * 64 + 4 * 64));
    EXPECT_EQ(specs[il].n_embd_s, 4u * 64 * 64);
  }
  EXPECT_EQ(specs[3].n_embd_k, 128u);
  EXPECT_EQ(specs[3].n_embd_v, 128u);
  EXPECT_FALSE(specs[3].recurrent());

  const auto moe = Model::load(kModels + "qwen35moe-F16.gguf");
  EXPECT_EQ(moe->hparams().n_layer, 4u);
  EXPECT_EQ(moe->hparams().n_expert, 8u);
  EXPECT_EQ(moe->hparams().n_ff_exp, 64u);
  EXPECT_EQ(moe->n_params(), 2527564u);
  EXPECT_EQ(moe->arch().kv_layers()[1].n_embd_s, 2u * 64 * 64);
}

TEST(Qwen35, TheMtpBlockIsNotRun) {
  // The same file without blk.4 (the MTP block) gives the same logits.
  const std::string src = kModels + "qwen35-F16.gguf";
  const auto without = Model::load(rewrite(
      src, "nomtp.gguf", [](gguf::Writer&) {}, [](const std::string& n) { return n.rfind("blk.4.", 0) != 0; }));
  EXPECT_EQ(logits_of(without), logits_of(Model::load(src)));
}

TEST(Qwen35, MissingAndUnknownTensorsAreNamed) {
  const std::string src = kModels + "qwen35-F16.gguf";
  for (const char* name : {"blk.1.ssm_a", "blk.0.ssm_conv1d.weight", "blk.2.ssm_beta.weight", "blk.0.ssm_dt.bias",
                           "blk.3.attn_q_norm.weight", "blk.2.post_attention_norm.weight", "blk.1.ssm_norm.weight"})
    expect_load_error(
        rewrite(
            src, "missing.gguf", [](gguf::Writer&) {}, [name](const std::string& n) { return n != name; }),
        "tensor '" + std::string(name) + "' is missing");
  expect_load_error(
      rewrite(src, "unknown.gguf", [](gguf::Writer&) {}, nullptr,
              {{"blk.2.ssm_in.weight", {256, 1024}}, {"blk.4.nextn.foo", {4}}, {"rope_freqs.weight", {16}}}),
      "tensors that are not part of a qwen35 model with this layer pattern: 'blk.2.ssm_in.weight', "
      "'rope_freqs.weight'");
  const std::string moe = kModels + "qwen35moe-F16.gguf";
  for (const char* name :
       {"blk.0.ffn_gate_inp_shexp.weight", "blk.3.ffn_down_shexp.weight", "blk.2.ffn_up_exps.weight"})
    expect_load_error(
        rewrite(
            moe, "missing-moe.gguf", [](gguf::Writer&) {}, [name](const std::string& n) { return n != name; }),
        "tensor '" + std::string(name) + "' is missing");
}

TEST(Qwen35, BadGatedDeltaNetMetadataIsNamed) {
  const std::string src = kModels + "qwen35-F16.gguf";
  expect_load_error(rewrite(src, "nostate.gguf", [](gguf::Writer& w) { w.remove("qwen35.ssm.state_size"); }),
                    "qwen35.ssm.state_size");
  expect_load_error(rewrite(src, "noconv.gguf", [](gguf::Writer& w) { w.remove("qwen35.ssm.conv_kernel"); }),
                    "qwen35.ssm.conv_kernel");
  expect_load_error(rewrite(src, "badinner.gguf",
                            [](gguf::Writer& w) { w.set("qwen35.ssm.inner_size", gguf::Value::of(uint32_t{250})); }),
                    "qwen35.ssm.inner_size (250) must be a multiple of qwen35.ssm.time_step_rank (4)");
  expect_load_error(rewrite(src, "badheads.gguf",
                            [](gguf::Writer& w) { w.set("qwen35.ssm.group_count", gguf::Value::of(uint32_t{3})); }),
                    "multiple of qwen35.ssm.group_count (3)");
  expect_load_error(
      rewrite(src, "nosections.gguf", [](gguf::Writer& w) { w.remove("qwen35.rope.dimension_sections"); }),
      "'qwen35.rope.dimension_sections' is missing");
  // Another layer pattern than the tensors': layer 1 becomes full attention.
  expect_load_error(
      rewrite(src, "interval.gguf",
              [](gguf::Writer& w) { w.set("qwen35.full_attention_interval", gguf::Value::of(uint32_t{2})); }),
      "tensor 'blk.1.attn_q.weight' is missing");
  // attention.recurrent_layers, when present, decides the pattern.
  const auto flags = Model::load(rewrite(src, "flags.gguf", [](gguf::Writer& w) {
    w.remove("qwen35.full_attention_interval");
    w.set("qwen35.attention.recurrent_layers", gguf::Value::array(std::vector<bool>{true, true, true, false, false}));
  }));
  EXPECT_EQ(logits_of(flags), logits_of(Model::load(src)));
}

TEST(Qwen35, RopeSectionsChooseThePairsThatRotate) {
  // Pair i (of n_rot/2) is in sector σ = i mod Σsections and rotates with the token's position
  // while σ < 3·sections[σ mod 3]; otherwise it takes the 4th position, 0 for text (§9.2).
  // qwen35-F16 has 16 pairs and sections [6, 6, 4, 0]: every pair but 14 (14 >= 3·4) rotates.
  // [16, 16, 16, 0] rotates all 16: only pair 14 changes, whose angle p·1e7^(-28/32) = p·7.5e-7
  // only shows far into the sequence (positions 5000+, through the F16 rounding of Q and K: a
  // small change). [1, 1, 1, 13] rotates pairs 0-2 only: a large change (64 tokens, so that the
  // slow pairs turn by a visible angle between them). Position 0 never rotates.
  const std::string src = kModels + "qwen35-F16.gguf";
  std::vector<int32_t> tokens;  // 64 tokens: distances up to 63 positions
  for (int32_t i = 0; i < 64; ++i) tokens.push_back(1 + (i * 397) % 4000);
  auto eval_at = [&](const std::shared_ptr<const Model>& m, int32_t start) {
    runtime::ContextParams cp;
    cp.n_ctx = 64;
    cp.n_threads = 2;
    runtime::Context ctx(m, cp);
    return runtime::evaluate(ctx, tokens, false, 0, start);
  };
  auto with_sections = [&](const std::string& name, std::vector<int32_t> sec) {
    return Model::load(rewrite(src, name, [&](gguf::Writer& w) {
      w.set("qwen35.rope.dimension_sections", gguf::Value::array(sec));
    }));
  };
  const auto base = Model::load(src);
  auto max_diff = [](const std::vector<float>& x, const std::vector<float>& y, size_t from) {
    double d = 0;
    for (size_t i = from; i < x.size(); ++i) d = std::max(d, std::abs(double{x[i]} - y[i]));
    return d;
  };
  const size_t n_vocab = 4096;
  const auto all = with_sections("sections-all.gguf", {16, 16, 16, 0});
  const double far = max_diff(eval_at(all, 5000), eval_at(base, 5000), 0);
  EXPECT_GT(far, 0.0);
  EXPECT_LT(far, 0.05);
  const auto few = with_sections("sections-few.gguf", {1, 1, 1, 13});
  const std::vector<float> near_few = eval_at(few, 0), near_base = eval_at(base, 0);
  for (size_t i = 0; i < n_vocab; ++i) ASSERT_EQ(near_few[i], near_base[i]) << "position 0 changed";
  EXPECT_GT(max_diff(near_few, near_base, n_vocab), 0.03);  // measured 0.07; rounding noise is ~0.005
  const auto zero_sections = [](gguf::Writer& w) {
    w.set("qwen35.rope.dimension_sections", gguf::Value::array(std::vector<int32_t>{0, 0, 0, 0}));
  };
  expect_load_error(rewrite(src, "sections-zero.gguf", zero_sections),
                    "rope.dimension_sections must be an array of 4 non-negative integers, not all 0");
}

TEST(Qwen35, SynthesizedShapesLoadAndRun) {
  for (const char* name : {"tiny-qwen35", "tiny-qwen35moe", "tiny-qwen3next"}) {
    const SynthShape shape = find_synth_shape(name);
    const std::string path = temp_path(std::string(name) + ".gguf");
    SynthOptions opt;
    opt.type = quant::GgmlType::Q8_0;
    synthesize(shape, opt, path);
    const auto m = Model::load(path);
    EXPECT_EQ(m->hparams().arch, shape.arch);
    EXPECT_EQ(m->n_params(), shape.n_params()) << name;
    EXPECT_EQ(m->file().find_tensor("blk.0.ssm_conv1d.weight")->type, quant::GgmlType::F32);
    EXPECT_EQ(m->file().find_tensor("blk.3.attn_q.weight")->ne[1], 2 * shape.n_head * shape.head_dim);
    const auto logits = logits_of(m);
    float lo = 1e30f, hi = -1e30f;
    for (float x : logits) {
      ASSERT_TRUE(std::isfinite(x)) << name;
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
    EXPECT_GT(hi - lo, 1.0f) << name;
    // The first 3 layers alone: all Gated DeltaNet, no KV cache at all.
    const auto three = Model::load((synthesize(first_layers(shape, 3), opt, path + ".3"), path + ".3"));
    for (const KvLayerSpec& s : three->arch().kv_layers()) EXPECT_TRUE(s.recurrent());
    runtime::ContextParams cp;
    cp.n_ctx = 16;
    runtime::Context ctx(three, cp);
    EXPECT_EQ(ctx.kv_cache().bytes(), 0u);
    EXPECT_GT(ctx.kv_cache().recurrent_bytes(), 0u);
    EXPECT_EQ(runtime::evaluate(ctx, kTokens, false).size(), kTokens.size() * m->hparams().n_vocab);
  }
  // Sizes of the real models (architectures.md §12.3; names give total and active parameters).
  EXPECT_NEAR(static_cast<double>(find_synth_shape("qwen3.5-35b-a3b").n_params()), 35e9, 1e9);
  EXPECT_NEAR(static_cast<double>(find_synth_shape("qwen3.5-35b-a3b").n_active_params()), 3e9, 0.5e9);
  EXPECT_NEAR(static_cast<double>(find_synth_shape("qwen3.5-397b-a17b").n_params()), 397e9, 2e9);
  EXPECT_NEAR(static_cast<double>(find_synth_shape("qwen3.5-397b-a17b").n_active_params()), 17e9, 0.5e9);
  EXPECT_NEAR(static_cast<double>(find_synth_shape("qwen3.5-27b").n_params()), 27e9, 0.5e9);
  EXPECT_NEAR(static_cast<double>(find_synth_shape("qwen3.5-9b").n_params()), 9e9, 0.5e9);
}

// A qwen35moe file rewritten the way qwen3next stores the same model (architectures.md §7.2, §8):
// v-heads from tiled order (v-head i·H_k + g reads k-head g) to grouped order (v-head g·r + i),
// ssm_beta and ssm_alpha merged into ssm_ba (per k-group [β (r) | α (r)]), the keys renamed; with
// `legacy`, attn_qkv and attn_gate merged into ssm_in (per k-group [q_g | k_g | v_g | z_g]).
// Without `permute` the v-heads keep their order (a wrong conversion, for the negative check).
std::string to_qwen3next(const std::string& src, const std::string& out_name, bool legacy, bool permute = true) {
  const gguf::File f = gguf::File::open(src);
  const uint32_t hk = f.require<uint32_t>("qwen35moe.ssm.group_count"),
                 hv = f.require<uint32_t>("qwen35moe.ssm.time_step_rank");
  const int64_t dk = f.require<uint32_t>("qwen35moe.ssm.state_size"), dv = dk, r = hv / hk, c_qk = hk * dk;
  gguf::Writer w;
  for (const auto& [k, v] : f.metadata()) {
    if (k.rfind("qwen35moe.", 0) == 0) {
      w.set("qwen3next." + k.substr(10), v);
    } else {
      w.set(k, k == "general.architecture" ? gguf::Value::of("qwen3next") : v);
    }
  }
  struct Out {
    std::string name;
    quant::GgmlType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> bytes;
  };
  std::vector<Out> outs;
  auto rows_of = [&](const std::string& name, int64_t row0, int64_t n_rows) {
    const gguf::TensorInfo& t = *f.find_tensor(name);
    const size_t rb = quant::row_size(t.type, t.ne[0]);
    auto data = f.tensor_data(t);
    return std::vector<uint8_t>(data.begin() + static_cast<std::ptrdiff_t>(row0 * rb),
                                data.begin() + static_cast<std::ptrdiff_t>((row0 + n_rows) * rb));
  };
  auto tiled = [&](int64_t jg) { return permute ? (jg % r) * hk + jg / r : jg; };  // old index of grouped v-head jg
  auto append = [](std::vector<uint8_t>& a, const std::vector<uint8_t>& b) { a.insert(a.end(), b.begin(), b.end()); };
  for (const gguf::TensorInfo& t : f.tensors()) {
    const std::string& n = t.name;
    Out o{n, t.type, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims), {}};
    auto ends = [&](const char* suffix) {
      return n.size() > std::strlen(suffix) &&
             n.compare(n.size() - std::strlen(suffix), std::string::npos, suffix) == 0;
    };
    const std::string p = n.substr(0, n.find('.', 4) + 1);
    if (ends("ssm_beta.weight")) continue;  // merged into ssm_ba below (with ssm_alpha)
    if (ends("ssm_alpha.weight")) {
      o.name = p + "ssm_ba.weight";
      o.ne[1] = 2 * hv;
      for (int64_t g = 0; g < hk; ++g)
        for (const char* part : {"ssm_beta.weight", "ssm_alpha.weight"})
          for (int64_t i = 0; i < r; ++i) append(o.bytes, rows_of(p + part, tiled(g * r + i), 1));
    } else if (ends("attn_qkv.weight") || ends("ssm_conv1d.weight")) {
      append(o.bytes, rows_of(n, 0, 2 * c_qk));
      for (int64_t j = 0; j < hv; ++j) append(o.bytes, rows_of(n, 2 * c_qk + tiled(j) * dv, dv));
    } else if (ends("attn_gate.weight")) {
      for (int64_t j = 0; j < hv; ++j) append(o.bytes, rows_of(n, tiled(j) * dv, dv));
    } else if (ends("ssm_dt.bias") || ends("ssm_a")) {
      const float* x = reinterpret_cast<const float*>(f.tensor_data(t).data());
      for (int64_t j = 0; j < hv; ++j) {
        const float v = x[tiled(j)];
        const uint8_t* b = reinterpret_cast<const uint8_t*>(&v);
        o.bytes.insert(o.bytes.end(), b, b + 4);
      }
    } else if (ends("ssm_out.weight")) {  // columns: blocks of dv per v-head (F16)
      const std::vector<uint8_t> all = rows_of(n, 0, t.ne[1]);
      const size_t rb = quant::row_size(t.type, t.ne[0]), eb = rb / static_cast<size_t>(t.ne[0]);
      for (int64_t row = 0; row < t.ne[1]; ++row)
        for (int64_t j = 0; j < hv; ++j) {
          const auto from = all.begin() + static_cast<std::ptrdiff_t>(row * rb + tiled(j) * dv * eb);
          o.bytes.insert(o.bytes.end(), from, from + static_cast<std::ptrdiff_t>(dv * eb));
        }
    } else {
      append(o.bytes, rows_of(n, 0, t.n_elements() / t.ne[0]));
    }
    outs.push_back(std::move(o));
  }
  if (legacy) {  // attn_qkv + attn_gate (already grouped) -> ssm_in
    std::vector<Out> merged;
    for (Out& o : outs) {
      if (o.name.find("attn_gate.weight") != std::string::npos) continue;
      if (o.name.find("attn_qkv.weight") == std::string::npos) {
        merged.push_back(std::move(o));
        continue;
      }
      const std::string p = o.name.substr(0, o.name.find('.', 4) + 1);
      const Out& gate =
          *std::find_if(outs.begin(), outs.end(), [&](const Out& x) { return x.name == p + "attn_gate.weight"; });
      const size_t rb = o.bytes.size() / static_cast<size_t>(o.ne[1]);
      Out in{p + "ssm_in.weight", o.type, {o.ne[0], 2 * c_qk + 2 * hv * dv}, {}};
      auto rows = [&](const Out& from, int64_t r0, int64_t nr) {
        in.bytes.insert(in.bytes.end(), from.bytes.begin() + static_cast<std::ptrdiff_t>(r0 * rb),
                        from.bytes.begin() + static_cast<std::ptrdiff_t>((r0 + nr) * rb));
      };
      for (int64_t g = 0; g < hk; ++g) {
        rows(o, g * dk, dk);
        rows(o, c_qk + g * dk, dk);
        rows(o, 2 * c_qk + g * r * dv, r * dv);
        rows(gate, g * r * dv, r * dv);
      }
      merged.push_back(std::move(in));
    }
    outs = std::move(merged);
  }
  for (const Out& o : outs) w.add_tensor(o.name, o.type, o.ne);
  const std::string path = temp_path(out_name);
  w.begin(path);
  for (const Out& o : outs) w.write_data(o.bytes);
  w.finish();
  return path;
}

TEST(Qwen3Next, IsQwen35MoeWithGroupedHeadsAndMergedProjections) {
  // A qwen35moe model with 2 k-heads and 4 v-heads, where tiled and grouped order differ.
  SynthShape shape = find_synth_shape("tiny-qwen3next");
  shape.arch = "qwen35moe";
  ASSERT_EQ(shape.ssm_n_k_heads, 2u);
  ASSERT_EQ(shape.ssm_n_v_heads, 4u);
  const std::string src = temp_path("as-qwen35moe.gguf");
  synthesize(shape, SynthOptions{}, src);
  const std::vector<float> want = logits_of(Model::load(src));
  double spread = 0;
  for (float x : want) spread = std::max(spread, double{std::abs(x)});
  for (bool legacy : {false, true}) {
    const auto next = Model::load(to_qwen3next(src, legacy ? "next-legacy.gguf" : "next.gguf", legacy));
    EXPECT_EQ(next->hparams().arch, "qwen3next");
    const std::vector<float> got = logits_of(next);
    ASSERT_EQ(got.size(), want.size());
    double diff = 0;
    for (size_t i = 0; i < got.size(); ++i) diff = std::max(diff, std::abs(double{got[i]} - want[i]));
    // Only ssm_out's columns moved (its dot products add in another order): rounding noise.
    EXPECT_LE(diff, 1e-4 * spread) << (legacy ? "ssm_in" : "attn_qkv") << " file";
  }
  // The head order matters: the same conversion without moving the v-heads is another model.
  const std::vector<float> unmoved = logits_of(Model::load(to_qwen3next(src, "next-unmoved.gguf", false, false)));
  double diff = 0;
  for (size_t i = 0; i < unmoved.size(); ++i) diff = std::max(diff, std::abs(double{unmoved[i]} - want[i]));
  EXPECT_GT(diff, 0.01 * spread);
}

}  // namespace
}  // namespace hearth::model
