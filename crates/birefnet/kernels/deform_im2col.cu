// Modulated deformable im2col (torchvision's deform_conv2d sampling, one offset group), the
// CUDA twin of `DeformIm2col` in src/deform_conv/cpu.rs: the same tap-major column rows
// (`tap * C + channel`), the same sample rule and the same order of the four products, so the
// two back-ends build the same columns up to FMA contraction. Each sample is summed in the
// compute type A (f32, or f64 for f64) and stored in the column type C: A itself, or for f16
// and bf16 inputs their own type, which halves the columns and lets cuBLAS multiply them on
// tensor cores (torchvision's f16 deform_conv2d holds its columns in f16 too).
//
// Grid: x over (tap, output pixel of the band), y over chunks of channels, z over the batch.
// Each thread locates its sample once and reuses it for its chunk of channels; consecutive
// threads write consecutive pixels of one column row, so the stores coalesce.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

template <typename A> __device__ __forceinline__ A load(const float *p) { return (A)*p; }
template <typename A> __device__ __forceinline__ A load(const double *p) { return (A)*p; }
template <typename A> __device__ __forceinline__ A load(const __half *p) {
    return (A)__half2float(*p);
}
template <typename A> __device__ __forceinline__ A load(const __nv_bfloat16 *p) {
    return (A)__bfloat162float(*p);
}

__device__ __forceinline__ void store(float *p, float v) { *p = v; }
__device__ __forceinline__ void store(double *p, double v) { *p = v; }
__device__ __forceinline__ void store(__half *p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

struct Geometry {
    uint32_t channels, height, width;
    uint32_t kernel_w, taps;
    uint32_t stride, padding, dilation;
    uint32_t out_h, out_w;
    uint32_t row_start, rows;
    uint32_t channels_per_thread;
};

template <typename T, typename A, typename C>
__device__ void deform_im2col(const T *input, const T *offset, const T *mask, C *columns,
                              const Geometry g) {
    const uint32_t pixels = g.rows * g.out_w;
    const uint64_t work = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (work >= (uint64_t)g.taps * pixels) {
        return;
    }
    const uint32_t tap = (uint32_t)(work / pixels);
    const uint32_t q = (uint32_t)(work % pixels);
    const uint32_t b = blockIdx.z;
    const uint64_t plane_in = (uint64_t)g.height * g.width;
    const uint64_t plane_out = (uint64_t)g.out_h * g.out_w;
    const uint64_t at = (uint64_t)g.row_start * g.out_w + q;
    const uint32_t oy = (uint32_t)(at / g.out_w), ox = (uint32_t)(at % g.out_w);
    const uint32_t ki = tap / g.kernel_w, kj = tap % g.kernel_w;

    const T *offset_b = offset + (uint64_t)b * 2 * g.taps * plane_out;
    const T *mask_b = mask + (uint64_t)b * g.taps * plane_out;
    // The integer part first, then the offset in the compute type: torchvision's order.
    const int64_t base_y = (int64_t)(oy * g.stride + ki * g.dilation) - (int64_t)g.padding;
    const int64_t base_x = (int64_t)(ox * g.stride + kj * g.dilation) - (int64_t)g.padding;
    const A y = (A)base_y + load<A>(offset_b + 2 * (uint64_t)tap * plane_out + at);
    const A x = (A)base_x + load<A>(offset_b + (2 * (uint64_t)tap + 1) * plane_out + at);

    uint32_t index[4] = {0, 0, 0, 0};
    A weight[4] = {(A)0, (A)0, (A)0, (A)0};
    // torchvision's rule: the whole sample is zero unless -1 < p < size.
    if (y > (A)-1 && y < (A)g.height && x > (A)-1 && x < (A)g.width) {
        const A m = load<A>(mask_b + (uint64_t)tap * plane_out + at);
        const A y0f = floor(y), x0f = floor(x);
        const A ly = y - y0f, lx = x - x0f;
        const A hy = (A)1 - ly, hx = (A)1 - lx;
        const int64_t y0 = (int64_t)y0f, x0 = (int64_t)x0f;
        const int64_t cy[4] = {y0, y0, y0 + 1, y0 + 1};
        const int64_t cx[4] = {x0, x0 + 1, x0, x0 + 1};
        const A w[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            if (cy[k] >= 0 && cx[k] >= 0 && cy[k] < (int64_t)g.height &&
                cx[k] < (int64_t)g.width) {
                index[k] = (uint32_t)(cy[k] * g.width + cx[k]);
                weight[k] = m * w[k];
            }
        }
    }

    const uint32_t c0 = blockIdx.y * g.channels_per_thread;
    const uint32_t c1 = min(c0 + g.channels_per_thread, g.channels);
    const T *input_b = input + (uint64_t)b * g.channels * plane_in;
    C *out = columns + (uint64_t)b * g.taps * g.channels * pixels +
             ((uint64_t)tap * g.channels) * pixels + q;
    for (uint32_t c = c0; c < c1; ++c) {
        const T *plane = input_b + (uint64_t)c * plane_in;
        const A v = weight[0] * load<A>(plane + index[0]) + weight[1] * load<A>(plane + index[1]) +
                    weight[2] * load<A>(plane + index[2]) + weight[3] * load<A>(plane + index[3]);
        store(out + (uint64_t)c * pixels, v);
    }
}

#define DEFORM_IM2COL(NAME, T, A, C)                                                            \
    extern "C" __global__ void NAME(const T *input, const T *offset, const T *mask,            \
                                    C *columns, const Geometry g) {                            \
        deform_im2col<T, A, C>(input, offset, mask, columns, g);                               \
    }

DEFORM_IM2COL(deform_im2col_f32, float, float, float)
DEFORM_IM2COL(deform_im2col_f64, double, double, double)
DEFORM_IM2COL(deform_im2col_f16, __half, float, float)
DEFORM_IM2COL(deform_im2col_bf16, __nv_bfloat16, float, float)
DEFORM_IM2COL(deform_im2col_f16_f16, __half, float, __half)
DEFORM_IM2COL(deform_im2col_bf16_bf16, __nv_bfloat16, float, __nv_bfloat16)
