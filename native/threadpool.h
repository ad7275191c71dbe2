// A small persistent thread pool. Kernels call parallel_for from the generic (non-ISA)
// translation units; the ISA-specific leaf functions only ever see a [begin, end) range.
#pragma once
#include <cstdint>
#include <functional>

namespace mt {

// Most threads a pool may have (setNumThreads / MIXTUNE_THREADS beyond it are errors).
constexpr int kMaxThreads = 256;

int num_threads();
// Resizes the pool (waits for a running parallel_for). Throws std::invalid_argument outside
// [1, kMaxThreads]; if the system cannot start all threads, keeps the ones it started and throws
// std::runtime_error saying how many run.
void set_num_threads(int n);

// Calls fn(begin, end, worker) on disjoint chunks covering [0, n). Chunks of `grain` items are
// handed out dynamically (good for uneven work such as causal attention). Runs inline when the
// pool has one thread, when n <= grain, or when called from inside a parallel region.
// `max_workers`: only workers 0..max_workers-1 take chunks, so a kernel that sized per-worker
// scratch from num_threads() stays in bounds even if the pool is resized concurrently.
// An exception thrown by fn on any thread stops the remaining chunks and is rethrown here, on the
// calling thread, after every worker has left fn (the pool stays usable).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn,
                  int max_workers = kMaxThreads);

}  // namespace mt
