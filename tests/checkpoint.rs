//! Checkpoints as files: two identical runs write identical bytes; `--save-dtype f16|bf16`
//! files that `eval` reads back.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use wgtrain::checkpoint::WeightDtype;

/// Regression (issue 10, item 4): the safetensors metadata was built from a `HashMap`, so
/// two same-seed runs wrote the same tensors under headers in different orders. Two
/// separate processes (each with its own hash seed) must now write the same file, byte for
/// byte, and the file must still load with the weights training reached.
#[test]
fn same_seed_runs_write_identical_checkpoint_files() {
    let dir = std::env::var("MNIST_DIR")
        .expect("set MNIST_DIR to the directory with the four MNIST files");
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let path = tmp.path().join(name);
        let o = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
            .args([
                "train",
                "--device",
                "cpu",
                "--data",
                &dir,
                "--train-subset",
                "2000",
                "--epochs",
                "1",
                "--hidden",
                "16",
                "--normalize",
                "--quiet",
                "--save",
            ])
            .arg(&path)
            .output()
            .expect("the binary runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(&path).unwrap()
    };
    let (a, b) = (run("a.safetensors"), run("b.safetensors"));
    assert_eq!(a.len(), b.len(), "file sizes differ");
    if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!(
            "the checkpoints differ from byte {i}: {:?} vs {:?}",
            String::from_utf8_lossy(&a[i.saturating_sub(20)..(i + 40).min(a.len())]),
            String::from_utf8_lossy(&b[i.saturating_sub(20)..(i + 40).min(b.len())])
        );
    }
    let ck = wgtrain::checkpoint::load(&tmp.path().join("a.safetensors")).unwrap();
    assert_eq!(ck.spec.to_string(), "784-16-10");
    assert_eq!(ck.normalization, Some(wgtrain::model::Normalization::MNIST));
    // Trained, not the initialisation.
    assert_ne!(ck.params, ck.spec.init(1));
}

fn mnist_dir() -> String {
    std::env::var("MNIST_DIR").expect("set MNIST_DIR to the directory with the four MNIST files")
}

/// `wgtrain ARGS` in `dir`.
fn wgtrain_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

/// The JSON header of a safetensors file (its first 8 bytes are the header's
/// little-endian length).
fn header(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + n]).unwrap()
}

/// The dtype every tensor of the file at `path` has, by its header.
fn dtypes(path: &Path) -> Vec<String> {
    let h = header(path);
    let mut d: Vec<String> = h
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| v["dtype"].as_str().unwrap().to_owned())
        .collect();
    d.dedup();
    d
}

