// Gemma (architectures.md §10, §11) against a straightforward double-precision forward pass
// written from the spec: every position of a prompt recomputed from scratch (no KV cache,
// masks from positions), on synthesized models with F32 weights. It covers what the llama.cpp
// reference files do not: Gemma 4's per-layer embeddings and KV sharing (E2B/E4B), the
// double-wide MLP, and the synthesized shapes of every variant.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "gguf/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include "quant/fp16.h"
#include "quant/types.h"
#include "runtime/eval.h"

namespace hearth::model {
namespace {

using Vec = std::vector<double>;

// The spec's forward pass, reading the GGUF directly. With `f16`, the values llama.cpp's CPU
// backend keeps in F16 are rounded to F16 here too: Q, K and V as attention reads them, the
// attention probabilities, and GELU's input and output (architectures.md §1.1, kernels/ops.h).
class Reference {
 public:
  Reference(const std::string& path, bool f16) : f_(gguf::File::open(path)), f16_(f16) {
    arch_ = f_.require<std::string>("general.architecture");
    g4_ = arch_ == "gemma4";
    a_ = arch_ + ".";
    d_ = f_.require<uint32_t>(a_ + "embedding_length");
    n_layer_ = f_.require<uint32_t>(a_ + "block_count");
    eps_ = f_.require<float>(a_ + "attention.layer_norm_rms_epsilon");
    n_head_ = per_layer("attention.head_count");
    n_head_kv_ = per_layer("attention.head_count_kv");
    hd_global_ = f_.require<uint32_t>(a_ + "attention.key_length");
    hd_swa_ = g4_ ? f_.require<uint32_t>(a_ + "attention.key_length_swa") : hd_global_;
    rot_global_ = f_.get<uint32_t>(a_ + "rope.dimension_count").value_or(hd_global_);
    rot_swa_ = g4_ ? f_.get<uint32_t>(a_ + "rope.dimension_count_swa").value_or(rot_global_) : rot_global_;
    base_global_ = f_.require<float>(a_ + "rope.freq_base");
    base_swa_ = f_.get<float>(a_ + "rope.freq_base_swa").value_or(10000.0f);
    const float factor = f_.get<float>(a_ + "rope.scaling.factor").value_or(0.0f);
    scale_global_ = factor > 0 ? 1.0 / factor : 1.0;
    window_ = f_.get<uint32_t>(a_ + "attention.sliding_window").value_or(0);
    const gguf::Value* pattern = f_.find(a_ + "attention.sliding_window_pattern");
    for (uint32_t il = 0; il < n_layer_; ++il) {
      bool swa = false;
      if (window_ > 0 && g4_) swa = pattern->at<bool>(il);
      if (window_ > 0 && !g4_) {
        const uint32_t p = pattern ? pattern->get<uint32_t>() : 6;
        swa = il % p != p - 1;
      }
      swa_.push_back(swa);
    }
    softcap_ = f_.get<float>(a_ + "final_logit_softcapping").value_or(g4_ ? 30.0f : 0.0f);
    n_shared_ = f_.get<uint32_t>(a_ + "attention.shared_kv_layers").value_or(0);
    d_pl_ = f_.get<uint32_t>(a_ + "embedding_length_per_layer_input").value_or(0);
    n_used_ = f_.get<uint32_t>(a_ + "expert_used_count").value_or(0);
  }

