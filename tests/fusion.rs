//! All step fusions together (`Fusions::ALL`, the default) against none: the gather in
//! layer 0's forward, the output layer inside the loss launch and the SGD update in the
//! weight-gradient epilogues each keep the arithmetic order of the launches they replace
//! (tests/fusion_gather.rs, fusion_output.rs, fusion_update.rs check each alone), so the
//! whole run must stay bit-identical with all three at once, with `L + 2` dispatches
//! fewer per step for an MLP of L layers where all three apply: 5 for one hidden layer
//! (issue 13's target).

mod common;

use common::{gpu, integers};
use wgtrain::data::{Dataset, Normalization};
use wgtrain::engine::{Engine, EvalSet};
use wgtrain::gpu::engine::GpuEngine;
use wgtrain::gpu::kernels::matmul::Tile2d;
use wgtrain::gpu::{Fusions, MatmulVariant};
use wgtrain::optim::SgdConfig;
use wgtrain::{RunConfig, train};

/// A synthetic dataset of `n` samples of `features` pixels, 10 classes.
fn dataset(n: usize, features: usize, seed: u64) -> Dataset {
    Dataset {
        images: integers(seed, n * features, 256)
            .into_iter()
            .map(|v| v as u8)
            .collect(),
        labels: integers(seed + 1, n, 10),
        rows: 1,
        cols: features,
    }
}

/// What a run leaves: per-step sums, parameters, test and validation metrics, test
/// logits, dispatches per step.
type Outcome = (Vec<[f32; 2]>, Vec<u32>, Vec<(f64, f64)>, Vec<u32>, usize);

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Two epochs on `variant` with `fusions`, the SGD settings changed between them
/// (`set_sgd`, as PBT and hparam schedules do).
fn run(fusions: Fusions, variant: MatmulVariant, cfg: &RunConfig, data: &[Dataset; 2]) -> Outcome {
    let (g, kn) = gpu();
    let run_data = common::data(&data[0], &data[1]);
    let mut e = GpuEngine::new(g, kn, variant.into(), fusions, cfg, run_data).unwrap();
    let samples = e.setup().train_indices.clone();
    let mut sums = Vec::new();
    for epoch in 0..2 {
        let order = train::epoch_order(&samples, 5, epoch);
        let steps = train::step_records(samples.len(), cfg.batch_size, (epoch * 10) as u64, |s| {
            0.05 + 0.01 * (s % 3) as f64
        });
        sums.extend(e.train_epoch(&order, &steps, &mut |_| {}).unwrap());
        let sgd = SgdConfig {
            momentum: 0.5,
            nesterov: false,
            ..cfg.sgd.clone()
        };
        e.set_sgd(&sgd).unwrap();
    }
    let evals = [EvalSet::Test, EvalSet::Validation]
        .map(|s| {
            let r = e.evaluate(s).unwrap();
            (r.loss, r.accuracy)
        })
        .to_vec();
    let logits = e.logits(EvalSet::Test).unwrap();
    (
        sums,
        bits(&e.params().unwrap()),
        evals,
        bits(&logits),
        e.dispatches_per_step(),
    )
}

/// Every fusion at once against none, on lavapipe's default kernel, a 2-D tiled one and
/// the rows kernel (which does not read pixels: the gather launch stays), with one and two
/// hidden layers, momentum with nesterov and weight decay, a validation split and partial
/// last minibatches (training and evaluation).
#[test]
fn all_fusions_together_are_bit_identical_and_cut_the_step_to_five_dispatches() {
    let g = &gpu().0;
    let variants: Vec<MatmulVariant> = [
        MatmulVariant::Subgroup,
        MatmulVariant::Tiled2d(Tile2d::T64x64),
        MatmulVariant::Rows,
    ]
    .into_iter()
    .filter(|v| v.supports(g).is_ok())
    .collect();
    let data = [dataset(330, 36, 21), dataset(1030, 36, 22)];
    for variant in variants {
        for hidden in [vec![20], vec![24, 12]] {
            let cfg = RunConfig {
                hidden: hidden.clone(),
                batch_size: 64,
                validation_split: 0.1,
                seed: 4,
                normalization: Normalization {
                    mean: 0.13,
                    std: 0.31,
                },
                sgd: SgdConfig {
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 1e-3,
                    ..SgdConfig::default()
                },
                ..RunConfig::default()
            };
            let what = format!("{variant}, hidden {hidden:?}");
            let base = run(Fusions::NONE, variant, &cfg, &data);
            let fused = run(Fusions::ALL, variant, &cfg, &data);
            let layers = hidden.len() + 1;
            let gather = usize::from(variant != MatmulVariant::Rows);
            assert_eq!(
                fused.4,
                base.4 - layers - 1 - gather,
                "{what}: update (L), output layer (1) and gather fused"
            );
            if layers == 2 && gather == 1 {
                assert_eq!(fused.4, 5, "{what}: issue 13's target");
            }
            assert_eq!(fused.0, base.0, "{what}: per-step loss and correct sums");
            assert_eq!(fused.1, base.1, "{what}: parameters");
            assert_eq!(fused.2, base.2, "{what}: test and validation metrics");
            assert_eq!(fused.3, base.3, "{what}: test logits");
            assert!(base.2.iter().all(|(l, _)| l.is_finite() && *l > 0.0));
        }
    }
}
