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
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
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

// examples/optuna_sweep.py with SQLite storage (the PostgreSQL run with two workers at
// once is tests/optuna_postgres.rs; the one-trial-per-`wgtrain train` path is also
// tests/tune.rs). Needs Python 3 with optuna ($PYTHON, else python3) and MNIST_DIR.

#[path = "common/optuna.rs"]
mod optuna;

/// The example's arguments: its own flags, then `--` and small CPU training flags.
fn optuna_args(own: &[&str], train: &[&str]) -> Vec<String> {
    let data = optuna::mnist_dir();
    let mut args: Vec<String> = own.iter().map(|s| s.to_string()).collect();
    args.extend(
        [
            "--",
            "--device",
            "cpu",
            "--data",
            &data,
            "--no-download",
            "--train-subset",
            "300",
            "--epochs",
            "1",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.extend(train.iter().map(|s| s.to_string()));
    args
}

fn run_optuna(python: &str, args: &[String], log: &std::path::Path) -> optuna::Finished {
    optuna::Worker::start(python, args, log).wait(std::time::Duration::from_secs(120))
}

/// `--population K` trains the trials it asks for with `wgtrain sweep --configs` and tells
/// each the value its sweep wrote; with the same sampler seeds it asks for the same
/// hyperparameters as one trial per `wgtrain train` process (the default), and the two
/// ways of training them agree on every validation accuracy.
#[test]
fn optuna_population_tells_what_its_sweep_wrote_and_agrees_with_one_trial_per_process() {
    let python = optuna::python(&["optuna"], "pip install optuna");
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:///{}", dir.path().join("optuna.db").display());
    let k = 2;
    let work = dir.path().join("pop");
    let own = |study: &str, work: &std::path::Path, extra: &[&str]| {
        let mut v = vec![
            "--wgtrain",
            env!("CARGO_BIN_EXE_wgtrain"),
            "--storage",
            &storage,
            "--study",
            study,
            "--trials",
            "3",
            "--seed",
            "1",
            "--lr",
            "0.01:0.5",
            "--workdir",
            work.to_str().unwrap(),
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let k_text = k.to_string();
    let pop_args = {
        let o = own("pop", &work, &["--population", &k_text]);
        let o: Vec<&str> = o.iter().map(String::as_str).collect();
        optuna_args(&o, &["--pruning", "none"])
    };
    let f = run_optuna(&python, &pop_args, &dir.path().join("pop.log"));
    assert!(f.status.success(), "{}\n{}", f.stdout, f.stderr);
    let pop = optuna::study_trials(&python, &storage, "pop");
    let results = optuna::sweep_results(&work);
    optuna::check_study(&pop, 3, &results, &[&f.stdout]);
    // 3 trials in populations of k: [2, 1] or [1, 1, 1].
    let mut sizes: Vec<usize> = results.values().map(|r| r.population).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, if k == 2 { vec![1, 2, 2] } else { vec![1, 1, 1] });
    assert!(pop.iter().all(|t| t.state == "COMPLETE"), "{pop:#?}");

    let one_args = {
        let o = own("one", &dir.path().join("one"), &[]);
        let o: Vec<&str> = o.iter().map(String::as_str).collect();
        optuna_args(&o, &[])
    };
    let f = run_optuna(&python, &one_args, &dir.path().join("one.log"));
    assert!(f.status.success(), "{}\n{}", f.stdout, f.stderr);
    let one = optuna::study_trials(&python, &storage, "one");
    assert_eq!(one.len(), 3);
    for (a, b) in pop.iter().zip(&one) {
        assert_eq!(a.params, b.params, "the same sampler seeds ask the same");
        assert_eq!(b.state, "COMPLETE", "{b:?}");
        assert_eq!(a.value, b.value, "sweep --configs vs train: {a:?} {b:?}");
    }
}

/// A wgtrain process that dies takes its whole population with it: every trial of it is
/// told FAIL, once, and none stays RUNNING; a diverged trial is told FAIL too.
#[test]
fn optuna_population_tells_fail_when_wgtrain_dies_or_a_trial_diverges() {
    let python = optuna::python(&["optuna"], "pip install optuna");
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite:///{}", dir.path().join("optuna.db").display());
    // A "wgtrain" that is killed as soon as it starts.
    let killed = dir.path().join("killed-wgtrain");
    std::fs::write(&killed, "#!/bin/sh\nkill -KILL $$\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&killed, std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = dir.path().join("killed");
    let args = optuna_args(
        &[
            "--wgtrain",
            killed.to_str().unwrap(),
            "--storage",
            &storage,
            "--study",
            "killed",
            "--trials",
            "3",
            "--population",
            "2",
            "--workdir",
            work.to_str().unwrap(),
        ],
        &[],
    );
    let f = run_optuna(&python, &args, &dir.path().join("killed.log"));
    // No trial completed, so there is no best trial to print: the script says so.
    assert!(!f.status.success(), "{}", f.stdout);
    assert!(f.stderr.contains("no trial has completed"), "{}", f.stderr);
    assert_eq!(
        f.stdout.matches("killed by signal 9").count(),
        2,
        "{}",
        f.stdout
    );
    let trials = optuna::study_trials(&python, &storage, "killed");
    let results = optuna::sweep_results(&work);
    optuna::check_study(&trials, 3, &results, &[&f.stdout]);
    assert!(trials.iter().all(|t| t.state == "FAIL"), "{trials:#?}");
    assert!(results.values().all(|r| r.trial.is_none()));

    // lr 1e8 makes the loss non-finite within the first epoch: the sweep reports the
    // trial diverged, and the study holds it as FAIL.
    let work = dir.path().join("diverged");
    let args = optuna_args(
        &[
            "--wgtrain",
            env!("CARGO_BIN_EXE_wgtrain"),
            "--storage",
            &storage,
            "--study",
            "diverged",
            "--trials",
            "1",
            "--population",
            "1",
            "--lr",
            "1e8",
            "--workdir",
            work.to_str().unwrap(),
        ],
        &[],
    );
    let f = run_optuna(&python, &args, &dir.path().join("diverged.log"));
    assert!(!f.status.success(), "{}", f.stdout);
    assert!(
        f.stdout
            .contains("diverged: the training loss became non-finite"),
        "{}",
        f.stdout
    );
    let trials = optuna::study_trials(&python, &storage, "diverged");
    let results = optuna::sweep_results(&work);
    optuna::check_study(&trials, 1, &results, &[&f.stdout]);
    assert_eq!(results[&0].trial.as_ref().unwrap()["status"], "diverged");
}
