// Dequantizers and reference quantizers. Source: ../shared/docs/formats.md §2 and §3.
// The arithmetic (operation order, f32 intermediates, nint vs roundf) follows the formulas of
// formats.md so that results are bit-exact with ggml's reference routines.
#include "quant/convert.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "hearth/error.h"
#include "quant/blocks.h"
#include "quant/convert_util.h"
#include "quant/fp16.h"

namespace hearth::quant {
namespace {

using detail::block_count;
using detail::clamp_int;
using detail::kGroupMaxEps;
using detail::signed_absmax;

// ---------------------------------------------------------------------------------------------
// Building blocks of the K-quant searches (formats.md §3.3)

/// Asymmetric scale + min search, `make_qkx2_quants` (formats.md §3.3 item 2).
/// Fits x[i] ~ scale*L[i] - *the_min with L[i] in [0, nmax] under weights w, trying
/// iscale = (rmin + rdelta*t + nmax)/(max - min) for t = 0..nstep after the plain
/// nmax/(max - min) candidate; keeps the smallest weighted squared (or absolute) error.
/// Writes the best codes to L (n entries), uses Laux (n entries) as scratch; returns the scale
/// and stores the (non-negative) min in *the_min.
float make_qkx2_quants(int n, int nmax, const float* x, const float* w, uint8_t* L,
                       float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                       bool use_mad) {
  float min = x[0];
  float max = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, uint8_t{0});
    *the_min = -min;
    return 0.0f;
  }
  const auto error_of = [use_mad](float diff) { return use_mad ? std::fabs(diff) : diff * diff; };

  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(clamp_int(nint(iscale * (x[i] - min)), 0, nmax));
    best_error += w[i] * error_of(scale * L[i] + min - x[i]);
  }
  for (int t = 0; t <= nstep; ++t) {
    iscale = (rmin + rdelta * t + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nint(iscale * (x[i] - min)), 0, nmax);
      Laux[i] = static_cast<uint8_t>(l);
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (!(D > 0)) continue;  // degenerate (all codes equal) or NaN
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float cur_error = 0;
    for (int i = 0; i < n; ++i) cur_error += w[i] * error_of(this_scale * Laux[i] + this_min - x[i]);
    if (cur_error < best_error) {
      std::copy(Laux, Laux + n, L);
      best_error = cur_error;
      scale = this_scale;
      min = this_min;
    }
  }
  *the_min = -min;
  return scale;
}

/// Symmetric search, `make_qx_quants` with weights x^2 (formats.md §3.3 item 1).
/// Codes L[i] = clamp(nint(iscale*x[i]), -nmax, nmax-1) + nmax; starts from
/// iscale = -nmax/max (max = signed max-magnitude element) and tries
/// iscale = -(nmax + 0.1*t)/max for t = -9..9, keeping the candidate that maximizes
/// (sum w x l)^2 / sum w l^2. Returns the least-squares scale (x ~ scale*(L - nmax)).
float make_qx_quants(int n, int nmax, const float* x, uint8_t* L) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, uint8_t{0});
    return 0.0f;
  }
  const auto code = [nmax](float v) { return clamp_int(nint(v), -nmax, nmax - 1); };
  float iscale = -nmax / max;
  float sum_lx = 0, sum_l2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = code(iscale * x[i]);
    L[i] = static_cast<uint8_t>(l + nmax);
    const float w = x[i] * x[i];
    sum_lx += w * x[i] * l;
    sum_l2 += w * l * l;
  }
  float scale = sum_l2 != 0 ? sum_lx / sum_l2 : 0.0f;
  float best = scale * sum_lx;
  for (int t = -9; t <= 9; ++t) {
    if (t == 0) continue;
    iscale = -(nmax + 0.1f * t) / max;
    sum_lx = sum_l2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = code(iscale * x[i]);
      const float w = x[i] * x[i];
      sum_lx += w * x[i] * l;
      sum_l2 += w * l * l;
    }
    if (sum_l2 > 0 && sum_lx * sum_lx > best * sum_l2) {
      for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(code(iscale * x[i]) + nmax);
      scale = sum_lx / sum_l2;
      best = scale * sum_lx;
    }
  }
  return scale;
}

