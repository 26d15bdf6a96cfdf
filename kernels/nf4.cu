// NF4 dequantization of the packed base kept on the GPU (src/core/model/nf4_resident.rs).
//
// Layout (src/core/model/nf4.rs): the weight is flattened row-major and cut into blocks of 64;
// `packed` holds two 4-bit codes a byte, the even element in the high nibble; each block has
// one absmax. With double quantization the absmax of block i is
//   code8[q[i]] * absmax2[i / 256] + offset
// (a product and a sum, each rounded: no fused multiply-add), else it is stored as an f32.
// The weight is NF4[code] * absmax: the same two or three roundings as the CPU, so the f32
// output has the CPU's bits; the bf16 output is that f32 value rounded to nearest even.
#include "common.cuh"
#include <cuda_bf16.h>

#define GYM_NF4_BLOCK 64
#define GYM_NF4_BLOCK2 256

// The look-up tables, passed by value from the Rust constants (`NF4`, `code8()`), so that
// the kernels hold no copy of them. Must match `Nf4Tables` in src/core/model/kernels.rs.
struct GymNf4Tables {
    float nf4[16];
    float code8[256];
};

__device__ __forceinline__ float gym_nf4_code(const uint8_t *packed, uint32_t j,
                                              const GymNf4Tables &t) {
    const uint8_t b = packed[j / 2];
    const uint8_t c = (j % 2 == 0) ? (b >> 4) : (b & 15);
    return t.nf4[c];
}

__device__ __forceinline__ void gym_store(float *out, uint32_t j, float v) { out[j] = v; }
__device__ __forceinline__ void gym_store(__nv_bfloat16 *out, uint32_t j, float v) {
    out[j] = __float2bfloat16_rn(v);
}

// Mirrors `Nf4Tensor::dequantize_vec` with `Absmax::Plain` (src/core/model/nf4.rs):
// out[j] = NF4[c_j] * absmax[j / 64].
template <typename T>
__device__ void gym_nf4_dequant_plain(const uint8_t *packed, const float *absmax, uint32_t n,
                                      const GymNf4Tables &t, T *out) {
    for (uint32_t j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += blockDim.x * gridDim.x) {
        gym_store(out, j, __fmul_rn(gym_nf4_code(packed, j, t), absmax[j / GYM_NF4_BLOCK]));
    }
}

// Mirrors `Nf4Tensor::dequantize_vec` with `Absmax::Double` and `Absmax::values`
// (src/core/model/nf4.rs): a = code8[q[j / 64]] * absmax2[j / 64 / 256] + offset,
// out[j] = NF4[c_j] * a.
template <typename T>
__device__ void gym_nf4_dequant_double(const uint8_t *packed, const uint8_t *q,
                                       const float *absmax2, float offset, uint32_t n,
                                       const GymNf4Tables &t, T *out) {
    for (uint32_t j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += blockDim.x * gridDim.x) {
        const uint32_t blk = j / GYM_NF4_BLOCK;
        const float a = __fadd_rn(__fmul_rn(t.code8[q[blk]], absmax2[blk / GYM_NF4_BLOCK2]), offset);
        gym_store(out, j, __fmul_rn(gym_nf4_code(packed, j, t), a));
    }
}

extern "C" __global__ void gym_nf4_dequant_plain_f32(const uint8_t *packed, const float *absmax,
                                                     uint32_t n, GymNf4Tables t, float *out) {
    gym_nf4_dequant_plain(packed, absmax, n, t, out);
}

extern "C" __global__ void gym_nf4_dequant_plain_bf16(const uint8_t *packed, const float *absmax,
                                                      uint32_t n, GymNf4Tables t,
                                                      __nv_bfloat16 *out) {
    gym_nf4_dequant_plain(packed, absmax, n, t, out);
}

extern "C" __global__ void gym_nf4_dequant_double_f32(const uint8_t *packed, const uint8_t *q,
                                                      const float *absmax2, float offset,
                                                      uint32_t n, GymNf4Tables t, float *out) {
    gym_nf4_dequant_double(packed, q, absmax2, offset, n, t, out);
}

extern "C" __global__ void gym_nf4_dequant_double_bf16(const uint8_t *packed, const uint8_t *q,
                                                       const float *absmax2, float offset,
                                                       uint32_t n, GymNf4Tables t,
                                                       __nv_bfloat16 *out) {
    gym_nf4_dequant_double(packed, q, absmax2, offset, n, t, out);
}
