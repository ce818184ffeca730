#include "model/synth.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <string_view>

#include "gguf/gguf.h"
#include "kernels/threadpool.h"
#include "tokenizer/unicode.h"

namespace hearth::model {

namespace {

// Weights of the whole model when each layer's FFN has `n_ffn_experts` experts in use (all of
// them for the file size, n_expert_used for one token).
// Gemma (architectures.md §10, §11): per-layer head sizes, post-norms, gemma4's K = V global
// layers, layer_output_scale and the parallel dense + expert FFN.
uint64_t count_gemma_params(const SynthShape& s, uint64_t n_ffn_experts) {
  const bool g4 = s.arch == "gemma4";
  const uint64_t d = s.n_embd;
  uint64_t n = uint64_t{s.n_vocab} * d * (s.tied_embeddings ? 1 : 2) + d;
  bool any_global = false;
  for (uint32_t il = 0; il < s.n_layer; ++il) {
    const bool global = g4 && s.is_global(il);
    any_global = any_global || global;
    const uint64_t hd = global ? s.head_dim_global : s.head_dim, q = uint64_t{s.n_head} * hd,
                   kv = uint64_t{global ? s.n_head_kv_global : s.n_head_kv} * hd;
    const bool own_kv = il + s.n_kv_shared < s.n_layer;
    n += 4 * d + hd + d * q + q * d + 3 * d * s.layer_n_ff(il);
    if (own_kv) n += hd + d * kv * (global && s.global_k_eq_v ? 1 : 2);  // attn_k_norm, attn_k, attn_v
    if (g4) n += 1;  // layer_output_scale
    if (s.n_expert > 0) n += d * s.n_expert + 4 * d + s.n_expert + 3 * d * s.n_ff_exp * n_ffn_experts;
    if (s.n_embd_per_layer > 0) n += 2 * d * s.n_embd_per_layer + d;  // inp_gate, proj, post_norm
  }
  if (any_global) n += s.head_dim_global / 2;  // rope_freqs
  const uint64_t ple = uint64_t{s.n_embd_per_layer} * s.n_layer;
  n += ple * s.n_vocab + d * ple + s.n_embd_per_layer;  // per_layer_token_embd, _model_proj, _proj_norm
  return n;
}

uint64_t count_params(const SynthShape& s, uint64_t n_ffn_experts) {
  if (s.arch == "gemma3" || s.arch == "gemma4") return count_gemma_params(s, n_ffn_experts);
  const uint64_t d = s.n_embd, q = uint64_t{s.n_head} * s.head_dim, kv = uint64_t{s.n_head_kv} * s.head_dim;
  if (s.arch == "qwen35" || s.arch == "qwen35moe" || s.arch == "qwen3next") {
    const uint64_t c_qk = uint64_t{s.ssm_n_k_heads} * s.ssm_head_dim, c_v = uint64_t{s.ssm_n_v_heads} * s.ssm_head_dim;
    const uint64_t c_conv = 2 * c_qk + c_v;
    uint64_t n = uint64_t{s.n_vocab} * d * (s.tied_embeddings ? 1 : 2) + d;
    for (uint32_t il = 0; il < s.n_layer; ++il) {
      n += 2 * d;  // attn_norm, post_attention_norm
      if (s.recurrent_layer(il)) {
        n += d * c_conv + d * c_v + 2 * d * s.ssm_n_v_heads + c_v * d + uint64_t{s.ssm_conv_kernel} * c_conv +
             2 * uint64_t{s.ssm_n_v_heads} + s.ssm_head_dim;
      } else {
        n += d * 2 * q + 2 * d * kv + q * d + 2 * uint64_t{s.head_dim};
      }
      if (s.n_expert > 0) {
        n += d * s.n_expert + 3 * d * s.n_ff_exp * n_ffn_experts + 3 * d * s.n_ff_shexp + d;
      } else {
        n += 3 * d * s.n_ff;
      }
    }
    return n;
  }
  uint64_t per_layer = 2 * d + d * q + 2 * d * kv + q * d;
  uint64_t ffn = 0;  // llama4: feed-forward weights of all layers
  if (s.arch == "llama4") {
    const uint64_t n_moe = s.moe_step > 0 ? s.n_layer / s.moe_step : 0, fe = s.n_ff_exp;
    ffn = n_moe * (d * s.n_expert + 3 * d * fe * (n_ffn_experts + 1)) + (s.n_layer - n_moe) * 3 * d * s.n_ff;
  } else if (s.n_expert > 0) {
    per_layer += d * s.n_expert + 3 * d * s.n_ff_exp * n_ffn_experts;
  } else {
    per_layer += 3 * d * s.n_ff;
  }
  if (s.arch != "llama" && s.arch != "llama4") per_layer += 2 * s.head_dim;  // QK norms
  uint64_t n = uint64_t{s.n_vocab} * d * (s.tied_embeddings ? 1 : 2) + d + per_layer * s.n_layer + ffn;
  if (s.rope_factor > 0) n += s.head_dim / 2;
  return n;
}

}  // namespace

uint64_t SynthShape::n_params() const { return count_params(*this, n_expert); }

bool SynthShape::recurrent_layer(uint32_t il) const {
  return (arch == "qwen35" || arch == "qwen35moe" || arch == "qwen3next") && full_attention_interval > 0 &&
         (il + 1) % full_attention_interval != 0;
}

uint64_t SynthShape::n_active_params() const { return count_params(*this, n_expert > 0 ? n_expert_used : 0); }

SynthShape first_layers(const SynthShape& shape, uint32_t n_layers) {
  if (n_layers < 1 || n_layers > shape.n_layer)
    throw Error("cannot keep " + std::to_string(n_layers) + " layers of " + shape.name + ", which has " +
                std::to_string(shape.n_layer) + " (give 1 to " + std::to_string(shape.n_layer) + ")");
  SynthShape s = shape;
  if (n_layers < shape.n_layer) {
    s.name = shape.name + " (" + std::to_string(n_layers) + " of " + std::to_string(shape.n_layer) + " layers)";
    s.n_layer = n_layers;
  }
  return s;
}

const std::vector<SynthShape>& synth_shapes() {
  // name, arch, layers, d, H, H_kv, hd, ff, vocab, ctx, θ, ε, tied, llama3 rope (factor, low, high, orig),
  // experts (count, used, ff), shared expert ff, Gated DeltaNet (H_k, H_v, head dim, conv kernel),
  // full-attention interval, n_rot, llama4 MoE interleave step. Sources: architectures.md §12.1
  // (Llama), §12.2 (Qwen 3) and §12.3 (Qwen 3.5: hd 256, n_rot 64, θ 1e7, d_k = d_v = 128, H_k 16,
  // conv 4, attention every 4th layer; the 2B and 122B-A10B shapes are not confirmed there and are
  // left out).
  static const std::vector<SynthShape> shapes = {
      {"llama3.2-1b", "llama", 16, 2048, 32, 8, 64, 8192, 128256, 131072, 500000.0f, 1e-5f, true, 32.0f, 1.0f, 4.0f, 8192},
      {"llama3.2-3b", "llama", 28, 3072, 24, 8, 128, 8192, 128256, 131072, 500000.0f, 1e-5f, true, 32.0f, 1.0f, 4.0f, 8192},
      {"llama3.1-8b", "llama", 32, 4096, 32, 8, 128, 14336, 128256, 131072, 500000.0f, 1e-5f, false, 8.0f, 1.0f, 4.0f, 8192},
      {"llama3.1-70b", "llama", 80, 8192, 64, 8, 128, 28672, 128256, 131072, 500000.0f, 1e-5f, false, 8.0f, 1.0f, 4.0f, 8192},
      {"qwen3-0.6b", "qwen3", 28, 1024, 16, 8, 128, 3072, 151936, 40960, 1000000.0f, 1e-6f, true},
      {"qwen3-1.7b", "qwen3", 28, 2048, 16, 8, 128, 6144, 151936, 40960, 1000000.0f, 1e-6f, true},
      {"qwen3-4b", "qwen3", 36, 2560, 32, 8, 128, 9728, 151936, 40960, 1000000.0f, 1e-6f, true},
      {"qwen3-8b", "qwen3", 36, 4096, 32, 8, 128, 12288, 151936, 40960, 1000000.0f, 1e-6f, false},
      {"qwen3-14b", "qwen3", 40, 5120, 40, 8, 128, 17408, 151936, 40960, 1000000.0f, 1e-6f, false},
      {"qwen3-32b", "qwen3", 64, 5120, 64, 8, 128, 25600, 151936, 40960, 1000000.0f, 1e-6f, false},
      {"qwen3-30b-a3b", "qwen3moe", 48, 2048, 32, 4, 128, 6144, 151936, 40960, 1000000.0f, 1e-6f, false, 0.0f, 1.0f,
       4.0f, 8192, 128, 8, 768},
      {"qwen3-235b-a22b", "qwen3moe", 94, 4096, 64, 4, 128, 12288, 151936, 40960, 1000000.0f, 1e-6f, false, 0.0f, 1.0f,
       4.0f, 8192, 128, 8, 1536},
      // Dense twin of qwen3-30b-a3b for the MoE speed comparison (docs/performance.md): the same
      // attention and, as FFN, the 8 active experts' width (8 x 768), so the same active parameters.
      {"qwen3-30b-a3b-dense", "qwen3", 48, 2048, 32, 4, 128, 6144, 151936, 40960, 1000000.0f, 1e-6f, false},
      {"qwen3.5-0.8b", "qwen35", 24, 1024, 8, 2, 256, 3584, 248320, 262144, 1e7f, 1e-6f, true, 0.0f, 1.0f, 4.0f, 8192,
       0, 0, 0, 0, 16, 16, 128, 4, 4, 64},
      {"qwen3.5-4b", "qwen35", 32, 2560, 16, 4, 256, 9216, 248320, 262144, 1e7f, 1e-6f, true, 0.0f, 1.0f, 4.0f, 8192,
       0, 0, 0, 0, 16, 32, 128, 4, 4, 64},
      {"qwen3.5-9b", "qwen35", 32, 4096, 16, 4, 256, 12288, 248320, 262144, 1e7f, 1e-6f, false, 0.0f, 1.0f, 4.0f, 8192,
       0, 0, 0, 0, 16, 32, 128, 4, 4, 64},
      {"qwen3.5-27b", "qwen35", 64, 5120, 24, 4, 256, 17408, 248320, 262144, 1e7f, 1e-6f, false, 0.0f, 1.0f, 4.0f, 8192,
       0, 0, 0, 0, 16, 48, 128, 4, 4, 64},
      {"qwen3.5-35b-a3b", "qwen35moe", 40, 2048, 16, 2, 256, 512, 248320, 262144, 1e7f, 1e-6f, false, 0.0f, 1.0f, 4.0f,
       8192, 256, 8, 512, 512, 16, 32, 128, 4, 4, 64},
      {"qwen3.5-397b-a17b", "qwen35moe", 60, 4096, 32, 2, 256, 1024, 248320, 262144, 1e7f, 1e-6f, false, 0.0f, 1.0f,
       4.0f, 8192, 512, 10, 1024, 1024, 16, 64, 128, 4, 4, 64},
      {"qwen3-next-80b-a3b", "qwen3next", 48, 2048, 16, 2, 256, 512, 151936, 262144, 1e7f, 1e-6f, false, 0.0f, 1.0f,
       4.0f, 8192, 512, 10, 512, 512, 16, 32, 128, 4, 4, 64},
      // Llama 4: every layer MoE on Scout, every 2nd on Maverick (dense width 16384 elsewhere).
      {"llama4-scout", "llama4", 48, 5120, 40, 8, 128, 16384, 202048, 10485760, 500000.0f, 1e-5f, false, 16.0f, 1.0f,
       1.0f, 8192, 16, 1, 8192, 0, 0, 0, 0, 4, 4, 0, 1},
      {"llama4-maverick", "llama4", 48, 5120, 40, 8, 128, 16384, 202048, 1048576, 500000.0f, 1e-5f, false, 0.0f, 1.0f,
       1.0f, 8192, 128, 1, 8192, 0, 0, 0, 0, 4, 4, 0, 2},
      // Gemma (§12.4): 5 sliding layers to 1 global; Gemma 4 global layers with 512-wide heads, K = V.
      SynthShape{.name = "gemma3-1b", .arch = "gemma3", .n_layer = 26, .n_embd = 1152, .n_head = 4, .n_head_kv = 1,
                 .head_dim = 256, .n_ff = 6912, .n_vocab = 262144, .n_ctx_train = 32768, .rope_freq_base = 1000000.0f,
                 .rms_eps = 1e-6f, .n_swa = 512, .swa_period = 6},
      SynthShape{.name = "gemma3-4b", .arch = "gemma3", .n_layer = 34, .n_embd = 2560, .n_head = 8, .n_head_kv = 4,
                 .head_dim = 256, .n_ff = 10240, .n_vocab = 262144, .n_ctx_train = 131072, .rope_freq_base = 1000000.0f,
                 .rms_eps = 1e-6f, .n_swa = 1024, .swa_period = 6, .rope_linear_factor = 8.0f},
      SynthShape{.name = "gemma3-12b", .arch = "gemma3", .n_layer = 48, .n_embd = 3840, .n_head = 16, .n_head_kv = 8,
                 .head_dim = 256, .n_ff = 15360, .n_vocab = 262144, .n_ctx_train = 131072, .rope_freq_base = 1000000.0f,
                 .rms_eps = 1e-6f, .n_swa = 1024, .swa_period = 6, .rope_linear_factor = 8.0f},
      SynthShape{.name = "gemma3-27b", .arch = "gemma3", .n_layer = 62, .n_embd = 5376, .n_head = 32, .n_head_kv = 16,
                 .head_dim = 128, .n_ff = 21504, .n_vocab = 262144, .n_ctx_train = 131072, .rope_freq_base = 1000000.0f,
                 .rms_eps = 1e-6f, .n_swa = 1024, .swa_period = 6, .rope_linear_factor = 8.0f},
      SynthShape{.name = "gemma4-26b-a4b", .arch = "gemma4", .n_layer = 30, .n_embd = 2816, .n_head = 16,
                 .n_head_kv = 8, .head_dim = 256, .n_ff = 2112, .n_vocab = 262144, .n_ctx_train = 262144,
                 .rope_freq_base = 1000000.0f, .rms_eps = 1e-6f, .n_expert = 128, .n_expert_used = 8, .n_ff_exp = 704,
                 .n_swa = 1024, .swa_period = 6, .softcap = 30.0f, .n_head_kv_global = 2, .head_dim_global = 512,
                 .global_k_eq_v = true},
      SynthShape{.name = "gemma4-e2b", .arch = "gemma4", .n_layer = 35, .n_embd = 1536, .n_head = 8, .n_head_kv = 1,
                 .head_dim = 256, .n_ff = 6144, .n_vocab = 262144, .n_ctx_train = 131072, .rope_freq_base = 1000000.0f,
                 .rms_eps = 1e-6f, .n_swa = 512, .swa_period = 5, .softcap = 30.0f, .n_head_kv_global = 1,
                 .head_dim_global = 512, .n_embd_per_layer = 256, .n_kv_shared = 20, .n_ff_shared = 12288},
      SynthShape{.name = "gemma4-e4b", .arch = "gemma4", .n_layer = 42, .n_embd = 2560, .n_head = 8, .n_head_kv = 2,
                 .head_dim = 256, .n_ff = 10240, .n_vocab = 262144, .n_ctx_train = 131072, .rope_freq_base = 1000000.0f,
                 .rms_eps = 1e-6f, .n_swa = 512, .swa_period = 6, .softcap = 30.0f, .n_head_kv_global = 2,
                 .head_dim_global = 512, .n_embd_per_layer = 256, .n_kv_shared = 18},
      SynthShape{.name = "gemma4-31b", .arch = "gemma4", .n_layer = 60, .n_embd = 5376, .n_head = 32, .n_head_kv = 16,
                 .head_dim = 256, .n_ff = 21504, .n_vocab = 262144, .n_ctx_train = 262144, .rope_freq_base = 1000000.0f,
                 .rms_eps = 1e-6f, .n_swa = 1024, .swa_period = 6, .softcap = 30.0f, .n_head_kv_global = 4,
                 .head_dim_global = 512, .global_k_eq_v = true},
      // Tiny models for tests: every feature of the real ones at a few hundred KB.
      {"tiny-llama", "llama", 2, 64, 4, 2, 16, 128, 512, 2048, 500000.0f, 1e-5f, false, 8.0f, 1.0f, 4.0f, 256},
      {"tiny-qwen3", "qwen3", 2, 64, 4, 2, 32, 96, 512, 2048, 1000000.0f, 1e-6f, true},
      {"tiny-qwen3moe", "qwen3moe", 2, 64, 4, 2, 32, 192, 512, 2048, 1000000.0f, 1e-6f, false, 0.0f, 1.0f, 4.0f, 8192,
       8, 2, 32},
      {"tiny-qwen35", "qwen35", 4, 64, 4, 2, 32, 128, 512, 2048, 1e7f, 1e-6f, true, 0.0f, 1.0f, 4.0f, 8192, 0, 0, 0, 0,
       2, 4, 16, 4, 4, 8},
      {"tiny-qwen35moe", "qwen35moe", 4, 64, 4, 2, 32, 32, 512, 2048, 1e7f, 1e-6f, false, 0.0f, 1.0f, 4.0f, 8192, 8, 2,
       32, 32, 1, 2, 16, 4, 4, 8},
      {"tiny-qwen3next", "qwen3next", 4, 64, 4, 2, 32, 32, 512, 2048, 1e7f, 1e-6f, false, 0.0f, 1.0f, 4.0f, 8192, 8, 2,
       32, 32, 2, 4, 16, 4, 4, 8},
      {"tiny-llama4", "llama4", 4, 64, 4, 2, 16, 128, 512, 16384, 500000.0f, 1e-5f, false, 16.0f, 1.0f, 1.0f, 256, 8, 1,
       32, 0, 0, 0, 0, 4, 4, 0, 2},
      SynthShape{.name = "tiny-gemma3", .arch = "gemma3", .n_layer = 3, .n_embd = 64, .n_head = 2, .n_head_kv = 1,
                 .head_dim = 32, .n_ff = 128, .n_vocab = 512, .n_ctx_train = 2048, .rope_freq_base = 1000000.0f,
                 .rms_eps = 1e-6f, .n_swa = 4, .swa_period = 2, .rope_linear_factor = 8.0f},
      SynthShape{.name = "tiny-gemma4e", .arch = "gemma4", .n_layer = 6, .n_embd = 64, .n_head = 4, .n_head_kv = 2,
                 .head_dim = 16, .n_ff = 64, .n_vocab = 512, .n_ctx_train = 2048, .rope_freq_base = 1000000.0f,
                 .rms_eps = 1e-6f, .n_swa = 4, .swa_period = 2, .softcap = 30.0f, .n_head_kv_global = 1,
                 .head_dim_global = 32, .n_embd_per_layer = 8, .n_kv_shared = 2, .n_ff_shared = 128},
      SynthShape{.name = "tiny-gemma4moe", .arch = "gemma4", .n_layer = 3, .n_embd = 64, .n_head = 4, .n_head_kv = 2,
                 .head_dim = 16, .n_ff = 64, .n_vocab = 512, .n_ctx_train = 2048, .rope_freq_base = 1000000.0f,
                 .rms_eps = 1e-6f, .n_expert = 8, .n_expert_used = 2, .n_ff_exp = 32, .n_swa = 4, .swa_period = 2,
                 .softcap = 30.0f, .n_head_kv_global = 1, .head_dim_global = 32, .global_k_eq_v = true},
  };
  return shapes;
}

const SynthShape& find_synth_shape(const std::string& name) {
  std::string names;
  for (const SynthShape& s : synth_shapes()) {
    if (s.name == name) return s;
    names += (names.empty() ? "" : ", ") + s.name;
  }
  throw Error("unknown model shape '" + name + "' (known: " + names + ")");
}

uint32_t file_type_of(quant::GgmlType type) {
  using T = quant::GgmlType;
  switch (type) {
    case T::F32: return 0;
    case T::F16: return 1;
    case T::Q4_0: return 2;
    case T::Q8_0: return 7;
    case T::Q4_K: return 14;  // Q4_K_S: every matrix Q4_K
    case T::Q5_K: return 16;  // Q5_K_S
    case T::Q6_K: return 18;
    case T::BF16: return 32;
    default: throw Error("no file type for " + std::string(quant::type_name(type)));
  }
}

namespace {

// ---- deterministic random numbers ----

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Approximately N(mean, sigma): the sum of four uniforms (Irwin-Hall), rescaled to unit
// variance. Cheap enough to fill billions of weights; bounded at ±3.46 sigma.
void fill_normal(float* out, int64_t n, uint64_t seed, float mean, float sigma) {
  uint64_t state = seed;
  const float scale = sigma * std::sqrt(3.0f) / static_cast<float>(1u << 24);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t a = splitmix64(state), b = splitmix64(state);
    const int64_t s = static_cast<int64_t>(a & 0xFFFFFF) + static_cast<int64_t>((a >> 32) & 0xFFFFFF) +
                      static_cast<int64_t>(b & 0xFFFFFF) + static_cast<int64_t>((b >> 32) & 0xFFFFFF) -
                      2 * (int64_t{1} << 24);
    out[i] = mean + scale * static_cast<float>(s);
  }
}

// ---- vocabulary ----

// Public-domain English text (the Gettysburg Address, 1863, and the Preamble of the U.S.
// Constitution) from which the merges are learnt.
constexpr std::string_view kCorpus =
    "Four score and seven years ago our fathers brought forth on this continent, a new nation, "
    "conceived in Liberty, and dedicated to the proposition that all men are created equal. "
    "Now we are engaged in a great civil war, testing whether that nation, or any nation so "
    "conceived and so dedicated, can long endure. We are met on a great battle-field of that war. "
    "We have come to dedicate a portion of that field, as a final resting place for those who "
    "here gave their lives that that nation might live. It is altogether fitting and proper that "
    "we should do this. But, in a larger sense, we can not dedicate -- we can not consecrate -- we "
    "can not hallow -- this ground. The brave men, living and dead, who struggled here, have "
    "consecrated it, far above our poor power to add or detract. The world will little note, nor "
    "long remember what we say here, but it can never forget what they did here. It is for us the "
    "living, rather, to be dedicated here to the unfinished work which they who fought here have "
    "thus far so nobly advanced. It is rather for us to be here dedicated to the great task "
    "remaining before us -- that from these honored dead we take increased devotion to that cause "
    "for which they gave the last full measure of devotion -- that we here highly resolve that "
    "these dead shall not have died in vain -- that this nation, under God, shall have a new birth "
    "of freedom -- and that government of the people, by the people, for the people, shall not "
    "perish from the earth. "
    "We the People of the United States, in Order to form a more perfect Union, establish Justice, "
    "insure domestic Tranquility, provide for the common defence, promote the general Welfare, and "
    "secure the Blessings of Liberty to ourselves and our Posterity, do ordain and establish this "
    "Constitution for the United States of America.";

std::string byte_level(std::string_view text) {
  std::string out;
  for (unsigned char c : text) out += tokenizer::unicode::byte_to_unicode(c);
  return out;
}

// Splits byte-level text into UTF-8 characters (the initial BPE symbols).
std::vector<std::string> characters(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = std::min(s.size() - i, tokenizer::unicode::sequence_length(static_cast<uint8_t>(s[i])));
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

// Learns up to `max_merges` byte-level BPE merges from kCorpus: words are split at spaces
// (the space joins the following word, as GPT-2's pre-tokenizer does) and the most frequent
// adjacent pair is merged until no pair occurs twice (ties: the lexicographically smallest).
std::vector<std::pair<std::string, std::string>> learn_merges(size_t max_merges) {
  std::map<std::string, int> word_freq;
  std::string word;
  for (char c : kCorpus) {
    if (c == ' ' && !word.empty()) {
      ++word_freq[byte_level(word)];
      word = " ";
    } else {
      word += c;
    }
  }
  if (!word.empty()) ++word_freq[byte_level(word)];
  std::vector<std::pair<std::vector<std::string>, int>> words;
  for (const auto& [w, f] : word_freq) words.emplace_back(characters(w), f);

  std::vector<std::pair<std::string, std::string>> merges;
  while (merges.size() < max_merges) {
    std::map<std::pair<std::string, std::string>, int> counts;
    for (const auto& [syms, f] : words)
      for (size_t i = 0; i + 1 < syms.size(); ++i) counts[{syms[i], syms[i + 1]}] += f;
    const std::pair<std::string, std::string>* best = nullptr;
    int best_count = 1;
    for (const auto& [pair, c] : counts)
      if (c > best_count) {
        best = &pair;
        best_count = c;
      }
    if (best == nullptr) break;
    const auto merge = *best;
    merges.push_back(merge);
    for (auto& [syms, f] : words) {
      std::vector<std::string> next;
      for (size_t i = 0; i < syms.size(); ++i) {
        if (i + 1 < syms.size() && syms[i] == merge.first && syms[i + 1] == merge.second) {
          next.push_back(merge.first + merge.second);
          ++i;
        } else {
          next.push_back(syms[i]);
        }
      }
      syms = std::move(next);
    }
  }
  return merges;
}

struct SpecialToken {
  std::string text;
  int32_t type;  // tokenizer.ggml.token_type: 3 CONTROL, 4 USER_DEFINED, 5 UNUSED
};

// The special tokens at the end of the vocabulary, as the real families lay them out.
std::vector<SpecialToken> special_tokens(const SynthShape& shape, size_t budget) {
  std::vector<SpecialToken> out;
  if (shape.arch == "llama4") {
    // The first special tokens of Llama 4's vocabulary (ids 200000-200009), then reserved ones.
    out = {{"<|begin_of_text|>", 3}, {"<|end_of_text|>", 3}, {"<|fim_prefix|>", 3}, {"<|fim_middle|>", 3},
           {"<|fim_suffix|>", 3},    {"<|header_start|>", 3}, {"<|header_end|>", 3}, {"<|eom|>", 3},
           {"<|eot|>", 3},           {"<|step|>", 3}};
    const size_t n = std::min<size_t>(1024, budget / 4);
    for (size_t i = out.size(); i < n; ++i)
      out.push_back({"<|reserved_special_token_" + std::to_string(i - 10) + "|>", 3});
  } else if (shape.arch == "llama") {
    out = {{"<|begin_of_text|>", 3}, {"<|end_of_text|>", 3}, {"<|reserved_special_token_0|>", 3},
           {"<|reserved_special_token_1|>", 3}, {"<|finetune_right_pad_id|>", 3},
           {"<|reserved_special_token_2|>", 3}, {"<|start_header_id|>", 3}, {"<|end_header_id|>", 3},
           {"<|eom_id|>", 3}, {"<|eot_id|>", 3}, {"<|python_tag|>", 3}};
    const size_t n = std::min<size_t>(256, budget / 4);
    for (size_t i = out.size(); i < n; ++i)
      out.push_back({"<|reserved_special_token_" + std::to_string(i - 8) + "|>", 3});
  } else if (shape.arch == "gemma3" || shape.arch == "gemma4") {
    out = {{"<pad>", 3}, {"<eos>", 3}, {"<bos>", 3}, {"<unk>", 3}, {"<mask>", 4}, {"<start_of_turn>", 4},
           {"<end_of_turn>", 4}};
  } else {
    out = {{"<|endoftext|>", 3},     {"<|im_start|>", 3},     {"<|im_end|>", 3},         {"<|object_ref_start|>", 3},
           {"<|object_ref_end|>", 3}, {"<|box_start|>", 3},   {"<|box_end|>", 3},        {"<|quad_start|>", 3},
           {"<|quad_end|>", 3},       {"<|vision_start|>", 3}, {"<|vision_end|>", 3},    {"<|vision_pad|>", 3},
           {"<|image_pad|>", 3},      {"<|video_pad|>", 3},   {"<tool_call>", 4},        {"</tool_call>", 4},
           {"<|fim_prefix|>", 3},     {"<|fim_middle|>", 3},  {"<|fim_suffix|>", 3},     {"<|fim_pad|>", 3},
           {"<|repo_name|>", 3},      {"<|file_sep|>", 3},    {"<tool_response>", 4},    {"</tool_response>", 4},
           {"<think>", 4},            {"</think>", 4}};
    // Qwen's embedding is padded past the tokenizer: "[PAD<id>]" tokens (UNUSED).
    const size_t n_pad = shape.n_vocab >= 151936 ? 151936 - 151669 : 0;
    for (size_t i = 0; i < n_pad; ++i) out.push_back({"[PAD" + std::to_string(151669 + i) + "]", 5});
  }
  if (out.size() > budget) out.resize(budget);
  return out;
}

struct Vocabulary {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  uint32_t bos = 0, eos = 0;
};

Vocabulary build_vocabulary(const SynthShape& shape) {
  Vocabulary v;
  const std::vector<SpecialToken> specials = special_tokens(shape, shape.n_vocab / 8);
  const size_t n_normal = shape.n_vocab - specials.size();
  if (n_normal < 256) throw Error("vocabulary of " + std::to_string(shape.n_vocab) + " tokens is too small");
  std::map<std::string, int> seen;
  auto add = [&](const std::string& text, int32_t type) {
    seen[text] = static_cast<int>(v.tokens.size());
    v.tokens.push_back(text);
    v.types.push_back(type);
  };
  for (int b = 0; b < 256; ++b) add(tokenizer::unicode::byte_to_unicode(static_cast<uint8_t>(b)), 1);
  for (const auto& [l, r] : learn_merges(n_normal - 256)) {
    if (seen.count(l + r)) continue;
    v.merges.push_back(l + " " + r);
    add(l + r, 1);
  }
  // Fill the rest with word-like tokens ("Ġab", "abc", ...) that no merge produces.
  const std::string space = tokenizer::unicode::byte_to_unicode(' ');
  for (int len = 2; v.tokens.size() < n_normal; ++len) {
    std::string s(static_cast<size_t>(len), 'a');
    while (v.tokens.size() < n_normal) {
      for (const std::string& t : {space + s, s})
        if (v.tokens.size() < n_normal && !seen.count(t)) add(t, 1);
      int i = len - 1;  // next string of this length in lexicographic order
      while (i >= 0 && s[static_cast<size_t>(i)] == 'z') s[static_cast<size_t>(i--)] = 'a';
      if (i < 0) break;
      ++s[static_cast<size_t>(i)];
    }
  }
  for (const SpecialToken& s : specials) add(s.text, s.type);
  const bool llama = shape.arch == "llama" || shape.arch == "llama4";
  const bool gemma = shape.arch == "gemma3" || shape.arch == "gemma4";
  v.bos = static_cast<uint32_t>(seen.at(llama ? "<|begin_of_text|>" : gemma ? "<bos>" : "<|endoftext|>"));
  v.eos = static_cast<uint32_t>(seen.at(llama ? "<|end_of_text|>" : gemma ? "<eos>" : "<|im_end|>"));
  return v;
}

// llama3 RoPE frequency factors (architectures.md §1.3, "Llama-3 frequency factors").
std::vector<float> llama3_rope_factors(const SynthShape& s) {
  std::vector<float> f(s.head_dim / 2);
  const double L = s.rope_orig_ctx, low = s.rope_low_freq, high = s.rope_high_freq, factor = s.rope_factor;
  for (size_t i = 0; i < f.size(); ++i) {
    const double omega = std::pow(static_cast<double>(s.rope_freq_base), -2.0 * static_cast<double>(i) / s.head_dim);
    const double lambda = 2 * M_PI / omega;
    if (lambda < L / high) {
      f[i] = 1.0f;
    } else if (lambda > L / low) {
      f[i] = static_cast<float>(factor);
    } else {
      const double sigma = (L / lambda - low) / (high - low);
      f[i] = static_cast<float>(1.0 / ((1 - sigma) / factor + sigma));
    }
  }
  return f;
}

// The type a matrix of row length ne0 is stored in: the requested one, or the nearest one
// whose block size divides the row (as llama-quantize falls back for odd shapes).
quant::GgmlType matrix_type(quant::GgmlType want, int64_t ne0) {
  if (ne0 % quant::traits(want).blck_size == 0) return want;
  if (ne0 % 32 == 0) return quant::GgmlType::Q8_0;
  return quant::GgmlType::F16;
}

struct TensorPlan {
  std::string name;
  quant::GgmlType type;
  std::vector<int64_t> ne;
  float mean, sigma;             // random init
  std::vector<float> fixed;      // or fixed values (rope_freqs)
};

// Gemma's own metadata (architectures.md §10, §11), after the generic keys (which it overrides
// where Gemma 4's global layers differ).
void set_gemma_metadata(const SynthShape& s, gguf::Writer& w) {
  const std::string a = s.arch + ".";
  if (s.n_swa > 0) w.set(a + "attention.sliding_window", gguf::Value::of(s.n_swa));
  w.set(a + "rope.freq_base_swa", gguf::Value::of(s.rope_freq_base_swa));
  if (s.arch == "gemma3") {
    if (s.swa_period != 6) w.set(a + "attention.sliding_window_pattern", gguf::Value::of(s.swa_period));
    if (s.rope_linear_factor > 0) {
      w.set(a + "rope.scaling.type", gguf::Value::of("linear"));
      w.set(a + "rope.scaling.factor", gguf::Value::of(s.rope_linear_factor));
    }
    if (s.softcap > 0) w.set(a + "final_logit_softcapping", gguf::Value::of(s.softcap));
    return;
  }
  std::vector<uint32_t> kv_heads;
  std::vector<bool> sliding;
  for (uint32_t il = 0; il < s.n_layer; ++il) {
    kv_heads.push_back(s.is_global(il) ? s.n_head_kv_global : s.n_head_kv);
    sliding.push_back(!s.is_global(il));
  }
  w.set(a + "attention.head_count_kv", gguf::Value::array(kv_heads));
  w.set(a + "attention.sliding_window_pattern", gguf::Value::array(sliding));
  w.set(a + "attention.key_length", gguf::Value::of(s.head_dim_global));
  w.set(a + "attention.value_length", gguf::Value::of(s.head_dim_global));
  w.set(a + "attention.key_length_swa", gguf::Value::of(s.head_dim));
  w.set(a + "attention.value_length_swa", gguf::Value::of(s.head_dim));
  w.set(a + "rope.dimension_count", gguf::Value::of(s.head_dim_global));
  w.set(a + "rope.dimension_count_swa", gguf::Value::of(s.head_dim));
  w.set(a + "final_logit_softcapping", gguf::Value::of(s.softcap));
  w.set(a + "attention.shared_kv_layers", gguf::Value::of(s.n_kv_shared));
  w.set(a + "embedding_length_per_layer_input", gguf::Value::of(s.n_embd_per_layer));
  if (s.n_ff_shared > 0) {
    std::vector<uint32_t> n_ff;
    for (uint32_t il = 0; il < s.n_layer; ++il) n_ff.push_back(s.layer_n_ff(il));
    w.set(a + "feed_forward_length", gguf::Value::array(n_ff));
  }
}

// Appends the tensors of Gemma layer il (architectures.md §10, §11) to `plan`: matrices of
// `type` N(0, 1/sqrt(fan_in)), norms and scales F32 N(1, 0.02), the router F32.
void add_gemma_layer(const SynthShape& s, uint32_t il, quant::GgmlType type, std::vector<TensorPlan>& plan) {
  const std::string p = "blk." + std::to_string(il) + ".";
  const bool g4 = s.arch == "gemma4", global = g4 && s.is_global(il);
  const int64_t d = s.n_embd, hd = global ? s.head_dim_global : s.head_dim, q = int64_t{s.n_head} * hd,
                kv = int64_t{global ? s.n_head_kv_global : s.n_head_kv} * hd;
  auto tensor = [&](const std::string& name, std::vector<int64_t> ne) {
    const float sigma = 1.0f / std::sqrt(static_cast<float>(ne[0]));
    plan.push_back({p + name, matrix_type(type, ne[0]), std::move(ne), 0.0f, sigma, {}});
  };
  auto norm = [&](const std::string& name, int64_t n) {
    plan.push_back({p + name, quant::GgmlType::F32, {n}, 1.0f, 0.02f, {}});
  };
  const bool own_kv = il + s.n_kv_shared < s.n_layer;  // the last n_kv_shared layers have no K/V
  const int64_t ff = s.layer_n_ff(il);
  norm("attn_norm.weight", d);
  tensor("attn_q.weight", {d, q});
  if (own_kv) tensor("attn_k.weight", {d, kv});
  if (own_kv && !(global && s.global_k_eq_v)) tensor("attn_v.weight", {d, kv});
  tensor("attn_output.weight", {q, d});
  norm("attn_q_norm.weight", hd);
  if (own_kv) norm("attn_k_norm.weight", hd);
  norm("post_attention_norm.weight", d);
  norm("ffn_norm.weight", d);
  tensor("ffn_gate.weight", {d, ff});
  tensor("ffn_up.weight", {d, ff});
  tensor("ffn_down.weight", {ff, d});
  norm("post_ffw_norm.weight", d);
  if (!g4) return;
  norm("layer_output_scale.weight", 1);
  if (s.n_embd_per_layer > 0) {
    tensor("inp_gate.weight", {d, s.n_embd_per_layer});
    tensor("proj.weight", {s.n_embd_per_layer, d});
    norm("post_norm.weight", d);
  }
  if (s.n_expert > 0) {
    const int64_t ne = s.n_expert, fe = s.n_ff_exp;
    plan.push_back({p + "ffn_gate_inp.weight", quant::GgmlType::F32, {d, ne}, 0.0f,
                    1.0f / std::sqrt(static_cast<float>(d)), {}});
    norm("ffn_gate_inp.scale", d);
    norm("pre_ffw_norm_2.weight", d);
    norm("post_ffw_norm_1.weight", d);
    norm("post_ffw_norm_2.weight", d);
    tensor("ffn_gate_up_exps.weight", {d, 2 * fe, ne});
    tensor("ffn_down_exps.weight", {fe, d, ne});
    norm("ffn_down_exps.scale", ne);
  }
}

// Gemma 4's proportional RoPE factors (§11): 1 on the rotated pairs, 1e30 (no rotation) after.
std::vector<float> gemma4_rope_factors(const SynthShape& s) {
  std::vector<float> f(s.head_dim_global / 2, 1e30f);
  const size_t n_rotated = static_cast<size_t>(static_cast<float>(s.head_dim_global) * s.partial_rotary / 2.0f);
  for (size_t i = 0; i < n_rotated && i < f.size(); ++i) f[i] = 1.0f;
  return f;
}

// The metadata of a synthesized file in `w` and its tensors, in the order llama.cpp's converter
// writes them, in `plan` (matrices of `type`, or the nearest type whose block divides the row).
void build_model(const SynthShape& s, quant::GgmlType type, uint64_t seed, gguf::Writer& w,
                 std::vector<TensorPlan>& plan) {
  const bool gemma = s.arch == "gemma3" || s.arch == "gemma4";
  if (s.arch != "llama" && s.arch != "llama4" && s.arch != "qwen3" && s.arch != "qwen3moe" && s.arch != "qwen35" &&
      s.arch != "qwen35moe" && s.arch != "qwen3next" && !gemma)
    throw Error("cannot synthesize architecture '" + s.arch + "'");
  const bool next = s.arch == "qwen3next";
  const bool llama4 = s.arch == "llama4";
  const bool moe = s.arch == "qwen3moe" || s.arch == "qwen35moe" || next || llama4 || (s.arch == "gemma4" && s.n_expert > 0);
  const bool hybrid = s.arch == "qwen35" || s.arch == "qwen35moe" || next;
  if (moe && (s.n_expert == 0 || s.n_expert_used == 0 || s.n_expert_used > s.n_expert || s.n_ff_exp == 0))
    throw Error("shape " + s.name + ": a " + s.arch + " model needs 0 < experts used <= experts and an expert width");
  if (llama4 && s.moe_step == 0) throw Error("shape " + s.name + ": a llama4 model needs a MoE interleave step");
  if (hybrid && (s.ssm_n_k_heads == 0 || s.ssm_n_v_heads % s.ssm_n_k_heads != 0 || s.ssm_head_dim == 0 ||
                 s.ssm_conv_kernel == 0 || s.full_attention_interval == 0 || ((moe && !llama4) && s.n_ff_shexp == 0)))
    throw Error("shape " + s.name + ": a " + s.arch + " model needs Gated DeltaNet heads (v-heads a multiple of the " +
                "k-heads), a head dimension, a conv kernel, a full-attention interval" +
                (moe ? " and a shared expert width" : ""));
  const quant::TypeTraits& wt = quant::traits(type);
  if (wt.from_float == nullptr) throw Error(std::string("hearth cannot quantize to ") + wt.name + " yet");

  const std::string a = s.arch + ".";
  w.set("general.architecture", gguf::Value::of(s.arch));
  w.set("general.type", gguf::Value::of("model"));
  w.set("general.name", gguf::Value::of("synthetic " + s.name));
  w.set("general.description",
        gguf::Value::of("random weights in the shape of " + s.name + ", written by hearth synth (seed " +
                        std::to_string(seed) + ")"));
  w.set(a + "block_count", gguf::Value::of(s.n_layer));
  w.set(a + "context_length", gguf::Value::of(s.n_ctx_train));
  w.set(a + "embedding_length", gguf::Value::of(s.n_embd));
  w.set(a + "feed_forward_length", gguf::Value::of(s.n_ff));
  w.set(a + "attention.head_count", gguf::Value::of(s.n_head));
  w.set(a + "attention.head_count_kv", gguf::Value::of(s.n_head_kv));
  w.set(a + "rope.freq_base", gguf::Value::of(s.rope_freq_base));
  w.set(a + "attention.layer_norm_rms_epsilon", gguf::Value::of(s.rms_eps));
  w.set(a + "attention.key_length", gguf::Value::of(s.head_dim));
  w.set(a + "attention.value_length", gguf::Value::of(s.head_dim));
  if (s.arch == "llama" || llama4) {
    w.set(a + "vocab_size", gguf::Value::of(s.n_vocab));
    w.set(a + "rope.dimension_count", gguf::Value::of(s.head_dim));
  }
  if (moe) {
    w.set(a + "expert_count", gguf::Value::of(s.n_expert));
    w.set(a + "expert_used_count", gguf::Value::of(s.n_expert_used));
    w.set(a + "expert_feed_forward_length", gguf::Value::of(s.n_ff_exp));
  }
  const uint32_t n_rot = s.n_rot > 0 ? s.n_rot : s.head_dim;
  if (hybrid) {
    if (moe) w.set(a + "expert_shared_feed_forward_length", gguf::Value::of(s.n_ff_shexp));
    // IMROPE sections as Qwen's configs split the rotated pairs (32 pairs: [11, 11, 10, 0]): axis k
    // gets the ceil((P−k)/3) pairs i ≡ k (mod 3), so every pair rotates with a text position.
    const int32_t pairs = static_cast<int32_t>(n_rot / 2);
    if (!next)
      w.set(a + "rope.dimension_sections",
            gguf::Value::array(std::vector<int32_t>{(pairs + 2) / 3, (pairs + 1) / 3, pairs / 3, 0}));
    w.set(a + "ssm.conv_kernel", gguf::Value::of(s.ssm_conv_kernel));
    w.set(a + "ssm.state_size", gguf::Value::of(s.ssm_head_dim));
    w.set(a + "ssm.group_count", gguf::Value::of(s.ssm_n_k_heads));
    w.set(a + "ssm.time_step_rank", gguf::Value::of(s.ssm_n_v_heads));
    w.set(a + "ssm.inner_size", gguf::Value::of(s.ssm_n_v_heads * s.ssm_head_dim));
    w.set(a + "full_attention_interval", gguf::Value::of(s.full_attention_interval));
    w.set(a + "rope.dimension_count", gguf::Value::of(n_rot));
  }
  if (llama4) w.set(a + "interleave_moe_layer_step", gguf::Value::of(s.moe_step));
  if (gemma) set_gemma_metadata(s, w);
  w.set("general.file_type", gguf::Value::of(file_type_of(type)));
  w.set("general.quantization_version", gguf::Value::of(uint32_t{2}));

  const Vocabulary vocab = build_vocabulary(s);
  w.set("tokenizer.ggml.model", gguf::Value::of("gpt2"));
  w.set("tokenizer.ggml.pre",
        gguf::Value::of(s.arch == "llama" ? "llama-bpe" : llama4 ? "llama4" : gemma ? "default" : "qwen2"));
  w.set("tokenizer.ggml.tokens", gguf::Value::array(vocab.tokens));
  w.set("tokenizer.ggml.token_type", gguf::Value::array(vocab.types));
  w.set("tokenizer.ggml.merges", gguf::Value::array(vocab.merges));
  w.set("tokenizer.ggml.bos_token_id", gguf::Value::of(vocab.bos));
  w.set("tokenizer.ggml.eos_token_id", gguf::Value::of(vocab.eos));
  w.set("tokenizer.ggml.add_bos_token", gguf::Value::of(s.arch == "llama" || llama4 || gemma));

  // Tensors, in the order llama.cpp's converter writes them.
  const int64_t d = s.n_embd, q = int64_t{s.n_head} * s.head_dim, kv = int64_t{s.n_head_kv} * s.head_dim;
  const float s_d = 1.0f / std::sqrt(static_cast<float>(d));
  auto matrix = [&](const std::string& name, int64_t n_in, int64_t n_out, float sigma) {
    plan.push_back({name, matrix_type(type, n_in), {n_in, n_out}, 0.0f, sigma, {}});
  };
  auto experts = [&](const std::string& name, int64_t n_in, int64_t n_out, float sigma) {
    plan.push_back({name, matrix_type(type, n_in), {n_in, n_out, s.n_expert}, 0.0f, sigma, {}});
  };
  auto norm = [&](const std::string& name, int64_t n) {
    plan.push_back({name, quant::GgmlType::F32, {n}, 1.0f, 0.02f, {}});
  };
  if (s.rope_factor > 0)
    plan.push_back({"rope_freqs.weight", quant::GgmlType::F32, {s.head_dim / 2}, 0, 0, llama3_rope_factors(s)});
  bool gemma4_global = false;
  for (uint32_t il = 0; il < s.n_layer; ++il) gemma4_global = gemma4_global || (s.arch == "gemma4" && s.is_global(il));
  if (gemma4_global)
    plan.push_back({"rope_freqs.weight", quant::GgmlType::F32, {s.head_dim_global / 2}, 0, 0, gemma4_rope_factors(s)});
  if (s.n_embd_per_layer > 0) {  // gemma4 per-layer embeddings (E2B/E4B)
    const int64_t ple = int64_t{s.n_embd_per_layer} * s.n_layer;
    matrix("per_layer_token_embd.weight", ple, s.n_vocab, 1.0f / std::sqrt(static_cast<float>(s.n_embd_per_layer)));
    matrix("per_layer_model_proj.weight", d, ple, s_d);
    norm("per_layer_proj_norm.weight", s.n_embd_per_layer);
  }
  matrix("token_embd.weight", d, s.n_vocab, s_d);
  if (!s.tied_embeddings) matrix("output.weight", d, s.n_vocab, s_d);
  norm("output_norm.weight", d);
  auto f32 = [&](const std::string& name, std::vector<int64_t> ne, float mean, float sigma) {
    plan.push_back({name, quant::GgmlType::F32, std::move(ne), mean, sigma, {}});
  };
  for (uint32_t il = 0; hybrid && il < s.n_layer; ++il) {
    // qwen35 / qwen35moe (architectures.md §7.2, §9.3).
    const std::string p = "blk." + std::to_string(il) + ".";
    const int64_t hv = s.ssm_n_v_heads, c_qk = int64_t{s.ssm_n_k_heads} * s.ssm_head_dim,
                  c_v = hv * s.ssm_head_dim, c_conv = 2 * c_qk + c_v;
    norm(p + "attn_norm.weight", d);
    if (s.recurrent_layer(il)) {
      f32(p + "ssm_a", {hv}, -0.5f, 0.1f);
      f32(p + "ssm_conv1d.weight", {s.ssm_conv_kernel, c_conv}, 0.0f, 0.5f);
      f32(p + "ssm_dt.bias", {hv}, 0.0f, 0.5f);
      if (next) {
        matrix(p + "ssm_ba.weight", d, 2 * hv, s_d);  // per k-group [β (r) | α (r)]
      } else {
        matrix(p + "ssm_alpha.weight", d, hv, s_d);
        matrix(p + "ssm_beta.weight", d, hv, s_d);
      }
      matrix(p + "attn_qkv.weight", d, c_conv, s_d);
      matrix(p + "attn_gate.weight", d, c_v, s_d);
      norm(p + "ssm_norm.weight", s.ssm_head_dim);
      matrix(p + "ssm_out.weight", c_v, d, 1.0f / std::sqrt(static_cast<float>(c_v)));
    } else {
      matrix(p + "attn_q.weight", d, 2 * q, s_d);
      matrix(p + "attn_k.weight", d, kv, s_d);
      matrix(p + "attn_v.weight", d, kv, s_d);
      matrix(p + "attn_output.weight", q, d, 1.0f / std::sqrt(static_cast<float>(q)));
      norm(p + "attn_q_norm.weight", s.head_dim);
      norm(p + "attn_k_norm.weight", s.head_dim);
    }
    norm(p + "post_attention_norm.weight", d);
    if (moe) {
      f32(p + "ffn_gate_inp.weight", {d, s.n_expert}, 0.0f, s_d);
      experts(p + "ffn_gate_exps.weight", d, s.n_ff_exp, s_d);
      experts(p + "ffn_up_exps.weight", d, s.n_ff_exp, s_d);
      experts(p + "ffn_down_exps.weight", s.n_ff_exp, d, 1.0f / std::sqrt(static_cast<float>(s.n_ff_exp)));
      f32(p + "ffn_gate_inp_shexp.weight", {d, 1}, 0.0f, s_d);
      matrix(p + "ffn_gate_shexp.weight", d, s.n_ff_shexp, s_d);
      matrix(p + "ffn_up_shexp.weight", d, s.n_ff_shexp, s_d);
      matrix(p + "ffn_down_shexp.weight", s.n_ff_shexp, d, 1.0f / std::sqrt(static_cast<float>(s.n_ff_shexp)));
    } else {
      matrix(p + "ffn_gate.weight", d, s.n_ff, s_d);
      matrix(p + "ffn_up.weight", d, s.n_ff, s_d);
      matrix(p + "ffn_down.weight", s.n_ff, d, 1.0f / std::sqrt(static_cast<float>(s.n_ff)));
    }
  }
  for (uint32_t il = 0; !hybrid && il < s.n_layer; ++il) {
    if (gemma) {
      add_gemma_layer(s, il, type, plan);
      continue;
    }
    const std::string p = "blk." + std::to_string(il) + ".";
    norm(p + "attn_norm.weight", d);
    matrix(p + "attn_q.weight", d, q, s_d);
    matrix(p + "attn_k.weight", d, kv, s_d);
    matrix(p + "attn_v.weight", d, kv, s_d);
    matrix(p + "attn_output.weight", q, d, 1.0f / std::sqrt(static_cast<float>(q)));
    if (s.arch != "llama" && !llama4) {  // llama4's QK norm has no weight
      norm(p + "attn_q_norm.weight", s.head_dim);
      norm(p + "attn_k_norm.weight", s.head_dim);
    }
    norm(p + "ffn_norm.weight", d);
    const bool moe_layer = moe && (!llama4 || (il + 1) % s.moe_step == 0);
    if (moe_layer) {
      // The router stays F32 (as llama.cpp's converter and llama-quantize keep it).
      plan.push_back({p + "ffn_gate_inp.weight", quant::GgmlType::F32, {d, s.n_expert}, 0.0f, s_d, {}});
      experts(p + "ffn_gate_exps.weight", d, s.n_ff_exp, s_d);
      experts(p + "ffn_up_exps.weight", d, s.n_ff_exp, s_d);
      experts(p + "ffn_down_exps.weight", s.n_ff_exp, d, 1.0f / std::sqrt(static_cast<float>(s.n_ff_exp)));
      if (llama4) {  // the shared expert, as wide as the routed ones
        matrix(p + "ffn_gate_shexp.weight", d, s.n_ff_exp, s_d);
        matrix(p + "ffn_up_shexp.weight", d, s.n_ff_exp, s_d);
        matrix(p + "ffn_down_shexp.weight", s.n_ff_exp, d, 1.0f / std::sqrt(static_cast<float>(s.n_ff_exp)));
      }
    } else {
      matrix(p + "ffn_gate.weight", d, s.n_ff, s_d);
      matrix(p + "ffn_up.weight", d, s.n_ff, s_d);
      matrix(p + "ffn_down.weight", s.n_ff, d, 1.0f / std::sqrt(static_cast<float>(s.n_ff)));
    }
  }
}

}  // namespace

gguf::File synth_header(const SynthShape& shape, quant::GgmlType type) {
  gguf::Writer w;
  std::vector<TensorPlan> plan;
  build_model(shape, type, 1, w, plan);
  for (const TensorPlan& t : plan) w.add_tensor(t.name, t.type, t.ne);
  std::ostringstream out;
  w.begin(out);
  const std::string bytes = out.str();
  return gguf::File::from_header(std::vector<uint8_t>(bytes.begin(), bytes.end()), w.file_size(), "synth:" + shape.name);
}

void synthesize(const SynthShape& s, const SynthOptions& opt, const std::string& path) {
  gguf::Writer w;
  std::vector<TensorPlan> plan;
  build_model(s, opt.type, opt.seed, w, plan);
  for (const TensorPlan& t : plan) w.add_tensor(t.name, t.type, t.ne);

  const uint64_t total = w.file_size();
  w.begin(path);
  kernels::ThreadPool pool(opt.n_threads);
  uint64_t written = 0;
  for (const TensorPlan& t : plan) {
    int64_t rows = 1;  // rows of ne0 elements: the product of the other dimensions
    for (size_t i = 1; i < t.ne.size(); ++i) rows *= t.ne[i];
    const int64_t ne0 = t.ne[0];
    const quant::TypeTraits& tt = quant::traits(t.type);
    const size_t row_bytes = quant::row_size(t.type, ne0);
    if (!t.fixed.empty()) {
      w.write_data({reinterpret_cast<const uint8_t*>(t.fixed.data()), t.fixed.size() * sizeof(float)});
      written += t.fixed.size() * sizeof(float);
      continue;
    }
    // Chunks of rows (~4 MiB of floats), rows filled in parallel, each from its own seed.
    const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 20) / ne0);
    std::vector<uint8_t> bytes(static_cast<size_t>(chunk) * row_bytes);
    const uint64_t tensor_seed = hash_name(t.name) ^ (opt.seed * 0x9E3779B97F4A7C15ull);
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
      const int64_t nr = std::min(chunk, rows - r0);
      pool.parallel_for(nr, [&](int64_t b, int64_t e) {
        std::vector<float> row(static_cast<size_t>(ne0));
        for (int64_t r = b; r < e; ++r) {
          uint64_t seed = tensor_seed + static_cast<uint64_t>(r0 + r) * 0xD1B54A32D192ED03ull;
          fill_normal(row.data(), ne0, splitmix64(seed), t.mean, t.sigma);
          tt.from_float(row.data(), bytes.data() + static_cast<size_t>(r) * row_bytes, ne0);
        }
      });
      w.write_data({bytes.data(), static_cast<size_t>(nr) * row_bytes});
      written += static_cast<uint64_t>(nr) * row_bytes;
    }
    if (opt.progress) opt.progress(written, total);
  }
  w.finish();
}

}  // namespace hearth::model
