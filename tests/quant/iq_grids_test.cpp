// The lattice grids and sign table of quant/iq_grids.h (formats.md §2.5): sizes, every
// coordinate in the format's level set, distinct entries, the expansion rule against the compact
// tables, and checksums equal to those of ggml-common.h's stored grids.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <set>
#include <vector>

#include "quant/iq_grids.h"

namespace hearth::quant {
namespace {

/// 64-bit FNV-1a over the little-endian bytes of the entries (`width` bytes each).
template <class T, size_t N>
uint64_t fnv1a(const std::array<T, N>& entries) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (T v : entries)
    for (size_t k = 0; k < sizeof(T); ++k) {
      h ^= static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * k));
      h *= 0x100000001b3ull;
    }
  return h;
}

template <class T, size_t N>
void expect_grid(const std::array<T, N>& grid, const std::set<int>& levels, const char* name) {
  std::set<T> distinct;
  for (size_t i = 0; i < N; ++i) {
    distinct.insert(grid[i]);
    for (size_t k = 0; k < sizeof(T); ++k) {
      const int byte = static_cast<uint8_t>(static_cast<uint64_t>(grid[i]) >> (8 * k));
      ASSERT_TRUE(levels.count(byte)) << name << " entry " << i << " byte " << k << " = " << byte;
    }
  }
  EXPECT_EQ(distinct.size(), N) << name << ": entries are not distinct";
}

TEST(IqGrids, SizesLevelsAndDistinctEntries) {
  EXPECT_EQ(kIq2xxsGrid.size(), 256u);
  EXPECT_EQ(kIq2xsGrid.size(), 512u);
  EXPECT_EQ(kIq2sGrid.size(), 1024u);
  EXPECT_EQ(kIq3xxsGrid.size(), 256u);
  EXPECT_EQ(kIq3sGrid.size(), 512u);
  EXPECT_EQ(kIq1sGrid.size(), 2048u);
  const std::set<int> iq2 = {8, 25, 43};
  expect_grid(kIq2xxsGrid, iq2, "iq2xxs");
  expect_grid(kIq2xsGrid, iq2, "iq2xs");
  expect_grid(kIq2sGrid, iq2, "iq2s");
  expect_grid(kIq3xxsGrid, {4, 12, 20, 28, 36, 44, 52, 62}, "iq3xxs");
  expect_grid(kIq3sGrid, {1, 3, 5, 7, 9, 11, 13, 15}, "iq3s");
  expect_grid(kIq1sGrid, {0xFF, 0x00, 0x01}, "iq1s");  // int8 -1, 0, +1
}

TEST(IqGrids, CompactTablesUseOnlyValidLevelsAndExpandOneToOne) {
  // 2-bit tables: level 3 never occurs (the maps of formats.md §2.5 have three levels).
  auto no_level3 = [](uint16_t v) {
    for (int k = 0; k < 8; ++k)
      if (((v >> (2 * k)) & 3) == 3) return false;
    return true;
  };
  for (uint16_t v : kgrid_2bit_256()) EXPECT_TRUE(no_level3(v)) << v;
  for (uint16_t v : kgrid_2bit_512()) EXPECT_TRUE(no_level3(v)) << v;
  for (uint16_t v : kgrid_2bit_1024()) EXPECT_TRUE(no_level3(v)) << v;
  for (uint16_t v : kgrid_1bit_2048()) EXPECT_TRUE(no_level3(v)) << v;
  // The tables are ascending (ggml stores them sorted) and 3-bit ones use 12 bits.
  EXPECT_TRUE(std::is_sorted(kgrid_1bit_2048().begin(), kgrid_1bit_2048().end()));
  for (uint16_t v : kgrid_3bit_256()) EXPECT_LT(v, 4096);
  for (uint16_t v : kgrid_3bit_512()) EXPECT_LT(v, 4096);
  // Spot checks of the rule: entry 0 is all level 0; IQ2 kgrid value 2 = level 1 at coordinate 0.
  EXPECT_EQ(kIq2xxsGrid[0], 0x0808080808080808ull);
  EXPECT_EQ(kgrid_2bit_256()[1], 2);
  EXPECT_EQ(kIq2xxsGrid[1], 0x080808080808082bull);  // level 2 (value 2) -> 43 = 0x2b
  EXPECT_EQ(kIq1sGrid[0], 0xFFFFFFFFFFFFFFFFull);
  EXPECT_EQ(kIq3xxsGrid[0], 0x04040404u);
  EXPECT_EQ(kIq3sGrid[0], 0x01010101u);
}

