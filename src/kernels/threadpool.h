// The compute thread pool: OpenMP teams sized per context.
#pragma once

#include <cstdint>
#include <functional>

namespace hearth::kernels {

/// Runs loops over [0, n) split into contiguous ranges, one per thread, on `n_threads`
/// OpenMP threads. A pool with one thread runs everything inline.
class ThreadPool {
 public:
  /// `n_threads` <= 0 means one per hardware core.
  explicit ThreadPool(int n_threads = 0);

  int n_threads() const { return n_threads_; }

  /// Calls fn(begin, end) on disjoint ranges covering [0, n); ranges are multiples of
  /// `grain` (except the last) so threads do not share cache lines of the output.
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn,
                    int64_t grain = 1) const;

  /// Calls fn(thread_index) once on each of the pool's threads.
  void run_on_all(const std::function<void(int thread_index)>& fn) const;

  /// Index (0 .. n_threads-1) of the calling thread within the innermost parallel_for or
  /// run_on_all of any pool; 0 outside them and where that call ran inline (one thread). Use it
  /// to pick per-thread scratch sized by n_threads().
  static int thread_index();

  /// Number of hardware threads available to this process.
  static int hardware_threads();

 private:
  int n_threads_;
};

}  // namespace hearth::kernels
