// esr-ea's CUDA kernels (src/ops/cuda/kernels.cu) run on the host through
// cuda_host.h and compared with plain loops written from the definitions.
// Each launch uses grids both smaller than the work (the kernels' strided
// loops) and larger (their bounds checks). Prints one line per check; exits
// 1 at the first mismatch.
#include "cuda_host.h"

#include <cstdio>
#include <cstdlib>
#include <cstdint>

#include KERNELS_CU

static int failures = 0;

static void expect(bool ok, const char* what, long long at) {
    if (!ok && failures++ < 10) std::printf("MISMATCH %s at %lld\n", what, at);
}

static std::vector<float> ramp(size_t n, float seed) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = std::sin(0.37f * (float)i + seed) * 3.0f;
    return v;
}

static const dim3 grids[] = {{1, 1, 1}, {2, 3, 1}, {5, 70, 1}};
static const dim3 blocks[] = {{1, 1, 1}, {8, 1, 1}, {32, 1, 1}};

static void bias_act() {
    const int b = 2, c = 3, plane = 37;
    for (dim3 g : grids)
        for (dim3 t : blocks)
            for (int has_bias = 0; has_bias < 2; ++has_bias)
                for (int relu = 0; relu < 2; ++relu) {
                    auto y = ramp(b * c * plane, 0.1f), bias = ramp(c, 2.0f), want = y;
                    for (int i = 0; i < b; ++i)
                        for (int ch = 0; ch < c; ++ch)
                            for (int p = 0; p < plane; ++p) {
                                float& v = want[(i * c + ch) * plane + p];
                                v += has_bias ? bias[ch] : 0.0f;
                                if (relu && v < 0.0f) v = 0.0f;
                            }
                    launch(g, t, [&] { esr_bias_act(y.data(), bias.data(), has_bias, c, plane, b * c, relu); });
                    for (size_t i = 0; i < y.size(); ++i) expect(y[i] == want[i], "esr_bias_act", (long long)i);
                }
    std::printf("esr_bias_act: checked\n");
}

static void channel_shuffle() {
    const int b = 2, plane = 5;
    for (int c : {6, 12})
        for (int s = 1; s <= c; ++s) {
            if (c % s) continue;
            auto in = ramp(b * c * plane, 0.5f);
            // Definition: view [b, s, c/s, plane], swap the middle axes.
            std::vector<float> want(in.size());
            for (int i = 0; i < b; ++i)
                for (int a = 0; a < s; ++a)
                    for (int q = 0; q < c / s; ++q)
                        for (int p = 0; p < plane; ++p)
                            want[((i * (c / s) + q) * s + a) * plane + p] = in[((i * s + a) * (c / s) + q) * plane + p];
            for (dim3 g : grids)
                for (dim3 t : blocks) {
                    std::vector<float> out(in.size(), -99.0f), back(in.size(), -99.0f);
                    launch(g, t, [&] { esr_channel_shuffle(in.data(), out.data(), c, s, plane, b * c); });
                    for (size_t i = 0; i < out.size(); ++i) expect(out[i] == want[i], "esr_channel_shuffle", (long long)i);
                    // The shuffle by c/s groups undoes it.
                    launch(g, t, [&] { esr_channel_shuffle(out.data(), back.data(), c, c / s, plane, b * c); });
                    for (size_t i = 0; i < in.size(); ++i) expect(back[i] == in[i], "esr_channel_shuffle inverse", (long long)i);
                }
        }
    std::printf("esr_channel_shuffle: checked\n");
}

static void pixel_shuffle() {
    const int b = 2, c = 2;
    for (int r : {2, 3})
        for (int sh : {1, 3})
            for (int sw : {2, 5}) {
                const int h = sh * r, w = sw * r, n = b * c * h * w;
                auto small = ramp(n, 1.5f);
                // Definition: big[b, c, y, x] = small[b, c*r*r + (y%r)*r + x%r, y/r, x/r].
                std::vector<float> want(n);
                for (int i = 0; i < b; ++i)
                    for (int ch = 0; ch < c; ++ch)
                        for (int y = 0; y < h; ++y)
                            for (int x = 0; x < w; ++x)
                                want[((i * c + ch) * h + y) * w + x] =
                                    small[((i * c * r * r + ch * r * r + (y % r) * r + x % r) * sh + y / r) * sw + x / r];
                for (dim3 g : grids)
                    for (dim3 t : blocks) {
                        std::vector<float> big(n, -99.0f), back(n, -99.0f);
                        launch(g, t, [&] { esr_pixel_shuffle(small.data(), big.data(), r, h, w, (i64)b * c * h, 0); });
                        for (int i = 0; i < n; ++i) expect(big[i] == want[i], "esr_pixel_shuffle", i);
                        launch(g, t, [&] { esr_pixel_shuffle(big.data(), back.data(), r, h, w, (i64)b * c * h, 1); });
                        for (int i = 0; i < n; ++i) expect(back[i] == small[i], "esr_pixel_shuffle inverse", i);
                    }
            }
    std::printf("esr_pixel_shuffle: checked\n");
}

static void relu_grad() {
    const int n = 101;
    auto g = ramp(n, 0.2f), y = ramp(n, 0.9f);
    for (dim3 gr : grids)
        for (dim3 t : blocks) {
            std::vector<float> out(n, -99.0f);
            launch(gr, t, [&] { esr_relu_grad(g.data(), y.data(), out.data(), n); });
            for (int i = 0; i < n; ++i) expect(out[i] == (y[i] > 0.0f ? g[i] : 0.0f), "esr_relu_grad", i);
        }
    std::printf("esr_relu_grad: checked\n");
}

static void channel_sums() {
    const int b = 3, c = 4, plane = 300;
    auto dy = ramp(b * c * plane, 0.7f);
    for (unsigned threads : {32u, 256u}) {
        std::vector<double> partial(c * b, -99.0);
        std::vector<float> out(c, -99.0f);
        launch_synced({(unsigned)c, (unsigned)b, 1}, {threads, 1, 1}, [&] { esr_plane_sums(dy.data(), plane, partial.data()); });
        for (dim3 g : grids)
            for (dim3 t : blocks)
                launch(g, t, [&] { esr_row_sums(partial.data(), c, b, out.data()); });
        for (int ch = 0; ch < c; ++ch) {
            double want = 0.0;
            for (int i = 0; i < b; ++i)
                for (int p = 0; p < plane; ++p) want += dy[(i * c + ch) * plane + p];
            expect(std::fabs(out[ch] - want) <= 1e-5 * (1.0 + std::fabs(want)), "esr_plane_sums/esr_row_sums", ch);
        }
    }
    std::printf("esr_plane_sums, esr_row_sums: checked\n");
}

int main() {
    bias_act();
    channel_shuffle();
    pixel_shuffle();
    relu_grad();
    channel_sums();
    if (failures) {
        std::printf("%d mismatches\n", failures);
        return 1;
    }
    std::printf("all kernels match their definitions\n");
    return 0;
}
