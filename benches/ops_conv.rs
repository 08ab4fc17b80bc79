//! Micro-benchmark of the custom CPU convolution against candle's conv2d
//! (`cargo bench --bench ops_conv [-- --repeats N] [-- --filter TEXT]`).
//!
//! Shapes are the typical ESRN ones at training size (batch 16 of 32x32) plus
//! a 128x128 inference layer. Each line: median time of the forward (conv +
//! bias) and of forward + backward (all gradients), candle vs ours.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use candle_core::{Device, Result, Tensor, Var};
use esr_ea::ops::geom::ConvGeom;
use esr_ea::ops::{conv2d, conv2d_relu, kernels};

/// One benchmarked convolution: `[b, cin, h, w]` by `[cout, cin/groups, k, k]`.
struct Shape {
    name: &'static str,
    b: usize,
    cin: usize,
    cout: usize,
    hw: usize,
    k: usize,
    groups: usize,
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "3x3 16->16",
        b: 16,
        cin: 16,
        cout: 16,
        hw: 32,
        k: 3,
        groups: 1,
    },
    Shape {
        name: "3x3 32->32",
        b: 16,
        cin: 32,
        cout: 32,
        hw: 32,
        k: 3,
        groups: 1,
    },
    Shape {
        name: "3x3 3->32 (head)",
        b: 16,
        cin: 3,
        cout: 32,
        hw: 32,
        k: 3,
        groups: 1,
    },
    Shape {
        name: "3x3 16->16 @16x16 (C block)",
        b: 16,
        cin: 16,
        cout: 16,
        hw: 16,
        k: 3,
        groups: 1,
    },
    Shape {
        name: "3x3 64->16 (dense layer)",
        b: 16,
        cin: 64,
        cout: 16,
        hw: 32,
        k: 3,
        groups: 1,
    },
    Shape {
        name: "3x3 128->16 (dense layer)",
        b: 16,
        cin: 128,
        cout: 16,
        hw: 32,
        k: 3,
        groups: 1,
    },
    Shape {
        name: "1x1 80->16",
        b: 16,
        cin: 80,
        cout: 16,
        hw: 32,
        k: 1,
        groups: 1,
    },
    Shape {
        name: "1x1 32->16",
        b: 16,
        cin: 32,
        cout: 16,
        hw: 32,
        k: 1,
        groups: 1,
    },
    Shape {
        name: "grouped 3x3 32->16 g2",
        b: 16,
        cin: 32,
        cout: 16,
        hw: 32,
        k: 3,
        groups: 2,
    },
    Shape {
        name: "grouped 3x3 64->16 g4",
        b: 16,
        cin: 64,
        cout: 16,
        hw: 32,
        k: 3,
        groups: 4,
    },
    Shape {
        name: "infer 3x3 32->32 1x128x128",
        b: 1,
        cin: 32,
        cout: 32,
        hw: 128,
        k: 3,
        groups: 1,
    },
    Shape {
        name: "infer 1x1 64->32 1x128x128",
        b: 1,
        cin: 64,
        cout: 32,
        hw: 128,
        k: 1,
        groups: 1,
    },
];

/// Set by `--min`: report the fastest run instead of the median (useful on a
/// machine shared with other work, where the minimum is the least disturbed).
static USE_MIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn median_ms(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times: Vec<Duration> = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    let pick = if USE_MIN.load(std::sync::atomic::Ordering::Relaxed) {
        0
    } else {
        times.len() / 2
    };
    Ok(times[pick].as_secs_f64() * 1e3)
}

