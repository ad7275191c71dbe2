// ops leaf kernels, avx2 build