/// Symmetric search with refinement, `make_q3_quants(n, nmax, x, L, do_rmse = true)` (the Q3_K
/// reference quantizer, formats.md §3.4 "symmetric search with 5 refinement passes"): starts
/// from l_i = clamp(nint(-nmax/max * x_i), -nmax, nmax-1) (max = signed max-magnitude element)
/// and, with weights x^2, up to 5 times proposes for each i in turn
/// l_i' = clamp(nint(x_i * S'll / S'xl), -nmax, nmax-1) (sums without i) and keeps it if it
/// increases (sum w x l)^2 / sum w l^2; stops early after a pass without change.
/// Writes L[i] = l_i + nmax (all 0 for an all-zero group) and returns the least-squares scale
/// sum w x l / sum w l^2 (0 if that denominator is 0).
float make_q3_quants(int n, int nmax, const float* x, uint8_t* L) {
  constexpr int kMaxN = 16;  // Q3_K sub-blocks
  if (n > kMaxN) throw Error("make_q3_quants: group of " + std::to_string(n) + " > 16 elements");
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, uint8_t{0});
    return 0.0f;
  }
  const float iscale = -nmax / max;
  int l_signed[kMaxN];
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nint(iscale * x[i]), -nmax, nmax - 1);
    l_signed[i] = l;
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int pass = 0; pass < 5; ++pass) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * l_signed[i];
      if (!(slx > 0)) continue;
      float sl2 = suml2 - w * l_signed[i] * l_signed[i];
      const int new_l = clamp_int(nint(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (new_l == l_signed[i]) continue;
      slx += w * x[i] * new_l;
      sl2 += w * new_l * new_l;
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        l_signed[i] = new_l;
        sumlx = slx;
        suml2 = sl2;
        ++n_changed;
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(l_signed[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/// Stores 2-bit codes L[0..256) (each 0..3) into the 64 bytes of a Q2_K / Q3_K / TQ2_0 block:
/// element e = 128h + 32k + l goes to bits 2k..2k+1 of qs[32h + l] (formats.md §2.3).
void pack_2bit_codes(const uint8_t* L, uint8_t* qs) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* c = L + 128 * h + l;
      qs[32 * h + l] = static_cast<uint8_t>(c[0] | (c[32] << 2) | (c[64] << 4) | (c[96] << 6));
    }
}

/// The common part of the Q4_K and Q5_K quantizers (formats.md §3.4, "no imatrix"): for one
/// super-block of 256 floats, runs the make_qkx2 search per 32-element sub-block with weights
/// sqrt(sum x^2/32) + |x|, packs the sub-block scales and mins as 6-bit integers
/// (nint(63*v/max_v), at most 63) relative to f16 super-scales d = max_scale/63 and
/// dmin = max_min/63, then requantizes every element with the decoded scales
/// (L = clamp(nint((x + dmin*m_j)/(d*sc_j)), 0, nmax)). Writes d, dmin, scales[12] and the
/// 256 codes L (0..nmax, element order).
void quantize_scale_min_superblock(const float* x, int nmax, float rmin, int nstep, uint16_t* d_out,
                                   uint16_t* dmin_out, uint8_t* packed_scales, uint8_t* L) {
  constexpr int kSub = 32;
  float scales[8];
  float mins[8];
  float weights[kSub];
  uint8_t Laux[kSub];
  float max_scale = 0;
  float max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + kSub * j;
    float sum_x2 = 0;
    for (int l = 0; l < kSub; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / kSub);
    for (int l = 0; l < kSub; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = make_qkx2_quants(kSub, nmax, xs, weights, L + kSub * j, &mins[j], Laux, rmin, 0.1f,
                                 nstep, false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8];
  uint8_t lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<uint8_t>(clamp_int(nint(inv_scale * scales[j]), 0, 63));
    lm[j] = static_cast<uint8_t>(clamp_int(nint(inv_min * mins[j]), 0, 63));
  }
  pack_scale_min_k4(ls, lm, packed_scales);
  *d_out = fp32_to_fp16(max_scale / 63.f);
  *dmin_out = fp32_to_fp16(max_min / 63.f);

  const float d = fp16_to_fp32(*d_out);
  const float dmin = fp16_to_fp32(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    const float dj = d * ls[j];
    if (dj == 0) continue;  // scale 0: every element decodes to -dmin*m_j; keep the search codes
    const float mj = dmin * lm[j];
    for (int l = 0; l < kSub; ++l)
      L[kSub * j + l] = static_cast<uint8_t>(clamp_int(nint((x[kSub * j + l] + mj) / dj), 0, nmax));
  }
}

/// Dequantizes one Q4_K (kHigh = false) or Q5_K (kHigh = true, fifth bit from qh) super-block:
/// x = d*sc_j*q - dmin*m_j (formats.md §2.3).
template <bool kHigh>
void dequantize_scale_min_superblock(uint16_t d16, uint16_t dmin16, const uint8_t* scales,
                                     const uint8_t* qs, const uint8_t* qh, float* y) {
  const float d = fp16_to_fp32(d16);
  const float dmin = fp16_to_fp32(dmin16);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    unpack_scale_min_k4(scales, j, &sc, &m);
    const float d1 = d * sc;
    const float m1 = dmin * m;
    const uint8_t* q = qs + 32 * (j / 2);
    const int shift = (j & 1) * 4;
    for (int l = 0; l < 32; ++l) {
      int code = (q[l] >> shift) & 0x0F;
      if constexpr (kHigh) code |= ((qh[l] >> j) & 1) << 4;
      y[32 * j + l] = d1 * code - m1;
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Plain types (formats.md §2.1)

void to_float_f32(const void* src, float* dst, int64_t n) {
  block_count(n, 1, "F32");
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void to_float_f16(const void* src, float* dst, int64_t n) {
  block_count(n, 1, "F16");
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
}

void to_float_bf16(const void* src, float* dst, int64_t n) {
  block_count(n, 1, "BF16");
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
}

void from_float_f32(const float* src, void* dst, int64_t n) {
  block_count(n, 1, "F32");
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void from_float_f16(const float* src, void* dst, int64_t n) {
  block_count(n, 1, "F16");
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
}

void from_float_bf16(const float* src, void* dst, int64_t n) {
  block_count(n, 1, "BF16");
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
}

// ---------------------------------------------------------------------------------------------
// Dequantizers (formats.md §2.2, §2.3)

void to_float_q4_0(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK4_0, "Q4_0");
  const auto* b = static_cast<const block_q4_0*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK4_0) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < 16; ++j) {
      dst[j] = static_cast<float>((b[i].qs[j] & 0x0F) - 8) * d;
      dst[j + 16] = static_cast<float>((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void to_float_q4_1(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK4_1, "Q4_1");
  const auto* b = static_cast<const block_q4_1*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK4_1) {
    const float d = fp16_to_fp32(b[i].d);
    const float m = fp16_to_fp32(b[i].m);
    for (int j = 0; j < 16; ++j) {
      dst[j] = static_cast<float>(b[i].qs[j] & 0x0F) * d + m;
      dst[j + 16] = static_cast<float>(b[i].qs[j] >> 4) * d + m;
    }
  }
}

void to_float_q5_0(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK5_0, "Q5_0");
  const auto* b = static_cast<const block_q5_0*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK5_0) {
    const float d = fp16_to_fp32(b[i].d);
    const uint32_t qh = q5_high_bits(b[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (b[i].qs[j] & 0x0F) | static_cast<int>((qh >> j) & 1) << 4;
      const int q1 = (b[i].qs[j] >> 4) | static_cast<int>((qh >> (j + 16)) & 1) << 4;
      dst[j] = static_cast<float>(q0 - 16) * d;
      dst[j + 16] = static_cast<float>(q1 - 16) * d;
    }
  }
}

void to_float_q5_1(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK5_1, "Q5_1");
  const auto* b = static_cast<const block_q5_1*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK5_1) {
    const float d = fp16_to_fp32(b[i].d);
    const float m = fp16_to_fp32(b[i].m);
    const uint32_t qh = q5_high_bits(b[i].qh);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (b[i].qs[j] & 0x0F) | static_cast<int>((qh >> j) & 1) << 4;
      const int q1 = (b[i].qs[j] >> 4) | static_cast<int>((qh >> (j + 16)) & 1) << 4;
      dst[j] = static_cast<float>(q0) * d + m;
      dst[j + 16] = static_cast<float>(q1) * d + m;
    }
  }
}

void to_float_q8_1(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK8_1, "Q8_1");
  const auto* b = static_cast<const block_q8_1*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK8_1) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < QK8_1; ++j) dst[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void to_float_q2_K(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "Q2_K");
  const auto* b = static_cast<const block_q2_K*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK_K) {
    const float d = fp16_to_fp32(b[i].d);
    const float dmin = fp16_to_fp32(b[i].dmin);
    // Element e = 128h + 32k + l (sub-block e/16 = 8h + 2k + l/16).
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 4; ++k)
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = b[i].scales[8 * h + 2 * k + half];
          const float dl = d * (sc & 0x0F);
          const float ml = dmin * (sc >> 4);
          for (int l = 16 * half; l < 16 * half + 16; ++l) {
            const int q = (b[i].qs[32 * h + l] >> (2 * k)) & 3;
            dst[128 * h + 32 * k + l] = dl * static_cast<float>(q) - ml;
          }
        }
  }
}

