//! All step fusions together (`Fusions::ALL`, the default) against none: the gather in
//! layer 0's forward, the output layer inside the loss launch and the SGD update in the
//! weight-gradient epilogues each keep the arithmetic order of the launches they replace
//! (tests/gpu/fusion_gather.rs, fusion_output.rs, fusion_update.rs check each alone), so the
//! whole run must stay bit-identical with all three at once, with `L + 2` dispatches
//! fewer per step for an MLP of L layers where all three apply: 5 for one hidden layer
//! (issue 13's target), for a single run and for a population of K members alike (issue
//! 22).

use crate::common;

use std::sync::atomic::AtomicBool;

use common::{gpu, integers};
use wgtrain::data::{Dataset, Normalization};
use wgtrain::engine::{Engine, EvalSet};
use wgtrain::gpu::engine::GpuEngine;
use wgtrain::gpu::kernels::matmul::Tile2d;
use wgtrain::gpu::{Fusions, MatmulVariant};
use wgtrain::optim::SgdConfig;
use wgtrain::step::{MEMBER_FIRST, MemberStep};
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

/// What one member of a run leaves: per-step sums, parameters, test and validation
/// metrics, test logits.
type Member = (Vec<[f32; 2]>, Vec<u32>, Vec<(f64, f64)>, Vec<u32>);

/// What a run leaves: every member's [`Member`], dispatches per step and the fusions the
/// plan applied.
type Outcome = (Vec<Member>, usize, Vec<&'static str>);

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Two epochs of the members `configs` on `variant` with `fusions`, member k's learning
/// rate in step s `(0.05 + 0.01 (s mod 3)) (1 + k / 2)`, the SGD settings changed between
/// the epochs (`set_sgd`, as PBT and hparam schedules do).
fn run(
    fusions: Fusions,
    variant: MatmulVariant,
    configs: &[RunConfig],
    data: &[Dataset; 2],
) -> Outcome {
    let (g, kn) = gpu();
    let run_data = common::data(&data[0], &data[1]);
    let mut e = GpuEngine::new(g, kn, variant.into(), fusions, configs, run_data).unwrap();
    let samples = e.setup().shared().train_indices.clone();
    let batch = configs[0].batch_size;
    let k = configs.len();
    let stop = AtomicBool::new(false);
    let mut sums = vec![Vec::new(); k];
    for epoch in 0..2 {
        let order = train::epoch_order(&samples, 5, epoch);
        let steps = train::step_records(samples.len(), batch);
        // Step 0 of epoch 0 is every member's first.
        let table: Vec<MemberStep> = (0..steps.len() * k)
            .map(|i| MemberStep {
                lr: ((0.05 + 0.01 * ((i / k) % 3) as f64) * (1.0 + (i % k) as f64 / 2.0)) as f32,
                flags: if epoch == 0 && i < k { MEMBER_FIRST } else { 0 },
                scale: 1.0,
            })
            .collect();
        let epoch_sums = e
            .train_epoch(&order, &steps, &table, &mut |_| {}, &stop)
            .unwrap();
        for (m, s) in epoch_sums.into_iter().enumerate() {
            sums[m].extend(s);
        }
        for (m, cfg) in configs.iter().enumerate() {
            let sgd = SgdConfig {
                momentum: 0.5,
                nesterov: false,
                ..cfg.sgd.clone()
            };
            e.set_sgd(m, &sgd).unwrap();
        }
    }
    let evals = [EvalSet::Test, EvalSet::Validation].map(|s| e.evaluate(s).unwrap());
    let members = sums
        .into_iter()
        .enumerate()
        .map(|(m, sums)| {
            let logits = e.logits(m, EvalSet::Test).unwrap();
            (
                sums,
                bits(&e.params(m).unwrap()),
                evals.iter().map(|r| (r[m].loss, r[m].accuracy)).collect(),
                bits(&logits),
            )
        })
        .collect();
    (members, e.dispatches_per_step(), e.fusions_applied())
}

/// The members of the population runs: `cfg`, then two members with their own weight
/// decay (coupled and decoupled), momentum, nesterov, bias decay and initialisation.
fn population(cfg: &RunConfig) -> Vec<RunConfig> {
    let other = |weight_decay, momentum, nesterov, decoupled, decay_bias, init_seed| RunConfig {
        sgd: SgdConfig {
            weight_decay,
            momentum,
            nesterov,
            decoupled_weight_decay: decoupled,
            decay_bias,
            ..SgdConfig::default()
        },
        init_seed: Some(init_seed),
        ..cfg.clone()
    };
    vec![
        cfg.clone(),
        other(0.0, 0.0, false, false, true, 31),
        other(5e-3, 0.8, false, true, false, 32),
    ]
}

/// Every fusion at once against none, on lavapipe's default kernel, a 2-D tiled one and
/// the rows kernel (which does not read pixels: the gather launch stays), with one and two
/// hidden layers, momentum with nesterov and weight decay, a validation split and partial
/// last minibatches (training and evaluation); for one run and for a population of three
/// members with SGD settings, learning rates and initial weights of their own (issue 22:
/// every fusion serves populations, with the step of one run).
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
            let single = [cfg.clone()];
            let members = population(&cfg);
            for configs in [&single[..], &members[..]] {
                let k = configs.len();
                let what = format!("{variant}, hidden {hidden:?}, {k} members");
                let base = run(Fusions::NONE, variant, configs, &data);
                let fused = run(Fusions::ALL, variant, configs, &data);
                let layers = hidden.len() + 1;
                let gather = usize::from(variant != MatmulVariant::Rows);
                assert_eq!(
                    fused.1,
                    base.1 - layers - 1 - gather,
                    "{what}: update (L), output layer (1) and gather fused"
                );
                if layers == 2 && gather == 1 {
                    // Issue 22: a population's step is as short as one model's (it was 9
                    // dispatches, the population engine had no fusion).
                    assert_eq!(fused.1, 5, "{what}: issue 13's target");
                    assert_eq!(fused.2, ["gather", "output", "update"], "{what}");
                }
                assert!(base.2.is_empty(), "{what}: {:?}", base.2);
                assert_eq!((fused.0.len(), base.0.len()), (k, k), "{what}");
                for (m, (f, b)) in fused.0.iter().zip(&base.0).enumerate() {
                    assert_eq!(
                        f.0, b.0,
                        "{what}: member {m}: per-step loss and correct sums"
                    );
                    assert_eq!(f.1, b.1, "{what}: member {m}: parameters");
                    assert_eq!(f.2, b.2, "{what}: member {m}: test and validation metrics");
                    assert_eq!(f.3, b.3, "{what}: member {m}: test logits");
                    assert!(b.2.iter().all(|(l, _)| l.is_finite() && *l > 0.0));
                }
            }
        }
    }
}
