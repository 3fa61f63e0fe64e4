//! `examples/optuna_sweep.py` (the `wgtrain` package's batched trials) as users run it
//! across machines: one study in a real PostgreSQL server, two workers asking, training
//! and telling at once; and a worker killed with SIGKILL whose trials the heartbeat fails
//! and Optuna retries. The tests start their own throwaway server (initdb into a
//! temporary directory, listening only on a Unix socket there, run as the `postgres` user,
//! else `nobody`, when the test runs as root), and check with Optuna's API that the study
//! holds exactly the trials the workers asked for, each finished and told once.
//!
//! Needs PostgreSQL's server programs (Debian: `apt-get install postgresql`; found on
//! PATH or in /usr/lib/postgresql/VERSION/bin) and Python 3 with `pip install optuna
//! psycopg2-binary ./python` ($PYTHON, else python3); `.ci/run` installs them. Without
//! them the tests fail naming the fix; they never skip.

#[path = "common/optuna.rs"]
mod optuna;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use optuna::{Worker, check_study, mnist_dir, python, study_trials};

/// The directory with initdb, pg_ctl and createdb: the newest
/// /usr/lib/postgresql/VERSION/bin (Debian keeps them off PATH), else PATH's.
fn postgres_bin() -> PathBuf {
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).find(|d| d.join("initdb").exists()))
        .unwrap_or_else(|| {
            panic!(
                "this test needs PostgreSQL's server programs (initdb, pg_ctl), found neither \
                 in /usr/lib/postgresql/VERSION/bin nor on PATH: apt-get install postgresql \
                 (the test starts its own throwaway server; .ci/run installs it)"
            )
        })
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `id ARGS`' output, trimmed.
fn id(args: &[&str]) -> Option<String> {
    let o = Command::new("id").args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// A PostgreSQL server in a temporary directory, stopped when dropped.
struct Server {
    pg_ctl: Vec<String>,
    data: PathBuf,
    log: PathBuf,
    /// The directory of its Unix socket (it listens on no TCP port).
    socket: PathBuf,
    port: u16,
}

impl Server {
    /// initdb, then pg_ctl start, in `dir` (which must be empty). The database superuser is
    /// `wgtrain`, trusted on the socket.
    fn start(dir: &Path) -> Server {
        let bin = postgres_bin();
        let socket = dir.join("pg");
        std::fs::create_dir(&socket).unwrap();
        // PostgreSQL refuses to run as root: a root test runs it as another user, who must
        // reach and own its directory.
        let runner: Vec<String> = if id(&["-u"]).as_deref() == Some("0") {
            let user = ["postgres", "nobody"]
                .into_iter()
                .find(|u| id(&["-u", u]).is_some())
                .expect("the test runs as root and needs a user `postgres` or `nobody` to run PostgreSQL as");
            let uid = id(&["-u", user]).unwrap().parse().unwrap();
            let gid = id(&["-g", user]).unwrap().parse().unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::os::unix::fs::chown(&socket, Some(uid), Some(gid)).unwrap();
            vec!["runuser".into(), "-u".into(), user.into(), "--".into()]
        } else {
            Vec::new()
        };
        let run = |program: &str, args: &[&str]| -> Output {
            let mut argv = runner.clone();
            argv.push(bin.join(program).to_string_lossy().into_owned());
            argv.extend(args.iter().map(|a| a.to_string()));
            Command::new(&argv[0])
                .args(&argv[1..])
                .output()
                .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
        };
        let data = socket.join("data");
        let log = socket.join("server.log");
        let d = data.to_str().unwrap();
        let o = run(
            "initdb",
            &[
                "-D",
                d,
                "-U",
                "wgtrain",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        assert!(o.status.success(), "initdb failed: {}", text(&o));
        let port = 5432;
        let options = format!(
            "-c listen_addresses= -c unix_socket_directories={} -p {port} -c fsync=off",
            socket.display()
        );
        let mut pg_ctl = runner.clone();
        pg_ctl.push(bin.join("pg_ctl").to_string_lossy().into_owned());
        let server = Server {
            pg_ctl,
            data: data.clone(),
            log: log.clone(),
            socket: socket.clone(),
            port,
        };
        let o = run(
            "pg_ctl",
            &[
                "-D",
                d,
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            o.status.success(),
            "pg_ctl start failed: {}\nserver log:\n{}",
            text(&o),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        server
    }

    /// Creates database `name`.
    fn create_database(&self, name: &str) {
        let o = Command::new(postgres_bin().join("createdb"))
            .args(["-h", self.socket.to_str().unwrap()])
            .args(["-p", &self.port.to_string(), "-U", "wgtrain", name])
            .output()
            .unwrap();
        assert!(o.status.success(), "createdb {name}: {}", text(&o));
    }

    /// The SQLAlchemy URL of database `name` (psycopg2 over the Unix socket).
    fn url(&self, name: &str) -> String {
        format!(
            "postgresql+psycopg2://wgtrain@/{name}?host={}&port={}",
            self.socket.display(),
            self.port
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(&self.pg_ctl[0])
            .args(&self.pg_ctl[1..])
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
        if std::thread::panicking() {
            eprintln!(
                "PostgreSQL server log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// The example's arguments for one worker on `storage`'s study `study`: small CPU trials
/// of one hidden layer on the first `subset` MNIST samples, then `extra`.
fn worker_args(storage: &str, study: &str, subset: usize, extra: &[&str]) -> Vec<String> {
    let data = mnist_dir();
    let mut args: Vec<String> = [
        "--storage",
        storage,
        "--study",
        study,
        "--device",
        "cpu",
        "--data",
        &data,
        "--train-subset",
        &subset.to_string(),
        "--hidden",
        "64",
        "--lr",
        "0.01:0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A fresh database `name` on a throwaway server, and the server (stopped when dropped).
fn database(dir: &Path, name: &str) -> (Server, String) {
    let server = Server::start(dir);
    server.create_database(name);
    let url = server.url(name);
    (server, url)
}

#[test]
fn two_optuna_workers_share_one_postgresql_study_and_tell_every_trial_once() {
    let python = python(
        &["optuna", "psycopg2", "wgtrain"],
        "pip install optuna psycopg2-binary ./python",
    );
    let dir = tempfile::Builder::new()
        .prefix("wgtrain-pg")
        .tempdir_in("/tmp")
        .unwrap();
    let (_server, storage) = database(dir.path(), "optuna");
    optuna::create_study(&python, &storage, "shared");
    // Populations of 2, 3 trials each: a population refilled once per worker.
    let per_worker = 3;
    let workers: Vec<Worker> = [1u64, 1001]
        .iter()
        .map(|seed| {
            let args = worker_args(
                &storage,
                "shared",
                300,
                &[
                    "--trials",
                    &per_worker.to_string(),
                    "--population",
                    "2",
                    "--seed",
                    &seed.to_string(),
                    "--epochs",
                    "1",
                    "--pruner",
                    "none",
                ],
            );
            let log = dir.path().join(format!("worker-{seed}.log"));
            Worker::start(&python, &args, &log)
        })
        .collect();
    let mut outputs = Vec::new();
    for w in workers {
        let f = w.wait(Duration::from_secs(300));
        assert!(
            f.status.success(),
            "a worker failed: {}\n{}",
            f.stdout,
            f.stderr
        );
        let best: serde_json::Value =
            serde_json::from_str(f.stdout.lines().last().expect("the best trial")).unwrap();
        assert_eq!(best["state"], "COMPLETE", "{}", f.stdout);
        assert_eq!(optuna::told(&f.stdout).len(), per_worker, "{}", f.stdout);
        outputs.push(f.stdout);
    }
    let trials = study_trials(&python, &storage, "shared");
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    check_study(&trials, 2 * per_worker, &outputs);
    // lr 0.01 to 0.1 for one epoch neither diverges nor is pruned (pruning is off): every
    // trial completed, with an accuracy on the 30 validation samples (0.1 of 300).
    for t in &trials {
        assert_eq!(t.state, "COMPLETE", "{t:?}");
        let v = t.value.unwrap();
        assert!(
            (0.0..=1.0).contains(&v) && (v * 30.0 - (v * 30.0).round()).abs() < 1e-9,
            "{t:?}"
        );
    }
}

/// Issue 24: a worker killed with SIGKILL (no cleanup runs) loses no trial. It held its
/// trials RUNNING with a heartbeat; the next worker, before asking, fails the trials whose
/// heartbeat stopped, and Optuna's retry callback (wgtrain.optuna.heartbeat_storage) queues
/// a copy of each (same parameters), which that worker asks and trains: every killed trial
/// has a finished retry.
#[test]
fn a_worker_killed_by_sigkill_has_its_trials_failed_by_heartbeat_and_retried() {
    let python = python(
        &["optuna", "psycopg2", "wgtrain"],
        "pip install optuna psycopg2-binary ./python",
    );
    let dir = tempfile::Builder::new()
        .prefix("wgtrain-pg")
        .tempdir_in("/tmp")
        .unwrap();
    let (_server, storage) = database(dir.path(), "optuna");
    let heartbeat = ["--heartbeat", "1", "--pruner", "none", "--population", "2"];
    // A: 2 trials of 20 epochs on 20,000 samples (tens of seconds), killed as soon as its
    // population has opened (its trials are RUNNING in the database).
    let mut a = Worker::start(
        &python,
        &worker_args(
            &storage,
            "killed",
            20000,
            &[&heartbeat[..], &["--trials", "2", "--epochs", "20"]].concat(),
        ),
        &dir.path().join("a.log"),
    );
    a.wait_for_line("population 1:", Duration::from_secs(300));
    a.kill();
    let held = study_trials(&python, &storage, "killed");
    assert_eq!(held.len(), 2, "{held:#?}");
    assert!(held.iter().all(|t| t.state == "RUNNING"), "{held:#?}");
    // Past the grace period (2 heartbeats) the killed worker's trials are stale.
    std::thread::sleep(Duration::from_secs(4));
    let b = Worker::start(
        &python,
        &worker_args(
            &storage,
            "killed",
            300,
            &[&heartbeat[..], &["--trials", "3", "--epochs", "1"]].concat(),
        ),
        &dir.path().join("b.log"),
    )
    .wait(Duration::from_secs(300));
    assert!(b.status.success(), "{}\n{}", b.stdout, b.stderr);
    let trials = study_trials(&python, &storage, "killed");
    check_study(&trials, 5, &[&b.stdout]);
    for killed in &held {
        let t = &trials[killed.number as usize];
        assert_eq!(t.state, "FAIL", "failed by the heartbeat check: {t:?}");
        let retry = trials
            .iter()
            .find(|r| r.retried_from == Some(killed.number))
            .unwrap_or_else(|| panic!("trial {} was not retried: {trials:#?}", killed.number));
        assert_eq!(retry.params, killed.params, "{retry:?}");
        assert_eq!(retry.state, "COMPLETE", "{retry:?}");
    }
    // B told its three trials (the two retries and one new one) once each.
    assert_eq!(optuna::told(&b.stdout).len(), 3, "{}", b.stdout);
}
