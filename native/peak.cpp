// FMA peak measurement: the denominator of every efficiency ratio in the project.
//
// addon.measurePeak(seconds) -> { gflops, threads, isa, variants: { name: gflops, ... }, seconds }
// Every thread of the pool runs a register-resident loop of 12-16 independent FMA chains (enough
// to cover 2 FMA pipes x 4-cycle latency) until a shared deadline; FLOPs are counted as 2 per lane
// per FMA and divided by the wall time of the whole parallel region. Each vector width the CPU
// supports is measured (time split between them) and the best one is reported.
#include <chrono>
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

double run_variant(PeakFn fn, double seconds) {
  typedef std::chrono::steady_clock clk;
  const int threads = num_threads();
  std::vector<double> flops(static_cast<size_t>(threads), 0.0);
  std::vector<double> sinks(static_cast<size_t>(threads), 0.0);
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
      do {
        double f = 0;
        s += fn(100000, 1.0f + static_cast<float>(t), &f);
        total += f;
      } while (clk::now() < deadline);
      flops[static_cast<size_t>(t)] = total;
      sinks[static_cast<size_t>(t)] = s;
    }
  });
  const double wall = std::chrono::duration<double>(clk::now() - start).count();
  double total = 0, s = 0;
  for (int t = 0; t < threads; ++t) {
    total += flops[static_cast<size_t>(t)];
    s += sinks[static_cast<size_t>(t)];
  }
  g_sink = g_sink + s;
  return total / wall / 1e9;
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
  Napi::Env env = info.Env();
  Napi::Object variants = Napi::Object::New(env);
  double best_g = 0;
  std::string best_name;
  // Two rounds over the variants (interleaved) so a transient load spike does not decide the winner.
  const int rounds = 2;
  std::vector<double> g(vs.size(), 0.0);
  for (int r = 0; r < rounds; ++r)
    for (size_t i = 0; i < vs.size(); ++i) {
      double x = run_variant(vs[i].fn, seconds / (rounds * vs.size()));
      if (x > g[i]) g[i] = x;
    }
  for (size_t i = 0; i < vs.size(); ++i) {
    variants.Set(vs[i].name, Napi::Number::New(env, g[i]));
    if (g[i] > best_g) {
      best_g = g[i];
      best_name = vs[i].name;
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("gflops", Napi::Number::New(env, best_g));
  o.Set("threads", Napi::Number::New(env, num_threads()));
  o.Set("isa", Napi::String::New(env, best_name));
  o.Set("variants", variants);
  o.Set("seconds", Napi::Number::New(env, seconds));
  return o;
}

}  // namespace

void register_peak(Napi::Env env, Napi::Object exports) {
  exports.Set("measurePeak", Napi::Function::New(env, MeasurePeak, "measurePeak"));
}

}  // namespace mt
