//! `wgtrain bench --population K`: one epoch of a K-member population against K
//! single-model epochs of the same configurations, side by side in one run, on the GPU and
//! CPU paths. Reports samples/s per member, the speedup, dispatches per step and the
//! device memory each member adds.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use wgtrain::engine::{Engine, RunData};
use wgtrain::population::{MEMBER_FIRST, MemberStep, PopulationEngine, PopulationSetup};
use wgtrain::{Device, RunConfig, open, open_population, train};

/// One row of the population comparison.
#[derive(Debug, Serialize)]
pub struct PopulationRow {
    pub path: &'static str,
    pub batch_size: usize,
    pub members: usize,
    pub samples: usize,
    /// One warm epoch of the whole population, s.
    pub population_epoch_seconds: f64,
    /// K warm single-model epochs, one after the other, s.
    pub sequential_epoch_seconds: f64,
    /// `sequential / population`.
    pub speedup: f64,
    /// Training samples per second of each member in the population.
    pub samples_per_second_per_member: f64,
    pub dispatches_per_step: usize,
    /// Device memory each member adds ([`PopulationSetup::member_bytes`]), bytes.
    pub bytes_per_member: u64,
}

/// K configurations that differ in learning rate, weight decay and initialisation, as a
/// sweep's members do.
fn member_configs(base: &RunConfig, k: usize) -> Vec<RunConfig> {
    (0..k)
        .map(|m| {
            let mut c = base.clone();
            c.schedule.base_lr = 0.01 * 1.25f64.powi(m as i32);
            c.sgd.weight_decay = 1e-4 * (1.0 + m as f64);
            c.init_seed = Some(m as u64 + 1);
            c
        })
        .collect()
}

/// Times one warm population epoch (after one untimed epoch).
fn time_population_epoch(pop: &mut dyn PopulationEngine, n: usize, batch: usize) -> Result<f64> {
    let order = train::epoch_order(&(0..n as u32).collect::<Vec<_>>(), 1, 0);
    let steps = train::step_records(n, batch, 1, |_| 0.0);
    let k = pop.members();
    let lrs: Vec<f32> = pop
        .setup()
        .members
        .iter()
        .map(|m| m.config.schedule.base_lr as f32)
        .collect();
    let table = |first: bool| -> Vec<MemberStep> {
        (0..steps.len() * k)
            .map(|i| MemberStep {
                lr: lrs[i % k],
                flags: if first && i < k { MEMBER_FIRST } else { 0 },
            })
            .collect()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    pop.train_epoch_until(&order, &steps, &table(true), &mut |_| {}, &stop)?;
    let start = Instant::now();
    pop.train_epoch_until(&order, &steps, &table(false), &mut |_| {}, &stop)?;
    Ok(start.elapsed().as_secs_f64())
}

/// Times `configs` as one population and one after the other on `device`.
pub fn compare(
    path: &'static str,
    device: Device<'_>,
    configs: &[RunConfig],
    data: RunData<'_>,
    n: usize,
    time_single: &dyn Fn(&mut dyn Engine) -> Result<f64>,
) -> Result<PopulationRow> {
    let batch = configs[0].batch_size;
    let mut sequential = 0.0;
    for cfg in configs {
        let mut engine = open(device, cfg, data)?;
        sequential += time_single(engine.as_mut())?;
    }
    let mut pop = open_population(device, configs, data)?;
    let secs = time_population_epoch(pop.as_mut(), n, batch)?;
    Ok(PopulationRow {
        path,
        batch_size: batch,
        members: configs.len(),
        samples: n,
        population_epoch_seconds: secs,
        sequential_epoch_seconds: sequential,
        speedup: sequential / secs,
        samples_per_second_per_member: n as f64 / secs,
        dispatches_per_step: pop.dispatches_per_step(),
        bytes_per_member: PopulationSetup::new(configs, data)?.member_bytes(),
    })
}

/// The population rows of `wgtrain bench --population K`.
pub fn population_configs(base: &RunConfig, k: usize) -> Vec<RunConfig> {
    member_configs(base, k)
}

/// Prints the population rows as a table.
pub fn print_rows(rows: &[PopulationRow]) {
    println!(
        "{:<5} {:>6} {:>3} {:>14} {:>14} {:>8} {:>18} {:>11} {:>10}",
        "path",
        "batch",
        "K",
        "population s",
        "K x single s",
        "speedup",
        "samples/s/member",
        "dispatches",
        "MiB/member"
    );
    for r in rows {
        println!(
            "{:<5} {:>6} {:>3} {:>14.3} {:>14.3} {:>7.2}x {:>18.0} {:>11} {:>10.2}",
            r.path,
            r.batch_size,
            r.members,
            r.population_epoch_seconds,
            r.sequential_epoch_seconds,
            r.speedup,
            r.samples_per_second_per_member,
            r.dispatches_per_step,
            r.bytes_per_member as f64 / (1024.0 * 1024.0)
        );
    }
}
