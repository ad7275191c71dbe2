// ops leaf kernels, avx512 build
