// Runs one launch of a kernel from KERNEL_SOURCE under the host emulation of cuda_host.h.
// Built by src/emulation.rs with -DKERNEL_SOURCE="path" -DKERNEL_TABLE="ENTRY(name),...".
//
// stdin: the kernel's name (u32 length, bytes), grid and block (3 x u32 each), dynamic shared
// memory bytes (u32), the parameter count (u32), then per parameter its kind (u8: 0 input
// buffer, 1 output buffer, 2 value), its byte length (u64) and, for inputs and values, its
// bytes. stdout: the output buffers' bytes, in parameter order. Failures: a line on stderr
// and exit status 2.
//
// Every buffer is allocated at its exact size, so that the address sanitizer the tests build
// with reports any read or write outside it; outputs start as all-ones bytes (NaN in every
// float type) and shared memory is refilled with them per block, so that an element nobody
// wrote, or a shared value read before it was staged, shows up in the results.

#include "cuda_host.h"

#include KERNEL_SOURCE

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

[[noreturn]] void fail(const std::string &why) {
    std::fprintf(stderr, "emulate: %s\n", why.c_str());
    std::exit(2);
}

template <typename P> P arg_cast(void *p) {
    if constexpr (std::is_pointer_v<P>) {
        return static_cast<P>(p);
    } else {
        return *static_cast<const P *>(p);
    }
}

template <typename... P, size_t... I>
void call(void (*f)(P...), void **args, std::index_sequence<I...>) {
    f(arg_cast<P>(args[I])...);
}

template <typename... P> void call(void (*f)(P...), void **args) {
    call(f, args, std::index_sequence_for<P...>{});
}

// Byte size of each by-value parameter, 0 for pointers.
template <typename... P> std::vector<size_t> value_sizes(void (*)(P...)) {
    return {(std::is_pointer_v<P> ? size_t{0} : sizeof(P))...};
}

struct Entry {
    const char *name;
    void (*invoke)(void **);
    std::vector<size_t> params;
};

#define ENTRY(kernel)                                                                          \
    Entry { #kernel, [](void **args) { call(kernel, args); }, value_sizes(kernel) }

template <typename T> T read_value(FILE *in) {
    T v;
    if (std::fread(&v, sizeof v, 1, in) != 1) {
        fail("truncated launch description");
    }
    return v;
}

void read_bytes(FILE *in, void *to, size_t n) {
    if (n > 0 && std::fread(to, 1, n, in) != n) {
        fail("truncated launch description");
    }
}

uint3 read_dims(FILE *in) {
    uint3 d;
    d.x = read_value<uint32_t>(in);
    d.y = read_value<uint32_t>(in);
    d.z = read_value<uint32_t>(in);
    return d;
}

struct Param {
    uint8_t kind;
    size_t len;
    void *data;
};

// CUDA's launch limits for compute capability 7.0 and up.
void check_limits(uint3 grid, uint3 block, size_t shared_bytes) {
    const uint64_t threads = (uint64_t)block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.z > 64) {
        fail("block of " + std::to_string(threads) + " threads is not launchable");
    }
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 ||
        grid.z > 65535) {
        fail("grid " + std::to_string(grid.x) + "x" + std::to_string(grid.y) + "x" +
             std::to_string(grid.z) + " is not launchable");
    }
    if (shared_bytes > kMaxDynamicShared) {
        fail(std::to_string(shared_bytes) + " bytes of dynamic shared memory exceed the " +
             std::to_string(kMaxDynamicShared) + " a block gets without opting in");
    }
}

// `__syncthreads` for one block at a time: a barrier whose count a returning thread lowers,
// since an exited thread no longer holds back the others (as on the device).
class BlockBarrier {
  public:
    void reset(unsigned threads) {
        std::lock_guard<std::mutex> lock(mutex_);
        expected_ = threads;
        arrived_ = 0;
    }

