// Scalar reference dot products and activation converters.
// Source: ../shared/docs/formats.md §2.2/§2.3/§2.4/§2.6 (block layouts), §2.7 (dot-product
// partners), §3.1 (activation quantizers).
#include "kernels/dot_scalar.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <string>

#include "hearth/error.h"
#include "kernels/fp16_table.h"
#include "quant/blocks.h"
#include "quant/convert.h"
#include "quant/fp16.h"

namespace hearth::kernels::scalar {
namespace {

using quant::block_iq4_nl;
using quant::block_iq4_xs;
using quant::block_mxfp4;
using quant::block_q2_K;
using quant::block_q3_K;
using quant::block_q4_0;
using quant::block_q4_1;
using quant::block_q4_K;
using quant::block_q5_0;
using quant::block_q5_1;
using quant::block_q5_K;
using quant::block_q6_K;
using quant::block_q8_0;
using quant::block_q8_1;
using quant::block_q8_K;
using quant::block_tq1_0;
using quant::block_tq2_0;
using quant::fp16_to_fp32;
using quant::kValuesIq4nl;
using quant::kValuesMxfp4x2;
using quant::QK4_0;
using quant::QK8_0;
using quant::QK8_1;
using quant::QK_K;

/// Sum over 32-element blocks of (f16(dw)*f16(da)) * isum, where `block_isum(wb, ab)` is the
/// exact integer dot product of one weight block with one Q8_0 block (formats.md §2.7).
template <class WBlock, class BlockIsum>
float dot_blocks_q8_0(int64_t n, const void* w, const void* a, BlockIsum block_isum) {
  assert(n % QK8_0 == 0);
  const auto* wb = static_cast<const WBlock*>(w);
  const auto* ab = static_cast<const block_q8_0*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    const int32_t isum = block_isum(wb[i], ab[i]);
    sumf += (fp16_to_fp32(wb[i].d) * fp16_to_fp32(ab[i].d)) * static_cast<float>(isum);
  }
  return sumf;
}

/// Q4_1 (kFive = false) / Q5_1 (kFive = true) x Q8_1 over one row (formats.md §2.2, §2.7):
/// per block sumf += (f16(dw)*f16(da)) * sum q*qa + f16(m)*f16(s).
template <bool kFive, class WBlock>
float dot_min_q8_1(int64_t n, const void* w, const void* a) {
  assert(n % QK8_1 == 0);
  const auto* wb = static_cast<const WBlock*>(w);
  const auto* ab = static_cast<const block_q8_1*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK8_1; ++i) {
    const WBlock& x = wb[i];
    const block_q8_1& y = ab[i];
    uint32_t qh = 0;
    if constexpr (kFive) qh = quant::q5_high_bits(x.qh);
    int32_t isum = 0;
    for (int j = 0; j < 16; ++j) {
      int q0 = x.qs[j] & 0x0F;
      int q1 = x.qs[j] >> 4;
      if constexpr (kFive) {
        q0 |= static_cast<int>((qh >> j) & 1) << 4;
        q1 |= static_cast<int>((qh >> (j + 16)) & 1) << 4;
      }
      isum += q0 * y.qs[j] + q1 * y.qs[j + 16];
    }
    sumf += (fp16_to_fp32(x.d) * fp16_to_fp32(y.d)) * static_cast<float>(isum) +
            fp16_to_fp32(x.m) * fp16_to_fp32(y.s);
  }
  return sumf;
}

/// Sum of codebook[lo(qs[j])]*q8[j] + codebook[hi(qs[j])]*q8[j+16] over j < 16: the integer dot
/// of one 32-element block of IQ4_NL / IQ4_XS / MXFP4 codes with 32 activation codes.
int32_t nibble_codebook_dot(const int8_t* codebook, const uint8_t* qs, const int8_t* q8) {
  int32_t s = 0;
  for (int j = 0; j < 16; ++j) s += codebook[qs[j] & 0x0F] * q8[j] + codebook[qs[j] >> 4] * q8[j + 16];
  return s;
}

