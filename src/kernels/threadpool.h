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

/// Runs fn() on a new thread, waits for it, and rethrows whatever fn throws. Use it for one-off
/// parallel work (loading and repacking a model) started from a thread that does not compute
/// otherwise, such as a server's HTTP worker. libgomp keeps the OpenMP team of every thread that
/// opened a parallel region until that thread exits; while it manages more threads than there are
/// cores it spin-waits only ~100 iterations at a barrier (`gomp_throttled_spin_count_var`,
/// libgomp env.c) before sleeping on a futex, so a leftover team slows every later region of the
/// threads that do compute. A thread that exits takes its team with it.
void run_on_fresh_thread(const std::function<void()>& fn);

}  // namespace hearth::kernels
