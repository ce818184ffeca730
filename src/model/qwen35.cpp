// Architectures `qwen35` (Qwen3.5 / 3.6 dense), `qwen35moe` (Qwen3.5 / 3.6 MoE) and `qwen3next`
// (Qwen3-Next-80B-A3B): architectures.md §7 (Gated DeltaNet), §8 (qwen3next), §9 (qwen35 keys,
// RoPE, tensors, forward). Per layer i < n_layer (block_count − nextn_predict_layers; the MTP
// blocks blk.{n_layer…} are drafting heads and never run here):
//   h = RMSNorm(x; attn_norm)
//   linear layer ((i+1) % full_attention_interval ≠ 0, or attention.recurrent_layers[i]):
//     a = W_out · (RMSNorm(o; ssm_norm) ⊙ silu(z)),  o = gated delta rule (§7.3, kernels/delta_net.h)
//         over silu(conv1d(W_qkv h)) with L2-normed q/k, β = σ(W_beta h),
//         g = ssm_a · softplus(W_alpha h + dt_bias), v-heads in tiled order (κ(j) = j mod H_k)
//   full-attention layer:
//     [Q_h | Gt_h] = per-head halves of W_q h;  Q, K RMS-normed per head (attn_q_norm, attn_k_norm);
//     RoPE on the first rope.dimension_count dims (IMROPE, §9.2: NEOX pairs; pair i takes the
//     position of section s = i mod 3 (t, h, w) while i < 3·sections[s], else the 4th position;
//     a text token has t = h = w = p and 0 there, so such pairs stay unrotated — with the real
//     sections [11, 11, 10, 0] and 32 pairs every pair rotates with p: plain NEOX);
//     a = W_o · (Attn(Q, K, V; 1/sqrt(hd)) ⊙ σ(Gt))
//   x += a;  h2 = RMSNorm(x; post_attention_norm)   (the pre-FFN norm)
//   x += SwiGLU(h2)   (qwen35)
//   x += MoE(h2) [softmax, top-k, renormalised] + σ(⟨ffn_gate_inp_shexp, h2⟩) · SwiGLU_shexp(h2)
//        (qwen35moe, qwen3next)
// logits = W_out RMSNorm(x; output_norm), W_out = token_embd when output.weight is absent.
// qwen3next differs in its linear layers only (§7.2, §8): v-heads in grouped order
// (κ(j) = j / (H_v/H_k)), β and α from one ssm_ba {d, 2·H_v} whose rows are, per k-group g,
// [β (r values), α (r values)], and legacy files project with one ssm_in {d, 2·C_qk + 2·C_v}
// whose rows are, per k-group, [q_g (d_k), k_g (d_k), v_g (r·d_v), z_g (r·d_v)].
// The recurrent layers keep their state per sequence in the runtime (KvLayer::conv / ssm).
#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "kernels/delta_net.h"
#include "model/arch.h"
#include "model/compute.h"
#include "model/kv_layout.h"