/// Quantizes one 32-element activation block the way llama.cpp's x86 SIMD path does
/// (formats.md §3.1): amax = max|x|, q = nint(x * 127/amax) (ties to even), stored d =
/// f16(amax/127). Returns the f32 d (0 for an all-zero block) and the sum of the codes in *sum.
float quantize_act_block_q8(const float* x, uint16_t* d16, int8_t* qs, int32_t* sum) {
  float amax = 0;
  for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.f;
  *d16 = quant::fp32_to_fp16(d);
  // 127/amax rather than 1/d: this is what the x86 SIMD path multiplies by.
  const float id = amax != 0 ? 127.f / amax : 0.0f;
  int32_t s = 0;
  for (int j = 0; j < QK8_0; ++j) {
    // nint rounds ties to even like nearbyint in the default rounding mode (|x*id| <= 127).
    qs[j] = static_cast<int8_t>(std::clamp(quant::nint(x[j] * id), -127, 127));
    s += qs[j];
  }
  *sum = s;
  return d;
}

/// Q4_K (kHigh = false) / Q5_K (kHigh = true) x Q8_K over one row (formats.md §2.3, §2.7).
template <bool kHigh, class WBlock>
float dot_scale_min_q8_K(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const WBlock*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const WBlock& x = wb[i];
    const block_q8_K& y = ab[i];
    int32_t isum = 0;     // sum_j sc_j * sum_l q * q8
    int32_t summins = 0;  // sum_j m_j * sum_l q8
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      quant::unpack_scale_min_k4(x.scales, j, &sc, &m);
      summins += m * (y.bsums[2 * j] + y.bsums[2 * j + 1]);
      const uint8_t* qs = x.qs + 32 * (j / 2);
      const int shift = (j & 1) * 4;
      const int8_t* q8 = y.qs + 32 * j;
      int32_t s = 0;
      for (int l = 0; l < 32; ++l) {
        int q = (qs[l] >> shift) & 0x0F;
        if constexpr (kHigh) q |= ((x.qh[l] >> j) & 1) << 4;
        s += q * q8[l];
      }
      isum += sc * s;
    }
    const float dw = fp16_to_fp32(x.d);
    const float dminw = fp16_to_fp32(x.dmin);
    sumf += dw * y.d * static_cast<float>(isum) - dminw * y.d * static_cast<float>(summins);
  }
  return sumf;
}

void check_row(int64_t n, int64_t blck, const char* type) {
  if (n < 0 || n % blck != 0)
    throw Error(std::string("activation row of ") + std::to_string(n) +
                " elements is not a multiple of the " + type + " block size " + std::to_string(blck));
}

}  // namespace

// ---- float types: accumulate in double ----

float vec_dot_f32(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * y[i];
  return static_cast<float>(sum);
}

float vec_dot_f16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  const float* h2f = fp16_table();  // table lookup: the bit-twiddling conversion is branchy
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(h2f[x[i]]) * h2f[y[i]];
  return static_cast<float>(sum);
}

float vec_dot_bf16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i)
    sum += static_cast<double>(quant::bf16_to_fp32(x[i])) * quant::bf16_to_fp32(y[i]);
  return static_cast<float>(sum);
}

// ---- 32-element blocks x Q8_0 ----

float vec_dot_q8_0(int64_t n, const void* w, const void* a) {
  return dot_blocks_q8_0<block_q8_0>(n, w, a, [](const block_q8_0& x, const block_q8_0& y) {
    int32_t s = 0;
    for (int j = 0; j < QK8_0; ++j) s += x.qs[j] * y.qs[j];
    return s;
  });
}

float vec_dot_q4_0(int64_t n, const void* w, const void* a) {
  return dot_blocks_q8_0<block_q4_0>(n, w, a, [](const block_q4_0& x, const block_q8_0& y) {
    int32_t s = 0;
    for (int j = 0; j < QK4_0 / 2; ++j)
      s += ((x.qs[j] & 0x0F) - 8) * y.qs[j] + ((x.qs[j] >> 4) - 8) * y.qs[j + 16];
    return s;
  });
}

