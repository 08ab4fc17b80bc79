//! One backward pass reaches every parameter with a finite, non-zero gradient.

use candle_core::{Device, Tensor};
use esr_ea::model::Esrn;
use esr_ea::space::{Arch, GeneList};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A tensor of values in 0..1 from a seeded generator (candle's CPU RNG cannot be seeded).
fn seeded_rand(seed: u64, dims: &[usize]) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(0.0..1.0)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

fn arch(genes: &str, scale: usize) -> Arch {
    Arch {
        genes: GeneList::parse_args(&[genes]).unwrap(),
        g0: 8,
        scale,
        bias: true,
    }
}

/// Runs L1(forward(x), target).backward() and checks every variable.
fn check_gradients(arch: &Arch) {
    let dev = Device::Cpu;
    let (model, varmap) = Esrn::seeded(arch, 7, &dev).unwrap();
    let x = seeded_rand(1, &[1, 3, 8, 8]);
    let s = arch.scale;
    let target = seeded_rand(2, &[1, 3, 8 * s, 8 * s]);
    let out = model.forward(&x).unwrap();
    let loss = (out - target).unwrap().abs().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    let vars = varmap.data().lock().unwrap();
    assert_eq!(vars.len(), model.named_tensors().len());
    for (name, var) in vars.iter() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{}: no gradient for {name}", arch.genes));
        let values: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{}: non-finite gradient in {name}",
            arch.genes
        );
        assert!(
            values.iter().any(|v| *v != 0.0),
            "{}: zero gradient for {name}",
            arch.genes
        );
    }
}

// Mixed chain: identity residual (S 8→8), InConv + OutConv (S 8→16 via 4),
// grouped convs with a projected residual (G 16→8), C with OutConv.
const MIXED: &str = "S_4_8_8 S_4_4_16 G_4_8_8 C_4_8_16";

#[test]
fn gradients_reach_every_parameter_x2() {
    check_gradients(&arch(MIXED, 2));
}

#[test]
fn gradients_reach_every_parameter_x3() {
    check_gradients(&arch(MIXED, 3));
}

#[test]
fn gradients_reach_every_parameter_x4() {
    check_gradients(&arch(MIXED, 4));
}

#[test]
fn gradients_for_each_block_kind_alone() {
    for genes in ["S_4_8_16", "G_6_8_16", "C_4_8_16", "G_8_4_8", "C_6_8_8"] {
        check_gradients(&arch(genes, 2));
    }
}
