//! Two `esr-ea` processes meeting one unprepared image folder: one decodes
//! it into the cache, the other waits and reads it (never both decoding).

use std::process::Command;

use crate::support::temp_dir;

#[test]
fn two_processes_prepare_one_cache_once() {
    let dir = temp_dir("cache-processes");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    // Copies of the shipped photographs under new names: a folder no cache knows.
    let assets = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/train");
    let mut count = 0;
    for round in 0..4 {
        for entry in std::fs::read_dir(assets).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "png") {
                let name = format!("{round}-{}", path.file_name().unwrap().to_string_lossy());
                std::fs::copy(&path, images.join(name)).unwrap();
                count += 1;
            }
        }
    }
    let quick = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/quick.yaml"))
        .unwrap()
        .replace("../assets/train", images.to_str().unwrap())
        .replace("../assets", concat!(env!("CARGO_MANIFEST_DIR"), "/assets"));
    let config = dir.join("config.yaml");
    std::fs::write(&config, quick).unwrap();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_esr-ea"))
            .args(["search", "--check", "--config", config.to_str().unwrap()])
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(start);
        let b = s.spawn(start);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    let mut decoded = 0;
    for o in [&a, &b] {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        // (The validation folder, assets/val, has its own cache.)
        let ours = images.join(".esr-ea-cache").display().to_string();
        for line in err
            .lines()
            .filter(|l| l.contains("decoded now") && l.contains(&ours))
        {
            let n: usize = line
                .split(" images, ")
                .nth(1)
                .and_then(|rest| rest.split(", ").nth(1))
                .and_then(|d| d.split_whitespace().next())
                .and_then(|d| d.parse().ok())
                .unwrap_or_else(|| panic!("{line}"));
            decoded += n;
        }
    }
    assert_eq!(decoded, count, "each image decoded once in all");
    let caches = std::fs::read_dir(images.join(".esr-ea-cache"))
        .unwrap()
        .count();
    assert_eq!(caches, 2, "one cache file and its lock file");
    let _ = std::fs::remove_dir_all(dir);
}
