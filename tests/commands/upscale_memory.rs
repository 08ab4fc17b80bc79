//! `upscale` memory is bounded by `--max-memory`, not by the image: a real
//! large image generated here goes through the binary, whose peak RSS is read
//! from the kernel while it runs (`VmHWM`). Untiled, this image
//! needs about 1.9 GB for this network; tiled in 48 MiB it stays under 400 MB
//! including the input and output images themselves.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::Device;
use esr_ea::model::{save_model, Esrn};
use esr_ea::space::{Arch, GeneList};

#[test]
fn upscale_of_a_large_image_stays_within_its_memory_budget() {
    let dir = std::env::temp_dir().join(format!("esr-ea-upmem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let arch = Arch {
        genes: GeneList::parse_args(&["G_2_8_8".to_string(), "C_1_8_8".to_string()]).unwrap(),
        g0: 8,
        scale: 2,
        bias: true,
    };
    let model = Esrn::seeded(&arch, 5, &Device::Cpu).unwrap().0;
    let model_path = dir.join("m.safetensors");
    save_model(&model, &model_path).unwrap();
    let (w, h) = (1201u32, 999u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    let input: PathBuf = dir.join("big.png");
    img.save(&input).unwrap();
    let output = dir.join("big_x2.png");

    let mut child = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(["upscale", "--max-memory", "48M", "--model"])
        .arg(&model_path)
        .arg(&input)
        .arg(&output)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child's own high-water mark (VmHWM of its exec'd image), sampled
    // while it runs: getrusage's ru_maxrss would also count the pages of this
    // test process (and its other tests) that the child shared before exec.
    let deadline = Instant::now() + Duration::from_secs(240);
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak_kib = peak_kib.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("upscale of {w}x{h} took over 240 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sr = image::open(&output).unwrap();
    assert_eq!((sr.width(), sr.height()), (2 * w, 2 * h));

    assert!(peak_kib > 0, "no VmHWM read from {status_file}");
    let peak_mb = peak_kib as f64 / 1024.0;
    eprintln!("upscale {w}x{h} --max-memory 48M: peak RSS {peak_mb:.0} MB");
    assert!(peak_mb < 400.0, "peak RSS {peak_mb:.0} MB");
    std::fs::remove_dir_all(&dir).unwrap();
}
