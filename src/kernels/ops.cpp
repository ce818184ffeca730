#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "hearth/error.h"
#include "kernels/attention.h"
#include "quant/fp16.h"

namespace hearth::kernels {

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  if (w != nullptr) {
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
  }
}

void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

namespace {
void swiglu_on(CpuPath path, const float* gate, const float* up, float* out, int64_t n) {
#if defined(__x86_64__)
  if (path == CpuPath::avx512) return avx512::swiglu_f32(gate, up, out, n);
  if (path == CpuPath::avx2) return avx2::swiglu_f32(gate, up, out, n);
#endif
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}
}  // namespace

void swiglu_path(CpuPath path, const float* gate, const float* up, float* out, int64_t n) {
  if (!cpu_supports(path))
    throw Error(std::string("this CPU cannot run the ") + cpu_path_name(path) + " kernels (it has: " +
                cpu_feature_names(cpu_features()) + ")");
  swiglu_on(path, gate, up, out, n);
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  swiglu_on(active_cpu_path(), gate, up, out, n);
}

namespace {

// ggml's f32 GELU (tanh approximation) of one value; the table below rounds it to F16.
float gelu_f32(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f, kCoefA = 0.044715f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCoefA * x * x)));
}

// table[h] = F16 bits of gelu_f32(value of half h), as ggml_table_gelu_f16.
const uint16_t* gelu_table() {
  static const std::vector<uint16_t> table = [] {
    std::vector<uint16_t> t(65536);
    for (uint32_t h = 0; h < 65536; ++h)
      t[h] = quant::fp32_to_fp16(gelu_f32(quant::fp16_to_fp32(static_cast<uint16_t>(h))));
    return t;
  }();
  return table.data();
}

float gelu_one(float x, const uint16_t* table) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  return quant::fp16_to_fp32(table[quant::fp32_to_fp16(x)]);
}

}  // namespace

void gelu(const float* x, float* y, int64_t n) {
  const uint16_t* table = gelu_table();
  for (int64_t i = 0; i < n; ++i) y[i] = gelu_one(x[i], table);
}

void geglu(const float* gate, const float* up, float* out, int64_t n) {
  const uint16_t* table = gelu_table();
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g <= -10.0f ? 0.0f : gelu_one(g, table) * up[i];  // ggml writes 0 there, not 0·up
  }
}

void softcap(float* x, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i] * inv) * cap;
}

void mul_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] *= x[i];
}

void scale(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  const float mx = *std::max_element(x, x + n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void rope_yarn_corr_dims(int n_rot, int n_ctx_orig, float freq_base, float beta_fast, float beta_slow,
                         float dims[2]) {
  auto corr = [&](float beta) {
    return static_cast<float>(n_rot) * std::log(static_cast<float>(n_ctx_orig) / (beta * 2.0f * static_cast<float>(M_PI))) /
           (2.0f * std::log(freq_base));
  };
  dims[0] = std::max(0.0f, std::floor(corr(beta_fast)));
  dims[1] = std::min(static_cast<float>(n_rot - 1), std::ceil(corr(beta_slow)));
}

void rope_cache(const RopeConfig& cfg, int64_t pos, float* cache) {
  const float theta_scale = std::pow(cfg.freq_base, -2.0f / static_cast<float>(cfg.n_rot));
  float theta = static_cast<float>(pos);
  for (int i0 = 0; i0 < cfg.n_rot; i0 += 2) {
    const float ff = cfg.freq_factors != nullptr ? cfg.freq_factors[i0 / 2] : 1.0f;
    const float theta_extrap = theta / ff;
    const float theta_interp = cfg.freq_scale * theta_extrap;
    float angle = theta_interp;
    float mscale = cfg.attn_factor;
    if (cfg.ext_factor != 0.0f) {
      const float y = (static_cast<float>(i0) / 2.0f - cfg.corr_dims[0]) / std::max(0.001f, cfg.corr_dims[1] - cfg.corr_dims[0]);
      const float ramp_mix = (1.0f - std::min(1.0f, std::max(0.0f, y))) * cfg.ext_factor;
      angle = theta_interp * (1.0f - ramp_mix) + theta_extrap * ramp_mix;
      mscale *= 1.0f + 0.1f * std::log(1.0f / cfg.freq_scale);
    }
    cache[i0] = std::cos(angle) * mscale;
    cache[i0 + 1] = std::sin(angle) * mscale;
    theta *= theta_scale;
  }
}

void rope_apply(float* x, int n_heads, int head_dim, const RopeConfig& cfg, const float* cache) {
  const int half = cfg.n_rot / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float c = cache[2 * i], s = cache[2 * i + 1];
      float& a = cfg.mode == RopeMode::kNorm ? v[2 * i] : v[i];
      float& b = cfg.mode == RopeMode::kNorm ? v[2 * i + 1] : v[i + half];
      const float x0 = a, x1 = b;
      a = x0 * c - x1 * s;
      b = x0 * s + x1 * c;
    }
  }
}

}  // namespace hearth::kernels
