// Architectures `gemma3` (Gemma 3 1B / 4B / 12B / 27B, architectures.md §10) and `gemma4`
// (Gemma 4 E2B / E4B / 26B-A4B / 31B, §11), as llama.cpp runs them:
//   x = token_embd[tok] · √d
//   per layer (sliding-window or global, with its own RoPE base/scale, head size and KV heads):
//     h = RMSNorm(x; attn_norm);  Q = RoPE(RMSNorm(W_q h; attn_q_norm)) per head
//     K = RoPE(RMSNorm(W_k h; attn_k_norm));  V = W_v h (gemma4: W_k h when attn_v is absent,
//         then a weightless RMS norm per head);  gemma4 layers past the KV layers reuse an
//         earlier layer's cache instead
//     gemma3: Q ·= 1/√hd (1/√(d/H) on the 27B);  attention scale 1
//     x += RMSNorm(W_o Attn; post_attention_norm)
//     f = GeGLU(RMSNorm(x; ffn_norm))      (gemma4 MoE layers: that dense branch post-normed by
//         post_ffw_norm_1, plus RMSNorm(Σ_e w_e·s_e·GeGLU_e(RMSNorm(x; pre_ffw_norm_2));
//         post_ffw_norm_2), routed on RMS(x)/√d ⊙ ffn_gate_inp.scale)
//     x += RMSNorm(f; post_ffw_norm)
//     gemma4: per-layer embedding input (E2B/E4B), then x ·= layer_output_scale
//   logits = W_out RMSNorm(x; output_norm), soft-capped (gemma4: 30 unless the file says other)
// Norm weights are used as stored (the converter already folded Gemma 3's 1 + w).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "model/arch.h"
#include "model/compute.h"
#include "model/kv_layout.h"

