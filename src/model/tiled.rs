//! Tiled inference: super-resolve an image of any size in overlapping tiles,
//! so memory is bounded by a budget instead of growing with the image.
//!
//! Each tile is the core region it contributes plus a margin of the
//! network's receptive-field radius on every side that is not the image's
//! own border. Inside that margin the zero padding of the tile's convs never
//! reaches the core, so the core's output is the untiled output (to float
//! rounding). C blocks pool 2x2: tiles start on even rows and columns so each
//! tile pools the same 2x2 cells as the whole image.

use candle_core::{bail, Result, Tensor};

use super::Esrn;
use crate::space::{Arch, BlockKind};

/// Allocator slack and candle's short-lived copies (bias add, clamp) over
/// the activations counted by [`bytes_per_pixel`]; measured peaks stay below
/// the estimate with this factor (see the issue-14 note).
const SAFETY: f64 = 1.5;

/// A rectangle in LR pixels (rows `y..y+h`, columns `x..x+w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// First row.
    pub y: usize,
    /// First column.
    pub x: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
}

/// One tile: the region it contributes and the larger window it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// LR pixels whose output this tile provides.
    pub core: Rect,
    /// LR pixels fed to the network (core plus margin, clipped to the padded image).
    pub window: Rect,
}

/// How an image is cut: core tile side and margin, in LR pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilePlan {
    /// Side of a tile's core (a multiple of `multiple`).
    pub core: usize,
    /// Overlap on each inner side: the receptive-field radius, rounded up to `multiple`.
    pub margin: usize,
    /// Sizes and offsets are multiples of this (2 with C blocks, else 1).
    pub multiple: usize,
}

/// Receptive-field radius of the network in LR pixels: how far an output
/// pixel's value can depend on input pixels. A 3x3 conv adds one pixel at its
/// resolution; a C block's convs run at half resolution (two LR pixels each,
/// three uses per conv) plus one for its 2x2 cell; upsampler convs at a
/// higher resolution are counted as a whole LR pixel each (an upper bound).
pub fn receptive_radius(arch: &Arch) -> usize {
    let blocks: usize = arch
        .genes
        .iter()
        .map(|g| match g.kind {
            BlockKind::S | BlockKind::G => g.convs,
            BlockKind::C => 6 * g.convs + 1,
        })
        .sum();
    let upsampler = if arch.scale == 4 { 3 } else { 2 };
    // SFENet1, SFENet2, the blocks, GFF's 3x3, the upsampler.
    2 + blocks + 1 + upsampler
}

/// Estimated peak bytes per LR pixel of an inference (a forward pass that
/// records no gradient graph, see [`Esrn::inference_copy`]): the tensors
/// alive throughout (the shallow features and the global fusion's running
/// sum, to which each block's output is added as it is made) plus the
/// largest block's input, dense features and output at its resolution,
/// times a safety factor. Unfolded (im2col) inputs are not per pixel: the
/// CPU kernels unfold one row tile at a time, and cuDNN's workspace is
/// capped per call. Measured against this estimate: see the issue-25 note.
pub fn bytes_per_pixel(arch: &Arch) -> usize {
    let g0 = arch.g0 as f64;
    let kept = 3.0 * g0;
    let mut widest: f64 = 3.0 + 2.0 * g0;
    let mut in_ch = arch.g0 as f64;
    for gene in arch.genes.iter() {
        let (c, g, o) = (gene.convs as f64, gene.growth as f64, gene.out as f64);
        let body = match gene.kind {
            BlockKind::S => (c + 1.0) * g + 2.0 * g,
            // The shuffled copy of the features that cuDNN reads.
            BlockKind::G => 2.0 * (c + 1.0) * g + g,
            BlockKind::C => g + 3.0 * (c + 1.0) * g / 4.0,
        };
        widest = widest.max(in_ch + g + body + o);
        in_ch = o;
    }
    // The upsampler's convolutions and pixel shuffles, counted at LR pixels.
    let up = match arch.scale {
        2 => 9.0 * g0 + 12.0,
        3 => 19.0 * g0 + 27.0,
        _ => 32.0 * g0 + 48.0,
    };
    widest = widest.max(up);
    (4.0 * (kept + widest) * SAFETY).ceil() as usize
}

impl TilePlan {
    /// Tiles with a given core side (rounded up to the network's multiple).
    pub fn with_core(arch: &Arch, core: usize) -> TilePlan {
        let multiple = size_multiple(arch);
        TilePlan {
            core: round_up(core.max(1), multiple),
            margin: round_up(receptive_radius(arch), multiple),
            multiple,
        }
    }

