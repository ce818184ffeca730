// Elementwise, normalisation and position ops the architectures are written against.
// Formulas: ../shared/docs/architectures.md §1.1 (norms, activations), §1.2 (FFN), §1.3 (RoPE).
// These are the scalar reference implementations; SIMD versions are tested against them.
#pragma once

#include <cstdint>

#include "kernels/cpu.h"

namespace hearth::kernels {

/// RMSNorm: y[i] = x[i] / sqrt(mean_j x[j]² + eps) · w[i] over `n` elements (w may be
/// nullptr for the weightless form). The sum of squares is accumulated in double, as ggml
/// does. `x` and `y` may alias.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);

/// y[i] += x[i] for i < n.
void add_inplace(float* y, const float* x, int64_t n);

/// out[i] = silu(gate[i]) · up[i], silu(x) = x / (1 + e^-x) (SwiGLU, §1.2), on the active CPU
/// path (swiglu_path). May alias.
void swiglu(const float* gate, const float* up, float* out, int64_t n);

/// swiglu on `path`: the scalar reference takes e^-x from std::exp; the AVX2 and AVX-512 kernels
/// from the vector exponential of attention_exp_f32 (within 1 ulp of std::exp) with the same
/// division and product after it, so they differ from the scalar by a few ulp at most (tested
/// in ops_test.cpp). Throws Error if this CPU cannot run `path`.
void swiglu_path(CpuPath path, const float* gate, const float* up, float* out, int64_t n);

/// GELU with the tanh approximation (§1.1), as ggml's CPU backend evaluates it (GGML_GELU_FP16):
/// y = 0 for x <= -10 and y = x for x >= 10; otherwise x is rounded to F16, gelu of that value
/// is computed in f32 (0.5·h·(1 + tanh(√(2/π)·h·(1 + 0.044715·h²)))) and rounded to F16 (a
/// 65536-entry table, built once). NaN gives NaN. x and y may alias.
void gelu(const float* x, float* y, int64_t n);

/// out[i] = gelu(gate[i]) · up[i] with gelu as above (GeGLU, §1.2; ggml's geglu). May alias.
void geglu(const float* gate, const float* up, float* out, int64_t n);

/// Logit soft-capping (§1.1) in place: x[i] = tanh(x[i] · (1/cap)) · cap, the three steps of
/// ggml (scale, tanh, scale) in f32. cap must be non-zero.
void softcap(float* x, int64_t n, float cap);

/// y[i] *= x[i] for i < n (ggml_mul of two rows of the same length).
void mul_inplace(float* y, const float* x, int64_t n);

/// x[i] *= s in place (ggml_scale).
void scale(float* x, int64_t n, float s);

/// In-place softmax over n elements (max-subtracted, sum in double).
void softmax(float* x, int64_t n);

/// RoPE pairing (§1.3): NORM rotates adjacent pairs (x[2i], x[2i+1]) (llama, llama4);
/// NEOX rotates (x[i], x[i + n_rot/2]) (Qwen, Gemma).
enum class RopeMode { kNorm, kNeox };

/// Everything RoPE needs besides the position (§1.3).
struct RopeConfig {
  int n_rot = 0;                       ///< rotated dimensions per head (even)
  float freq_base = 10000.0f;          ///< θ base
  float freq_scale = 1.0f;             ///< 1 / linear or YaRN factor
  float attn_factor = 1.0f;            ///< magnitude multiplier m
  float ext_factor = 0.0f;             ///< YaRN extrapolation mix (0 = plain linear scaling)
  float corr_dims[2] = {0.0f, 0.0f};   ///< YaRN ramp bounds (see rope_yarn_corr_dims)
  const float* freq_factors = nullptr; ///< per-pair divisors f_i (`rope_freqs.weight`, n_rot/2)
  RopeMode mode = RopeMode::kNorm;
};

/// YaRN ramp bounds [lo, hi] for `n_rot` dims, original context `n_ctx_orig` and the β
/// thresholds (architectures.md §1.3, "corr").
void rope_yarn_corr_dims(int n_rot, int n_ctx_orig, float freq_base, float beta_fast, float beta_slow,
                         float dims[2]);

/// Fills cache[0 .. n_rot) with (cos α_i · m, sin α_i · m) pairs for position `pos`. The
/// angle is built as ggml does it: θ starts at pos and is multiplied by base^(-2/n_rot)
/// once per pair, in float.
void rope_cache(const RopeConfig& cfg, int64_t pos, float* cache);

/// Rotates the first n_rot dims of each of `n_heads` head vectors of `head_dim` floats
/// (contiguous, head-major) in place, with a cache from rope_cache().
void rope_apply(float* x, int n_heads, int head_dim, const RopeConfig& cfg, const float* cache);

}  // namespace hearth::kernels
