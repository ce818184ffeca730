#include "quant/quantize_weighted.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/blocks.h"
#include "quant/convert.h"
#include "quant/convert_util.h"
#include "quant/fp16.h"
#include "quant/quantize_lattice.h"

namespace hearth::quant {

namespace detail {

float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* w) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
  if (max < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.f;
  }
  float iscale = nmax / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(clamp_int(nint(iscale * x[i]), 0, nmax));
  const float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * L[i];
    best_mse += w[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * is + nmax) / max;
    const float scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::min(nmax, nint(iscale_is * x[i]));
      const float diff = x[i] - scale_is * l;
      mse += w[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nint(iscale * x[i]), 0, nmax);
    L[i] = static_cast<uint8_t>(l);
    sumlx += w[i] * x[i] * l;
    suml2 += w[i] * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      float slx = sumlx - w[i] * x[i] * L[i];
      float sl2 = suml2 - w[i] * L[i] * L[i];
      if (slx > 0 && sl2 > 0) {
        const int new_l = clamp_int(nint(x[i] * sl2 / slx), 0, nmax);
        if (new_l != L[i]) {
          slx += w[i] * x[i] * new_l;
          sl2 += w[i] * new_l * new_l;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<uint8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

}  // namespace detail

namespace {

using detail::block_count;
using detail::clamp_int;
using detail::kGroupMaxEps;
using detail::make_qp_quants;

/// make_qx_quants with explicit weights (formats.md §3.3 item 1): symmetric codes L + nmax in
/// L[0..n), returns the least-squares scale of the best of 19 candidate inverse scales.
float make_qx_quants_w(int n, int nmax, const float* x, int8_t* L, const float* w) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nint(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l + nmax);
    sumlx += w[i] * x[i] * l;
    suml2 += w[i] * l * l;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nint(iscale * x[i]), -nmax, nmax - 1);
      sumlx += w[i] * x[i] * l;
      suml2 += w[i] * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(nmax + clamp_int(nint(iscale * x[i]), -nmax, nmax - 1));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

/// make_qkx3_quants (formats.md §3.3 item 2, squared error): codes 0..nmax in L, returns the
/// scale s and sets *the_min = m ≥ 0 with x ≈ s·L − m.
float make_qkx3_quants(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min, uint8_t* Laux,
                       float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max <= min) {
    std::fill(L, L + n, 0);
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(clamp_int(nint(iscale * (x[i] - min)), 0, nmax));
    const float diff = scale * L[i] + min - x[i];
    best += w[i] * diff * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nint(iscale * (x[i] - min)), 0, nmax);
      Laux[i] = static_cast<uint8_t>(l);
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float err = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * Laux[i] + this_min - x[i];
        err += w[i] * diff * diff;
      }
      if (err < best) {
        std::memcpy(L, Laux, static_cast<size_t>(n));
        best = err;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

float sum_squares(const float* x, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

/// Packs 256 2-bit codes in the K-quant order: qs[32h + l] holds elements 128h + 32k + l, k = 0..3.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* c = L + 128 * h + l;
      qs[32 * h + l] = static_cast<uint8_t>((c[0] & 3) | ((c[32] & 3) << 2) | ((c[64] & 3) << 4) | ((c[96] & 3) << 6));
    }
}

/// The Q4_K / Q5_K super-block search with importance weights; L gets codes 0..nmax.
void scale_min_superblock_w(const float* x, const float* qw, int nmax, uint16_t* d_out, uint16_t* dmin_out,
                            uint8_t* packed, uint8_t* L) {
  float weights[32], scales[8], mins[8], sw[8];
  uint8_t Laux[32], Ls[8], Lm[8];
  const float sigma2 = 2 * sum_squares(x, QK_K) / QK_K;
  for (int j = 0; j < 8; ++j) {
    float sumw = 0;
    for (int l = 0; l < 32; ++l) {
      weights[l] = qw[32 * j + l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
      sumw += weights[l];
    }
    sw[j] = sumw;
    scales[j] = make_qkx3_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36);
  }
  const float d_block = make_qp_quants(8, 63, scales, Ls, sw);
  const float m_block = make_qp_quants(8, 63, mins, Lm, sw);
  pack_scale_min_k4(Ls, Lm, packed);
  *d_out = fp32_to_fp16(d_block);
  *dmin_out = fp32_to_fp16(m_block);
  const float d = fp16_to_fp32(*d_out), dmin = fp16_to_fp32(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    const float dj = d * Ls[j];
    if (dj == 0) continue;
    const float mj = dmin * Lm[j];
    for (int l = 0; l < 32; ++l)
      L[32 * j + l] = static_cast<uint8_t>(clamp_int(nint((x[32 * j + l] + mj) / dj), 0, nmax));
  }
}

/// Codebook index nearest to x in the ascending table val[0..n) (ggml best_index_int8).
int best_index_int8(int n, const int8_t* val, float x) {
  if (x <= val[0]) return 0;
  if (x >= val[n - 1]) return n - 1;
  int ml = 0, mu = n - 1;
  while (mu - ml > 1) {
    const int mav = (ml + mu) / 2;
    if (x < val[mav]) mu = mav;
    else ml = mav;
  }
  return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

/// The IQ4_NL / IQ4_XS search (formats.md §3.5) over one super-block of `sb` elements in blocks
/// of 32. Writes dh, the packed codes q4[sb/2] and for sb > 32 the 6-bit scales.
void iq4_superblock_w(int sb, const float* x, const float* qw, uint16_t* dh, uint8_t* q4, uint16_t* scales_h,
                      uint8_t* scales_l) {
  constexpr int kNtry = 7;
  const int8_t* values = kValuesIq4nl;
  uint8_t L[QK_K];
  float scales[QK_K / 32], weight[32];
  const float sigma2 = 2 * sum_squares(x, sb) / sb;
  std::memset(q4, 0, static_cast<size_t>(sb / 2));
  *dh = fp32_to_fp16(0.f);
  float max_scale = 0, amax_scale = 0;
  const int nb = sb / 32;
  for (int ib = 0; ib < nb; ++ib) {
    const float* xb = x + 32 * ib;
    uint8_t* Lb = L + 32 * ib;
    for (int j = 0; j < 32; ++j) weight[j] = qw[32 * ib + j] * std::sqrt(sigma2 + xb[j] * xb[j]);
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j) {
      const float ax = std::fabs(xb[j]);
      if (ax > amax) {
        amax = ax;
        max = xb[j];
      }
    }
    if (amax < kGroupMaxEps) {
      scales[ib] = 0;
      std::fill(Lb, Lb + 32, 0);
      continue;
    }
    float d = -max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
      const int l = best_index_int8(16, values, id * xb[j]);
      Lb[j] = static_cast<uint8_t>(l);
      const float q = values[l];
      sumqx += weight[j] * q * xb[j];
      sumq2 += weight[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : d;
    float best = d * sumqx;
    for (int itry = -kNtry; itry <= kNtry; ++itry) {
      id = (itry + values[0]) / max;
      sumqx = sumq2 = 0;
      for (int j = 0; j < 32; ++j) {
        const float q = values[best_index_int8(16, values, id * xb[j])];
        sumqx += weight[j] * q * xb[j];
        sumq2 += weight[j] * q * q;
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
  if (nb > 1) {
    *scales_h = 0;
    std::memset(scales_l, 0, static_cast<size_t>(nb / 2));
    const float d = -max_scale / 32;
    *dh = fp32_to_fp16(d);
    const float id = d != 0 ? 1 / d : 0.f;
    for (int ib = 0; ib < nb; ++ib) {
      int l = clamp_int(nint(id * scales[ib]), -32, 31);
      const float dl = d * l;
      const float idl = dl != 0 ? 1 / dl : 0.f;
      for (int j = 0; j < 32; ++j) L[32 * ib + j] = static_cast<uint8_t>(best_index_int8(16, values, idl * x[32 * ib + j]));
      l += 32;
      const int l_l = l & 0xF, l_h = l >> 4;
      if (ib % 2 == 0) scales_l[ib / 2] = static_cast<uint8_t>(l_l);
      else scales_l[ib / 2] |= static_cast<uint8_t>(l_l << 4);
      *scales_h |= static_cast<uint16_t>(l_h << (2 * ib));
    }
  } else {
    *dh = fp32_to_fp16(scales[0]);
    const float id = scales[0] != 0 ? 1 / scales[0] : 0.f;
    for (int j = 0; j < 32; ++j) L[j] = static_cast<uint8_t>(best_index_int8(16, values, id * x[j]));
  }
  for (int i = 0; i < nb; ++i)
    for (int j = 0; j < 16; ++j) q4[16 * i + j] = static_cast<uint8_t>(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

/// Weights of the legacy 32-blocks: qw·sqrt(σ² + x²) with σ² = Σx²/n over the whole row.
void legacy_weights(const float* xb, const float* qw, float sigma2, float* w) {
  for (int j = 0; j < 32; ++j) w[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
}

/// Q5_0 / Q5_1 packing of 32 codes 0..31.
void pack_q5(const uint8_t* L, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const uint32_t a = L[j], b = L[j + 16];
    qs[j] = static_cast<uint8_t>((a & 0x0F) | ((b & 0x0F) << 4));
    qh |= ((a & 0x10u) >> 4) << j;
    qh |= ((b & 0x10u) >> 4) << (j + 16);
  }
  for (int k = 0; k < 4; ++k) qh_bytes[k] = static_cast<uint8_t>(qh >> (8 * k));
}

}  // namespace

void quantize_weighted_q2_K(const float* src, void* dst, int64_t n, const float* qw) {
  if (qw == nullptr) return from_float_q2_K(src, dst, n);
  const int64_t nb = block_count(n, QK_K, "Q2_K");
  auto* y = static_cast<block_q2_K*>(dst);
  uint8_t L[QK_K], Laux[16], Ls[16], Lm[16];
  float mins[16], scales[16], sw[16], weight[16];
  for (int64_t i = 0; i < nb; ++i, src += QK_K, qw += QK_K) {
    const float sigma2 = sum_squares(src, QK_K) / QK_K;
    for (int j = 0; j < 16; ++j) {
      sw[j] = 0;
      for (int l = 0; l < 16; ++l) {
        weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + src[16 * j + l] * src[16 * j + l]);
        sw[j] += weight[l];
      }
      scales[j] = make_qkx3_quants(16, 3, src + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36);
    }
    y[i].d = fp32_to_fp16(make_qp_quants(16, 15, scales, Ls, sw));
    y[i].dmin = fp32_to_fp16(make_qp_quants(16, 15, mins, Lm, sw));
    const float dm = fp16_to_fp32(y[i].d), mm = fp16_to_fp32(y[i].dmin);
    for (int j = 0; j < 16; ++j) y[i].scales[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
    for (int j = 0; j < 16; ++j) {
      const float d = dm * (y[i].scales[j] & 0xF);
      if (d == 0) continue;
      const float m = mm * (y[i].scales[j] >> 4);
      for (int l = 0; l < 16; ++l)
        L[16 * j + l] = static_cast<uint8_t>(clamp_int(nint((src[16 * j + l] + m) / d), 0, 3));
    }
    pack_2bit(L, y[i].qs);
  }
}

void quantize_weighted_q3_K(const float* src, void* dst, int64_t n, const float* qw) {
  if (qw == nullptr) return from_float_q3_K(src, dst, n);
  const int64_t nb = block_count(n, QK_K, "Q3_K");
  auto* y = static_cast<block_q3_K*>(dst);
  int8_t L[QK_K], Ls[16];
  float scales[16], weights[16], sw[16];
  for (int64_t i = 0; i < nb; ++i, src += QK_K, qw += QK_K) {
    const float sigma2 = 2 * sum_squares(src, QK_K) / QK_K;
    for (int j = 0; j < 16; ++j) {
      sw[j] = 0;
      for (int l = 0; l < 16; ++l) {
        weights[l] = qw[16 * j + l] * std::sqrt(sigma2 + src[16 * j + l] * src[16 * j + l]);
        sw[j] += weights[l];
      }
      scales[j] = make_qx_quants_w(16, 4, src + 16 * j, L + 16 * j, weights);
    }
    std::memset(y[i].scales, 0, sizeof(y[i].scales));
    const float d_block = make_qx_quants_w(16, 32, scales, Ls, sw);
    for (int j = 0; j < 16; ++j) {
      int l = Ls[j];  // signed scale + 32, 0..63 (q3_K_scale subtracts 32)
      if (j < 8) y[i].scales[j] = static_cast<uint8_t>(l & 0xF);
      else y[i].scales[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
      l = (l >> 4) & 3;
      y[i].scales[8 + j % 4] |= static_cast<uint8_t>(l << (2 * (j / 4)));
    }
    y[i].d = fp32_to_fp16(d_block);
    const float dd = fp16_to_fp32(y[i].d);
    for (int j = 0; j < 16; ++j) {
      const float d = dd * q3_K_scale(y[i].scales, j);
      if (d == 0) continue;
      for (int l = 0; l < 16; ++l) L[16 * j + l] = static_cast<int8_t>(clamp_int(nint(src[16 * j + l] / d), -4, 3) + 4);
    }
    // L is 0..7 here: bit 2 goes to hmask, the low 2 bits to qs (formats.md §2.3).
    std::memset(y[i].hmask, 0, sizeof(y[i].hmask));
    uint8_t low[QK_K];
    for (int e = 0; e < QK_K; ++e) {
      int c = L[e];
      if (c > 3) {
        y[i].hmask[e % 32] |= static_cast<uint8_t>(1 << (e / 32));
        c -= 4;
      }
      low[e] = static_cast<uint8_t>(c);
    }
    pack_2bit(low, y[i].qs);
  }
}

void quantize_weighted_q4_K(const float* src, void* dst, int64_t n, const float* qw) {
  if (qw == nullptr) return from_float_q4_K(src, dst, n);
  const int64_t nb = block_count(n, QK_K, "Q4_K");
  auto* y = static_cast<block_q4_K*>(dst);
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i, src += QK_K, qw += QK_K) {
    scale_min_superblock_w(src, qw, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
    for (int p = 0; p < 4; ++p)
      for (int l = 0; l < 32; ++l) y[i].qs[32 * p + l] = static_cast<uint8_t>(L[64 * p + l] | (L[64 * p + 32 + l] << 4));
  }
}

void quantize_weighted_q5_K(const float* src, void* dst, int64_t n, const float* qw) {
  if (qw == nullptr) return from_float_q5_K(src, dst, n);
  const int64_t nb = block_count(n, QK_K, "Q5_K");
  auto* y = static_cast<block_q5_K*>(dst);
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i, src += QK_K, qw += QK_K) {
    scale_min_superblock_w(src, qw, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int p = 0; p < 4; ++p)
      for (int l = 0; l < 32; ++l) {
        const int lo = L[64 * p + l], hi = L[64 * p + 32 + l];
        y[i].qs[32 * p + l] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
        y[i].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * p)) | ((hi >> 4) << (2 * p + 1)));
      }
  }
}

void quantize_weighted_q6_K(const float* src, void* dst, int64_t n, const float* qw) {
  if (qw == nullptr) return from_float_q6_K(src, dst, n);
  const int64_t nb = block_count(n, QK_K, "Q6_K");
  auto* y = static_cast<block_q6_K*>(dst);
  int8_t L8[QK_K];
  uint8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t i = 0; i < nb; ++i, src += QK_K, qw += QK_K) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      scales[ib] = make_qx_quants_w(16, 32, src + 16 * ib, L8 + 16 * ib, qw + 16 * ib);
      if (std::fabs(scales[ib]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[ib]);
        max_scale = scales[ib];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[i], 0, sizeof(block_q6_K));
      continue;
    }
    for (int e = 0; e < QK_K; ++e) L[e] = static_cast<uint8_t>(L8[e]);
    const float iscale = -128.f / max_scale;
    y[i].d = fp32_to_fp16(1 / iscale);
    for (int ib = 0; ib < QK_K / 16; ++ib)
      y[i].scales[ib] = static_cast<int8_t>(std::min(127, nint(iscale * scales[ib])));
    const float d = fp16_to_fp32(y[i].d);
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      const float dj = d * y[i].scales[ib];
      if (dj == 0) continue;
      for (int l = 0; l < 16; ++l)
        L[16 * ib + l] = static_cast<uint8_t>(clamp_int(nint(src[16 * ib + l] / dj), -32, 31) + 32);
    }
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        const uint8_t* c = L + 128 * h + l;
        y[i].ql[64 * h + l] = static_cast<uint8_t>((c[0] & 0x0F) | ((c[64] & 0x0F) << 4));
        y[i].ql[64 * h + 32 + l] = static_cast<uint8_t>((c[32] & 0x0F) | ((c[96] & 0x0F) << 4));
        y[i].qh[32 * h + l] =
            static_cast<uint8_t>((c[0] >> 4) | ((c[32] >> 4) << 2) | ((c[64] >> 4) << 4) | ((c[96] >> 4) << 6));
      }
  }
}