  // Logits [n][n_vocab] of every position of `tokens` (one sequence starting at position 0).
  std::vector<Vec> logits(const std::vector<int32_t>& tokens) const {
    const size_t n = tokens.size(), d = d_;
    const std::vector<float> embd = tensor("token_embd.weight");
    const size_t n_vocab = embd.size() / d;
    std::vector<Vec> x(n);
    for (size_t t = 0; t < n; ++t) {
      const auto row = embd.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(tokens[t]) * d);
      x[t].assign(row, row + static_cast<ptrdiff_t>(d));
      for (double& v : x[t]) v *= std::sqrt(static_cast<double>(d));
    }
    // Per-layer inputs (§11): (RMSNorm(W x0 / √d) + E[tok] · √d_pl) / √2, per layer slice.
    std::vector<Vec> ple(n);
    if (d_pl_ > 0) {
      const std::vector<float> table = tensor("per_layer_token_embd.weight"),
                               proj = tensor("per_layer_model_proj.weight"), norm = tensor("per_layer_proj_norm.weight");
      const size_t width = size_t{d_pl_} * n_layer_;
      for (size_t t = 0; t < n; ++t) {
        Vec p = matvec(proj, d, x[t]);
        for (double& v : p) v /= std::sqrt(static_cast<double>(d));
        for (size_t il = 0; il < n_layer_; ++il) rms_norm(p.data() + il * d_pl_, d_pl_, norm.data());
        for (size_t i = 0; i < width; ++i)
          p[i] = (p[i] + table[tokens[t] * width + i] * std::sqrt(static_cast<double>(d_pl_))) / std::sqrt(2.0);
        ple[t] = p;
      }
    }
    const uint32_t n_kv_layers = n_layer_ - n_shared_;
    std::vector<std::vector<Vec>> K(n_layer_), V(n_layer_);  // [layer][position]
    for (uint32_t il = 0; il < n_layer_; ++il) {
      const std::string p = "blk." + std::to_string(il) + ".";
      const bool swa = swa_[il];
      const size_t hd = swa ? hd_swa_ : hd_global_, H = n_head_[il], Hkv = n_head_kv_[il];
      const std::vector<float> wq = tensor(p + "attn_q.weight"), qn = tensor(p + "attn_q_norm.weight"),
                               wo = tensor(p + "attn_output.weight"), an = tensor(p + "attn_norm.weight"),
                               pan = tensor(p + "post_attention_norm.weight");
      const std::vector<float> freqs = !swa && g4_ ? tensor("rope_freqs.weight") : std::vector<float>{};
      auto rope = [&](double* v, size_t pos) {
        const size_t n_rot = swa ? rot_swa_ : rot_global_;
        const double base = swa ? base_swa_ : base_global_, scale = swa ? 1.0 : scale_global_;
        for (size_t i = 0; i < n_rot / 2; ++i) {
          const double inv_freq = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(n_rot));
          const double theta = scale * static_cast<double>(pos) * inv_freq / (freqs.empty() ? 1.0 : freqs[i]);
          const double a = v[i], b = v[i + n_rot / 2];
          v[i] = a * std::cos(theta) - b * std::sin(theta);
          v[i + n_rot / 2] = a * std::sin(theta) + b * std::cos(theta);
        }
      };
      const int src = il < n_kv_layers ? static_cast<int>(il) : static_cast<int>(n_kv_layers) - (swa ? 2 : 1);
      std::vector<Vec> h(n), q(n);
      for (size_t t = 0; t < n; ++t) {
        h[t] = x[t];
        rms_norm(h[t].data(), d, an.data());
        q[t] = matvec(wq, d, h[t]);
        for (size_t hh = 0; hh < H; ++hh) {
          rms_norm(q[t].data() + hh * hd, hd, qn.data());
          rope(q[t].data() + hh * hd, t);
        }
        if (!g4_)
          for (double& v : q[t]) v /= std::sqrt(static_cast<double>(hd));
        for (double& v : q[t]) v = round(v);
      }
      if (src == static_cast<int>(il)) {
        const std::vector<float> wk = tensor(p + "attn_k.weight"), wv = tensor(p + "attn_v.weight"),
                                 kn = tensor(p + "attn_k_norm.weight");
        for (size_t t = 0; t < n; ++t) {
          Vec k = matvec(wk, d, h[t]);
          Vec v = wv.empty() ? k : matvec(wv, d, h[t]);  // gemma4 without attn_v: V = raw K
          for (size_t hh = 0; hh < Hkv; ++hh) {
            rms_norm(k.data() + hh * hd, hd, kn.data());
            rope(k.data() + hh * hd, t);
            if (g4_) rms_norm(v.data() + hh * hd, hd, nullptr);
          }
          for (double& e : k) e = round(e);
          for (double& e : v) e = round(e);
          K[il].push_back(k);
          V[il].push_back(v);
        }
      }
      for (size_t t = 0; t < n; ++t) {
        const size_t lo = swa && t + 1 > window_ ? t + 1 - window_ : 0;
        Vec o(H * hd, 0.0);
        for (size_t hh = 0; hh < H; ++hh) {
          const size_t g = hh / (H / Hkv);
          const std::vector<Vec>& keys = K[static_cast<size_t>(src)];
          Vec sc;
          for (size_t s = lo; s <= t; ++s) {
            double dot = 0;
            for (size_t i = 0; i < hd; ++i) dot += q[t][hh * hd + i] * keys[s][g * hd + i];
            sc.push_back(dot);
          }
          const double mx = *std::max_element(sc.begin(), sc.end());
          double z = 0;
          for (double& v : sc) z += v = std::exp(v - mx);
          for (size_t s = lo; s <= t; ++s)
            for (size_t i = 0; i < hd; ++i)
              o[hh * hd + i] += round(sc[s - lo] / z) * V[static_cast<size_t>(src)][s][g * hd + i];
        }
        Vec y = matvec(wo, H * hd, o);
        rms_norm(y.data(), d, pan.data());
        for (size_t i = 0; i < d; ++i) x[t][i] += y[i];
      }
      feed_forward(il, x, ple);
    }
    const std::vector<float> on = tensor("output_norm.weight");
    std::vector<float> out = tensor("output.weight");
    if (out.empty()) out = embd;
    std::vector<Vec> res(n);
    for (size_t t = 0; t < n; ++t) {
      Vec h = x[t];
      rms_norm(h.data(), d, on.data());
      res[t] = matvec(out, d, h);
      EXPECT_EQ(res[t].size(), n_vocab);
      if (softcap_ > 0)
        for (double& v : res[t]) v = softcap_ * std::tanh(v / softcap_);
    }
    return res;
  }

