//! Output files: checked before a run does any work, so that a bad `--save` path fails in
//! the first second rather than after an hour of training; written atomically, so that an
//! interrupted write never leaves a broken file and never replaces anything but a regular
//! file.

use std::io::Write;
use std::path::{Path, PathBuf};

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

/// Checks that `path` can be written as a file: its directory exists and is writable, and
/// whatever is already at `path` is a regular file (never a device, directory or symlink,
/// which an atomic rename would replace).
///
/// # Errors
/// [`Error::Output`] naming the path and the reason.
pub fn ensure_writable_file(path: &Path) -> Result<()> {
    if path.file_name().is_none() {
        return Err(refuse(path, "not a file name"));
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_file() {
            return Err(refuse(
                path,
                "exists and is not a regular file; refusing to replace it",
            ));
        }
    }
    let dir = parent_of(path);
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => probe(dir, path),
        Ok(_) => Err(refuse(
            path,
            format!("{} is not a directory", dir.display()),
        )),
        Err(_) => Err(refuse(
            path,
            format!("the directory {} does not exist", dir.display()),
        )),
    }
}

/// Creates `dir` (and its parents) if needed and checks that files can be written in it.
///
/// # Errors
/// [`Error::Output`] naming the directory and the reason.
pub fn ensure_writable_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .map_err(|e| refuse(dir, format!("cannot create the directory: {e}")))?;
    probe(dir, dir)?;
    Ok(dir.to_path_buf())
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, then renames it over
/// `path`. Errors name `path`, not the temporary file.
///
/// # Errors
/// [`Error::Output`] when `path` is not writable (see [`ensure_writable_file`]) or the
/// write fails; the previous file, if any, is left intact.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    ensure_writable_file(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent_of(path).join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        // Best effort: a leftover temporary file is harmless but untidy.
        let _ = std::fs::remove_file(&tmp);
        return Err(refuse(path, format!("write failed: {e}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_and_non_regular_targets_are_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let e = ensure_writable_file(&dir.path().join("no/such/m.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        let e = ensure_writable_file(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
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
        let out = ensure_writable_dir(&dir.path().join("a/b")).unwrap();
        assert!(out.is_dir());
    }
}
