// Swin window attention in one launch, the CUDA twin of `FusedWindowAttention` in
// src/swin/fused.rs: from `qkv`'s output on the unpadded tokens [B, h*w, 3C] straight to the
// attention output in token order [B, h*w, C] (before `proj`). The padding to whole windows,
// the cyclic shift by `shift`, the window partition, the shift mask and the reverse of all of
// them are index arithmetic here: no partitioned copy, no mask tensor, no scatter pass.
//
// Grid: x over windows, y over heads, z over the batch. One thread per query token of the
// window; the block stages the window's keys and values of its head in shared memory (f32)
// and each thread runs an online softmax over the keys of its own shift region, holding its
// query and output row in registers. Accumulation is f32 for every storage type.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) {
    return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

struct Geometry {
    uint32_t height, width;          // the unpadded map
    uint32_t padded_h, padded_w;     // rounded up to whole windows
    uint32_t window, shift;          // window side, cyclic shift (0: plain windows)
    uint32_t windows_x;              // windows per row of the padded map
    uint32_t channels;               // C; the head dimension is the kernel's D
    float scale;                     // head_dim^-0.5, applied to q as the reference does
};

// The reference's mask regions of the rolled frame (`shifted_window_mask`): 0, 1 or 2.
__device__ __forceinline__ uint32_t region(uint32_t pos, uint32_t len, uint32_t window,
                                           uint32_t shift) {
    return pos < len - window ? 0u : (pos < len - shift ? 1u : 2u);
}

// Where token `t` of window `win` comes from: the unpadded token index, or -1 for padding.
// Its shift-region label goes to `label`.
__device__ __forceinline__ int64_t source_of(const Geometry &g, uint32_t win, uint32_t t,
                                             uint32_t *label) {
    const uint32_t py = (win / g.windows_x) * g.window + t / g.window;
    const uint32_t px = (win % g.windows_x) * g.window + t % g.window;
    *label = g.shift == 0 ? 0u
                          : region(py, g.padded_h, g.window, g.shift) * 3u +
                                region(px, g.padded_w, g.window, g.shift);
    // roll(-shift): the rolled map at p holds the padded map at p + shift.
    const uint32_t y = (py + g.shift) % g.padded_h, x = (px + g.shift) % g.padded_w;
    return (y < g.height && x < g.width) ? (int64_t)y * g.width + x : -1;
}

template <typename T, int D>
__device__ void window_attention(const T *qkv, const T *qkv_bias, const T *position_bias,
                                 T *out, const Geometry g) {
    extern __shared__ float shared[];
    const uint32_t n = g.window * g.window;
    float *keys = shared;                             // [n][D]
    float *values = keys + (size_t)n * D;             // [n][D]
    uint32_t *labels = (uint32_t *)(values + (size_t)n * D); // [n]

    const uint32_t win = blockIdx.x, head = blockIdx.y, b = blockIdx.z;
    const uint32_t c3 = 3 * g.channels;
    const uint64_t tokens = (uint64_t)g.height * g.width;
    const T *qkv_b = qkv + (uint64_t)b * tokens * c3;
    const uint32_t k_col = g.channels + head * D, v_col = 2 * g.channels + head * D;

    // Stage k and v: consecutive threads read consecutive channels of one token (coalesced).
    for (uint32_t i = threadIdx.x; i < n * D; i += blockDim.x) {
        const uint32_t t = i / D, d = i % D;
        uint32_t label;
        const int64_t src = source_of(g, win, t, &label);
        // A padded token is zero after the norm, so its q, k and v are qkv's bias.
        const T *row = src < 0 ? qkv_bias : qkv_b + (uint64_t)src * c3;
        keys[i] = to_f32(row[k_col + d]);
        values[i] = to_f32(row[v_col + d]);
        if (d == 0) {
            labels[t] = label;
        }
    }
    __syncthreads();

    const uint32_t t = threadIdx.x;
    if (t >= n) {
        return;
    }
    uint32_t own_label;
    const int64_t src = source_of(g, win, t, &own_label);
    if (src < 0) {
        return; // padded queries are cropped away by the reference
    }
    const T *q_row = qkv_b + (uint64_t)src * c3 + head * D;
    float q[D], acc[D];
#pragma unroll
    for (int d = 0; d < D; ++d) {
        q[d] = to_f32(q_row[d]) * g.scale;
        acc[d] = 0.0f;
    }
    const T *bias_row = position_bias + ((uint64_t)head * n + t) * n;
    float max = -INFINITY, sum = 0.0f;
    for (uint32_t j = 0; j < n; ++j) {
        if (labels[j] != own_label) {
            continue; // -inf in the reference's mask: weight exactly 0
        }
        const float *k = keys + (size_t)j * D;
        float s = 0.0f;
#pragma unroll
        for (int d = 0; d < D; ++d) {
            s = fmaf(q[d], k[d], s);
        }
        s += to_f32(bias_row[j]);
        if (s > max) {
            // Rescale what was accumulated against the old maximum.
            const float correction = expf(max - s);
            sum *= correction;
#pragma unroll
            for (int d = 0; d < D; ++d) {
                acc[d] *= correction;
            }
            max = s;
        }
        const float p = expf(s - max);
        sum += p;
        const float *v = values + (size_t)j * D;
#pragma unroll
        for (int d = 0; d < D; ++d) {
            acc[d] = fmaf(p, v[d], acc[d]);
        }
    }
    // Its own key always shares its region, so sum >= 1.
    const float inv = 1.0f / sum;
    T *out_row = out + ((uint64_t)b * tokens + (uint64_t)src) * g.channels + head * D;
#pragma unroll
    for (int d = 0; d < D; ++d) {
        out_row[d] = from_f32<T>(acc[d] * inv);
    }
}

#define WINDOW_ATTENTION(NAME, T, D)                                                            \
    extern "C" __global__ void NAME(const T *qkv, const T *qkv_bias, const T *position_bias,   \
                                    T *out, const Geometry g) {                                \
        window_attention<T, D>(qkv, qkv_bias, position_bias, out, g);                          \
    }

// Every Swin v1 variant has 32 channels per head.
WINDOW_ATTENTION(window_attention_f32_d32, float, 32)
WINDOW_ATTENTION(window_attention_f16_d32, __half, 32)
WINDOW_ATTENTION(window_attention_bf16_d32, __nv_bfloat16, 32)
