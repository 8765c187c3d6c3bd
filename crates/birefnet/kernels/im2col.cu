// The columns of a plain convolution for a band of output rows, laid out so that the weight
// as the checkpoint stores it ([Cout, C*kh*kw], row c*kh*kw + i*kw + j) multiplies them
// straight into NCHW: columns[b][c*kh*kw + i*kw + j][p] for the band's pixel p = (oy - row_start)
// * Wo + ox. Candle's own im2col writes [pixels, C*kh*kw] for the whole map, so its product
// comes out NHWC and is copied to NCHW afterwards. Values are copied, not converted: the
// columns are in the input's type. The CPU twin is `conv::columns::Im2col`'s cpu_fwd.
//
// Grid-stride over the band's columns, consecutive threads on consecutive pixels (coalesced
// writes, and coalesced reads for stride 1).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

struct Geometry {
    uint32_t batch, channels, height, width;
    uint32_t kernel, stride, padding, dilation;
    uint32_t out_w, row_start, rows, _pad;
};

template <typename T>
__device__ void im2col(const T *input, T *columns, const Geometry g) {
    const uint64_t taps = (uint64_t)g.kernel * g.kernel;
    const uint64_t pixels = (uint64_t)g.rows * g.out_w;
    const uint64_t per_image = (uint64_t)g.channels * taps * pixels;
    const uint64_t total = (uint64_t)g.batch * per_image;
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const uint64_t p = i % pixels;
        const uint64_t row = (i / pixels) % (g.channels * taps);
        const uint64_t b = i / per_image;
        const uint64_t c = row / taps;
        const uint32_t tap = (uint32_t)(row % taps);
        const int64_t oy = (int64_t)g.row_start + (int64_t)(p / g.out_w);
        const int64_t ox = (int64_t)(p % g.out_w);
        const int64_t y = oy * g.stride - g.padding + (int64_t)(tap / g.kernel) * g.dilation;
        const int64_t x = ox * g.stride - g.padding + (int64_t)(tap % g.kernel) * g.dilation;
        T v{};  // zero bits: 0 in every type
        if (y >= 0 && y < (int64_t)g.height && x >= 0 && x < (int64_t)g.width) {
            v = input[((b * g.channels + c) * g.height + (uint64_t)y) * g.width + (uint64_t)x];
        }
        columns[i] = v;
    }
}

#define IM2COL(NAME, T)                                                                         \
    extern "C" __global__ void NAME(const T *input, T *columns, const Geometry g) {            \
        im2col<T>(input, columns, g);                                                          \
    }

IM2COL(im2col_f32, float)
IM2COL(im2col_f64, double)
IM2COL(im2col_f16, __half)
IM2COL(im2col_bf16, __nv_bfloat16)