    /// How to cut an `h x w` image (LR pixels) within `budget` bytes: in one
    /// pass when the whole image fits, else the largest square tiles whose
    /// window (clipped to the image, as [`TilePlan::tiles`] clips it) fits.
    /// A tile's core is at least the margin (and 8 pixels): smaller cores
    /// would recompute each pixel's surroundings more than 9 times over, so
    /// a budget that only allows those is an error naming the smallest
    /// budget that works.
    pub fn for_image(arch: &Arch, budget: u64, h: usize, w: usize) -> Result<TilePlan> {
        let bpp = bytes_per_pixel(arch) as u64;
        let base = TilePlan::with_core(arch, 1);
        let m = base.multiple;
        let (ph, pw) = (round_up(h.max(1), m), round_up(w.max(1), m));
        let window_bytes = |core: usize| {
            let side = core + 2 * base.margin;
            (side.min(ph) * side.min(pw)) as u64 * bpp
        };
        let whole = ph.max(pw);
        if window_bytes(whole) <= budget {
            return Ok(TilePlan::with_core(arch, whole));
        }
        // Cores in units of the multiple; the window only grows with the core.
        let min_core = base.margin.max(8);
        let (mut lo, mut hi) = (min_core.div_ceil(m).min(whole / m).max(1), whole / m);
        if window_bytes(lo * m) > budget {
            bail!(
                "a memory budget of {} MiB is too small for this network on a {w}x{h} image: one tile needs at least {} MiB",
                budget >> 20,
                window_bytes(lo * m).div_ceil(1 << 20)
            );
        }
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if window_bytes(mid * m) <= budget {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Ok(TilePlan::with_core(arch, lo * m))
    }

    /// The tiles covering an `h x w` image, row by row. Sizes are those of
    /// the image padded up to the multiple; windows may reach into that
    /// padding (the caller replicates the last row/column there, as
    /// [`Esrn::forward`] does).
    pub fn tiles(&self, h: usize, w: usize) -> Vec<Tile> {
        let (ph, pw) = (round_up(h, self.multiple), round_up(w, self.multiple));
        let spans = |len: usize| -> Vec<(usize, usize, usize, usize)> {
            let mut out = Vec::new();
            let mut start = 0;
            while start < len {
                let end = (start + self.core).min(len);
                let w0 = start.saturating_sub(self.margin);
                let w1 = (end + self.margin).min(len);
                out.push((start, end - start, w0, w1 - w0));
                start = end;
            }
            out
        };
        let mut tiles = Vec::new();
        for &(cy, ch, wy, wh) in &spans(ph) {
            for &(cx, cw, wx, ww) in &spans(pw) {
                tiles.push(Tile {
                    core: Rect {
                        y: cy,
                        x: cx,
                        h: ch,
                        w: cw,
                    },
                    window: Rect {
                        y: wy,
                        x: wx,
                        h: wh,
                        w: ww,
                    },
                });
            }
        }
        tiles
    }
}

/// Runs `model` tile by tile over an `h x w` image. `fetch` returns the
/// `[1, 3, window.h, window.w]` input of a window (rows/columns beyond the
/// image replicate its last one); `store` receives each tile with the
/// `[1, 3, s·core.h, s·core.w]` output of its core (the caller crops the
/// padding rows/columns at the far edges); `progress(done, total)` follows
/// each tile.
pub fn forward_tiled(
    model: &Esrn,
    h: usize,
    w: usize,
    plan: &TilePlan,
    mut fetch: impl FnMut(&Rect) -> Result<Tensor>,
    mut store: impl FnMut(&Tile, &Tensor) -> Result<()>,
    mut progress: impl FnMut(usize, usize),
) -> Result<()> {
    if plan.multiple != model.size_multiple() {
        bail!(
            "tile plan for multiples of {} used with a network that needs {}",
            plan.multiple,
            model.size_multiple()
        );
    }
    let s = model.arch().scale;
    let tiles = plan.tiles(h, w);
    let total = tiles.len();
    for (i, tile) in tiles.iter().enumerate() {
        let input = fetch(&tile.window)?;
        let out = model.forward_unpadded(&input)?;
        let core = out
            .narrow(2, s * (tile.core.y - tile.window.y), s * tile.core.h)?
            .narrow(3, s * (tile.core.x - tile.window.x), s * tile.core.w)?;
        store(tile, &core)?;
        progress(i + 1, total);
    }
    Ok(())
}

/// The default memory budget for inference on the CPU: a quarter of the
/// memory available now (`MemAvailable`), 1 GiB when it cannot be read.
pub fn default_memory_budget() -> u64 {
    available_memory().map_or(1 << 30, quarter_within_limits)
}

/// The default budget for inference on `device`: on the CPU
/// [`default_memory_budget`]; on a GPU a quarter of its free memory now.
pub fn default_memory_budget_on(device: &candle_core::Device) -> u64 {
    free_memory_on(device).map_or(1 << 30, quarter_within_limits)
}

/// Memory free for new allocations on `device` now: `MemAvailable` on the
/// CPU, the driver's free memory on a GPU; `None` when it cannot be read.
pub fn free_memory_on(device: &candle_core::Device) -> Option<u64> {
    #[cfg(feature = "cuda")]
    if let candle_core::Device::Cuda(d) = device {
        return d
            .cuda_stream()
            .context()
            .mem_get_info()
            .ok()
            .map(|(free, _)| free as u64);
    }
    let _ = device;
    available_memory()
}

/// A quarter of `bytes` (room for the images, other workers sharing the
/// memory and other processes), between 256 MiB and 16 GiB. The cap is high
/// because the paper's 16–20 block networks see ~250 pixels around each
/// one: tiles of a small budget would recompute most of every window (the
/// seed network needs ~3 KB per LR pixel by [`bytes_per_pixel`], measured
/// ~1.5 KB, so a 960x960 image fits 2.7 GB in one pass).
fn quarter_within_limits(bytes: u64) -> u64 {
    (bytes / 4).clamp(256 << 20, 16 << 30)
}

/// Memory available to a new allocation now (`MemAvailable` of
/// `/proc/meminfo`), when the system says.
pub fn available_memory() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb.saturating_mul(1024))
}