void to_float_q3_K(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "Q3_K");
  const auto* b = static_cast<const block_q3_K*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK_K) {
    const float d = fp16_to_fp32(b[i].d);
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 4; ++k)
        for (int half = 0; half < 2; ++half) {
          const float dl = d * static_cast<float>(q3_K_scale(b[i].scales, 8 * h + 2 * k + half));
          for (int l = 16 * half; l < 16 * half + 16; ++l) {
            const int q2 = (b[i].qs[32 * h + l] >> (2 * k)) & 3;
            const int hb = (b[i].hmask[l] >> (4 * h + k)) & 1;
            dst[128 * h + 32 * k + l] = dl * static_cast<float>(q2 - (hb ? 0 : 4));
          }
        }
  }
}

void to_float_q8_0(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK8_0, "Q8_0");
  const auto* b = static_cast<const block_q8_0*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK8_0) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < QK8_0; ++j) dst[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void to_float_q4_K(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "Q4_K");
  const auto* b = static_cast<const block_q4_K*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK_K)
    dequantize_scale_min_superblock<false>(b[i].d, b[i].dmin, b[i].scales, b[i].qs, nullptr, dst);
}

void to_float_q5_K(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "Q5_K");
  const auto* b = static_cast<const block_q5_K*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK_K)
    dequantize_scale_min_superblock<true>(b[i].d, b[i].dmin, b[i].scales, b[i].qs, b[i].qh, dst);
}