 private:
  std::vector<uint32_t> per_layer(const std::string& key) const {
    const gguf::Value* v = f_.find(a_ + key);
    if (v->is_array()) return v->get_array<uint32_t>();
    return std::vector<uint32_t>(n_layer_, v->get<uint32_t>());
  }
  std::vector<float> tensor(const std::string& name) const {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    if (t == nullptr) return {};
    int64_t n = 1;
    for (uint32_t i = 0; i < t->n_dims; ++i) n *= t->ne[i];
    std::vector<float> out(static_cast<size_t>(n));
    quant::traits(t->type).to_float(f_.tensor_data(*t).data(), out.data(), n);
    return out;
  }
  // y = W x for W of rows of x.size() values.
  static Vec matvec(const std::vector<float>& w, size_t n_in, const Vec& x) {
    Vec y(w.size() / n_in);
    for (size_t o = 0; o < y.size(); ++o) {
      double s = 0;
      for (size_t i = 0; i < n_in; ++i) s += static_cast<double>(w[o * n_in + i]) * x[i];
      y[o] = s;
    }
    return y;
  }
  void rms_norm(double* x, size_t n, const float* w) const {
    double ss = 0;
    for (size_t i = 0; i < n; ++i) ss += x[i] * x[i];
    const double s = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps_);
    for (size_t i = 0; i < n; ++i) x[i] *= s * (w ? w[i] : 1.0);
  }
  double round(double x) const { return f16_ ? quant::round_to_fp16(static_cast<float>(x)) : x; }
  double gelu(double x) const {
    if (f16_ && x <= -10) return 0;
    if (f16_ && x >= 10) return x;
    x = round(x);
    return round(0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))));
  }
  // GeGLU of rows [row0, row0 + f) (gate) and [row0 + f_up, ...) (up) of a gate/up matrix pair.
  Vec geglu(const std::vector<float>& gate, const std::vector<float>& up, size_t f, size_t d, size_t gate_row,
           size_t up_row, const std::vector<float>& down, size_t down_row, const Vec& h) const {
    Vec a(f);
    for (size_t j = 0; j < f; ++j) {
      double g = 0, u = 0;
      for (size_t i = 0; i < d; ++i) {
        g += static_cast<double>(gate[(gate_row + j) * d + i]) * h[i];
        u += static_cast<double>(up[(up_row + j) * d + i]) * h[i];
      }
      a[j] = gelu(g) * u;
    }
    Vec y(d);
    for (size_t o = 0; o < d; ++o) {
      double s = 0;
      for (size_t j = 0; j < f; ++j) s += static_cast<double>(down[(down_row + o) * f + j]) * a[j];
      y[o] = s;
    }
    return y;
  }
  void feed_forward(uint32_t il, std::vector<Vec>& x, const std::vector<Vec>& ple) const {
    const std::string p = "blk." + std::to_string(il) + ".";
    const size_t d = d_;
    const std::vector<float> fn = tensor(p + "ffn_norm.weight"), gate = tensor(p + "ffn_gate.weight"),
                             up = tensor(p + "ffn_up.weight"), down = tensor(p + "ffn_down.weight"),
                             pfn = tensor(p + "post_ffw_norm.weight"), router = tensor(p + "ffn_gate_inp.weight"),
                             out_scale = tensor(p + "layer_output_scale.weight");
    const size_t f = gate.size() / d;
    for (size_t t = 0; t < x.size(); ++t) {
      Vec h = x[t];
      rms_norm(h.data(), d, fn.data());
      Vec y = geglu(gate, up, f, d, 0, 0, down, 0, h);
      if (!router.empty()) {
        // §11 MoE layer: post-normed dense branch + routed GeGLU experts on their own norm.
        const std::vector<float> rs = tensor(p + "ffn_gate_inp.scale"), pre2 = tensor(p + "pre_ffw_norm_2.weight"),
                                 post1 = tensor(p + "post_ffw_norm_1.weight"), post2 = tensor(p + "post_ffw_norm_2.weight"),
                                 gu = tensor(p + "ffn_gate_up_exps.weight"), dn = tensor(p + "ffn_down_exps.weight"),
                                 ds = tensor(p + "ffn_down_exps.scale");
        rms_norm(y.data(), d, post1.data());
        Vec r = x[t];
        rms_norm(r.data(), d, nullptr);
        for (size_t i = 0; i < d; ++i) r[i] = r[i] / std::sqrt(static_cast<double>(d)) * rs[i];
        Vec l = matvec(router, d, r);
        const double mx = *std::max_element(l.begin(), l.end());
        for (double& v : l) v = std::exp(v - mx);
        std::vector<size_t> ids(l.size());
        std::iota(ids.begin(), ids.end(), 0);
        std::stable_sort(ids.begin(), ids.end(), [&](size_t a, size_t b) { return l[a] > l[b]; });
        ids.resize(n_used_);
        double wsum = 0;
        for (size_t e : ids) wsum += l[e];
        Vec h2 = x[t];
        rms_norm(h2.data(), d, pre2.data());
        const size_t fe = dn.size() / d / l.size();
        Vec m(d, 0.0);
        for (size_t e : ids) {
          const Vec ye = geglu(gu, gu, fe, d, e * 2 * fe, e * 2 * fe + fe, dn, e * d, h2);
          for (size_t i = 0; i < d; ++i) m[i] += l[e] / wsum * ds[e] * ye[i];
        }
        rms_norm(m.data(), d, post2.data());
        for (size_t i = 0; i < d; ++i) y[i] += m[i];
      }
      rms_norm(y.data(), d, pfn.data());
      for (size_t i = 0; i < d; ++i) x[t][i] += y[i];
      if (d_pl_ > 0) {
        const std::vector<float> ig = tensor(p + "inp_gate.weight"), pr = tensor(p + "proj.weight"),
                                 pn = tensor(p + "post_norm.weight");
        Vec g = matvec(ig, d, x[t]);
        for (size_t i = 0; i < d_pl_; ++i) g[i] = gelu(g[i]) * ple[t][il * d_pl_ + i];
        Vec y2 = matvec(pr, d_pl_, g);
        rms_norm(y2.data(), d, pn.data());
        for (size_t i = 0; i < d; ++i) x[t][i] += y2[i];
      }
      if (!out_scale.empty())
        for (double& v : x[t]) v *= out_scale[0];
    }
  }

  gguf::File f_;
  bool f16_;
  std::string arch_, a_;
  bool g4_ = false;
  uint32_t d_ = 0, n_layer_ = 0, hd_global_ = 0, hd_swa_ = 0, rot_global_ = 0, rot_swa_ = 0, window_ = 0;
  uint32_t n_shared_ = 0, d_pl_ = 0, n_used_ = 0;
  double eps_ = 0, base_global_ = 0, base_swa_ = 0, scale_global_ = 1, softcap_ = 0;
  std::vector<uint32_t> n_head_, n_head_kv_;
  std::vector<bool> swa_;
};

