// Quantizers of the lattice i-quant formats (formats.md §3.6). The searches follow ggml's
// (quantize_row_iq2_xxs_impl etc.): per sub-block a few candidate scales, each group of 8 (or 4)
// magnitudes rounded to the lattice levels 2L + 1 and, off the grid, moved to the best of its
// nearest grid entries; the scale refitted by weighted least squares; the sub-block scales then
// stored relative to the super-block's. The tables the search needs are built here from our own
// grids (quant/iq_grids.h) at first use.
#include "quant/quantize_lattice.h"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "hearth/error.h"
#include "quant/blocks_iq.h"
#include "quant/convert.h"
#include "quant/convert_util.h"
#include "quant/fp16.h"
#include "quant/iq_grids.h"
#include "quant/quantize_weighted.h"

namespace hearth::quant {
namespace {

using detail::block_count;
using detail::clamp_int;

// ---------------------------------------------------------------------------------------------
// Lattice tables

/// Builds the table of a grid given as ggml's packed kgrid (formats.md §3.6 "Initialization"):
/// every packed point with all levels < n_levels that is not a grid entry gets the grid entries
/// of its `n_shells` smallest squared distances, ordered by (distance, index).
LatticeTable build_table(std::span<const uint16_t> kgrid, int width, int bits, int n_shells) {
  LatticeTable t;
  t.width = width;
  t.bits = bits;
  t.n_levels = bits == 2 ? 3 : 8;
  t.n_shells = n_shells;
  const int n_grid = static_cast<int>(kgrid.size());
  const uint32_t mask = (1u << bits) - 1;
  t.points.assign(kgrid.begin(), kgrid.end());
  t.levels.resize(static_cast<size_t>(n_grid * width));
  for (int i = 0; i < n_grid; ++i)
    for (int k = 0; k < width; ++k)
      t.levels[static_cast<size_t>(width * i + k)] = static_cast<int8_t>((kgrid[i] >> (bits * k)) & mask);
  const uint32_t n_points = 1u << (bits * width);
  t.map.assign(n_points, LatticeTable::kNoPoint);
  for (int i = 0; i < n_grid; ++i) t.map[kgrid[i]] = i;

  std::vector<int> d2(static_cast<size_t>(n_grid));
  int8_t pos[8];
  for (uint32_t u = 0; u < n_points; ++u) {
    if (t.map[u] >= 0) continue;
    bool valid = true;
    for (int k = 0; k < width; ++k) {
      pos[k] = static_cast<int8_t>((u >> (bits * k)) & mask);
      valid = valid && pos[k] < t.n_levels;
    }
    if (!valid) continue;
    // Squared distances are small integers: the shells are the n_shells smallest distinct ones.
    int max_d2 = 0;
    for (int j = 0; j < n_grid; ++j) {
      const int8_t* g = t.levels.data() + width * j;
      int s = 0;
      for (int k = 0; k < width; ++k) s += (g[k] - pos[k]) * (g[k] - pos[k]);
      d2[static_cast<size_t>(j)] = s;
      max_d2 = std::max(max_d2, s);
    }
    const size_t offset = t.neighbours.size();
    t.neighbours.push_back(0);
    int prev = -1;
    for (int shell = 0; shell < n_shells; ++shell) {
      int next = INT32_MAX;  // smallest distance above the previous shell
      for (int v : d2)
        if (v > prev && v < next) next = v;
      if (next == INT32_MAX) break;
      for (int j = 0; j < n_grid; ++j)
        if (d2[static_cast<size_t>(j)] == next) t.neighbours.push_back(static_cast<uint16_t>(j));
      prev = next;
    }
    t.neighbours[offset] = static_cast<uint16_t>(t.neighbours.size() - offset - 1);
    t.map[u] = -static_cast<int32_t>(offset + 1);
  }
  return t;
}

const LatticeTable& table_iq2_xxs() {
  static const LatticeTable t = build_table(kgrid_2bit_256(), 8, 2, 2);
  return t;
}
const LatticeTable& table_iq2_xs() {
  static const LatticeTable t = build_table(kgrid_2bit_512(), 8, 2, 2);
  return t;
}
const LatticeTable& table_iq2_s() {
  static const LatticeTable t = build_table(kgrid_2bit_1024(), 8, 2, 1);
  return t;
}
const LatticeTable& table_iq1() {
  static const LatticeTable t = build_table(kgrid_1bit_2048(), 8, 2, 3);
  return t;
}
const LatticeTable& table_iq3_xxs() {
  static const LatticeTable t = build_table(kgrid_3bit_256(), 4, 3, 2);
  return t;
}
const LatticeTable& table_iq3_s() {
  static const LatticeTable t = build_table(kgrid_3bit_512(), 4, 3, 3);
  return t;
}

/// Grid index of the point with every level `level`, or 0 if the grid lacks it.
uint16_t uniform_point(const LatticeTable& t, int level) {
  uint32_t u = 0;
  for (int k = 0; k < t.width; ++k) u |= static_cast<uint32_t>(level) << (t.bits * k);
  const int i = t.index(u);
  return static_cast<uint16_t>(i >= 0 ? i : 0);
}

/// Largest finite binary16 value: d is clamped to it so that the stored scale stays finite.
constexpr float kMaxHalf = 65504.0f;

uint16_t finite_fp16(float d) { return fp32_to_fp16(std::clamp(d, -kMaxHalf, kMaxHalf)); }

float sum_squares(const float* x, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

// ---------------------------------------------------------------------------------------------
// IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S: magnitudes on the lattice, signs stored separately

/// Weighting without importance (see quantize_lattice.h).
enum class DefaultWeight { kX2, kQuarterSigmaPlusX2 };

/// What happens after the candidate scales were tried, when groups of the best candidate were
/// moved off their rounded point (ggml's three variants).
enum class Refine {
  kAlways,         ///< IQ2_XXS: every group re-rounded at the best scale, scale refitted
  kOffGrid,        ///< IQ2_XS, IQ2_S, IQ3_XXS: only the moved groups re-rounded
  kAllIfOffGrid,   ///< IQ3_S: every group re-rounded if any was moved (or no candidate fitted)
};

/// The parameters of one of the five searches.
struct LatticeSearch {
  const char* name;
  const LatticeTable& (*table)();
  int block;              ///< elements per sub-block scale: 16 or 32
  bool parity_signs;      ///< 7-bit sign indices (even number of negatives per 8)
  float sigma2_factor;    ///< σ² = factor·Σx²/256 in the importance weight qw·sqrt(σ² + x²)
  DefaultWeight dflt;     ///< weight without importance
  int ntry;               ///< candidates t = −ntry..ntry
  float step;             ///< inverse scale (2·n_levels − 1 + step·t)/max
  bool qp_start;          ///< IQ2_XXS: `max` is 3·make_qp_quants(4)'s scale, not the max magnitude
  Refine refine;
  float max_eps;          ///< sub-blocks whose largest magnitude is below this are zero
  float fudge;            ///< stored d = fudge·max_scale/31
};

/// One super-block's search result.
struct LatticeCodes {
  float scales[QK_K / 16];  ///< per sub-block, ≥ 0
  uint16_t idx[QK_K / 4];   ///< grid index per group of `width`
  uint8_t signs[QK_K / 8];  ///< sign byte per 8 elements (bit k: element k negative)
  float max_scale;
};

/// Rounds `width` magnitudes at inverse scale id to levels (2L + 1 ≈ id·x), clamped to the
/// lattice; returns the packed point.
uint32_t round_group(const LatticeTable& t, const float* xval, float id, int8_t* L) {
  uint32_t u = 0;
  for (int k = 0; k < t.width; ++k) {
    const int l = clamp_int(nint(0.5f * (id * xval[k] - 1)), 0, t.n_levels - 1);
    L[k] = static_cast<int8_t>(l);
    u |= static_cast<uint32_t>(l) << (t.bits * k);
  }
  return u;
}

/// Grid index for the rounded point u: u itself when it is a grid entry, else the neighbour with
/// the least Σ w·(scale·(2L + 1) − x)², whose levels replace L. Sets *on_grid.
uint16_t snap_group(const LatticeTable& t, uint32_t u, const float* xval, const float* w, float scale, int8_t* L,
                    bool* on_grid) {
  const int i = t.index(u);
  *on_grid = i >= 0;
  if (i >= 0) return static_cast<uint16_t>(i);
  const std::span<const uint16_t> nb = t.nearest(u);  // never empty: u has levels < n_levels
  uint16_t best = nb[0];
  float best_d2 = FLT_MAX;
  for (uint16_t j : nb) {
    const int8_t* g = t.levels.data() + t.width * j;
    float d2 = 0;
    for (int k = 0; k < t.width; ++k) {
      const float diff = scale * static_cast<float>(2 * g[k] + 1) - xval[k];
      d2 += w[k] * diff * diff;
    }
    if (d2 < best_d2) {
      best_d2 = d2;
      best = j;
    }
  }
  std::memcpy(L, t.levels.data() + t.width * best, static_cast<size_t>(t.width));
  return best;
}

/// Σ w·x·q and Σ w·q² with q = 2L + 1 over n elements.
void fit_sums(int n, const float* xval, const float* w, const int8_t* L, float* sumqx, float* sumq2) {
  float qx = 0, q2 = 0;
  for (int i = 0; i < n; ++i) {
    const float q = static_cast<float>(2 * L[i] + 1);
    qx += w[i] * xval[i] * q;
    q2 += w[i] * q * q;
  }
  *sumqx = qx;
  *sumq2 = q2;
}

/// The scale search of one sub-block of p.block magnitudes xval (weights w); writes the grid
/// index of each group to idx and returns the scale (negative only if the fit came out so).
float search_sub_block(const LatticeSearch& p, const LatticeTable& t, const float* xval, const float* w,
                       uint16_t* idx) {
  const int W = t.width, n = p.block, ng = n / W, nl = t.n_levels;
  float waux[32];
  for (int i = 0; i < n; ++i) waux[i] = std::sqrt(w[i]);
  std::fill(idx, idx + ng, uniform_point(t, 0));
  float max = xval[0];
  for (int i = 1; i < n; ++i) max = std::max(max, xval[i]);
  if (!(max >= p.max_eps)) return 0.f;

  float ref_max = max;
  float scale = max / static_cast<float>(2 * nl - 1);
  if (p.qp_start) {
    uint8_t Lq[32];
    scale = detail::make_qp_quants(n, nl + 1, xval, Lq, w);
    ref_max = scale * static_cast<float>(nl);
    if (!(ref_max > 0)) return 0.f;
  }
  int8_t L[32] = {}, Laux[32];
  uint16_t idx_aux[8];
  bool on[8], on_aux[8];
  std::fill(on, on + ng, p.refine != Refine::kAllIfOffGrid);
  float best = 0;
  for (int is = -p.ntry; is <= p.ntry; ++is) {
    const float id = (static_cast<float>(2 * nl - 1) + static_cast<float>(is) * p.step) / ref_max;
    const float this_scale = 1 / id;
    for (int k = 0; k < ng; ++k) {
      const uint32_t u = round_group(t, xval + W * k, id, Laux + W * k);
      idx_aux[k] = snap_group(t, u, xval + W * k, waux + W * k, this_scale, Laux + W * k, &on_aux[k]);
    }
    float sumqx, sumq2;
    fit_sums(n, xval, w, Laux, &sumqx, &sumq2);
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      scale = sumqx / sumq2;
      best = scale * sumqx;
      std::memcpy(L, Laux, static_cast<size_t>(n));
      std::copy(idx_aux, idx_aux + ng, idx);
      std::copy(on_aux, on_aux + ng, on);
    }
  }
  const bool any_off = !std::all_of(on, on + ng, [](bool b) { return b; });
  if (scale > 0 && (p.refine == Refine::kAlways || any_off)) {
    const float id = 1 / scale;
    for (int k = 0; k < ng; ++k) {
      if (p.refine == Refine::kOffGrid && on[k]) continue;
      const uint32_t u = round_group(t, xval + W * k, id, L + W * k);
      bool unused;
      idx[k] = snap_group(t, u, xval + W * k, waux + W * k, scale, L + W * k, &unused);
    }
    float sumqx, sumq2;
    fit_sums(n, xval, w, L, &sumqx, &sumq2);
    if (sumq2 > 0) scale = sumqx / sumq2;
  }
  return scale;
}

/// Runs the search over one super-block of 256 values x (importance qw or nullptr).
void search_super_block(const LatticeSearch& p, const float* x, const float* qw, LatticeCodes& c) {
  const LatticeTable& t = p.table();
  const float sumx2 = sum_squares(x, QK_K);
  const float sigma2 = p.sigma2_factor * sumx2 / QK_K;
  const float sigma2_default = 2 * sumx2 / QK_K;  // IQ2_S's default weight uses σ² = 2Σx²/256
  float weight[32], xval[32];
  c.max_scale = 0;
  const int groups_per_block = p.block / t.width;
  for (int ib = 0; ib < QK_K / p.block; ++ib) {
    const float* xb = x + p.block * ib;
    for (int i = 0; i < p.block; ++i) {
      if (qw != nullptr) weight[i] = qw[p.block * ib + i] * std::sqrt(sigma2 + xb[i] * xb[i]);
      else if (p.dflt == DefaultWeight::kX2) weight[i] = xb[i] * xb[i];
      else weight[i] = 0.25f * sigma2_default + xb[i] * xb[i];
    }
    uint8_t* signs = c.signs + p.block / 8 * ib;
    for (int j = 0; j < p.block / 8; ++j) {
      const float* xg = xb + 8 * j;
      float* vg = xval + 8 * j;
      uint8_t s = 0;
      for (int i = 0; i < 8; ++i) {
        vg[i] = std::fabs(xg[i]);
        if (xg[i] < 0) s |= static_cast<uint8_t>(1 << i);
      }
      if (p.parity_signs && std::popcount(s) % 2 != 0) {
        // An odd number of negatives cannot be stored: the element where a wrong sign costs
        // least (smallest w·x²) takes the other sign, i.e. its magnitude becomes −|x|.
        int imin = 0;
        float min = weight[8 * j] * xg[0] * xg[0];
        for (int i = 1; i < 8; ++i) {
          const float v = weight[8 * j + i] * xg[i] * xg[i];
          if (v < min) {
            min = v;
            imin = i;
          }
        }
        vg[imin] = -vg[imin];
        s ^= static_cast<uint8_t>(1 << imin);
      }
      signs[j] = s;
    }
    float scale = search_sub_block(p, t, xval, weight, c.idx + groups_per_block * ib);
    if (scale < 0) {  // flip the scale and every sign (keeps the sign parity of groups of 8)
      scale = -scale;
      for (int j = 0; j < p.block / 8; ++j) signs[j] = static_cast<uint8_t>(~signs[j]);
    }
    c.scales[ib] = scale;
    c.max_scale = std::max(c.max_scale, scale);
  }
}

/// 4-bit sub-scale l of a scale s relative to d: s ≈ d·(2l + 1).
int sub_scale(float s, float id) { return clamp_int(nint(0.5f * (id * s - 1)), 0, 15); }

const LatticeSearch kIq2xxs = {"IQ2_XXS", table_iq2_xxs, 32, true, 1.f, DefaultWeight::kQuarterSigmaPlusX2,
                               6, 0.1f, true, Refine::kAlways, detail::kGroupMaxEps, 1.f};
const LatticeSearch kIq2xs = {"IQ2_XS", table_iq2_xs, 16, true, 1.f, DefaultWeight::kQuarterSigmaPlusX2,
                              9, 0.1f, false, Refine::kOffGrid, detail::kGroupMaxEps, 1.f};
const LatticeSearch kIq2s = {"IQ2_S", table_iq2_s, 16, false, 2.f, DefaultWeight::kQuarterSigmaPlusX2,
                             9, 0.1f, false, Refine::kOffGrid, 1e-8f, 0.9875f};
const LatticeSearch kIq3xxs = {"IQ3_XXS", table_iq3_xxs, 32, true, 2.f, DefaultWeight::kX2,
                               15, 0.2f, false, Refine::kOffGrid, 1e-8f, 1.0125f};
const LatticeSearch kIq3s = {"IQ3_S", table_iq3_s, 32, false, 2.f, DefaultWeight::kX2,
                             9, 0.2f, false, Refine::kAllIfOffGrid, std::numeric_limits<float>::denorm_min(), 1.033f};

// ---------------------------------------------------------------------------------------------
// IQ1_S, IQ1_M: ternary grid values shifted by ±1/8

/// The ternary search of one sub-block of n = 32 (IQ1_S, one shift) or 16 (IQ1_M, one shift
/// per group of 8) elements. Writes the grid index per group of 8 and the shift bits (bit g of
/// *neg: group g uses −δ) and returns the scale (≥ 0), 0 for a block without signal.
float search_iq1_block(const LatticeTable& t, int n, bool shift_per_group, const float* x, const float* w,
                       uint16_t zero_point, float max_eps, uint16_t* idx, int* neg) {
  const int ng = n / 8;
  const int n_halves = shift_per_group ? ng : 1;  // parts with their own shift
  std::fill(idx, idx + ng, zero_point);
  *neg = 0;
  float max = 0;
  for (int i = 0; i < n; ++i) max = std::max(max, std::fabs(x[i]));
  if (!(max >= max_eps)) return 0.f;

  // The exact weighted least-squares assignment of the 3 levels: sorted by value, the levels are
  // contiguous runs [0, i1), [i1, i2), [i2, n); prefix sums make every split O(1).
  int order[32];
  std::iota(order, order + n, 0);
  const auto key = [&](int i) { return std::isnan(x[i]) ? 0.f : x[i]; };
  std::sort(order, order + n, [&](int a, int b) { return key(a) < key(b) || (key(a) == key(b) && a < b); });
  float px[2][33], pw[2][33];
  px[0][0] = px[1][0] = pw[0][0] = pw[1][0] = 0;
  for (int j = 0; j < n; ++j) {
    const int i = order[j];
    const int h = n_halves == 1 ? 0 : i / 8;
    for (int hh = 0; hh < 2; ++hh) {
      px[hh][j + 1] = px[hh][j] + (hh == h ? w[i] * x[i] : 0.f);
      pw[hh][j + 1] = pw[hh][j] + (hh == h ? w[i] : 0.f);
    }
  }
  const float vp[3] = {-1 + kIq1Delta, kIq1Delta, 1 + kIq1Delta};
  const float vm[3] = {-1 - kIq1Delta, -kIq1Delta, 1 - kIq1Delta};
  float best = -FLT_MAX, scale = 0;
  int best_i1 = -1, best_i2 = -1, best_combo = 0;
  const int n_combos = 1 << n_halves;
  for (int i1 = 0; i1 <= n; ++i1) {
    for (int i2 = i1; i2 <= n; ++i2) {
      float qx[2][2], q2[2][2];  // [half][shift −]
      for (int h = 0; h < n_halves; ++h)
        for (int s = 0; s < 2; ++s) {
          const float* v = s ? vm : vp;
          const float a = px[h][i1], b = px[h][i2] - px[h][i1], c = px[h][n] - px[h][i2];
          const float wa = pw[h][i1], wb = pw[h][i2] - pw[h][i1], wc = pw[h][n] - pw[h][i2];
          qx[h][s] = a * v[0] + b * v[1] + c * v[2];
          q2[h][s] = wa * v[0] * v[0] + wb * v[1] * v[1] + wc * v[2] * v[2];
        }
      for (int combo = 0; combo < n_combos; ++combo) {
        float sumqx = 0, sumq2 = 0;
        for (int h = 0; h < n_halves; ++h) {
          const int s = (combo >> (n_halves - 1 - h)) & 1;  // first half in the high bit (ggml's order)
          sumqx += qx[h][s];
          sumq2 += q2[h][s];
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
          scale = sumqx / sumq2;
          best = scale * sumqx;
          best_i1 = i1;
          best_i2 = i2;
          best_combo = combo;
        }
      }
    }
  }
  if (best_i1 < 0) return 0.f;
  int8_t L[32];
  for (int j = 0; j < n; ++j) L[order[j]] = static_cast<int8_t>(j < best_i1 ? 0 : j < best_i2 ? 1 : 2);
  if (scale < 0) {  // x ≈ s·(v_L ± δ) = (−s)·(v_{2−L} ∓ δ)
    for (int j = 0; j < n; ++j) L[j] = static_cast<int8_t>(2 - L[j]);
    scale = -scale;
    best_combo ^= n_combos - 1;
  }
  for (int g = 0; g < ng; ++g) {
    const int h = n_halves == 1 ? 0 : g;
    if ((best_combo >> (n_halves - 1 - h)) & 1) *neg |= 1 << g;
  }
  bool all_on_grid = true;
  for (int g = 0; g < ng; ++g) {
    const float* v = (*neg >> g) & 1 ? vm : vp;
    uint32_t u = 0;
    for (int k = 0; k < 8; ++k) u |= static_cast<uint32_t>(L[8 * g + k]) << (2 * k);
    const int i = t.index(u);
    if (i >= 0) {
      idx[g] = static_cast<uint16_t>(i);
      continue;
    }
    all_on_grid = false;
    const std::span<const uint16_t> nb = t.nearest(u);
    uint16_t bj = nb[0];
    float best_d2 = FLT_MAX;
    for (uint16_t j : nb) {
      const int8_t* gl = t.levels.data() + 8 * j;
      float d2 = 0;
      for (int k = 0; k < 8; ++k) {
        const float diff = scale * v[gl[k]] - x[8 * g + k];
        d2 += w[8 * g + k] * diff * diff;
      }
      if (d2 < best_d2) {
        best_d2 = d2;
        bj = j;
      }
    }
    idx[g] = bj;
    std::memcpy(L + 8 * g, t.levels.data() + 8 * bj, 8);
  }
  if (!all_on_grid) {
    float sumqx = 0, sumq2 = 0;
    for (int g = 0; g < ng; ++g) {
      const float* v = (*neg >> g) & 1 ? vm : vp;
      for (int k = 0; k < 8; ++k) {
        const float q = v[L[8 * g + k]];
        sumqx += w[8 * g + k] * q * x[8 * g + k];
        sumq2 += w[8 * g + k] * q * q;
      }
    }
    if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
  }
  return scale;
}

/// IQ1 weights of n elements: importance qw·sqrt(σ² + x²) or x².
void iq1_weights(int n, const float* x, const float* qw, float sigma2, float* w) {
  for (int i = 0; i < n; ++i) w[i] = qw != nullptr ? qw[i] * std::sqrt(sigma2 + x[i] * x[i]) : x[i] * x[i];
}

constexpr float kIq1sMaxEps = 1e-12f;  // ggml's GROUP_MAX_EPS_IQ1_S
constexpr float kIq1mMaxEps = 1e-7f;   // ggml's GROUP_MAX_EPS_IQ1_M

}  // namespace

const LatticeTable& lattice_table(GgmlType type) {
  switch (type) {
    case GgmlType::IQ2_XXS: return table_iq2_xxs();
    case GgmlType::IQ2_XS: return table_iq2_xs();
    case GgmlType::IQ2_S: return table_iq2_s();
    case GgmlType::IQ3_XXS: return table_iq3_xxs();
    case GgmlType::IQ3_S: return table_iq3_s();
    case GgmlType::IQ1_S: case GgmlType::IQ1_M: return table_iq1();
    default: throw Error(std::string("no lattice table for type ") + std::string(type_name(type)));
  }
}

void quantize_weighted_iq2_xxs(const float* src, void* dst, int64_t n, const float* qw) {
  const int64_t nb = block_count(n, QK_K, "IQ2_XXS");
  auto* y = static_cast<block_iq2_xxs*>(dst);
  LatticeCodes c;
  for (int64_t i = 0; i < nb; ++i, src += QK_K, qw = qw ? qw + QK_K : nullptr) {
    search_super_block(kIq2xxs, src, qw, c);
    std::memset(&y[i], 0, sizeof(block_iq2_xxs));
    if (!(c.max_scale > 0)) continue;
    const float d = c.max_scale / 31;
    y[i].d = finite_fp16(d * kIq2xxs.fudge);
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      uint8_t* chunk = y[i].qs + 8 * ib;
      uint32_t w = static_cast<uint32_t>(sub_scale(c.scales[ib], 1 / d)) << 28;
      for (int g = 0; g < 4; ++g) {
        chunk[g] = static_cast<uint8_t>(c.idx[4 * ib + g]);
        w |= static_cast<uint32_t>(c.signs[4 * ib + g] & 127) << (7 * g);
      }
      for (int b = 0; b < 4; ++b) chunk[4 + b] = static_cast<uint8_t>(w >> (8 * b));
    }
  }
}

