// The tiled matmul (kernels/gemm.h) against the scalar reference dot products.
//
// Tolerance: |tiled - reference| <= 1e-5 * sum_e |w_e * a_e| (w, a: the dequantized rows). Both
// compute exact integer sums (per 16-element run in the tiles, per block or sub-block in the
// reference) and differ only in how the scaled sums are added in f32: at most n/16 + 16 terms,
// so the error is below (n/16 + 16) * 2^-24 * sum|terms| < 1e-5 * sum|w*a| for n <= 2048.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "hearth/error.h"
#include "kernels/cpu.h"
#include "kernels/dot.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "kernels/threadpool.h"
#include "quant/types.h"

namespace hearth::kernels::gemm {
namespace {

using quant::GgmlType;
using quant::traits;

const GgmlType kTypes[] = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::IQ4_NL, GgmlType::Q2_K,
                           GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_XS};

/// A random weight matrix of `type` (n_out rows of n_in elements, quantized with the reference
/// quantizer from Gaussian values with a few outliers) and its dequantized copy.
struct Weights {
  std::vector<uint8_t> data;
  std::vector<float> deq;
  MatrixView view;
};

Weights random_weights(GgmlType type, int64_t n_in, int64_t n_out, std::mt19937& rng) {
  const quant::TypeTraits& t = traits(type);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> src(static_cast<size_t>(n_in * n_out));
  for (float& v : src) v = nd(rng);
  for (int k = 0; k < 5; ++k) src[rng() % src.size()] *= 8.0f;
  Weights w;
  const size_t row = quant::row_size(type, n_in);
  w.data.resize(row * static_cast<size_t>(n_out));
  w.deq.resize(src.size());
  for (int64_t o = 0; o < n_out; ++o) {
    t.from_float(src.data() + o * n_in, w.data.data() + o * row, n_in);
    t.to_float(w.data.data() + o * row, w.deq.data() + o * n_in, n_in);
  }
  w.view = MatrixView{type, n_in, n_out, w.data.data(), row};
  return w;
}

std::vector<float> random_acts(int64_t n_in, int64_t n_rows, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n_in * n_rows));
  for (float& v : x) v = nd(rng);
  for (int k = 0; k < 3; ++k) x[rng() % x.size()] *= 20.0f;
  return x;
}

/// The scalar reference Y = X · Wᵀ and the bound sum|w*a| per output, with activations
/// converted as the reference does (then dequantized for the bound).
void reference(const Weights& w, const std::vector<float>& x, int64_t n_rows, std::vector<float>& y,
               std::vector<double>& bound) {
  const GgmlType act_type = traits(w.view.type).vec_dot_type;
  const VecDotFn dot = vec_dot_fn(w.view.type, CpuPath::scalar);
  const ActQuantizeFn quantize = act_quantize_fn(act_type, CpuPath::scalar);
  const int64_t n_in = w.view.n_in;
  std::vector<uint8_t> act(quant::row_size(act_type, n_in));
  std::vector<float> adeq(static_cast<size_t>(n_in));
  y.assign(static_cast<size_t>(n_rows * w.view.n_out), 0.0f);
  bound.assign(y.size(), 0.0);
  for (int64_t r = 0; r < n_rows; ++r) {
    quantize(x.data() + r * n_in, act.data(), n_in);
    traits(act_type).to_float(act.data(), adeq.data(), n_in);
    for (int64_t o = 0; o < w.view.n_out; ++o) {
      y[r * w.view.n_out + o] = dot(n_in, w.view.row(o), act.data());
      double b = 0;
      for (int64_t e = 0; e < n_in; ++e) b += std::fabs(static_cast<double>(w.deq[o * n_in + e]) * adeq[e]);
      bound[r * w.view.n_out + o] = 1e-5 * b + 1e-30;
    }
  }
}

class Gemm : public testing::TestWithParam<GgmlType> {};

