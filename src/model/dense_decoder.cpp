#include "model/dense_decoder.h"

#include <cmath>

#include "model/compute.h"
#include "model/kv_layout.h"

namespace hearth::model {

DenseDecoder::DenseDecoder(const HParams& hp, Weights& w, const DenseOptions& opt) : hp_(hp), opt_(opt) {
  if (hp.head_dim_k == 0 || hp.head_dim_v == 0)
    throw Error(w.file().path() + ": the attention head dimension is 0 (" + hp.arch + ".attention.key_length)");
  for (uint32_t il = 0; il < hp.n_layer; ++il) {
    if (hp.n_head[il] == 0)
      throw Error(w.file().path() + ": layer " + std::to_string(il) + " has no attention heads (" + hp.arch +
                  ".attention.head_count)");
    if (!opt.moe && hp.n_ff[il] == 0)
      throw Error(w.file().path() + ": layer " + std::to_string(il) + " has no feed-forward width (" + hp.arch +
                  ".feed_forward_length)");
  }
  if (opt.moe) {
    if (hp.n_expert == 0 || hp.n_expert_used == 0)
      throw Error(w.file().path() + ": " + hp.arch + " needs " + hp.arch + ".expert_count and " + hp.arch +
                  ".expert_used_count");
    if (hp.n_ff_exp == 0)
      throw Error(w.file().path() + ": the expert feed-forward width is 0 (" + hp.arch +
                  ".expert_feed_forward_length)");
  }
  const int64_t d = hp.n_embd;
  output_norm_ = w.vector("output_norm.weight", d);
  if (auto out = w.matrix_opt("output.weight", d, hp.n_vocab)) {
    output_ = *out;
  } else {
    output_ = w.matrix("token_embd.weight", d, hp.n_vocab);  // tied embeddings
  }
  // After the output matrix: a tied table it repacked is viewed in its new layout.
  tok_embd_ = w.embedding("token_embd.weight", d, hp.n_vocab);
  const float* freqs = opt.rope_freqs ? w.vector_opt("rope_freqs.weight", hp.n_rot / 2) : nullptr;
  rope_ = make_rope_config(hp, opt.rope_mode, freqs);
  for (uint32_t il = 0; il < hp.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    const int64_t q = int64_t{hp.n_head[il]} * hp.head_dim_k, kv_k = hp.n_embd_k_gqa(il), kv_v = hp.n_embd_v_gqa(il),
                  ff = hp.n_ff[il], o = int64_t{hp.n_head[il]} * hp.head_dim_v;
    Layer L;
    L.attn_norm = w.vector(p + "attn_norm.weight", d);
    L.wq = w.matrix(p + "attn_q.weight", d, q);
    L.wk = w.matrix(p + "attn_k.weight", d, kv_k);
    L.wv = w.matrix(p + "attn_v.weight", d, kv_v);
    L.wo = w.matrix(p + "attn_output.weight", o, d);
    L.bq = w.vector_opt(p + "attn_q.bias", q);
    L.bk = w.vector_opt(p + "attn_k.bias", kv_k);
    L.bv = w.vector_opt(p + "attn_v.bias", kv_v);
    L.bo = w.vector_opt(p + "attn_output.bias", d);
    if (opt.qk_norm) {
      L.q_norm = w.vector(p + "attn_q_norm.weight", hp.head_dim_k);
      L.k_norm = w.vector(p + "attn_k_norm.weight", hp.head_dim_k);
    }
    L.ffn_norm = w.vector(p + "ffn_norm.weight", d);
    if (opt.moe) {
      const int64_t ne = hp.n_expert, fe = hp.n_ff_exp;
      L.moe.router = w.matrix(p + "ffn_gate_inp.weight", d, ne);
      L.moe.gate = w.expert_stack(p + "ffn_gate_exps.weight", d, fe, ne);
      L.moe.up = w.expert_stack(p + "ffn_up_exps.weight", d, fe, ne);
      L.moe.down = w.expert_stack(p + "ffn_down_exps.weight", fe, d, ne);
      L.moe.n_expert = static_cast<int>(hp.n_expert);
      L.moe.n_used = static_cast<int>(hp.n_expert_used);
      L.moe.n_ff = fe;
      L.moe.renormalize = true;
    } else {
      L.gate = w.matrix(p + "ffn_gate.weight", d, ff);
      L.up = w.matrix(p + "ffn_up.weight", d, ff);
      L.down = w.matrix(p + "ffn_down.weight", ff, d);
    }
    layers_.push_back(L);
  }
}

std::vector<KvLayerSpec> kv_layers_dense(const HParams& hp) {
  std::vector<KvLayerSpec> out;
  for (uint32_t il = 0; il < hp.n_layer; ++il) {
    KvLayerSpec s;
    s.n_embd_k = hp.n_embd_k_gqa(il);
    s.n_embd_v = hp.n_embd_v_gqa(il);
    out.push_back(s);
  }
  return out;
}

std::vector<KvLayerSpec> DenseDecoder::kv_layers() const { return kv_layers_dense(hp_); }

void DenseDecoder::forward(const UBatch& b, ForwardState& st, float* logits) const {
  Compute c(b, st);
  const int64_t d = hp_.n_embd;
  float* x = c.buffer(kSlotX, d);
  float* h = c.buffer(kSlotH, d);
  c.embed(tok_embd_, x);
  for (uint32_t il = 0; il < hp_.n_layer; ++il) {
    const Layer& L = layers_[il];
    const kernels::AttnShape shape{static_cast<int>(hp_.n_head[il]), static_cast<int>(hp_.n_head_kv[il]),
                                   static_cast<int>(hp_.head_dim_k), static_cast<int>(hp_.head_dim_v),
                                   1.0f / std::sqrt(static_cast<float>(hp_.head_dim_k))};
    float* q = c.buffer(kSlotQ, L.wq.n_out);
    float* k = c.buffer(kSlotK, L.wk.n_out);
    float* v = c.buffer(kSlotV, L.wv.n_out);
    float* attn = c.buffer(kSlotAttn, L.wo.n_in);
    float* out = c.buffer(kSlotOut, d);
    c.rms_norm(x, L.attn_norm, d, hp_.rms_eps, h, c.n());
    c.matmul(L.wq, h, q, L.bq);
    c.matmul(L.wk, h, k, L.bk);
    c.matmul(L.wv, h, v, L.bv);
    if (opt_.qk_norm) {
      c.rms_norm_heads(q, shape.n_head, shape.head_dim_k, L.q_norm, hp_.rms_eps);
      c.rms_norm_heads(k, shape.n_head_kv, shape.head_dim_k, L.k_norm, hp_.rms_eps);
    }
    c.rope(q, shape.n_head, shape.head_dim_k, rope_);
    c.rope(k, shape.n_head_kv, shape.head_dim_k, rope_);
    c.attention(static_cast<int>(il), q, k, v, shape, attn);
    c.matmul(L.wo, attn, out, L.bo);
    c.add(x, out, d);
    c.rms_norm(x, L.ffn_norm, d, hp_.rms_eps, h, c.n());
    if (opt_.moe) {
      c.moe_ffn(h, L.moe, out);
    } else {
      c.swiglu_ffn(h, L.gate, L.up, L.down, out, kSlotGate, kSlotUp);
    }
    c.add(x, out, d);
  }
  c.output_head(x, output_norm_, hp_.rms_eps, output_, logits);
}

}  // namespace hearth::model
