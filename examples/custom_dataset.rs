//! Training on data you build in memory: no IDX files, no download.
//!
//! The data is three classes of 8x8 grey images, seeded and noisy: a horizontal bar
//! (class 0), a vertical bar (class 1) and a diagonal (class 2), at random positions. A
//! [`Dataset`] is just the pixels (`[N, rows*cols]` bytes, row-major, 0..=255), the labels
//! (`[N]`, each below the class count `C`) and the image size; the model is
//! `RunConfig::hidden` between the `I = rows*cols` inputs and the `C` outputs, and
//! [`RunData`] says how many classes there are. The CPU engine runs anywhere; `--gpu` uses
//! the WGSL kernels on the first adapter instead.
//!
//! ```sh
//! cargo run --release --example custom_dataset            # CPU
//! cargo run --release --example custom_dataset -- --gpu   # GPU (lavapipe is enough)
//! cargo test --release --example custom_dataset           # its test: >= 90% test accuracy
//! ```

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgtrain::data::Dataset;
use wgtrain::engine::RunData;
use wgtrain::train::{EpochReport, Trainer};
use wgtrain::{Device, GpuDevice, RunConfig};

/// Image side in pixels.
const SIDE: usize = 8;
/// Class count C: horizontal bar, vertical bar, diagonal.
const CLASSES: usize = 3;

/// `n` seeded samples: label `i % 3`, a bright stroke of that shape on dim noise.
fn make_split(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * SIDE * SIDE);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % CLASSES) as u32;
        let at = rng.random_range(0..SIDE);
        for r in 0..SIDE {
            for c in 0..SIDE {
                let on = match label {
                    0 => r == at,
                    1 => c == at,
                    _ => r == c,
                };
                let noise: u8 = rng.random_range(0..60);
                images.push(if on { 255 - noise } else { noise });
            }
        }
        labels.push(label);
    }
    Dataset {
        images,
        labels,
        rows: SIDE,
        cols: SIDE,
    }
}

/// Trains an MLP 64-32-3 for `epochs` and returns the per-epoch reports.
fn run(epochs: usize, use_gpu: bool) -> anyhow::Result<Vec<EpochReport>> {
    let train = make_split(600, 1);
    let test = make_split(150, 2);
    let cfg = RunConfig::builder()
        .hidden(&[32])
        .epochs(epochs)
        .batch_size(32)
        .lr(0.05)
        .momentum(0.9)
        .seed(1)
        .build()?;
    let data = RunData {
        train: &train,
        test: &test,
        classes: CLASSES,
        micro_batch: None,
    };
    // The GPU (adapter, kernels, autotuned matmuls, every fusion) outlives the engine
    // that borrows it.
    let gpu = if use_gpu {
        Some(GpuDevice::open()?)
    } else {
        None
    };
    let device = gpu.as_ref().map_or(Device::Cpu, GpuDevice::device);
    let mut engine = wgtrain::open(device, &[cfg], data)?;
    println!("{}", engine.describe());
    let mut trainer = Trainer::new(&mut *engine)?;
    Ok(trainer.fit_single(&mut |report| {
        println!("{report}");
        Ok(())
    })?)
}

fn main() -> anyhow::Result<()> {
    let use_gpu = std::env::args().any(|a| a == "--gpu");
    let reports = run(5, use_gpu)?;
    let last = reports.last().expect("at least one epoch");
    println!("test accuracy {:.2}%", 100.0 * last.test_accuracy);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-memory data is learnable: 5 epochs on the CPU reach 90% on the test split
    /// (chance is 33%), and the loss falls.
    #[test]
    fn custom_in_memory_dataset_trains() {
        let r = run(5, false).unwrap();
        assert!(r[4].test_accuracy >= 0.9, "{:?}", r[4]);
        assert!(r[4].train_loss < r[0].train_loss, "{r:?}");
    }

    #[test]
    fn splits_are_shaped_as_dataset_says() {
        let d = make_split(7, 3);
        assert_eq!((d.len(), d.features(), d.images.len()), (7, 64, 7 * 64));
        assert_eq!(d.labels, [0, 1, 2, 0, 1, 2, 0]);
    }
}
