// Runs plain CUDA C kernels on the host, for checking their index arithmetic
// without a GPU (tests/units/ops_cuda_kernels.rs).
//
// Blocks run one after another. Without __syncthreads() a block's threads
// run in turn (`launch`); with it (`launch_synced`) they run as host threads
// that meet at a barrier, so a kernel's `__shared__` arrays (made `static`
// here) are the running block's shared memory. Only
// what esr-ea's kernels use is defined: no warps, no atomics.
#pragma once
#include <barrier>
#include <cmath>
#include <functional>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

static thread_local dim3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;
static std::barrier<>* block_barrier = nullptr;

#define __global__
#define __shared__ static

inline void __syncthreads() { block_barrier->arrive_and_wait(); }

// kernel<<<grid, block>>>() on the host, for a kernel without
// __syncthreads(): every thread of every block in turn on this thread.
inline void launch(dim3 grid, dim3 block, const std::function<void()>& kernel) {
    gridDim = grid;
    blockDim = block;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx)
                for (unsigned t = 0; t < block.x * block.y * block.z; ++t) {
                    blockIdx = {bx, by, bz};
                    threadIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                    kernel();
                }
}

// The same for a kernel that meets at __syncthreads(): a block's threads
// run side by side.
inline void launch_synced(dim3 grid, dim3 block, const std::function<void()>& kernel) {
    gridDim = grid;
    blockDim = block;
    const unsigned threads = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                std::barrier<> bar(threads);
                block_barrier = &bar;
                std::vector<std::thread> pool;
                pool.reserve(threads);
                for (unsigned t = 0; t < threads; ++t) {
                    pool.emplace_back([&, bx, by, bz, t] {
                        blockIdx = {bx, by, bz};
                        threadIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                        kernel();
                    });
                }
                for (auto& th : pool) th.join();
            }
}