namespace hearth::model {
namespace {

// Scratch slots beyond the shared ones (compute.h).
constexpr int kSlotH2 = kSlotMoeOut + 1;  // MoE input RMSNorm(x; pre_ffw_norm_2)
constexpr int kSlotRouterIn = kSlotMoeOut + 2;
constexpr int kSlotOut2 = kSlotMoeOut + 3;  // MoE branch output
constexpr int kSlotPle = kSlotMoeOut + 4;   // per-layer inputs [n][n_layer][d_pl]
constexpr int kSlotPleRow = kSlotMoeOut + 5;

struct GemmaLayer {
  bool swa = false;
  int n_head = 0, n_head_kv = 0, head_dim = 0;
  kernels::RopeConfig rope;
  int kv_src = -1;  // -1: own KV cache; else the layer whose cache it reads (gemma4 KV sharing)
  const float *attn_norm = nullptr, *q_norm = nullptr, *k_norm = nullptr, *post_attn_norm = nullptr;
  kernels::MatrixView wq, wk, wv, wo;
  bool has_v = true;
  const float *ffn_norm = nullptr, *post_ffw_norm = nullptr;
  kernels::MatrixView gate, up, down;
  bool moe = false;
  MoeFfn experts;
  const float *router_scale = nullptr, *pre_ffw_norm_2 = nullptr, *post_ffw_norm_1 = nullptr,
              *post_ffw_norm_2 = nullptr;
  kernels::MatrixView ple_gate, ple_proj;  // per-layer embedding input (gemma4, d_pl > 0)
  const float* ple_post_norm = nullptr;
  const float* out_scale = nullptr;  // layer_output_scale {1} (gemma4, optional)
};

// The attention layout of a Gemma model from its metadata (architectures.md §10, §11): which
// layers use the sliding window, the window, the sliding layers' head size (gemma4) and how many
// layers have their own KV cache (gemma4's attention.shared_kv_layers). Throws Error naming a
// missing or out-of-range key.
struct GemmaLayout {
  std::vector<bool> swa;      // per layer: sliding window (else global)
  uint32_t n_swa = 0;         // window W (0: no sliding-window layers)
  uint32_t hd_swa = 0;        // head size of the sliding layers
  uint32_t n_kv_layers = 0;   // layers 0 .. n_kv_layers-1 keep their own K/V
};

GemmaLayout read_gemma_layout(const HParams& hp, const gguf::File& f) {
  const bool gemma4 = hp.arch == "gemma4";
  const std::string a = hp.arch + ".";
  const std::string& path = f.path();
  const uint32_t n_layer = hp.n_layer;
  GemmaLayout out;
  std::vector<bool>& swa = out.swa;
  // Which layers use the sliding window, and the window.
  swa.assign(n_layer, false);
  const gguf::Value* pattern = f.find(a + "attention.sliding_window_pattern");
  if (gemma4) {
    out.n_swa = f.require<uint32_t>(a + "attention.sliding_window");
    if (pattern == nullptr) throw Error(path + ": metadata key '" + a + "attention.sliding_window_pattern' is missing");
  } else {
    out.n_swa = f.get<uint32_t>(a + "attention.sliding_window").value_or(0);
  }
  if (out.n_swa > 0) {
    if (pattern != nullptr && pattern->is_array()) {
      // One flag per layer (Gemma 4 writes bool[n_layer]: true = sliding).
      if (pattern->count() < n_layer)
        throw Error(path + ": metadata key '" + a + "attention.sliding_window_pattern' has " +
                    std::to_string(pattern->count()) + " entries for " + std::to_string(n_layer) + " layers");
      for (uint32_t il = 0; il < n_layer; ++il)
        swa[il] = pattern->elem_type() == gguf::ValueType::BOOL ? pattern->at<bool>(il)
                                                                 : pattern->at<uint32_t>(il) != 0;
    } else {
      // A period P (Gemma 3 default 6): layer il is global iff il % P == P - 1 (P = 0: all sliding),
      // llama.cpp's set_swa_pattern.
      const uint32_t period = pattern != nullptr ? pattern->get<uint32_t>() : 6;
      for (uint32_t il = 0; il < n_layer; ++il) swa[il] = period == 0 || il % period < period - 1;
    }
  }

  out.hd_swa = hp.head_dim_k;
  out.n_kv_layers = n_layer;
  if (gemma4) {
    out.hd_swa = f.require<uint32_t>(a + "attention.key_length_swa");
    if (out.hd_swa == 0 || f.require<uint32_t>(a + "attention.value_length_swa") != out.hd_swa)
      throw Error(path + ": gemma4 needs equal, non-zero " + a + "attention.key_length_swa and value_length_swa");
    const uint32_t n_shared = f.get<uint32_t>(a + "attention.shared_kv_layers").value_or(0);
    if (n_shared >= n_layer)
      throw Error(path + ": " + a + "attention.shared_kv_layers = " + std::to_string(n_shared) +
                  " leaves no layer with its own KV cache (" + std::to_string(n_layer) + " layers)");
    out.n_kv_layers = n_layer - n_shared;
  }
  return out;
}

// The KV layout of `lay`: own K/V of n_head_kv · head size values on the first n_kv_layers
// layers, none on gemma4's sharing layers; the sliding window on the sliding layers.
std::vector<KvLayerSpec> gemma_specs(const HParams& hp, const GemmaLayout& lay) {
  std::vector<KvLayerSpec> out;
  for (uint32_t il = 0; il < hp.n_layer; ++il) {
    KvLayerSpec s;
    const uint32_t hd = lay.swa[il] ? lay.hd_swa : hp.head_dim_k;
    if (il < lay.n_kv_layers) s.n_embd_k = s.n_embd_v = hp.n_head_kv[il] * hd;
    if (lay.swa[il]) s.window = {AttnWindow::Kind::kSliding, static_cast<int32_t>(lay.n_swa)};
    out.push_back(s);
  }
  return out;
}

class Gemma final : public Architecture {
 public:
  Gemma(const HParams& hp, Weights& w, bool gemma4);

  std::vector<KvLayerSpec> kv_layers() const override;
  void forward(const UBatch& b, ForwardState& st, float* logits) const override;

 private:
  void per_layer_inputs(Compute& c, const float* x, float* ple) const;