void to_float_q6_K(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "Q6_K");
  const auto* b = static_cast<const block_q6_K*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK_K) {
    const float d = fp16_to_fp32(b[i].d);
    // Element e = 128h + 32g + l; its scale is scales[e/16] = scales[8h + 2g + l/16].
    for (int h = 0; h < 2; ++h)
      for (int g = 0; g < 4; ++g)
        for (int half = 0; half < 2; ++half) {
          const float sc = d * b[i].scales[8 * h + 2 * g + half];
          for (int l = 16 * half; l < 16 * half + 16; ++l)
            dst[128 * h + 32 * g + l] = sc * q6_K_code(b[i], h, g, l);
        }
  }
}

void to_float_q8_K(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "Q8_K");
  const auto* b = static_cast<const block_q8_K*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK_K)
    for (int j = 0; j < QK_K; ++j) dst[j] = b[i].d * b[i].qs[j];
}

// ---------------------------------------------------------------------------------------------
// Quantizers (formats.md §3.1, §3.2, §3.4)

void from_float_q4_0(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK4_0, "Q4_0");
  auto* b = static_cast<block_q4_0*>(dst);
  for (int64_t i = 0; i < nb; ++i, src += QK4_0) {
    const float max = signed_absmax(src, QK4_0);
    const float d = max / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    // q = min(15, trunc(x*id + 8.5)); x*id lies in [-8, 8], the comparisons also keep NaN inputs
    // away from an undefined float->int conversion.
    const auto code = [id](float x) {
      const float v = x * id + 8.5f;
      return v >= 0.0f ? static_cast<int>(std::min(v, 15.0f)) : 0;
    };
    for (int j = 0; j < 16; ++j)
      b[i].qs[j] = static_cast<uint8_t>(code(src[j]) | (code(src[j + 16]) << 4));
  }
}

