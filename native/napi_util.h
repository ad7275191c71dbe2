// Argument checking for the Node-API glue. Every pointer handed to a kernel comes from a typed
// array whose length was checked here, so a wrong call from JS is a JS exception, never a crash.
#pragma once
#include <napi.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <new>
#include <stdexcept>
#include <string>

namespace mt {

// An allocation that failed, with what it was for and how much it asked for (thrown by the
// kernels' own buffers; plain std::bad_alloc from the standard library is reported without size).
struct OutOfMemory : std::bad_alloc {
  std::string msg;
  OutOfMemory(const char* what_for, size_t bytes) {
    char mib[48];
    std::snprintf(mib, sizeof mib, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
    msg = std::string("out of memory allocating ") + mib + " for " + what_for;
  }
  const char* what() const noexcept override { return msg.c_str(); }
};

// Every exported function runs through `guarded`: node-addon-api turns only Napi::Error into a JS
// exception, and any other C++ exception (std::bad_alloc, std::system_error, ...) would terminate
// the process. Here they become JS errors naming the function ("gemm: out of memory allocating
// 512.0 MiB for GEMM packing buffers"); an out-of-memory error carries code 'ENOMEM'.
using NativeFn = Napi::Value (*)(const Napi::CallbackInfo&);

template <NativeFn F>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  const char* name = static_cast<const char*>(info.Data());
  const std::string prefix = std::string(name ? name : "native") + ": ";
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const OutOfMemory& e) {
    Napi::Error err = Napi::Error::New(info.Env(), prefix + e.what());
    err.Set("code", Napi::String::New(info.Env(), "ENOMEM"));
    throw err;
  } catch (const std::bad_alloc&) {
    Napi::Error err = Napi::Error::New(info.Env(), prefix + "out of memory");
    err.Set("code", Napi::String::New(info.Env(), "ENOMEM"));
    throw err;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), prefix + e.what());
  } catch (...) {
    throw Napi::Error::New(info.Env(), prefix + "unknown native error");
  }
}

// Registers F under `name` with the guard.
template <NativeFn F>
void export_fn(Napi::Env env, Napi::Object exports, const char* name) {
  exports.Set(name, Napi::Function::New(env, guarded<F>, name, const_cast<char*>(name)));
}

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
  // Range first: converting a double outside int64's range (or NaN / Infinity) is undefined.
  if (!std::isfinite(d) || d < static_cast<double>(lo) || d > 9.0e15 || d != std::floor(d))
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
void register_gemm_bf16(Napi::Env env, Napi::Object exports);

}  // namespace mt
