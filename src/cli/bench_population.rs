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
    /// Dispatches per step on the GPU path; `None` on the CPU path, which has stages, not
    /// dispatches (`-` in the table, `null` in JSON, as in the single-run rows).
    pub dispatches_per_step: Option<usize>,
    /// Device memory each member adds ([`PopulationSetup::member_bytes`]), bytes.
    pub bytes_per_member: u64,
}

/// Members past this many repeat the learning rates and weight decays of the first ones.
const DISTINCT_SETTINGS: usize = 32;

/// K configurations that differ in learning rate (0.01 · 1.1^m, 0.01 to 0.19 for m < 32:
/// none diverges, so every member trains every step), weight decay (1e-4 · (1 + m)) and
/// initialisation (seed m + 1), as a sweep's members do. Member m ≥ 32 repeats member
/// m mod 32's settings with its own initialisation: at K = 256, 0.01 · 1.1^m would reach
/// 3.6e8 and most members would diverge and be frozen, timing a population that no
/// longer trains.
fn member_configs(base: &RunConfig, k: usize) -> Vec<RunConfig> {
    (0..k)
        .map(|m| {
            let s = m % DISTINCT_SETTINGS;
            let mut c = base.clone();
            c.schedule.base_lr = 0.01 * 1.1f64.powi(s as i32);
            c.sgd.weight_decay = 1e-4 * (1.0 + s as f64);
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
        dispatches_per_step: matches!(device, Device::Gpu { .. })
            .then(|| pop.dispatches_per_step()),
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
        let dispatches = r
            .dispatches_per_step
            .map_or_else(|| "-".to_string(), |d| d.to_string());
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
            dispatches,
            r.bytes_per_member as f64 / (1024.0 * 1024.0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bench --population 256` gave members 33 and up learning rates from 0.21 to 3.6e8
    /// (0.01 · 1.1^m), so most of the population diverged and was frozen before the timed
    /// epoch. Every member now trains at 0.01 to 0.19; K <= 32 keeps its old settings.
    #[test]
    fn regression_a_population_of_256_has_no_learning_rate_above_0_2() {
        let base = RunConfig::default();
        let configs = member_configs(&base, 256);
        assert_eq!(configs.len(), 256);
        for (m, c) in configs.iter().enumerate() {
            let s = (m % 32) as i32;
            assert_eq!(c.schedule.base_lr, 0.01 * 1.1f64.powi(s), "member {m}");
            assert!(
                c.schedule.base_lr < 0.2,
                "member {m}: lr {}",
                c.schedule.base_lr
            );
            assert_eq!(c.sgd.weight_decay, 1e-4 * f64::from(1 + s), "member {m}");
            assert_eq!(c.init_seed, Some(m as u64 + 1), "member {m}");
        }
        // 1.1^31 = 19.19...: the largest rate is 0.1919, the 32nd member's, as before.
        assert!((configs[31].schedule.base_lr - 0.191943).abs() < 1e-6);
        assert_eq!(configs[32].schedule.base_lr, 0.01);
    }
}
