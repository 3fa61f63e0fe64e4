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
//!
//! A directory's lock covers what is inside it: a file output inside a directory that
//! another run holds (`train --save sweep/best_trial.safetensors` while a sweep writes
//! `sweep/`) is refused, and so is a directory output holding a file (or a directory)
//! that another run is writing. A lock file that cannot be written (a full disk) is
//! removed again, never left behind empty.

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
        return output.join(DIR_LOCK);
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
    /// writes this process's PID into the lock file. The directories above `output` and,
    /// for a directory, the outputs inside it must not be held by another run.
    ///
    /// # Errors
    /// [`Error::Locked`] naming `output` and the PID of the run holding it;
    /// [`Error::LockedInside`] / [`Error::LockedWithin`] when a directory above it, or an
    /// output inside it, is held; [`Error::Io`] when the lock file cannot be created or
    /// written (it is then removed).
    pub fn acquire(output: &Path) -> Result<OutputLock> {
        OutputLock::acquire_beside(output, &[])
    }

    /// [`OutputLock::acquire`], where `own` are lock files this process already holds
    /// (a sweep's `--out`, when it then locks `--save-best` inside it).
    fn acquire_beside(output: &Path, own: &[PathBuf]) -> Result<OutputLock> {
        check_surroundings(output, own)?;
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
            let written = (|| -> std::io::Result<()> {
                file.set_len(0)?;
                file.rewind()?;
                writeln!(file, "{}", std::process::id())?;
                file.flush()
            })();
            if let Err(e) = written {
                // We hold the lock, so no other run uses this file: remove it rather than
                // leave an empty lock file behind (a full disk did).
                let _ = std::fs::remove_file(&lock_path);
                let _ = fs4::FileExt::unlock(&file);
                return Err(io_err(&lock_path)(e));
            }
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

/// The PID in the lock file at `lock`, when another run holds it (its exclusive `flock` is
/// taken); `None` when the file is missing, or free (stale, or being released).
fn held_by_another(lock: &Path) -> Option<Option<u32>> {
    let mut file = File::open(lock).ok()?;
    match fs4::FileExt::try_lock_shared(&file) {
        Err(fs4::TryLockError::WouldBlock) => Some(read_pid(&mut file)),
        // Free: our shared lock goes when `file` closes.
        _ => None,
    }
}

/// `path` with its directory resolved (symlinks, `..`), when it exists.
fn canonical(path: &Path) -> Option<PathBuf> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = parent.unwrap_or(Path::new(".")).canonicalize().ok()?;
    Some(dir.join(path.file_name()?))
}

/// Deepest directory levels searched below a directory output for held locks.
const INSIDE_DEPTH: usize = 4;

/// Refuses `output` when a directory above it is held by another run, or when it is a
/// directory holding an output (at most [`INSIDE_DEPTH`] levels down) another run holds.
/// `own` are lock files this process holds, which are not conflicts.
fn check_surroundings(output: &Path, own: &[PathBuf]) -> Result<()> {
    let own: Vec<PathBuf> = own.iter().filter_map(|p| canonical(p)).collect();
    let mine = |lock: &Path| canonical(lock).is_some_and(|c| own.contains(&c));
    let Some(at) = canonical(output) else {
        return Ok(());
    };
    for dir in at.ancestors().skip(1) {
        let lock = dir.join(DIR_LOCK);
        if mine(&lock) {
            continue;
        }
        if let Some(pid) = held_by_another(&lock) {
            return Err(Error::LockedInside {
                path: output.to_path_buf(),
                dir: dir.to_path_buf(),
                pid,
            });
        }
    }
    if output.is_dir() {
        let mut stack = vec![(output.to_path_buf(), 0)];
        while let Some((dir, depth)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() && depth < INSIDE_DEPTH {
                    stack.push((path, depth + 1));
                    continue;
                }
                let name = entry.file_name();
                let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
                    continue;
                };
                let own_dir_lock = dir.as_path() == output && name == DIR_LOCK;
                // The directory's own lock is `acquire`'s to take, not a conflict.
                if kind.is_dir() || own_dir_lock || mine(&path) {
                    continue;
                }
                if let Some(pid) = held_by_another(&path) {
                    let inner = if name == DIR_LOCK {
                        dir.clone()
                    } else {
                        dir.join(stem)
                    };
                    return Err(Error::LockedWithin {
                        dir: output.to_path_buf(),
                        path: inner,
                        pid,
                    });
                }
            }
        }
    }
    Ok(())
}

