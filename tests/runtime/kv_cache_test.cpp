// KvCache: windowed layers (sliding window, chunks) keep only the slots their queries can see.
#include "runtime/kv_cache.h"

#include <gtest/gtest.h>

#include <string>

#include "hearth/error.h"

namespace hearth::runtime {
namespace {

using Kind = model::AttnWindow::Kind;

std::vector<model::KvLayerSpec> specs(Kind kind, int32_t size) {
  return {{8, 8, {}}, {8, 4, {kind, size}}, {8, 4, {kind, size}}};
}

/// Claims positions [p0, p1) of `seq` one micro-batch of `n_ubatch` at a time, as the context
/// does, checking that every position each query sees has a slot in the windowed group.
void run(KvCache& kv, int32_t seq, int32_t p0, int32_t p1, int32_t n_ubatch, Kind kind, int32_t size) {
  const model::AttnWindow win{kind, size};
  for (int32_t b = p0; b < p1; b += n_ubatch) {
    const std::map<int32_t, int32_t> next{{seq, b}};
    for (int32_t p = b; p < std::min(p1, b + n_ubatch); ++p) kv.claim(seq, p, next);
    std::vector<int32_t> cells;
    kv.cells_of(seq, INT32_MAX, cells);
    for (int32_t c : cells) {
      const int32_t pos = kv.cell_pos(c);
      if (pos >= win.first_visible(b)) {
        ASSERT_GE(kv.slot(1, c), 0) << "position " << pos << " is visible from " << b << " but has no slot";
        ASSERT_LT(static_cast<uint64_t>(kv.slot(1, c)), kv.layer_bytes(1) / ((8 + 4) * 2));  // slots of layer 1
      }
    }
  }
}

TEST(KvCache, WindowedLayersAllocateTheirWindowPlusAMicroBatch) {
  const auto cells = KvCache::layer_cells(specs(Kind::kSliding, 16), 1000, 64, 2);
  EXPECT_EQ(cells, (std::vector<uint32_t>{1000, 16 * 2 + 64, 16 * 2 + 64}));
  // Never more than n_ctx.
  EXPECT_EQ(KvCache::layer_cells(specs(Kind::kChunked, 8192), 4096, 512, 1)[1], 4096u);
  KvCache kv(specs(Kind::kSliding, 16), 1000, 64, 2);
  EXPECT_EQ(kv.bytes(), (1000u * 16 + 2 * 96u * 12) * 2);
  EXPECT_EQ(kv.layer_bytes(1), 96u * 12 * 2);
  EXPECT_EQ(kv.n_windows(), 2u);
  EXPECT_EQ(kv.layer_window(0), 0u);
  EXPECT_EQ(kv.layer_window(2), 1u);
}

TEST(KvCache, SlidingWindowSlotsAreReusedAndStayVisible) {
  for (int32_t ub : {1, 3, 8}) {
    KvCache kv(specs(Kind::kSliding, 5), 200, static_cast<uint32_t>(ub), 1);
    run(kv, 0, 0, 150, ub, Kind::kSliding, 5);
    EXPECT_EQ(kv.n_used(), 150u);  // full-attention layers keep everything
    // Re-evaluating from position 10 needs positions 6..9, long evicted.
    try {
      kv.check_window(0, 10);
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("left the attention window of 5 positions"), std::string::npos) << e.what();
    }
    // Continuing from the end is fine.
    EXPECT_NO_THROW(kv.check_window(0, 150));
    // Dropping the tail and going on where the window still holds the positions works.
    kv.seq_rm(0, 148, -1);
    EXPECT_NO_THROW(kv.check_window(0, 148));
    run(kv, 0, 148, 160, ub, Kind::kSliding, 5);
  }
}

TEST(KvCache, ChunkedLayersKeepTheCurrentChunk) {
  KvCache kv(specs(Kind::kChunked, 8), 100, 4, 1);
  run(kv, 0, 0, 60, 4, Kind::kChunked, 8);
  EXPECT_NO_THROW(kv.check_window(0, 60));
  EXPECT_THROW(kv.check_window(0, 41), Error);  // position 40 is in an evicted chunk
}

TEST(KvCache, SequencesKeepTheirOwnWindows) {
  const int32_t w = 4, ub = 2;
  KvCache kv(specs(Kind::kSliding, w), 300, ub, 3);
  for (int32_t round = 0; round < 40; ++round)
    for (int32_t seq = 0; seq < 3; ++seq) run(kv, seq, 2 * round, 2 * round + 2, ub, Kind::kSliding, w);
  for (int32_t seq = 0; seq < 3; ++seq) EXPECT_NO_THROW(kv.check_window(seq, 80));
  // Removing a sequence frees its slots for the others; clear frees everything.
  kv.seq_rm(1, 0, -1);
  EXPECT_EQ(kv.n_used(), 160u);
  kv.clear();
  EXPECT_EQ(kv.n_used(), 0u);
  run(kv, 0, 0, 30, ub, Kind::kSliding, w);
}

TEST(KvCache, BadSizesAreRejected) {
  EXPECT_THROW(KvCache(specs(Kind::kSliding, 0), 10, 4, 1), Error);
  EXPECT_THROW(KvCache(specs(Kind::kSliding, 4), 10, 4, 0), Error);
  EXPECT_THROW(KvCache(specs(Kind::kSliding, 4), 0, 4, 1), Error);
}

}  // namespace
}  // namespace hearth::runtime
