//! The cost model against the reference figures in `tests/data/esrn_reference.json`.

use esr_ea::space::{Arch, GeneList, SearchSpace};
use serde_json::Value;

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/esrn_reference.json"
    );
    let text = std::fs::read_to_string(path).expect("reference figures in tests/data");
    serde_json::from_str(&text).unwrap()
}

fn arch_of(case: &Value, bias: bool) -> Arch {
    let genes: Vec<String> = serde_json::from_value(case["arch"].clone()).unwrap();
    Arch {
        genes: GeneList::parse_args(&genes).unwrap(),
        g0: case["G0"].as_u64().unwrap() as usize,
        scale: case["scale"].as_u64().unwrap() as usize,
        bias,
    }
}

#[test]
fn exact_params_and_multi_adds_match_every_case() {
    let reference = reference();
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for case in cases {
        let name = format!("{} x{}", case["name"], case["scale"]);
        let with_bias = arch_of(case, true).cost();
        assert_eq!(
            with_bias.params,
            case["exact_params"].as_u64().unwrap(),
            "{name} params"
        );
        assert_eq!(
            with_bias.multi_adds,
            case["exact_multi_adds_720p"].as_u64().unwrap(),
            "{name} multi-adds"
        );
        let no_bias = arch_of(case, false).cost();
        assert_eq!(
            no_bias.params,
            case["exact_params_no_bias"].as_u64().unwrap(),
            "{name} params without bias"
        );
    }
}

#[test]
fn reference_estimate_is_reproduced_for_comparison() {
    let reference = reference();
    let mut checked = 0;
    for case in reference["cases"].as_array().unwrap() {
        let Some(params) = case["reference_estimate_params"].as_f64() else {
            continue;
        };
        let estimate = arch_of(case, true).reference_estimate();
        assert_eq!(estimate.params, params as u64, "{}", case["name"]);
        assert_eq!(
            estimate.flops,
            case["reference_estimate_flops"].as_f64().unwrap() as u64,
            "{}",
            case["name"]
        );
        checked += 1;
    }
    assert!(checked >= 5);
}

#[test]
fn choice_table_matches_reference_head() {
    let reference = reference();
    let table = SearchSpace::default().choices();
    assert_eq!(
        table.len() as u64,
        reference["choices_count"].as_u64().unwrap()
    );
    let head: Vec<String> = serde_json::from_value(reference["first_choices"].clone()).unwrap();
    for (choice, expected) in table.iter().zip(&head) {
        assert_eq!(&choice.gene.to_string(), expected);
    }
}
