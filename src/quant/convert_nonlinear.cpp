// Dequantizers and reference quantizers of the codebook and ternary formats: IQ4_NL, IQ4_XS
// (non-linear 4-bit codebook), TQ1_0, TQ2_0 (ternary) and MXFP4 (FP4 with a shared exponent).
// Source: ../shared/docs/formats.md §2.2, §2.4, §2.6 (layouts) and §3.2, §3.5 (quantizers).
// As in convert.cpp, the arithmetic follows ggml's operation order so that the quantizers are
// byte-identical with llama-quantize without an imatrix.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/blocks.h"
#include "quant/convert.h"
#include "quant/convert_util.h"
#include "quant/fp16.h"

namespace hearth::quant {
namespace {

using detail::block_count;
using detail::clamp_int;
using detail::kGroupMaxEps;

// ---------------------------------------------------------------------------------------------
// IQ4_NL / IQ4_XS (formats.md §3.5)

/// Index of the codebook value kValuesIq4nl nearest to x; an exact midpoint between two values
/// picks the upper one. Index i (> 0) is reached once 2x >= K[i-1] + K[i] (both sides exact),
/// found by a binary search over the 16 ascending values. NaN gives 0.
int best_index_iq4nl(float x) {
  const float x2 = x + x;
  int idx = 0;
  for (int step = 8; step > 0; step >>= 1) {
    const int j = idx + step;
    if (x2 >= static_cast<float>(kValuesIq4nl[j - 1] + kValuesIq4nl[j])) idx = j;
  }
  return idx;
}

/// One super-block of IQ4_NL (`n_blocks` = 1) or IQ4_XS (`n_blocks` = 8) without importance
/// weights (formats.md §3.5, ggml's quantize_row_iq4_nl_impl with ntry = 7): for each block of
/// 32 elements with weights x^2, starts from d = -max/K[0] (max = signed largest-magnitude
/// element), refits d = sum w K x / sum w K^2 for the nearest codes, then tries
/// 1/d = (t + K[0])/max for t = -7..7 keeping the best (sum w K x)^2 / sum w K^2.
/// IQ4_NL: stores f16(d) and re-assigns the codes with the f32 d. IQ4_XS: d_super =
/// -max_scale/32 (signed largest block scale), block scale l = clamp(nint(s/d_super), -32, 31)
/// stored as l + 32, codes re-assigned with the f32 d_super*l.
/// Writes *d_out, the packed nibbles q4 (16 bytes per block) and, for IQ4_XS, the scale fields.
void quantize_iq4_superblock(const float* x, int n_blocks, uint16_t* d_out, uint8_t* q4, uint16_t* scales_h,
                             uint8_t* scales_l) {
  constexpr int kBlock = 32;
  constexpr int kNtry = 7;
  const int K0 = kValuesIq4nl[0];
  uint8_t L[QK_K];
  float scales[QK_K / kBlock];
  float weight[kBlock];

  float max_scale = 0;
  float amax_scale = 0;
  for (int ib = 0; ib < n_blocks; ++ib) {
    const float* xb = x + kBlock * ib;
    uint8_t* Lb = L + kBlock * ib;
    for (int j = 0; j < kBlock; ++j) weight[j] = xb[j] * xb[j];
    float amax = 0;
    float max = 0;
    for (int j = 0; j < kBlock; ++j) {
      const float ax = std::fabs(xb[j]);
      if (ax > amax) {
        amax = ax;
        max = xb[j];
      }
    }
    if (amax < kGroupMaxEps) {
      scales[ib] = 0;
      std::memset(Lb, 0, kBlock);
      continue;
    }
    float d = -max / K0;
    float id = 1 / d;
    float sumqx = 0;
    float sumq2 = 0;
    for (int j = 0; j < kBlock; ++j) {
      const int l = best_index_iq4nl(id * xb[j]);
      Lb[j] = static_cast<uint8_t>(l);
      const float q = kValuesIq4nl[l];
      const float w = weight[j];
      sumqx += w * q * xb[j];
      sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int t = -kNtry; t <= kNtry; ++t) {
      id = static_cast<float>(t + K0) / max;
      sumqx = 0;
      sumq2 = 0;
      for (int j = 0; j < kBlock; ++j) {
        const float q = kValuesIq4nl[best_index_iq4nl(id * xb[j])];
        const float w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scales[ib] = d;
    if (std::fabs(d) > amax_scale) {
      amax_scale = std::fabs(d);
      max_scale = d;
    }
  }

  if (n_blocks > 1) {
    // IQ4_XS. An all-zero super-block gives d = -0.0 (stored 0x8000), as in ggml.
    *scales_h = 0;
    const float d = -max_scale / 32;
    *d_out = fp32_to_fp16(d);
    const float id = d != 0 ? 1 / d : 0.f;
    for (int ib = 0; ib < n_blocks; ++ib) {
      const int l = clamp_int(nint(id * scales[ib]), -32, 31);
      const float dl = d * static_cast<float>(l);
      const float idl = dl != 0 ? 1 / dl : 0.f;
      uint8_t* Lb = L + kBlock * ib;
      const float* xb = x + kBlock * ib;
      for (int j = 0; j < kBlock; ++j) Lb[j] = static_cast<uint8_t>(best_index_iq4nl(idl * xb[j]));
      const int ls = l + 32;
      if (ib % 2 == 0)
        scales_l[ib / 2] = static_cast<uint8_t>(ls & 0x0F);
      else
        scales_l[ib / 2] = static_cast<uint8_t>(scales_l[ib / 2] | (ls & 0x0F) << 4);
      *scales_h = static_cast<uint16_t>(*scales_h | (ls >> 4) << (2 * ib));
    }
  } else {
    // IQ4_NL: the block's own scale.
    *d_out = fp32_to_fp16(scales[0]);
    const float id = scales[0] != 0 ? 1 / scales[0] : 0.f;
    for (int j = 0; j < kBlock; ++j) L[j] = static_cast<uint8_t>(best_index_iq4nl(id * x[j]));
  }

  for (int ib = 0; ib < n_blocks; ++ib)
    for (int j = 0; j < 16; ++j)
      q4[16 * ib + j] = static_cast<uint8_t>(L[kBlock * ib + j] | (L[kBlock * ib + 16 + j] << 4));
}

/// |max| of x[0..n) (NaNs ignored).
float abs_max(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
  return amax;
}

/// The ternary digit 0, 1, 2 (= -1, 0, +1 plus one) of x*id, rounding halves away from zero
/// (`lroundf`) as ggml's TQ quantizers do; |x*id| <= 1 for finite input, the clamp only keeps
/// non-finite input defined.
int ternary_digit(float x, float id) {
  const float v = x * id;
  if (!(v > -1.5f)) return 0;
  if (!(v < 1.5f)) return 2;
  return static_cast<int>(std::lround(v)) + 1;
}

/// FP4 code of x for a block with half-scale `half` (formats.md §3.2): the first code c
/// minimizing |kValuesMxfp4x2[c]*half - x| (so 0 rather than -0).
int best_index_mxfp4(float x, float half) {
  int best = 0;
  float best_err = std::fabs(static_cast<float>(kValuesMxfp4x2[0]) * half - x);
  for (int c = 1; c < 16; ++c) {
    const float err = std::fabs(static_cast<float>(kValuesMxfp4x2[c]) * half - x);
    if (err < best_err) {
      best = c;
      best_err = err;
    }
  }
  return best;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Dequantizers (formats.md §2.2, §2.4, §2.6)

void to_float_iq4_nl(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK4_NL, "IQ4_NL");
  const auto* b = static_cast<const block_iq4_nl*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK4_NL) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < 16; ++j) {
      dst[j] = d * static_cast<float>(kValuesIq4nl[b[i].qs[j] & 0x0F]);
      dst[j + 16] = d * static_cast<float>(kValuesIq4nl[b[i].qs[j] >> 4]);
    }
  }
}

void to_float_iq4_xs(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "IQ4_XS");
  const auto* b = static_cast<const block_iq4_xs*>(src);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    for (int ib = 0; ib < QK_K / 32; ++ib, dst += 32) {
      const float dl = d * static_cast<float>(iq4_xs_scale(b[i], ib) - 32);
      const uint8_t* qs = b[i].qs + 16 * ib;
      for (int j = 0; j < 16; ++j) {
        dst[j] = dl * static_cast<float>(kValuesIq4nl[qs[j] & 0x0F]);
        dst[j + 16] = dl * static_cast<float>(kValuesIq4nl[qs[j] >> 4]);
      }
    }
  }
}

