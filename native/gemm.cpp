#include "napi_util.h"

namespace mt {
void register_gemm(Napi::Env, Napi::Object) {}
}  // namespace mt