TEST_P(Gemm, UnpackedCodesGiveTheDequantizedValues) {
  const GgmlType type = GetParam();
  const WeightFormat* fmt = weight_format(type);
  ASSERT_NE(fmt, nullptr);
  std::mt19937 rng(11);
  const int64_t n_in = traits(type).blck_size == 256 ? 512 : 288;  // 288: a partial last chunk
  Weights w = random_weights(type, n_in, 3, rng);
  std::vector<WChunk> chunks(static_cast<size_t>(n_chunks(n_in)));
  for (int64_t o = 0; o < 3; ++o) {
    fmt->unpack(w.view.row(o), n_in, chunks.data());
    for (int64_t e = 0; e < n_chunks(n_in) * kChunk; ++e) {
      const WChunk& c = chunks[static_cast<size_t>(e / kChunk)];
      const int i = static_cast<int>(e % kChunk), L = i / 16, t = (i % 16) / 4, b = i % 4;
      const float u = c.codes[64 * t + 4 * L + b];
      const float v = fmt->scale_min ? c.sw[L] * u + c.ow[L] : c.sw[L] * (u - static_cast<float>(1 << fmt->zero_shift));
      const float want = e < n_in ? w.deq[o * n_in + e] : 0.0f;
      EXPECT_NEAR(v, want, 1e-6f * (1.0f + std::fabs(want))) << "row " << o << " element " << e;
    }
  }
}

