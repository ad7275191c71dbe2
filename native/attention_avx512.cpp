// attention leaf kernels, avx512 build