namespace hearth::model {
namespace {

// Scratch slots of this file, after compute.h's.
enum : int {
  kSlotQFull = kSlotMoeOut + 1,  // W_q h of the gated attention: [n][2·H·hd]
  kSlotAttnGate,                 // its gate halves: [n][H·hd]
  kSlotQkv,                      // W_qkv h: [n][C_conv]
  kSlotConv,                     // silu(conv1d(...)): [n][C_conv]
  kSlotZ,                        // W_gate h: [n][C_v]
  kSlotBeta,                     // β: [n][H_v]
  kSlotDecay,                    // g: [n][H_v]
  kSlotDelta,                    // delta-rule output o: [n][C_v]
  kSlotShared,                   // shared expert output: [n][d]
  kSlotSharedGate,               // shared expert gate logit: [n][1]
  kSlotQkvz,                     // qwen3next legacy ssm_in h: [n][2·C_qk + 2·C_v]
  kSlotBetaAlpha,                // qwen3next ssm_ba h: [n][2·H_v]
  kSlotSharedFfnGate,
  kSlotSharedFfnUp,
};

enum class Variant { kQwen35, kQwen35Moe, kQwen3Next };

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
// ggml's softplus: x above 20 passes through.
float softplus(float x) { return x > 20.0f ? x : std::log(1.0f + std::exp(x)); }

// Gated DeltaNet metadata (architectures.md §7.1).
struct SsmParams {
  int conv_kernel = 0;  // K
  int d_k = 0;          // ssm.state_size
  int n_k_heads = 0;    // ssm.group_count
  int n_v_heads = 0;    // ssm.time_step_rank
  int d_v = 0;          // ssm.inner_size / H_v
  int64_t c_qk() const { return int64_t{n_k_heads} * d_k; }
  int64_t c_v() const { return int64_t{n_v_heads} * d_v; }
  int64_t c_conv() const { return 2 * c_qk() + c_v(); }
};

// Gated DeltaNet dimensions from the metadata (architectures.md §7.1); throws Error naming a
// missing, out-of-range or inconsistent key.
SsmParams read_ssm_params(const HParams& hp, const gguf::File& f) {
  const std::string& path = f.path();
  const std::string a = hp.arch + ".";
  SsmParams ssm;
  auto require_positive = [&](const std::string& key) {
    const uint32_t v = f.require<uint32_t>(a + key);
    if (v == 0 || v > (1u << 20)) throw Error(path + ": " + a + key + " = " + std::to_string(v) + " is out of range");
    return static_cast<int>(v);
  };
  ssm.conv_kernel = require_positive("ssm.conv_kernel");
  ssm.d_k = require_positive("ssm.state_size");
  ssm.n_k_heads = require_positive("ssm.group_count");
  ssm.n_v_heads = require_positive("ssm.time_step_rank");
  const int inner = require_positive("ssm.inner_size");
  if (inner % ssm.n_v_heads != 0 || ssm.n_v_heads % ssm.n_k_heads != 0)
    throw Error(path + ": " + a + "ssm.inner_size (" + std::to_string(inner) + ") must be a multiple of " + a +
                "ssm.time_step_rank (" + std::to_string(ssm.n_v_heads) + "), itself a multiple of " + a +
                "ssm.group_count (" + std::to_string(ssm.n_k_heads) + ")");
  ssm.d_v = inner / ssm.n_v_heads;
  if (ssm.d_v != ssm.d_k)
    throw Error(path + ": the Gated DeltaNet value head dimension " + std::to_string(ssm.d_v) + " (" + a +
                "ssm.inner_size / " + a + "ssm.time_step_rank) differs from the key head dimension " +
                std::to_string(ssm.d_k) + " (" + a + "ssm.state_size)");
  return ssm;
}

// Which layers are Gated DeltaNet layers (§8 "Layer pattern").
std::vector<bool> read_recurrent_layers(const HParams& hp, const gguf::File& f) {
  const std::string& path = f.path();
  const std::string a = hp.arch + ".";
  std::vector<bool> recurrent(hp.n_layer);
  if (const gguf::Value* rl = f.find(a + "attention.recurrent_layers")) {
    if (!rl->is_array() || rl->count() < hp.n_layer)
      throw Error(path + ": " + a + "attention.recurrent_layers must be an array of " + std::to_string(hp.n_layer_all) +
                  " flags");
    for (uint32_t il = 0; il < hp.n_layer; ++il)
      recurrent[il] = rl->elem_type() == gguf::ValueType::BOOL ? rl->at<bool>(il) : rl->at<uint32_t>(il) != 0;
  } else {
    const uint32_t interval = f.get<uint32_t>(a + "full_attention_interval").value_or(4);
    if (interval == 0) throw Error(path + ": " + a + "full_attention_interval is 0");
    for (uint32_t il = 0; il < hp.n_layer; ++il) recurrent[il] = (il + 1) % interval != 0;
  }
  return recurrent;
}

// The KV layout of layers with these recurrent flags: conv state (K−1)·C_conv and recurrent
// state H_v·d_k·d_v floats per Gated DeltaNet layer (§7.4), K/V rows per attention layer.
std::vector<KvLayerSpec> qwen35_specs(const HParams& hp, const SsmParams& ssm, const std::vector<bool>& recurrent) {
  std::vector<KvLayerSpec> out;
  for (uint32_t il = 0; il < hp.n_layer; ++il) {
    KvLayerSpec s;
    if (recurrent[il]) {
      s.n_embd_r = static_cast<uint32_t>((ssm.conv_kernel - 1) * ssm.c_conv());
      s.n_embd_s = static_cast<uint32_t>(int64_t{ssm.n_v_heads} * ssm.d_k * ssm.d_v);
    } else {
      s.n_embd_k = hp.n_embd_k_gqa(il);
      s.n_embd_v = hp.n_embd_v_gqa(il);
    }
    out.push_back(s);
  }
  return out;
}

class Qwen35 final : public Architecture {
 public:
  Qwen35(const HParams& hp, Weights& w, Variant variant);

