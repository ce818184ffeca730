// Tile format, scalar unpackers and reference micro-kernel, and the tiled matmul driver
// (kernels/gemm.h). Value formulas per type: formats.md §2.2 (Q4_0, Q5_0, Q8_0, IQ4_NL),
// §2.3 (Q2_K .. Q6_K, Q8_K), §2.4 (IQ4_XS).
#include "kernels/gemm.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>

#include "hearth/error.h"
#include "kernels/dot.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace hearth::kernels::gemm {
namespace {

using quant::fp16_to_fp32;
using quant::GgmlType;

/// Natural-order codes u[256] and per-run sw/ow of one chunk, before the lane reordering.
struct Natural {
  uint8_t u[kChunk];
  float sw[kLanes];
  float ow[kLanes];
};

/// Writes `nat` into `out` in lane order (gemm.h): codes[64t + 4L + b] = u[16L + 4t + b].
void to_lane_order(const Natural& nat, WChunk* out) {
  for (int t = 0; t < 4; ++t)
    for (int L = 0; L < kLanes; ++L) std::memcpy(out->codes + 64 * t + 4 * L, nat.u + 16 * L + 4 * t, 4);
  std::memcpy(out->sw, nat.sw, sizeof nat.sw);
  std::memcpy(out->ow, nat.ow, sizeof nat.ow);
}

/// Unpacks a row of 32-element blocks, 8 per chunk; `block(b, nat, k)` fills elements
/// 32k .. 32k+31 and runs 2k, 2k+1 of `nat` from block b.
template <class Block, class Fill>
void unpack_blocks32(const void* row, int64_t n_in, WChunk* out, Fill fill) {
  const auto* blocks = static_cast<const Block*>(row);
  const int64_t nb = n_in / 32;
  for (int64_t c = 0; c < n_chunks(n_in); ++c) {
    Natural nat{};
    for (int k = 0; k < 8; ++k) {
      const int64_t b = 8 * c + k;
      if (b < nb) fill(blocks[b], nat, k);
    }
    to_lane_order(nat, out + c);
  }
}

void unpack_q8_0(const void* row, int64_t n_in, WChunk* out) {
  unpack_blocks32<quant::block_q8_0>(row, n_in, out, [](const quant::block_q8_0& b, Natural& nat, int k) {
    for (int j = 0; j < 32; ++j) nat.u[32 * k + j] = static_cast<uint8_t>(b.qs[j] + 128);
    nat.sw[2 * k] = nat.sw[2 * k + 1] = fp16_to_fp32(b.d);
  });
}

void unpack_q4_0(const void* row, int64_t n_in, WChunk* out) {
  unpack_blocks32<quant::block_q4_0>(row, n_in, out, [](const quant::block_q4_0& b, Natural& nat, int k) {
    for (int j = 0; j < 16; ++j) {
      nat.u[32 * k + j] = b.qs[j] & 0x0F;
      nat.u[32 * k + 16 + j] = b.qs[j] >> 4;
    }
    nat.sw[2 * k] = nat.sw[2 * k + 1] = fp16_to_fp32(b.d);
  });
}

void unpack_q5_0(const void* row, int64_t n_in, WChunk* out) {
  unpack_blocks32<quant::block_q5_0>(row, n_in, out, [](const quant::block_q5_0& b, Natural& nat, int k) {
    const uint32_t qh = quant::q5_high_bits(b.qh);
    for (int j = 0; j < 16; ++j) {
      nat.u[32 * k + j] = static_cast<uint8_t>((b.qs[j] & 0x0F) | ((qh >> j) & 1) << 4);
      nat.u[32 * k + 16 + j] = static_cast<uint8_t>((b.qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
    }
    nat.sw[2 * k] = nat.sw[2 * k + 1] = fp16_to_fp32(b.d);
  });
}

void unpack_iq4_nl(const void* row, int64_t n_in, WChunk* out) {
  unpack_blocks32<quant::block_iq4_nl>(row, n_in, out, [](const quant::block_iq4_nl& b, Natural& nat, int k) {
    for (int j = 0; j < 16; ++j) {
      nat.u[32 * k + j] = static_cast<uint8_t>(quant::kValuesIq4nl[b.qs[j] & 0x0F] + 128);
      nat.u[32 * k + 16 + j] = static_cast<uint8_t>(quant::kValuesIq4nl[b.qs[j] >> 4] + 128);
    }
    nat.sw[2 * k] = nat.sw[2 * k + 1] = fp16_to_fp32(b.d);
  });
}

/// Unpacks a row of 256-element super-blocks (one per chunk).
template <class Block, class Fill>
void unpack_blocks256(const void* row, int64_t n_in, WChunk* out, Fill fill) {
  const auto* blocks = static_cast<const Block*>(row);
  for (int64_t c = 0; c < n_in / kChunk; ++c) {
    Natural nat{};
    fill(blocks[c], nat);
    to_lane_order(nat, out + c);
  }
}

template <bool kFive, class Block>
void fill_scale_min_k4(const Block& b, Natural& nat) {
  const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    quant::unpack_scale_min_k4(b.scales, j, &sc, &m);
    nat.sw[2 * j] = nat.sw[2 * j + 1] = d * sc;
    nat.ow[2 * j] = nat.ow[2 * j + 1] = -dmin * m;
    for (int l = 0; l < 32; ++l) {
      const uint8_t q = b.qs[32 * (j / 2) + l];
      int code = j % 2 == 0 ? q & 0x0F : q >> 4;
      if constexpr (kFive) code |= ((b.qh[l] >> j) & 1) << 4;
      nat.u[32 * j + l] = static_cast<uint8_t>(code);
    }
  }
}

void unpack_q4_K(const void* row, int64_t n_in, WChunk* out) {
  unpack_blocks256<quant::block_q4_K>(row, n_in, out, fill_scale_min_k4<false, quant::block_q4_K>);
}

void unpack_q5_K(const void* row, int64_t n_in, WChunk* out) {
  unpack_blocks256<quant::block_q5_K>(row, n_in, out, fill_scale_min_k4<true, quant::block_q5_K>);
}

void unpack_q6_K(const void* row, int64_t n_in, WChunk* out) {
  unpack_blocks256<quant::block_q6_K>(row, n_in, out, [](const quant::block_q6_K& b, Natural& nat) {
    const float d = fp16_to_fp32(b.d);
    for (int e = 0; e < kChunk; ++e)
      nat.u[e] = static_cast<uint8_t>(quant::q6_K_code(b, e / 128, (e % 128) / 32, e % 32) + 32);
    for (int L = 0; L < kLanes; ++L) nat.sw[L] = d * b.scales[L];
  });
}

void unpack_q3_K(const void* row, int64_t n_in, WChunk* out) {
  unpack_blocks256<quant::block_q3_K>(row, n_in, out, [](const quant::block_q3_K& b, Natural& nat) {
    const float d = fp16_to_fp32(b.d);
    for (int e = 0; e < kChunk; ++e) {
      const int h = e / 128, k = (e % 128) / 32, l = e % 32;
      const int q2 = (b.qs[32 * h + l] >> (2 * k)) & 3;
      const int hb = (b.hmask[l] >> (4 * h + k)) & 1;
      nat.u[e] = static_cast<uint8_t>(q2 + (hb ? 4 : 0));  // q + 4, q in [-4, 3]
    }
    for (int L = 0; L < kLanes; ++L) nat.sw[L] = d * quant::q3_K_scale(b.scales, L);
  });
}

void unpack_q2_K(const void* row, int64_t n_in, WChunk* out) {
  unpack_blocks256<quant::block_q2_K>(row, n_in, out, [](const quant::block_q2_K& b, Natural& nat) {
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int e = 0; e < kChunk; ++e) {
      const int h = e / 128, k = (e % 128) / 32, l = e % 32;
      nat.u[e] = static_cast<uint8_t>((b.qs[32 * h + l] >> (2 * k)) & 3);
    }
    for (int L = 0; L < kLanes; ++L) {
      nat.sw[L] = d * (b.scales[L] & 0x0F);
      nat.ow[L] = -dmin * (b.scales[L] >> 4);
    }
  });
}

void unpack_iq4_xs(const void* row, int64_t n_in, WChunk* out) {
  unpack_blocks256<quant::block_iq4_xs>(row, n_in, out, [](const quant::block_iq4_xs& b, Natural& nat) {
    const float d = fp16_to_fp32(b.d);
    for (int ib = 0; ib < 8; ++ib) {
      nat.sw[2 * ib] = nat.sw[2 * ib + 1] = d * static_cast<float>(quant::iq4_xs_scale(b, ib) - 32);
      for (int j = 0; j < 16; ++j) {
        const uint8_t q = b.qs[16 * ib + j];
        nat.u[32 * ib + j] = static_cast<uint8_t>(quant::kValuesIq4nl[q & 0x0F] + 128);
        nat.u[32 * ib + 16 + j] = static_cast<uint8_t>(quant::kValuesIq4nl[q >> 4] + 128);
      }
    }
  });
}

constexpr WeightFormat kQ8_0{GgmlType::Q8_0, false, 7, unpack_q8_0};
constexpr WeightFormat kQ4_0{GgmlType::Q8_0, false, 3, unpack_q4_0};
constexpr WeightFormat kQ5_0{GgmlType::Q8_0, false, 4, unpack_q5_0};
constexpr WeightFormat kIq4Nl{GgmlType::Q8_0, false, 7, unpack_iq4_nl};
constexpr WeightFormat kQ2K{GgmlType::Q8_K, true, 0, unpack_q2_K};
constexpr WeightFormat kQ3K{GgmlType::Q8_K, false, 2, unpack_q3_K};
constexpr WeightFormat kQ4K{GgmlType::Q8_K, true, 0, unpack_q4_K};
constexpr WeightFormat kQ5K{GgmlType::Q8_K, true, 0, unpack_q5_K};
constexpr WeightFormat kQ6K{GgmlType::Q8_K, false, 5, unpack_q6_K};
constexpr WeightFormat kIq4Xs{GgmlType::Q8_K, false, 7, unpack_iq4_xs};

/// 64-byte aligned pointer into `buf`, grown to hold `bytes` bytes after alignment.
uint8_t* aligned_buffer(std::vector<uint8_t>& buf, size_t bytes) {
  if (buf.size() < bytes + 64) buf.resize(bytes + 64);
  const auto addr = reinterpret_cast<uintptr_t>(buf.data());
  return buf.data() + ((64 - addr % 64) % 64);
}

/// Where the quantized code of each element of a chunk lives, for the lane layout: `get` and
/// `set` read and write the raw code bits of element e (natural order) of the chunk at `p`, and
/// `vec_elem(k, m)` is the element the type's SIMD decoder puts in byte m of its vector k
/// (gemm_avx512.cpp, TransposeIndex). formats.md §2.2-2.4 give the bit positions.
struct CodePlaces {
  size_t chunk_bytes;
  int (*get)(const uint8_t* p, int e);
  void (*set)(uint8_t* p, int e, int v);
  int (*vec_elem)(int k, int m);
};

inline void set_nibble(uint8_t& byte, bool high, int v) {
  byte = high ? static_cast<uint8_t>((byte & 0x0F) | v << 4) : static_cast<uint8_t>((byte & 0xF0) | v);
}

// Q4_K / Q5_K: the low 4 bits of element 32j + l are nibble j%2 of qs[32(j/2) + l]; Q5_K's bit 4
// is bit j of qh[l].
template <class Block>
int k4_get(const uint8_t* p, int e) {
  const auto& b = *reinterpret_cast<const Block*>(p);
  const int j = e / 32, l = e % 32;
  const uint8_t q = b.qs[32 * (j / 2) + l];
  int v = j % 2 ? q >> 4 : q & 0x0F;
  if constexpr (std::is_same_v<Block, quant::block_q5_K>) v |= ((b.qh[l] >> j) & 1) << 4;
  return v;
}
template <class Block>
void k4_set(uint8_t* p, int e, int v) {
  auto& b = *reinterpret_cast<Block*>(p);
  const int j = e / 32, l = e % 32;
  set_nibble(b.qs[32 * (j / 2) + l], j % 2 != 0, v & 0x0F);
  if constexpr (std::is_same_v<Block, quant::block_q5_K>)
    b.qh[l] = static_cast<uint8_t>((b.qh[l] & ~(1 << j)) | ((v >> 4) & 1) << j);
}
int k4_vec_elem(int k, int m) { return 128 * (k / 2) + 32 * (k % 2) + 64 * (m / 32) + m % 32; }

// Q6_K: element 128h + 32g + l has its low 4 bits in nibble g/2 of ql[64h + 32(g%2) + l] and its
// high 2 bits at bit 2g of qh[32h + l].
int q6k_get(const uint8_t* p, int e) { return quant::q6_K_code(*reinterpret_cast<const quant::block_q6_K*>(p), e / 128, (e % 128) / 32, e % 32) + 32; }
void q6k_set(uint8_t* p, int e, int v) {
  auto& b = *reinterpret_cast<quant::block_q6_K*>(p);
  const int h = e / 128, g = (e % 128) / 32, l = e % 32;
  set_nibble(b.ql[64 * h + 32 * (g % 2) + l], g >= 2, v & 0x0F);
  uint8_t& qh = b.qh[32 * h + l];
  qh = static_cast<uint8_t>((qh & ~(3 << (2 * g))) | ((v >> 4) & 3) << (2 * g));
}
int natural_vec_elem(int k, int m) { return 64 * k + m; }

// IQ4_XS: element 32ib + j has its 4-bit index in nibble j/16 of qs[16ib + j%16].
int iq4xs_get(const uint8_t* p, int e) {
  const uint8_t q = reinterpret_cast<const quant::block_iq4_xs*>(p)->qs[16 * (e / 32) + e % 16];
  return e % 32 >= 16 ? q >> 4 : q & 0x0F;
}
void iq4xs_set(uint8_t* p, int e, int v) {
  set_nibble(reinterpret_cast<quant::block_iq4_xs*>(p)->qs[16 * (e / 32) + e % 16], e % 32 >= 16, v);
}
int block_nibble_vec_elem(int k, int m) { return 128 * (k / 2) + 16 * (k % 2) + 32 * (m / 16) + m % 16; }

// Q8_0: element e is qs[e % 32] of block e / 32 of the chunk's eight.
int q80_get(const uint8_t* p, int e) { return reinterpret_cast<const quant::block_q8_0*>(p)[e / 32].qs[e % 32] & 0xFF; }
void q80_set(uint8_t* p, int e, int v) { reinterpret_cast<quant::block_q8_0*>(p)[e / 32].qs[e % 32] = static_cast<int8_t>(v); }

const CodePlaces* code_places(GgmlType type) {
  static constexpr CodePlaces kQ4K{sizeof(quant::block_q4_K), k4_get<quant::block_q4_K>, k4_set<quant::block_q4_K>, k4_vec_elem};
  static constexpr CodePlaces kQ5K{sizeof(quant::block_q5_K), k4_get<quant::block_q5_K>, k4_set<quant::block_q5_K>, k4_vec_elem};
  static constexpr CodePlaces kQ6K{sizeof(quant::block_q6_K), q6k_get, q6k_set, natural_vec_elem};
  static constexpr CodePlaces kIq4Xs{sizeof(quant::block_iq4_xs), iq4xs_get, iq4xs_set, block_nibble_vec_elem};
  static constexpr CodePlaces kQ80{8 * sizeof(quant::block_q8_0), q80_get, q80_set, natural_vec_elem};
  switch (type) {
    case GgmlType::Q4_K: return &kQ4K;
    case GgmlType::Q5_K: return &kQ5K;
    case GgmlType::Q6_K: return &kQ6K;
    case GgmlType::IQ4_XS: return &kIq4Xs;
    case GgmlType::Q8_0: return &kQ80;
    default: return nullptr;
  }
}

/// Natural element of lane-order code position i (gemm.h): i = 64t + 4L + b holds 16L + 4t + b.
constexpr int lane_elem(int i) { return 16 * ((i % 64) / 4) + 4 * (i / 64) + i % 4; }

/// Moves every code of each chunk: to the lane layout (element vec_elem(k, m) <- lane_elem(64k +
/// m)) or back (the reverse assignment).
void permute_codes(GgmlType type, const void* in, void* out, int64_t n_in, bool to_lanes) {
  const CodePlaces* cp = has_lane_layout(type, n_in) ? code_places(type) : nullptr;
  if (cp == nullptr)
    throw Error(std::string("no lane layout for ") + quant::traits(type).name + " rows of " + std::to_string(n_in) +
                " elements");
  std::vector<uint8_t> chunk(cp->chunk_bytes);
  for (int64_t c = 0; c < n_in / kChunk; ++c) {
    const auto* src = static_cast<const uint8_t*>(in) + c * cp->chunk_bytes;
    auto* dst = static_cast<uint8_t*>(out) + c * cp->chunk_bytes;
    std::memcpy(chunk.data(), src, cp->chunk_bytes);
    if (dst != src) std::memcpy(dst, src, cp->chunk_bytes);
    for (int i = 0; i < kChunk; ++i) {
      const int ve = cp->vec_elem(i / 64, i % 64), le = lane_elem(i);
      if (to_lanes) cp->set(dst, ve, cp->get(chunk.data(), le));
      else cp->set(dst, le, cp->get(chunk.data(), ve));
    }
  }
}

}  // namespace

