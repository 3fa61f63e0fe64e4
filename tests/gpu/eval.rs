//! Per-class results (`wgtrain eval --confusion --plot DIR`): the engines' per-sample
//! logits, the confusion matrix built from them and the pictures, held to an f64 forward
//! pass written here from the checkpoint's weights.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::On;
use wgtrain::RunConfig;
use wgtrain::data::Dataset;
use wgtrain::engine::{EvalSet, RunData};
use wgtrain::gpu::MatmulVariant;
use wgtrain::metrics::{self, Confusion};
use wgtrain::model::{MlpSpec, Normalization};
use wgtrain::schedule::{LrSchedule, Schedule};
use wgtrain::train::Trainer;

/// The logits of `samples` of `data` in f64: `x = (p / 255 - mean) / std`, then
/// `h = relu(x · Wᵀ + b)` per hidden layer and `x · Wᵀ + b` for the last (nn.Linear).
fn reference_logits(
    spec: &MlpSpec,
    params: &[f32],
    data: &Dataset,
    samples: &[usize],
    norm: Normalization,
) -> Vec<Vec<f64>> {
    let layout = spec.layout();
    let last = layout.layers.len() - 1;
    samples
        .iter()
        .map(|&s| {
            let mut x: Vec<f64> = data
                .image(s)
                .iter()
                .map(|&p| (f64::from(p) / 255.0 - f64::from(norm.mean)) / f64::from(norm.std))
                .collect();
            for (l, slot) in layout.layers.iter().enumerate() {
                x = (0..slot.outputs)
                    .map(|o| {
                        let w = &params[slot.weight + o * slot.inputs..][..slot.inputs];
                        let z = f64::from(params[slot.bias + o])
                            + w.iter()
                                .zip(&x)
                                .map(|(&w, &x)| f64::from(w) * x)
                                .sum::<f64>();
                        if l < last { z.max(0.0) } else { z }
                    })
                    .collect();
            }
            x
        })
        .collect()
}

/// Argmax (first maximum) and the margin to the runner-up of each row.
fn argmax_and_margin(rows: &[Vec<f64>]) -> Vec<(usize, f64)> {
    rows.iter()
        .map(|r| {
            let mut best = 0;
            for j in 1..r.len() {
                if r[j] > r[best] {
                    best = j;
                }
            }
            let runner_up = (0..r.len())
                .filter(|&j| j != best)
                .map(|j| r[j])
                .fold(f64::NEG_INFINITY, f64::max);
            (best, r[best] - runner_up)
        })
        .collect()
}

/// `counts[t][p]` by plain counting.
fn reference_confusion(classes: usize, labels: &[u32], predicted: &[usize]) -> Vec<Vec<u64>> {
    let mut counts = vec![vec![0u64; classes]; classes];
    for (&t, &p) in labels.iter().zip(predicted) {
        counts[t as usize][p] += 1;
    }
    counts
}

#[track_caller]
fn assert_confusion_is(what: &str, got: &Confusion, want: &[Vec<u64>]) {
    for (t, row) in want.iter().enumerate() {
        for (p, &n) in row.iter().enumerate() {
            assert_eq!(
                got.count(t, p),
                n,
                "{what}: true {t} predicted {p}: {} vs reference {n}",
                got.count(t, p)
            );
        }
    }
}