  std::vector<KvLayerSpec> kv_layers() const override;
  void forward(const UBatch& b, ForwardState& st, float* logits) const override;

 private:
  struct Layer {
    bool recurrent = false;
    const float* attn_norm = nullptr;
    const float* post_norm = nullptr;
    // gated full attention
    kernels::MatrixView wq, wk, wv, wo;
    const float *q_norm = nullptr, *k_norm = nullptr;
    // Gated DeltaNet
    kernels::MatrixView qkv, gate, beta, alpha, ssm_out;
    kernels::MatrixView ba;      // qwen3next: β and α in one matrix (grouped per k-head)
    kernels::MatrixView ssm_in;  // qwen3next legacy files: q, k, v and z in one matrix
    bool legacy_in = false;
    std::vector<float> conv_t;  // ssm_conv1d transposed to [K][C_conv]
    const float* dt_bias = nullptr;
    const float* ssm_a = nullptr;
    const float* ssm_norm = nullptr;
    // feed-forward
    kernels::MatrixView ffn_gate, ffn_up, ffn_down;  // dense (qwen35)
    MoeFfn moe;                                      // experts (qwen35moe)
    kernels::MatrixView sh_gate, sh_up, sh_down, sh_gate_inp;
  };

  void attention_layer(Compute& c, int il, const Layer& L, const float* h, float* out) const;
  void rope(Compute& c, float* x, int n_heads, int head_dim) const;
  void delta_net_layer(Compute& c, ForwardState& st, int il, const Layer& L, const float* h,
                       const std::vector<std::vector<int32_t>>& groups, const std::vector<int32_t>& slots,
                       float* out) const;

