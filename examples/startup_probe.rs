//! Where start-up time goes before the first training step: data load, device, kernels,
//! engine (autotune included). `cargo run --release --example startup_probe -- DIR`.

use std::time::Instant;

use wgtrain::gpu::autotune::MatmulChoice;
use wgtrain::gpu::{Gpu, GpuOptions, Kernels};
use wgtrain::{Device, RunConfig};

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data/mnist".into());
    let t = Instant::now();
    let m = wgtrain::data::load_dir(std::path::Path::new(&dir))?;
    println!("data load      {:7.3} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let gpu = Gpu::new(&GpuOptions::default())?;
    println!("device         {:7.3} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let k = Kernels::new(&gpu)?;
    println!("kernels        {:7.3} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let device = Device::Gpu {
        gpu: &gpu,
        kernels: &k,
        matmul: MatmulChoice::Auto,
        fusions: wgtrain::gpu::Fusions::ALL,
    };
    let mut engine = wgtrain::open(device, &[RunConfig::default()], (&m).into())?;
    println!("engine+tuning  {:7.3} s", t.elapsed().as_secs_f64());
    if std::env::args().any(|a| a == "--epochs") {
        use wgtrain::engine::EvalSet;
        use wgtrain::step::{MEMBER_FIRST, MemberStep};
        let order: Vec<u32> = (0..m.train.len() as u32).collect();
        let stop = std::sync::atomic::AtomicBool::new(false);
        for e in 0..3 {
            let t = Instant::now();
            let steps = wgtrain::train::step_records(order.len(), 64);
            // The one member at lr 0.1, each epoch's step 0 flagged first (timing only).
            let table: Vec<MemberStep> = (0..steps.len())
                .map(|s| MemberStep {
                    lr: 0.1,
                    flags: if s == 0 { MEMBER_FIRST } else { 0 },
                    scale: 1.0,
                })
                .collect();
            engine.train_epoch(&order, &steps, &table, &mut |_| {}, &stop)?;
            let train_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            engine.evaluate(EvalSet::Test)?;
            println!(
                "epoch {e}: train {train_s:.3} s, eval {:.3} s",
                t.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
