//! Output files: checked before a run does any work, so that a bad `--save` path fails in
//! the first second rather than after an hour of training; written atomically, so that an
//! interrupted write never leaves a broken file and never replaces anything but a regular
//! file. [`write_atomically_with`] is the crate's one "temporary file, then rename"
//! implementation; the data downloads stream through it too.

use std::io::Write;
use std::path::{Path, PathBuf};

pub use crate::atomic::write_atomically_with;
use crate::error::{Error, Result};

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::Output {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The directory a file path lives in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Creates and removes a probe file in `dir`: the one reliable test that a write will work.
fn probe(dir: &Path, what: &Path) -> Result<()> {
    let p = dir.join(format!(".wgtrain-probe-{}", std::process::id()));
    std::fs::File::create(&p)
        .map_err(|e| refuse(what, format!("cannot write in {}: {e}", dir.display())))?;
    // The probe was just created; failing to remove it only leaves an empty file behind.
    let _ = std::fs::remove_file(&p);
    Ok(())
}

/// What an output path names: one file, or a directory that receives several files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// One file (`--metrics`, `--save`, `--save-best`, `--trace`).
    File,
    /// A directory that receives several files (`--plot`, `--out`, `download --dir`); only
    /// its last component may be missing, and it is created when the files are written.
    Dir,
}

/// True when `dir` is the filesystem root (`/`), after resolving `.`, `..` and symlinks.
fn is_root(dir: &Path) -> bool {
    std::fs::canonicalize(dir).is_ok_and(|c| c.parent().is_none())
}

/// Checks the directory that will receive a new entry (a file, a temporary file or a new
/// directory): it exists, is a directory, is not the filesystem root, and is writable.
fn check_receiving_dir(dir: &Path, what: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(refuse(
                what,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Err(_) => {
            return Err(refuse(
                what,
                format!(
                    "the directory {} does not exist (parent directories are never created); \
                     create it first or choose another path",
                    dir.display()
                ),
            ));
        }
    }
    if is_root(dir) {
        return Err(refuse(
            what,
            "refusing to write into the filesystem root /; choose a path inside a directory",
        ));
    }
    probe(dir, what)
}

/// The one rule for every output path, checked before a command does any work (before the
/// adapter, the data and autotuning), so a bad path fails in the first second:
/// - the directory that receives the new file or directory must already exist (parents are
///   never created) and must not be the filesystem root `/`, and a probe file must be
///   creatable in it;
/// - a [`OutputKind::File`] path must not be a directory, and whatever is already there must
///   be a regular file (never a device or symlink, which an atomic rename would replace);
/// - a [`OutputKind::Dir`] path, if it exists, must be a directory (its files are written
///   into it, so it must not be `/` either).
///
/// Nothing is created or changed.
///
/// # Errors
/// [`Error::Output`] naming the path and the reason (the CLI exits with code 2).
pub fn check_output(path: &Path, kind: OutputKind) -> Result<()> {
    let existing = std::fs::symlink_metadata(path).ok();
    match kind {
        OutputKind::File => {
            if path.file_name().is_none() {
                return Err(refuse(path, "not a file name"));
            }
            match existing {
                Some(m) if m.is_dir() => {
                    return Err(refuse(
                        path,
                        "is a directory, not a regular file; give a file path inside it",
                    ));
                }
                Some(m) if !m.file_type().is_file() => {
                    return Err(refuse(
                        path,
                        "exists and is not a regular file; refusing to replace it",
                    ));
                }
                _ => {}
            }
            check_receiving_dir(parent_of(path), path)
        }
        OutputKind::Dir => match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => check_receiving_dir(path, path),
            Ok(_) => Err(refuse(
                path,
                "exists and is not a directory; give a directory for the output files",
            )),
            Err(_) if existing.is_some() => Err(refuse(
                path,
                "is a broken symlink; give a directory for the output files",
            )),
            Err(_) if path.file_name().is_none() => Err(refuse(path, "not a directory name")),
            Err(_) => check_receiving_dir(parent_of(path), path),
        },
    }
}

/// Checks that `path` can be written as a file: [`check_output`] with [`OutputKind::File`].
///
/// # Errors
/// [`Error::Output`] naming the path and the reason.
pub fn ensure_writable_file(path: &Path) -> Result<()> {
    check_output(path, OutputKind::File)
}

/// Checks `dir` with [`check_output`] ([`OutputKind::Dir`]), then creates it if it is
/// missing (its last component only: parents are never created).
///
/// # Errors
/// [`Error::Output`] naming the directory and the reason.
pub fn ensure_writable_dir(dir: &Path) -> Result<PathBuf> {
    check_output(dir, OutputKind::Dir)?;
    if !dir.is_dir() {
        std::fs::create_dir(dir)
            .map_err(|e| refuse(dir, format!("cannot create the directory: {e}")))?;
    }
    Ok(dir.to_path_buf())
}

/// True when `a` and `b` are one existing file, however named: the same (device, inode)
/// on unix, so a hard link or a symlink to a file is that file (comparing paths misses
/// both); elsewhere, the same canonical path. False when either does not exist.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, then renames it over
/// `path` ([`write_atomically_with`] after the [`check_output`] rule). Errors name `path`,
/// not the temporary file.
///
/// # Errors
/// [`Error::Output`] when `path` is not writable (see [`ensure_writable_file`]) or the
/// write fails; the previous file, if any, is left intact.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    ensure_writable_file(path)?;
    write_atomically_with(path, |file| file.write_all(bytes))
        .map_err(|e: std::io::Error| refuse(path, format!("write failed: {e}")))
}

