//! Reading what a run directory's state.json (or a study's study.json)
//! says, for comparing two runs.

use std::path::Path;

/// Removes wall-clock fields, which differ between any two runs.
pub fn without_times(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.remove("seconds");
            map.values_mut().for_each(without_times);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(without_times),
        _ => {}
    }
}

/// Elites and history of the run at `run`, without wall-clock fields (as
/// compact JSON text, so a mismatch prints readably).
pub fn elites_and_history(run: &Path) -> (String, String) {
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    without_times(&mut state);
    (state["elites"].to_string(), state["history"].to_string())
}

/// The table of the study in `dir` (`study.json`) without its times, which
/// differ run to run.
pub fn study_table(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("study.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("fitness_minutes");
    o.remove("reference_minutes");
    v
}