float vec_dot_q5_0(int64_t n, const void* w, const void* a) {
  return dot_blocks_q8_0<block_q5_0>(n, w, a, [](const block_q5_0& x, const block_q8_0& y) {
    const uint32_t qh = quant::q5_high_bits(x.qh);
    int32_t s = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = ((x.qs[j] & 0x0F) | static_cast<int>((qh >> j) & 1) << 4) - 16;
      const int q1 = ((x.qs[j] >> 4) | static_cast<int>((qh >> (j + 16)) & 1) << 4) - 16;
      s += q0 * y.qs[j] + q1 * y.qs[j + 16];
    }
    return s;
  });
}

float vec_dot_iq4_nl(int64_t n, const void* w, const void* a) {
  return dot_blocks_q8_0<block_iq4_nl>(n, w, a, [](const block_iq4_nl& x, const block_q8_0& y) {
    return nibble_codebook_dot(kValuesIq4nl, x.qs, y.qs);
  });
}

float vec_dot_mxfp4(int64_t n, const void* w, const void* a) {
  assert(n % QK8_0 == 0);
  const auto* wb = static_cast<const block_mxfp4*>(w);
  const auto* ab = static_cast<const block_q8_0*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    const float d = fp16_to_fp32(ab[i].d) * quant::e8m0_to_fp32_half(wb[i].e);
    sumf += d * static_cast<float>(nibble_codebook_dot(kValuesMxfp4x2, wb[i].qs, ab[i].qs));
  }
  return sumf;
}

// ---- 32-element blocks with a min x Q8_1 ----

float vec_dot_q4_1(int64_t n, const void* w, const void* a) { return dot_min_q8_1<false, block_q4_1>(n, w, a); }

float vec_dot_q5_1(int64_t n, const void* w, const void* a) { return dot_min_q8_1<true, block_q5_1>(n, w, a); }

// ---- K-quants x Q8_K ----

float vec_dot_q2_K(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const block_q2_K*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_q2_K& x = wb[i];
    const block_q8_K& y = ab[i];
    int32_t summins = 0;  // sum_s m_s * sum of the 16 activation codes of sub-block s
    for (int s = 0; s < QK_K / 16; ++s) summins += (x.scales[s] >> 4) * y.bsums[s];
    // Element e = 128h + 32k + l lies in sub-block s = 8h + 2k + l/16.
    int32_t isum = 0;
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 4; ++k)
        for (int half = 0; half < 2; ++half) {
          const int8_t* q8 = y.qs + 128 * h + 32 * k;
          int32_t s = 0;
          for (int l = 16 * half; l < 16 * half + 16; ++l) s += ((x.qs[32 * h + l] >> (2 * k)) & 3) * q8[l];
          isum += (x.scales[8 * h + 2 * k + half] & 0x0F) * s;
        }
    const float dall = y.d * fp16_to_fp32(x.d);
    const float dmin = y.d * fp16_to_fp32(x.dmin);
    sumf += dall * static_cast<float>(isum) - dmin * static_cast<float>(summins);
  }
  return sumf;
}

float vec_dot_q3_K(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const block_q3_K*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_q3_K& x = wb[i];
    const block_q8_K& y = ab[i];
    // q = q2 + 4*hb - 4: the "- 4" of every element of sub-block s sums to -4*bsums[s].
    int32_t isum = 0;
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 4; ++k)
        for (int half = 0; half < 2; ++half) {
          const int sb = 8 * h + 2 * k + half;
          const int8_t* q8 = y.qs + 128 * h + 32 * k;
          int32_t s = 0;
          for (int l = 16 * half; l < 16 * half + 16; ++l) {
            const int q2 = (x.qs[32 * h + l] >> (2 * k)) & 3;
            const int hb = (x.hmask[l] >> (4 * h + k)) & 1;
            s += (q2 | hb << 2) * q8[l];
          }
          isum += quant::q3_K_scale(x.scales, sb) * (s - 4 * y.bsums[sb]);
        }
    sumf += fp16_to_fp32(x.d) * y.d * static_cast<float>(isum);
  }
  return sumf;
}

float vec_dot_q4_K(int64_t n, const void* w, const void* a) {
  return dot_scale_min_q8_K<false, block_q4_K>(n, w, a);
}

float vec_dot_q5_K(int64_t n, const void* w, const void* a) {
  return dot_scale_min_q8_K<true, block_q5_K>(n, w, a);
}