void to_float_tq1_0(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "TQ1_0");
  const auto* b = static_cast<const block_tq1_0*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK_K) {
    const float d = fp16_to_fp32(b[i].d);
    for (int t = 0; t < 5; ++t)
      for (int m = 0; m < 32; ++m) dst[32 * t + m] = static_cast<float>(tq1_0_trit(b[i].qs[m], t) - 1) * d;
    for (int t = 0; t < 5; ++t)
      for (int m = 0; m < 16; ++m)
        dst[160 + 16 * t + m] = static_cast<float>(tq1_0_trit(b[i].qs[32 + m], t) - 1) * d;
    for (int t = 0; t < 4; ++t)
      for (int j = 0; j < 4; ++j) dst[240 + 4 * t + j] = static_cast<float>(tq1_0_trit(b[i].qh[j], t) - 1) * d;
  }
}

void to_float_tq2_0(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "TQ2_0");
  const auto* b = static_cast<const block_tq2_0*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK_K) {
    const float d = fp16_to_fp32(b[i].d);
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 4; ++k)
        for (int l = 0; l < 32; ++l) {
          const int q = (b[i].qs[32 * h + l] >> (2 * k)) & 3;
          dst[128 * h + 32 * k + l] = static_cast<float>(q - 1) * d;
        }
  }
}

