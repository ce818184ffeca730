#include "model/compute.h"

#include <algorithm>

#include "kernels/dot.h"
#include "kernels/moe.h"
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

void Compute::rows_parallel(int64_t rows, int64_t width, const std::function<void(int64_t, int64_t)>& fn) {
  // Blocks of at least kRowsGrainElems elements: a single-token decode step's rows make one
  // block, which parallel_for runs on the calling thread (no barrier). Each row is computed
  // alone, so the split does not change the result.
  constexpr int64_t kRowsGrainElems = 4096;
  pool().parallel_for(rows, fn, std::max<int64_t>(1, kRowsGrainElems / std::max<int64_t>(1, width)));
}

void Compute::rms_norm(const float* x, const float* w, int64_t width, float eps, float* y, int64_t rows) {
  rows_parallel(rows, width, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) kernels::rms_norm(x + r * width, w, y + r * width, width, eps);
  });
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
  const int64_t width = int64_t{n_heads} * head_dim;
  rows_parallel(n(), width, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> cache;  // one per thread: the threads rotate different tokens
    cache.resize(static_cast<size_t>(cfg.n_rot));
    for (int64_t t = t0; t < t1; ++t) {
      kernels::rope_cache(cfg, batch_.pos[t], cache.data());
      kernels::rope_apply(x + t * width, n_heads, head_dim, cfg, cache.data());
    }
  });
}

namespace {

/// Stores n f32 values as one cache row of `type` with the converter llama.cpp's CPU backend
/// uses for that type (its set_rows from_float): F16 round to nearest even, BF16 quant's
/// from_float_bf16, Q8_0 the activation quantizer (kernels/dot.h, what ggml-cpu's Q8_0
/// from_float computes on x86), Q4_0 the reference quantizer (formats.md §3).
void store_row(quant::GgmlType type, const float* x, uint8_t* row, int64_t n) {
  switch (type) {
    case quant::GgmlType::F16:  // the active path's converter, byte-identical to fp32_to_fp16 (simd_test)
    case quant::GgmlType::Q8_0: return kernels::act_quantize_fn(type)(x, row, n);
    default: return quant::traits(type).from_float(x, row, n);
  }
}

}  // namespace

void Compute::attention(int il, const float* q, const float* k, const float* v, const kernels::AttnShape& shape,
                        float* out) {
  const KvLayer& kv = state_.kv[static_cast<size_t>(il)];
  const int32_t* cells = batch_.layer_cells ? batch_.layer_cells[il] : batch_.cells;
  const kernels::AttnSpan* spans = batch_.layer_spans ? batch_.layer_spans[il] : batch_.spans;
  const int64_t wk = static_cast<int64_t>(shape.n_head_kv) * shape.head_dim_k;
  const int64_t wv = static_cast<int64_t>(shape.n_head_kv) * shape.head_dim_v;
  rows_parallel(n(), wk + wv, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      store_row(kv.type_k, k + t * wk, kv.k + static_cast<int64_t>(cells[t]) * kv.k_stride, wk);
      store_row(kv.type_v, v + t * wv, kv.v + static_cast<int64_t>(cells[t]) * kv.v_stride, wv);
    }
  });
  attend(kv, spans, q, shape, out);
}

void Compute::attention_shared(int src, const float* q, const kernels::AttnShape& shape, float* out) {
  const kernels::AttnSpan* spans = batch_.layer_spans ? batch_.layer_spans[src] : batch_.spans;
  attend(state_.kv[static_cast<size_t>(src)], spans, q, shape, out);
}

void Compute::attend(const KvLayer& kv, const kernels::AttnSpan* spans, const float* q, const kernels::AttnShape& shape,
                     float* out) {
  if (kv.type_k == quant::GgmlType::F16 && kv.type_v == quant::GgmlType::F16 && !state_.flash_attn) {
    const kernels::KvLayerF16 view{reinterpret_cast<const uint16_t*>(kv.k), reinterpret_cast<const uint16_t*>(kv.v),
                                   kv.k_stride / 2, kv.v_stride / 2};
    kernels::attention_f16(q, n(), shape, view, spans, out, pool());
  } else {
    const kernels::KvLayerView view{kv.type_k, kv.type_v, kv.k, kv.v, kv.k_stride, kv.v_stride};
    kernels::attention_flash(q, n(), shape, view, spans, out, pool());
  }
}

