#include "kernels/threadpool.h"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <exception>
#include <thread>

namespace hearth::kernels {

int ThreadPool::hardware_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

namespace {
// Index of the calling thread in the innermost parallel_for / run_on_all of any pool (0 when
// that call runs inline on the caller, e.g. a one-thread pool inside another pool's region).
thread_local int tl_thread_index = 0;

/// Sets tl_thread_index for the lifetime of the object, restoring the caller's on exit.
class IndexScope {
 public:
  explicit IndexScope(int index) : saved_(tl_thread_index) { tl_thread_index = index; }
  ~IndexScope() { tl_thread_index = saved_; }
  IndexScope(const IndexScope&) = delete;
  IndexScope& operator=(const IndexScope&) = delete;

 private:
  int saved_;
};
}  // namespace

int ThreadPool::thread_index() { return tl_thread_index; }

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads > 0 ? n_threads : hardware_threads()) {}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) const {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n_chunks = (n + grain - 1) / grain;
  const int nt = static_cast<int>(std::min<int64_t>(n_threads_, n_chunks));
  if (nt <= 1) {
    const IndexScope scope(0);
    fn(0, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    const IndexScope scope(t);
    const int64_t c0 = n_chunks * t / nt, c1 = n_chunks * (t + 1) / nt;
    const int64_t begin = c0 * grain, end = std::min(n, c1 * grain);
    if (begin < end) fn(begin, end);
  }
}

void ThreadPool::run_on_all(const std::function<void(int)>& fn) const {
  if (n_threads_ <= 1) {
    const IndexScope scope(0);
    fn(0);
    return;
  }
#pragma omp parallel num_threads(n_threads_)
  {
    const IndexScope scope(omp_get_thread_num());
    fn(omp_get_thread_num());
  }
}

void run_on_fresh_thread(const std::function<void()>& fn) {
  std::exception_ptr error;
  std::thread worker([&] {
    try {
      fn();
    } catch (...) {
      error = std::current_exception();
    }
  });
  worker.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace hearth::kernels