  HParams hp_;
  bool moe_ = false;
  bool next_ = false;  // qwen3next: grouped v-heads, ssm_ba, optional legacy ssm_in
  SsmParams ssm_;
  kernels::MatrixView tok_embd_, output_;
  const float* output_norm_ = nullptr;
  kernels::RopeConfig rope_;
  std::vector<int> rope_still_;  // IMROPE pairs on the 4th position: unrotated for text tokens
  std::vector<Layer> layers_;
};

Qwen35::Qwen35(const HParams& hp, Weights& w, Variant variant)
    : hp_(hp), moe_(variant != Variant::kQwen35), next_(variant == Variant::kQwen3Next) {
  const bool moe = moe_;
  const gguf::File& f = w.file();
  const std::string& path = f.path();
  const std::string a = hp.arch + ".";
  // Every name bound below; the file may hold nothing else but the MTP blocks.
  std::set<std::string> bound;
  auto mat = [&](const std::string& name, int64_t n_in, int64_t n_out) {
    bound.insert(name);
    return w.matrix(name, n_in, n_out);
  };
  auto vec = [&](const std::string& name, int64_t n) {
    bound.insert(name);
    return w.vector(name, n);
  };

  ssm_ = read_ssm_params(hp, f);
  // rope.dimension_sections: required for qwen35* (§9.1); they decide which RoPE pairs rotate
  // with a text token's position (IMROPE, see the top of this file). qwen3next: plain NEOX.
  std::vector<int32_t> sections;
  if (!next_) {
    const gguf::Value* v = f.find(a + "rope.dimension_sections");
    if (v == nullptr) throw Error(path + ": metadata key '" + a + "rope.dimension_sections' is missing");
    int64_t sum = 0;
    try {
      if (v->is_array()) sections = v->get_array<int32_t>();
    } catch (const Error&) {
      sections.clear();
    }
    for (int32_t x : sections) sum += x;
    if (sections.size() != 4 || sum <= 0 || sum > (1 << 20) || *std::min_element(sections.begin(), sections.end()) < 0)
      throw Error(path + ": " + a + "rope.dimension_sections must be an array of 4 non-negative integers, not all 0");
  }

  const std::vector<bool> recurrent = read_recurrent_layers(hp, f);

  uint32_t n_ff_shexp = 0;
  if (moe) {
    if (hp.n_expert == 0 || hp.n_expert_used == 0)
      throw Error(path + ": " + hp.arch + " needs " + a + "expert_count and " + a + "expert_used_count");
    if (hp.n_ff_exp == 0)
      throw Error(path + ": the expert feed-forward width is 0 (" + a + "expert_feed_forward_length)");
    n_ff_shexp = f.get<uint32_t>(a + "expert_shared_feed_forward_length").value_or(hp.n_ff.empty() ? 0 : hp.n_ff[0]);
    if (n_ff_shexp == 0)
      throw Error(path + ": the shared expert width is 0 (" + a + "expert_shared_feed_forward_length)");
  }

  const int64_t d = hp.n_embd;
  bound.insert("token_embd.weight");
  output_norm_ = vec("output_norm.weight", d);
  if (f.find_tensor("output.weight") != nullptr) {
    output_ = mat("output.weight", d, hp.n_vocab);
  } else {
    output_ = w.matrix("token_embd.weight", d, hp.n_vocab);  // tied embeddings
  }
  // After the output matrix: a tied table it repacked is viewed in its new layout.
  tok_embd_ = w.embedding("token_embd.weight", d, hp.n_vocab);
  rope_ = make_rope_config(hp, kernels::RopeMode::kNeox, nullptr);
  if (!sections.empty()) {
    const int sect_dims = sections[0] + sections[1] + sections[2] + sections[3];
    for (int i = 0; i < rope_.n_rot / 2; ++i) {
      const int sector = i % sect_dims, axis = sector % 3;
      if (sector >= 3 * sections[static_cast<size_t>(axis)]) rope_still_.push_back(i);
    }
  }

  const int64_t c_conv = ssm_.c_conv(), c_v = ssm_.c_v(), hv = ssm_.n_v_heads;
  for (uint32_t il = 0; il < hp.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    Layer L;
    L.recurrent = recurrent[il];
    L.attn_norm = vec(p + "attn_norm.weight", d);
    L.post_norm = vec(p + "post_attention_norm.weight", d);
    if (L.recurrent) {
      L.legacy_in = next_ && f.find_tensor(p + "attn_qkv.weight") == nullptr && f.find_tensor(p + "ssm_in.weight");
      if (L.legacy_in) {
        L.ssm_in = mat(p + "ssm_in.weight", d, 2 * ssm_.c_qk() + 2 * c_v);
      } else {
        L.qkv = mat(p + "attn_qkv.weight", d, c_conv);
        L.gate = mat(p + "attn_gate.weight", d, c_v);
      }
      if (next_) {
        L.ba = mat(p + "ssm_ba.weight", d, 2 * hv);
      } else {
        L.beta = mat(p + "ssm_beta.weight", d, hv);
        L.alpha = mat(p + "ssm_alpha.weight", d, hv);
      }
      L.ssm_out = mat(p + "ssm_out.weight", c_v, d);
      L.dt_bias = vec(p + "ssm_dt.bias", hv);
      L.ssm_a = vec(p + "ssm_a", hv);
      L.ssm_norm = vec(p + "ssm_norm.weight", ssm_.d_v);
      const kernels::MatrixView conv = mat(p + "ssm_conv1d.weight", ssm_.conv_kernel, c_conv);
      std::vector<float> taps(static_cast<size_t>(ssm_.conv_kernel));
      L.conv_t.resize(static_cast<size_t>(c_conv * ssm_.conv_kernel));
      for (int64_t ch = 0; ch < c_conv; ++ch) {
        kernels::get_row(conv, ch, taps.data());
        for (int k = 0; k < ssm_.conv_kernel; ++k)
          L.conv_t[static_cast<size_t>(k * c_conv + ch)] = taps[static_cast<size_t>(k)];
      }
    } else {
      if (hp.n_head[il] == 0 || hp.head_dim_k == 0 || hp.head_dim_k != hp.head_dim_v)
        throw Error(path + ": layer " + std::to_string(il) + " is a full-attention layer but has " +
                    std::to_string(hp.n_head[il]) + " heads of dimension " + std::to_string(hp.head_dim_k) + "/" +
                    std::to_string(hp.head_dim_v) + " (" + a + "attention.head_count, key_length, value_length)");
      const int64_t q = int64_t{hp.n_head[il]} * hp.head_dim_k;
      L.wq = mat(p + "attn_q.weight", d, 2 * q);
      L.wk = mat(p + "attn_k.weight", d, hp.n_embd_k_gqa(il));
      L.wv = mat(p + "attn_v.weight", d, hp.n_embd_v_gqa(il));
      L.wo = mat(p + "attn_output.weight", q, d);
      L.q_norm = vec(p + "attn_q_norm.weight", hp.head_dim_k);
      L.k_norm = vec(p + "attn_k_norm.weight", hp.head_dim_k);
    }
    if (moe) {
      const int64_t ne = hp.n_expert, fe = hp.n_ff_exp;
      L.moe.router = mat(p + "ffn_gate_inp.weight", d, ne);
      bound.insert({p + "ffn_gate_exps.weight", p + "ffn_up_exps.weight", p + "ffn_down_exps.weight"});
      L.moe.gate = w.expert_stack(p + "ffn_gate_exps.weight", d, fe, ne);
      L.moe.up = w.expert_stack(p + "ffn_up_exps.weight", d, fe, ne);
      L.moe.down = w.expert_stack(p + "ffn_down_exps.weight", fe, d, ne);
      L.moe.n_expert = static_cast<int>(hp.n_expert);
      L.moe.n_used = static_cast<int>(hp.n_expert_used);
      L.moe.n_ff = fe;
      L.moe.renormalize = true;
      L.sh_gate = mat(p + "ffn_gate_shexp.weight", d, n_ff_shexp);
      L.sh_up = mat(p + "ffn_up_shexp.weight", d, n_ff_shexp);
      L.sh_down = mat(p + "ffn_down_shexp.weight", n_ff_shexp, d);
      L.sh_gate_inp = mat(p + "ffn_gate_inp_shexp.weight", d, 1);
    } else {
      if (hp.n_ff[il] == 0)
        throw Error(path + ": layer " + std::to_string(il) + " has no feed-forward width (" + a +
                    "feed_forward_length)");
      L.ffn_gate = mat(p + "ffn_gate.weight", d, hp.n_ff[il]);
      L.ffn_up = mat(p + "ffn_up.weight", d, hp.n_ff[il]);
      L.ffn_down = mat(p + "ffn_down.weight", hp.n_ff[il], d);
    }
    layers_.push_back(std::move(L));
  }

  // Unknown tensors (llama.cpp refuses files with tensors it does not expect, too). Blocks
  // n_layer … are the MTP heads, which only speculative drafting would run.
  std::vector<std::string> unknown;
  for (const gguf::TensorInfo& t : f.tensors()) {
    if (bound.count(t.name)) continue;
    if (t.name.rfind("blk.", 0) == 0) {
      const size_t dot = t.name.find('.', 4);
      const std::string num = t.name.substr(4, dot == std::string::npos ? std::string::npos : dot - 4);
      if (!num.empty() && num.find_first_not_of("0123456789") == std::string::npos && num.size() < 9 &&
          std::stoul(num) >= hp.n_layer && std::stoul(num) < hp.n_layer_all)
        continue;
    }
    unknown.push_back(t.name);
  }
  if (!unknown.empty()) {
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 8; ++i) list += (i ? ", '" : "'") + unknown[i] + "'";
    if (unknown.size() > 8) list += ", ... (" + std::to_string(unknown.size()) + " in all)";
    throw Error(path + ": tensors that are not part of a " + hp.arch + " model with this layer pattern: " + list);
  }
}

std::vector<KvLayerSpec> Qwen35::kv_layers() const {
  std::vector<bool> recurrent;
  for (const Layer& L : layers_) recurrent.push_back(L.recurrent);
  return qwen35_specs(hp_, ssm_, recurrent);
}

void Qwen35::attention_layer(Compute& c, int il, const Layer& L, const float* h, float* out) const {
  const int n_head = static_cast<int>(hp_.n_head[static_cast<size_t>(il)]);
  const int hd = static_cast<int>(hp_.head_dim_k);
  const kernels::AttnShape shape{n_head, static_cast<int>(hp_.n_head_kv[static_cast<size_t>(il)]), hd, hd,
                                 1.0f / std::sqrt(static_cast<float>(hd))};
  const int64_t wq = int64_t{n_head} * hd;
  float* qfull = c.buffer(kSlotQFull, 2 * wq);
  float* q = c.buffer(kSlotQ, wq);
  float* gate = c.buffer(kSlotAttnGate, wq);
  float* k = c.buffer(kSlotK, L.wk.n_out);
  float* v = c.buffer(kSlotV, L.wv.n_out);
  float* attn = c.buffer(kSlotAttn, wq);
  c.matmul(L.wq, h, qfull);
  c.matmul(L.wk, h, k);
  c.matmul(L.wv, h, v);
  // Per head h the rows of W_q are [q_h (hd) | gate_h (hd)].
  for (int64_t t = 0; t < c.n(); ++t)
    for (int hh = 0; hh < n_head; ++hh) {
      const float* src = qfull + t * 2 * wq + int64_t{hh} * 2 * hd;
      std::copy_n(src, hd, q + t * wq + int64_t{hh} * hd);
      std::copy_n(src + hd, hd, gate + t * wq + int64_t{hh} * hd);
    }
  c.rms_norm_heads(q, shape.n_head, hd, L.q_norm, hp_.rms_eps);
  c.rms_norm_heads(k, shape.n_head_kv, hd, L.k_norm, hp_.rms_eps);
  rope(c, q, shape.n_head, hd);
  rope(c, k, shape.n_head_kv, hd);
  c.attention(il, q, k, v, shape, attn);
  for (int64_t i = 0; i < c.n() * wq; ++i) attn[i] *= sigmoid(gate[i]);
  c.matmul(L.wo, attn, out);
}

void Qwen35::rope(Compute& c, float* x, int n_heads, int head_dim) const {
  if (rope_still_.empty()) {
    c.rope(x, n_heads, head_dim, rope_);
    return;
  }
  // IMROPE for text tokens: NEOX at position p, except the pairs on the 4th position (angle 0).
  std::vector<float> cache(static_cast<size_t>(rope_.n_rot));
  for (int64_t t = 0; t < c.n(); ++t) {
    kernels::rope_cache(rope_, c.batch().pos[t], cache.data());
    for (int i : rope_still_) {
      cache[static_cast<size_t>(2 * i)] = rope_.attn_factor;
      cache[static_cast<size_t>(2 * i + 1)] = 0.0f;
    }
    kernels::rope_apply(x + t * n_heads * head_dim, n_heads, head_dim, rope_, cache.data());
  }
}

void Qwen35::delta_net_layer(Compute& c, ForwardState& st, int il, const Layer& L, const float* h,
                             const std::vector<std::vector<int32_t>>& groups, const std::vector<int32_t>& slots,
                             float* out) const {
  const int64_t n = c.n(), c_conv = ssm_.c_conv(), c_qk = ssm_.c_qk(), c_v = ssm_.c_v(), hv = ssm_.n_v_heads;
  const int dk = ssm_.d_k, dv = ssm_.d_v;
  float* qkv = c.buffer(kSlotQkv, c_conv);
  float* z = c.buffer(kSlotZ, c_v);
  float* beta = c.buffer(kSlotBeta, hv);
  float* decay = c.buffer(kSlotDecay, hv);
  float* conv = c.buffer(kSlotConv, c_conv);
  float* o = c.buffer(kSlotDelta, c_v);
  const int64_t r = hv / ssm_.n_k_heads;  // v-heads per k-head
  if (L.legacy_in) {
    // Per k-group g the rows are [q_g | k_g | v_g (r·d_v) | z_g (r·d_v)]; the conv channels are
    // [all q | all k | all v] and z is in v-head order.
    const int64_t wg = 2 * dk + 2 * r * dv, wi = L.ssm_in.n_out;
    float* qkvz = c.buffer(kSlotQkvz, wi);
    c.matmul(L.ssm_in, h, qkvz);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t g = 0; g < ssm_.n_k_heads; ++g) {
        const float* src = qkvz + t * wi + g * wg;
        std::copy_n(src, dk, qkv + t * c_conv + g * dk);
        std::copy_n(src + dk, dk, qkv + t * c_conv + c_qk + g * dk);
        std::copy_n(src + 2 * dk, r * dv, qkv + t * c_conv + 2 * c_qk + g * r * dv);
        std::copy_n(src + 2 * dk + r * dv, r * dv, z + t * c_v + g * r * dv);
      }
  } else {
    c.matmul(L.qkv, h, qkv);
    c.matmul(L.gate, h, z);
  }
  if (next_) {
    // ssm_ba rows per k-group g: [β of v-heads g·r … g·r+r−1 | α of the same heads].
    float* ba = c.buffer(kSlotBetaAlpha, 2 * hv);
    c.matmul(L.ba, h, ba);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < hv; ++j) {
        const int64_t g = j / r, i = j % r;
        beta[t * hv + j] = ba[t * 2 * hv + g * 2 * r + i];
        decay[t * hv + j] = ba[t * 2 * hv + g * 2 * r + r + i];
      }
  } else {
    c.matmul(L.beta, h, beta);
    c.matmul(L.alpha, h, decay);
  }
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < hv; ++j) {
      beta[t * hv + j] = sigmoid(beta[t * hv + j]);
      decay[t * hv + j] = softplus(decay[t * hv + j] + L.dt_bias[j]) * L.ssm_a[j];
    }
  const KvLayer& kv = st.kv[static_cast<size_t>(il)];
  for (size_t g = 0; g < groups.size(); ++g)
    kernels::conv1d_silu(L.conv_t.data(), ssm_.conv_kernel, c_conv, kv.conv + int64_t{slots[g]} * kv.conv_stride, qkv,
                         c_conv, groups[g].data(), static_cast<int64_t>(groups[g].size()), conv, c_conv, c.pool());
  const float q_scale = 1.0f / std::sqrt(static_cast<float>(dk));
  c.pool().parallel_for(
      n,
      [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          kernels::l2_norm_scaled(conv + t * c_conv, ssm_.n_k_heads, dk, dk, hp_.rms_eps, q_scale);
          kernels::l2_norm_scaled(conv + t * c_conv + c_qk, ssm_.n_k_heads, dk, dk, hp_.rms_eps, 1.0f);
        }
      },
      16);
  std::vector<kernels::DeltaNetSeq> seqs(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    kernels::DeltaNetSeq& s = seqs[g];
    s.q = conv;
    s.k = conv + c_qk;
    s.ld_qk = c_conv;
    s.v = conv + 2 * c_qk;
    s.ld_v = c_conv;
    s.g = decay;
    s.beta = beta;
    s.ld_gb = hv;
    s.out = o;
    s.ld_out = c_v;
    s.rows = groups[g].data();
    s.n_tokens = static_cast<int64_t>(groups[g].size());
    s.state = kv.ssm + int64_t{slots[g]} * kv.ssm_stride;
  }
  const kernels::DeltaNetShape shape{ssm_.n_k_heads, ssm_.n_v_heads, dk, dv, /*tiled=*/!next_};
  kernels::delta_net(shape, seqs, c.pool());
  // Gated output norm: RMSNorm(o_j; ssm_norm) ⊙ silu(z_j) per v-head.
  c.pool().parallel_for(
      n,
      [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
          for (int64_t j = 0; j < hv; ++j) {
            float* oj = o + t * c_v + j * dv;
            const float* zj = z + t * c_v + j * dv;
            kernels::rms_norm(oj, L.ssm_norm, oj, dv, hp_.rms_eps);
            for (int i = 0; i < dv; ++i) oj[i] *= zj[i] / (1.0f + std::exp(-zj[i]));
          }
      },
      16);
  c.matmul(L.ssm_out, o, out);
}

