//! Issue 14, item 4: the examples are part of the tested library surface. Each example
//! that can run without a GPU or data files is compiled in here as a module so its own
//! tests run with `cargo test`; the crate docs must name every example.

#[allow(dead_code)]
#[path = "../examples/custom_dataset.rs"]
mod custom_dataset;

/// The crate docs (`src/lib.rs`) link every file in `examples/`.
#[test]
fn crate_docs_link_every_example() {
    let docs = include_str!("../src/lib.rs");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    // Files only: Python leaves a __pycache__/ here when something imports an example.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(
        names.contains(&"custom_dataset.rs".to_string()),
        "{names:?}"
    );
    for name in names {
        let link = format!("examples/{name}");
        assert!(docs.contains(&link), "src/lib.rs does not link {link}");
    }
}

// examples/optuna_sweep.py with SQLite storage (the PostgreSQL runs, two workers at once
// and a worker killed by SIGKILL, are tests/optuna_postgres.rs; the package itself is
// tested by python/tests, run from tests/python_package.rs). Needs Python 3 with optuna
// and the wgtrain package ($PYTHON, else python3) and MNIST_DIR.

// Each test binary uses part of the shared helpers.
#[allow(dead_code)]
#[path = "common/optuna.rs"]
mod optuna;

/// The example's arguments: SQLite storage in `dir`, small CPU trials, then `own`.
fn optuna_args(dir: &std::path::Path, own: &[&str]) -> Vec<String> {
    let data = optuna::mnist_dir();
    let storage = format!("sqlite:///{}", dir.join("optuna.db").display());
    let mut args: Vec<String> = [
        "--storage",
        &storage,
        "--device",
        "cpu",
        "--data",
        &data,
        "--train-subset",
        "300",
        "--hidden",
        "32",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(own.iter().map(|s| s.to_string()));
    args
}

fn run_optuna(python: &str, args: &[String], log: &std::path::Path) -> optuna::Finished {
    optuna::Worker::start(python, args, log).wait(std::time::Duration::from_secs(300))
}

/// Three trials in a population of two (one slot refilled): every trial told once, its
/// value the validation accuracy of its last epoch, reported after every epoch.
#[test]
fn the_optuna_example_trains_batched_trials_and_tells_each_once() {
    let python = optuna::python(&["optuna", "wgtrain"], "pip install optuna ./python");
    let dir = tempfile::tempdir().unwrap();
    let args = optuna_args(
        dir.path(),
        &[
            "--study",
            "s",
            "--trials",
            "3",
            "--population",
            "2",
            "--seed",
            "1",
            "--lr",
            "0.01:0.1",
            "--epochs",
            "2",
            "--pruner",
            "none",
        ],
    );
    let f = run_optuna(&python, &args, &dir.path().join("s.log"));
    assert!(f.status.success(), "{}\n{}", f.stdout, f.stderr);
    let storage = &args[1];
    let trials = optuna::study_trials(&python, storage, "s");
    optuna::check_study(&trials, 3, &[&f.stdout]);
    for t in &trials {
        assert_eq!(t.state, "COMPLETE", "{t:?}");
        assert_eq!(t.intermediate.len(), 2, "{t:?}");
    }
    assert!(f.stderr.contains("3 trials in"), "{}", f.stderr);
}

/// Diverging trials are told FAIL, once each; with no trial completed the example says so
/// and fails.
#[test]
fn the_optuna_example_tells_diverged_trials_fail() {
    let python = optuna::python(&["optuna", "wgtrain"], "pip install optuna ./python");
    let dir = tempfile::tempdir().unwrap();
    let args = optuna_args(
        dir.path(),
        &[
            "--study",
            "d",
            "--trials",
            "2",
            "--population",
            "2",
            "--lr",
            "1e8,1e9",
            "--epochs",
            "1",
        ],
    );
    let f = run_optuna(&python, &args, &dir.path().join("d.log"));
    assert!(!f.status.success(), "{}", f.stdout);
    assert!(f.stderr.contains("no trial has completed"), "{}", f.stderr);
    let trials = optuna::study_trials(&python, &args[1], "d");
    optuna::check_study(&trials, 2, &[&f.stdout]);
    assert!(trials.iter().all(|t| t.state == "FAIL"), "{trials:#?}");
    assert_eq!(
        f.stdout.matches("-> FAIL (the training loss").count(),
        2,
        "{}",
        f.stdout
    );
}

/// Regression (newcomer): `--batch-size` values were parsed as floats, so Optuna stored
/// `batch_size` as 48.0 and the best trial's JSON printed `"batch_size": 48.0` for an
/// integer hyperparameter. A list and a `lo:hi` range both give integers now.
#[test]
fn the_optuna_example_keeps_batch_sizes_integers() {
    let python = optuna::python(&["optuna", "wgtrain"], "pip install optuna ./python");
    for (study, sizes) in [("list", "32,64"), ("range", "32:128")] {
        let dir = tempfile::tempdir().unwrap();
        let args = optuna_args(
            dir.path(),
            &[
                "--study",
                study,
                "--trials",
                "2",
                "--population",
                "2",
                "--seed",
                "1",
                "--batch-size",
                sizes,
                "--epochs",
                "1",
                "--pruner",
                "none",
            ],
        );
        let f = run_optuna(&python, &args, &dir.path().join("b.log"));
        assert!(f.status.success(), "{}\n{}", f.stdout, f.stderr);
        let last = f.stdout.lines().last().unwrap_or_default();
        let best: serde_json::Value = serde_json::from_str(last).unwrap();
        let batch = &best["params"]["batch_size"];
        assert!(batch.is_u64(), "--batch-size {sizes}: {last}");
        let batch = batch.as_u64().unwrap();
        assert!((32..=128).contains(&batch), "--batch-size {sizes}: {last}");
        if sizes == "32,64" {
            assert!(batch == 32 || batch == 64, "{last}");
        }
        // Trial lines print the integer too (`batch_size=64`, never `batch_size=64.0`).
        let shown = f.stdout.matches(" batch_size=").count();
        assert_eq!(shown, 2, "{}", f.stdout);
        assert!(!f.stdout.contains(".0 ->"), "{}", f.stdout);
    }
}
