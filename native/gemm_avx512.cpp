// gemm leaf kernels, avx512 build
