//! Every seed a run derives from its one seed, in one place: SplitMix64
//! steps (Steele, Lea & Flood 2014) of the run seed and an index, so nearby
//! inputs (seed 1 and 2, member 7 and 8) give unrelated streams.
//!
//! The three derivations differ slightly for historical reasons; each is
//! kept as it is so a run or study started before resumes and replays
//! exactly (same seeds, same losses).

/// SplitMix64's increment (the golden ratio in 64 bits).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output mix of one state.
fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A member's training seed (its weights and patch stream), from the run
/// seed and the member id: what a local worker, a Slurm job and the full
/// training of that member all use, so a re-run after a crash trains
/// identically.
pub fn member_seed(run_seed: u64, id: u64) -> u64 {
    finalize(run_seed ^ id.wrapping_mul(GOLDEN))
}

/// The seed every member of a run shares under common random numbers
/// (`nas.trainer.common_random_numbers`): one SplitMix64 step of the run
/// seed, so it is not the seed of any member.
pub fn common_seed(run_seed: u64) -> u64 {
    finalize(run_seed.wrapping_add(GOLDEN))
}

/// A study's seed for one (seed, index) pair (an architecture's training,
/// the architectures' draw): [`member_seed`]'s input advanced by one
/// SplitMix64 step, so a study's streams are not a search's.
pub fn study_seed(seed: u64, index: u64) -> u64 {
    finalize((seed ^ index.wrapping_mul(GOLDEN)).wrapping_add(GOLDEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of the three derivations recorded before they moved here (by
    /// an independent Python transcription of the old code): a changed seed
    /// would change every run's genes and losses.
    #[test]
    fn the_derivations_give_the_recorded_values() {
        let cases = [
            (0, 0, 0x0, 0xe220_a839_7b1d_cdaf, 0xe220_a839_7b1d_cdaf),
            (
                1,
                7,
                0xf14f_2cf8_0208_3fa5,
                0x405d_a438_a39e_8064,
                0x910a_2dec_8902_5cc1,
            ),
            (
                42,
                12,
                0xb5c5_f364_6da0_ccc5,
                0xdac3_cb38_da79_0740,
                0xbdd7_3226_2feb_6e95,
            ),
            (
                u64::MAX,
                3,
                0x8f33_8340_13b3_1f7c,
                0x738b_10af_1713_67ff,
                0xe4d9_7177_1b65_2c20,
            ),
        ];
        for (run, id, member, study, common) in cases {
            assert_eq!(member_seed(run, id), member, "member_seed({run}, {id})");
            assert_eq!(study_seed(run, id), study, "study_seed({run}, {id})");
            assert_eq!(common_seed(run), common, "common_seed({run})");
        }
    }
}
