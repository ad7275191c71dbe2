#include "napi_util.h"

namespace mt {
void register_attention(Napi::Env, Napi::Object) {}
}  // namespace mt
