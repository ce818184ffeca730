// Memory-bandwidth probe: how fast this machine streams a large buffer from memory, the bound
// on token generation speed (each generated token reads every weight once).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hearth::runtime {

/// Default probe size: 1 GiB, far larger than any last-level cache, so the probe measures DRAM.
inline constexpr uint64_t kBandwidthDefaultBytes = uint64_t{1} << 30;

/// One measurement of read bandwidth.
struct BandwidthResult {
  int n_threads = 0;         ///< threads that read the buffer together (as OpenMP granted them)
  uint64_t bytes = 0;        ///< bytes read per pass (the whole buffer)
  int passes = 0;            ///< timed passes; the fastest one is reported
  double best_seconds = 0;   ///< wall time of the fastest pass, seconds
  double gb_per_s = 0;       ///< bytes / best_seconds / 1e9: decimal gigabytes per second
  uint64_t checksum = 0;     ///< sum of the buffer's uint64 words read by the last pass
};

/// Measures read bandwidth over one buffer of `bytes` bytes, once for each entry of
/// `thread_counts` (e.g. {1, 16}). The buffer is allocated once and filled with the uint64
/// words 0, 1, 2, ... by the threads that will read it (first touch); then, per thread count,
/// an untimed warm-up pass and `passes` timed passes each read the whole buffer, split into
/// one contiguous range of cache lines per OpenMP thread, with 32-byte vector loads (AVX2
/// where the CPU has it, else two 16-byte loads) summed into independent accumulators (the sum
/// is kept, so the reads cannot be optimised away). The fastest pass is reported; `checksum`
/// equals n·(n−1)/2 mod 2^64 for n = bytes / 8 words. Thread counts above the hardware's are
/// allowed (oversubscribed).
///
/// Use bytes much larger than the last-level cache (the default, 1 GiB) to measure DRAM;
/// a small buffer measures cache bandwidth instead.
///
/// Throws hearth::Error naming the bad value for: bytes < 4096 or not a multiple of 64,
/// an empty `thread_counts` or a count < 1, passes < 1, or a buffer that cannot be allocated.
std::vector<BandwidthResult> measure_read_bandwidth(uint64_t bytes, const std::vector<int>& thread_counts,
                                                    int passes = 5);

/// Parses a buffer size for the probe's command lines: a decimal count of bytes with an
/// optional binary suffix K, M or G (also KiB, MiB, GiB; 1G = 2^30 bytes). Throws hearth::Error
/// naming `text` if it is not such a size or overflows 64 bits.
uint64_t parse_size_bytes(const std::string& text);

}  // namespace hearth::runtime
