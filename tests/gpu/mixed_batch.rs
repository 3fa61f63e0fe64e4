//! Members with different minibatch sizes in one population (issue 23). The population
//! steps through the shared sample order in micro-steps of its smallest minibatch B0; a
//! member of minibatch `m · B0` sums its gradient over `m` micro-steps and updates on the
//! last. Since `step::epoch_order` does not depend on the minibatch size, a single run at
//! `m · B0` sees exactly those rows in each minibatch: member and single run differ only in
//! the order the rows of each gradient sum are added.
//!
//! **The bound.** With u = 2^-24 and γ(n) = n·u / (1 - n·u), a sum of n terms in any order
//! is within γ(n)·Σ|terms| of the exact sum, so two orders differ by at most 2γ(n)·Σ|terms|.
//! A weight-gradient element of a minibatch of B rows is Σ_r x_r · d_r, with x a layer's
//! input (normalised pixels, or hidden activations) and d the loss gradient at its output:
//! |dlogits| rows sum to at most 2/B (softmax minus one-hot, over B), and a hidden
//! gradient is at most max|W_out| times that. So Σ|terms| ≤ G = 2 · max(max|x| ·
//! max|W_out|, max|h|, 1) (the 1: a bias's input). Each row's forward and backward values
//! are the same in both (every output element of a product over features is one sum in a
//! fixed order, whatever the row count: the CPU's SGEMM and the GPU kernel the test fixes),
//! and the micro-step scale `B0 / B` and the divisors are powers of two here (exact), so
//! the gradients differ by at most 2γ(B)·G; we allow e = lr · 4γ(B) · G per update, and
//! with momentum μ each error is carried by the momentum buffer with total weight at most
//! 1 / (1 - μ). An error
//! already in the weights is carried into each later update by the step's Jacobian `I -
//! lr·H`, of norm at most 2 while training is stable (lr < 2/‖H‖), so after S updates
//! the weights differ by at most (2^S - 1) · e / (1 - μ). max|W| and max|h| are measured on
//! the single run's start and end weights, doubled for the weights between. A member at
//! the micro-batch is its single run bit for bit.

use crate::common;

use common::On;
use wgtrain::RunConfig;
use wgtrain::cpu;
use wgtrain::data::Dataset;
use wgtrain::engine::{Engine, RunData};
use wgtrain::optim::SgdConfig;
use wgtrain::schedule::{LrSchedule, Schedule};
use wgtrain::train::{EpochReport, Trainer};

/// The first `n` samples of `d`.
fn head(d: &Dataset, n: usize) -> Dataset {
    let f = d.features();
    Dataset {
        images: d.images[..n * f].to_vec(),
        labels: d.labels[..n].to_vec(),
        rows: d.rows,
        cols: d.cols,
    }
}

/// One member per minibatch size of `batches`, each with its own lr and initialisation,
/// momentum `momentum`, weight decay 1e-4; one epoch.
fn configs(batches: &[usize], momentum: f64, hidden: usize, val: f64) -> Vec<RunConfig> {
    batches
        .iter()
        .enumerate()
        .map(|(m, &b)| RunConfig {
            hidden: vec![hidden],
            batch_size: b,
            epochs: 1,
            schedule: LrSchedule::new(0.05 + 0.02 * m as f64, Schedule::Constant),
            sgd: SgdConfig {
                weight_decay: 1e-4,
                momentum,
                ..SgdConfig::default()
            },
            seed: 5,
            init_seed: Some(40 + m as u64),
            validation_split: val,
            ..RunConfig::default()
        })
        .collect()
}

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * f64::from(f32::EPSILON) / 2.0;
    nu / (1.0 - nu)
}

/// The largest |value| of `v`.
fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0.0f64, |m, &x| m.max(f64::from(x.abs())))
}

/// The bound of the module docs for `cfg`'s single run, from its initial and final
/// parameters on the training rows `x` (`n` of them).
fn bound(
    cfg: &RunConfig,
    data: RunData<'_>,
    start: &[f32],
    end: &[f32],
    x: &[f32],
    n: usize,
) -> f64 {
    let spec = cfg.spec(data.train.features(), data.classes).unwrap();
    let layout = spec.layout();
    let out = &layout.layers[1];
    let w_out = 2.0
        * max_abs(&start[out.weight..out.weight + out.inputs * out.outputs]).max(max_abs(
            &end[out.weight..out.weight + out.inputs * out.outputs],
        ));
    let h = [start, end]
        .iter()
        .map(|p| max_abs(&cpu::forward(&layout, p, x, n).inputs[1]))
        .fold(0.0, f64::max)
        * 2.0;
    let g = 2.0 * (max_abs(x) * w_out).max(h).max(1.0);
    let lr = cfg.schedule.base_lr;
    let b = cfg.batch_size;
    let e = lr * 4.0 * gamma(b) * g;
    let updates = n.div_ceil(b) as i32;
    (2f64.powi(updates) - 1.0) * e / (1.0 - cfg.sgd.momentum)
}

/// The normalised inputs of `d`'s samples, in sample order.
fn inputs(cfg: &RunConfig, d: &Dataset) -> Vec<f32> {
    let norm = cfg.normalization;
    d.images
        .iter()
        .map(|&p| (f32::from(p) / 255.0 - norm.mean) / norm.std)
        .collect()
}