/// Test accuracy in percent that `wgtrain eval --device cpu` reports for `model`.
fn eval_accuracy(dir: &Path, model: &str) -> f64 {
    let o = wgtrain_in(
        dir,
        &[
            "eval",
            "--device",
            "cpu",
            "--data",
            &mnist_dir(),
            "--model",
            model,
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pct = out
        .split("accuracy ")
        .nth(1)
        .and_then(|s| s.trim().strip_suffix('%'))
        .unwrap_or_else(|| panic!("no accuracy in {out:?}"));
    pct.parse().unwrap()
}

/// Issue 13 item 3: `--save-dtype f16` writes what training reached rounded to f16 (the
/// same file as converting the f32 checkpoint of the same run), headed `F16`, and `eval`
/// reads it back to within 0.5 points of the f32 model's test accuracy; bf16 likewise.
/// Safetensors `F16`/`BF16` tensors load in PyTorch as `torch.float16`/`torch.bfloat16`.
#[test]
fn a_model_saved_as_f16_or_bf16_evaluates_like_the_f32_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = mnist_dir();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--device",
            "cpu",
            "--data",
            &data,
            "--epochs",
            "1",
            "--hidden",
            "64",
            "--normalize",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let o = wgtrain_in(dir, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    train(&["--save", "m32.safetensors"]);
    train(&["--save", "m16.safetensors", "--save-dtype", "f16"]);
    assert_eq!(dtypes(&dir.join("m32.safetensors")), ["F32"]);
    assert_eq!(dtypes(&dir.join("m16.safetensors")), ["F16"]);
    let ck = wgtrain::checkpoint::load(&dir.join("m32.safetensors")).unwrap();
    let norm = ck.normalization.unwrap();
    let convert = |name: &str, dtype| {
        wgtrain::checkpoint::save_as(&dir.join(name), &ck.spec, &ck.params, norm, dtype).unwrap();
    };
    convert("converted16.safetensors", WeightDtype::F16);
    convert("mbf16.safetensors", WeightDtype::Bf16);
    assert_eq!(
        std::fs::read(dir.join("m16.safetensors")).unwrap(),
        std::fs::read(dir.join("converted16.safetensors")).unwrap(),
        "--save-dtype f16 writes the run's weights rounded to f16"
    );
    assert_eq!(dtypes(&dir.join("mbf16.safetensors")), ["BF16"]);
    // The f16 file holds each weight rounded once, to nearest even.
    let half = wgtrain::checkpoint::load(&dir.join("m16.safetensors")).unwrap();
    assert_eq!(half.spec, ck.spec);
    assert_eq!(half.normalization, ck.normalization);
    for (a, b) in ck.params.iter().zip(&half.params) {
        assert_eq!(*b, half::f16::from_f32(*a).to_f32());
    }
    let f32_acc = eval_accuracy(dir, "m32.safetensors");
    assert!(f32_acc > 90.0, "one epoch reaches {f32_acc}%");
    for name in ["m16.safetensors", "mbf16.safetensors"] {
        let acc = eval_accuracy(dir, name);
        assert!(
            (acc - f32_acc).abs() <= 0.5,
            "{name}: {acc}% vs {f32_acc}% in f32"
        );
    }
}

/// `--save-best` writes the chosen dtype too, and `--save-dtype` with nothing to save is
/// refused before any work (the data directory is never read) with exit code 2.
#[test]
fn save_dtype_applies_to_save_best_and_is_refused_without_a_save() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = mnist_dir();
    let o = wgtrain_in(
        dir,
        &[
            "train",
            "--device",
            "cpu",
            "--data",
            &data,
            "--train-subset",
            "2000",
            "--epochs",
            "2",
            "--hidden",
            "16",
            "--val-split",
            "0.1",
            "--quiet",
            "--save-best",
            "best.safetensors",
            "--save-dtype",
            "bf16",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(dtypes(&dir.join("best.safetensors")), ["BF16"]);
    let o = wgtrain_in(
        dir,
        &[
            "train",
            "--device",
            "cpu",
            "--data",
            "no-such-dir",
            "--save-dtype",
            "f16",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "invalid save-dtype = f16: applies to --save, --save-best and --save-init only, and this run saves no weights"
        ),
        "{err}"
    );
}

/// A run stopped by Ctrl-C saves the weights it reached in the `--save-dtype` it was given.
#[test]
fn an_interrupted_run_saves_in_the_chosen_dtype() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = mnist_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args([
            "train",
            "--device",
            "cpu",
            "--data",
            &data,
            "--train-subset",
            "4000",
            "--epochs",
            "100000",
            "--hidden",
            "16",
            "--quiet",
            "--metrics",
            "m.jsonl",
            "--save",
            "m.safetensors",
            "--save-dtype",
            "f16",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let start = Instant::now();
    // After the first epoch's line the Ctrl-C handler is installed.
    while std::fs::read_to_string(dir.join("m.jsonl"))
        .unwrap_or_default()
        .is_empty()
    {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "wgtrain exited ({status}) before its first epoch: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("no epoch finished within 300 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let path = dir.join("m.safetensors");
    assert_eq!(dtypes(&path), ["F16"]);
    assert_eq!(header(&path)["__metadata__"]["wgtrain.interrupted"], "true");
    let ck = wgtrain::checkpoint::load(&path).unwrap();
    assert_eq!(ck.spec.to_string(), "784-16-10");
}

/// Issue 25, item 2: `train --init FILE` starts from a checkpoint's weights and
/// `--save-init FILE` saves the weights a run starts from. Checked against values computed
/// without the code under test:
/// - `--save-init` without `--init` holds the seed's `nn.Linear` initialisation
///   (`MlpSpec::init`);
/// - a run from `--init X` at a learning rate too small to move any weight (1e-30, no
///   decay: every update rounds away in f32) ends on X's weights exactly, and saves X as
///   its initial weights;
/// - starting from the seed's own initialisation (`--init` of what `--save-init` wrote)
///   gives the same file, byte for byte, as the run without `--init`;
/// - a checkpoint of another model, or trained on other inputs, is refused before any work,
///   naming both.
#[test]
fn train_init_starts_from_a_checkpoint_and_save_init_writes_the_start() {
    let data = mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = |extra: &[&str]| -> Output {
        let mut args = vec![
            "train",
            "--device",
            "cpu",
            "--data",
            &data,
            "--train-subset",
            "1000",
            "--epochs",
            "1",
            "--quiet",
        ];
        args.extend(extra);
        if !extra.contains(&"--hidden") {
            args.extend(["--hidden", "16"]);
        }
        wgtrain_in(dir, &args)
    };
    let ok = |o: &Output| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let load = |name: &str| wgtrain::checkpoint::load(&dir.join(name)).unwrap();
    let spec = wgtrain::model::MlpSpec::new(784, &[16], 10).unwrap();

    ok(&run(&[
        "--save-init",
        "i1.safetensors",
        "--save",
        "a.safetensors",
    ]));
    assert_eq!(load("i1.safetensors").params, spec.init(1));
    assert_ne!(load("a.safetensors").params, spec.init(1), "trained");

    // Weights no seed gives: a pattern, saved as a checkpoint.
    let x: Vec<f32> = spec
        .init(1)
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v == 0.0 {
                0.0
            } else {
                0.01 * ((i % 17) as f32 - 8.5)
            }
        })
        .collect();
    let norm = wgtrain::model::Normalization::UNIT;
    wgtrain::checkpoint::save(&dir.join("x.safetensors"), &spec, &x, norm).unwrap();
    ok(&run(&[
        "--init",
        "x.safetensors",
        "--lr",
        "1e-30",
        "--weight-decay",
        "0",
        "--save-init",
        "xi.safetensors",
        "--save",
        "xf.safetensors",
    ]));
    assert_eq!(load("xi.safetensors").params, x);
    assert_eq!(load("xf.safetensors").params, x);

    ok(&run(&[
        "--init",
        "i1.safetensors",
        "--save",
        "b.safetensors",
    ]));
    assert_eq!(
        std::fs::read(dir.join("b.safetensors")).unwrap(),
        std::fs::read(dir.join("a.safetensors")).unwrap()
    );

    let o = run(&["--init", "x.safetensors", "--hidden", "32"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "invalid init = x.safetensors: holds an MLP 784-16-10 but this run trains an MLP 784-32-10 (784 inputs, 10 classes, --hidden 32); give --hidden 16, or a checkpoint of this model"
        ),
        "{err}"
    );
    let o = run(&["--init", "x.safetensors", "--normalize"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("was trained on pixels scaled to [0, 1] (no --normalize) but this run feeds inputs normalised with mean 0.1307"),
        "{err}"
    );
}

/// Writes a sparse checkpoint of one layer `[10, 2^28]` (10 GiB of F32 weights that take
/// no disk space): a valid file whose tensor is far larger than any memory limit below.
fn huge_checkpoint(path: &Path) {
    use std::io::Write;
    let inputs: u64 = 1 << 28;
    let w = 10 * inputs * 4;
    let mut header = format!(
        r#"{{"0.weight":{{"dtype":"F32","shape":[10,{inputs}],"data_offsets":[0,{w}]}},"0.bias":{{"dtype":"F32","shape":[10],"data_offsets":[{w},{}]}}}}"#,
        w + 40
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    f.set_len(8 + header.len() as u64 + w + 40).unwrap();
}

/// `wgtrain ARGS` in `dir` with its address space limited to 4 GB (`ulimit -v`), so a
/// run that tried to read a 10 GiB tensor fails instead of taking the machine's memory.
fn wgtrain_limited(dir: &Path, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 4000000 && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("sh runs")
}

/// Regression (issue 25, item 10): a checkpoint claiming a huge tensor was read whole (10
/// GiB here) before its shape was refused. `eval --model` and `train --init` check the
/// header's shapes against the data first: the file is refused, exit 2, naming the shapes,
/// within a 4 GB address space (before the fix: "out of memory").
#[test]
fn regression_a_checkpoint_claiming_a_huge_tensor_is_refused_from_its_header() {
    let data = mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    huge_checkpoint(&tmp.path().join("big.safetensors"));
    let o = wgtrain_limited(
        tmp.path(),
        &[
            "eval",
            "--model",
            "big.safetensors",
            "--data",
            &data,
            "--device",
            "cpu",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("big.safetensors: expects 268435456 inputs but the test images have 784"),
        "{err}"
    );
    let o = wgtrain_limited(
        tmp.path(),
        &[
            "train",
            "--init",
            "big.safetensors",
            "--data",
            &data,
            "--device",
            "cpu",
            "--train-subset",
            "300",
            "--epochs",
            "1",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("holds an MLP 268435456-10 but this run trains an MLP 784-256-10"),
        "{err}"
    );
}

/// `[N, C]` test-set logits of the checkpoint at `path` on the CPU engine, its inputs
/// normalised as the checkpoint records (the one place this file opens an engine).
fn cpu_test_logits(path: &Path, mnist: &wgtrain::data::Mnist) -> Vec<f32> {
    let ck = wgtrain::checkpoint::load(path).unwrap();
    let cfg = wgtrain::RunConfig {
        hidden: ck.spec.hidden().to_vec(),
        normalization: ck.normalization.unwrap(),
        ..wgtrain::RunConfig::default()
    };
    let mut engine = wgtrain::open(
        wgtrain::Device::Cpu,
        &[cfg],
        wgtrain::engine::RunData::from(mnist),
    )
    .unwrap();
    engine.set_params(0, &ck.params).unwrap();
    engine.logits(0, wgtrain::engine::EvalSet::Test).unwrap()
}

/// Issue 26, item 12: a model trained with `--normalize` lost about 0.9 points in PyTorch
/// without `transforms.Normalize`. `--fold-normalize` saves weights that take pixels in
/// [0, 1] (W' = W / std, b' = b - (mean / std) W·1). The folded checkpoint evaluated on
/// [0, 1] inputs gives the unfolded one's logits on normalised inputs, to within a bound
/// derived from f32 rounding (below), and records no normalisation.
#[test]
fn a_folded_checkpoint_on_unit_inputs_matches_the_unfolded_one_on_normalised_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = mnist_dir();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--device",
            "cpu",
            "--data",
            &data,
            "--train-subset",
            "2000",
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--normalize",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let o = wgtrain_in(dir, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    train(&["--save", "plain.safetensors"]);
    train(&["--save", "folded.safetensors", "--fold-normalize"]);
    let plain = wgtrain::checkpoint::load(&dir.join("plain.safetensors")).unwrap();
    let folded = wgtrain::checkpoint::load(&dir.join("folded.safetensors")).unwrap();
    let norm = wgtrain::model::Normalization::MNIST;
    assert_eq!(plain.normalization, Some(norm));
    assert_eq!(
        folded.normalization,
        Some(wgtrain::model::Normalization::UNIT)
    );
    assert_eq!(
        header(&dir.join("folded.safetensors"))["__metadata__"]["wgtrain.normalize_folded"],
        "0.1307,0.3081"
    );

    let mut mnist = wgtrain::data::load_dir(Path::new(&data)).unwrap();
    mnist.test = mnist.test.head(1000);
    let want = cpu_test_logits(&dir.join("plain.safetensors"), &mnist);
    let got = cpu_test_logits(&dir.join("folded.safetensors"), &mnist);

    // The bound, from the unfolded weights alone. u = 2^-24 is f32's unit roundoff; x the
    // pixel / 255, x' = (x - m) / s the normalised input, z_j = W_j·x' + b_j the exact
    // hidden pre-activation. Unfolded path: x' is computed in f32 by (x / 255 - m) / s
    // (three roundings: at most 4u (x + m) / s), then a K-term f32 dot product plus bias
    // (at most (K + 2) u (Σ|W x'| + |b|) for any summation order). Folded path: W / s and
    // b' = b - (m / s) Σ W each rounded once to f32 (u relative), x = p / 255 rounded
    // once, then the same dot product over W / s and x. ReLU does not enlarge a
    // difference; the output layer adds Σ_j |V_kj| Δz_j and its own H-term dot product
    // in each path. A factor 1.01 covers second-order terms and f64's own rounding.
    let u = f64::from(f32::EPSILON) / 2.0;
    let spec = &plain.spec;
    let layout = spec.layout();
    let (l0, l1) = (layout.layers[0], layout.layers[1]);
    let (k, h, c) = (l0.inputs, l0.outputs, l1.outputs);
    let p = |i: usize| f64::from(plain.params[i]);
    let (m, s) = (f64::from(norm.mean), f64::from(norm.std));
    let (mut worst, mut largest_bound, mut largest_diff) = (0.0f64, 0.0f64, 0.0f64);
    for n in 0..mnist.test.len() {
        let x: Vec<f64> = mnist
            .test
            .image(n)
            .iter()
            .map(|&v| f64::from(v) / 255.0)
            .collect();
        let mut hidden = vec![0.0; h];
        let mut dz = vec![0.0; h];
        for j in 0..h {
            let w = |i: usize| p(l0.weight + j * k + i);
            let b = p(l0.bias + j);
            let z: f64 = (0..k).map(|i| w(i) * (x[i] - m) / s).sum::<f64>() + b;
            let abs_wx: f64 = (0..k).map(|i| w(i).abs() * (x[i] - m).abs() / s).sum();
            let abs_wx_folded: f64 = (0..k).map(|i| w(i).abs() * x[i] / s).sum();
            let b_folded = (b - m / s * (0..k).map(w).sum::<f64>()).abs();
            let input_plain: f64 = (0..k).map(|i| w(i).abs() * 4.0 * u * (x[i] + m) / s).sum();
            let unfolded = input_plain + (k + 2) as f64 * u * (abs_wx + b.abs());
            let folded = 2.0 * u * abs_wx_folded
                + u * b_folded
                + (k + 2) as f64 * u * (abs_wx_folded + b_folded);
            hidden[j] = z.max(0.0);
            dz[j] = 1.01 * (unfolded + folded);
        }
        for o in 0..c {
            let v = |j: usize| p(l1.weight + o * h + j);
            let bias = p(l1.bias + o);
            let carried: f64 = (0..h).map(|j| v(j).abs() * dz[j]).sum();
            let own: f64 = (0..h)
                .map(|j| v(j).abs() * (hidden[j] + dz[j]))
                .sum::<f64>()
                + bias.abs();
            let bound = 1.01 * (carried + 2.0 * (h + 2) as f64 * u * own);
            let (a, b) = (want[n * c + o], got[n * c + o]);
            let diff = f64::from(a - b).abs();
            assert!(
                diff <= bound,
                "sample {n}, logit {o}: unfolded {a}, folded {b}, |diff| {diff:e} > bound {bound:e}"
            );
            worst = worst.max(diff / bound);
            largest_bound = largest_bound.max(bound);
            largest_diff = largest_diff.max(diff);
        }
    }
    eprintln!(
        "largest |difference| {largest_diff:.2e}, largest bound {largest_bound:.2e}, \
         largest ratio {worst:.2e}"
    );
    // The comparison can fail: the unfolded weights on [0, 1] inputs are far off.
    wgtrain::checkpoint::save(
        &dir.join("wrong.safetensors"),
        &plain.spec,
        &plain.params,
        wgtrain::model::Normalization::UNIT,
    )
    .unwrap();
    let unfolded_on_unit = cpu_test_logits(&dir.join("wrong.safetensors"), &mnist);
    let off = want
        .iter()
        .zip(&unfolded_on_unit)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(off > 0.1, "without the fold the logits differ by {off}");
}
