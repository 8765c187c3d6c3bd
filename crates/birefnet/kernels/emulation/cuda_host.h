// The part of CUDA's device surface that nobg's kernels use, on the host: the kernel sources
// in ../ compile unchanged as C++ against this header (force-included by the CPU tests, see
// src/emulation.rs) and run one emulated thread per CUDA thread, a block at a time, with
// `__syncthreads` as a barrier of the block's threads. It checks the kernels' logic (indexing,
// launch geometry, synchronisation, the arithmetic in f32) on machines without a GPU; it says
// nothing about their speed, and host libm's expf is not the GPU's.
#pragma once

#include <barrier>
#include <cstdint>
#include <cstring>
#include <math.h>
#include <stdint.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
// `extern __shared__ float shared[];` in a kernel becomes a declaration of the block's
// dynamic shared memory below (the emulation runs one block at a time).
#define __shared__

struct uint3 {
    unsigned x, y, z;
};
using dim3 = uint3;

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline uint3 blockDim;
inline uint3 gridDim;

// The largest dynamic shared memory a block gets without opting in; launches asking for more
// fail on a GPU, and the emulator refuses them too.
constexpr size_t kMaxDynamicShared = 48 * 1024;
alignas(16) inline float shared[kMaxDynamicShared / sizeof(float)];

// The block's barrier, defined by the launcher (emulate.cpp).
void sync_block();

inline void __syncthreads() { sync_block(); }

template <typename T> inline T min(T a, T b) { return b < a ? b : a; }
template <typename T> inline T max(T a, T b) { return a < b ? b : a; }

// Storage types: the bits only, as on the device.
struct __half {
    uint16_t bits;
};
struct __nv_bfloat16 {
    uint16_t bits;
};

inline float __half2float(__half h) {
    _Float16 v;
    std::memcpy(&v, &h.bits, 2);
    return (float)v;
}

inline __half __float2half_rn(float f) {
    const _Float16 v = (_Float16)f; // round to nearest even
    __half h;
    std::memcpy(&h.bits, &v, 2);
    return h;
}

inline float __bfloat162float(__nv_bfloat16 b) {
    const uint32_t u = (uint32_t)b.bits << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    __nv_bfloat16 b;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        b.bits = 0x7fff; // the canonical NaN CUDA returns
    } else {
        b.bits = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
    return b;
}
