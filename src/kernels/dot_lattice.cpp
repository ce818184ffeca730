// Scalar lattice i-quant x Q8_K dot products (formats.md §2.5, §2.7).
#include "kernels/dot_lattice.h"

#include <cassert>

#include "quant/blocks.h"
#include "quant/blocks_iq.h"
#include "quant/fp16.h"
#include "quant/iq_grids.h"

namespace hearth::kernels::scalar {
namespace {

using quant::block_q8_K;
using quant::fp16_to_fp32;
using quant::grid_byte;
using quant::QK_K;

/// sum_k grid_byte_k * (bit k of signs ? -1 : 1) * q8[k] over one 8-wide group.
inline int32_t group_dot8(uint64_t entry, unsigned signs, const int8_t* q8) {
  int32_t s = 0;
  for (int k = 0; k < 8; ++k) {
    const int32_t v = grid_byte(entry, k) * q8[k];
    s += (signs >> k) & 1 ? -v : v;
  }
  return s;
}

/// The same over one 4-wide entry (sign bits 0..3 of `signs`).
inline int32_t group_dot4(uint32_t entry, unsigned signs, const int8_t* q8) {
  int32_t s = 0;
  for (int k = 0; k < 4; ++k) {
    const int32_t v = grid_byte(entry, k) * q8[k];
    s += (signs >> k) & 1 ? -v : v;
  }
  return s;
}

/// sum_k grid_k * q8[k] over one IQ1 group (grid bytes are int8 -1/0/+1).
inline int32_t group_dot_iq1(uint64_t entry, const int8_t* q8) {
  int32_t s = 0;
  for (int k = 0; k < 8; ++k) s += static_cast<int8_t>(grid_byte(entry, k)) * q8[k];
  return s;
}

/// sum of 8 codes.
inline int32_t sum8(const int8_t* q8) {
  int32_t s = 0;
  for (int k = 0; k < 8; ++k) s += q8[k];
  return s;
}

}  // namespace

// Bounds: |isum| <= 256 * 62 (largest grid byte) * 127 * 31 (largest odd scale factor) < 2^27.

float vec_dot_iq2_xxs(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const quant::block_iq2_xxs*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const int8_t* q8 = ab[i].qs;
    int32_t isum = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const uint8_t* chunk = wb[i].qs + 8 * ib;
      const uint32_t aux = quant::iq_load_u32(chunk + 4);
      int32_t s = 0;
      for (int g = 0; g < 4; ++g, q8 += 8)
        s += group_dot8(quant::kIq2xxsGrid[chunk[g]], quant::kSignsIq2xs[(aux >> (7 * g)) & 127], q8);
      isum += static_cast<int32_t>(2 * (aux >> 28) + 1) * s;
    }
    sumf += fp16_to_fp32(wb[i].d) * ab[i].d * static_cast<float>(isum);
  }
  return 0.125f * sumf;
}

float vec_dot_iq2_xs(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const quant::block_iq2_xs*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const int8_t* q8 = ab[i].qs;
    int32_t isum = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      int32_t s[2] = {0, 0};
      for (int g = 0; g < 4; ++g, q8 += 8) {
        const uint16_t v = wb[i].qs[4 * ib + g];
        s[g / 2] += group_dot8(quant::kIq2xsGrid[v & 511], quant::kSignsIq2xs[v >> 9], q8);
      }
      isum += (2 * (wb[i].scales[ib] & 0x0F) + 1) * s[0] + (2 * (wb[i].scales[ib] >> 4) + 1) * s[1];
    }
    sumf += fp16_to_fp32(wb[i].d) * ab[i].d * static_cast<float>(isum);
  }
  return 0.125f * sumf;
}

float vec_dot_iq2_s(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const quant::block_iq2_s*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const quant::block_iq2_s& x = wb[i];
    const int8_t* q8 = ab[i].qs;
    int32_t isum = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      int32_t s[2] = {0, 0};
      for (int g = 0; g < 4; ++g, q8 += 8) {
        const int index = x.qs[4 * ib + g] | ((x.qh[ib] >> (2 * g)) & 3) << 8;
        s[g / 2] += group_dot8(quant::kIq2sGrid[index], x.signs[4 * ib + g], q8);
      }
      isum += (2 * (x.scales[ib] & 0x0F) + 1) * s[0] + (2 * (x.scales[ib] >> 4) + 1) * s[1];
    }
    sumf += fp16_to_fp32(x.d) * ab[i].d * static_cast<float>(isum);
  }
  return 0.125f * sumf;
}