TEST_P(Gemm, FastUnpackersAreByteIdenticalToTheScalarOnes) {
  const GgmlType type = GetParam();
  const WeightFormat* fmt = weight_format(type);
  std::mt19937 rng(14);
  const int64_t n_in = 1024;
  Weights w = random_weights(type, n_in, 4, rng);
  int checked = 0;
  for (int p = 0; p < kCpuPathCount; ++p) {
    const auto path = static_cast<CpuPath>(p);
    const TileKernels* tk = tile_kernels(path);
    if (tk == nullptr || tk->unpack == nullptr || !cpu_supports(path)) continue;
    const UnpackFn fast = tk->unpack(type, n_in);
    if (fast == nullptr) continue;
    for (int64_t o = 0; o < 4; ++o) {
      std::vector<WChunk> want(static_cast<size_t>(n_chunks(n_in))), got(want.size());
      fmt->unpack(w.view.row(o), n_in, want.data());
      fast(w.view.row(o), n_in, got.data());
      for (size_t c = 0; c < want.size(); ++c) {
        ASSERT_EQ(std::memcmp(want[c].codes, got[c].codes, sizeof want[c].codes), 0) << cpu_path_name(path) << " chunk " << c;
        for (int L = 0; L < kLanes; ++L) {
          ASSERT_EQ(want[c].sw[L], got[c].sw[L]) << cpu_path_name(path) << " chunk " << c << " lane " << L;
          ASSERT_EQ(want[c].ow[L], got[c].ow[L]) << cpu_path_name(path) << " chunk " << c << " lane " << L;
        }
      }
    }
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no fast unpacker for " << traits(type).name << " on this CPU";
}

TEST_P(Gemm, ReferenceTileMatchesScalarDots) {
  const GgmlType type = GetParam();
  const WeightFormat* fmt = weight_format(type);
  std::mt19937 rng(12);
  const int64_t n_in = traits(type).blck_size == 256 ? 768 : 352, n_out = 3, n_rows = 5;
  Weights w = random_weights(type, n_in, n_out, rng);
  const std::vector<float> x = random_acts(n_in, n_rows, rng);
  std::vector<float> want;
  std::vector<double> bound;
  reference(w, x, n_rows, want, bound);

  const int64_t nc = n_chunks(n_in);
  std::vector<WChunk> wc(static_cast<size_t>(nc * n_out));
  std::vector<AChunk> ac(static_cast<size_t>(nc * n_rows));
  std::vector<const WChunk*> wp;
  std::vector<const AChunk*> ap;
  for (int64_t o = 0; o < n_out; ++o) {
    fmt->unpack(w.view.row(o), n_in, wc.data() + o * nc);
    wp.push_back(wc.data() + o * nc);
  }
  std::vector<uint8_t> act(quant::row_size(fmt->act_type, n_in));
  for (int64_t r = 0; r < n_rows; ++r) {
    act_quantize_fn(fmt->act_type, CpuPath::scalar)(x.data() + r * n_in, act.data(), n_in);
    act_to_chunks(fmt->act_type, act.data(), n_in, ac.data() + r * nc);
    ap.push_back(ac.data() + r * nc);
  }
  std::vector<float> got(static_cast<size_t>(n_out * n_rows));
  tile_ref(*fmt, nc, wp.data(), static_cast<int>(n_out), ap.data(), static_cast<int>(n_rows), got.data(), n_rows);
  for (int64_t o = 0; o < n_out; ++o)
    for (int64_t r = 0; r < n_rows; ++r)
      EXPECT_NEAR(got[o * n_rows + r], want[r * n_out + o], bound[r * n_out + o]) << "row " << r << " out " << o;

  // Every fast tile kernel, at every tile size it takes, equals the reference tile.
  for (int p = 0; p < kCpuPathCount; ++p) {
    const auto path = static_cast<CpuPath>(p);
    const TileKernels* tk = tile_kernels(path);
    if (tk == nullptr || !cpu_supports(path)) continue;
    for (int nw = 1; nw <= std::min<int>(tk->max_w, static_cast<int>(n_out)); ++nw)
      for (int na = 1; na <= std::min<int>(tk->max_a, static_cast<int>(n_rows)); ++na) {
        std::vector<float> fast(static_cast<size_t>(nw * na)), ref(fast.size());
        tk->tile(*fmt, nc, wp.data(), nw, ap.data(), na, fast.data(), na);
        tile_ref(*fmt, nc, wp.data(), nw, ap.data(), na, ref.data(), na);
        for (int i = 0; i < nw; ++i)
          for (int j = 0; j < na; ++j)
            EXPECT_NEAR(fast[i * na + j], ref[i * na + j], 2 * bound[j * n_out + i])
                << cpu_path_name(path) << " tile " << nw << "x" << na << " (" << i << "," << j << ")";
      }
  }
}

TEST_P(Gemm, MatmulOnTheActivePathMatchesScalarDots) {
  const GgmlType type = GetParam();
  std::mt19937 rng(13);
  const int64_t n_in = traits(type).blck_size == 256 ? 1024 : 544;
  const ThreadPool pool(2);
  for (const int64_t n_rows : {1, 3, 4, 9, 37}) {
    for (const int64_t n_out : {1, 5, 33}) {
      Weights w = random_weights(type, n_in, n_out, rng);
      const std::vector<float> x = random_acts(n_in, n_rows, rng);
      std::vector<float> want;
      std::vector<double> bound;
      reference(w, x, n_rows, want, bound);
      const int64_t ldy = n_out + 3;
      std::vector<float> y(static_cast<size_t>(n_rows * ldy), -7.0f);
      MatmulScratch scratch;
      matmul(w.view, x.data(), n_rows, y.data(), ldy, pool, scratch);
      for (int64_t r = 0; r < n_rows; ++r) {
        for (int64_t o = 0; o < n_out; ++o)
          ASSERT_NEAR(y[r * ldy + o], want[r * n_out + o], 2 * bound[r * n_out + o])
              << n_rows << " rows x " << n_out << " outputs: row " << r << " out " << o;
        for (int64_t o = n_out; o < ldy; ++o) ASSERT_EQ(y[r * ldy + o], -7.0f) << "wrote past n_out";
      }
    }
  }
}

// A row multiplied alone (the single-row GEMV kernels) gives the bits it gets inside a batch
// (the tile kernels): decode and prompt processing agree exactly.
TEST_P(Gemm, SingleRowsGiveTheBitsOfTheBatch) {
  const GgmlType type = GetParam();
  std::mt19937 rng(17);
  const ThreadPool pool(2);
  for (const int64_t n_in : {int64_t{256}, int64_t{2048}, int64_t{2304}}) {
    if (n_in % traits(type).blck_size != 0) continue;
    const int64_t n_out = 37, n_rows = 9;
    Weights w = random_weights(type, n_in, n_out, rng);
    const std::vector<float> x = random_acts(n_in, n_rows, rng);
    std::vector<float> batch(static_cast<size_t>(n_rows * n_out)), single(static_cast<size_t>(n_out));
    MatmulScratch scratch;
    matmul(w.view, x.data(), n_rows, batch.data(), n_out, pool, scratch);
    for (int64_t r = 0; r < n_rows; ++r) {
      matmul(w.view, x.data() + r * n_in, 1, single.data(), n_out, pool, scratch);
      for (int64_t o = 0; o < n_out; ++o)
        ASSERT_EQ(single[o], batch[r * n_out + o]) << "n_in " << n_in << " row " << r << " out " << o;
    }
  }
}

// Decode steps of 2..kMaxGemvAct sequences (the GEMV path, each weight decoded once for all rows)
// give every row the bits it gets in a large batch (the tile path) and alone.
TEST_P(Gemm, SmallBatchesGiveTheBitsOfTheBatch) {
  const GgmlType type = GetParam();
  std::mt19937 rng(23);
  const ThreadPool pool(2);
  for (const int64_t n_in : {int64_t{256}, int64_t{2304}}) {
    if (n_in % traits(type).blck_size != 0) continue;
    const int64_t n_out = 37, n_rows = 2 * kMaxGemvAct + 3;
    Weights w = random_weights(type, n_in, n_out, rng);
    const std::vector<float> x = random_acts(n_in, n_rows, rng);
    std::vector<float> batch(static_cast<size_t>(n_rows * n_out)), small(static_cast<size_t>(kMaxGemvAct * n_out));
    MatmulScratch scratch;
    matmul(w.view, x.data(), n_rows, batch.data(), n_out, pool, scratch);
    for (int64_t n = 2; n <= kMaxGemvAct; ++n) {
      const int64_t r0 = n + 1;  // rows r0 .. r0+n-1 of the batch
      matmul(w.view, x.data() + r0 * n_in, n, small.data(), n_out, pool, scratch);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t o = 0; o < n_out; ++o)
          ASSERT_EQ(small[r * n_out + o], batch[(r0 + r) * n_out + o]) << "n_in " << n_in << " n " << n << " row " << r;
    }
  }
}

