//! The custom CPU convolution against candle's own conv2d (forward and every
//! gradient) and against finite differences.

use candle_core::{DType, Device, Result, Tensor, Var};
use esr_ea::ops::{conv2d, conv2d_relu};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One convolution case.
#[derive(Debug, Clone, Copy)]
struct Case {
    batch: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: usize,
    groups: usize,
    bias: bool,
    relu: bool,
}

const fn case(
    batch: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: usize,
    groups: usize,
) -> Case {
    Case {
        batch,
        c_in,
        c_out,
        h,
        w,
        k,
        groups,
        bias: true,
        relu: false,
    }
}

fn rand_tensor(rng: &mut ChaCha8Rng, dims: &[usize], dtype: DType) -> Result<Tensor> {
    let n = dims.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu)?.to_dtype(dtype)
}

/// Output and gradients (input, weight, bias) of `sum(conv(x) · r)`.
struct Run {
    y: Tensor,
    dx: Tensor,
    dw: Tensor,
    db: Option<Tensor>,
}

/// Runs `c` with our op (`ours`) or candle's reference, on fixed random data.
fn run(c: Case, ours: bool, dtype: DType) -> Result<Run> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = Var::from_tensor(&rand_tensor(&mut rng, &[c.batch, c.c_in, c.h, c.w], dtype)?)?;
    let w = Var::from_tensor(&rand_tensor(
        &mut rng,
        &[c.c_out, c.c_in / c.groups, c.k, c.k],
        dtype,
    )?)?;
    let b = Var::from_tensor(&rand_tensor(&mut rng, &[c.c_out], dtype)?)?;
    let r = rand_tensor(&mut rng, &[c.batch, c.c_out, c.h, c.w], dtype)?;
    let bias = c.bias.then_some(b.as_tensor());
    let y = if ours {
        if c.relu {
            conv2d_relu(&x, &w, bias, c.groups)?
        } else {
            conv2d(&x, &w, bias, c.groups)?
        }
    } else {
        let mut y = x.conv2d(&w, (c.k - 1) / 2, 1, 1, c.groups)?;
        if let Some(b) = bias {
            y = y.broadcast_add(&b.reshape((1, c.c_out, 1, 1))?)?;
        }
        if c.relu {
            y = y.relu()?;
        }
        y
    };
    let grads = (&y * &r)?.sum_all()?.backward()?;
    Ok(Run {
        dx: grads.get(&x).expect("input gradient").clone(),
        dw: grads.get(&w).expect("weight gradient").clone(),
        db: grads.get(&b).cloned(),
        y,
    })
}

/// Largest absolute difference relative to the largest reference magnitude.
fn rel_err(got: &Tensor, want: &Tensor) -> Result<f64> {
    assert_eq!(got.dims(), want.dims());
    let diff = (got - want)?
        .abs()?
        .max_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    let scale = want
        .abs()?
        .max_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    Ok(diff / scale.max(1e-12))
}

fn check_against_candle(c: Case) -> Result<()> {
    let ours = run(c, true, DType::F32)?;
    let want = run(c, false, DType::F32)?;
    for (what, got, want) in [
        ("output", &ours.y, &want.y),
        ("input grad", &ours.dx, &want.dx),
        ("weight grad", &ours.dw, &want.dw),
    ] {
        let e = rel_err(got, want)?;
        assert!(e < 1e-4, "{c:?}: {what} off by {e:e}");
    }
    match (&ours.db, &want.db) {
        (Some(got), Some(want)) => {
            let e = rel_err(got, want)?;
            assert!(e < 1e-4, "{c:?}: bias grad off by {e:e}");
        }
        (None, None) => {}
        _ => panic!("{c:?}: bias gradient present in only one of the two"),
    }
    Ok(())
}

#[test]
fn one_by_one_matches_candle() -> Result<()> {
    check_against_candle(case(1, 6, 4, 5, 7, 1, 1))?;
    check_against_candle(case(3, 80, 16, 8, 8, 1, 1))?;
    check_against_candle(Case {
        bias: false,
        ..case(3, 5, 3, 4, 4, 1, 1)
    })
}

#[test]
fn three_by_three_matches_candle() -> Result<()> {
    check_against_candle(case(1, 3, 8, 5, 7, 3, 1))?;
    check_against_candle(case(3, 16, 16, 9, 6, 3, 1))?;
    check_against_candle(case(2, 4, 4, 1, 1, 3, 1))?;
    check_against_candle(Case {
        bias: false,
        ..case(3, 8, 5, 7, 5, 3, 1)
    })
}

#[test]
fn grouped_matches_candle() -> Result<()> {
    check_against_candle(case(1, 8, 6, 5, 7, 3, 2))?;
    check_against_candle(case(3, 16, 8, 6, 5, 3, 4))?;
    check_against_candle(case(3, 64, 16, 4, 4, 3, 4))?;
    check_against_candle(case(3, 8, 8, 5, 3, 1, 4))
}

