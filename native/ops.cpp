#include "napi_util.h"

namespace mt {
void register_ops(Napi::Env, Napi::Object) {}
}  // namespace mt
