#include "model/compute.h"

#include "quant/fp16.h"

namespace hearth::model {

kernels::RopeConfig make_rope_config(const HParams& hp, kernels::RopeMode mode, const float* freq_factors) {
  kernels::RopeConfig cfg;
  cfg.n_rot = static_cast<int>(hp.n_rot);
  cfg.freq_base = hp.rope_freq_base;
  cfg.freq_scale = hp.rope_freq_scale;
  cfg.attn_factor = hp.rope_attn_factor;
  cfg.freq_factors = freq_factors;
  cfg.mode = mode;
  if (hp.rope_scaling == RopeScaling::kYarn) {
    cfg.ext_factor = 1.0f;
    kernels::rope_yarn_corr_dims(cfg.n_rot, static_cast<int>(hp.n_ctx_orig), cfg.freq_base, 32.0f, 1.0f,
                                 cfg.corr_dims);
  }
  return cfg;
}

Compute::Compute(const UBatch& batch, ForwardState& state) : batch_(batch), state_(state) {}

float* Compute::buffer(int slot, int64_t width) {
  auto& bufs = state_.scratch.bufs;
  if (bufs.size() <= static_cast<size_t>(slot)) bufs.resize(static_cast<size_t>(slot) + 1);
  auto& b = bufs[static_cast<size_t>(slot)];
  const size_t need = static_cast<size_t>(n() * width);
  if (b.size() < need) b.resize(need);
  return b.data();
}

void Compute::embed(const kernels::MatrixView& table, float* x) {
  pool().parallel_for(n(), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) kernels::get_row(table, batch_.tokens[t], x + t * table.n_in);
  });
}

void Compute::rms_norm(const float* x, const float* w, int64_t width, float eps, float* y, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) kernels::rms_norm(x + r * width, w, y + r * width, width, eps);
}

void Compute::rms_norm_heads(float* x, int n_heads, int head_dim, const float* w, float eps) {
  rms_norm(x, w, head_dim, eps, x, n() * n_heads);
}

void Compute::matmul(const kernels::MatrixView& w, const float* x, float* y, const float* bias, int64_t rows) {
  if (rows < 0) rows = n();
  if (state_.on_matmul) state_.on_matmul(w, x, rows);
  kernels::matmul(w, x, rows, y, w.n_out, pool(), state_.scratch.matmul);
  if (bias != nullptr)
    for (int64_t r = 0; r < rows; ++r) kernels::add_inplace(y + r * w.n_out, bias, w.n_out);
}

void Compute::rope(float* x, int n_heads, int head_dim, const kernels::RopeConfig& cfg) {
  std::vector<float>& cache = state_.scratch.rope_cache;
  cache.resize(static_cast<size_t>(cfg.n_rot));
  for (int64_t t = 0; t < n(); ++t) {
    kernels::rope_cache(cfg, batch_.pos[t], cache.data());
    kernels::rope_apply(x + t * n_heads * head_dim, n_heads, head_dim, cfg, cache.data());
  }
}

void Compute::attention(int il, const float* q, const float* k, const float* v, const kernels::AttnShape& shape,
                        float* out) {
  const KvLayer& kv = state_.kv[static_cast<size_t>(il)];
  const int64_t wk = static_cast<int64_t>(shape.n_head_kv) * shape.head_dim_k;
  const int64_t wv = static_cast<int64_t>(shape.n_head_kv) * shape.head_dim_v;
  for (int64_t t = 0; t < n(); ++t) {
    uint16_t* kc = kv.k + static_cast<int64_t>(batch_.cells[t]) * kv.k_stride;
    uint16_t* vc = kv.v + static_cast<int64_t>(batch_.cells[t]) * kv.v_stride;
    for (int64_t i = 0; i < wk; ++i) kc[i] = quant::fp32_to_fp16(k[t * wk + i]);
    for (int64_t i = 0; i < wv; ++i) vc[i] = quant::fp32_to_fp16(v[t * wv + i]);
  }
  const kernels::KvLayerF16 view{kv.k, kv.v, kv.k_stride, kv.v_stride};
  kernels::attention_f16(q, n(), shape, view, batch_.spans, out, pool());
}

void Compute::add(float* x, const float* y, int64_t width, int64_t rows) {
  if (rows < 0) rows = n();
  kernels::add_inplace(x, y, width * rows);
}

void Compute::swiglu_ffn(const float* h, const kernels::MatrixView& gate, const kernels::MatrixView& up,
                         const kernels::MatrixView& down, float* out, int slot_gate, int slot_up) {
  float* g = buffer(slot_gate, gate.n_out);
  float* u = buffer(slot_up, up.n_out);
  matmul(gate, h, g);
  matmul(up, h, u);
  kernels::swiglu(g, u, g, n() * gate.n_out);
  matmul(down, g, out);
}

void Compute::output_head(const float* x, const float* norm, float eps, const kernels::MatrixView& w_out,
                          float* logits) {
  const int64_t d = w_out.n_in;
  std::vector<float> rows(static_cast<size_t>(batch_.n_outputs * d));
  for (int64_t i = 0; i < batch_.n_outputs; ++i)
    kernels::rms_norm(x + static_cast<int64_t>(batch_.out_ids[i]) * d, norm, rows.data() + i * d, d, eps);
  kernels::matmul(w_out, rows.data(), batch_.n_outputs, logits, w_out.n_out, pool(), state_.scratch.matmul);
}

}  // namespace hearth::model
