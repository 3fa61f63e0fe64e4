//! One epoch of MNIST through the public API: load, configure, open an engine, train,
//! print the test accuracy. On the first GPU adapter if one opens, else (or with `--cpu`)
//! on the CPU engine.
//!
//! ```sh
//! cargo run --release --example train_mnist -- /path/to/mnist          # GPU, else CPU
//! cargo run --release --example train_mnist -- /path/to/mnist --cpu    # CPU
//! ```

use wgtrain::device::GpuDevice;
use wgtrain::train::Trainer;
use wgtrain::{Device, RunConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.iter().find(|a| !a.starts_with("--")) else {
        anyhow::bail!("usage: train_mnist MNIST_DIR [--cpu]");
    };
    let mnist = wgtrain::data::load_dir(std::path::Path::new(dir))?;
    let cfg = RunConfig::builder().epochs(1).lr(0.1).build()?;
    // The GPU (adapter, kernels, autotuned matmuls, every fusion), unless `--cpu` or none
    // opens.
    let gpu = match args.iter().any(|a| a == "--cpu") {
        true => None,
        false => GpuDevice::open()
            .inspect_err(|e| eprintln!("no GPU ({e}): training on the CPU"))
            .ok(),
    };
    let device = gpu.as_ref().map_or(Device::Cpu, GpuDevice::device);
    let mut engine = wgtrain::open(device, &[cfg], (&mnist).into())?;
    println!("{}", engine.describe());
    let history = Trainer::new(engine.as_mut())?.fit_single(&mut |report| {
        println!("{report}");
        Ok(())
    })?;
    println!("test accuracy {:.2}%", 100.0 * history[0].test_accuracy);
    Ok(())
}