float vec_dot_iq3_xxs(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const quant::block_iq3_xxs*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const quant::block_iq3_xxs& x = wb[i];
    const int8_t* q8 = ab[i].qs;
    int32_t isum = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const uint32_t aux = quant::iq_load_u32(x.scales_signs + 4 * ib);
      int32_t s = 0;
      for (int g = 0; g < 4; ++g, q8 += 8) {
        const unsigned signs = quant::kSignsIq2xs[(aux >> (7 * g)) & 127];
        s += group_dot4(quant::kIq3xxsGrid[x.qs[8 * ib + 2 * g]], signs & 0x0F, q8);
        s += group_dot4(quant::kIq3xxsGrid[x.qs[8 * ib + 2 * g + 1]], signs >> 4, q8 + 4);
      }
      isum += static_cast<int32_t>(2 * (aux >> 28) + 1) * s;
    }
    sumf += fp16_to_fp32(x.d) * ab[i].d * static_cast<float>(isum);
  }
  return 0.25f * sumf;
}

float vec_dot_iq3_s(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const quant::block_iq3_s*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const quant::block_iq3_s& x = wb[i];
    const int8_t* q8 = ab[i].qs;
    int32_t isum = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const uint8_t qh = x.qh[ib];
      int32_t s = 0;
      for (int g = 0; g < 4; ++g, q8 += 8) {
        const int i0 = x.qs[8 * ib + 2 * g] | ((qh >> (2 * g)) & 1) << 8;
        const int i1 = x.qs[8 * ib + 2 * g + 1] | ((qh >> (2 * g + 1)) & 1) << 8;
        const unsigned signs = x.signs[4 * ib + g];
        s += group_dot4(quant::kIq3sGrid[i0], signs & 0x0F, q8);
        s += group_dot4(quant::kIq3sGrid[i1], signs >> 4, q8 + 4);
      }
      const int sc = ib % 2 == 0 ? x.scales[ib / 2] & 0x0F : x.scales[ib / 2] >> 4;
      isum += (1 + 2 * sc) * s;
    }
    sumf += fp16_to_fp32(x.d) * ab[i].d * static_cast<float>(isum);
  }
  return sumf;
}

float vec_dot_iq1_s(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const quant::block_iq1_s*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const quant::block_iq1_s& x = wb[i];
    const block_q8_K& y = ab[i];
    const int8_t* q8 = y.qs;
    int32_t isum = 0, isum_delta = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const unsigned h = x.qh[ib];
      int32_t s = 0;
      for (int g = 0; g < 4; ++g, q8 += 8)
        s += group_dot_iq1(quant::kIq1sGrid[x.qs[4 * ib + g] | ((h >> (3 * g)) & 7) << 8], q8);
      const int32_t ls = static_cast<int32_t>(2 * ((h >> 12) & 7) + 1);
      const int32_t block_sum = y.bsums[2 * ib] + y.bsums[2 * ib + 1];
      isum += ls * s;
      isum_delta += ls * ((h & 0x8000) ? -block_sum : block_sum);
    }
    sumf += fp16_to_fp32(x.d) * y.d * (static_cast<float>(isum) + quant::kIq1Delta * static_cast<float>(isum_delta));
  }
  return sumf;
}

float vec_dot_iq1_m(int64_t n, const void* w, const void* a) {
  assert(n % QK_K == 0);
  const auto* wb = static_cast<const quant::block_iq1_m*>(w);
  const auto* ab = static_cast<const block_q8_K*>(a);
  float sumf = 0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const quant::block_iq1_m& x = wb[i];
    const int8_t* q8 = ab[i].qs;
    int32_t isum = 0, isum_delta = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      for (int g = 0; g < 4; ++g, q8 += 8) {
        const uint8_t q = x.qh[2 * ib + g / 2];
        const int nib = g % 2 == 0 ? q & 0x0F : q >> 4;
        const int32_t ls = 2 * quant::iq1_m_scale(x, ib, g) + 1;
        const int32_t s = group_dot_iq1(quant::kIq1sGrid[x.qs[4 * ib + g] | (nib & 7) << 8], q8);
        const int32_t sum = sum8(q8);
        isum += ls * s;
        isum_delta += ls * ((nib & 8) ? -sum : sum);
      }
    }
    const float d = fp16_to_fp32(quant::iq1_m_d_bits(x));
    sumf += d * ab[i].d * (static_cast<float>(isum) + quant::kIq1Delta * static_cast<float>(isum_delta));
  }
  return sumf;
}

}  // namespace hearth::kernels::scalar
