//! `wgtrain bench --population K`: one epoch of a K-member population against K
//! single-model epochs of the same configurations, side by side in one run, on the GPU and
//! CPU paths. Reports samples/s per member and member-samples/s (the population's
//! throughput, comparable across K and with `benches/pytorch_population.py`), the speedup,
//! dispatches per step and the device memory each member adds.

use anyhow::Result;
use serde::Serialize;

use wgtrain::engine::{Engine, PopulationSetup, RunData};
use wgtrain::{Device, RunConfig, open};

/// One row of the population comparison.
#[derive(Debug, Serialize)]
pub struct PopulationRow {
    pub path: &'static str,
    pub batch_size: usize,
    pub members: usize,
    pub samples: usize,
    /// Storage precision of the matmul operands: `f32` or `f16`.
    pub precision: &'static str,
    /// One warm epoch of the whole population, s.
    pub population_epoch_seconds: f64,
    /// K warm single-model epochs, one after the other, s.
    pub sequential_epoch_seconds: f64,
    /// `sequential / population`.
    pub speedup: f64,
    /// Training samples per second of each member in the population.
    pub samples_per_second_per_member: f64,
    /// Training samples per second of all members together (K times the above): what the
    /// population gets done, comparable across K.
    pub member_samples_per_second: f64,
    pub dispatches_per_step: usize,
    /// Device memory each member adds ([`PopulationSetup::member_bytes`]), bytes.
    pub bytes_per_member: u64,
}

/// K configurations that differ in learning rate (0.01 to 0.19 for K = 32: none
/// diverges, so every member trains every step), weight decay and initialisation, as a
/// sweep's members do.
fn member_configs(base: &RunConfig, k: usize) -> Vec<RunConfig> {
    (0..k)
        .map(|m| {
            let mut c = base.clone();
            c.schedule.base_lr = 0.01 * 1.1f64.powi(m as i32);
            c.sgd.weight_decay = 1e-4 * (1.0 + m as f64);
            c.init_seed = Some(m as u64 + 1);
            c
        })
        .collect()
}

/// Times `configs` as one population and one after the other on `device`, each a warm
/// epoch timed by `time_epoch`.
pub fn compare(
    path: &'static str,
    device: Device<'_>,
    configs: &[RunConfig],
    data: RunData<'_>,
    n: usize,
    time_epoch: &dyn Fn(&mut dyn Engine) -> Result<f64>,
) -> Result<PopulationRow> {
    let batch = configs[0].batch_size;
    let mut sequential = 0.0;
    for cfg in configs {
        let mut engine = open(device, std::slice::from_ref(cfg), data)?;
        sequential += time_epoch(engine.as_mut())?;
    }
    let mut pop = open(device, configs, data)?;
    let secs = time_epoch(pop.as_mut())?;
    Ok(PopulationRow {
        path,
        batch_size: batch,
        members: configs.len(),
        samples: n,
        precision: configs[0].precision.name(),
        population_epoch_seconds: secs,
        sequential_epoch_seconds: sequential,
        speedup: sequential / secs,
        samples_per_second_per_member: n as f64 / secs,
        member_samples_per_second: (configs.len() * n) as f64 / secs,
        dispatches_per_step: pop.dispatches_per_step(),
        bytes_per_member: PopulationSetup::new(configs, data)?.member_bytes(data.test.len()),
    })
}

/// The population rows of `wgtrain bench --population K`.
pub fn population_configs(base: &RunConfig, k: usize) -> Vec<RunConfig> {
    member_configs(base, k)
}

/// Prints the population rows as a table.
pub fn print_rows(rows: &[PopulationRow]) {
    say!(
        "{:<5} {:>6} {:>3} {:>14} {:>14} {:>8} {:>18} {:>20} {:>11} {:>10}",
        "path",
        "batch",
        "K",
        "population s",
        "K x single s",
        "speedup",
        "samples/s/member",
        "member-samples/s",
        "dispatches",
        "MiB/member"
    );
    for r in rows {
        say!(
            "{:<5} {:>6} {:>3} {:>14.3} {:>14.3} {:>7.2}x {:>18.0} {:>20.0} {:>11} {:>10.2}",
            r.path,
            r.batch_size,
            r.members,
            r.population_epoch_seconds,
            r.sequential_epoch_seconds,
            r.speedup,
            r.samples_per_second_per_member,
            r.member_samples_per_second,
            r.dispatches_per_step,
            r.bytes_per_member as f64 / (1024.0 * 1024.0)
        );
    }
}
