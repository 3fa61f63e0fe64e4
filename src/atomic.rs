//! The crate's one "temporary file, then rename" write, [`write_atomically_with`]: a leaf
//! that depends on nothing in the crate, so that the data downloads and the output rule
//! ([`crate::output`]) share it without importing each other's errors.

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