class GemmaReference : public testing::TestWithParam<std::string> {};

TEST_P(GemmaReference, SynthesizedModelMatchesTheSpecForwardPass) {
  const SynthShape& shape = find_synth_shape(GetParam());
  const std::string path =
      (std::filesystem::temp_directory_path() / ("hearth-gemma-test-" + shape.name + ".gguf")).string();
  SynthOptions opt;
  opt.type = quant::GgmlType::F32;  // the engine's products are then exact up to float rounding
  opt.seed = 7;
  synthesize(shape, opt, path);
  const auto model = Model::load(path);
  // 19 tokens: each sliding window (4) is crossed several times.
  std::vector<int32_t> tokens;
  for (int i = 0; i < 19; ++i) tokens.push_back((i * 97 + 5) % static_cast<int>(shape.n_vocab));
  runtime::ContextParams cp;
  cp.n_ctx = 32;
  cp.n_ubatch = 5;  // several micro-batches: the windows and shared caches span them
  runtime::Context ctx(model, cp);
  const std::vector<float> got = runtime::evaluate(ctx, tokens, false);
  const size_t n_vocab = shape.n_vocab;
  // max |engine - reference| over all logits, and the reference's logit std.
  auto compare = [&](const std::vector<Vec>& want, double& std) {
    double sum = 0, sq = 0, max_diff = 0;
    for (size_t t = 0; t < tokens.size(); ++t)
      for (size_t i = 0; i < n_vocab; ++i) {
        const double w = want[t][i];
        sum += w;
        sq += w * w;
        max_diff = std::max(max_diff, std::abs(w - got[t * n_vocab + i]));
      }
    const double count = static_cast<double>(tokens.size() * n_vocab), mean = sum / count;
    std = std::sqrt(sq / count - mean * mean);
    return max_diff;
  };
  double std = 0, std16 = 0;
  const double diff = compare(Reference(path, false).logits(tokens), std);
  const double diff16 = compare(Reference(path, true).logits(tokens), std16);
  std::printf("[ stats    ] %-16s logit std %.3f, max |engine - spec| %.5f std, with F16 rounding %.6f std\n",
              shape.name.c_str(), std, diff / std, diff16 / std16);
  EXPECT_GT(std, 0.5);
  // The engine keeps K, V, Q·K and the probabilities in F16 and GELU through an F16 table
  // (llama.cpp's CPU numerics): measured 0.003-0.013 std from the exact spec. With those
  // roundings in the reference it is the engine up to float rounding and the F16 values that
  // then round the other way, which Gemma 4's unscaled, peaked attention amplifies: measured
  // 0.0009 (tiny-gemma3), 0.0031 (tiny-gemma4e; position 0, where attention is trivial, 0.0001)
  // and 0.0006 std (tiny-gemma4moe). A wrong window, KV source or scale moves logits by ~0.1-1 std.
  EXPECT_LT(diff, 0.03 * std);
  EXPECT_LT(diff16, 0.005 * std16);
}

INSTANTIATE_TEST_SUITE_P(Synthesized, GemmaReference, testing::Values("tiny-gemma3", "tiny-gemma4e", "tiny-gemma4moe"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace hearth::model
