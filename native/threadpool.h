// A small persistent thread pool. Kernels call parallel_for from the generic (non-ISA)
// translation units; the ISA-specific leaf functions only ever see a [begin, end) range.
#pragma once
#include <cstdint>
#include <functional>

namespace mt {

int num_threads();
void set_num_threads(int n);

// Calls fn(begin, end, worker) on disjoint chunks covering [0, n). Chunks of `grain` items are
// handed out dynamically (good for uneven work such as causal attention). Runs inline when the
// pool has one thread, when n <= grain, or when called from inside a parallel region.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

}  // namespace mt