    void arrive_and_wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        const uint64_t phase = phase_;
        if (++arrived_ == expected_) {
            release();
        } else {
            ready_.wait(lock, [&] { return phase_ != phase; });
        }
    }

    void drop() {
        std::lock_guard<std::mutex> lock(mutex_);
        --expected_;
        if (expected_ > 0 && arrived_ == expected_) {
            release();
        }
    }

  private:
    void release() {
        arrived_ = 0;
        ++phase_;
        ready_.notify_all();
    }

    std::mutex mutex_;
    std::condition_variable ready_;
    unsigned expected_ = 0, arrived_ = 0;
    uint64_t phase_ = 0;
};

BlockBarrier barrier;

// One OS thread per CUDA thread of a block, kept for the whole grid: each block starts when
// every thread (and this one) reaches `start`, and ends when they all reach `end`.
void run_grid(const Entry &kernel, void **args) {
    const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
    std::barrier<> start(threads + 1), end(threads + 1);
    uint3 current{0, 0, 0};
    bool done = false;
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (unsigned t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            threadIdx = {t % blockDim.x, (t / blockDim.x) % blockDim.y,
                         t / (blockDim.x * blockDim.y)};
            for (;;) {
                start.arrive_and_wait();
                if (done) {
                    return;
                }
                blockIdx = current;
                kernel.invoke(args);
                barrier.drop();
                end.arrive_and_wait();
            }
        });
    }
    for (unsigned z = 0; z < gridDim.z; ++z) {
        for (unsigned y = 0; y < gridDim.y; ++y) {
            for (unsigned x = 0; x < gridDim.x; ++x) {
                std::memset(shared, 0xff, sizeof shared);
                barrier.reset(threads);
                current = {x, y, z};
                start.arrive_and_wait();
                end.arrive_and_wait();
            }
        }
    }
    done = true;
    start.arrive_and_wait();
    for (auto &t : pool) {
        t.join();
    }
}

} // namespace

void sync_block() { barrier.arrive_and_wait(); }

int main() {
    static const Entry kernels[] = {KERNEL_TABLE};
    FILE *in = stdin;
    const auto name_len = read_value<uint32_t>(in);
    std::string name(name_len, '\0');
    read_bytes(in, name.data(), name_len);
    const Entry *kernel = nullptr;
    for (const auto &k : kernels) {
        if (name == k.name) {
            kernel = &k;
        }
    }
    if (kernel == nullptr) {
        fail("no kernel named " + name + " in " KERNEL_SOURCE);
    }
    gridDim = read_dims(in);
    blockDim = read_dims(in);
    const auto shared_bytes = read_value<uint32_t>(in);
    check_limits(gridDim, blockDim, shared_bytes);

    const auto count = read_value<uint32_t>(in);
    if (count != kernel->params.size()) {
        fail(name + " takes " + std::to_string(kernel->params.size()) + " parameters, got " +
             std::to_string(count));
    }
    std::vector<Param> params(count);
    std::vector<void *> args(count);
    for (uint32_t i = 0; i < count; ++i) {
        Param &p = params[i];
        p.kind = read_value<uint8_t>(in);
        p.len = read_value<uint64_t>(in);
        const size_t value = kernel->params[i];
        if ((p.kind == 2) != (value != 0) || p.kind > 2) {
            fail("parameter " + std::to_string(i) + " of " + name + " is " +
                 (value ? "a value" : "a pointer") + ", got kind " + std::to_string(p.kind));
        }
        if (p.kind == 2 && p.len != value) {
            fail("parameter " + std::to_string(i) + " of " + name + " is a " +
                 std::to_string(value) + "-byte struct, got " + std::to_string(p.len) + " bytes");
        }
        // malloc(0) may return null; a zero-length buffer still gets a distinct address.
        p.data = std::malloc(p.len > 0 ? p.len : 1);
        if (p.data == nullptr) {
            fail("out of memory");
        }
        if (p.kind == 1) {
            std::memset(p.data, 0xff, p.len);
        } else {
            read_bytes(in, p.data, p.len);
        }
        args[i] = p.data;
    }

    run_grid(*kernel, args.data());

    for (const Param &p : params) {
        if (p.kind == 1 && p.len > 0 && std::fwrite(p.data, 1, p.len, stdout) != p.len) {
            fail("writing the outputs");
        }
    }
    std::fflush(stdout);
    for (Param &p : params) {
        std::free(p.data);
    }
    return 0;
}