const WeightFormat* weight_format(quant::GgmlType type) {
  switch (type) {
    case GgmlType::Q8_0:
      return &kQ8_0;
    case GgmlType::Q4_0:
      return &kQ4_0;
    case GgmlType::Q5_0:
      return &kQ5_0;
    case GgmlType::IQ4_NL:
      return &kIq4Nl;
    case GgmlType::Q2_K:
      return &kQ2K;
    case GgmlType::Q3_K:
      return &kQ3K;
    case GgmlType::Q4_K:
      return &kQ4K;
    case GgmlType::Q5_K:
      return &kQ5K;
    case GgmlType::Q6_K:
      return &kQ6K;
    case GgmlType::IQ4_XS:
      return &kIq4Xs;
    default:
      return nullptr;
  }
}

bool has_lane_layout(quant::GgmlType type, int64_t n_in) { return code_places(type) != nullptr && n_in % kChunk == 0 && n_in > 0; }

void to_lane_layout(quant::GgmlType type, const void* in, void* out, int64_t n_in) { permute_codes(type, in, out, n_in, true); }

void from_lane_layout(quant::GgmlType type, const void* in, void* out, int64_t n_in) { permute_codes(type, in, out, n_in, false); }

bool prefers_lane_layout(quant::GgmlType type, int64_t n_in) {
  if (!has_lane_layout(type, n_in)) return false;
  const TileKernels* tk = tile_kernels(active_cpu_path());
  return tk != nullptr && tk->gemv_lanes != nullptr && tk->gemv_lanes(type, n_in) != nullptr && tk->repack != nullptr &&
         tk->repack(type, n_in) != nullptr;
}

