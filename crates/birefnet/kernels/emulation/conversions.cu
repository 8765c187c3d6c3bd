// The half conversions every kernel uses, as a kernel of their own: the emulation's tests run
// it to check cuda_host.h's conversions bit for bit against the `half` crate. Valid CUDA too.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

extern "C" __global__ void convert_f32(const float *floats, const uint16_t *bits, __half *to_h,
                                       __nv_bfloat16 *to_b, float *from_h, float *from_b,
                                       const uint32_t n) {
    const uint32_t stride = gridDim.x * blockDim.x;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        to_h[i] = __float2half_rn(floats[i]);
        to_b[i] = __float2bfloat16_rn(floats[i]);
    }
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < 65536; i += stride) {
        __half h;
        __nv_bfloat16 b;
        memcpy(&h, &bits[i], 2);
        memcpy(&b, &bits[i], 2);
        from_h[i] = __half2float(h);
        from_b[i] = __bfloat162float(b);
    }
}
