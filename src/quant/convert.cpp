// Dequantizers and reference quantizers. Source: ../shared/docs/formats.md §2 and §3.
// The arithmetic (operation order, f32 intermediates, nint vs roundf) follows the formulas of
// formats.md so that results are bit-exact with ggml's reference routines.
#include "quant/convert.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "hearth/error.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace hearth::quant {
namespace {

/// Number of blocks in a row of n elements; throws if n is not a whole number of blocks.
int64_t block_count(int64_t n, int64_t blck, const char* type) {
  if (n < 0 || n % blck != 0)
    throw Error(std::string("row of ") + std::to_string(n) + " elements is not a multiple of the " +
                type + " block size " + std::to_string(blck));
  return n / blck;
}

int clamp_int(int v, int lo, int hi) { return std::min(hi, std::max(lo, v)); }

/// Signed element of largest magnitude among x[0..n) (the first one on ties), or 0.
float signed_absmax(const float* x, int n) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  return max;
}

// ---------------------------------------------------------------------------------------------
// Building blocks of the K-quant searches (formats.md §3.3)

/// Ratio below which ggml treats a group as all zero.
constexpr float kGroupMaxEps = 1e-15f;

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