/// The GPU and CPU engines' logits of the test set (2,500 samples: three evaluation
/// minibatches, the last one ragged) and of a seeded validation split match the f64
/// forward pass, and the confusion matrix from them is the reference's, count for
/// count; its diagonal is the correct count the softmax kernel reports.
#[test]
fn confusion_from_gpu_and_cpu_logits_matches_an_f64_reference() {
    let mnist = common::mnist();
    let train = mnist.train.head(3000);
    let test = mnist.test.head(2500);
    let spec = MlpSpec::new(train.features(), &[32], mnist.classes).unwrap();
    let norm = Normalization::MNIST;
    let cfg = RunConfig {
        hidden: vec![32],
        epochs: 1,
        batch_size: 64,
        schedule: LrSchedule::new(0.1, Schedule::Constant),
        normalization: norm,
        seed: 3,
        ..RunConfig::default()
    };
    let data = RunData {
        train: &train,
        test: &test,
        classes: mnist.classes,
        micro_batch: None,
    };
    // A briefly trained model, so that the matrix has a diagonal and real confusions.
    let params = {
        let mut cpu = common::engine(On::Cpu, &cfg, data).unwrap();
        Trainer::new(&mut *cpu)
            .unwrap()
            .fit_single(&mut |_| Ok(()))
            .unwrap();
        cpu.params(0).unwrap()
    };
    let all: Vec<usize> = (0..test.len()).collect();
    let want_logits = reference_logits(&spec, &params, &test, &all, norm);
    let want = argmax_and_margin(&want_logits);
    let min_margin = want.iter().map(|w| w.1).fold(f64::INFINITY, f64::min);
    let predicted: Vec<usize> = want.iter().map(|w| w.0).collect();
    let want_counts = reference_confusion(10, &test.labels, &predicted);
    let correct: u64 = (0..10).map(|c| want_counts[c][c]).sum();
    assert!(
        (1500..2450).contains(&correct),
        "trained but not perfect: {correct} of 2500"
    );

    // The trained parameters in engines that hold out 6 of the 3,000 training samples.
    let cfg = RunConfig {
        validation_split: 0.002,
        ..cfg
    };
    for on in [On::gpu_variant(MatmulVariant::Rows), On::Cpu] {
        let name = on.name();
        let mut engine = common::engine(on, &cfg, data).unwrap();
        engine.set_params(0, &params).unwrap();
        let val_rows: Vec<usize> = engine
            .setup()
            .shared()
            .validation
            .iter()
            .map(|&v| v as usize)
            .collect();
        assert_eq!(val_rows.len(), 6, "{name}: validation samples");
        let want_val = reference_logits(&spec, &params, &train, &val_rows, norm);
        let logits = engine.logits(0, EvalSet::Test).unwrap();
        let flat: Vec<f32> = want_logits.iter().flatten().map(|&v| v as f32).collect();
        common::assert_close(&format!("{name} test logits"), &logits, &flat, 1e-4, 1e-4);
        // Equal counts are owed when no sample's top two reference logits are closer than
        // twice the engine's largest logit error: then every argmax must agree.
        let max_err = logits
            .iter()
            .zip(&flat)
            .map(|(a, b)| f64::from((a - b).abs()))
            .fold(0.0, f64::max);
        assert!(
            min_margin > 2.0 * max_err,
            "{name}: a near-tie ({min_margin}) within the logits' error ({max_err}); change the seed"
        );
        let predictions = metrics::predict(&logits, 10);
        for (i, (p, row)) in predictions.iter().zip(&want_logits).enumerate() {
            let top = row[p.class];
            let softmax = 1.0 / row.iter().map(|&v| (v - top).exp()).sum::<f64>();
            assert!(
                (p.confidence - softmax).abs() < 1e-5,
                "{name}: sample {i} confidence {} vs {softmax}",
                p.confidence
            );
        }
        let classes: Vec<usize> = predictions.iter().map(|p| p.class).collect();
        let confusion = Confusion::new(10, &test.labels, &classes);
        assert_confusion_is(name, &confusion, &want_counts);
        let eval = engine.evaluate(EvalSet::Test).unwrap()[0];
        assert_eq!(
            (eval.accuracy * 2500.0).round() as u64,
            confusion.correct(),
            "{name}: the kernel's correct count"
        );
        let val = engine.logits(0, EvalSet::Validation).unwrap();
        let flat: Vec<f32> = want_val.iter().flatten().map(|&v| v as f32).collect();
        common::assert_close(
            &format!("{name} validation logits"),
            &val,
            &flat,
            1e-4,
            1e-4,
        );
    }
}

fn wgtrain(args: &[&str]) -> Output {
    Command::new(common::wgtrain_bin())
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses `eval --confusion`'s table: per true class, its counts and accuracy column.
fn parse_table(stdout: &str) -> Vec<(Vec<u64>, String)> {
    let lines: Vec<&str> = stdout.lines().collect();
    let head = lines
        .iter()
        .position(|l| l.starts_with("true\\pred"))
        .unwrap_or_else(|| panic!("no table in {stdout}"));
    lines[head + 1..head + 11]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 13, "row {l:?}");
            (
                f[1..11].iter().map(|v| v.parse().unwrap()).collect(),
                f[12].to_string(),
            )
        })
        .collect()
}