void quantize_weighted_iq2_xs(const float* src, void* dst, int64_t n, const float* qw) {
  const int64_t nb = block_count(n, QK_K, "IQ2_XS");
  auto* y = static_cast<block_iq2_xs*>(dst);
  LatticeCodes c;
  for (int64_t i = 0; i < nb; ++i, src += QK_K, qw = qw ? qw + QK_K : nullptr) {
    search_super_block(kIq2xs, src, qw, c);
    std::memset(&y[i], 0, sizeof(block_iq2_xs));
    if (!(c.max_scale > 0)) continue;
    const float d = c.max_scale / 31;
    y[i].d = finite_fp16(d * kIq2xs.fudge);
    for (int g = 0; g < QK_K / 8; ++g) y[i].qs[g] = static_cast<uint16_t>(c.idx[g] | (c.signs[g] & 127) << 9);
    for (int ib = 0; ib < QK_K / 16; ++ib)
      y[i].scales[ib / 2] |= static_cast<uint8_t>(sub_scale(c.scales[ib], 1 / d) << (4 * (ib % 2)));
  }
}

void quantize_weighted_iq2_s(const float* src, void* dst, int64_t n, const float* qw) {
  const int64_t nb = block_count(n, QK_K, "IQ2_S");
  auto* y = static_cast<block_iq2_s*>(dst);
  LatticeCodes c;
  for (int64_t i = 0; i < nb; ++i, src += QK_K, qw = qw ? qw + QK_K : nullptr) {
    search_super_block(kIq2s, src, qw, c);
    std::memset(&y[i], 0, sizeof(block_iq2_s));
    if (!(c.max_scale > 0)) continue;
    const float d = c.max_scale / 31;
    y[i].d = finite_fp16(d * kIq2s.fudge);
    for (int g = 0; g < QK_K / 8; ++g) {
      y[i].qs[g] = static_cast<uint8_t>(c.idx[g] & 255);
      y[i].qh[g / 4] |= static_cast<uint8_t>((c.idx[g] >> 8) << (2 * (g % 4)));
      y[i].signs[g] = c.signs[g];
    }
    for (int ib = 0; ib < QK_K / 16; ++ib)
      y[i].scales[ib / 2] |= static_cast<uint8_t>(sub_scale(c.scales[ib], 1 / d) << (4 * (ib % 2)));
  }
}

