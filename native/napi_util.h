// Argument checking for the Node-API glue. Every pointer handed to a kernel comes from a typed
// array whose length was checked here, so a wrong call from JS is a JS exception, never a crash.
#pragma once
#include <napi.h>
#include <cstdint>
#include <string>

namespace mt {

inline Napi::Error arg_error(const Napi::Env& env, const char* fn, const std::string& what) {
  return Napi::TypeError::New(env, std::string(fn) + ": " + what);
}

template <typename T, napi_typedarray_type kType>
inline T* typed_arg(const Napi::CallbackInfo& info, size_t i, int64_t min_len, const char* fn, const char* name) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsTypedArray()) throw arg_error(env, fn, std::string(name) + " must be a typed array");
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != kType) throw arg_error(env, fn, std::string(name) + " has the wrong element type");
  if (min_len < 0 || static_cast<int64_t>(ta.ElementLength()) < min_len)
    throw arg_error(env, fn, std::string(name) + " is too short: need " + std::to_string(min_len) + ", got " + std::to_string(ta.ElementLength()));
  auto* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data());
  return reinterpret_cast<T*>(base + ta.ByteOffset());
}

inline float* f32_arg(const Napi::CallbackInfo& info, size_t i, int64_t min_len, const char* fn, const char* name) {
  return typed_arg<float, napi_float32_array>(info, i, min_len, fn, name);
}
inline int32_t* i32_arg(const Napi::CallbackInfo& info, size_t i, int64_t min_len, const char* fn, const char* name) {
  return typed_arg<int32_t, napi_int32_array>(info, i, min_len, fn, name);
}
// Optional float array: null/undefined gives nullptr.
inline float* f32_opt(const Napi::CallbackInfo& info, size_t i, int64_t min_len, const char* fn, const char* name) {
  if (info.Length() <= i || info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  return f32_arg(info, i, min_len, fn, name);
}

inline int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t lo = 0) {
  if (info.Length() <= i || !info[i].IsNumber()) throw arg_error(info.Env(), fn, std::string(name) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(lo)) || d != static_cast<double>(static_cast<int64_t>(d)) || d > 9.0e15)
    throw arg_error(info.Env(), fn, std::string(name) + " must be an integer >= " + std::to_string(lo));
  return static_cast<int64_t>(d);
}
inline double num_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw arg_error(info.Env(), fn, std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}
inline bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (info.Length() <= i || !info[i].IsBoolean()) throw arg_error(info.Env(), fn, std::string(name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

// Each kernel family registers its exports here (defined in its own .cpp).
void register_cpu(Napi::Env env, Napi::Object exports);
void register_gemm(Napi::Env env, Napi::Object exports);
void register_peak(Napi::Env env, Napi::Object exports);
void register_ops(Napi::Env env, Napi::Object exports);
void register_attention(Napi::Env env, Napi::Object exports);

}  // namespace mt
