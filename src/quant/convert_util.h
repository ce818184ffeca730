// Small helpers shared by the row converters of quant/ (convert.cpp, convert_nonlinear.cpp);
// internal to quant/. Source: ../shared/docs/formats.md §3 (the conventions of the quantizers).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "hearth/error.h"

namespace hearth::quant::detail {

/// Number of blocks in a row of `n` elements of a type with `blck` elements per block; throws
/// hearth::Error naming `type` if n is negative or not a whole number of blocks.
inline int64_t block_count(int64_t n, int64_t blck, const char* type) {
  if (n < 0 || n % blck != 0)
    throw Error(std::string("row of ") + std::to_string(n) + " elements is not a multiple of the " +
                type + " block size " + std::to_string(blck));
  return n / blck;
}

/// v limited to [lo, hi].
inline int clamp_int(int v, int lo, int hi) { return std::min(hi, std::max(lo, v)); }

/// Signed element of largest magnitude among x[0..n) (the first one on ties), or 0 if all are
/// zero (formats.md §3.2 "max"). NaNs are never selected.
inline float signed_absmax(const float* x, int n) {
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

/// Magnitude below which ggml treats a group of weights as all zero (GROUP_MAX_EPS).
inline constexpr float kGroupMaxEps = 1e-15f;

}  // namespace hearth::quant::detail