void quantize_weighted_iq3_xxs(const float* src, void* dst, int64_t n, const float* qw) {
  const int64_t nb = block_count(n, QK_K, "IQ3_XXS");
  auto* y = static_cast<block_iq3_xxs*>(dst);
  LatticeCodes c;
  for (int64_t i = 0; i < nb; ++i, src += QK_K, qw = qw ? qw + QK_K : nullptr) {
    search_super_block(kIq3xxs, src, qw, c);
    std::memset(&y[i], 0, sizeof(block_iq3_xxs));
    if (!(c.max_scale > 0)) continue;
    const float d = c.max_scale / 31;
    y[i].d = finite_fp16(d * kIq3xxs.fudge);
    for (int g = 0; g < QK_K / 4; ++g) y[i].qs[g] = static_cast<uint8_t>(c.idx[g]);
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      uint32_t w = static_cast<uint32_t>(sub_scale(c.scales[ib], 1 / d)) << 28;
      for (int j = 0; j < 4; ++j) w |= static_cast<uint32_t>(c.signs[4 * ib + j] & 127) << (7 * j);
      for (int b = 0; b < 4; ++b) y[i].scales_signs[4 * ib + b] = static_cast<uint8_t>(w >> (8 * b));
    }
  }
}

void quantize_weighted_iq3_s(const float* src, void* dst, int64_t n, const float* qw) {
  const int64_t nb = block_count(n, QK_K, "IQ3_S");
  auto* y = static_cast<block_iq3_s*>(dst);
  LatticeCodes c;
  for (int64_t i = 0; i < nb; ++i, src += QK_K, qw = qw ? qw + QK_K : nullptr) {
    search_super_block(kIq3s, src, qw, c);
    std::memset(&y[i], 0, sizeof(block_iq3_s));
    if (!(c.max_scale > 0)) continue;
    const float d = c.max_scale / 31;
    y[i].d = finite_fp16(d * kIq3s.fudge);
    for (int g = 0; g < QK_K / 4; ++g) {
      y[i].qs[g] = static_cast<uint8_t>(c.idx[g] & 255);
      y[i].qh[g / 8] |= static_cast<uint8_t>((c.idx[g] >> 8) << (g % 8));
    }
    std::memcpy(y[i].signs, c.signs, sizeof(y[i].signs));
    for (int ib = 0; ib < QK_K / 32; ++ib)
      y[i].scales[ib / 2] |= static_cast<uint8_t>(sub_scale(c.scales[ib], 1 / d) << (4 * (ib % 2)));
  }
}