/// The name of a directory's lock file, inside it.
const DIR_LOCK: &str = ".wgtrain.lock";

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still locked, so no other run can be holding this file; closing
        // `file` afterwards releases the lock. A failed removal only leaves a stale file,
        // which the next run takes over.
        let _ = std::fs::remove_file(&self.lock_path);
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

/// Refuses an output a run writes without locking it (a `--tensorboard` run folder, whose
/// event files have names of their own) when it lies inside a directory another run holds,
/// or holds an output another run is writing. `own` are this run's locks, no conflict.
///
/// # Errors
/// [`Error::LockedInside`] / [`Error::LockedWithin`], as [`OutputLock::acquire`].
pub fn check_unheld(output: &Path, own: &[OutputLock]) -> Result<()> {
    let own: Vec<PathBuf> = own.iter().map(|l| l.lock_path.clone()).collect();
    check_surroundings(output, &own)
}

/// Locks every path of `outputs` (see [`OutputLock::acquire`]), in order; the locks taken
/// so far are released when one fails. Each output's stale temporary files (a run killed
/// mid-write left them) are removed once it is locked
/// ([`crate::atomic::remove_stale_temporaries`]).
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
        let own: Vec<PathBuf> = locks.iter().map(|l| l.lock_path.clone()).collect();
        locks.push(OutputLock::acquire_beside(p, &own)?);
        // Now the only writer of `p`: what a killed run's atomic writes left is stale.
        crate::atomic::remove_stale_temporaries(p);
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

    /// Regression (issue 25, item 4): while a sweep held `sweep/`, `train --save
    /// sweep/best_trial.safetensors` and `--metrics sweep/trials.json` ran and replaced the
    /// sweep's files. A file output inside a held directory (at any depth) is refused,
    /// naming the directory and its holder; so is a directory output holding a file or a
    /// directory another run holds. Stale lock files, and this run's own locks, are no
    /// conflict.
    #[test]
    fn regression_a_held_directory_covers_the_outputs_inside_it() {
        let root = tempfile::tempdir().unwrap();
        let sweep = root.path().join("sweep");
        std::fs::create_dir_all(sweep.join("plots")).unwrap();
        let held = OutputLock::acquire(&sweep).unwrap();
        for inside in [
            sweep.join("best_trial.safetensors"),
            sweep.join("trials.json"),
            sweep.join("plots").join("m.jsonl"),
            sweep.join("plots"),
        ] {
            let e = OutputLock::acquire(&inside).unwrap_err();
            assert!(
                matches!(&e, Error::LockedInside { dir, pid: Some(p), .. }
                    if dir.ends_with("sweep") && *p == std::process::id()),
                "{inside:?}: {e:?}"
            );
            assert!(
                e.to_string().contains("which another wgtrain run (PID"),
                "{e}"
            );
            assert!(
                !lock_path(&inside).exists() || inside.is_dir(),
                "{inside:?}"
            );
        }
        drop(held);
        let file = OutputLock::acquire(&sweep.join("plots").join("m.jsonl")).unwrap();
        let e = OutputLock::acquire(&sweep).unwrap_err();
        assert!(
            matches!(&e, Error::LockedWithin { path, .. } if path.ends_with("plots/m.jsonl")),
            "{e:?}"
        );
        drop(file);
        let plots = OutputLock::acquire(&sweep.join("plots")).unwrap();
        let e = OutputLock::acquire(&sweep).unwrap_err();
        assert!(
            matches!(&e, Error::LockedWithin { path, .. } if path.ends_with("plots")),
            "{e:?}"
        );
        drop(plots);
        // An output that is not locked (a TensorBoard folder) is checked the same way.
        let held = OutputLock::acquire(&sweep).unwrap();
        assert!(matches!(
            check_unheld(&sweep.join("tb"), &[]),
            Err(Error::LockedInside { .. })
        ));
        check_unheld(&sweep.join("tb"), std::slice::from_ref(&held)).unwrap();
        drop(held);
        // A stale lock inside (a killed run's) blocks nothing; a run's own locks neither.
        std::fs::write(sweep.join("old.jsonl.lock"), "999999\n").unwrap();
        std::fs::write(sweep.join("plots").join(".wgtrain.lock"), "999999\n").unwrap();
        let locks = lock_all([sweep.as_path(), &sweep.join("best.safetensors")]).unwrap();
        assert_eq!(locks.len(), 2);
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
