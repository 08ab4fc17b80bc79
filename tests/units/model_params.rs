//! The built network's trainable values equal the cost model's exact count,
//! and invalid global settings are rejected with a clear message.

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use esr_ea::model::{varmap_params, Esrn};
use esr_ea::space::{Arch, GeneList, SearchSpace};
use proptest::prelude::*;

fn build(arch: &Arch) -> (Esrn, VarMap) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = Esrn::new(arch, vb).unwrap();
    (model, varmap)
}

fn arch_strategy() -> impl Strategy<Value = Arch> {
    let choices: Vec<_> = SearchSpace::default()
        .choices()
        .into_iter()
        .map(|c| c.gene)
        .collect();
    (
        prop::collection::vec(prop::sample::select(choices), 1..=6),
        prop::sample::select(vec![2usize, 3, 4]),
        any::<bool>(),
    )
        .prop_map(|(genes, scale, bias)| Arch {
            genes: GeneList(genes),
            g0: 32,
            scale,
            bias,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn varmap_values_equal_cost_model(arch in arch_strategy()) {
        let (model, varmap) = build(&arch);
        let expected = arch.cost().params as usize;
        prop_assert_eq!(varmap_params(&varmap), expected, "arch {}", arch.genes);
        prop_assert_eq!(model.num_params(), expected);
        // Every variable is one of the model's named tensors and vice versa.
        prop_assert_eq!(varmap.all_vars().len(), model.named_tensors().len());
    }
}

#[test]
fn seed_example_has_the_documented_counts() {
    let genes = GeneList::parse_args(&["G_8_16_24 C_8_16_16 G_4_16_24 G_8_16_16 S_4_24_32 C_8_16_48 S_4_16_24 G_6_16_24 G_8_16_16 C_8_16_24 S_8_16_16 S_8_16_24 S_8_16_32 S_6_16_16 G_6_16_64 G_8_16_16 S_8_16_32"]).unwrap();
    let mut arch = Arch {
        genes,
        g0: 32,
        scale: 2,
        bias: true,
    };
    assert_eq!(varmap_params(&build(&arch).1), 520_595);
    arch.bias = false;
    assert_eq!(varmap_params(&build(&arch).1), 516_488);
}

#[test]
fn rejects_bad_global_settings() {
    let genes = GeneList::parse_args(&["S_4_16_24"]).unwrap();
    let err = |arch: Arch| {
        let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
        Esrn::new(&arch, vb).unwrap_err().to_string()
    };
    let ok = Arch {
        genes: genes.clone(),
        g0: 32,
        scale: 2,
        bias: true,
    };
    assert!(err(Arch {
        scale: 5,
        ..ok.clone()
    })
    .contains("scale 5 is not supported (allowed: 2, 3, 4)"));
    assert!(err(Arch {
        g0: 30,
        ..ok.clone()
    })
    .contains("G0 = 30"));
    assert!(err(Arch {
        genes: GeneList(vec![]),
        ..ok
    })
    .contains("at least one block"));
}