void quantize_weighted_iq1_s(const float* src, void* dst, int64_t n, const float* qw) {
  const int64_t nb = block_count(n, QK_K, "IQ1_S");
  auto* y = static_cast<block_iq1_s*>(dst);
  const LatticeTable& t = table_iq1();
  const uint16_t zero_point = uniform_point(t, 1);  // all levels 1: the ternary value 0
  float weight[32], scales[8];
  uint16_t idx[4];
  int neg[8];
  for (int64_t i = 0; i < nb; ++i, src += QK_K, qw = qw ? qw + QK_K : nullptr) {
    std::memset(&y[i], 0, sizeof(block_iq1_s));
    const float sigma2 = 2 * sum_squares(src, QK_K) / QK_K;
    float max_scale = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const float* xb = src + 32 * ib;
      iq1_weights(32, xb, qw ? qw + 32 * ib : nullptr, sigma2, weight);
      scales[ib] = search_iq1_block(t, 32, false, xb, weight, zero_point, kIq1sMaxEps, idx, &neg[ib]);
      uint16_t h = 0;
      for (int g = 0; g < 4; ++g) {
        y[i].qs[4 * ib + g] = static_cast<uint8_t>(idx[g] & 255);
        h |= static_cast<uint16_t>((idx[g] >> 8) << (3 * g));
      }
      y[i].qh[ib] = h;
      max_scale = std::max(max_scale, scales[ib]);
    }
    if (!(max_scale > 0)) continue;
    const float d = max_scale / 15;
    y[i].d = finite_fp16(d * 1.125f);
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const int l = clamp_int(nint(0.5f * (scales[ib] / d - 1)), 0, 7);
      y[i].qh[ib] |= static_cast<uint16_t>(l << 12 | (neg[ib] ? 0x8000 : 0));
    }
  }
}

