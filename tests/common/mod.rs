//! Shared test fixtures: one GPU device per test binary, the one way tests open an engine,
//! the real MNIST files, the step record of a kernel launch, seeded random inputs, and the
//! tolerance rule.
#![allow(dead_code)]

use std::sync::OnceLock;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgtrain::data::{Dataset, Mnist};
use wgtrain::engine::{Engine, RunData, StepSums};
use wgtrain::gpu::autotune::MatmulChoice;
use wgtrain::gpu::engine::GpuEngine;
use wgtrain::gpu::kernels::matmul::gather as matmul_gather;
use wgtrain::gpu::{Fusions, Gpu, GpuOptions, Kernels, MatmulVariant, StepRecord};
use wgtrain::step::{MEMBER_FIRST, MemberStep};
use wgtrain::{Device, RunConfig};

/// Set (to anything) by the 32-lane leg of `scripts/test.sh`: the shared device of
/// [`gpu`] reports itself a discrete GPU, so that on lavapipe autotuning times a GPU's
/// candidate kernels and [`On::default_gpu`] takes a GPU's default, as on a real GPU.
pub const AS_DISCRETE_GPU: &str = "WGTRAIN_TEST_AS_DISCRETE_GPU";

/// The device and kernels, created once per test binary. A missing adapter fails the
/// test: CI installs lavapipe, and a GPU test must never pass by skipping.
pub fn gpu() -> &'static (Gpu, Kernels) {
    static GPU: OnceLock<(Gpu, Kernels)> = OnceLock::new();
    GPU.get_or_init(|| {
        let mut gpu = Gpu::new(&GpuOptions::default()).unwrap_or_else(|e| {
            panic!("GPU tests need an adapter ({e}). On headless Linux: apt-get install -y mesa-vulkan-drivers libvulkan1")
        });
        if std::env::var_os(AS_DISCRETE_GPU).is_some() {
            gpu.info.device_type = wgpu::DeviceType::DiscreteGpu;
        }
        let kernels = Kernels::new(&gpu).expect("kernels build");
        (gpu, kernels)
    })
}

/// The `wgtrain` binary the CLI tests run: `$WGTRAIN_BIN` when set (the device kit's
/// stripped copy on a machine without cargo, `scripts/gpu-check.sh`), else the one cargo
/// built for this test run.
pub fn wgtrain_bin() -> std::path::PathBuf {
    std::env::var_os("WGTRAIN_BIN").map_or_else(
        || env!("CARGO_BIN_EXE_wgtrain").into(),
        std::path::PathBuf::from,
    )
}

/// Set in the child process of [`run_alone`].
pub const ALONE: &str = "WGTRAIN_TEST_ALONE";

/// Whether this process is [`run_alone`]'s child, which runs the one test.
pub fn alone() -> bool {
    std::env::var_os(ALONE).is_some()
}

/// Runs the test `name` (its full path, e.g. `resources::twenty_epochs`) in a child
/// process of this test executable that runs nothing else, for a test that measures the
/// whole process (its memory, its device's object counters) while the other tests of
/// this target run in parallel threads. The test calls this unless [`alone`], and does
/// its work when [`alone`]. Fails unless the child ran exactly that test and it passed.
#[track_caller]
pub fn run_alone(name: &str) {
    let exe = std::env::current_exe().expect("the test executable's path");
    let out = std::process::Command::new(exe)
        .args([name, "--exact", "--test-threads", "1", "--nocapture"])
        .env(ALONE, "1")
        .output()
        .expect("the test executable runs again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} alone in a child process: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A second device, opened with `SHADER_F16` (lavapipe has it), and its kernels, once per
/// test binary: the f16 tests' (`--precision f16`).
pub fn gpu16() -> &'static (Gpu, Kernels) {
    static GPU: OnceLock<(Gpu, Kernels)> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = Gpu::new(&GpuOptions {
            shader_f16: true,
            ..GpuOptions::default()
        })
        .expect("an adapter (apt-get install -y mesa-vulkan-drivers libvulkan1)");
        assert!(
            gpu.features.contains(wgpu::Features::SHADER_F16),
            "these tests need an adapter with SHADER_F16 (lavapipe has it); {} lacks it",
            gpu.info.name
        );
        let kernels = Kernels::new(&gpu).expect("kernels build");
        (gpu, kernels)
    })
}