/// One file of a set [`write_each`] writes: its name in the directory and what writes it.
pub type FileWriter<'a> = (&'a str, &'a dyn Fn(&Path) -> Result<()>);

/// Writes each of `files` into `dir`, every one tried even when an earlier one failed: one
/// output that fails (a full disk) does not keep the others from being written. Returns
/// the paths written.
///
/// # Errors
/// The first failure, naming its file (the others were tried).
pub fn write_each(dir: &Path, files: &[FileWriter<'_>]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut first_error = None;
    for (name, write) in files {
        let p = dir.join(name);
        match write(&p) {
            Ok(()) => written.push(p),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(written), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hard link and a symlink are the file they point at; two files with equal bytes,
    /// and a missing path, are not.
    #[test]
    fn same_file_compares_identity_not_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a"), b"x").unwrap();
        std::fs::write(d.join("copy"), b"x").unwrap();
        std::fs::hard_link(d.join("a"), d.join("hard")).unwrap();
        std::os::unix::fs::symlink(d.join("a"), d.join("soft")).unwrap();
        assert!(same_file(&d.join("a"), &d.join("hard")));
        assert!(same_file(&d.join("soft"), &d.join("hard")));
        assert!(same_file(&d.join("a"), &d.join(".").join("a")));
        assert!(!same_file(&d.join("a"), &d.join("copy")));
        assert!(!same_file(&d.join("a"), &d.join("missing")));
    }

    #[test]
    fn missing_directory_and_non_regular_targets_are_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let e = ensure_writable_file(&dir.path().join("no/such/m.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        let e = ensure_writable_file(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory, not a regular file"), "{e}");
        let target = dir.path().join("real");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = write_atomically(&link, b"new").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn atomic_write_replaces_a_regular_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let out = ensure_writable_dir(&dir.path().join("a")).unwrap();
        assert!(out.is_dir());
    }

    /// A streaming write that refuses what it wrote (a download whose checksum is wrong)
    /// leaves the previous file and no temporary behind; one that succeeds returns the
    /// closure's value.
    #[test]
    fn streaming_atomic_write_commits_only_when_the_writer_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("archive.zip");
        std::fs::write(&p, b"old").unwrap();
        let refused = write_atomically_with(&p, |file| {
            file.write_all(b"partial")?;
            Err::<(), _>(std::io::Error::other("checksum mismatch"))
        });
        assert_eq!(refused.unwrap_err().to_string(), "checksum mismatch");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let n = write_atomically_with(&p, |file| {
            file.write_all(b"new")?;
            Ok::<_, std::io::Error>(3)
        })
        .unwrap();
        assert_eq!((n, std::fs::read(&p).unwrap()), (3, b"new".to_vec()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Regression (issue 10, item 8): `--plot` into a missing directory created it, parents
    /// and all, even at the filesystem root, while `--save` refused; `--metrics` onto a
    /// directory failed only after the run. One rule now, for files and directories alike.
    #[test]
    fn one_output_path_rule_refuses_missing_parents_directories_and_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("file"), b"x").unwrap();
        let cases: [(PathBuf, OutputKind, &str); 9] = [
            (d.join("no/m.jsonl"), OutputKind::File, "does not exist"),
            (d.to_path_buf(), OutputKind::File, "is a directory"),
            (
                PathBuf::from("/wgtrain-out.jsonl"),
                OutputKind::File,
                "filesystem root",
            ),
            (
                d.join("file/m.jsonl"),
                OutputKind::File,
                "is not a directory",
            ),
            (d.join("no/plots"), OutputKind::Dir, "does not exist"),
            (d.join("a/b/c"), OutputKind::Dir, "does not exist"),
            (
                PathBuf::from("/wgtrain-plots"),
                OutputKind::Dir,
                "filesystem root",
            ),
            (PathBuf::from("/"), OutputKind::Dir, "filesystem root"),
            (d.join("file"), OutputKind::Dir, "is not a directory"),
        ];
        for (path, kind, needle) in cases {
            let e = check_output(&path, kind).unwrap_err();
            assert!(matches!(e, Error::Output { .. }), "{path:?}: {e:?}");
            let e = e.to_string();
            assert!(e.contains(needle), "{path:?} {kind:?}: {e}");
        }
        // Nothing was created by the checks, not even at the root.
        assert!(!Path::new("/wgtrain-plots").exists());
        assert!(!d.join("no").exists() && !d.join("a").exists());
        // What the rule accepts: a new file or directory in an existing directory, an
        // existing directory, an existing regular file (replaced when written).
        check_output(&d.join("m.jsonl"), OutputKind::File).unwrap();
        check_output(&d.join("file"), OutputKind::File).unwrap();
        check_output(&d.join("plots"), OutputKind::Dir).unwrap();
        check_output(d, OutputKind::Dir).unwrap();
        assert!(!d.join("plots").exists());
        assert_eq!(
            std::fs::read_dir(d).unwrap().count(),
            1,
            "probe files removed"
        );
    }
}