/// `w` rewritten into the lane layout (gemm.h) with the scalar to_lane_layout.
Weights to_lanes(const Weights& w) {
  Weights l = w;
  for (int64_t o = 0; o < w.view.n_out; ++o)
    to_lane_layout(w.view.type, w.view.row(o), l.data.data() + o * w.view.row_bytes, w.view.n_in);
  l.view.data = l.data.data();
  l.view.layout = WeightLayout::lanes;
  return l;
}

// The lane layout keeps every row's size and header bytes, moves the codes, and comes back
// exactly; the SIMD decoders read it as lane-order codes equal to the scalar unpacker's codes
// of the file's layout (the layout's definition, checked by independent code).
TEST_P(Gemm, LaneLayoutIsAPermutationTheDecodersReadInLaneOrder) {
  const GgmlType type = GetParam();
  const int64_t n_in = 768;
  if (!has_lane_layout(type, n_in)) {
    EXPECT_THROW(to_lane_layout(type, nullptr, nullptr, n_in), Error);
    GTEST_SKIP() << "no lane layout for " << traits(type).name;
  }
  EXPECT_FALSE(has_lane_layout(type, 288));
  std::mt19937 rng(29);
  const Weights w = random_weights(type, n_in, 5, rng);
  const Weights l = to_lanes(w);
  EXPECT_NE(w.data, l.data);
  std::vector<uint8_t> back(w.view.row_bytes);
  for (int64_t o = 0; o < 5; ++o) {
    from_lane_layout(type, l.view.row(o), back.data(), n_in);
    ASSERT_EQ(std::memcmp(back.data(), w.view.row(o), back.size()), 0) << "row " << o;
    std::vector<float> a(static_cast<size_t>(n_in)), b(a.size());
    get_row(w.view, o, a.data());
    get_row(l.view, o, b.data());
    ASSERT_EQ(a, b) << "row " << o;
  }
  int checked = 0;
  for (int p = 0; p < kCpuPathCount; ++p) {
    const auto path = static_cast<CpuPath>(p);
    const TileKernels* tk = tile_kernels(path);
    if (tk == nullptr || tk->unpack_lanes == nullptr || !cpu_supports(path)) continue;
    const UnpackFn lanes = tk->unpack_lanes(type, n_in);
    ASSERT_NE(lanes, nullptr);
    for (int64_t o = 0; o < 5; ++o) {
      std::vector<WChunk> want(static_cast<size_t>(n_chunks(n_in))), got(want.size());
      weight_format(type)->unpack(w.view.row(o), n_in, want.data());
      lanes(l.view.row(o), n_in, got.data());
      ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(WChunk)), 0) << cpu_path_name(path) << " row " << o;
    }
    // The fast repacker writes the scalar one's bytes.
    ASSERT_NE(tk->repack, nullptr);
    const RepackFn repack = tk->repack(type, n_in);
    ASSERT_NE(repack, nullptr);
    std::vector<uint8_t> fast = w.data;
    repack(fast.data(), 5, n_in, w.view.row_bytes);
    ASSERT_EQ(fast, l.data) << cpu_path_name(path);
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no lane-layout kernels on this CPU";
}