void quantize_weighted_q4_0(const float* src, void* dst, int64_t n, const float* qw) {
  if (qw == nullptr) return from_float_q4_0(src, dst, n);
  const int64_t nb = block_count(n, QK4_0, "Q4_0");
  auto* y = static_cast<block_q4_0*>(dst);
  const float sigma2 = sum_squares(src, n) / static_cast<float>(n);
  float w[32];
  int8_t L[32];
  for (int64_t ib = 0; ib < nb; ++ib) {
    legacy_weights(src + 32 * ib, qw + 32 * ib, sigma2, w);
    y[ib].d = fp32_to_fp16(make_qx_quants_w(32, 8, src + 32 * ib, L, w));
    for (int j = 0; j < 16; ++j) y[ib].qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
  }
}

void quantize_weighted_q5_0(const float* src, void* dst, int64_t n, const float* qw) {
  if (qw == nullptr) return from_float_q5_0(src, dst, n);
  const int64_t nb = block_count(n, QK5_0, "Q5_0");
  auto* y = static_cast<block_q5_0*>(dst);
  const float sigma2 = sum_squares(src, n) / static_cast<float>(n);
  float w[32];
  int8_t L[32];
  uint8_t U[32];
  for (int64_t ib = 0; ib < nb; ++ib) {
    legacy_weights(src + 32 * ib, qw + 32 * ib, sigma2, w);
    y[ib].d = fp32_to_fp16(make_qx_quants_w(32, 16, src + 32 * ib, L, w));
    for (int j = 0; j < 32; ++j) U[j] = static_cast<uint8_t>(L[j]);
    pack_q5(U, y[ib].qs, y[ib].qh);
  }
}

