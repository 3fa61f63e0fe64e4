//! Running `examples/optuna_sweep.py` (the `wgtrain` Python package's batched trials)
//! from tests and checking the study it leaves: every trial finished and told once. Shared
//! by `tests/examples.rs` (SQLite) and `tests/optuna_postgres.rs` (PostgreSQL); included
//! with `#[path]`.

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

    /// Waits until the worker's stdout has a line starting with `prefix` (panicking after
    /// `limit` or when it exits first).
    pub fn wait_for_line(&mut self, prefix: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            if out.lines().any(|l| l.starts_with(prefix)) {
                return;
            }
            if let Some(s) = self.child.try_wait().unwrap() {
                panic!(
                    "the worker exited ({s}) before printing `{prefix}`:\n{out}\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < limit,
                "no `{prefix}` line within {limit:?}:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the worker with SIGKILL (nothing of it runs after) and reaps it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
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
    /// The number of the failed trial this one retries (Optuna's retry callback).
    pub retried_from: Option<u64>,
}

/// Creates study `name` (maximizing) in `storage`, and with it Optuna's tables. Workers
/// started together on a fresh PostgreSQL database would race to create the tables (one
/// fails with a UniqueViolation on the `studydirection` type), so the study is created
/// first, as Optuna's distributed-optimization tutorial does; the workers then load it.
pub fn create_study(python: &str, storage: &str, name: &str) {
    let code = "import sys, optuna\n\
        optuna.create_study(storage=sys.argv[1], study_name=sys.argv[2], direction='maximize')";
    let o = Command::new(python)
        .args(["-c", code, storage, name])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "creating the study: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The trials of study `name` in `storage`, read with `optuna.load_study`.
pub fn study_trials(python: &str, storage: &str, name: &str) -> Vec<StudyTrial> {
    let code = "import json, sys, optuna, wgtrain.optuna\n\
        s = optuna.load_study(study_name=sys.argv[2], storage=sys.argv[1])\n\
        print(json.dumps([{'number': t.number, 'trial_id': t._trial_id, \
        'state': t.state.name, 'value': t.value, 'params': t.params, \
        'intermediate': {str(k): v for k, v in t.intermediate_values.items()}, \
        'retried_from': wgtrain.optuna.retried_from(t)} \
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
            retried_from: t["retried_from"].as_u64(),
        })
        .collect()
}

/// The trial numbers and outcomes of the example's lines (`trial N: PARAMS -> STATE ...`,
/// and `trial N: -> FAIL (...)` for a trial failed on the way out), in order.
pub fn told(stdout: &str) -> Vec<(u64, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (n, rest) = l.strip_prefix("trial ")?.split_once(':')?;
            let state = rest.split_once("-> ")?.1.split_whitespace().next()?;
            Some((n.parse().ok()?, state.to_string()))
        })
        .collect()
}

/// Checks a study the example's workers filled: `expected` trials numbered 0.. with
/// distinct ids, none left RUNNING or WAITING; each told once (one outcome line in one
/// worker's output, naming the state the storage holds), except the trials of `killed`
/// workers (their output is lost with them); a COMPLETE trial's value is its last
/// intermediate value (the validation accuracy of its last epoch).
pub fn check_study(trials: &[StudyTrial], expected: usize, outputs: &[&str]) {
    assert_eq!(trials.len(), expected, "{trials:#?}");
    let mut numbers: Vec<u64> = trials.iter().map(|t| t.number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..expected as u64).collect::<Vec<_>>());
    let mut ids: Vec<u64> = trials.iter().map(|t| t.trial_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), expected, "trial ids repeat: {trials:#?}");
    let lines: Vec<(u64, String)> = outputs.iter().flat_map(|o| told(o)).collect();
    let mut told_numbers: Vec<u64> = lines.iter().map(|l| l.0).collect();
    told_numbers.sort_unstable();
    let before = told_numbers.len();
    told_numbers.dedup();
    assert_eq!(
        before,
        told_numbers.len(),
        "a trial told twice: {outputs:#?}"
    );
    for t in trials {
        assert!(
            ["COMPLETE", "PRUNED", "FAIL"].contains(&t.state.as_str()),
            "trial {} left {}: {t:?}",
            t.number,
            t.state
        );
        if let Some((_, state)) = lines.iter().find(|l| l.0 == t.number) {
            assert_eq!(state, &t.state, "{t:?}");
        }
        if t.state == "COMPLETE" {
            assert_eq!(t.value, t.intermediate.values().last().copied(), "{t:?}");
            let steps: Vec<u64> = t.intermediate.keys().copied().collect();
            assert_eq!(steps, (1..=steps.len() as u64).collect::<Vec<_>>(), "{t:?}");
        }
    }
}
