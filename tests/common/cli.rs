//! The command-line tests' helpers (tests/cli*.rs, tests/run_control.rs): run the binary
//! (to its end, or as a child to signal), read its stderr and output files, and assert a
//! usage error (exit 2, one error line naming the problem).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn wgtrain(args: &[&str]) -> Output {
    wgtrain_env(args, &[])
}

/// Runs the binary with extra environment variables (`MNIST_DIR`, ...).
pub fn wgtrain_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

/// Lines of stderr that are wgtrain's errors (Mesa's headless XDG_RUNTIME_DIR line is not).
pub fn error_lines(err: &str) -> usize {
    err.lines()
        .filter(|l| l.starts_with("error") && !l.contains("XDG_RUNTIME_DIR"))
        .count()
}

pub fn mnist_dir() -> String {
    std::env::var("MNIST_DIR").expect("set MNIST_DIR to the directory with the four MNIST files")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the binary in `dir` to its end.
pub fn wgtrain_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

/// A child `wgtrain` that is killed if the test ends before it does.
pub struct Run(pub Option<Child>);

impl Run {
    pub fn start(dir: &Path, args: &[&str]) -> Run {
        let child = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        Run(Some(child))
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    pub fn sigint(&self) {
        self.signal("INT");
    }

    /// Sends the signal `name` (`INT`, `TERM`, `KILL`) to the child.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{name} {} failed", self.pid());
    }

    /// Waits for the child to exit, at most `limit`.
    pub fn finish(mut self, limit: Duration) -> Output {
        let start = Instant::now();
        let child = self.0.as_mut().unwrap();
        while child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < limit,
                "wgtrain did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `ready` every 20 ms until it holds, at most `limit`; fails at once, with the
/// child's output, if `run` exits first (a crashed run would otherwise cost the whole limit).
pub fn wait_for(run: &mut Run, what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        let child = run.0.as_mut().unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            let out = run.0.take().unwrap().wait_with_output().unwrap();
            panic!(
                "wgtrain exited ({status}) before {what}; stderr: {}",
                stderr(&out)
            );
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `args` followed by `extra`.
pub fn with(args: &[String], extra: &[&str]) -> Vec<String> {
    args.iter()
        .cloned()
        .chain(extra.iter().map(|s| s.to_string()))
        .collect()
}

/// `v` as the `&str`s [`wgtrain_in`] takes.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs the binary in `dir` with `args` and asserts a refusal: exit 2, and stderr holding
/// every one of `needles`.
#[track_caller]
pub fn refused(dir: &Path, args: &[String], needles: &[&str]) {
    let o = wgtrain_in(dir, &strs(args));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}: {err}");
    }
}

/// The lines of a text file (none when it does not exist yet).
pub fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[track_caller]
pub fn assert_usage_error(args: &[&str], needle: &str) {
    let o = wgtrain(args);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{args:?} should exit 2; stderr: {err}"
    );
    assert!(
        err.contains(needle),
        "{args:?}: stderr lacks {needle:?}: {err}"
    );
    // Mesa's Wayland client prints an XDG_RUNTIME_DIR line on headless machines; not ours.
    let error_lines = err
        .lines()
        .filter(|l| l.starts_with("error") && !l.contains("XDG_RUNTIME_DIR"))
        .count();
    assert_eq!(error_lines, 1, "{args:?}: expected one error line: {err}");
}

/// A tmpfs of a few KiB mounted on a fresh temporary directory, unmounted when dropped: a
/// disk that fills up, for the tests of failed writes. Mounting needs root, which CI has
/// (`.ci/run` runs as root); without it the test fails, saying so, and never skips.
pub struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    /// Mounts a tmpfs of `kib` KiB (tmpfs counts whole 4 KiB pages).
    pub fn mount(kib: usize) -> TinyFs {
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            o.status.success(),
            "mounting a {kib} KiB tmpfs failed; the disk-full tests need root (as CI runs): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        TinyFs { dir }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Gives the filesystem `kib` KiB (space freed on the full disk).
    pub fn resize(&self, kib: usize) {
        let o = Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(self.path())
            .output()
            .expect("mount runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// Fills the filesystem with one file of zeros, until a write fails.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join("filler")).unwrap();
        while f.write_all(&[0; 1024]).is_ok() {}
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Copies the four MNIST `.gz` files into `dir`.
pub fn copy_mnist(dir: &std::path::Path) {
    let src = mnist_dir();
    for f in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(std::path::Path::new(&src).join(f), dir.join(f)).unwrap();
    }
}

/// Writes a freshly initialised checkpoint of `inputs`-`hidden`-`classes`.
pub fn write_model(path: &std::path::Path, inputs: usize, classes: usize) {
    let spec = wgtrain::model::MlpSpec::new(inputs, &[8], classes).unwrap();
    wgtrain::checkpoint::save(
        path,
        &spec,
        &spec.init(1),
        wgtrain::model::Normalization::UNIT,
    )
    .unwrap();
}

/// The flags of a tiny sweep (2 grid trials of 1 epoch on 300 samples, CPU) into `out`.
pub fn tiny_sweep_args(data: &str, out: &str) -> Vec<String> {
    [
        "sweep",
        "--device",
        "cpu",
        "--data",
        data,
        "--train-subset",
        "300",
        "--hidden",
        "8",
        "--search",
        "grid",
        "--lr",
        "0.05,0.1",
        "--epochs",
        "1",
        "--pruning",
        "none",
        "--quiet",
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
