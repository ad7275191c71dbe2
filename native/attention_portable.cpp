// attention leaf kernels, portable build
