// FMA peak measurement: the denominator of every efficiency ratio in the project.
//
// addon.measurePeak(seconds[, variant]) -> { gflops, threads, isa, variants: { name: gflops, ... }, seconds,
//                                 cpuGflops, cpuVariants }
// Every thread of the pool runs a register-resident loop of 12-16 independent FMA chains (enough
// to cover 2 FMA pipes x 4-cycle latency) until a shared deadline; FLOPs are counted as 2 per lane
// per FMA and divided by the wall time of the whole parallel region. Each vector width the CPU
// supports is measured (time split between them) and the best one is reported.
#include <chrono>
#include <ctime>
#include <string>
#include <vector>

#include "cpu.h"
#include "gemm.h"
#include "napi_util.h"
#include "threadpool.h"

namespace mt {

namespace {

typedef double (*PeakFn)(int64_t, float, double*);

struct Variant {
  const char* name;
  PeakFn fn;
};

volatile double g_sink = 0;

// CPU time of the calling thread (seconds), or -1 where unavailable.
double thread_cpu_seconds() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
  timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
#endif
  return -1.0;
}

struct PeakRun {
  double wall_gflops;  // all FLOPs / wall time of the parallel region
  double cpu_gflops;   // sum over threads of FLOPs / thread CPU time: the peak with uncontended cores
};

PeakRun run_variant(PeakFn fn, double seconds) {
  typedef std::chrono::steady_clock clk;
  const int threads = num_threads();
  std::vector<double> flops(static_cast<size_t>(threads), 0.0);
  std::vector<double> sinks(static_cast<size_t>(threads), 0.0);
  std::vector<double> cpus(static_cast<size_t>(threads), 0.0);
  // Warm up (clock ramp, page in the code) briefly on the calling thread.
  {
    double f = 0;
    g_sink = g_sink + fn(200000, 1.0f, &f);
  }
  const auto start = clk::now();
  const auto deadline = start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(seconds));
  parallel_for(threads, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      double total = 0, s = 0;
      const double c0 = thread_cpu_seconds();
      do {
        double f = 0;
        s += fn(100000, 1.0f + static_cast<float>(t), &f);
        total += f;
      } while (clk::now() < deadline);
      flops[static_cast<size_t>(t)] = total;
      cpus[static_cast<size_t>(t)] = thread_cpu_seconds() - c0;
      sinks[static_cast<size_t>(t)] = s;
    }
  });
  const double wall = std::chrono::duration<double>(clk::now() - start).count();
  double total = 0, s = 0, cpu_rate = 0;
  for (int t = 0; t < threads; ++t) {
    const size_t i = static_cast<size_t>(t);
    total += flops[i];
    s += sinks[i];
    if (cpus[i] > 0) cpu_rate += flops[i] / cpus[i];
  }
  g_sink = g_sink + s;
  return {total / wall / 1e9, cpu_rate / 1e9};
}

Napi::Value MeasurePeak(const Napi::CallbackInfo& info) {
  const char* fn = "measurePeak";
  double seconds = 1.0;
  if (info.Length() >= 1 && !info[0].IsUndefined()) seconds = num_arg(info, 0, fn, "seconds");
  if (!(seconds > 0.0 && seconds <= 600.0)) throw arg_error(info.Env(), fn, "seconds must be in (0, 600]");
  std::vector<Variant> vs;
  const Isa best = best_isa();
  if (best == Isa::avx512) {
    vs.push_back({"avx512", peak_fma_avx512});
    vs.push_back({"avx512-ymm", peak_fma_avx512y});
  }
  if (best >= Isa::avx2) vs.push_back({"avx2", peak_fma_avx2});
  if (best == Isa::portable) vs.push_back({"portable", peak_fma_portable});
  // Optional second argument: measure only the named variant (e.g. a quick re-measurement).
  if (info.Length() >= 2 && !info[1].IsUndefined() && !info[1].IsNull()) {
    if (!info[1].IsString()) throw arg_error(info.Env(), fn, "variant must be a string");
    const std::string want = info[1].As<Napi::String>().Utf8Value();
    std::vector<Variant> one;
    for (const Variant& v : vs)
      if (want == v.name) one.push_back(v);
    if (one.empty()) throw arg_error(info.Env(), fn, "unknown variant '" + want + "' on this CPU");
    vs = one;
  }
  Napi::Env env = info.Env();
  Napi::Object variants = Napi::Object::New(env);
  double best_g = 0;
  std::string best_name;
  // Two rounds over the variants (interleaved) so a transient load spike does not decide the winner.
  const int rounds = 2;
  std::vector<double> g(vs.size(), 0.0), gc(vs.size(), 0.0);
  for (int r = 0; r < rounds; ++r)
    for (size_t i = 0; i < vs.size(); ++i) {
      PeakRun x = run_variant(vs[i].fn, seconds / (rounds * vs.size()));
      if (x.wall_gflops > g[i]) g[i] = x.wall_gflops;
      if (x.cpu_gflops > gc[i]) gc[i] = x.cpu_gflops;
    }
  double best_cpu = 0;
  Napi::Object cpu_variants = Napi::Object::New(env);
  for (size_t i = 0; i < vs.size(); ++i) {
    variants.Set(vs[i].name, Napi::Number::New(env, g[i]));
    cpu_variants.Set(vs[i].name, Napi::Number::New(env, gc[i]));
    if (g[i] > best_g) {
      best_g = g[i];
      best_name = vs[i].name;
    }
    if (gc[i] > best_cpu) best_cpu = gc[i];
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("gflops", Napi::Number::New(env, best_g));
  o.Set("threads", Napi::Number::New(env, num_threads()));
  o.Set("isa", Napi::String::New(env, best_name));
  o.Set("variants", variants);
  // Per-thread CPU-time based peak: robust against other processes sharing the cores.
  o.Set("cpuGflops", Napi::Number::New(env, best_cpu));
  o.Set("cpuVariants", cpu_variants);
  o.Set("seconds", Napi::Number::New(env, seconds));
  return o;
}

}  // namespace

void register_peak(Napi::Env env, Napi::Object exports) {
  export_fn<MeasurePeak>(env, exports, "measurePeak");
}

}  // namespace mt