void quantize_weighted_q4_1(const float* src, void* dst, int64_t n, const float* qw) {
  if (qw == nullptr) return from_float_q4_1(src, dst, n);
  const int64_t nb = block_count(n, QK4_1, "Q4_1");
  auto* y = static_cast<block_q4_1*>(dst);
  const float sigma2 = sum_squares(src, n) / static_cast<float>(n);
  float w[32], min;
  uint8_t L[32], Laux[32];
  for (int64_t ib = 0; ib < nb; ++ib) {
    legacy_weights(src + 32 * ib, qw + 32 * ib, sigma2, w);
    const float d = make_qkx3_quants(32, 15, src + 32 * ib, w, L, &min, Laux, -0.9f, 0.05f, 36);
    y[ib].d = fp32_to_fp16(d);
    y[ib].m = fp32_to_fp16(-min);
    for (int j = 0; j < 16; ++j) y[ib].qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
  }
}

void quantize_weighted_q5_1(const float* src, void* dst, int64_t n, const float* qw) {
  if (qw == nullptr) return from_float_q5_1(src, dst, n);
  const int64_t nb = block_count(n, QK5_1, "Q5_1");
  auto* y = static_cast<block_q5_1*>(dst);
  const float sigma2 = sum_squares(src, n) / static_cast<float>(n);
  float w[32], min;
  uint8_t L[32], Laux[32];
  for (int64_t ib = 0; ib < nb; ++ib) {
    legacy_weights(src + 32 * ib, qw + 32 * ib, sigma2, w);
    const float d = make_qkx3_quants(32, 31, src + 32 * ib, w, L, &min, Laux, -0.9f, 0.05f, 36);
    y[ib].d = fp32_to_fp16(d);
    y[ib].m = fp32_to_fp16(-min);
    pack_q5(L, y[ib].qs, y[ib].qh);
  }
}