  HParams hp_;
  bool gemma4_;
  uint32_t n_swa_ = 0;        // sliding window W (0: no sliding-window layers)
  float q_scale_ = 1.0f;      // gemma3: multiplier on Q before attention
  float softcap_ = 0.0f;      // final logit soft-capping (0: off)
  uint32_t d_pl_ = 0;         // gemma4 per-layer-embedding width (0: none)
  kernels::MatrixView tok_embd_, output_;
  const float* output_norm_ = nullptr;
  kernels::MatrixView ple_embd_, ple_model_proj_;
  const float* ple_proj_norm_ = nullptr;
  std::vector<GemmaLayer> layers_;
  std::vector<KvLayerSpec> kv_;  // gemma_specs of the file's layout
};

// The RoPE of one layer kind: NEOX pairing, `n_rot` dims, base and linear scale of that kind.
kernels::RopeConfig layer_rope(const HParams& hp, uint32_t n_rot, float base, float scale, const float* freqs) {
  HParams h = hp;
  h.n_rot = n_rot;
  h.rope_freq_base = base;
  h.rope_freq_scale = scale;
  return make_rope_config(h, kernels::RopeMode::kNeox, freqs);
}

Gemma::Gemma(const HParams& hp, Weights& w, bool gemma4) : hp_(hp), gemma4_(gemma4) {
  const gguf::File& f = w.file();
  const std::string a = hp.arch + ".";
  const std::string& path = f.path();
  const uint32_t n_layer = hp.n_layer;
  const int64_t d = hp.n_embd;
  for (uint32_t il = 0; il < n_layer; ++il) {
    if (hp.n_head[il] == 0)
      throw Error(path + ": layer " + std::to_string(il) + " has no attention heads (" + a + "attention.head_count)");
    if (hp.n_ff[il] == 0)
      throw Error(path + ": layer " + std::to_string(il) + " has no feed-forward width (" + a + "feed_forward_length)");
  }
  if (hp.head_dim_k == 0 || hp.head_dim_k != hp.head_dim_v)
    throw Error(path + ": " + hp.arch + " needs equal, non-zero " + a + "attention.key_length and value_length (" +
                std::to_string(hp.head_dim_k) + ", " + std::to_string(hp.head_dim_v) + ")");

  const GemmaLayout lay = read_gemma_layout(hp, f);
  const std::vector<bool>& swa = lay.swa;
  const uint32_t hd_swa = lay.hd_swa, n_kv_layers = lay.n_kv_layers;
  n_swa_ = lay.n_swa;
  kv_ = gemma_specs(hp, lay);
  uint32_t n_rot_swa = hp.n_rot;
  const float base_swa = f.get<float>(a + "rope.freq_base_swa").value_or(10000.0f);
  if (gemma4) {
    n_rot_swa = f.get<uint32_t>(a + "rope.dimension_count_swa").value_or(hp.n_rot);
    if (n_rot_swa % 2 != 0 || n_rot_swa > hd_swa)
      throw Error(path + ": " + a + "rope.dimension_count_swa = " + std::to_string(n_rot_swa) +
                  " must be even and at most the sliding head dimension " + std::to_string(hd_swa));
    d_pl_ = f.require<uint32_t>(a + "embedding_length_per_layer_input");
    softcap_ = f.get<float>(a + "final_logit_softcapping").value_or(30.0f);
  } else {
    softcap_ = f.get<float>(a + "final_logit_softcapping").value_or(0.0f);
    // llama.cpp: 1/√(d/H) for the 27B (62 layers; HF query_pre_attn_scalar 168), else 1/√hd.
    q_scale_ = n_layer == 62 ? 1.0f / std::sqrt(static_cast<float>(hp.n_embd / hp.n_head[0]))
                             : 1.0f / std::sqrt(static_cast<float>(hp.head_dim_k));
  }
  // Sliding layers never scale their positions; global layers use the file's scaling.
  const float* freqs = nullptr;
  if (gemma4 && std::find(swa.begin(), swa.end(), false) != swa.end())
    freqs = w.vector("rope_freqs.weight", hp.head_dim_k / 2);  // proportional RoPE of the global layers
  const kernels::RopeConfig rope_global = layer_rope(hp, hp.n_rot, hp.rope_freq_base, hp.rope_freq_scale, freqs);
  const kernels::RopeConfig rope_swa = layer_rope(hp, n_rot_swa, base_swa, 1.0f, nullptr);

  output_norm_ = w.vector("output_norm.weight", d);
  if (auto out = w.matrix_opt("output.weight", d, hp.n_vocab)) {
    output_ = *out;
  } else {
    output_ = w.matrix("token_embd.weight", d, hp.n_vocab);  // tied embeddings
  }
  // After the output matrix: a tied table it repacked is viewed in its new layout.
  tok_embd_ = w.embedding("token_embd.weight", d, hp.n_vocab);
  if (d_pl_ > 0) {
    const int64_t width = int64_t{d_pl_} * n_layer;
    ple_embd_ = w.embedding("per_layer_token_embd.weight", width, hp.n_vocab);
    ple_model_proj_ = w.matrix("per_layer_model_proj.weight", d, width);
    ple_proj_norm_ = w.vector("per_layer_proj_norm.weight", d_pl_);
  }

  for (uint32_t il = 0; il < n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    GemmaLayer L;
    L.swa = swa[il];
    L.n_head = static_cast<int>(hp.n_head[il]);
    L.n_head_kv = static_cast<int>(hp.n_head_kv[il]);
    L.head_dim = static_cast<int>(L.swa ? hd_swa : hp.head_dim_k);
    L.rope = L.swa ? rope_swa : rope_global;
    const int64_t hd = L.head_dim, q = int64_t{L.n_head} * hd, kv = int64_t{L.n_head_kv} * hd, ff = hp.n_ff[il];
    if (il >= n_kv_layers) {
      // llama.cpp: the last own-cache layer of the same kind (sliding: L_kv - 2, global: L_kv - 1).
      const int src = static_cast<int>(n_kv_layers) - (L.swa ? 2 : 1);
      if (src < 0 || layers_[static_cast<size_t>(src)].swa != L.swa ||
          layers_[static_cast<size_t>(src)].head_dim != L.head_dim ||
          layers_[static_cast<size_t>(src)].n_head_kv != L.n_head_kv)
        throw Error(path + ": layer " + std::to_string(il) + " shares the KV cache of layer " + std::to_string(src) +
                    ", which has another attention kind or shape (" + a + "attention.shared_kv_layers)");
      L.kv_src = src;
    }
    L.attn_norm = w.vector(p + "attn_norm.weight", d);
    L.wq = w.matrix(p + "attn_q.weight", d, q);
    L.q_norm = w.vector(p + "attn_q_norm.weight", hd);
    if (L.kv_src < 0) {
      L.wk = w.matrix(p + "attn_k.weight", d, kv);
      L.k_norm = w.vector(p + "attn_k_norm.weight", hd);
      if (gemma4) {
        auto v = w.matrix_opt(p + "attn_v.weight", d, kv);  // absent: V is the K projection
        L.has_v = v.has_value();
        if (v) L.wv = *v;
      } else {
        L.wv = w.matrix(p + "attn_v.weight", d, kv);
      }
    }
    L.wo = w.matrix(p + "attn_output.weight", q, d);
    L.post_attn_norm = w.vector(p + "post_attention_norm.weight", d);
    L.ffn_norm = w.vector(p + "ffn_norm.weight", d);
    L.gate = w.matrix(p + "ffn_gate.weight", d, ff);
    L.up = w.matrix(p + "ffn_up.weight", d, ff);
    L.down = w.matrix(p + "ffn_down.weight", ff, d);
    L.post_ffw_norm = w.vector(p + "post_ffw_norm.weight", d);
    if (gemma4) {
      L.out_scale = w.vector_opt(p + "layer_output_scale.weight", 1);
      if (f.find_tensor(p + "ffn_gate_inp.weight") != nullptr) {
        if (hp.n_expert == 0 || hp.n_expert_used == 0)
          throw Error(path + ": layer " + std::to_string(il) + " has a router but the file has no " + a +
                      "expert_count / expert_used_count");
        if (hp.n_ff_exp == 0)
          throw Error(path + ": the expert feed-forward width is 0 (" + a + "expert_feed_forward_length)");
        const int64_t ne = hp.n_expert, fe = hp.n_ff_exp;
        L.moe = true;
        MoeFfn& m = L.experts;
        m.router = w.matrix(p + "ffn_gate_inp.weight", d, ne);
        L.router_scale = w.vector(p + "ffn_gate_inp.scale", d);
        L.pre_ffw_norm_2 = w.vector(p + "pre_ffw_norm_2.weight", d);
        L.post_ffw_norm_1 = w.vector(p + "post_ffw_norm_1.weight", d);
        L.post_ffw_norm_2 = w.vector(p + "post_ffw_norm_2.weight", d);
        if (f.find_tensor(p + "ffn_gate_up_exps.weight") != nullptr) {
          m.gate_up = w.expert_stack(p + "ffn_gate_up_exps.weight", d, 2 * fe, ne);
        } else {
          m.gate = w.expert_stack(p + "ffn_gate_exps.weight", d, fe, ne);
          m.up = w.expert_stack(p + "ffn_up_exps.weight", d, fe, ne);
        }
        m.down = w.expert_stack(p + "ffn_down_exps.weight", fe, d, ne);
        m.down_scale = w.vector_opt(p + "ffn_down_exps.scale", ne);
        m.n_expert = static_cast<int>(ne);
        m.n_used = static_cast<int>(hp.n_expert_used);
        m.n_ff = fe;
        m.renormalize = true;
        m.gelu = true;
      }
      if (d_pl_ > 0) {
        L.ple_gate = w.matrix(p + "inp_gate.weight", d, d_pl_);
        L.ple_proj = w.matrix(p + "proj.weight", d_pl_, d);
        L.ple_post_norm = w.vector(p + "post_norm.weight", d);
      }
    }
    layers_.push_back(L);
  }
}

std::vector<KvLayerSpec> Gemma::kv_layers() const { return kv_; }

// PLE[t][il] = (RMSNorm(W_plproj x0 / √d; per_layer_proj_norm) + per_layer_token_embd[tok] · √d_pl) / √2
// (architectures.md §11 "Per-layer embeddings"), ple is [n][n_layer·d_pl].
void Gemma::per_layer_inputs(Compute& c, const float* x, float* ple) const {
  const int64_t width = ple_model_proj_.n_out, dpl = d_pl_;
  c.matmul(ple_model_proj_, x, ple);
  kernels::scale(ple, c.n() * width, 1.0f / std::sqrt(static_cast<float>(hp_.n_embd)));
  c.rms_norm(ple, ple_proj_norm_, dpl, hp_.rms_eps, ple, c.n() * hp_.n_layer);
  float* row = c.buffer(kSlotPleRow, width);
  const float emb_scale = std::sqrt(static_cast<float>(dpl)), mix = 1.0f / std::sqrt(2.0f);
  for (int64_t t = 0; t < c.n(); ++t) {
    kernels::get_row(ple_embd_, c.batch().tokens[t], row + t * width);
    kernels::scale(row + t * width, width, emb_scale);
  }
  kernels::add_inplace(ple, row, c.n() * width);
  kernels::scale(ple, c.n() * width, mix);
}

void Gemma::forward(const UBatch& b, ForwardState& st, float* logits) const {
  Compute c(b, st);
  const int64_t d = hp_.n_embd;
  const float eps = hp_.rms_eps;
  float* x = c.buffer(kSlotX, d);
  float* h = c.buffer(kSlotH, d);
  c.embed(tok_embd_, x);
  kernels::scale(x, c.n() * d, std::sqrt(static_cast<float>(d)));
  float* ple = nullptr;
  if (d_pl_ > 0) {
    ple = c.buffer(kSlotPle, int64_t{d_pl_} * hp_.n_layer);
    per_layer_inputs(c, x, ple);
  }
  for (uint32_t il = 0; il < hp_.n_layer; ++il) {
    const GemmaLayer& L = layers_[il];
    const int hd = L.head_dim;
    const kernels::AttnShape shape{L.n_head, L.n_head_kv, hd, hd, 1.0f};
    float* q = c.buffer(kSlotQ, L.wq.n_out);
    float* attn = c.buffer(kSlotAttn, L.wo.n_in);
    float* out = c.buffer(kSlotOut, d);
    c.rms_norm(x, L.attn_norm, d, eps, h, c.n());
    c.matmul(L.wq, h, q);
    c.rms_norm_heads(q, L.n_head, hd, L.q_norm, eps);
    c.rope(q, L.n_head, hd, L.rope);
    if (!gemma4_) kernels::scale(q, c.n() * L.wq.n_out, q_scale_);
    if (L.kv_src < 0) {
      const int64_t kv = int64_t{L.n_head_kv} * hd;
      float* k = c.buffer(kSlotK, kv);
      float* v = c.buffer(kSlotV, kv);
      c.matmul(L.wk, h, k);
      if (L.has_v) {
        c.matmul(L.wv, h, v);
      } else {
        std::copy(k, k + c.n() * kv, v);  // K = V: the raw K projection
      }
      c.rms_norm_heads(k, L.n_head_kv, hd, L.k_norm, eps);
      if (gemma4_) c.rms_norm_heads(v, L.n_head_kv, hd, nullptr, eps);
      c.rope(k, L.n_head_kv, hd, L.rope);
      c.attention(static_cast<int>(il), q, k, v, shape, attn);
    } else {
      c.attention_shared(L.kv_src, q, shape, attn);
    }
    c.matmul(L.wo, attn, out);
    c.rms_norm(out, L.post_attn_norm, d, eps, out, c.n());
    c.add(x, out, d);

    c.rms_norm(x, L.ffn_norm, d, eps, h, c.n());
    c.geglu_ffn(h, L.gate, L.up, L.down, out, kSlotGate, kSlotUp);
    if (L.moe) {
      c.rms_norm(out, L.post_ffw_norm_1, d, eps, out, c.n());
      float* h2 = c.buffer(kSlotH2, d);
      float* r = c.buffer(kSlotRouterIn, d);
      float* out2 = c.buffer(kSlotOut2, d);
      c.rms_norm(x, L.pre_ffw_norm_2, d, eps, h2, c.n());
      // Router input: RMS(x) / √d ⊙ ffn_gate_inp.scale, in ggml's order of operations.
      c.rms_norm(x, nullptr, d, eps, r, c.n());
      kernels::scale(r, c.n() * d, 1.0f / std::sqrt(static_cast<float>(d)));
      for (int64_t t = 0; t < c.n(); ++t) kernels::mul_inplace(r + t * d, L.router_scale, d);
      c.moe_ffn(h2, L.experts, out2, r);
      c.rms_norm(out2, L.post_ffw_norm_2, d, eps, out2, c.n());
      c.add(out, out2, d);
    }
    c.rms_norm(out, L.post_ffw_norm, d, eps, out, c.n());
    c.add(x, out, d);

    if (ple != nullptr) {
      const int64_t dpl = d_pl_;
      float* g = c.buffer(kSlotGate, dpl);
      c.matmul(L.ple_gate, x, g);
      kernels::gelu(g, g, c.n() * dpl);
      for (int64_t t = 0; t < c.n(); ++t)
        kernels::mul_inplace(g + t * dpl, ple + (t * hp_.n_layer + il) * dpl, dpl);
      c.matmul(L.ple_proj, g, out);
      c.rms_norm(out, L.ple_post_norm, d, eps, out, c.n());
      c.add(x, out, d);
    }
    if (L.out_scale != nullptr) kernels::scale(x, c.n() * d, L.out_scale[0]);
  }
  c.output_head(x, output_norm_, eps, output_, logits);
  if (softcap_ != 0.0f && logits != nullptr) kernels::softcap(logits, b.n_outputs * output_.n_out, softcap_);
}

}  // namespace

std::vector<KvLayerSpec> kv_layers_gemma(const HParams& hp, const gguf::File& f) {
  return gemma_specs(hp, read_gemma_layout(hp, f));
}

std::unique_ptr<Architecture> make_gemma3(const HParams& hp, Weights& w) {
  return std::make_unique<Gemma>(hp, w, /*gemma4=*/false);
}

std::unique_ptr<Architecture> make_gemma4(const HParams& hp, Weights& w) {
  return std::make_unique<Gemma>(hp, w, /*gemma4=*/true);
}

}  // namespace hearth::model