#[test]
fn fused_relu_matches_candle() -> Result<()> {
    check_against_candle(Case {
        relu: true,
        ..case(3, 16, 16, 5, 7, 3, 1)
    })?;
    check_against_candle(Case {
        relu: true,
        ..case(1, 12, 8, 6, 6, 3, 4)
    })?;
    check_against_candle(Case {
        relu: true,
        bias: false,
        ..case(2, 6, 4, 3, 5, 1, 1)
    })
}

#[test]
fn large_images_are_tiled_correctly() -> Result<()> {
    // Several row tiles per image and more items than threads.
    check_against_candle(case(1, 32, 16, 70, 33, 3, 1))?;
    check_against_candle(case(2, 16, 32, 80, 61, 1, 1))
}

#[test]
fn five_by_five_matches_candle() -> Result<()> {
    check_against_candle(case(2, 4, 6, 6, 7, 5, 2))
}

/// Central finite differences of `sum(conv(x) · r)` in f64.
#[test]
fn gradients_match_finite_differences() -> Result<()> {
    for c in [
        case(2, 4, 4, 3, 5, 3, 2),
        Case {
            relu: true,
            ..case(1, 3, 2, 4, 3, 3, 1)
        },
        case(2, 3, 2, 2, 3, 1, 1),
    ] {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let x = Var::from_tensor(&rand_tensor(
            &mut rng,
            &[c.batch, c.c_in, c.h, c.w],
            DType::F64,
        )?)?;
        let w = Var::from_tensor(&rand_tensor(
            &mut rng,
            &[c.c_out, c.c_in / c.groups, c.k, c.k],
            DType::F64,
        )?)?;
        let b = Var::from_tensor(&rand_tensor(&mut rng, &[c.c_out], DType::F64)?)?;
        let r = rand_tensor(&mut rng, &[c.batch, c.c_out, c.h, c.w], DType::F64)?;
        let loss = |x: &Tensor, w: &Tensor, b: &Tensor| -> Result<f64> {
            let y = if c.relu {
                conv2d_relu(x, w, Some(b), c.groups)?
            } else {
                conv2d(x, w, Some(b), c.groups)?
            };
            (y * &r)?.sum_all()?.to_scalar::<f64>()
        };
        let grads = {
            let y = if c.relu {
                conv2d_relu(&x, &w, Some(&b), c.groups)?
            } else {
                conv2d(&x, &w, Some(&b), c.groups)?
            };
            (y * &r)?.sum_all()?.backward()?
        };
        let eps = 1e-6;
        for (i, var) in [&x, &w, &b].into_iter().enumerate() {
            let analytic: Vec<f64> = grads.get(var).expect("gradient").flatten_all()?.to_vec1()?;
            let base: Vec<f64> = var.flatten_all()?.to_vec1()?;
            for (j, &a) in analytic.iter().enumerate() {
                let eval = |delta: f64| -> Result<f64> {
                    let mut v = base.clone();
                    v[j] += delta;
                    let t = Tensor::from_vec(v, var.shape(), &Device::Cpu)?;
                    let mut args = [
                        x.as_tensor().clone(),
                        w.as_tensor().clone(),
                        b.as_tensor().clone(),
                    ];
                    args[i] = t;
                    loss(&args[0], &args[1], &args[2])
                };
                let fd = (eval(eps)? - eval(-eps)?) / (2.0 * eps);
                assert!(
                    (fd - a).abs() < 1e-6 * (1.0 + a.abs()),
                    "{c:?} arg {i}[{j}]: analytic {a} vs numeric {fd}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn gradients_are_deterministic() -> Result<()> {
    let c = case(16, 16, 16, 32, 32, 3, 1);
    let a = run(c, true, DType::F32)?;
    let b = run(c, true, DType::F32)?;
    assert_eq!(
        a.dw.flatten_all()?.to_vec1::<f32>()?,
        b.dw.flatten_all()?.to_vec1::<f32>()?
    );
    assert_eq!(
        a.db.expect("bias").to_vec1::<f32>()?,
        b.db.expect("bias").to_vec1::<f32>()?
    );
    Ok(())
}

#[test]
fn non_contiguous_input_is_accepted() -> Result<()> {
    // A narrowed, transposed view of a larger tensor.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = rand_tensor(&mut rng, &[2, 10, 5, 6], DType::F32)?;
    let view = x.narrow(1, 1, 8)?.transpose(2, 3)?;
    assert!(!view.is_contiguous());
    let copy = view.contiguous()?;
    let w = rand_tensor(&mut rng, &[4, 4, 3, 3], DType::F32)?;
    let got = conv2d(&view, &w, None, 2)?;
    let want = copy.conv2d(&w, 1, 1, 1, 2)?;
    assert!(rel_err(&got, &want)? < 1e-5);
    Ok(())
}

#[test]
fn frozen_arguments_get_no_gradient() -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = rand_tensor(&mut rng, &[1, 3, 4, 4], DType::F32)?; // data, no gradient
    let w = Var::from_tensor(&rand_tensor(&mut rng, &[2, 3, 3, 3], DType::F32)?)?;
    let grads = conv2d(&x, &w, None, 1)?.sum_all()?.backward()?;
    assert!(grads.get(&x).is_none());
    assert_eq!(
        grads.get(&w).expect("weight gradient").dims(),
        &[2, 3, 3, 3]
    );
    Ok(())
}

#[test]
fn bad_shapes_are_rejected_with_a_message() -> Result<()> {
    let x = Tensor::zeros((1, 6, 4, 4), DType::F32, &Device::Cpu)?;
    let w = Tensor::zeros((4, 3, 3, 3), DType::F32, &Device::Cpu)?;
    let msg = |r: Result<Tensor>| r.expect_err("should fail").to_string();
    assert!(msg(conv2d(&x, &w, None, 4)).contains("groups 4"));
    assert!(msg(conv2d(&x, &w, None, 1)).contains("3 channels per group"));
    let even = Tensor::zeros((4, 3, 2, 2), DType::F32, &Device::Cpu)?;
    assert!(msg(conv2d(&x, &even, None, 2)).contains("odd"));
    let bias = Tensor::zeros(5, DType::F32, &Device::Cpu)?;
    assert!(msg(conv2d(&x, &w, Some(&bias), 2)).contains("bias must be [4]"));
    let flat = Tensor::zeros((6, 4, 4), DType::F32, &Device::Cpu)?;
    assert!(msg(conv2d(&flat, &w, None, 2)).contains("input must be"));
    assert_eq!(conv2d(&x, &w, None, 2)?.dims(), &[1, 4, 4, 4]);
    Ok(())
}

/// Output and gradients of `sum(relu(conv(shuffle(x))) · r)`, the shuffle
/// folded into our op (`fused`) or done first with candle ops.
fn run_shuffled(c: Case, shuffle: usize, fused: bool) -> Result<Run> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let dt = DType::F64;
    let x = Var::from_tensor(&rand_tensor(&mut rng, &[c.batch, c.c_in, c.h, c.w], dt)?)?;
    let w = Var::from_tensor(&rand_tensor(
        &mut rng,
        &[c.c_out, c.c_in / c.groups, c.k, c.k],
        dt,
    )?)?;
    let b = Var::from_tensor(&rand_tensor(&mut rng, &[c.c_out], dt)?)?;
    let r = rand_tensor(&mut rng, &[c.batch, c.c_out, c.h, c.w], dt)?;
    let y = if fused {
        esr_ea::ops::conv2d_shuffled_relu(&x, &w, Some(&b), c.groups, shuffle)?
    } else {
        let (n, ch, h, wd) = x.dims4()?;
        let shuffled = x
            .reshape((n, shuffle, ch / shuffle, h, wd))?
            .transpose(1, 2)?
            .reshape((n, ch, h, wd))?;
        conv2d_relu(&shuffled, &w, Some(&b), c.groups)?
    };
    let grads = (&y * &r)?.sum_all()?.backward()?;
    Ok(Run {
        dx: grads.get(&x).expect("input gradient").clone(),
        dw: grads.get(&w).expect("weight gradient").clone(),
        db: grads.get(&b).cloned(),
        y,
    })
}

#[test]
fn folded_channel_shuffle_matches_shuffling_first() -> Result<()> {
    // G-block dense layers: c+1 shuffle groups, min(4, 2^⌊log2(c+1)⌋) conv groups.
    for (c_in, groups, shuffle) in [(32, 2, 2), (48, 2, 3), (64, 4, 4), (96, 4, 6), (12, 1, 3)] {
        let c = case(2, c_in, 8, 5, 6, 3, groups);
        let (a, e) = (
            run_shuffled(c, shuffle, true)?,
            run_shuffled(c, shuffle, false)?,
        );
        for (name, got, want) in [
            ("y", &a.y, &e.y),
            ("dx", &a.dx, &e.dx),
            ("dw", &a.dw, &e.dw),
        ] {
            let err = rel_err(got, want)?;
            assert!(err < 1e-12, "{c_in}/{groups}/{shuffle} {name}: {err}");
        }
        assert!(rel_err(a.db.as_ref().unwrap(), e.db.as_ref().unwrap())? < 1e-12);
    }
    // 1x1 kernels take the unfused path; a shuffle that does not divide fails.
    let x = Tensor::zeros((1, 6, 2, 2), DType::F32, &Device::Cpu)?;
    let w1 = Tensor::ones((2, 6, 1, 1), DType::F32, &Device::Cpu)?;
    assert_eq!(
        esr_ea::ops::conv2d_shuffled_relu(&x, &w1, None, 1, 2)?.dims(),
        &[1, 2, 2, 2]
    );
    let err = esr_ea::ops::conv2d_shuffled_relu(&x, &w1, None, 1, 4).unwrap_err();
    assert!(
        err.to_string().contains("channel shuffle with 4 groups"),
        "{err}"
    );
    Ok(())
}
