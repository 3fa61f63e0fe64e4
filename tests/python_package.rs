//! The Python package (`python/`): its own tests (`python/tests`, pytest) run from
//! `cargo test`, against the package installed in the tests' interpreter ($PYTHON, else
//! python3). A missing package, pytest, optuna or safetensors fails naming the fix, and so
//! does a package installed from other sources than these (its Python files differ, or its
//! extension is older than the Rust sources): `pip install ./python` again. Never skips.

// Each test binary uses part of the shared helpers.
#[allow(dead_code)]
#[path = "common/optuna.rs"]
mod optuna;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Newest modification time of the files under `dir` (recursively).
fn newest(dir: &Path) -> SystemTime {
    let mut t = SystemTime::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = if p.is_dir() {
            newest(&p)
        } else {
            p.metadata().unwrap().modified().unwrap()
        };
        t = t.max(m);
    }
    t
}

/// The installed package's directory and its extension module's path.
fn installed(python: &str) -> (PathBuf, PathBuf) {
    let o = Command::new(python)
        .args([
            "-c",
            "import os, wgtrain, wgtrain._wgtrain as m; \
             print(os.path.dirname(wgtrain.__file__)); print(m.__file__)",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let mut lines = text.lines();
    (
        PathBuf::from(lines.next().unwrap()),
        PathBuf::from(lines.next().unwrap()),
    )
}

#[test]
fn the_python_package_is_installed_from_these_sources_and_passes_its_tests() {
    let fix = "pip install ./python pytest optuna safetensors";
    let python = optuna::python(&["wgtrain", "pytest", "optuna", "safetensors"], fix);
    let (package, extension) = installed(&python);
    let source = root().join("python/wgtrain");
    for e in std::fs::read_dir(&source).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap();
        if p.extension().is_some_and(|x| x == "py" || x == "pyi") {
            let copy = package.join(name);
            assert!(
                std::fs::read(&copy).ok() == Some(std::fs::read(&p).unwrap()),
                "{} differs from {}: the installed wgtrain package is not these sources; \
                 {python} -m pip install ./python",
                copy.display(),
                p.display()
            );
        }
    }
    let built = extension.metadata().unwrap().modified().unwrap();
    for dir in ["src", "shaders", "python/src"] {
        assert!(
            built >= newest(&root().join(dir)),
            "{} is older than {dir}/: rebuild it with {python} -m pip install ./python",
            extension.display()
        );
    }
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"])
        .arg(root().join("python/tests"))
        .current_dir(root())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pytest python/tests failed:\n{text}");
    assert!(
        !text.contains("skipped"),
        "no Python test may skip:\n{text}"
    );
    assert!(text.contains(" passed"), "{text}");
}