/// Where a test opens its engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum On {
    /// The CPU engine.
    Cpu,
    /// The GPU engine on [`gpu`], its matmul kernels chosen as given.
    Gpu(MatmulChoice),
}

impl On {
    /// The GPU engine with the adapter's default matmul variant.
    pub fn default_gpu() -> On {
        On::Gpu(MatmulVariant::default_for(&gpu().0).into())
    }

    /// The GPU engine with every matmul launch on `variant`.
    pub fn gpu_variant(variant: MatmulVariant) -> On {
        On::Gpu(variant.into())
    }

    /// `"gpu"` or `"cpu"`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            On::Cpu => "cpu",
            On::Gpu(_) => "gpu",
        }
    }

    /// The device to open an engine on.
    pub fn device(self) -> Device<'static> {
        match self {
            On::Cpu => Device::Cpu,
            On::Gpu(matmul) => {
                let (gpu, kernels) = gpu();
                Device::Gpu {
                    gpu,
                    kernels,
                    matmul,
                    fusions: Fusions::ALL,
                }
            }
        }
    }
}

/// A run's data: `train`, `test` and 10 classes (MNIST's, and every synthetic set's here
/// unless a test says otherwise).
pub fn data<'a>(train: &'a Dataset, test: &'a Dataset) -> RunData<'a> {
    RunData {
        train,
        test,
        classes: 10,
        micro_batch: None,
    }
}

/// Opens the engine `on` for the single run `cfg` (one member) on `data`
/// ([`wgtrain::open`]), its parameters initialised from `cfg.init_seed()`.
pub fn engine<'a>(
    on: On,
    cfg: &RunConfig,
    data: RunData<'a>,
) -> wgtrain::Result<Box<dyn Engine + 'a>> {
    wgtrain::open(on.device(), std::slice::from_ref(cfg), data)
}

/// Opens the engine `on` with one member per configuration of `configs` on `data`.
pub fn population<'a>(
    on: On,
    configs: &[RunConfig],
    data: RunData<'a>,
) -> wgtrain::Result<Box<dyn Engine + 'a>> {
    wgtrain::open(on.device(), configs, data)
}

/// The GPU engine of the single run `cfg` as its concrete type, for what only it offers
/// (profiling).
pub fn gpu_engine(
    matmul: MatmulChoice,
    cfg: &RunConfig,
    data: RunData<'_>,
) -> wgtrain::Result<GpuEngine<'static>> {
    let (gpu, kernels) = gpu();
    GpuEngine::new(
        gpu,
        kernels,
        matmul,
        Fusions::ALL,
        std::slice::from_ref(cfg),
        data,
    )
}

/// The member-step table `[steps, K]` of an epoch in which every one of `k` members steps
/// at learning rate `lr`, step 0 flagged as the run's first when `first`.
pub fn member_steps(steps: usize, k: usize, lr: f64, first: bool) -> Vec<MemberStep> {
    (0..steps * k)
        .map(|i| MemberStep {
            lr: lr as f32,
            flags: if first && i < k { MEMBER_FIRST } else { 0 },
            scale: 1.0,
        })
        .collect()
}

/// One epoch of `engine` over `order` in the minibatches `steps`, every member at `lr`
/// (step 0 the run's first when `first`); every member's per-step sums.
pub fn train_epoch(
    engine: &mut dyn Engine,
    order: &[u32],
    steps: &[StepRecord],
    lr: f64,
    first: bool,
) -> wgtrain::Result<Vec<Vec<StepSums>>> {
    let table = member_steps(steps.len(), engine.members(), lr, first);
    let stop = std::sync::atomic::AtomicBool::new(false);
    engine.train_epoch(order, steps, &table, &mut |_| {}, &stop)
}

/// The real MNIST files from `$MNIST_DIR` (loaded once).
pub fn mnist() -> &'static Mnist {
    static DATA: OnceLock<Mnist> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = std::env::var("MNIST_DIR").unwrap_or_else(|_| {
            panic!("set MNIST_DIR to the directory with the four MNIST files, e.g. MNIST_DIR=../shared/data/mnist cargo test --release")
        });
        wgtrain::data::load_dir(std::path::Path::new(&dir)).expect("MNIST loads")
    })
}