void repack_to_lanes(const MatrixView& w, uint8_t* data, const ThreadPool& pool) {
  if (!has_lane_layout(w.type, w.n_in))
    throw Error(std::string("no lane layout for ") + quant::traits(w.type).name + " rows of " + std::to_string(w.n_in) +
                " elements");
  const TileKernels* tk = tile_kernels(active_cpu_path());
  const RepackFn fast = tk != nullptr && tk->repack != nullptr ? tk->repack(w.type, w.n_in) : nullptr;
  pool.parallel_for(w.n_out, [&](int64_t r0, int64_t r1) {
    uint8_t* rows = data + static_cast<size_t>(r0) * w.row_bytes;
    if (fast != nullptr) {
      fast(rows, r1 - r0, w.n_in, w.row_bytes);
    } else {
      for (int64_t r = 0; r < r1 - r0; ++r) to_lane_layout(w.type, rows + r * w.row_bytes, rows + r * w.row_bytes, w.n_in);
    }
  });
}

void act_to_chunks(quant::GgmlType act_type, const void* act_row, int64_t n_in, AChunk* out) {
  const int64_t nc = n_chunks(n_in);
  int8_t nat[kChunk];
  for (int64_t c = 0; c < nc; ++c) {
    AChunk& o = out[c];
    std::memset(nat, 0, sizeof nat);
    if (act_type == GgmlType::Q8_K) {
      const auto& b = static_cast<const quant::block_q8_K*>(act_row)[c];
      std::memcpy(nat, b.qs, kChunk);
      for (int L = 0; L < kLanes; ++L) {
        o.da[L] = b.d;
        o.csum[L] = b.bsums[L];
      }
    } else if (act_type == GgmlType::Q8_0) {
      const auto* blocks = static_cast<const quant::block_q8_0*>(act_row);
      for (int k = 0; k < 8; ++k) {
        const int64_t b = 8 * c + k;
        const bool in = b < n_in / 32;
        if (in) std::memcpy(nat + 32 * k, blocks[b].qs, 32);
        o.da[2 * k] = o.da[2 * k + 1] = in ? fp16_to_fp32(blocks[b].d) : 0.0f;
      }
      for (int L = 0; L < kLanes; ++L) {
        int32_t s = 0;
        for (int e = 0; e < 16; ++e) s += nat[16 * L + e];
        o.csum[L] = s;
      }
    } else {
      throw Error(std::string("no tiled activation format for ") + quant::traits(act_type).name);
    }
    for (int L = 0; L < kLanes; ++L) o.asum[L] = o.da[L] * static_cast<float>(o.csum[L]);
    for (int t = 0; t < 4; ++t)
      for (int L = 0; L < kLanes; ++L) std::memcpy(o.codes + 64 * t + 4 * L, nat + 16 * L + 4 * t, 4);
  }
}

