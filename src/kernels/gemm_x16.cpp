// The x16 layout (16 weight rows interleaved) and its scalar reference arithmetic
// (kernels/gemm.h). Block formats: formats.md §2.3 (Q4_K, Q6_K, Q8_K).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "hearth/error.h"
#include "kernels/dot.h"
#include "kernels/gemm.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace hearth::kernels::gemm {
namespace {

using quant::GgmlType;

static_assert(kX16ChunkQ4K == kX16Rows * sizeof(quant::block_q4_K) &&
              kX16ChunkQ6K == kX16Rows * sizeof(quant::block_q6_K));
// Where the code records of run pair p start (gemm.h): Q4_K 256 + 256p; Q6_K 288 + 384p, its
// four low-bit records followed by its two high-bit records.
constexpr size_t kQ4KCodes = 256, kQ4KPairBytes = 256;
constexpr size_t kQ6KScales = 32, kQ6KCodes = 288, kQ6KPairBytes = 384;

void check(GgmlType type, int64_t n_in) {
  if ((type != GgmlType::Q4_K && type != GgmlType::Q6_K) || n_in <= 0 || n_in % kChunk != 0)
    throw Error(std::string("no x16 layout for ") + quant::traits(type).name + " rows of " + std::to_string(n_in) +
                " elements");
}

/// The active CPU path's x16 kernel for `type`, or nullptr.
X16Fn active_x16_kernel(GgmlType type) {
  const TileKernels* tk = tile_kernels(active_cpu_path());
  return tk != nullptr && tk->x16 != nullptr ? tk->x16(type) : nullptr;
}

/// Unsigned codes u[256] of one block (Q6_K: code + 32).
void codes_q4_K(const quant::block_q4_K& b, uint8_t* u) {
  for (int e = 0; e < kChunk; ++e) {
    const int j = e / 32, l = e % 32;
    const uint8_t q = b.qs[32 * (j / 2) + l];
    u[e] = j % 2 ? q >> 4 : q & 0x0F;
  }
}
void codes_q6_K(const quant::block_q6_K& b, uint8_t* u) {
  for (int e = 0; e < kChunk; ++e) u[e] = static_cast<uint8_t>(quant::q6_K_code(b, e / 128, (e % 128) / 32, e % 32) + 32);
}
void set_codes_q4_K(quant::block_q4_K& b, const uint8_t* u) {
  for (int p = 0; p < 4; ++p)
    for (int l = 0; l < 32; ++l) b.qs[32 * p + l] = static_cast<uint8_t>(u[64 * p + l] | u[64 * p + 32 + l] << 4);
}
void set_codes_q6_K(quant::block_q6_K& b, const uint8_t* u) {
  std::memset(b.ql, 0, sizeof b.ql);
  std::memset(b.qh, 0, sizeof b.qh);
  for (int e = 0; e < kChunk; ++e) {
    const int h = e / 128, g = (e % 128) / 32, l = e % 32;
    b.ql[64 * h + 32 * (g % 2) + l] |= static_cast<uint8_t>((u[e] & 0x0F) << (g >= 2 ? 4 : 0));
    b.qh[32 * h + l] |= static_cast<uint8_t>(((u[e] >> 4) & 3) << (2 * g));
  }
}

/// The low 4 bits of every code of row i from the code records.
void read_records(const uint8_t* rec, size_t pair_bytes, int i, uint8_t* u) {
  for (int p = 0; p < 8; ++p)
    for (int q = 0; q < 4; ++q)
      for (int b = 0; b < 4; ++b) {
        const uint8_t x = rec[p * pair_bytes + 64 * q + 4 * i + b];
        u[32 * p + 4 * q + b] = x & 0x0F;
        u[32 * p + 16 + 4 * q + b] = x >> 4;
      }
}

inline uint32_t word(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline void put_word(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

/// Code record bytes of one row (gemm.h): four low nibbles from the word at `lo`, four high
/// nibbles from the word at `hi`, each taken from nibble `high` of its source bytes.
inline uint32_t record_word(const uint8_t* lo, const uint8_t* hi, bool high) {
  constexpr uint32_t kLow = 0x0F0F0F0F;
  return high ? ((word(lo) >> 4) & kLow) | (word(hi) & ~kLow) : (word(lo) & kLow) | (word(hi) & kLow) << 4;
}

/// One group chunk from the 16 blocks `blocks[i]` (row i's block of this chunk), four codes at
/// a time: the code records take 4-byte words of the blocks' code fields (formats.md §2.3).
void pack_chunk(GgmlType type, const uint8_t* const* blocks, uint8_t* out) {
  if (type == GgmlType::Q4_K) {
    for (int i = 0; i < kX16Rows; ++i) {
      const auto& b = *reinterpret_cast<const quant::block_q4_K*>(blocks[i]);
      std::memcpy(out + 2 * i, &b.d, 2);
      std::memcpy(out + 32 + 2 * i, &b.dmin, 2);
      for (int w = 0; w < 3; ++w) std::memcpy(out + 64 + 64 * w + 4 * i, b.scales + 4 * w, 4);
      // Sub-block p (elements 32p + l) is nibble p%2 of qs[32(p/2) + l].
      for (int p = 0; p < 8; ++p)
        for (int q = 0; q < 4; ++q) {
          const uint8_t* src = b.qs + 32 * (p / 2) + 4 * q;
          put_word(out + kQ4KCodes + kQ4KPairBytes * p + 64 * q + 4 * i, record_word(src, src + 16, p % 2 != 0));
        }
    }
    return;
  }
  for (int i = 0; i < kX16Rows; ++i) {
    const auto& b = *reinterpret_cast<const quant::block_q6_K*>(blocks[i]);
    std::memcpy(out + 2 * i, &b.d, 2);
    for (int p = 0; p < 8; ++p)
      for (int s = 0; s < 2; ++s) out[kQ6KScales + 32 * p + 2 * i + s] = static_cast<uint8_t>(b.scales[2 * p + s]);
    // Elements 32p + x (h = p/4, g = p%4): low 4 bits in nibble g/2 of ql[64h + 32(g%2) + x],
    // high 2 bits at bit 2g of qh[32h + x].
    for (int p = 0; p < 8; ++p) {
      const int h = p / 4, g = p % 4;
      uint8_t* pair = out + kQ6KCodes + kQ6KPairBytes * p;
      for (int q = 0; q < 4; ++q) {
        const uint8_t* src = b.ql + 64 * h + 32 * (g % 2) + 4 * q;
        put_word(pair + 64 * q + 4 * i, record_word(src, src + 16, g >= 2));
      }
      for (int hh = 0; hh < 2; ++hh) {
        uint32_t v = 0;
        for (int q = 0; q < 4; ++q) v |= ((word(b.qh + 32 * h + 16 * hh + 4 * q) >> (2 * g)) & 0x03030303u) << (2 * q);
        put_word(pair + 256 + 64 * hh + 4 * i, v);
      }
    }
  }
}

/// Row i's block of a group chunk, in the file's layout.
void unpack_chunk(GgmlType type, const uint8_t* in, int i, uint8_t* block) {
  uint8_t u[kChunk];
  if (type == GgmlType::Q4_K) {
    auto& b = *reinterpret_cast<quant::block_q4_K*>(block);
    std::memcpy(&b.d, in + 2 * i, 2);
    std::memcpy(&b.dmin, in + 32 + 2 * i, 2);
    for (int w = 0; w < 3; ++w) std::memcpy(b.scales + 4 * w, in + 64 + 64 * w + 4 * i, 4);
    read_records(in + kQ4KCodes, kQ4KPairBytes, i, u);
    set_codes_q4_K(b, u);
    return;
  }
  auto& b = *reinterpret_cast<quant::block_q6_K*>(block);
  std::memcpy(&b.d, in + 2 * i, 2);
  for (int p = 0; p < 8; ++p)
    for (int s = 0; s < 2; ++s) b.scales[2 * p + s] = static_cast<int8_t>(in[kQ6KScales + 32 * p + 2 * i + s]);
  read_records(in + kQ6KCodes, kQ6KPairBytes, i, u);
  for (int p = 0; p < 8; ++p)
    for (int h = 0; h < 2; ++h)
      for (int q = 0; q < 4; ++q)
        for (int bb = 0; bb < 4; ++bb) {
          const int v = (in[kQ6KCodes + kQ6KPairBytes * p + 256 + 64 * h + 4 * i + bb] >> (2 * q)) & 3;
          u[32 * p + 16 * h + 4 * q + bb] = static_cast<uint8_t>(u[32 * p + 16 * h + 4 * q + bb] | v << 4);
        }
  set_codes_q6_K(b, u);
}

}  // namespace

bool has_x16_layout(quant::GgmlType type, int64_t n_in, int64_t n_out) {
  return (type == GgmlType::Q4_K || type == GgmlType::Q6_K) && n_in > 0 && n_in % kChunk == 0 && n_out > 0 &&
         n_out % kX16Rows == 0;
}

size_t x16_chunk_bytes(quant::GgmlType type) {
  return type == GgmlType::Q4_K ? kX16ChunkQ4K : type == GgmlType::Q6_K ? kX16ChunkQ6K : 0;
}

void to_x16(quant::GgmlType type, const void* rows, void* group, int64_t n_in) {
  check(type, n_in);
  const size_t row_bytes = quant::row_size(type, n_in), block = x16_chunk_bytes(type) / kX16Rows;
  // Through a copy: the group overwrites the rows it is made from.
  thread_local std::vector<uint8_t> src;
  src.assign(static_cast<const uint8_t*>(rows), static_cast<const uint8_t*>(rows) + kX16Rows * row_bytes);
  for (int64_t c = 0; c < n_in / kChunk; ++c) {
    const uint8_t* blocks[kX16Rows];
    for (int i = 0; i < kX16Rows; ++i) blocks[i] = src.data() + i * row_bytes + c * block;
    pack_chunk(type, blocks, static_cast<uint8_t*>(group) + c * x16_chunk_bytes(type));
  }
}

void x16_row(quant::GgmlType type, const void* group, int i, void* row, int64_t n_in) {
  check(type, n_in);
  const size_t block = x16_chunk_bytes(type) / kX16Rows;
  for (int64_t c = 0; c < n_in / kChunk; ++c)
    unpack_chunk(type, static_cast<const uint8_t*>(group) + c * x16_chunk_bytes(type), i,
                 static_cast<uint8_t*>(row) + c * block);
}

float x16_dot_ref(quant::GgmlType type, const void* row, const void* act_q8_K, int64_t n_in) {
  check(type, n_in);
  const auto* act = static_cast<const quant::block_q8_K*>(act_q8_K);
  float acc = 0.0f;
  uint8_t u[kChunk];
  for (int64_t c = 0; c < n_in / kChunk; ++c) {
    const quant::block_q8_K& a = act[c];
    int32_t s[16];
    if (type == GgmlType::Q4_K) codes_q4_K(static_cast<const quant::block_q4_K*>(row)[c], u);
    else codes_q6_K(static_cast<const quant::block_q6_K*>(row)[c], u);
    for (int r = 0; r < 16; ++r) {
      s[r] = 0;
      for (int e = 16 * r; e < 16 * r + 16; ++e) s[r] += u[e] * a.qs[e];
    }
    if (type == GgmlType::Q4_K) {
      const auto& b = static_cast<const quant::block_q4_K*>(row)[c];
      int32_t I = 0, M = 0;
      for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        quant::unpack_scale_min_k4(b.scales, j, &sc, &m);
        I += sc * (s[2 * j] + s[2 * j + 1]);
        M += m * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
      }
      const float dd = quant::fp16_to_fp32(b.d) * a.d, dm = quant::fp16_to_fp32(b.dmin) * a.d;
      acc = std::fma(static_cast<float>(I), dd, acc);
      acc = std::fma(-static_cast<float>(M), dm, acc);
    } else {
      const auto& b = static_cast<const quant::block_q6_K*>(row)[c];
      int32_t I = 0, Z = 0;
      for (int r = 0; r < 16; ++r) {
        I += b.scales[r] * s[r];
        Z += b.scales[r] * a.bsums[r];
      }
      const float dd = quant::fp16_to_fp32(b.d) * a.d;
      acc = std::fma(static_cast<float>(I - 32 * Z), dd, acc);
    }
  }
  return acc;
}

bool prefers_x16_layout(quant::GgmlType type, int64_t n_in, int64_t n_out) {
  return has_x16_layout(type, n_in, n_out) && active_x16_kernel(type) != nullptr;
}

void repack_to_x16(const MatrixView& w, uint8_t* data, const ThreadPool& pool) {
  if (!has_x16_layout(w.type, w.n_in, w.n_out))
    throw Error(std::string("no x16 layout for ") + quant::traits(w.type).name + " weights of " +
                std::to_string(w.n_out) + " rows of " + std::to_string(w.n_in) + " elements");
  pool.parallel_for(w.n_out / kX16Rows, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      uint8_t* group = data + static_cast<size_t>(g * kX16Rows) * w.row_bytes;
      to_x16(w.type, group, group, w.n_in);
    }
  });
}

