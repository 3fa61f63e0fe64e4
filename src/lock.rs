//! Advisory locks on output paths, so that two runs never write the same `--save`,
//! `--metrics` or sweep `--out` at once (the second would truncate the first's metrics
//! file and the last to finish would win the checkpoint).
//!
//! The lock of a file `out/m.csv` is `out/m.csv.lock` beside it; the lock of a directory
//! `sweep/` is `sweep/.wgtrain.lock` inside it. The lock file holds the PID of the run that
//! holds it, so the refusal can name it; the lock itself is an exclusive `flock` (through
//! the `fs4` crate), which the kernel drops when the process ends, however it ends. A lock
//! file left by a killed run is therefore stale, not locked, and the next run takes it
//! over. [`OutputLock`] removes its file when dropped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// An exclusive advisory lock on one output path, held until dropped.
#[derive(Debug)]
pub struct OutputLock {
    /// Held open: closing it releases the `flock`.
    file: File,
    lock_path: PathBuf,
}

/// Where the lock of `output` lives: `<output>.lock` for a file, `<dir>/.wgtrain.lock` for
/// an existing directory.
pub fn lock_path(output: &Path) -> PathBuf {
    if output.is_dir() {
        return output.join(".wgtrain.lock");
    }
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "output".into());
    name.push(".lock");
    output.with_file_name(name)
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The PID written in a lock file, when it holds one.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// True when `file` is still the file at `path` (not unlinked by a holder that finished
/// between our open and our lock).
#[cfg(unix)]
fn still_linked(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_linked(_file: &File, path: &Path) -> bool {
    path.exists()
}

impl OutputLock {
    /// Takes the lock of `output` (a file or an existing directory) without waiting, and
    /// writes this process's PID into the lock file.
    ///
    /// # Errors
    /// [`Error::Locked`] naming `output` and the PID of the run holding it; [`Error::Io`]
    /// when the lock file cannot be created.
    pub fn acquire(output: &Path) -> Result<OutputLock> {
        let lock_path = lock_path(output);
        // A holder that finishes removes its file: if it did so between our open and our
        // lock, we hold a lock on an unlinked file and must open the new one.
        for _ in 0..8 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(io_err(&lock_path))?;
            // Called through the trait: since Rust 1.89 `File` has an inherent `try_lock`
            // that the 1.87 MSRV lacks.
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => {}
                Err(fs4::TryLockError::WouldBlock) => {
                    return Err(Error::Locked {
                        path: output.to_path_buf(),
                        pid: read_pid(&mut file),
                    });
                }
                Err(fs4::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
            }
            if !still_linked(&file, &lock_path) {
                continue;
            }
            (|| -> std::io::Result<()> {
                file.set_len(0)?;
                file.rewind()?;
                writeln!(file, "{}", std::process::id())?;
                file.flush()
            })()
            .map_err(io_err(&lock_path))?;
            return Ok(OutputLock { file, lock_path });
        }
        Err(io_err(&lock_path)(std::io::Error::other(
            "the lock file keeps being replaced by other runs",
        )))
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.lock_path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still locked, so no other run can be holding this file; closing
        // `file` afterwards releases the lock. A failed removal only leaves a stale file,
        // which the next run takes over.
        let _ = std::fs::remove_file(&self.lock_path);
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

/// Locks every path of `outputs` (see [`OutputLock::acquire`]), in order; the locks taken
/// so far are released when one fails.
///
/// # Errors
/// As [`OutputLock::acquire`].
pub fn lock_all<'a>(outputs: impl IntoIterator<Item = &'a Path>) -> Result<Vec<OutputLock>> {
    let mut locks: Vec<OutputLock> = Vec::new();
    for p in outputs {
        // One path named twice (`--save m --save-best m`) is one lock, not a conflict
        // with this very run.
        if locks.iter().any(|l| l.lock_path == lock_path(p)) {
            continue;
        }
        locks.push(OutputLock::acquire(p)?);
    }
    Ok(locks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_output_is_refused_naming_the_pid_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("metrics.jsonl");
        let first = OutputLock::acquire(&out).unwrap();
        assert_eq!(first.path(), dir.path().join("metrics.jsonl.lock"));
        assert_eq!(
            std::fs::read_to_string(first.path()).unwrap().trim(),
            std::process::id().to_string()
        );
        // flock locks belong to open file descriptions, so a second open in this process
        // conflicts just as another process would.
        let e = OutputLock::acquire(&out).unwrap_err();
        assert!(
            matches!(&e, Error::Locked { pid: Some(p), .. } if *p == std::process::id()),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "{} is being written by another wgtrain run (PID {}); wait for it or choose another path",
                out.display(),
                std::process::id()
            )
        );
        drop(first);
        assert!(!dir.path().join("metrics.jsonl.lock").exists());
        let again = OutputLock::acquire(&out).unwrap();
        drop(again);
    }

    #[test]
    fn a_stale_lock_file_left_by_a_killed_run_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.safetensors");
        // What a run killed with SIGKILL leaves: the file with its PID, but no flock.
        std::fs::write(dir.path().join("m.safetensors.lock"), "999999\n").unwrap();
        let lock = OutputLock::acquire(&out).unwrap();
        assert_eq!(
            std::fs::read_to_string(lock.path()).unwrap().trim(),
            std::process::id().to_string()
        );
    }

    #[test]
    fn one_path_named_twice_is_locked_once() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.safetensors");
        let locks = lock_all([out.as_path(), out.as_path()]).unwrap();
        assert_eq!(locks.len(), 1);
    }

    #[test]
    fn a_directory_is_locked_by_a_file_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let lock = OutputLock::acquire(dir.path()).unwrap();
        assert_eq!(lock.path(), dir.path().join(".wgtrain.lock"));
        assert!(matches!(
            OutputLock::acquire(dir.path()),
            Err(Error::Locked { .. })
        ));
    }
}
