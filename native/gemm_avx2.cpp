// gemm leaf kernels, avx2 build
