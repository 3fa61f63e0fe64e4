//! The command-line tests' helpers (tests/cli.rs, tests/cli_sweep.rs): run the binary,
//! read its stderr, and assert a usage error (exit 2, one error line naming the problem).
#![allow(dead_code)]

use std::process::{Command, Output};

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
