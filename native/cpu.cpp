#include "cpu.h"

#include <cstdlib>
#include <cstring>

#include "napi_util.h"
#include "threadpool.h"

namespace mt {

namespace {

Isa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("fma"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::portable;
}

bool parse_isa(const char* s, Isa* out) {
  if (!strcmp(s, "avx512")) { *out = Isa::avx512; return true; }
  if (!strcmp(s, "avx2")) { *out = Isa::avx2; return true; }
  if (!strcmp(s, "portable")) { *out = Isa::portable; return true; }
  return false;
}

Isa g_best = detect();
Isa g_current = [] {
  Isa want;
  const char* env = std::getenv("MIXTUNE_ISA");
  if (env && *env && parse_isa(env, &want) && static_cast<int>(want) <= static_cast<int>(g_best)) return want;
  return g_best;
}();

}  // namespace

Isa best_isa() { return g_best; }
Isa current_isa() { return g_current; }
bool set_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(g_best)) return false;
  g_current = isa;
  return true;
}
const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "portable";
  }
}

namespace {

Napi::Value BestIsa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), isa_name(best_isa())); }
Napi::Value CurrentIsa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), isa_name(current_isa())); }

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) throw arg_error(info.Env(), "setIsa", "expected 'avx512' | 'avx2' | 'portable'");
  std::string s = info[0].As<Napi::String>().Utf8Value();
  Isa want;
  if (!parse_isa(s.c_str(), &want)) throw arg_error(info.Env(), "setIsa", "unknown ISA '" + s + "'");
  if (!set_isa(want)) throw arg_error(info.Env(), "setIsa", "this CPU cannot run " + s);
  return info.Env().Undefined();
}

Napi::Value NumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), num_threads()); }

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  const int64_t n = int_arg(info, 0, "setNumThreads", "n", 1);
  if (n > kMaxThreads) throw arg_error(info.Env(), "setNumThreads", "n must be <= " + std::to_string(kMaxThreads) + ", got " + std::to_string(n));
  set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

}  // namespace

void register_cpu(Napi::Env env, Napi::Object exports) {
  export_fn<BestIsa>(env, exports, "bestIsa");
  export_fn<CurrentIsa>(env, exports, "isa");
  export_fn<SetIsa>(env, exports, "setIsa");
  export_fn<NumThreads>(env, exports, "numThreads");
  export_fn<SetNumThreads>(env, exports, "setNumThreads");
}

}  // namespace mt