// Repacked weights give every batch size the bits of the file's layout on the active path (the
// lane-layout GEMV and tile kernels where the path has them, rows converted back elsewhere),
// and repack_to_lanes writes to_lane_layout's bytes.
TEST_P(Gemm, LaneLayoutMatmulGivesTheBitsOfTheFileLayout) {
  const GgmlType type = GetParam();
  const int64_t n_in = 2304;
  if (!has_lane_layout(type, n_in)) GTEST_SKIP() << "no lane layout for " << traits(type).name;
  std::mt19937 rng(31);
  const ThreadPool pool(2);
  const int64_t n_out = 37;
  const Weights w = random_weights(type, n_in, n_out, rng);
  const Weights l = to_lanes(w);
  std::vector<uint8_t> repacked = w.data;
  repack_to_lanes(w.view, repacked.data(), pool);
  ASSERT_EQ(repacked, l.data);
  const int64_t max_rows = 2 * kMaxGemvAct + 3;
  const std::vector<float> x = random_acts(n_in, max_rows, rng);
  std::vector<float> want(static_cast<size_t>(max_rows * n_out)), got(want.size());
  MatmulScratch scratch;
  for (int64_t n = 1; n <= max_rows; n += n < kMaxGemvAct ? 1 : kMaxGemvAct + 3) {
    matmul(w.view, x.data(), n, want.data(), n_out, pool, scratch);
    matmul(l.view, x.data(), n, got.data(), n_out, pool, scratch);
    for (int64_t i = 0; i < n * n_out; ++i) ASSERT_EQ(got[i], want[i]) << n << " rows, output " << i;
  }
}

// ---- the x16 layout (16 rows interleaved) ----

/// `w` (n_out a multiple of 16) rewritten into the x16 layout with the scalar to_x16.
Weights to_x16_layout(const Weights& w) {
  Weights x = w;
  for (int64_t g = 0; g < w.view.n_out / kX16Rows; ++g)
    to_x16(w.view.type, w.view.row(g * kX16Rows), x.data.data() + g * kX16Rows * w.view.row_bytes, w.view.n_in);
  x.view.data = x.data.data();
  x.view.layout = WeightLayout::x16;
  return x;
}

