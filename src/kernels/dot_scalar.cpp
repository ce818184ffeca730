// Scalar reference dot products and activation converters.
// Source: ../shared/docs/formats.md §2.2/§2.3 (block layouts), §2.7 (dot-product partners),
// §3.1 (activation quantizers).
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

using quant::block_q4_0;
using quant::block_q4_K;
using quant::block_q5_K;
using quant::block_q6_K;
using quant::block_q8_0;
using quant::block_q8_K;
using quant::fp16_to_fp32;
using quant::QK4_0;
using quant::QK8_0;
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

// ---- K-quants x Q8_K ----

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

// ---- activation converters ----

void act_quantize_f32(const float* x, void* y, int64_t n) { quant::from_float_f32(x, y, n); }
void act_quantize_f16(const float* x, void* y, int64_t n) { quant::from_float_f16(x, y, n); }
void act_quantize_bf16(const float* x, void* y, int64_t n) { quant::from_float_bf16(x, y, n); }
void act_quantize_q8_K(const float* x, void* y, int64_t n) { quant::from_float_q8_K(x, y, n); }

void act_quantize_q8_0(const float* x, void* y, int64_t n) {
  check_row(n, QK8_0, "Q8_0");
  auto* b = static_cast<block_q8_0*>(y);
  for (int64_t i = 0; i < n / QK8_0; ++i, x += QK8_0) {
    float amax = 0;
    for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    b[i].d = quant::fp32_to_fp16(amax / 127.f);
    // 127/amax rather than 1/d: this is what the x86 SIMD path multiplies by.
    const float id = amax != 0 ? 127.f / amax : 0.0f;
    for (int j = 0; j < QK8_0; ++j) {
      // nint rounds ties to even like nearbyint in the default rounding mode (|x*id| <= 127).
      b[i].qs[j] = static_cast<int8_t>(std::clamp(quant::nint(x[j] * id), -127, 127));
    }
  }
}

}  // namespace hearth::kernels::scalar
