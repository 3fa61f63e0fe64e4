//! Stable resources: 20 epochs create no GPU buffer or bind group after the first, and the
//! process's resident memory stays flat. Measured in a child process that runs this test
//! alone (`common::run_alone`), so that no other test shares the process while it measures.

use crate::common;

use common::{On, gpu, mnist};
use wgtrain::RunConfig;
use wgtrain::engine::EvalSet;
use wgtrain::optim::SgdConfig;
use wgtrain::schedule::{LrSchedule, Schedule};
use wgtrain::train::Trainer;

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4
}

/// 20 epochs with flat resources: no GPU buffer or bind group is created after the first
/// epoch, and the process's resident memory does not grow.
#[test]
fn twenty_epochs_create_no_gpu_objects_after_the_first() {
    if !common::alone() {
        return common::run_alone("resources::twenty_epochs_create_no_gpu_objects_after_the_first");
    }
    let train_set = mnist().train.head(1000);
    let test = mnist().test.head(300);
    let cfg = RunConfig {
        hidden: vec![32],
        epochs: 20,
        batch_size: 100,
        schedule: LrSchedule::new(0.05, Schedule::Constant),
        // Momentum and bias exclusion exercise every branch and loop of sgd_update.
        sgd: SgdConfig {
            momentum: 0.9,
            decay_bias: false,
            ..SgdConfig::default()
        },
        seed: 1,
        ..RunConfig::default()
    };
    let data = common::data(&train_set, &test);
    let mut engine = common::engine(On::default_gpu(), &cfg, data).unwrap();
    let mut counts = vec![];
    let mut rss = vec![];
    {
        let mut trainer = Trainer::new(&mut *engine).unwrap();
        for _ in 0..20 {
            let outcome = trainer.run_epoch(&mut |_| {}).unwrap().remove(0);
            outcome.into_report().unwrap();
            let c = &gpu().0.counters;
            counts.push((
                c.buffers.load(std::sync::atomic::Ordering::Relaxed),
                c.bind_groups.load(std::sync::atomic::Ordering::Relaxed),
            ));
            rss.push(rss_kib());
        }
    }
    // This process runs this one test (run_alone), so nothing else creates objects or
    // memory meanwhile.
    assert_eq!(
        counts[0], counts[19],
        "buffers and bind groups created after the first epoch: {counts:?}"
    );
    assert!(
        rss[19] <= rss[1] + 16 * 1024,
        "RSS grew from {} KiB to {} KiB over 18 epochs: {rss:?}",
        rss[1],
        rss[19]
    );
    let eval = engine.evaluate(EvalSet::Test).unwrap()[0];
    assert!(eval.accuracy > 0.8, "accuracy {}", eval.accuracy);
}
