#include "threadpool.h"

#include <atomic>
#include <condition_variable>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace mt {

namespace {

thread_local bool t_in_parallel = false;

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop_workers(); }

  int size() const { return n_threads_.load(std::memory_order_acquire); }

  void resize(int n) {
    if (n < 1 || n > kMaxThreads) {
      throw std::invalid_argument("thread count " + std::to_string(n) + " is outside [1, " + std::to_string(kMaxThreads) + "]");
    }
    std::lock_guard<std::mutex> call_lock(call_mu_);
    stop_workers();
    n_threads_ = 1;
    stop_ = false;
    // Workers start from the current generation, read here: reading it inside the new thread
    // could miss a parallel_for issued right after resize() and hang it.
    const uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int w = 1; w < n; ++w) {
      try {
        workers_.emplace_back([this, w, gen] { worker_loop(w, gen); });
      } catch (const std::system_error& e) {
        // Keep the threads that started; n_threads_ counts exactly those.
        throw std::runtime_error("could start only " + std::to_string(n_threads_.load()) + " of " + std::to_string(n) +
                                 " threads (" + e.what() + "); the pool runs with " + std::to_string(n_threads_.load()));
      }
      n_threads_ = w + 1;
    }
  }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn, int max_workers) {
    std::lock_guard<std::mutex> call_lock(call_mu_);
    fn_ = &fn;
    n_ = n;
    grain_ = grain;
    max_workers_ = max_workers;
    error_ = nullptr;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(n_threads_.load() - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(mu_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    work(0);
    // Wait for the workers: spin briefly (kernels are short), then yield. Every worker leaves fn
    // before pending_ reaches 0, also after an exception.
    int spins = 0;
    while (pending_.load(std::memory_order_acquire) != 0) {
      if (++spins > 2000) std::this_thread::yield();
    }
    fn_ = nullptr;
    if (error_) {
      std::exception_ptr e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }

 private:
  struct InParallel {
    InParallel() { t_in_parallel = true; }
    ~InParallel() { t_in_parallel = false; }
  };

  void work(int worker) {
    if (worker >= max_workers_) return;
    InParallel guard;
    try {
      for (;;) {
        int64_t begin = next_.fetch_add(grain_, std::memory_order_relaxed);
        if (begin >= n_) break;
        int64_t end = begin + grain_ < n_ ? begin + grain_ : n_;
        (*fn_)(begin, end, worker);
      }
    } catch (...) {
      // The first error wins; the other workers stop taking chunks.
      std::lock_guard<std::mutex> lk(err_mu_);
      if (!error_) error_ = std::current_exception();
      next_.store(n_, std::memory_order_relaxed);
    }
  }

  void worker_loop(int w, uint64_t seen) {
    for (;;) {
      // Spin a little before sleeping: back-to-back kernels arrive within microseconds.
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_acquire) && spins < 20000) ++spins;
      if (generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_acquire)) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen || stop_.load(std::memory_order_acquire); });
      }
      if (stop_.load(std::memory_order_acquire)) return;
      seen = generation_.load(std::memory_order_acquire);
      work(w);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::atomic<int> n_threads_{1};
  std::vector<std::thread> workers_;
  std::mutex call_mu_, mu_, err_mu_;
  std::exception_ptr error_;
  int max_workers_ = kMaxThreads;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int64_t, int64_t, int)>* fn_ = nullptr;
  int64_t n_ = 0, grain_ = 1;
};

int default_threads() {
  const char* env = std::getenv("MIXTUNE_THREADS");
  if (env && *env) {
    errno = 0;
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (errno != 0 || end == env || *end != '\0' || n < 1 || n > kMaxThreads) {
      throw std::invalid_argument(std::string("MIXTUNE_THREADS='") + env + "': expected an integer in [1, " + std::to_string(kMaxThreads) + "]");
    }
    return static_cast<int>(n);
  }
  unsigned hc = std::thread::hardware_concurrency();
  if (hc == 0) return 1;
  return hc > static_cast<unsigned>(kMaxThreads) ? kMaxThreads : static_cast<int>(hc);
}

Pool& pool() {
  static Pool* p = new Pool(default_threads());  // never destroyed: workers may outlive static teardown
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) { pool().resize(n); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn, int max_workers) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  Pool& p = pool();
  if (p.size() == 1 || max_workers <= 1 || n <= grain || t_in_parallel) {
    fn(0, n, 0);
    return;
  }
  p.run(n, grain, fn, max_workers);
}

}  // namespace mt
