// ops leaf kernels, portable build
