// esr-ea's CUDA kernels, compiled at run time by NVRTC (src/ops/cuda/kernels.rs).
// Plain CUDA C with no includes, so that tests/units/cuda_kernels.rs can also
// compile it for the host (tests/support/cuda_host.h) and check the index
// arithmetic without a GPU.
typedef long long i64;
typedef unsigned long long u64;

// The kernels over NCHW planes take `planes` = batch * channels rows of
// `plane` elements: blocks stride over the rows in y and over each row's
// elements in x, so an element's channel (or source) is worked out once per
// row, never by a division per element.

// y = act(y + bias[channel]) in place.
extern "C" __global__ void esr_bias_act(float* y, const float* bias, int has_bias,
                                        int channels, i64 plane, i64 planes, int relu) {
    for (i64 row = blockIdx.y; row < planes; row += gridDim.y) {
        float b = has_bias ? bias[row % channels] : 0.0f;
        float* p = y + row * plane;
        for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < plane;
             i += (i64)gridDim.x * blockDim.x) {
            float v = p[i] + b;
            if (relu) v = v > 0.0f ? v : 0.0f;
            p[i] = v;
        }
    }
}

// ShuffleNet's channel shuffle by s groups, planes moved whole: out plane
// (b, k) = in plane (b, (k % s) * (channels / s) + k / s). Its inverse is the
// shuffle by channels / s groups.
extern "C" __global__ void esr_channel_shuffle(const float* in, float* out, int channels, int s,
                                               i64 plane, i64 planes) {
    for (i64 row = blockIdx.y; row < planes; row += gridDim.y) {
        int k = (int)(row % channels);
        i64 src = row - k + (k % s) * (channels / s) + k / s;
        const float* from = in + src * plane;
        float* to = out + row * plane;
        for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < plane;
             i += (i64)gridDim.x * blockDim.x) {
            to[i] = from[i];
        }
    }
}

// PyTorch's PixelShuffle(r) between the big layout [B, C, H, W] and the small
// one [B, C*r*r, H/r, W/r]: big[b, c, y, x] = small[b, c*r*r + (y%r)*r + x%r,
// y/r, x/r]. `rows` = B*C*H rows of W elements of the big layout; `inverse`
// 0 writes the big layout (shuffle), 1 the small one (unshuffle).
extern "C" __global__ void esr_pixel_shuffle(const float* in, float* out, int r, int h, int w,
                                             i64 rows, int inverse) {
    const i64 small_plane = (i64)(h / r) * (w / r);
    for (i64 row = blockIdx.y; row < rows; row += gridDim.y) {
        i64 bc = row / h;
        int y = (int)(row - bc * h);
        // Small plane bc*r*r + (y%r)*r + j, its row y/r.
        i64 small_row = (bc * r * r + (i64)(y % r) * r) * small_plane + (i64)(y / r) * (w / r);
        i64 big_row = row * w;
        for (int x = blockIdx.x * blockDim.x + threadIdx.x; x < w; x += gridDim.x * blockDim.x) {
            i64 small = small_row + (i64)(x % r) * small_plane + x / r;
            if (inverse) {
                out[small] = in[big_row + x];
            } else {
                out[big_row + x] = in[small];
            }
        }
    }
}

// out[i] = y[i] > 0 ? g[i] : 0, the gradient through a ReLU whose output was y.
extern "C" __global__ void esr_relu_grad(const float* g, const float* y, float* out, i64 n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        out[i] = y[i] > 0.0f ? g[i] : 0.0f;
    }
}

// One block per (channel, image) of dy [batch, channels, plane]:
// partial[c * batch + b] = the plane's sum in double, by a fixed tree.
extern "C" __global__ void esr_plane_sums(const float* dy, i64 plane, double* partial) {
    __shared__ double sh[256];
    const int c = blockIdx.x, b = blockIdx.y, channels = gridDim.x, batch = gridDim.y;
    const float* p = dy + ((i64)b * channels + c) * plane;
    double s = 0.0;
    for (i64 i = threadIdx.x; i < plane; i += blockDim.x) s += (double)p[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[(i64)c * batch + b] = sh[0];
}

// out[c] = partial[c * batch] + ... + partial[c * batch + batch - 1], in that order.
extern "C" __global__ void esr_row_sums(const double* partial, int rows, int batch, float* out) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= rows) return;
    double s = 0.0;
    for (int k = 0; k < batch; ++k) s += partial[(i64)c * batch + k];
    out[c] = (float)s;
}

// One block per tensor: partial[t] = sum of g_t[i]^2 in double, reduced by a
// fixed tree (the same result every run).
extern "C" __global__ void esr_sum_squares(const u64* grads, const i64* lens, double* partial) {
    __shared__ double sh[256];
    const float* g = (const float*)grads[blockIdx.x];
    i64 n = lens[blockIdx.x];
    double s = 0.0;
    for (i64 i = threadIdx.x; i < n; i += blockDim.x) {
        double x = (double)g[i];
        s += x * x;
    }
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

// *out = partial[0] + partial[1] + ... in that order.
extern "C" __global__ void esr_sum_in_order(const double* partial, int count, double* out) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        double s = 0.0;
        for (int i = 0; i < count; ++i) s += partial[i];
        *out = s;
    }
}

// Adam, PyTorch's formulation, for tensor blockIdx.y (pointers w, g, m, v):
// w -= step_size * m / (sqrt(v) / bc2_sqrt + eps), the gradient first scaled
// down so the global norm sqrt(*sum_sq) is at most max_norm when clip is set.
extern "C" __global__ void esr_adam(const u64* ptrs, const i64* lens, const double* sum_sq,
                                    int clip, double max_norm, float step_size, float b1,
                                    float b2, float bc2_sqrt, float eps) {
    int t = blockIdx.y;
    float* w = (float*)ptrs[4 * t];
    const float* g = (const float*)ptrs[4 * t + 1];
    float* m = (float*)ptrs[4 * t + 2];
    float* v = (float*)ptrs[4 * t + 3];
    i64 n = lens[t];
    float scale = 1.0f;
    if (clip) {
        double norm = sqrt(*sum_sq);
        if (norm > max_norm) scale = (float)(max_norm / (norm + 1e-6));
    }
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        float gi = g[i] * scale;
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}
