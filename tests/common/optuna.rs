//! Running `examples/optuna_sweep.py` from tests and checking the study it leaves: every
//! trial finished, told once, with the outcome wgtrain wrote for it. Shared by
//! `tests/examples.rs` (SQLite) and `tests/optuna_postgres.rs` (PostgreSQL); included with
//! `#[path]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Python interpreter of the tests ($PYTHON, else python3), checked to import
/// `modules`; panics naming the fix otherwise (these tests never skip).
pub fn python(modules: &[&str], fix: &str) -> String {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let code = format!("import {}", modules.join(", "));
    match Command::new(&python).args(["-c", &code]).output() {
        Ok(o) if o.status.success() => python,
        Ok(o) => panic!(
            "this test needs Python 3 with {} ({python} -c '{code}' failed: {}): {fix} \
             (set PYTHON to use another interpreter; .ci/run installs them in its venv)",
            modules.join(" and "),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("this test needs Python 3 ({python} does not run: {e}): {fix}"),
    }
}

/// The MNIST directory of the tests.
pub fn mnist_dir() -> String {
    std::env::var("MNIST_DIR").expect("set MNIST_DIR to the directory with the four MNIST files")
}

/// The example script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/optuna_sweep.py")
}

/// A started worker: the example as a child process, its stdout and stderr in files.
pub struct Worker {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// What a worker printed and how it ended.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Worker {
    /// Starts `python examples/optuna_sweep.py ARGS`, writing its output to `log.out` and
    /// `log.err`.
    pub fn start(python: &str, args: &[String], log: &Path) -> Worker {
        let stdout = log.with_extension("out");
        let stderr = log.with_extension("err");
        let child = Command::new(python)
            .arg(script())
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("the Python interpreter starts");
        Worker {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for the worker, killing it and panicking after `limit`.
    pub fn wait(mut self, limit: Duration) -> Finished {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "examples/optuna_sweep.py ran over {limit:?}; its output:\n{}\n{}",
                    std::fs::read_to_string(&self.stdout).unwrap_or_default(),
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Finished {
            status,
            stdout: std::fs::read_to_string(&self.stdout).unwrap(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap(),
        }
    }
}

/// One trial of a study as Optuna's API reads it back.
#[derive(Debug)]
pub struct StudyTrial {
    pub number: u64,
    pub trial_id: u64,
    pub state: String,
    pub value: Option<f64>,
    pub params: BTreeMap<String, f64>,
    pub intermediate: BTreeMap<u64, f64>,
}

/// The trials of study `name` in `storage`, read with `optuna.load_study`.
pub fn study_trials(python: &str, storage: &str, name: &str) -> Vec<StudyTrial> {
    let code = "import json, sys, optuna\n\
        s = optuna.load_study(study_name=sys.argv[2], storage=sys.argv[1])\n\
        print(json.dumps([{'number': t.number, 'trial_id': t._trial_id, \
        'state': t.state.name, 'value': t.value, 'params': t.params, \
        'intermediate': {str(k): v for k, v in t.intermediate_values.items()}} \
        for t in s.get_trials(deepcopy=False)]))";
    let o = Command::new(python)
        .args(["-c", code, storage, name])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "reading the study back: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| StudyTrial {
            number: t["number"].as_u64().unwrap(),
            trial_id: t["trial_id"].as_u64().unwrap(),
            state: t["state"].as_str().unwrap().to_string(),
            value: t["value"].as_f64(),
            params: t["params"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
                .collect(),
            intermediate: t["intermediate"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.parse().unwrap(), v.as_f64().unwrap()))
                .collect(),
        })
        .collect()
}

/// What a population's `wgtrain sweep` wrote for one Optuna trial: its entry in
/// `pop-N/configs.json` and in `pop-N/sweep/trials.json`.
#[derive(Debug)]
pub struct SweepResult {
    /// The population's size.
    pub population: usize,
    pub config: Value,
    /// The trials.json entry; `None` when the sweep wrote none (wgtrain failed).
    pub trial: Option<Value>,
}

/// Every population a worker ran in `workdir`, by Optuna trial number.
pub fn sweep_results(workdir: &Path) -> BTreeMap<u64, SweepResult> {
    let read = |p: PathBuf| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap()
    };
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(workdir).unwrap() {
        let pop = e.unwrap().path();
        if !pop
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("pop-")
        {
            continue;
        }
        let numbers = read(pop.join("optuna_trials.json"));
        let configs = read(pop.join("configs.json"));
        let trials_json = pop.join("sweep/trials.json");
        let trials = trials_json.exists().then(|| read(trials_json));
        let numbers = numbers.as_array().unwrap();
        assert_eq!(numbers.len(), configs.as_array().unwrap().len());
        for (i, n) in numbers.iter().enumerate() {
            let trial = trials
                .as_ref()
                .and_then(|t| t.as_array().unwrap().iter().find(|t| t["id"] == i).cloned());
            let old = out.insert(
                n.as_u64().unwrap(),
                SweepResult {
                    population: numbers.len(),
                    config: configs[i].clone(),
                    trial,
                },
            );
            assert!(old.is_none(), "trial {n} ran in two populations");
        }
    }
    out
}

/// The trial numbers of the example's outcome lines (`trial N: ... -> ...` and
/// `trial N: told FAIL (...)`), in order.
pub fn told(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("trial ")?.split_once(':')?.0.parse().ok())
        .collect()
}

/// Checks a study the example's workers filled: `expected` trials numbered 0.. with
/// distinct ids, none left RUNNING or WAITING; each told once (one outcome line in one
/// worker's output); each with the state and value its population's trials.json gives
/// (COMPLETE: its final validation accuracy, which is also its last reported intermediate
/// value; PRUNED; FAIL: diverged, or no trials.json because wgtrain failed), and the params
/// its configs.json entry was written from.
pub fn check_study(
    trials: &[StudyTrial],
    expected: usize,
    results: &BTreeMap<u64, SweepResult>,
    outputs: &[&str],
) {
    assert_eq!(trials.len(), expected, "{trials:#?}");
    let mut numbers: Vec<u64> = trials.iter().map(|t| t.number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..expected as u64).collect::<Vec<_>>());
    let mut ids: Vec<u64> = trials.iter().map(|t| t.trial_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), expected, "trial ids repeat: {trials:#?}");
    let mut lines: Vec<u64> = outputs.iter().flat_map(|o| told(o)).collect();
    lines.sort_unstable();
    assert_eq!(
        lines, numbers,
        "each trial is told exactly once: {outputs:#?}"
    );
    for t in trials {
        let r = results
            .get(&t.number)
            .unwrap_or_else(|| panic!("trial {} is in no population's files", t.number));
        for (name, value) in &t.params {
            let written = r.config[name].as_f64().unwrap();
            let want = if name == "batch_size" {
                value.round()
            } else {
                *value
            };
            assert_eq!(written, want, "trial {}: {name}", t.number);
        }
        match r.trial.as_ref().map(|s| s["status"].as_str().unwrap()) {
            Some("complete") => {
                let acc = r.trial.as_ref().unwrap()["val_accuracy"].as_f64().unwrap();
                assert_eq!(t.state, "COMPLETE", "{t:?}");
                assert_eq!(t.value, Some(acc), "{t:?}");
                assert_eq!(t.intermediate.values().last(), Some(&acc), "{t:?}");
            }
            Some("pruned") => assert_eq!(t.state, "PRUNED", "{t:?}"),
            Some(_) | None => {
                assert_eq!(t.state, "FAIL", "{t:?}");
                assert_eq!(t.value, None, "{t:?}");
            }
        }
    }
}
