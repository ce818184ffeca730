// Architecture `llama4` (Llama 4 Scout 17B-16E, Maverick 17B-128E): architectures.md §3, with the
// building blocks of §1 (§1.3 RoPE, §1.4 chunked attention, §1.5 mixture of experts). Per layer il:
//   h = RMSNorm(x; attn_norm);  Q, K, V = W h
//   RoPE layers ((il+1) % 4 != 0): NORM RoPE on Q and K (rope_freqs divisors when present), then
//     a weightless per-head RMS norm of Q and K unless the model has 128 experts (Maverick);
//   NoPE layers (every 4th): Q scaled by the attention temperature τ(p), no RoPE;
//   x += W_o · Attn(Q, K, V; 1/sqrt(hd)), chunked (8192) on the layers of the chunk pattern
//     (il % period < period - 1, period attention.sliding_window_pattern, default 4), else causal;
//   h2 = RMSNorm(x; ffn_norm)
//   MoE layers ((il+1) % interleave_moe_layer_step == 0):
//     x += Σ_{e ∈ top-k(ℓ)} FFN_e(σ(ℓ_e) · h2) + SwiGLU_shexp(h2),  ℓ = W_router h2
//   dense layers: x += SwiGLU(h2)
//   logits = W_out RMSNorm(x; output_norm)   (W_out = token_embd when output.weight is absent)
// The chunk size, the NoPE period and the temperature constants are not in the GGUF; they are
// llama.cpp's hard-coded values (llama_model_llama4::load_arch_hparams at commit 3f545be).
#include <cmath>

#include "model/arch.h"
#include "model/compute.h"
#include "model/kv_layout.h"

namespace hearth::model {
namespace {

constexpr int32_t kChunk = 8192;        // attention chunk of the chunked layers, positions
constexpr uint32_t kNoRopeStep = 4;     // layer il is NoPE when (il + 1) % 4 == 0
constexpr uint32_t kChunkPeriod = 4;    // default attention.sliding_window_pattern
constexpr float kTempFloor = 8192.0f;   // attention temperature: floor scale, positions
constexpr float kTempScale = 0.1f;      // attention temperature: scale
constexpr float kTempOffset = 1.0f;     // attention temperature: position offset
constexpr uint32_t kNoQkNormExperts = 128;  // QK norm is off for the 128-expert model (Maverick)

// Attention temperature of a NoPE layer's queries at position `pos` (§3):
// τ(p) = 1 + 0.1 · ln(⌊(p + 1) / 8192⌋ + 1), evaluated with llama.cpp's mix of float and double
// (llm_graph_input_attn_temp::set_input) so the factor is bit-identical.
float attn_temperature(int32_t pos) {
  const float q = std::floor((static_cast<float>(pos) + kTempOffset) / kTempFloor);
  return static_cast<float>(std::log(static_cast<double>(q) + 1.0) * static_cast<double>(kTempScale) + 1.0);
}

class Llama4 final : public Architecture {
 public:
  Llama4(const HParams& hp, Weights& w);

  std::vector<KvLayerSpec> kv_layers() const override;
  void forward(const UBatch& b, ForwardState& st, float* logits) const override;

