// The training forward's custom ops on the GPU: `cuda_fwd` of the CustomOps in
// src/core/model/ops.rs. All tensors are contiguous f32; the CPU code is the specification,
// and each kernel names the function it mirrors. The row kernels run one block of
// GYM_ROW_THREADS threads per row of the last dimension.
#include "common.cuh"

// r = 1 / sqrt(mean(x²) + eps) of one row, as the CPU computes it: the sum of squares, divided
// by d, plus eps, square root, reciprocal (each rounded; sqrtf and the division are IEEE with
// nvcc's default -prec-sqrt/-prec-div).
__device__ __forceinline__ float gym_rms_inv(const float *x, uint32_t d, float eps,
                                             float *shared) {
    float ss = 0.0f;
    for (uint32_t i = threadIdx.x; i < d; i += blockDim.x) {
        ss += x[i] * x[i];
    }
    const float ms = gym_block_sum(ss, shared) / (float)d;
    return 1.0f / sqrtf(ms + eps);
}

// Mirrors `RmsNorm::cpu_fwd` (ops.rs): y = x * r * w over rows of d.
extern "C" __global__ void gym_rms_norm_f32(const float *x, const float *w, float *out,
                                            uint32_t rows, uint32_t d, float eps) {
    __shared__ float shared[GYM_ROW_THREADS / 32];
    const uint32_t row = blockIdx.x;
    if (row >= rows) {
        return;
    }
    const float *xr = x + (size_t)row * d;
    float *o = out + (size_t)row * d;
    const float r = gym_rms_inv(xr, d, eps, shared);
    for (uint32_t i = threadIdx.x; i < d; i += blockDim.x) {
        o[i] = xr[i] * r * w[i];
    }
}

// Mirrors `RmsNormBwd::cpu_fwd` (ops.rs): dx = r·w·g − x·c with c = r³·mean(x·g·w).
extern "C" __global__ void gym_rms_norm_bwd_f32(const float *x, const float *g, const float *w,
                                                float *out, uint32_t rows, uint32_t d,
                                                float eps) {
    __shared__ float shared[GYM_ROW_THREADS / 32];
    const uint32_t row = blockIdx.x;
    if (row >= rows) {
        return;
    }
    const float *xr = x + (size_t)row * d;
    const float *gr = g + (size_t)row * d;
    float *o = out + (size_t)row * d;
    const float r = gym_rms_inv(xr, d, eps, shared);
    float part = 0.0f;
    for (uint32_t i = threadIdx.x; i < d; i += blockDim.x) {
        part += xr[i] * gr[i] * w[i];
    }
    const float dot = gym_block_sum(part, shared) / (float)d;
    const float c = r * r * r * dot;
    for (uint32_t i = threadIdx.x; i < d; i += blockDim.x) {
        o[i] = r * w[i] * gr[i] - xr[i] * c;
    }
}

// The rotation of one pair (x1, x2) = (x[i], x[i + d/2]) by the angle with cosine c and
// sine s (already multiplied by the direction's sign), as `Rope::apply` (ops.rs) writes it.
__device__ __forceinline__ void gym_rotate(float x1, float x2, float c, float s, float *o1,
                                           float *o2) {
    *o1 = x1 * c - x2 * s;
    *o2 = x2 * c + x1 * s;
}

// Mirrors `Rope::apply` (ops.rs): x and out (b, h, t, d), cos and sin (b, t, d/2);
// sign = -1 rotates by the opposite angle (the backward). One thread per pair.
extern "C" __global__ void gym_rope_f32(const float *x, const float *cos, const float *sin,
                                        float *out, uint32_t b, uint32_t h, uint32_t t,
                                        uint32_t d, float sign) {
    const uint32_t half = d / 2;
    const size_t pairs = (size_t)b * h * t * half;
    for (size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x; p < pairs;
         p += (size_t)blockDim.x * gridDim.x) {
        const uint32_t i = p % half;
        const size_t row = p / half; // (bi * h + hi) * t + ti
        const uint32_t ti = row % t;
        const uint32_t bi = row / t / h;
        const size_t a = ((size_t)bi * t + ti) * half + i;
        const float *xr = x + row * d;
        float *o = out + row * d;
        gym_rotate(xr[i], xr[i + half], cos[a], sign * sin[a], &o[i], &o[i + half]);
    }
}