void from_float_q4_1(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK4_1, "Q4_1");
  auto* b = static_cast<block_q4_1*>(dst);
  for (int64_t i = 0; i < nb; ++i, src += QK4_1) {
    float min = std::numeric_limits<float>::max();
    float max = -std::numeric_limits<float>::max();
    for (int j = 0; j < QK4_1; ++j) {
      if (src[j] < min) min = src[j];
      if (src[j] > max) max = src[j];
    }
    const float d = (max - min) / 15;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    b[i].m = fp32_to_fp16(min);
    // q = min(15, trunc((x - min)*id + 0.5)); (x - min)*id lies in [0, 15].
    const auto code = [id, min](float x) {
      const float v = (x - min) * id + 0.5f;
      return v >= 0.0f ? static_cast<int>(std::min(v, 15.0f)) : 0;
    };
    for (int j = 0; j < 16; ++j)
      b[i].qs[j] = static_cast<uint8_t>(code(src[j]) | (code(src[j + 16]) << 4));
  }
}

void from_float_q5_0(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK5_0, "Q5_0");
  auto* b = static_cast<block_q5_0*>(dst);
  for (int64_t i = 0; i < nb; ++i, src += QK5_0) {
    const float max = signed_absmax(src, QK5_0);
    const float d = max / -16;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    // q = min(31, trunc(x*id + 16.5)); x*id lies in [-16, 16].
    const auto code = [id](float x) {
      const float v = x * id + 16.5f;
      return v >= 0.0f ? static_cast<int>(std::min(v, 31.0f)) : 0;
    };
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = code(src[j]);
      const int q1 = code(src[j + 16]);
      b[i].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>(q0 >> 4) << j | static_cast<uint32_t>(q1 >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; ++k) b[i].qh[k] = static_cast<uint8_t>(qh >> (8 * k));
  }
}

void from_float_q5_1(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK5_1, "Q5_1");
  auto* b = static_cast<block_q5_1*>(dst);
  for (int64_t i = 0; i < nb; ++i, src += QK5_1) {
    float min = std::numeric_limits<float>::max();
    float max = -std::numeric_limits<float>::max();
    for (int j = 0; j < QK5_1; ++j) {
      if (src[j] < min) min = src[j];
      if (src[j] > max) max = src[j];
    }
    const float d = (max - min) / 31;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    b[i].m = fp32_to_fp16(min);
    // q = trunc((x - min)*id + 0.5); (x - min)*id lies in [0, 31], so ggml needs no clamp: the
    // clamp here only keeps non-finite inputs defined.
    const auto code = [id, min](float x) {
      const float v = (x - min) * id + 0.5f;
      return v >= 0.0f ? static_cast<int>(std::min(v, 31.0f)) : 0;
    };
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = code(src[j]);
      const int q1 = code(src[j + 16]);
      b[i].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>(q0 >> 4) << j | static_cast<uint32_t>(q1 >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; ++k) b[i].qh[k] = static_cast<uint8_t>(qh >> (8 * k));
  }
}

void from_float_q8_1(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK8_1, "Q8_1");
  auto* b = static_cast<block_q8_1*>(dst);
  for (int64_t i = 0; i < nb; ++i, src += QK8_1) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_1; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < QK8_1; ++j) {
      b[i].qs[j] = static_cast<int8_t>(clamp_int(static_cast<int>(std::roundf(src[j] * id)), -127, 127));
      sum += b[i].qs[j];
    }
    b[i].s = fp32_to_fp16(static_cast<float>(sum) * d);
  }
}