float vec_dot_q6_K(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const block_q6_K*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_q6_K& x = wb[i];
    const block_q8_K& y = ab[i];
    // Element e = 128h + 32g + l lies in the 16-element sub-block s = 8h + 2g + l/16.
    int32_t isum = 0;
    for (int h = 0; h < 2; ++h)
      for (int g = 0; g < 4; ++g)
        for (int half = 0; half < 2; ++half) {
          const int8_t* q8 = y.qs + 128 * h + 32 * g;
          int32_t s = 0;
          for (int l = 16 * half; l < 16 * half + 16; ++l) s += quant::q6_K_code(x, h, g, l) * q8[l];
          isum += x.scales[8 * h + 2 * g + half] * s;
        }
    sumf += fp16_to_fp32(x.d) * y.d * static_cast<float>(isum);
  }
  return sumf;
}

// ---- IQ4_XS and ternary x Q8_K ----

float vec_dot_iq4_xs(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const block_iq4_xs*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_iq4_xs& x = wb[i];
    const block_q8_K& y = ab[i];
    int32_t isum = 0;  // |isum| <= 8 * 32 * 32*127*127 < 2^31
    for (int ib = 0; ib < QK_K / 32; ++ib)
      isum += (quant::iq4_xs_scale(x, ib) - 32) * nibble_codebook_dot(kValuesIq4nl, x.qs + 16 * ib, y.qs + 32 * ib);
    sumf += fp16_to_fp32(x.d) * y.d * static_cast<float>(isum);
  }
  return sumf;
}

float vec_dot_tq1_0(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const block_tq1_0*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_tq1_0& x = wb[i];
    const int8_t* q8 = ab[i].qs;
    int32_t isum = 0;
    for (int t = 0; t < 5; ++t)
      for (int m = 0; m < 32; ++m) isum += (quant::tq1_0_trit(x.qs[m], t) - 1) * q8[32 * t + m];
    for (int t = 0; t < 5; ++t)
      for (int m = 0; m < 16; ++m) isum += (quant::tq1_0_trit(x.qs[32 + m], t) - 1) * q8[160 + 16 * t + m];
    for (int t = 0; t < 4; ++t)
      for (int j = 0; j < 4; ++j) isum += (quant::tq1_0_trit(x.qh[j], t) - 1) * q8[240 + 4 * t + j];
    sumf += static_cast<float>(isum) * (fp16_to_fp32(x.d) * ab[i].d);
  }
  return sumf;
}

float vec_dot_tq2_0(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const block_tq2_0*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const block_tq2_0& x = wb[i];
    const int8_t* q8 = ab[i].qs;
    int32_t isum = 0;
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 4; ++k)
        for (int l = 0; l < 32; ++l) isum += (((x.qs[32 * h + l] >> (2 * k)) & 3) - 1) * q8[128 * h + 32 * k + l];
    sumf += static_cast<float>(isum) * (fp16_to_fp32(x.d) * ab[i].d);
  }
  return sumf;
}

// ---- activation converters ----

void act_quantize_f32(const float* x, void* y, int64_t n) { quant::from_float_f32(x, y, n); }
void act_quantize_f16(const float* x, void* y, int64_t n) { quant::from_float_f16(x, y, n); }
void act_quantize_bf16(const float* x, void* y, int64_t n) { quant::from_float_bf16(x, y, n); }
void act_quantize_q8_K(const float* x, void* y, int64_t n) { quant::from_float_q8_K(x, y, n); }

void act_quantize_q8_0(const float* x, void* y, int64_t n) {
  check_row(n, QK8_0, "Q8_0");
  auto* b = static_cast<block_q8_0*>(y);
  int32_t sum;
  for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) quantize_act_block_q8(x, &b[i].d, b[i].qs, &sum);
}

void act_quantize_q8_1(const float* x, void* y, int64_t n) {
  check_row(n, QK8_1, "Q8_1");
  auto* b = static_cast<block_q8_1*>(y);
  for (int64_t i = 0; i < n / QK8_1; ++i, x += QK8_1) {
    int32_t sum;
    const float d = quantize_act_block_q8(x, &b[i].d, b[i].qs, &sum);
    b[i].s = quant::fp32_to_fp16(d * static_cast<float>(sum));
  }
}

}  // namespace hearth::kernels::scalar