void to_float_mxfp4(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_MXFP4, "MXFP4");
  const auto* b = static_cast<const block_mxfp4*>(src);
  for (int64_t i = 0; i < nb; ++i, dst += QK_MXFP4) {
    const float half = e8m0_to_fp32_half(b[i].e);
    for (int j = 0; j < 16; ++j) {
      dst[j] = static_cast<float>(kValuesMxfp4x2[b[i].qs[j] & 0x0F]) * half;
      dst[j + 16] = static_cast<float>(kValuesMxfp4x2[b[i].qs[j] >> 4]) * half;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Quantizers (formats.md §3.2, §3.5)

void from_float_iq4_nl(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK4_NL, "IQ4_NL");
  auto* b = static_cast<block_iq4_nl*>(dst);
  for (int64_t i = 0; i < nb; ++i, src += QK4_NL)
    quantize_iq4_superblock(src, 1, &b[i].d, b[i].qs, nullptr, nullptr);
}

void from_float_iq4_xs(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "IQ4_XS");
  auto* b = static_cast<block_iq4_xs*>(dst);
  for (int64_t i = 0; i < nb; ++i, src += QK_K) {
    uint16_t scales_h = 0;
    quantize_iq4_superblock(src, QK_K / 32, &b[i].d, b[i].qs, &scales_h, b[i].scales_l);
    b[i].scales_h = scales_h;
  }
}

void from_float_tq1_0(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "TQ1_0");
  auto* b = static_cast<block_tq1_0*>(dst);
  // A group of trits t_0 (most significant) .. t_4 forms v = sum t_i*3^(4-i) < 243, stored as
  // ceil(v*256/243) so that trit n is recovered by ((b*3^n mod 256)*3) >> 8 (formats.md §2.6).
  const auto pack = [](int v) { return static_cast<uint8_t>((v * 256 + 242) / 243); };
  for (int64_t i = 0; i < nb; ++i, src += QK_K) {
    const float d = abs_max(src, QK_K);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    for (int m = 0; m < 32; ++m) {  // elements 32t + m
      int v = 0;
      for (int t = 0; t < 5; ++t) v = 3 * v + ternary_digit(src[32 * t + m], id);
      b[i].qs[m] = pack(v);
    }
    for (int m = 0; m < 16; ++m) {  // elements 160 + 16t + m
      int v = 0;
      for (int t = 0; t < 5; ++t) v = 3 * v + ternary_digit(src[160 + 16 * t + m], id);
      b[i].qs[32 + m] = pack(v);
    }
    for (int j = 0; j < 4; ++j) {  // elements 240 + 4t + j, then an implicit fifth trit 0
      int v = 0;
      for (int t = 0; t < 4; ++t) v = 3 * v + ternary_digit(src[240 + 4 * t + j], id);
      b[i].qh[j] = pack(3 * v);
    }
  }
}

void from_float_tq2_0(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "TQ2_0");
  auto* b = static_cast<block_tq2_0*>(dst);
  for (int64_t i = 0; i < nb; ++i, src += QK_K) {
    const float d = abs_max(src, QK_K);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        int byte = 0;
        for (int k = 0; k < 4; ++k) byte |= ternary_digit(src[128 * h + 32 * k + l], id) << (2 * k);
        b[i].qs[32 * h + l] = static_cast<uint8_t>(byte);
      }
  }
}

void from_float_mxfp4(const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_MXFP4, "MXFP4");
  auto* b = static_cast<block_mxfp4*>(dst);
  for (int64_t i = 0; i < nb; ++i, src += QK_MXFP4) {
    const float amax = abs_max(src, QK_MXFP4);
    // e = floor(log2(amax)) - 2 + 127: the largest FP4 magnitude 6 = 1.5*2^2 then covers amax.
    // Clamped to [0, 254] so that tiny (< 2^-125) or infinite amax stay defined.
    int e = 0;
    if (amax > 0.0f) {
      const float v = std::floor(std::log2(amax)) - 2 + 127;
      e = v >= 254.0f ? 254 : v <= 0.0f ? 0 : static_cast<int>(v);
    }
    b[i].e = static_cast<uint8_t>(e);
    const float half = e8m0_to_fp32_half(b[i].e);
    for (int j = 0; j < 16; ++j)
      b[i].qs[j] = static_cast<uint8_t>(best_index_mxfp4(src[j], half) | best_index_mxfp4(src[j + 16], half) << 4);
  }
}

}  // namespace hearth::quant