// Mirrors `NormRope::cpu_fwd` (ops.rs): rope(rms_norm(x, w).transpose(1, 2)) for x (b, t, h, d),
// out (b, h, t, d), cos and sin (b, t, d/2), sign as in gym_rope_f32. One block per input row
// (bi, ti, hi); the normed values are rounded as `RmsNorm::cpu_fwd` rounds them before the
// rotation.
extern "C" __global__ void gym_norm_rope_f32(const float *x, const float *w, const float *cos,
                                             const float *sin, float *out, uint32_t b,
                                             uint32_t t, uint32_t h, uint32_t d, float eps,
                                             float sign) {
    __shared__ float shared[GYM_ROW_THREADS / 32];
    const uint32_t row = blockIdx.x; // (bi * t + ti) * h + hi
    if (row >= b * t * h) {
        return;
    }
    const uint32_t hi = row % h, ti = (row / h) % t, bi = row / h / t;
    const uint32_t half = d / 2;
    const float *xr = x + (size_t)row * d;
    float *o = out + (((size_t)bi * h + hi) * t + ti) * d;
    const float *c = cos + ((size_t)bi * t + ti) * half;
    const float *s = sin + ((size_t)bi * t + ti) * half;
    const float r = gym_rms_inv(xr, d, eps, shared);
    for (uint32_t i = threadIdx.x; i < half; i += blockDim.x) {
        const float n1 = xr[i] * r * w[i];
        const float n2 = xr[i + half] * r * w[i + half];
        gym_rotate(n1, n2, c[i], sign * s[i], &o[i], &o[i + half]);
    }
}

// Mirrors `sigmoid` (ops.rs): 1 / (1 + exp(−x)). expf is within 2 ulp of the CPU's libm exp.
__device__ __forceinline__ float gym_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Mirrors `SwiGlu::cpu_fwd` (ops.rs): out = gate · sigmoid(gate) · up, element-wise over n.
extern "C" __global__ void gym_swiglu_f32(const float *gate, const float *up, float *out,
                                          uint32_t n) {
    for (uint32_t j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += blockDim.x * gridDim.x) {
        const float g = gate[j];
        out[j] = g * gym_sigmoid(g) * up[j];
    }
}

// Mirrors `SwiGluBwd::cpu_fwd` (ops.rs): gu = stack(gate, up) (2n), dy (n); out = stack(dg, du)
// with du = dy·silu(g), dg = dy·u·s·(1 + g·(1 − s)), s = sigmoid(g).
extern "C" __global__ void gym_swiglu_bwd_f32(const float *gu, const float *dy, float *out,
                                              uint32_t n) {
    for (uint32_t j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += blockDim.x * gridDim.x) {
        const float g = gu[j], u = gu[n + j], d = dy[j];
        const float s = gym_sigmoid(g);
        const float silu = g * s;
        out[n + j] = d * silu;
        out[j] = d * u * s * (1.0f + g * (1.0f - s));
    }
}

// Mirrors `Softmax::cpu_fwd` (ops.rs): out = exp(x − max) / Σ exp(x − max) over rows of d,
// written as the CPU does: each exp stored, then multiplied by the reciprocal of the sum.
extern "C" __global__ void gym_softmax_f32(const float *x, float *out, uint32_t rows, uint32_t d) {
    __shared__ float shared[GYM_ROW_THREADS / 32];
    const uint32_t row = blockIdx.x;
    if (row >= rows) {
        return;
    }
    const float *xr = x + (size_t)row * d;
    float *o = out + (size_t)row * d;
    float m = -INFINITY;
    for (uint32_t i = threadIdx.x; i < d; i += blockDim.x) {
        m = fmaxf(m, xr[i]);
    }
    m = gym_block_max(m, shared);
    float part = 0.0f;
    for (uint32_t i = threadIdx.x; i < d; i += blockDim.x) {
        const float e = expf(xr[i] - m);
        o[i] = e;
        part += e;
    }
    const float inv = 1.0f / gym_block_sum(part, shared);
    for (uint32_t i = threadIdx.x; i < d; i += blockDim.x) {
        o[i] *= inv;
    }
}

// Mirrors `SoftmaxBwd::cpu_fwd` (ops.rs): dx = y · (g − Σ g·y) over rows of d.
extern "C" __global__ void gym_softmax_bwd_f32(const float *y, const float *g, float *out,
                                               uint32_t rows, uint32_t d) {
    __shared__ float shared[GYM_ROW_THREADS / 32];
    const uint32_t row = blockIdx.x;
    if (row >= rows) {
        return;
    }
    const float *yr = y + (size_t)row * d;
    const float *gr = g + (size_t)row * d;
    float *o = out + (size_t)row * d;
    float part = 0.0f;
    for (uint32_t i = threadIdx.x; i < d; i += blockDim.x) {
        part += yr[i] * gr[i];
    }
    const float dot = gym_block_sum(part, shared);
    for (uint32_t i = threadIdx.x; i < d; i += blockDim.x) {
        o[i] = yr[i] * (gr[i] - dot);
    }
}
