//! The crate's one "temporary file, then rename" write, [`write_atomically_with`]: a leaf
//! that depends on nothing in the crate, so that the data downloads and the output rule
//! ([`crate::output`]) share it without importing each other's errors; and the clean-up of
//! the temporary files a killed writer left ([`remove_stale_temporaries`]).

use std::path::Path;

/// The crate's one atomic write: creates a temporary file next to `path` (in the same
/// directory, so the rename never crosses filesystems), hands it to `write`, syncs it to
/// disk and renames it over `path`. A reader therefore sees the old file or the whole new
/// one, never a partial write.
///
/// `write` may stream (a download straight from the network) and may refuse what it wrote
/// by returning an error (say, a checksum mismatch): whenever `write`, the sync or the
/// rename fails, the temporary file is removed and `path` is left as it was (or absent).
///
/// Unlike [`crate::output::write_atomically`] this does not apply the [`crate::output::check_output`] rule; it is the
/// building block for files the program names itself (the data files a download puts in
/// its directory), whose callers report errors in their own terms.
///
/// # Errors
/// What `write` returns, or the [`std::io::Error`] of creating, syncing or renaming the
/// temporary file, converted with `E::from`.
pub fn write_atomically_with<T, E: From<std::io::Error>>(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        let value = write(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(value)
    })();
    if result.is_err() {
        // Best effort: a leftover temporary file is harmless but untidy.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether `name` is a temporary file of another process: `.NAME.tmpPID` (this module's) or
/// `.wgtrain-probe-PID` ([`crate::output`]'s writability probe), `PID` not this process's.
/// With `of`, only the temporary files of that name.
fn is_stale_temporary(name: &str, of: Option<&str>) -> bool {
    let pid = match of {
        Some(target) => name.strip_prefix(&format!(".{target}.tmp")),
        None => name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(".tmp").map(|(_, pid)| pid))
            .or_else(|| name.strip_prefix(".wgtrain-probe-")),
    };
    pid.is_some_and(|p| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && p != std::process::id().to_string()
    })
}

/// Removes the temporary files a writer killed mid-write (`kill -9`) left of `output`:
/// beside a file, its own (`.NAME.tmpPID`); inside a directory, every one. Call it only
/// while holding `output`'s lock ([`crate::lock`]): then no other process is writing them.
/// Best effort: what cannot be read or removed is left.
pub fn remove_stale_temporaries(output: &Path) {
    let (dir, of) = if output.is_dir() {
        (output.to_path_buf(), None)
    } else {
        let Some(name) = output.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return;
        };
        let dir = output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        (dir, Some(name))
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_stale_temporary(&name, of.as_deref()) && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a `kill -9` mid-write leaves is removed, for a directory output (every writer's
    /// temporaries) and for a file output (its own only); this process's temporaries, other
    /// files and names that only look alike stay.
    #[test]
    fn stale_temporaries_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sweep");
        std::fs::create_dir(&out).unwrap();
        let own = format!(".pbt.json.tmp{}", std::process::id());
        let stale = [
            ".pbt.json.tmp4242",
            ".state.safetensors.tmp17",
            ".wgtrain-probe-99",
        ];
        let kept = [
            own.as_str(),
            "pbt.json",
            ".pbt.json.tmp",
            ".x.tmp12a",
            "a.tmp5",
        ];
        for n in stale.iter().chain(&kept) {
            std::fs::write(out.join(n), b"x").unwrap();
        }
        remove_stale_temporaries(&out);
        for n in stale {
            assert!(!out.join(n).exists(), "{n} left");
        }
        for n in kept {
            assert!(out.join(n).exists(), "{n} removed");
        }
        // A file output: only its own temporaries.
        let best = dir.path().join("best.safetensors");
        for n in [".best.safetensors.tmp31", ".other.tmp31"] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        remove_stale_temporaries(&best);
        assert!(!dir.path().join(".best.safetensors.tmp31").exists());
        assert!(dir.path().join(".other.tmp31").exists());
    }
}