void Compute::add(float* x, const float* y, int64_t width, int64_t rows) {
  if (rows < 0) rows = n();
  rows_parallel(rows, width, [&](int64_t r0, int64_t r1) {
    kernels::add_inplace(x + r0 * width, y + r0 * width, (r1 - r0) * width);
  });
}

void Compute::swiglu_ffn(const float* h, const kernels::MatrixView& gate, const kernels::MatrixView& up,
                         const kernels::MatrixView& down, float* out, int slot_gate, int slot_up) {
  float* g = buffer(slot_gate, gate.n_out);
  float* u = buffer(slot_up, up.n_out);
  matmul(gate, h, g);
  matmul(up, h, u);
  // Split over elements, each computed alone (the split does not change the result): with one
  // thread, its expf per element was ~2% of a decode step of four sequences while the others waited.
  pool().parallel_for(
      n() * gate.n_out, [&](int64_t i0, int64_t i1) { kernels::swiglu(g + i0, u + i0, g + i0, i1 - i0); }, 1024);
  matmul(down, g, out);
}

void Compute::geglu_ffn(const float* h, const kernels::MatrixView& gate, const kernels::MatrixView& up,
                        const kernels::MatrixView& down, float* out, int slot_gate, int slot_up) {
  float* g = buffer(slot_gate, gate.n_out);
  float* u = buffer(slot_up, up.n_out);
  matmul(gate, h, g);
  matmul(up, h, u);
  // Row blocks in parallel (GELU's F16 conversions and table lookups are not free on prompts); each
  // element is computed alone, so the split does not change the result.
  const int64_t w = gate.n_out;
  pool().parallel_for(
      n(), [&](int64_t r0, int64_t r1) { kernels::geglu(g + r0 * w, u + r0 * w, g + r0 * w, (r1 - r0) * w); }, 8);
  matmul(down, g, out);
}

