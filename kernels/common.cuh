// Shared helpers of gym's kernels (included by the .cu files in this folder).
//
// Every kernel mirrors a CPU function in src/core/model/; the build (build.rs) compiles with
// --fmad=false, so a product followed by a sum is rounded twice, as in the Rust code (which never
// contracts to fused multiply-adds). Element-wise arithmetic is written in the CPU code's order;
// only sums over a row are taken in another order (a tree over the threads of a block).
#pragma once
#include <stdint.h>

// Threads per block of the row kernels (one block per row). Must match ROW_THREADS in
// src/core/model/kernels.rs.
#define GYM_ROW_THREADS 256

// The sum of `v` over the block's GYM_ROW_THREADS threads, returned to every thread. `shared`
// holds one float per warp. Ends with a barrier, so it may be called again with the same buffer.
__device__ __forceinline__ float gym_block_sum(float v, float *shared) {
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int off = 16; off > 0; off /= 2) {
        v += __shfl_xor_sync(0xffffffffu, v, off);
    }
    if (lane == 0) {
        shared[warp] = v;
    }
    __syncthreads();
    float total = 0.0f;
    for (unsigned i = 0; i < GYM_ROW_THREADS / 32; ++i) {
        total += shared[i];
    }
    __syncthreads();
    return total;
}

// The maximum of `v` over the block's GYM_ROW_THREADS threads, returned to every thread (NaN
// ignored, as f32::max does). Same use of `shared` as gym_block_sum.
__device__ __forceinline__ float gym_block_max(float v, float *shared) {
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int off = 16; off > 0; off /= 2) {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    }
    if (lane == 0) {
        shared[warp] = v;
    }
    __syncthreads();
    float m = shared[0];
    for (unsigned i = 1; i < GYM_ROW_THREADS / 32; ++i) {
        m = fmaxf(m, shared[i]);
    }
    __syncthreads();
    return m;
}
