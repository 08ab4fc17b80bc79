//! `esr-ea compare` as a user runs it: two real tiny searches, one of each
//! strategy, compared into the three files.

use crate::support;

use support::cli::{esr_ea, headless_search, stdout};
use support::temp_dir;
use support::tiny::{tiny_dataset, TinySearch};

#[test]
fn compare_writes_the_verdict_and_its_files() {
    let dir = temp_dir("compare-cli");
    tiny_dataset(&dir, &["train/astronaut.png"]);
    let cfg = TinySearch {
        seed: 2,
        generations: 2,
        batch_size: 1,
        steps: 2,
        milestone: 1,
    }
    .write(&dir, "tiny.yaml");
    let cfg = cfg.to_str().unwrap();
    let (evo, rnd) = (dir.join("evo"), dir.join("rnd"));
    for (run, strategy) in [(&evo, "evolution"), (&rnd, "random")] {
        let o = headless_search(&[
            "--config",
            cfg,
            "--strategy",
            strategy,
            "--stop-after",
            "search",
            "--run-dir",
            run.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let out = dir.join("cmp");
    let o = esr_ea(&[
        "compare",
        evo.to_str().unwrap(),
        rnd.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    assert!(
        text.contains("too few runs for a verdict (1 evolution, 1 random"),
        "{text}"
    );
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(md.contains("| evo | evolution | 2 |"), "{md}");
    assert!(md.contains("| rnd | random | 2 |"), "{md}");
    let png = image::open(out.join("compare.png")).unwrap();
    assert!(png.width() > 100);
    assert!(std::fs::read_to_string(out.join("compare.csv"))
        .unwrap()
        .starts_with("run,strategy,seed,trained,train_seconds,best_psnr\n"));
    let o = esr_ea(&["compare", evo.to_str().unwrap()]);
    assert!(!o.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}