void Compute::moe_ffn(const float* h, const MoeFfn& m, float* out, const float* router_in) {
  const bool fused = m.gate.data == nullptr;
  const int64_t d = fused ? m.gate_up.n_in : m.gate.n_in, f = m.n_ff, k = m.n_used;
  float* logits = buffer(kSlotRouter, m.n_expert);
  matmul(m.router, router_in != nullptr ? router_in : h, logits);
  Scratch& sc = state_.scratch;
  kernels::MoeRouting& r = sc.moe;
  if (m.gating == MoeGating::kSigmoid) {
    kernels::moe_route_sigmoid(logits, n(), m.n_expert, m.n_used, r);
  } else {
    kernels::moe_route_softmax(logits, n(), m.n_expert, m.n_used, m.renormalize, r);
  }
  // Rows in the grouping's order: expert e's rows are offsets[e] .. offsets[e+1].
  const int64_t n_rows = n() * k;
  float* xe = buffer(kSlotMoeIn, d * k);
  float* g = buffer(kSlotGate, (fused ? 2 * f : f) * k);  // fused: [rows][gate f | up f]
  float* u = buffer(kSlotUp, f * k);                       // fused: the activation
  float* ye = buffer(kSlotMoeOut, d * k);
  // Copies and elementwise steps go parallel only for prompt-sized batches (grain 64 rows): a
  // decode step's few rows are not worth a thread barrier.
  constexpr int64_t kGrain = 64;
  pool().parallel_for(
      n_rows,
      [&](int64_t i0, int64_t i1) {
        kernels::moe_gather(h, d, r.order.data() + i0, i1 - i0, m.n_used, xe + i0 * d);
        if (m.weight_input)  // the gate weight scales the expert's input row (llama.cpp: ggml_mul before the experts)
          for (int64_t i = i0; i < i1; ++i) {
            const float w = r.weights[static_cast<size_t>(r.order[static_cast<size_t>(i)])];
            for (int64_t j = 0; j < d; ++j) xe[i * d + j] *= w;
          }
      },
      kGrain);
  // All experts' products of a stage in one parallel region (MoeSchedule::kUnits). Measured on
  // one Qwen3-30B-A3B MoE layer (Q4_K/Q6_K, 2 threads, 2-core machine shared with other jobs):
  // one token 0.64 ms both ways; 64 tokens 278 ms vs 1174 ms and 512 tokens 1.71 s vs 8.59 s
  // for per-expert matmuls split over output rows (kPerMatrix: one parallel region per expert
  // matrix, up to 3 x 128 per layer, each a barrier that waits for a descheduled thread).
  const kernels::MoeSchedule schedule = kernels::MoeSchedule::kUnits;
  std::vector<kernels::MoeMatmul>& jobs = sc.moe_jobs;
  auto add_jobs = [&](const kernels::MatrixView& stack, int64_t n_out, const float* x, int64_t n_in, float* y) {
    for (int e = 0; e < m.n_expert; ++e) {
      const int64_t rows = r.count(e), off = r.offsets[static_cast<size_t>(e)];
      if (rows == 0) continue;
      if (state_.on_matmul_id) state_.on_matmul_id(stack, e, m.n_expert, x + off * n_in, rows);
      jobs.push_back({kernels::expert_matrix(stack, n_out, e), x + off * n_in, rows, y + off * n_out, n_out});
    }
  };
  jobs.clear();
  float* act = g;  // the rows the down projection reads
  if (fused) {
    add_jobs(m.gate_up, 2 * f, xe, d, g);
    kernels::moe_matmuls(jobs, schedule, pool(), sc.moe_matmul);
    act = u;
    pool().parallel_for(
        n_rows,
        [&](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; ++i) {
            const float* gi = g + i * 2 * f;
            if (m.gelu) kernels::geglu(gi, gi + f, u + i * f, f);
            else kernels::swiglu(gi, gi + f, u + i * f, f);
          }
        },
        kGrain);
  } else {
    add_jobs(m.gate, f, xe, d, g);
    add_jobs(m.up, f, xe, d, u);
    kernels::moe_matmuls(jobs, schedule, pool(), sc.moe_matmul);
    pool().parallel_for(
        n_rows,
        [&](int64_t i0, int64_t i1) {
          if (m.gelu) kernels::geglu(g + i0 * f, u + i0 * f, g + i0 * f, (i1 - i0) * f);
          else kernels::swiglu(g + i0 * f, u + i0 * f, g + i0 * f, (i1 - i0) * f);
        },
        kGrain);
  }
  jobs.clear();
  add_jobs(m.down, d, act, f, ye);
  kernels::moe_matmuls(jobs, schedule, pool(), sc.moe_matmul);
  if (m.down_scale != nullptr) {
    // ggml multiplies each expert's output by its scale, then by the gate weight.
    for (int e = 0; e < m.n_expert; ++e)
      kernels::scale(ye + r.offsets[static_cast<size_t>(e)] * d, r.count(e) * d, m.down_scale[e]);
  }
  kernels::moe_positions(r, sc.moe_position);
  kernels::moe_combine(r, sc.moe_position, ye, d, out, pool(), /*weighted=*/!m.weight_input);
}

void Compute::output_head(const float* x, const float* norm, float eps, const kernels::MatrixView& w_out,
                          float* logits) {
  const int64_t d = w_out.n_in;
  std::vector<float> rows(static_cast<size_t>(batch_.n_outputs * d));
  for (int64_t i = 0; i < batch_.n_outputs; ++i)
    kernels::rms_norm(x + static_cast<int64_t>(batch_.out_ids[i]) * d, norm, rows.data() + i * d, d, eps);
  if (state_.embeddings != nullptr) std::copy(rows.begin(), rows.end(), state_.embeddings);
  if (logits == nullptr && state_.embeddings != nullptr) return;
  kernels::matmul(w_out, rows.data(), batch_.n_outputs, logits, w_out.n_out, pool(), state_.scratch.matmul);
}

}  // namespace hearth::model
