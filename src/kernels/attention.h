// Scaled dot-product attention of query rows over the cells of an F16 KV cache.
// Source: ../shared/docs/architectures.md §1.4. Numerics follow llama.cpp's non-flash CPU
// path: Q is rounded to F16 for the Q·K dot (K is F16), the scores are scaled and
// soft-maxed in F32 (sum in double), and the probabilities are rounded to F16 for P·V.
#pragma once

#include <cstdint>

#include "kernels/threadpool.h"

namespace hearth::kernels {

/// One layer of an F16 KV cache: cell c holds K for all KV heads at k + c·k_stride
/// (n_head_kv · head_dim_k halves, head-major) and V at v + c·v_stride.
struct KvLayerF16 {
  const uint16_t* k = nullptr;
  const uint16_t* v = nullptr;
  int64_t k_stride = 0;  ///< halves between consecutive cells
  int64_t v_stride = 0;
};

/// The cache cells one query token attends to (causal and window masks already applied).
struct AttnSpan {
  const int32_t* cells = nullptr;
  int32_t n = 0;
};

/// Shapes of one attention call.
struct AttnShape {
  int n_head = 0;      ///< query heads H
  int n_head_kv = 0;   ///< KV heads H_kv; query head h reads KV head h / (H / H_kv)
  int head_dim_k = 0;  ///< Q/K head dim
  int head_dim_v = 0;  ///< V head dim
  float scale = 1.0f;  ///< multiplier on Q·K (1/sqrt(head_dim_k) unless the arch says otherwise)
};

/// out[t][h·hd_v + d] = Σ_j softmax_j(scale · q_t,h · K_j) · V_j[d] over the cells of
/// spans[t]. q is [n_tokens][n_head·hd_k] f32, out is [n_tokens][n_head·hd_v] f32.
/// A token with an empty span gets zeros.
void attention_f16(const float* q, int64_t n_tokens, const AttnShape& shape, const KvLayerF16& kv,
                   const AttnSpan* spans, float* out, const ThreadPool& pool);

}  // namespace hearth::kernels
