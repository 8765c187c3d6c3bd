// What follows a matrix product, in one pass over its output: the bias, then GELU (the erf
// form, as nn.GELU()), ReLU or the residual. Candle runs these as separate element-wise kernels
// (broadcast_add, gelu_erf, relu, add), each reading and writing the whole activation. The
// arithmetic is f32 for every storage type, rounded once at the end; the CPU twin is
// `epilogue::EpilogueOp`'s cpu_fwd.
//
// Element i takes bias[(i / inner) % period] (SCALE_SHIFT_RELU: scale bias[j], shift
// bias[period + j], an eval-mode BatchNorm then ReLU): a token linear's bias over the last dimension is
// inner = 1, period = columns; a convolution's per-channel bias over NCHW is inner = H*W,
// period = C (or B*C for a bias per image and channel).
//
// Grid-stride over the output, consecutive threads on consecutive elements.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

__device__ __forceinline__ void store(float *p, float v) { *p = v; }
__device__ __forceinline__ void store(__half *p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

struct Geometry {
    uint64_t len;
    uint32_t inner, period;
};

enum Kind { BIAS = 0, BIAS_GELU = 1, BIAS_RESIDUAL = 2, BIAS_RELU = 3, SCALE_SHIFT_RELU = 4 };

template <typename T, int K>
__device__ void epilogue(const T *y, const T *bias, const T *residual, T *out, const Geometry g) {
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.len; i += stride) {
        const uint64_t j = (i / g.inner) % g.period;
        float v;
        if (K == SCALE_SHIFT_RELU) {
            v = fmaxf(to_f32(y[i]) * to_f32(bias[j]) + to_f32(bias[g.period + j]), 0.0f);
        } else {
            v = to_f32(y[i]) + to_f32(bias[j]);
        }
        if (K == BIAS_GELU) {
            v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
        } else if (K == BIAS_RESIDUAL) {
            v += to_f32(residual[i]);
        } else if (K == BIAS_RELU) {
            v = fmaxf(v, 0.0f);
        }
        store(out + i, v);
    }
}

#define EPILOGUE(NAME, T, K)                                                                    \
    extern "C" __global__ void NAME(const T *y, const T *bias, const T *residual, T *out,      \
                                    const Geometry g) {                                        \
        epilogue<T, K>(y, bias, residual, out, g);                                             \
    }

EPILOGUE(bias_f32, float, BIAS)
EPILOGUE(bias_f16, __half, BIAS)
EPILOGUE(bias_bf16, __nv_bfloat16, BIAS)
EPILOGUE(bias_gelu_f32, float, BIAS_GELU)
EPILOGUE(bias_gelu_f16, __half, BIAS_GELU)
EPILOGUE(bias_gelu_bf16, __nv_bfloat16, BIAS_GELU)
EPILOGUE(bias_residual_f32, float, BIAS_RESIDUAL)
EPILOGUE(bias_residual_f16, __half, BIAS_RESIDUAL)
EPILOGUE(bias_residual_bf16, __nv_bfloat16, BIAS_RESIDUAL)
EPILOGUE(bias_relu_f32, float, BIAS_RELU)
EPILOGUE(bias_relu_f16, __half, BIAS_RELU)
EPILOGUE(bias_relu_bf16, __nv_bfloat16, BIAS_RELU)
EPILOGUE(scale_shift_relu_f32, float, SCALE_SHIFT_RELU)
EPILOGUE(scale_shift_relu_f16, __half, SCALE_SHIFT_RELU)
EPILOGUE(scale_shift_relu_bf16, __nv_bfloat16, SCALE_SHIFT_RELU)
