{
  "targets": [
    {
      "target_name": "mixtune",
      "sources": [
        "native/addon.cpp",
        "native/cpu.cpp",
        "native/threadpool.cpp",
        "native/gemm.cpp",
        "native/gemm_avx512.cpp",
        "native/gemm_avx2.cpp",
        "native/gemm_portable.cpp",
        "native/peak.cpp",
        "native/ops.cpp",
        "native/ops_avx512.cpp",
        "native/ops_avx2.cpp",
        "native/ops_portable.cpp",
        "native/attention.cpp",
        "native/attention_avx512.cpp",
        "native/attention_avx2.cpp",
        "native/attention_portable.cpp",
        "native/attention_bf16_avx512.cpp",
        "native/attention_bf16_portable.cpp",
        "native/gemm_bf16.cpp",
        "native/gemm_bf16_avx512.cpp",
        "native/gemm_bf16_amx.cpp",
        "native/gemm_bf16_portable.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags": ["-O3", "-fno-math-errno", "-fno-trapping-math", "-pthread"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fno-trapping-math", "-fexceptions", "-pthread"],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CFLAGS": ["-O3"]
      }
    }
  ]
}