/// Activation rows quantized to Q8_K with the active path's converter (as matmul does).
std::vector<uint8_t> q8_K_rows(const std::vector<float>& x, int64_t n_in, int64_t n_rows) {
  const size_t row = quant::row_size(GgmlType::Q8_K, n_in);
  std::vector<uint8_t> q(row * static_cast<size_t>(n_rows));
  for (int64_t r = 0; r < n_rows; ++r) act_quantize_fn(GgmlType::Q8_K)(x.data() + r * n_in, q.data() + r * row, n_in);
  return q;
}

// The x16 layout moves every byte of 16 rows into one group and gives each row back exactly,
// and only Q4_K / Q6_K weights of whole chunks and whole groups have it.
TEST_P(Gemm, X16LayoutGivesEveryRowBack) {
  const GgmlType type = GetParam();
  const int64_t n_in = 768, n_out = 32;
  if (!has_x16_layout(type, n_in, n_out)) {
    EXPECT_THROW(to_x16(type, nullptr, nullptr, n_in), Error);
    GTEST_SKIP() << "no x16 layout for " << traits(type).name;
  }
  EXPECT_FALSE(has_x16_layout(type, 288, n_out));
  EXPECT_FALSE(has_x16_layout(type, n_in, 24));
  std::mt19937 rng(37);
  const Weights w = random_weights(type, n_in, n_out, rng);
  const Weights x = to_x16_layout(w);
  EXPECT_NE(x.data, w.data);
  std::vector<uint8_t> row(w.view.row_bytes);
  std::vector<float> a(static_cast<size_t>(n_in)), b(a.size());
  for (int64_t o = 0; o < n_out; ++o) {
    x16_row(type, x.view.row(o - o % kX16Rows), static_cast<int>(o % kX16Rows), row.data(), n_in);
    ASSERT_EQ(std::memcmp(row.data(), w.view.row(o), row.size()), 0) << "row " << o;
    get_row(w.view, o, a.data());
    get_row(x.view, o, b.data());
    ASSERT_EQ(a, b) << "row " << o;
  }
  std::vector<uint8_t> repacked = w.data;
  repack_to_x16(w.view, repacked.data(), ThreadPool(2));
  EXPECT_EQ(repacked, x.data);
}

// The x16 arithmetic is a dot product: its scalar reference agrees with the reference vec_dot
// within the file's tolerance.
TEST_P(Gemm, X16ReferenceMatchesScalarDots) {
  const GgmlType type = GetParam();
  const int64_t n_in = 1024, n_out = 16, n_rows = 3;
  if (!has_x16_layout(type, n_in, n_out)) GTEST_SKIP() << "no x16 layout for " << traits(type).name;
  std::mt19937 rng(41);
  const Weights w = random_weights(type, n_in, n_out, rng);
  const std::vector<float> x = random_acts(n_in, n_rows, rng);
  std::vector<float> want;
  std::vector<double> bound;
  reference(w, x, n_rows, want, bound);
  const std::vector<uint8_t> act = q8_K_rows(x, n_in, n_rows);
  const size_t act_row = quant::row_size(GgmlType::Q8_K, n_in);
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t o = 0; o < n_out; ++o)
      ASSERT_NEAR(x16_dot_ref(type, w.view.row(o), act.data() + r * act_row, n_in), want[r * n_out + o],
                  2 * bound[r * n_out + o])
          << "row " << r << " out " << o;
}