void Qwen35::forward(const UBatch& b, ForwardState& st, float* logits) const {
  Compute c(b, st);
  const int64_t d = hp_.n_embd;
  // The tokens of each sequence slot, in batch (= position) order.
  std::vector<std::vector<int32_t>> groups;
  std::vector<int32_t> slots;
  for (int64_t t = 0; t < b.n_tokens; ++t) {
    const int32_t slot = b.seq_slots != nullptr ? b.seq_slots[t] : 0;
    size_t g = 0;
    while (g < slots.size() && slots[g] != slot) ++g;
    if (g == slots.size()) {
      slots.push_back(slot);
      groups.emplace_back();
    }
    groups[g].push_back(static_cast<int32_t>(t));
  }
  float* x = c.buffer(kSlotX, d);
  float* h = c.buffer(kSlotH, d);
  float* out = c.buffer(kSlotOut, d);
  c.embed(tok_embd_, x);
  for (uint32_t il = 0; il < hp_.n_layer; ++il) {
    const Layer& L = layers_[il];
    c.rms_norm(x, L.attn_norm, d, hp_.rms_eps, h, c.n());
    if (L.recurrent) {
      delta_net_layer(c, st, static_cast<int>(il), L, h, groups, slots, out);
    } else {
      attention_layer(c, static_cast<int>(il), L, h, out);
    }
    c.add(x, out, d);
    c.rms_norm(x, L.post_norm, d, hp_.rms_eps, h, c.n());
    if (moe_) {
      c.moe_ffn(h, L.moe, out);
      float* sh = c.buffer(kSlotShared, d);
      float* sg = c.buffer(kSlotSharedGate, 1);
      c.swiglu_ffn(h, L.sh_gate, L.sh_up, L.sh_down, sh, kSlotSharedFfnGate, kSlotSharedFfnUp);
      c.matmul(L.sh_gate_inp, h, sg);
      for (int64_t t = 0; t < c.n(); ++t) {
        const float gate = sigmoid(sg[t]);
        for (int64_t i = 0; i < d; ++i) out[t * d + i] += sh[t * d + i] * gate;
      }
    } else {
      c.swiglu_ffn(h, L.ffn_gate, L.ffn_up, L.ffn_down, out, kSlotGate, kSlotUp);
    }
    c.add(x, out, d);
  }
  c.output_head(x, output_norm_, hp_.rms_eps, output_, logits);
}

}  // namespace

std::vector<KvLayerSpec> kv_layers_qwen35(const HParams& hp, const gguf::File& f) {
  return qwen35_specs(hp, read_ssm_params(hp, f), read_recurrent_layers(hp, f));
}

std::unique_ptr<Architecture> make_qwen35(const HParams& hp, Weights& w) {
  return std::make_unique<Qwen35>(hp, w, Variant::kQwen35);
}

std::unique_ptr<Architecture> make_qwen35moe(const HParams& hp, Weights& w) {
  return std::make_unique<Qwen35>(hp, w, Variant::kQwen35Moe);
}

std::unique_ptr<Architecture> make_qwen3next(const HParams& hp, Weights& w) {
  return std::make_unique<Qwen35>(hp, w, Variant::kQwen3Next);
}

}  // namespace hearth::model