fn size_multiple(arch: &Arch) -> usize {
    if arch.genes.iter().any(|g| g.kind == BlockKind::C) {
        2
    } else {
        1
    }
}

fn round_up(v: usize, m: usize) -> usize {
    v.div_ceil(m) * m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::GeneList;

    fn arch(genes: &[&str], scale: usize) -> Arch {
        let genes: Vec<String> = genes.iter().map(|s| s.to_string()).collect();
        Arch {
            genes: GeneList::parse_args(&genes).unwrap(),
            g0: 8,
            scale,
            bias: true,
        }
    }

    #[test]
    fn tiles_cover_the_padded_image_once_on_even_offsets() {
        let a = arch(&["C_2_8_8"], 2);
        let plan = TilePlan::with_core(&a, 7);
        assert_eq!(plan.multiple, 2);
        assert_eq!(plan.core, 8);
        assert_eq!(plan.margin % 2, 0);
        let (h, w) = (37, 23);
        let mut covered = vec![0u8; 38 * 24];
        for t in plan.tiles(h, w) {
            assert_eq!(t.window.y % 2, 0);
            assert_eq!(t.window.h % 2, 0);
            assert!(t.window.y <= t.core.y && t.core.y + t.core.h <= t.window.y + t.window.h);
            for y in t.core.y..t.core.y + t.core.h {
                for x in t.core.x..t.core.x + t.core.w {
                    covered[y * 24 + x] += 1;
                }
            }
        }
        assert!(covered.iter().all(|&c| c == 1));
    }

    #[test]
    fn a_budget_too_small_for_one_tile_is_an_error() {
        let a = arch(&["G_4_16_24", "C_4_16_16"], 4);
        let err = TilePlan::for_image(&a, 1 << 16, 500, 500)
            .unwrap_err()
            .to_string();
        assert!(err.contains("too small for this network"), "{err}");
        let plan = TilePlan::for_image(&a, 256 << 20, 2000, 2000).unwrap();
        let window = (plan.core + 2 * plan.margin) as u64;
        assert!(window * window * bytes_per_pixel(&a) as u64 <= 256 << 20);
        assert!(plan.tiles(2000, 2000).len() > 1);
    }

    #[test]
    fn an_image_that_fits_runs_in_one_pass_and_windows_never_exceed_it() {
        let a = arch(&["G_4_16_24", "C_4_16_16"], 2);
        let bpp = bytes_per_pixel(&a) as u64;
        // Exactly the whole (padded) image's bytes: one tile, window = image.
        let plan = TilePlan::for_image(&a, 40 * 30 * bpp, 30, 40).unwrap();
        let tiles = plan.tiles(30, 40);
        assert_eq!(tiles.len(), 1);
        assert_eq!((tiles[0].window.h, tiles[0].window.w), (30, 40));
        // A larger image with half its whole-pass bytes: several tiles, none
        // with a window beyond the image or the budget.
        let (h, w) = (300, 400);
        let budget = (h * w) as u64 * bpp / 2;
        let plan = TilePlan::for_image(&a, budget, h, w).unwrap();
        let tiles = plan.tiles(h, w);
        assert!(tiles.len() > 1);
        for t in &tiles {
            assert!(t.window.h <= h && t.window.w <= w);
            assert!((t.window.h * t.window.w) as u64 * bpp <= budget);
        }
        // A small image whose every window is the whole image: no tiling
        // can help, and the error names what one pass needs.
        let err = TilePlan::for_image(&a, 40 * 30 * bpp / 2, 30, 40)
            .unwrap_err()
            .to_string();
        assert!(err.contains("one tile needs at least"), "{err}");
    }
}
