// hearth_bandwidth: memory read bandwidth with 1 and N threads (runtime/bandwidth.h).
//
//   hearth_bandwidth [-t N] [--bytes 1G] [--passes 5] [--json]
//
// Prints "read bandwidth: X GB/s (T threads)" for T = 1 and T = N (default: the hardware threads
// this process may use), X in decimal gigabytes (1e9 bytes) per second, the best of --passes
// reads of a --bytes buffer (default 1 GiB, far larger than the last-level cache). --json prints
// {"buffer_bytes", "passes", "results": [{"n_threads", "best_ns", "gb_per_s"}, ...]} instead.
// Bad options: one line on stderr, exit code 1.
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "hearth/error.h"
#include "kernels/threadpool.h"
#include "runtime/bandwidth.h"

int main(int argc, char** argv) {
  CLI::App app{"hearth_bandwidth: memory read bandwidth with 1 and N threads"};
  int threads = hearth::kernels::ThreadPool::hardware_threads();
  std::string bytes_text = "1G";
  int passes = 5;
  bool json = false;
  app.add_option("-t,--threads", threads, "N: the second thread count (default: hardware threads)");
  app.add_option("--bytes", bytes_text, "buffer size in bytes; K, M, G suffixes (default 1G)");
  app.add_option("--passes", passes, "timed passes per thread count; the best is reported (default 5)");
  app.add_flag("--json", json, "machine-readable output");
  CLI11_PARSE(app, argc, argv);
  try {
    if (threads < 1) throw hearth::Error("-t: " + std::to_string(threads) + " is not a thread count (must be at least 1)");
    uint64_t bytes = 0;
    try {
      bytes = hearth::runtime::parse_size_bytes(bytes_text);
    } catch (const hearth::Error& e) {
      throw hearth::Error(std::string("--bytes: ") + e.what());
    }
    std::vector<int> counts{1};
    if (threads != 1) counts.push_back(threads);
    const auto results = hearth::runtime::measure_read_bandwidth(bytes, counts, passes);
    if (json) {
      nlohmann::ordered_json j;
      j["buffer_bytes"] = bytes;
      j["passes"] = passes;
      j["results"] = nlohmann::ordered_json::array();
      for (const auto& r : results)
        j["results"].push_back({{"n_threads", r.n_threads},
                                {"best_ns", static_cast<uint64_t>(std::llround(r.best_seconds * 1e9))},
                                {"gb_per_s", r.gb_per_s}});
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      for (const auto& r : results) std::printf("read bandwidth: %.2f GB/s (%d threads)\n", r.gb_per_s, r.n_threads);
    }
  } catch (const hearth::Error& e) {
    std::fprintf(stderr, "hearth_bandwidth: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