 private:
  struct Layer {
    bool rope = true;     // RoPE (+ QK norm) layer; false: NoPE with attention temperature
    bool chunked = true;  // chunked attention (kChunk); false: full causal
    bool moe = false;     // routed experts + shared expert; false: dense SwiGLU
    kernels::RopeConfig rope_cfg;
    const float* attn_norm = nullptr;
    kernels::MatrixView wq, wk, wv, wo;
    const float *bq = nullptr, *bk = nullptr, *bv = nullptr, *bo = nullptr;
    const float* ffn_norm = nullptr;
    kernels::MatrixView gate, up, down;  // dense FFN, or the shared expert of a MoE layer
    MoeFfn experts;
  };
  HParams hp_;
  bool qk_norm_ = true;
  kernels::MatrixView tok_embd_, output_;
  const float* output_norm_ = nullptr;
  std::vector<Layer> layers_;
  std::vector<KvLayerSpec> kv_;  // kv_layers_llama4
};

Llama4::Llama4(const HParams& hp, Weights& w) : hp_(hp) {
  const gguf::File& f = w.file();
  const std::string a = hp.arch + ".";
  if (hp.n_expert == 0)
    throw Error(f.path() + ": a llama4 model needs experts (" + a + "expert_count is 0 or missing)");
  if (hp.head_dim_k == 0 || hp.head_dim_k != hp.head_dim_v || hp.n_rot != hp.head_dim_k)
    throw Error(f.path() + ": llama4 needs equal K and V head dimensions and rotary dimensions (" + a +
                "attention.key_length " + std::to_string(hp.head_dim_k) + ", " + a + "attention.value_length " +
                std::to_string(hp.head_dim_v) + ", " + a + "rope.dimension_count " + std::to_string(hp.n_rot) + ")");
  // Required keys (llama.cpp reads them without a default).
  const uint32_t n_ff_exp = f.require<uint32_t>(a + "expert_feed_forward_length");
  const uint32_t moe_step = f.require<uint32_t>(a + "interleave_moe_layer_step");
  if (n_ff_exp == 0) throw Error(f.path() + ": " + a + "expert_feed_forward_length is 0");
  kv_ = kv_layers_llama4(hp, f);  // which layers are chunked (and the sliding_window check)
  const float base_swa = f.get<float>(a + "rope.freq_base_swa").value_or(hp.rope_freq_base);
  if (!(base_swa > 1.0f)) throw Error(f.path() + ": " + a + "rope.freq_base_swa must be > 1");
  qk_norm_ = hp.n_expert != kNoQkNormExperts;

  const int64_t d = hp.n_embd, hd = hp.head_dim_k;
  output_norm_ = w.vector("output_norm.weight", d);
  if (auto out = w.matrix_opt("output.weight", d, hp.n_vocab)) {
    output_ = *out;
  } else {
    output_ = w.matrix("token_embd.weight", d, hp.n_vocab);  // tied embeddings
  }
  // After the output matrix: a tied table it repacked is viewed in its new layout.
  tok_embd_ = w.embedding("token_embd.weight", d, hp.n_vocab);
  const float* freqs = w.vector_opt("rope_freqs.weight", hp.n_rot / 2);
  HParams hp_swa = hp;
  hp_swa.rope_freq_base = base_swa;
  for (uint32_t il = 0; il < hp.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    Layer L;
    L.rope = (il + 1) % kNoRopeStep != 0;
    L.chunked = kv_[il].window.kind == AttnWindow::Kind::kChunked;
    L.moe = moe_step > 0 && (il + 1) % moe_step == 0;
    // Chunked layers use rope.freq_base_swa (llama_model::get_rope_freq_base).
    L.rope_cfg = make_rope_config(L.chunked ? hp_swa : hp, kernels::RopeMode::kNorm, freqs);
    if (hp.n_head[il] == 0)
      throw Error(f.path() + ": layer " + std::to_string(il) + " has no attention heads (" + a +
                  "attention.head_count)");
    const int64_t q = int64_t{hp.n_head[il]} * hd, kv = hp.n_embd_k_gqa(il);
    L.attn_norm = w.vector(p + "attn_norm.weight", d);
    L.wq = w.matrix(p + "attn_q.weight", d, q);
    L.wk = w.matrix(p + "attn_k.weight", d, kv);
    L.wv = w.matrix(p + "attn_v.weight", d, kv);
    L.wo = w.matrix(p + "attn_output.weight", q, d);
    L.bq = w.vector_opt(p + "attn_q.bias", q);
    L.bk = w.vector_opt(p + "attn_k.bias", kv);
    L.bv = w.vector_opt(p + "attn_v.bias", kv);
    L.bo = w.vector_opt(p + "attn_output.bias", d);
    L.ffn_norm = w.vector(p + "ffn_norm.weight", d);
    if (L.moe) {
      const int64_t ne = hp.n_expert, fe = n_ff_exp;
      L.experts.router = w.matrix(p + "ffn_gate_inp.weight", d, ne);
      L.experts.gate = w.expert_stack(p + "ffn_gate_exps.weight", d, fe, ne);
      L.experts.up = w.expert_stack(p + "ffn_up_exps.weight", d, fe, ne);
      L.experts.down = w.expert_stack(p + "ffn_down_exps.weight", fe, d, ne);
      L.experts.n_expert = static_cast<int>(hp.n_expert);
      L.experts.n_used = static_cast<int>(hp.n_expert_used);
      L.experts.n_ff = fe;
      L.experts.renormalize = false;
      L.experts.gating = MoeGating::kSigmoid;
      L.experts.weight_input = true;
      // The shared expert has the routed experts' width.
      L.gate = w.matrix(p + "ffn_gate_shexp.weight", d, fe);
      L.up = w.matrix(p + "ffn_up_shexp.weight", d, fe);
      L.down = w.matrix(p + "ffn_down_shexp.weight", fe, d);
    } else {
      const int64_t ff = hp.n_ff[il];
      if (ff == 0)
        throw Error(f.path() + ": dense layer " + std::to_string(il) + " has no feed-forward width (" + a +
                    "feed_forward_length)");
      L.gate = w.matrix(p + "ffn_gate.weight", d, ff);
      L.up = w.matrix(p + "ffn_up.weight", d, ff);
      L.down = w.matrix(p + "ffn_down.weight", ff, d);
    }
    layers_.push_back(L);
  }
}

}  // namespace

std::vector<KvLayerSpec> kv_layers_llama4(const HParams& hp, const gguf::File& f) {
  const std::string a = hp.arch + ".";
  // attention.sliding_window = 0 selects llama.cpp's variant without chunked attention (whose
  // last layer then needs temperature constants llama.cpp leaves unset): not supported.
  if (auto swa = f.get<uint32_t>(a + "attention.sliding_window"); swa && *swa == 0)
    throw Error(f.path() + ": llama4 without chunked attention (" + a +
                "attention.sliding_window = 0) is not supported");
  const uint32_t period = f.get<uint32_t>(a + "attention.sliding_window_pattern").value_or(kChunkPeriod);
  std::vector<KvLayerSpec> out;
  for (uint32_t il = 0; il < hp.n_layer; ++il) {
    KvLayerSpec s;
    s.n_embd_k = hp.n_embd_k_gqa(il);
    s.n_embd_v = hp.n_embd_v_gqa(il);
    if (period == 0 || il % period < period - 1) s.window = {AttnWindow::Kind::kChunked, kChunk};
    out.push_back(s);
  }
  return out;
}

namespace {

std::vector<KvLayerSpec> Llama4::kv_layers() const { return kv_; }

void Llama4::forward(const UBatch& b, ForwardState& st, float* logits) const {
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
    if (L.rope) {
      c.rope(q, shape.n_head, shape.head_dim_k, L.rope_cfg);
      c.rope(k, shape.n_head_kv, shape.head_dim_k, L.rope_cfg);
      if (qk_norm_) {  // weightless, after RoPE (Llama4TextL2Norm is an RMS norm)
        c.rms_norm_heads(q, shape.n_head, shape.head_dim_k, nullptr, hp_.rms_eps);
        c.rms_norm_heads(k, shape.n_head_kv, shape.head_dim_k, nullptr, hp_.rms_eps);
      }
    } else {
      const int64_t wq = L.wq.n_out;
      for (int64_t t = 0; t < c.n(); ++t) {
        const float tau = attn_temperature(b.pos[t]);
        for (int64_t i = 0; i < wq; ++i) q[t * wq + i] *= tau;
      }
    }
    c.attention(static_cast<int>(il), q, k, v, shape, attn);
    c.matmul(L.wo, attn, out, L.bo);
    c.add(x, out, d);
    c.rms_norm(x, L.ffn_norm, d, hp_.rms_eps, h, c.n());
    if (L.moe) {
      c.moe_ffn(h, L.experts, out);
      float* shared = c.buffer(kSlotAttn, d);  // the attention output is consumed
      c.swiglu_ffn(h, L.gate, L.up, L.down, shared, kSlotGate, kSlotUp);
      c.add(out, shared, d);  // llama.cpp: moe_out + shexp_out, then + the residual
    } else {
      c.swiglu_ffn(h, L.gate, L.up, L.down, out, kSlotGate, kSlotUp);
    }
    c.add(x, out, d);
  }
  c.output_head(x, output_norm_, hp_.rms_eps, output_, logits);
}

}  // namespace

std::unique_ptr<Architecture> make_llama4(const HParams& hp, Weights& w) { return std::make_unique<Llama4>(hp, w); }

}  // namespace hearth::model