/// The CLI prints the same matrix on the GPU and CPU paths, equal to the reference
/// computed here from the checkpoint over all 10,000 test images, with each class's
/// accuracy; `--plot` writes the heat map and the mistakes grid as PNG and SVG, and the
/// grid shows `--mistakes` images that the reference also gets wrong.
#[test]
fn eval_confusion_and_plot_match_the_reference_on_gpu_and_cpu() {
    let dir = std::env::var("MNIST_DIR").expect("set MNIST_DIR");
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.safetensors");
    let o = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--data",
        &dir,
        "--train-subset",
        "5000",
        "--epochs",
        "1",
        "--lr",
        "0.1",
        "--hidden",
        "32",
        "--quiet",
        "--save",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ck = wgtrain::checkpoint::load(&model).unwrap();
    let test = &common::mnist().test;
    let all: Vec<usize> = (0..test.len()).collect();
    let norm = ck.normalization.unwrap();
    let want_logits = reference_logits(&ck.spec, &ck.params, test, &all, norm);
    let want = argmax_and_margin(&want_logits);
    let min_margin = want.iter().map(|w| w.1).fold(f64::INFINITY, f64::min);
    assert!(
        min_margin > 1e-4,
        "a near-tie ({min_margin}); change the seed"
    );
    let predicted: Vec<usize> = want.iter().map(|w| w.0).collect();
    let want_counts = reference_confusion(10, &test.labels, &predicted);

    let mut tables = Vec::new();
    for device in ["gpu", "cpu"] {
        let plots = tmp.path().join(device);
        let o = wgtrain(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--data",
            &dir,
            "--device",
            device,
            "--confusion",
            "--plot",
            plots.to_str().unwrap(),
            "--mistakes",
            "12",
        ]);
        assert!(o.status.success(), "{device}: {}", stderr(&o));
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let rows = parse_table(&stdout);
        for (t, (counts, acc)) in rows.iter().enumerate() {
            assert_eq!(counts, &want_counts[t], "{device}: row {t}");
            let support: u64 = want_counts[t].iter().sum();
            let pct = 100.0 * want_counts[t][t] as f64 / support as f64;
            assert_eq!(
                acc,
                &format!("{pct:.2}%"),
                "{device}: accuracy of class {t}"
            );
        }
        for f in ["confusion.png", "mistakes.png"] {
            let bytes = std::fs::read(plots.join(f)).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{device}: {f} is a PNG");
        }
        let svg = std::fs::read_to_string(plots.join("confusion.svg")).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("predicted class"),
            "{device}"
        );
        let svg = std::fs::read_to_string(plots.join("mistakes.svg")).unwrap();
        let shown: Vec<usize> = svg
            .split('#')
            .skip(1)
            .filter_map(|s| s.split(['<', '\n']).next()?.trim().parse().ok())
            .collect();
        assert_eq!(shown.len(), 12, "{device}: 12 images in the grid");
        for i in shown {
            assert_ne!(
                predicted[i], test.labels[i] as usize,
                "{device}: sample {i} is shown as a mistake but the reference gets it right"
            );
        }
        tables.push(stdout);
    }
    assert_eq!(tables[0], tables[1], "the GPU and CPU paths print the same");
}

/// An unusable `--plot` directory fails before any work, exit 2; `--mistakes` without
/// `--plot` is refused rather than ignored.
#[test]
fn eval_plot_into_an_unwritable_place_exits_2_first() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    // The model does not exist: reaching it would give a different error.
    let missing = tmp.path().join("missing.safetensors");
    let o = wgtrain(&[
        "eval",
        "--model",
        missing.to_str().unwrap(),
        "--plot",
        file.join("plots").to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot write") && err.contains("a-file"),
        "{err}"
    );
    assert!(!Path::new(&missing).exists());
    let o = wgtrain(&["eval", "--model", "m.safetensors", "--mistakes", "4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--plot"), "{}", stderr(&o));
}
