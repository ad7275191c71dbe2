// gemm leaf kernels, portable build