void tile_ref(const WeightFormat& fmt, int64_t n_chunks, const WChunk* const* w, int n_w, const AChunk* const* a,
              int n_a, float* y, int64_t ldy) {
  for (int i = 0; i < n_w; ++i) {
    for (int j = 0; j < n_a; ++j) {
      float sum = 0.0f;
      for (int64_t c = 0; c < n_chunks; ++c) {
        const WChunk& wc = w[i][c];
        const AChunk& ac = a[j][c];
        for (int L = 0; L < kLanes; ++L) {
          int32_t s = 0;
          for (int t = 0; t < 4; ++t)
            for (int b = 0; b < 4; ++b) s += wc.codes[64 * t + 4 * L + b] * ac.codes[64 * t + 4 * L + b];
          if (fmt.scale_min) {
            sum += wc.sw[L] * ac.da[L] * static_cast<float>(s) + wc.ow[L] * ac.asum[L];
          } else {
            sum += wc.sw[L] * ac.da[L] * static_cast<float>(s - (ac.csum[L] << fmt.zero_shift));
          }
        }
      }
      y[static_cast<int64_t>(i) * ldy + j] = sum;
    }
  }
}

#if defined(__x86_64__)
namespace avx512 {
extern const TileKernels kTileKernels;  // gemm_avx512.cpp
}
#endif

