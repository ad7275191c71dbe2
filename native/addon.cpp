#include "napi_util.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  mt::register_cpu(env, exports);
  mt::register_gemm(env, exports);
  mt::register_peak(env, exports);
  mt::register_ops(env, exports);
  mt::register_attention(env, exports);
  mt::register_gemm_bf16(env, exports);
  return exports;
}

NODE_API_MODULE(mixtune, Init)