void quantize_weighted_iq4_nl(const float* src, void* dst, int64_t n, const float* qw) {
  if (qw == nullptr) return from_float_iq4_nl(src, dst, n);
  const int64_t nb = block_count(n, QK4_NL, "IQ4_NL");
  auto* y = static_cast<block_iq4_nl*>(dst);
  uint16_t unused_h = 0;
  uint8_t unused_l[4];
  for (int64_t ib = 0; ib < nb; ++ib)
    iq4_superblock_w(32, src + 32 * ib, qw + 32 * ib, &y[ib].d, y[ib].qs, &unused_h, unused_l);
}

void quantize_weighted_iq4_xs(const float* src, void* dst, int64_t n, const float* qw) {
  if (qw == nullptr) return from_float_iq4_xs(src, dst, n);
  const int64_t nb = block_count(n, QK_K, "IQ4_XS");
  auto* y = static_cast<block_iq4_xs*>(dst);
  for (int64_t i = 0; i < nb; ++i)
    iq4_superblock_w(QK_K, src + QK_K * i, qw + QK_K * i, &y[i].d, y[i].qs, &y[i].scales_h, y[i].scales_l);
}

FromFloatWeightedFn weighted_quantizer(GgmlType type) {
  switch (type) {
    case GgmlType::Q2_K: return quantize_weighted_q2_K;
    case GgmlType::Q3_K: return quantize_weighted_q3_K;
    case GgmlType::Q4_K: return quantize_weighted_q4_K;
    case GgmlType::Q5_K: return quantize_weighted_q5_K;
    case GgmlType::Q6_K: return quantize_weighted_q6_K;
    case GgmlType::Q4_0: return quantize_weighted_q4_0;
    case GgmlType::Q4_1: return quantize_weighted_q4_1;
    case GgmlType::Q5_0: return quantize_weighted_q5_0;
    case GgmlType::Q5_1: return quantize_weighted_q5_1;
    case GgmlType::IQ4_NL: return quantize_weighted_iq4_nl;
    case GgmlType::IQ4_XS: return quantize_weighted_iq4_xs;
    case GgmlType::IQ2_XXS: return quantize_weighted_iq2_xxs;
    case GgmlType::IQ2_XS: return quantize_weighted_iq2_xs;
    case GgmlType::IQ2_S: return quantize_weighted_iq2_s;
    case GgmlType::IQ3_XXS: return quantize_weighted_iq3_xxs;
    case GgmlType::IQ3_S: return quantize_weighted_iq3_s;
    case GgmlType::IQ1_S: return quantize_weighted_iq1_s;
    case GgmlType::IQ1_M: return quantize_weighted_iq1_m;
    default: return nullptr;
  }
}

}  // namespace hearth::quant