const TileKernels* tile_kernels(CpuPath path) {
#if defined(__x86_64__)
  if (path == CpuPath::avx512) return &avx512::kTileKernels;
#else
  (void)path;
#endif
  return nullptr;
}

bool matmul_tiled(const MatrixView& w, const float* x, int64_t n_rows, float* y, int64_t ldy, const ThreadPool& pool,
                  MatmulScratch& scratch) {
  if (w.layout == WeightLayout::x16) return matmul_x16(w, x, n_rows, y, ldy, pool, scratch);
  const WeightFormat* fmt = weight_format(w.type);
  const TileKernels* tk = tile_kernels(active_cpu_path());
  if (fmt == nullptr || tk == nullptr || tk->tile == nullptr) return false;
  const ActQuantizeFn quantize = act_quantize_fn(fmt->act_type);
  if (quantize == nullptr) return false;
  const bool lanes = w.layout == WeightLayout::lanes;
  UnpackFn unpack = nullptr;
  const GemvKernel* gk = nullptr;
  if (lanes) {
    // Repacked rows: only this path's lane-layout kernels read them (else matmul's row-by-row
    // path converts them back).
    unpack = tk->unpack_lanes != nullptr ? tk->unpack_lanes(w.type, w.n_in) : nullptr;
    if (unpack == nullptr) return false;
    gk = tk->gemv_lanes != nullptr ? tk->gemv_lanes(w.type, w.n_in) : nullptr;
  } else {
    unpack = tk->unpack != nullptr ? tk->unpack(w.type, w.n_in) : nullptr;
    if (unpack == nullptr) unpack = fmt->unpack;
    gk = tk->gemv != nullptr ? tk->gemv(w.type, w.n_in) : nullptr;
  }
  const int64_t nc = n_chunks(w.n_in);
  const size_t act_row = quant::row_size(fmt->act_type, w.n_in);

  // Activations: quantized once per row (as the row-by-row path does), then reordered.
  scratch.act.resize(act_row * static_cast<size_t>(n_rows));
  auto* achunks = reinterpret_cast<AChunk*>(
      aligned_buffer(scratch.act_tiles, sizeof(AChunk) * static_cast<size_t>(nc * n_rows)));
  pool.parallel_for(n_rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      uint8_t* q = scratch.act.data() + static_cast<size_t>(r) * act_row;
      quantize(x + r * w.n_in, q, w.n_in);
      act_to_chunks(fmt->act_type, q, w.n_in, achunks + r * nc);
    }
  });

  constexpr int64_t kBlock = 16;
  const int n_threads = pool.n_threads();

  // One row, or up to kMaxGemvAct rows (a decode step of several sequences): each weight chunk
  // is decoded straight into registers (no tile buffer), once for all the rows.
  if (gk != nullptr && n_rows <= kMaxGemvAct && (n_rows == 1 || gk->multi != nullptr)) {
    const AChunk* act_rows[kMaxGemvAct];
    if (n_rows == 1 && gk->natural_from_lane != nullptr) {
      auto* act = reinterpret_cast<AChunk*>(aligned_buffer(scratch.act_natural, sizeof(AChunk) * static_cast<size_t>(nc)));
      for (int64_t c = 0; c < nc; ++c) {
        for (int p = 0; p < kChunk; ++p) act[c].codes[p] = achunks[c].codes[gk->natural_from_lane[p]];
        for (int i = 0; i < kLanes; ++i) {
          act[c].da[i] = achunks[c].da[gk->run_of[i]];
          act[c].asum[i] = achunks[c].asum[gk->run_of[i]];
          act[c].csum[i] = achunks[c].csum[gk->run_of[i]];
        }
      }
      act_rows[0] = act;
    } else {
      for (int64_t r = 0; r < n_rows; ++r) act_rows[r] = achunks + r * nc;
    }
    const auto fn = n_rows == 1 ? gk->fn : gk->multi;
    pool.parallel_for(
        w.n_out,
        [&](int64_t o0, int64_t o1) {
          const void* rows[kBlock];
          for (int64_t ob = o0; ob < o1; ob += kBlock) {
            const int nw = static_cast<int>(std::min(o1, ob + kBlock) - ob);
            for (int i = 0; i < nw; ++i) rows[i] = w.row(ob + i);
            fn(rows, nw, nc, fmt->zero_shift, act_rows, static_cast<int>(n_rows), y + ob, ldy);
          }
        },
        kBlock);
    return true;
  }

  // Weights: blocks of kBlock rows per thread; each block is unpacked once and multiplied by
  // every activation row, max_a rows at a time so those stay in L1.
  if (scratch.weight_tiles.size() < static_cast<size_t>(n_threads)) scratch.weight_tiles.resize(n_threads);
  pool.parallel_for(
      w.n_out,
      [&](int64_t o0, int64_t o1) {
        std::vector<uint8_t>& buf = scratch.weight_tiles[static_cast<size_t>(ThreadPool::thread_index())];
        auto* wchunks = reinterpret_cast<WChunk*>(aligned_buffer(buf, sizeof(WChunk) * static_cast<size_t>(nc * kBlock)));
        const WChunk* wp[kBlock];
        const AChunk* ap[16];
        for (int64_t ob = o0; ob < o1; ob += kBlock) {
          const int64_t oe = std::min(o1, ob + kBlock);
          for (int64_t o = ob; o < oe; ++o) {
            unpack(w.row(o), w.n_in, wchunks + (o - ob) * nc);
            wp[o - ob] = wchunks + (o - ob) * nc;
          }
          for (int64_t r = 0; r < n_rows; r += tk->max_a) {
            const int na = static_cast<int>(std::min<int64_t>(tk->max_a, n_rows - r));
            for (int j = 0; j < na; ++j) ap[j] = achunks + (r + j) * nc;
            for (int64_t o = ob; o < oe; o += tk->max_w) {
              const int nw = static_cast<int>(std::min<int64_t>(tk->max_w, oe - o));
              // y is [n_rows][ldy]: weight row i of the tile is column o+i, stride 1.
              float out[4 * 16];
              tk->tile(*fmt, nc, wp + (o - ob), nw, ap, na, out, 16);
              for (int i = 0; i < nw; ++i)
                for (int j = 0; j < na; ++j) y[(r + j) * ldy + o + i] = out[i * 16 + j];
            }
          }
        }
      },
      kBlock);
  return true;
}

}  // namespace hearth::kernels::gemm
