// Dequantizers of the lattice i-quant formats (formats.md §2.5). The float operation order
// follows the formulas as written (db computed first, then db * grid value * sign).
#include "quant/convert_lattice.h"

#include "quant/blocks_iq.h"
#include "quant/convert_util.h"
#include "quant/fp16.h"
#include "quant/iq_grids.h"

namespace hearth::quant {
namespace {

using detail::block_count;

/// Writes the 8 values db * grid_byte_k * (bit k of signs ? -1 : +1) of one group.
inline void put_group8(float* y, float db, uint64_t entry, uint8_t signs) {
  for (int k = 0; k < 8; ++k) {
    const float v = db * static_cast<float>(grid_byte(entry, k));
    y[k] = (signs >> k) & 1 ? -v : v;
  }
}

/// Writes 4 values of a 4-wide entry with sign bits `signs` (bit k for element k).
inline void put_group4(float* y, float db, uint32_t entry, unsigned signs) {
  for (int k = 0; k < 4; ++k) {
    const float v = db * static_cast<float>(grid_byte(entry, k));
    y[k] = (signs >> k) & 1 ? -v : v;
  }
}

/// Writes the 8 values dl*(grid_k + delta) of one IQ1 group (grid bytes are int8 -1/0/+1).
inline void put_group_iq1(float* y, float dl, float delta, uint64_t entry) {
  for (int k = 0; k < 8; ++k) y[k] = dl * (static_cast<float>(static_cast<int8_t>(grid_byte(entry, k))) + delta);
}

}  // namespace

void to_float_iq2_xxs(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "IQ2_XXS");
  const auto* b = static_cast<const block_iq2_xxs*>(src);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const uint8_t* chunk = b[i].qs + 8 * ib;
      const uint32_t w = iq_load_u32(chunk + 4);
      const float db = d * (0.5f + static_cast<float>(w >> 28)) * 0.25f;
      for (int g = 0; g < 4; ++g, dst += 8)
        put_group8(dst, db, kIq2xxsGrid[chunk[g]], kSignsIq2xs[(w >> (7 * g)) & 127]);
    }
  }
}

void to_float_iq2_xs(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "IQ2_XS");
  const auto* b = static_cast<const block_iq2_xs*>(src);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const float db[2] = {d * (0.5f + static_cast<float>(b[i].scales[ib] & 0x0F)) * 0.25f,
                           d * (0.5f + static_cast<float>(b[i].scales[ib] >> 4)) * 0.25f};
      for (int g = 0; g < 4; ++g, dst += 8) {
        const uint16_t v = b[i].qs[4 * ib + g];
        put_group8(dst, db[g / 2], kIq2xsGrid[v & 511], kSignsIq2xs[v >> 9]);
      }
    }
  }
}

void to_float_iq2_s(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "IQ2_S");
  const auto* b = static_cast<const block_iq2_s*>(src);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const float db[2] = {d * (0.5f + static_cast<float>(b[i].scales[ib] & 0x0F)) * 0.25f,
                           d * (0.5f + static_cast<float>(b[i].scales[ib] >> 4)) * 0.25f};
      for (int g = 0; g < 4; ++g, dst += 8) {
        const int index = b[i].qs[4 * ib + g] | ((b[i].qh[ib] >> (2 * g)) & 3) << 8;
        put_group8(dst, db[g / 2], kIq2sGrid[index], b[i].signs[4 * ib + g]);
      }
    }
  }
}

void to_float_iq3_xxs(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "IQ3_XXS");
  const auto* b = static_cast<const block_iq3_xxs*>(src);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const uint32_t w = iq_load_u32(b[i].scales_signs + 4 * ib);
      const float db = d * (0.5f + static_cast<float>(w >> 28)) * 0.5f;
      for (int g = 0; g < 4; ++g, dst += 8) {
        const uint8_t signs = kSignsIq2xs[(w >> (7 * g)) & 127];
        put_group4(dst, db, kIq3xxsGrid[b[i].qs[8 * ib + 2 * g]], signs & 0x0F);
        put_group4(dst + 4, db, kIq3xxsGrid[b[i].qs[8 * ib + 2 * g + 1]], signs >> 4);
      }
    }
  }
}

void to_float_iq3_s(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "IQ3_S");
  const auto* b = static_cast<const block_iq3_s*>(src);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const int s = ib % 2 == 0 ? b[i].scales[ib / 2] & 0x0F : b[i].scales[ib / 2] >> 4;
      const float db = d * static_cast<float>(1 + 2 * s);
      const uint8_t qh = b[i].qh[ib];
      for (int g = 0; g < 4; ++g, dst += 8) {
        const int i0 = b[i].qs[8 * ib + 2 * g] | ((qh >> (2 * g)) & 1) << 8;
        const int i1 = b[i].qs[8 * ib + 2 * g + 1] | ((qh >> (2 * g + 1)) & 1) << 8;
        const uint8_t signs = b[i].signs[4 * ib + g];
        put_group4(dst, db, kIq3sGrid[i0], signs & 0x0F);
        put_group4(dst + 4, db, kIq3sGrid[i1], signs >> 4);
      }
    }
  }
}

void to_float_iq1_s(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "IQ1_S");
  const auto* b = static_cast<const block_iq1_s*>(src);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const unsigned h = b[i].qh[ib];
      const float dl = d * static_cast<float>(2 * ((h >> 12) & 7) + 1);
      const float delta = (h & 0x8000) ? -kIq1Delta : kIq1Delta;
      for (int g = 0; g < 4; ++g, dst += 8)
        put_group_iq1(dst, dl, delta, kIq1sGrid[b[i].qs[4 * ib + g] | ((h >> (3 * g)) & 7) << 8]);
    }
  }
}

void to_float_iq1_m(const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(n, QK_K, "IQ1_M");
  const auto* b = static_cast<const block_iq1_m*>(src);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(iq1_m_d_bits(b[i]));
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      for (int g = 0; g < 4; ++g, dst += 8) {
        const uint8_t q = b[i].qh[2 * ib + g / 2];
        const int nib = g % 2 == 0 ? q & 0x0F : q >> 4;
        const float dl = d * static_cast<float>(2 * iq1_m_scale(b[i], ib, g) + 1);
        const float delta = (nib & 8) ? -kIq1Delta : kIq1Delta;
        put_group_iq1(dst, dl, delta, kIq1sGrid[b[i].qs[4 * ib + g] | (nib & 7) << 8]);
      }
    }
  }
}

}  // namespace hearth::quant