/// Candle's conv2d + bias (+ ReLU), as the model used it.
fn candle_conv(x: &Tensor, w: &Tensor, b: &Tensor, s: &Shape, relu: bool) -> Result<Tensor> {
    let y = x
        .conv2d(w, (s.k - 1) / 2, 1, 1, s.groups)?
        .broadcast_add(&b.reshape((1, s.cout, 1, 1))?)?;
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

fn main() -> Result<()> {
    use support::arg;
    let args: Vec<String> = std::env::args().collect();
    let repeats = arg("--repeats")
        .and_then(|v| v.parse().ok())
        .unwrap_or(7usize)
        .max(1);
    let filter = arg("--filter").unwrap_or_default();
    USE_MIN.store(
        args.iter().any(|a| a == "--min"),
        std::sync::atomic::Ordering::Relaxed,
    );
    if args.iter().any(|a| a == "--kernels") {
        return kernel_breakdown(repeats, &filter);
    }
    let dev = Device::Cpu;
    println!(
        "conv micro-benchmark, {} threads, median of {repeats} (ms)",
        candle_core::utils::get_num_threads()
    );
    println!(
        "{:<30} {:>9} {:>9} {:>6}   {:>9} {:>9} {:>6}   {:>9} {:>9}",
        "shape", "fwd cndl", "fwd ours", "x", "f+b cndl", "f+b ours", "x", "+relu cl", "+relu us"
    );
    for s in SHAPES.iter().filter(|s| s.name.contains(&filter)) {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (s.b, s.cin, s.hw, s.hw), &dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(
            0f32,
            0.1,
            (s.cout, s.cin / s.groups, s.k, s.k),
            &dev,
        )?)?;
        let b = Var::from_tensor(&Tensor::randn(0f32, 0.1, s.cout, &dev)?)?;
        let fwd_c = median_ms(repeats, || candle_conv(&x, &w, &b, s, false).map(drop))?;
        let fwd_o = median_ms(repeats, || conv2d(&x, &w, Some(&b), s.groups).map(drop))?;
        let fb_c = median_ms(repeats, || {
            candle_conv(&x, &w, &b, s, false)?
                .sum_all()?
                .backward()
                .map(drop)
        })?;
        let fb_o = median_ms(repeats, || {
            conv2d(&x, &w, Some(&b), s.groups)?
                .sum_all()?
                .backward()
                .map(drop)
        })?;
        let fbr_c = median_ms(repeats, || {
            candle_conv(&x, &w, &b, s, true)?
                .sum_all()?
                .backward()
                .map(drop)
        })?;
        let fbr_o = median_ms(repeats, || {
            conv2d_relu(&x, &w, Some(&b), s.groups)?
                .sum_all()?
                .backward()
                .map(drop)
        })?;
        println!(
            "{:<30} {fwd_c:>9.2} {fwd_o:>9.2} {:>6.1}   {fb_c:>9.2} {fb_o:>9.2} {:>6.1}   {fbr_c:>9.2} {fbr_o:>9.2}",
            s.name,
            fwd_c / fwd_o,
            fb_c / fb_o,
        );
    }
    Ok(())
}

/// Times the raw kernels on slices (no candle graph): forward, input
/// gradient, weight+bias gradient, and their sum against the GEMM FLOPs.
fn kernel_breakdown(repeats: usize, filter: &str) -> Result<()> {
    println!("kernel breakdown, median of {repeats} (ms); GFLOP/s over fwd+dx+dw");
    println!(
        "{:<30} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "shape", "fwd", "dx", "dw+db", "sum", "GFLOP/s"
    );
    for s in SHAPES.iter().filter(|s| s.name.contains(filter)) {
        let g = ConvGeom {
            batch: s.b,
            c_in: s.cin,
            c_out: s.cout,
            h: s.hw,
            w: s.hw,
            k: s.k,
            groups: s.groups,
            shuffle: 1,
        };
        let x: Vec<f32> = (0..g.x_len()).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..g.w_len()).map(|i| (i as f32 * 0.11).cos()).collect();
        let dy: Vec<f32> = (0..g.y_len()).map(|i| (i as f32 * 0.23).sin()).collect();
        let bias = vec![0.1f32; g.c_out];
        let fwd = median_ms(repeats, || {
            std::hint::black_box(kernels::conv_forward(&x, &w, Some(&bias), &g, false));
            Ok(())
        })?;
        let dx = median_ms(repeats, || {
            std::hint::black_box(kernels::conv_grad_input(&dy, &w, &g));
            Ok(())
        })?;
        let dw = median_ms(repeats, || {
            std::hint::black_box(kernels::conv_grad_weight(&x, &dy, &g, true));
            Ok(())
        })?;
        let sum = fwd + dx + dw;
        let flops = 3.0 * 2.0 * (g.w_len() * g.batch * g.h * g.w) as f64;
        println!(
            "{:<30} {fwd:>8.2} {dx:>8.2} {dw:>8.2} {sum:>8.2} {:>8.1}",
            s.name,
            flops / sum * 1e-6
        );
    }
    Ok(())
}