/// The step record of one kernel run on a minibatch of `batch` rows (the kernel parity
/// tests' launches); every other field at its default.
pub fn record(batch: usize) -> StepRecord {
    StepRecord {
        batch: batch as u32,
        ..Default::default()
    }
}

/// Seeded uniform values in [lo, hi).
pub fn uniform(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Seeded values in [-1, 1) with a few large outliers (±100), the inputs that expose
/// accumulation and overflow bugs.
pub fn with_outliers(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            if rng.random_range(0..50) == 0 {
                rng.random_range(-100.0f32..100.0)
            } else {
                rng.random_range(-1.0f32..1.0)
            }
        })
        .collect()
}

/// Seeded integers in [0, hi).
pub fn integers(seed: u64, n: usize, hi: u32) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0..hi)).collect()
}

/// The one tolerance rule: `|got - want| <= atol + rtol * |want|`, element by element.
/// On failure, reports the first bad index, both values, and the max error over all.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let mut first_bad = None;
    let mut max_err = 0.0f32;
    let mut max_at = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let ok = if w.is_nan() {
            g.is_nan()
        } else {
            err <= atol + rtol * w.abs()
        };
        if !ok && first_bad.is_none() {
            first_bad = Some(i);
        }
        if err > max_err || err.is_nan() {
            max_err = err;
            max_at = i;
        }
    }
    if let Some(i) = first_bad {
        panic!(
            "{what}: element {i}: gpu {} vs reference {} (|diff| {}); max error {max_err} at {max_at} (gpu {}, ref {}); atol {atol} rtol {rtol}",
            got[i],
            want[i],
            (got[i] - want[i]).abs(),
            got[max_at],
            want[max_at]
        );
    }
}

/// Whether the gather fusion applies to layer 0 (`inputs` → `outputs`, the `last` layer or
/// not) at minibatches of `batch` on `variant` ([`matmul_gather::supports`]): then a
/// training step has one dispatch fewer (no `gather_normalize`).
pub fn gather_fuses(
    variant: MatmulVariant,
    inputs: usize,
    outputs: usize,
    batch: usize,
    last: bool,
) -> bool {
    use wgtrain::gpu::kernels::matmul::{BatchDim, Epilogue, MatmulSpec};
    let spec = MatmulSpec {
        m: batch,
        n: outputs,
        k: inputs,
        trans_a: false,
        trans_b: true,
        trans_c: false,
        epilogue: if last {
            Epilogue::Bias
        } else {
            Epilogue::BiasRelu
        },
        batch_dim: BatchDim::M,
    };
    matmul_gather::supports(&gpu().0, variant, &spec).is_ok()
}

/// The CPU reference of the matmul `s` (`cpu::matmul`, then the epilogue), C
/// stored as `s` says (`[N, M]` with `trans_c`). The SGD epilogue has its own reference
/// (tests/gpu/fusion_update.rs).
pub fn matmul_reference(
    a: &[f32],
    b: &[f32],
    bias: &[f32],
    mask: &[f32],
    s: &wgtrain::gpu::kernels::matmul::MatmulSpec,
) -> Vec<f32> {
    use wgtrain::cpu;
    use wgtrain::gpu::kernels::matmul::Epilogue;
    let mut c = cpu::matmul(a, b, s.m, s.n, s.k, s.trans_a, s.trans_b);
    match s.epilogue {
        Epilogue::None => {}
        Epilogue::Bias => cpu::bias_relu_forward(&mut c, bias, s.n, false),
        Epilogue::BiasRelu => cpu::bias_relu_forward(&mut c, bias, s.n, true),
        Epilogue::ReluMask => c = cpu::relu_backward(&c, mask),
        Epilogue::SgdUpdate => unreachable!("tested in fusion_update.rs"),
    }
    if s.trans_c {
        return (0..s.n * s.m)
            .map(|i| c[(i % s.m) * s.n + i / s.m])
            .collect();
    }
    c
}