bool matmul_x16(const MatrixView& w, const float* x, int64_t n_rows, float* y, int64_t ldy, const ThreadPool& pool,
                MatmulScratch& scratch) {
  const X16Fn fn = active_x16_kernel(w.type);
  const ActQuantizeFn quantize = act_quantize_fn(GgmlType::Q8_K);
  if (fn == nullptr || quantize == nullptr || !has_x16_layout(w.type, w.n_in, w.n_out)) return false;
  const size_t act_row = quant::row_size(GgmlType::Q8_K, w.n_in);
  scratch.act.resize(act_row * static_cast<size_t>(n_rows));
  const uint8_t* act = scratch.act.data();
  pool.parallel_for(n_rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) quantize(x + r * w.n_in, scratch.act.data() + static_cast<size_t>(r) * act_row, w.n_in);
  });
  // A group (16 rows, a few KiB per chunk) stays in L1 while every activation row passes it.
  const int64_t nc = w.n_in / kChunk;
  pool.parallel_for(
      w.n_out / kX16Rows,
      [&](int64_t g0, int64_t g1) {
        const void* ap[kX16MaxAct];
        for (int64_t g = g0; g < g1; ++g) {
          const uint8_t* group = w.row(g * kX16Rows);
          for (int64_t r = 0; r < n_rows; r += kX16MaxAct) {
            const int na = static_cast<int>(std::min<int64_t>(kX16MaxAct, n_rows - r));
            for (int j = 0; j < na; ++j) ap[j] = act + static_cast<size_t>(r + j) * act_row;
            fn(group, nc, ap, na, y + r * ldy + g * kX16Rows, ldy);
          }
        }
      },
      1);
  return true;
}

}  // namespace hearth::kernels::gemm