fn fit(engine: &mut dyn Engine) -> Vec<Vec<EpochReport>> {
    Trainer::new(engine)
        .unwrap()
        .fit(&mut |_, _| Ok(()))
        .unwrap()
}

/// Trains `batches` as one population and each alone on 240 MNIST samples (micro-steps of
/// 16; a member of 64 has minibatches 64, 64, 64 and a partial 48, as its single run):
/// the member at the micro-batch equals its run bit for bit, the others are within the
/// bound of the module docs.
fn assert_mixed_members_match_single_runs(on: On) {
    let mnist = common::mnist();
    let n = 240;
    let (train, test) = (head(&mnist.train, n), head(&mnist.test, 200));
    let data = common::data(&train, &test);
    let configs = configs(&[32, 16, 64], 0.0, 32, 0.0);
    let mut pop = common::population(on, &configs, data).unwrap();
    assert_eq!(pop.setup().micro_batch(), 16);
    let reports = fit(pop.as_mut());
    for (m, cfg) in configs.iter().enumerate() {
        let mut single = common::engine(on, cfg, data).unwrap();
        let start = single.params(0).unwrap();
        let want = fit(single.as_mut()).remove(0);
        let (got, end) = (pop.params(m).unwrap(), single.params(0).unwrap());
        let what = format!("{} member {m} (batch {})", on.name(), cfg.batch_size);
        if cfg.batch_size == 16 {
            assert_eq!(got, end, "{what}: the micro-batch member is its single run");
            let (g, w) = (&reports[m][0], &want[0]);
            assert_eq!(
                (g.train_loss, g.train_accuracy, g.test_loss, g.test_accuracy),
                (w.train_loss, w.train_accuracy, w.test_loss, w.test_accuracy),
                "{what}"
            );
            continue;
        }
        let limit = bound(cfg, data, &start, &end, &inputs(cfg, &train), n);
        let worst = got
            .iter()
            .zip(&end)
            .map(|(a, b)| f64::from((a - b).abs()))
            .fold(0.0, f64::max);
        assert!(
            worst <= limit,
            "{what}: weights differ by {worst:e} > the bound {limit:e}"
        );
        assert!(limit < 1e-2, "{what}: the bound {limit:e} says nothing");
        assert_eq!(reports[m].len(), 1, "{what}: one epoch");
        let (g, w) = (&reports[m][0], &want[0]);
        assert_eq!(g.lr, w.lr, "{what}: the epoch's lr");
        assert!(
            (g.train_loss - w.train_loss).abs() < 1e-4,
            "{what}: {g} vs {w}"
        );
    }
}

/// Issue 23: `open` refused a population whose members' minibatch sizes differed.
#[test]
fn cpu_members_of_several_batch_sizes_train_as_their_single_runs() {
    assert_mixed_members_match_single_runs(On::Cpu);
}

#[test]
fn gpu_members_of_several_batch_sizes_train_as_their_single_runs() {
    assert_mixed_members_match_single_runs(On::default_gpu());
}

/// The printed metrics (`train` prints losses to 4 decimals, accuracies to 2) of a
/// member at 4 times the micro-batch equal its single run's, on 10,000 MNIST samples, with
/// momentum (whose buffer starts at the member's first update).
fn assert_printed_metrics_match(on: On) {
    let mnist = common::mnist();
    let train = head(&mnist.train, 10_000);
    let data = common::data(&train, &mnist.test);
    let configs = configs(&[32, 128], 0.9, 64, 0.1);
    let mut pop = common::population(on, &configs, data).unwrap();
    let reports = fit(pop.as_mut());
    let printed = |r: &EpochReport| {
        format!(
            "train loss {:.4} acc {:.2}%  test loss {:.4} acc {:.2}%  val loss {:.4} acc {:.2}%",
            r.train_loss,
            100.0 * r.train_accuracy,
            r.test_loss,
            100.0 * r.test_accuracy,
            r.val_loss.unwrap(),
            100.0 * r.val_accuracy.unwrap()
        )
    };
    for (m, cfg) in configs.iter().enumerate() {
        let mut single = common::engine(on, cfg, data).unwrap();
        let want = fit(single.as_mut()).remove(0);
        assert_eq!(
            printed(&reports[m][0]),
            printed(&want[0]),
            "{} member {m} (batch {})",
            on.name(),
            cfg.batch_size
        );
    }
}

#[test]
fn cpu_a_larger_batch_member_prints_its_single_runs_metrics() {
    assert_printed_metrics_match(On::Cpu);
}

#[test]
fn gpu_a_larger_batch_member_prints_its_single_runs_metrics() {
    assert_printed_metrics_match(On::default_gpu());
}

/// A minibatch size that is not a multiple of the smallest is refused, naming both.
#[test]
fn a_batch_size_that_is_not_a_multiple_of_the_smallest_is_refused_naming_both() {
    let mnist = common::mnist();
    let train = head(&mnist.train, 200);
    let data = common::data(&train, &mnist.test);
    for on in [On::Cpu, On::default_gpu()] {
        let Err(e) = common::population(on, &configs(&[32, 48], 0.0, 8, 0.0), data) else {
            panic!("{}: 48 is not a multiple of 32", on.name());
        };
        let text = e.to_string();
        for want in ["member 1", "48", "32", "multiple"] {
            assert!(text.contains(want), "{}: {text} lacks {want}", on.name());
        }
    }
}