void from_float_q2_K(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "Q2_K");
  auto* b = static_cast<block_q2_K*>(dst);
  uint8_t L[QK_K];
  uint8_t Laux[16];
  float weights[16];
  float scales[QK_K / 16];
  float mins[QK_K / 16];
  constexpr float kQ4Scale = 15.f;
  for (int64_t i = 0; i < nb; ++i, src += QK_K) {
    float max_scale = 0;
    float max_min = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(src[16 * j + l]);
      scales[j] = make_qkx2_quants(16, 3, src + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15,
                                   /*use_mad=*/true);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    // 4-bit scales (low nibbles) and mins (high nibbles): nint(15*v/max_v). The search never
    // returns a negative scale in practice; the byte arithmetic below is ggml's in any case.
    if (max_scale > 0) {
      const float iscale = kQ4Scale / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) b[i].scales[j] = static_cast<uint8_t>(nint(iscale * scales[j]));
      b[i].d = fp32_to_fp16(max_scale / kQ4Scale);
    } else {
      std::memset(b[i].scales, 0, sizeof(b[i].scales));
      b[i].d = fp32_to_fp16(0.f);
    }
    if (max_min > 0) {
      const float iscale = kQ4Scale / max_min;
      for (int j = 0; j < QK_K / 16; ++j)
        b[i].scales[j] = static_cast<uint8_t>(b[i].scales[j] | (nint(iscale * mins[j]) << 4));
      b[i].dmin = fp32_to_fp16(max_min / kQ4Scale);
    } else {
      b[i].dmin = fp32_to_fp16(0.f);
    }
    // Requantize with the decoded scales and mins (formats.md §3.3 item 4).
    const float d = fp16_to_fp32(b[i].d);
    const float dmin = fp16_to_fp32(b[i].dmin);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float dl = d * (b[i].scales[j] & 0x0F);
      if (dl == 0) continue;  // keep the search codes of a zero-scale sub-block
      const float ml = dmin * (b[i].scales[j] >> 4);
      for (int l = 0; l < 16; ++l)
        L[16 * j + l] = static_cast<uint8_t>(clamp_int(nint((src[16 * j + l] + ml) / dl), 0, 3));
    }
    pack_2bit_codes(L, b[i].qs);
  }
}

void from_float_q3_K(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "Q3_K");
  auto* b = static_cast<block_q3_K*>(dst);
  uint8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t i = 0; i < nb; ++i, src += QK_K) {
    float max_scale = 0;
    float amax = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
      scales[j] = make_q3_quants(16, 4, src + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > amax) {
        amax = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    // 6-bit signed scales l = clamp(nint(-32/max_scale * s), -32, 31), stored as l + 32: low
    // nibbles in scales[0..7] (j < 8 low, j >= 8 high nibble of scales[j-8]), the top two bits
    // in scales[8 + j%4] at bit 2(j/4) (formats.md §2.3).
    std::memset(b[i].scales, 0, sizeof(b[i].scales));
    if (max_scale != 0) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) {
        const int l = clamp_int(nint(iscale * scales[j]), -32, 31) + 32;
        if (j < 8)
          b[i].scales[j] = static_cast<uint8_t>(l & 0x0F);
        else
          b[i].scales[j - 8] = static_cast<uint8_t>(b[i].scales[j - 8] | (l & 0x0F) << 4);
        b[i].scales[8 + j % 4] = static_cast<uint8_t>(b[i].scales[8 + j % 4] | (l >> 4) << (2 * (j / 4)));
      }
      b[i].d = fp32_to_fp16(1 / iscale);
    } else {
      b[i].d = fp32_to_fp16(0.f);
    }
    // Requantize to [-4, 3] with the decoded scales; codes stored as q + 4.
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float dl = d * static_cast<float>(q3_K_scale(b[i].scales, j));
      if (dl == 0) continue;  // keep the search codes of a zero-scale sub-block
      for (int l = 0; l < 16; ++l)
        L[16 * j + l] = static_cast<uint8_t>(clamp_int(nint(src[16 * j + l] / dl), -4, 3) + 4);
    }
    // Bit 2 of the code of element e goes to bit e/32 of hmask[e%32]; the low 2 bits to qs.
    std::memset(b[i].hmask, 0, sizeof(b[i].hmask));
    for (int e = 0; e < QK_K; ++e) {
      if (L[e] > 3) {
        b[i].hmask[e % 32] = static_cast<uint8_t>(b[i].hmask[e % 32] | 1 << (e / 32));
        L[e] = static_cast<uint8_t>(L[e] - 4);
      }
    }
    pack_2bit_codes(L, b[i].qs);
  }
}

void from_float_q8_0(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK8_0, "Q8_0");
  auto* b = static_cast<block_q8_0*>(dst);
  for (int64_t i = 0; i < nb; ++i, src += QK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK8_0; ++j)
      b[i].qs[j] = static_cast<int8_t>(clamp_int(static_cast<int>(std::roundf(src[j] * id)), -127, 127));
  }
}

