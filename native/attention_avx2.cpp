// attention leaf kernels, avx2 build