TEST(IqGrids, SignTableHasEvenParity) {
  for (unsigned s7 = 0; s7 < 128; ++s7) {
    EXPECT_EQ(kSignsIq2xs[s7] & 127, s7);
    EXPECT_EQ(std::popcount(static_cast<unsigned>(kSignsIq2xs[s7])) % 2, 0) << s7;
  }
  // ksigns_iq2xs starts 0, 129, 130, 3, 132, 5, 6, 135 in ggml-common.h.
  const uint8_t head[8] = {0, 129, 130, 3, 132, 5, 6, 135};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(kSignsIq2xs[i], head[i]);
}

TEST(IqGrids, Checksums) {
  // 64-bit FNV-1a (offset 0xcbf29ce484222325, prime 0x100000001b3) over the little-endian bytes
  // of every entry, in order, computed by a throw-away /usr/bin/python3 script.
  // iq3xxs: the script read all 256 entries of ggml-common.h's stored `iq3xxs_grid` (hex text)
  // and found them equal, entry by entry, to the expansion of kgrid_256; the number is the
  // checksum of ggml's stored table. The other five numbers are the checksums of the script's
  // own expansion of the kgrid tables (an independent implementation of the formats.md §2.5
  // rule); they pin the expansion, and StoredEntriesOfGgmlCommon compares stored ggml entries.
  EXPECT_EQ(fnv1a(kIq3xxsGrid), 0xdfa5dc83d6a155d5ull);
  EXPECT_EQ(fnv1a(kIq2xxsGrid), 0xbb4ee025b5ac6e8eull);
  EXPECT_EQ(fnv1a(kIq2xsGrid), 0xc9b1ee61e79909bdull);
  EXPECT_EQ(fnv1a(kIq2sGrid), 0x123edd38a3b62b90ull);
  EXPECT_EQ(fnv1a(kIq3sGrid), 0xfa37020c25b44829ull);
  EXPECT_EQ(fnv1a(kIq1sGrid), 0x6703ed863501ae2eull);
}

TEST(IqGrids, StoredEntriesOfGgmlCommon) {
  // Entries read from ggml-common.h's iq3xxs_grid (first row and last row).
  const uint32_t iq3xxs_first[8] = {0x04040404, 0x04040414, 0x04040424, 0x04040c0c,
                                    0x04040c1c, 0x04040c3e, 0x04041404, 0x04041414};
  const uint32_t iq3xxs_last[8] = {0x3e1c1c1c, 0x3e1c3404, 0x3e24140c, 0x3e24240c,
                                   0x3e2c0404, 0x3e2c0414, 0x3e2c1424, 0x3e341c04};
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(kIq3xxsGrid[i], iq3xxs_first[i]) << i;
    EXPECT_EQ(kIq3xxsGrid[248 + i], iq3xxs_last[i]) << i;
  }
  // Last entries of iq2xxs_grid as stored in ggml-common.h.
  EXPECT_EQ(kIq2xxsGrid[252], 0x2b2b082b08080808ull);
  EXPECT_EQ(kIq2xxsGrid[253], 0x2b2b190808192b08ull);
  EXPECT_EQ(kIq2xxsGrid[254], 0x2b2b2b0819190808ull);
  EXPECT_EQ(kIq2xxsGrid[255], 0x2b2b2b1908081908ull);
}

}  // namespace
}  // namespace hearth::quant