void from_float_q4_K(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "Q4_K");
  auto* b = static_cast<block_q4_K*>(dst);
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i, src += QK_K) {
    quantize_scale_min_superblock(src, 15, -1.0f, 20, &b[i].d, &b[i].dmin, b[i].scales, L);
    // Pair p holds sub-block 2p in the low nibbles and 2p+1 in the high nibbles of qs[32p..].
    for (int p = 0; p < 4; ++p)
      for (int l = 0; l < 32; ++l)
        b[i].qs[32 * p + l] = static_cast<uint8_t>(L[64 * p + l] | (L[64 * p + 32 + l] << 4));
  }
}

void from_float_q5_K(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "Q5_K");
  auto* b = static_cast<block_q5_K*>(dst);
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i, src += QK_K) {
    quantize_scale_min_superblock(src, 31, -0.5f, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
    std::memset(b[i].qh, 0, sizeof(b[i].qh));
    for (int p = 0; p < 4; ++p)
      for (int l = 0; l < 32; ++l) {
        const int lo = L[64 * p + l];       // sub-block 2p
        const int hi = L[64 * p + 32 + l];  // sub-block 2p+1
        b[i].qs[32 * p + l] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
        b[i].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * p)) | ((hi >> 4) << (2 * p + 1)));
      }
  }
}

void from_float_q6_K(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "Q6_K");
  auto* b = static_cast<block_q6_K*>(dst);
  uint8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t i = 0; i < nb; ++i, src += QK_K) {
    float max_scale = 0;
    float max_abs_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      scales[ib] = make_qx_quants(16, 32, src + 16 * ib, L + 16 * ib);
      if (std::fabs(scales[ib]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[ib]);
        max_scale = scales[ib];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {  // all (near) zero: an all-zero block
      std::memset(&b[i], 0, sizeof(block_q6_K));
      continue;
    }
    const float iscale = -128.f / max_scale;
    b[i].d = fp32_to_fp16(1 / iscale);
    for (int ib = 0; ib < QK_K / 16; ++ib)
      b[i].scales[ib] = static_cast<int8_t>(clamp_int(nint(iscale * scales[ib]), -128, 127));

    const float d = fp16_to_fp32(b[i].d);
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      const float dj = d * b[i].scales[ib];
      if (dj == 0) continue;  // keep the search codes of a zero-scale sub-block
      for (int l = 0; l < 16; ++l)
        L[16 * ib + l] = static_cast<uint8_t>(clamp_int(nint(src[16 * ib + l] / dj), -32, 31) + 32);
    }
    // Element e = 128h + 32g + l: low nibble into ql[64h + 32(g&1) + l] (high nibble for g >= 2),
    // top two bits into bits 2g..2g+1 of qh[32h + l] (formats.md §2.3).
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        const uint8_t* c = L + 128 * h + l;  // c[32g] is the code of group g
        b[i].ql[64 * h + l] = static_cast<uint8_t>((c[0] & 0x0F) | ((c[64] & 0x0F) << 4));
        b[i].ql[64 * h + 32 + l] = static_cast<uint8_t>((c[32] & 0x0F) | ((c[96] & 0x0F) << 4));
        b[i].qh[32 * h + l] =
            static_cast<uint8_t>((c[0] >> 4) | ((c[32] >> 4) << 2) | ((c[64] >> 4) << 4) | ((c[96] >> 4) << 6));
      }
  }
}

void from_float_q8_K(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "Q8_K");
  auto* b = static_cast<block_q8_K*>(dst);
  for (int64_t i = 0; i < nb; ++i, src += QK_K) {
    const float max = signed_absmax(src, QK_K);
    if (max == 0) {
      std::memset(&b[i], 0, sizeof(block_q8_K));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; ++j)
      b[i].qs[j] = static_cast<int8_t>(clamp_int(nint(iscale * src[j]), -128, 127));
    for (int s = 0; s < QK_K / 16; ++s) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += b[i].qs[16 * s + l];
      b[i].bsums[s] = static_cast<int16_t>(sum);
    }
    b[i].d = 1 / iscale;
  }
}

}  // namespace hearth::quant
