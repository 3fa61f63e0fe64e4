//! # wgtrain
//!
//! A neural-network training engine whose kernels are WGSL compute shaders run through
//! wgpu: it trains MLPs on any Vulkan, Metal or DX12 GPU, and headless on a software
//! adapter (Mesa lavapipe). Every kernel has a plain-Rust reference in [`cpu`], which the
//! tests hold the GPU to.
//!
//! Dimension letters, used the same way in WGSL, Rust and docs: `B` minibatch size,
//! `I` in features, `O` out features, `H` hidden units, `C` classes, `N` dataset samples,
//! `P` parameters; a matmul is `C[M, N] = A[M, K] · B[K, N]`. Matrices are row-major;
//! weights use PyTorch's `nn.Linear` layout (`weight [O, I]`, `bias [O]`).
//!
//! A run is a population of K >= 1 members that share the minibatch stream (a single run
//! is K = 1): one [`engine::Engine`] trait, one [`train::Trainer`], one engine per device
//! ([`open`]).
//!
//! ```no_run
//! use wgtrain::{GpuDevice, RunConfig, data, train::Trainer};
//! # fn main() -> Result<(), wgtrain::Error> {
//! let mnist = data::load_or_download(None, true, true)?;
//! let cfg = RunConfig::builder().epochs(1).lr(0.1).build()?;
//! let gpu = GpuDevice::open()?; // or wgtrain::Device::Cpu
//! let mut engine = wgtrain::open(gpu.device(), &[cfg], (&mnist).into())?;
//! for report in Trainer::new(&mut *engine)?.fit_single(&mut |r| { println!("{r}"); Ok(()) })? {
//!     assert!(report.test_accuracy > 0.9);
//! }
//! # Ok(()) }
//! ```
//!
//! ## Data
//!
//! [`data::load_dir`] reads any directory of MNIST-named IDX files; [`data::LoadOptions`]
//! picks a named dataset ([`data::DatasetName`]: MNIST, Fashion-MNIST, KMNIST, EMNIST
//! balanced / letters / digits, QMNIST, as torchvision defines them) and the class count
//! `C`; [`data::download_dataset`] fetches and checks one. Data of your own needs no file:
//! a [`data::Dataset`] is the pixels `[N, rows*cols]` (u8), the labels `[N]` and the image
//! size (see `examples/custom_dataset.rs`).
//!
//! ## Examples
//!
//! In the repository's `examples/` folder; each Rust one runs with
//! `cargo run --release --example NAME`:
//! - `examples/train_mnist.rs`: one epoch of MNIST through the public API in about 30
//!   lines (`RunConfig`, `GpuDevice`, `wgtrain::open`, `Trainer`); takes the MNIST
//!   directory, runs on the GPU if one opens, else (or with `--cpu`) on the CPU.
//! - `examples/custom_dataset.rs`: trains on in-memory data built in code (three classes of 8x8 strokes), on the CPU
//!   or with `--gpu`; no IDX files.
//! - `examples/startup_probe.rs`: where start-up time goes (data load, device, kernels,
//!   engine with autotune) before the first step; takes the MNIST directory.
//! - `examples/matmul_probe.rs`: GFLOP/s of every matmul variant on the MNIST training
//!   shapes on the first adapter.
//! - `examples/cpu_population_probe.rs`: times the CPU engine's layer-0 products for a
//!   population of K members each way it could compute them (one wide SGEMM, K SGEMMs in
//!   turn, K in parallel), interleaved in rounds; takes K, the batch size and the rounds.
//! - `examples/optuna_sweep.py`: hyperparameter search with Optuna through the `wgtrain`
//!   Python package (`python/`: `pip install ./python optuna`; run with `python3`): batched
//!   trials, K at a time as one population, pruned per epoch, over an RDB storage.

pub mod atomic;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod cpu_engine;
pub mod data;
pub mod device;
pub mod engine;
pub mod error;
mod figure;
pub mod gpu;
pub mod json_float;
pub mod jsonl;
pub mod lock;
pub mod member_groups;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod output;
pub mod roofline;
pub mod schedule;
pub mod state_file;
pub mod step;
pub mod tensorboard;
pub mod train;
pub mod tune;

pub use config::{Precision, RunConfig};
pub use device::{Device, GpuDevice, open};
pub use error::{Error, Result};