// Every CPU path's x16 kernel gives the scalar reference's bits for 1 .. kX16MaxAct activation
// rows, and matmul on x16 weights gives them for every batch size (one row alone, a decode step
// of several sequences, a prompt), where the active path has the kernel; elsewhere the rows are
// converted back and agree with the scalar dots.
TEST_P(Gemm, X16KernelsGiveTheReferenceBits) {
  const GgmlType type = GetParam();
  const int64_t n_in = 2304, n_out = 48;
  if (!has_x16_layout(type, n_in, n_out)) GTEST_SKIP() << "no x16 layout for " << traits(type).name;
  std::mt19937 rng(43);
  const Weights w = random_weights(type, n_in, n_out, rng);
  const Weights xw = to_x16_layout(w);
  const int64_t max_rows = 2 * kMaxGemvAct + 3;
  const std::vector<float> x = random_acts(n_in, max_rows, rng);
  const std::vector<uint8_t> act = q8_K_rows(x, n_in, max_rows);
  const size_t act_row = quant::row_size(GgmlType::Q8_K, n_in);
  std::vector<float> ref(static_cast<size_t>(max_rows * n_out));
  for (int64_t r = 0; r < max_rows; ++r)
    for (int64_t o = 0; o < n_out; ++o) ref[r * n_out + o] = x16_dot_ref(type, w.view.row(o), act.data() + r * act_row, n_in);
  for (int p = 0; p < kCpuPathCount; ++p) {
    const auto path = static_cast<CpuPath>(p);
    const TileKernels* tk = tile_kernels(path);
    if (tk == nullptr || tk->x16 == nullptr || tk->x16(type) == nullptr || !cpu_supports(path)) continue;
    for (int n_act = 1; n_act <= kX16MaxAct; ++n_act) {
      const void* ap[kX16MaxAct];
      for (int j = 0; j < n_act; ++j) ap[j] = act.data() + (5 + j) * act_row;
      std::vector<float> y(static_cast<size_t>(n_act * 20), -7.0f);
      tk->x16(type)(xw.view.row(16), n_in / kChunk, ap, n_act, y.data(), 20);
      for (int j = 0; j < n_act; ++j) {
        for (int i = 0; i < kX16Rows; ++i)
          ASSERT_EQ(y[j * 20 + i], ref[(5 + j) * n_out + 16 + i]) << cpu_path_name(path) << " n_act " << n_act << " row " << i;
        for (int i = kX16Rows; i < 20; ++i) ASSERT_EQ(y[j * 20 + i], -7.0f) << "wrote past the group";
      }
    }
  }
  const bool kernel = prefers_x16_layout(type, n_in, n_out);
  std::vector<float> want;
  std::vector<double> bound;
  if (!kernel) reference(w, x, max_rows, want, bound);
  const ThreadPool pool(2);
  MatmulScratch scratch;
  const int64_t ldy = n_out + 5;
  for (int64_t n = 1; n <= max_rows; ++n) {
    std::vector<float> y(static_cast<size_t>(n * ldy), -7.0f);
    matmul(xw.view, x.data(), n, y.data(), ldy, pool, scratch);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t o = 0; o < n_out; ++o) {
        if (kernel) ASSERT_EQ(y[r * ldy + o], ref[r * n_out + o]) << n << " rows: row " << r << " out " << o;
        else ASSERT_NEAR(y[r * ldy + o], want[r * n_out + o], 2 * bound[r * n_out + o]) << n << " rows: row " << r;
      }
      for (int64_t o = n_out; o < ldy; ++o) ASSERT_EQ(y[r * ldy + o], -7.0f) << "wrote past n_out";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, Gemm, testing::ValuesIn(kTypes),
                         [](const testing::TestParamInfo<GgmlType>& i) { return std::string(traits(i.param).name); });

TEST(Gemm, TypesWithoutTilesUseRowByRowDots) {
  EXPECT_EQ(weight_format(GgmlType::F16), nullptr);
  EXPECT_EQ(weight_format(GgmlType::IQ2_XXS), nullptr);
  EXPECT_EQ(tile_kernels(CpuPath::scalar), nullptr);
}

}  // namespace
}  // namespace hearth::kernels::gemm