void quantize_weighted_iq1_m(const float* src, void* dst, int64_t n, const float* qw) {
  const int64_t nb = block_count(n, QK_K, "IQ1_M");
  auto* y = static_cast<block_iq1_m*>(dst);
  const LatticeTable& t = table_iq1();
  const uint16_t zero_point = uniform_point(t, 1);
  const float vp[3] = {-1 + kIq1Delta, kIq1Delta, 1 + kIq1Delta};
  const float vm[3] = {-1 - kIq1Delta, -kIq1Delta, 1 - kIq1Delta};
  float weight[16], scales[16];
  uint16_t idx[QK_K / 8];
  int neg[16];
  for (int64_t i = 0; i < nb; ++i, src += QK_K, qw = qw ? qw + QK_K : nullptr) {
    std::memset(&y[i], 0, sizeof(block_iq1_m));
    const float sigma2 = 2 * sum_squares(src, QK_K) / QK_K;
    float max_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      const float* xb = src + 16 * ib;
      iq1_weights(16, xb, qw ? qw + 16 * ib : nullptr, sigma2, weight);
      scales[ib] = search_iq1_block(t, 16, true, xb, weight, zero_point, kIq1mMaxEps, idx + 2 * ib, &neg[ib]);
      max_scale = std::max(max_scale, scales[ib]);
    }
    for (int g = 0; g < QK_K / 8; ++g) y[i].qs[g] = static_cast<uint8_t>(idx[g] & 255);
    if (!(max_scale > 0)) {
      for (int ib = 0; ib < QK_K / 16; ++ib)
        y[i].qh[ib] = static_cast<uint8_t>((idx[2 * ib] >> 8) | (idx[2 * ib + 1] >> 8) << 4);
      continue;
    }
    float d = max_scale / 15;
    uint16_t sc[4] = {0, 0, 0, 0};
    float sumqx = 0, sumq2 = 0;  // least-squares d for the chosen codes and 3-bit scales
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      const int l = clamp_int(nint(0.5f * (scales[ib] / d - 1)), 0, 7);
      sc[ib / 4] |= static_cast<uint16_t>(l << (3 * (ib % 4)));
      // group 0's shift sign is bit 3 of qh, group 1's bit 7 (formats.md §2.5)
      y[i].qh[ib] = static_cast<uint8_t>((idx[2 * ib] >> 8) | (idx[2 * ib + 1] >> 8) << 4 | ((neg[ib] & 1) ? 0x08 : 0) |
                                         ((neg[ib] & 2) ? 0x80 : 0));
      const float* xb = src + 16 * ib;
      iq1_weights(16, xb, qw ? qw + 16 * ib : nullptr, sigma2, weight);
      for (int g = 0; g < 2; ++g) {
        const float* v = (neg[ib] >> g) & 1 ? vm : vp;
        const int8_t* gl = t.levels.data() + 8 * idx[2 * ib + g];
        for (int k = 0; k < 8; ++k) {
          const float q = v[gl[k]] * static_cast<float>(2 * l + 1);
          sumqx += weight[8 * g + k] * q * xb[8 * g + k];
          sumq2 += weight[8 * g + k] * q * q;
        }
      }
    }
    if (sumq2 > 0) d = sumqx / sumq2;
    const uint16_t dh = finite_fp16(d * 1.1125f);
    for (int k = 0; k < 4; ++k) {
      sc[k] |= static_cast<uint16_t>(((dh >> (4 * k)) & 0xF) << 12);
      y[i].scales[2 * k] = static_cast<uint8_t>(sc[k]);
      y[i].scales[2 * k + 1] = static_cast<uint8_t>(sc[k] >> 8);
    }
  }
}

void from_float_iq2_xxs(const float* src, void* dst, int64_t n) { quantize_weighted_iq2_xxs(src, dst, n, nullptr); }
void from_float_iq2_xs(const float* src, void* dst, int64_t n) { quantize_weighted_iq2_xs(src, dst, n, nullptr); }
void from_float_iq2_s(const float* src, void* dst, int64_t n) { quantize_weighted_iq2_s(src, dst, n, nullptr); }
void from_float_iq3_xxs(const float* src, void* dst, int64_t n) { quantize_weighted_iq3_xxs(src, dst, n, nullptr); }
void from_float_iq3_s(const float* src, void* dst, int64_t n) { quantize_weighted_iq3_s(src, dst, n, nullptr); }
void from_float_iq1_s(const float* src, void* dst, int64_t n) { quantize_weighted_iq1_s(src, dst, n, nullptr); }
void from_float_iq1_m(const float* src, void* dst, int64_t n) { quantize_weighted_iq1_m(src, dst, n, nullptr); }

}  // namespace hearth::quant
