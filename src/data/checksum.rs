//! Checksums of the data files, as hex strings: the SHA-256 of the decompressed data
//! (MNIST's published check), the MD5 of a file exactly as served (torchvision's check of
//! the other datasets' `.gz` files and of EMNIST's archive), and [`verify_dir`], which
//! checks a directory against the standard MNIST release.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use md5::Md5;
use sha2::{Digest, Sha256};

use super::DataError;
use super::datasets::Check;
use super::idx::gunzip_if_gzip;
use super::locate::find_all;
use super::mnist::SHA256;

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(super) fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// MD5 of a file's bytes as stored (torchvision's check of a downloaded `.gz`).
pub(super) fn file_md5(path: &Path) -> Result<String, DataError> {
    let bytes = fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(md5_hex(&bytes))
}

/// SHA-256 of a file's content after gunzipping it if it is gzip.
pub(super) fn file_sha256(path: &Path) -> Result<String, DataError> {
    let bytes = fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(sha256_hex(&gunzip_if_gzip(&bytes, path)?))
}

pub(super) fn check_hex(check: Check) -> &'static str {
    match check {
        Check::Sha256Raw(h) | Check::Md5Gz(h) => h,
    }
}

pub(super) fn check_what(check: Check) -> &'static str {
    match check {
        Check::Sha256Raw(_) => "SHA-256 of the decompressed data",
        Check::Md5Gz(_) => "MD5 of the .gz file",
    }
}

/// Copies `reader` to `writer` in 64 KiB chunks, returning the MD5 (hex) of the bytes
/// copied: a large download is checked while it streams to disk, never held in memory.
///
/// # Errors
/// The first read or write error.
pub(super) fn copy_with_md5(
    reader: &mut impl Read,
    writer: &mut impl Write,
) -> std::io::Result<String> {
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        writer.write_all(&buf[..n])?;
    }
    Ok(hex(&hasher.finalize()))
}

/// Checks the SHA-256 of the four decompressed files in `dir` against the standard release.
///
/// # Errors
/// [`DataError::MissingFiles`], [`DataError::Io`], [`DataError::Idx`] (corrupt gzip) or
/// [`DataError::Checksum`] naming the first bad file.
pub fn verify_dir(dir: &Path) -> Result<(), DataError> {
    for (path, expected) in find_all(dir)?.iter().zip(SHA256) {
        let actual = file_sha256(path)?;
        if actual != expected {
            return Err(DataError::Checksum {
                file: path.display().to_string(),
                what: "SHA-256 of the decompressed data",
                expected: expected.into(),
                actual,
                dataset: "mnist",
                kept: true,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_util::{assert_msg, real_dir, s, write_valid};

    #[test]
    fn verify_dir_rejects_other_data() {
        let dir = tempfile::tempdir().unwrap();
        let [img, ..] = write_valid(dir.path());
        let err = verify_dir(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::Checksum { .. }), "{err:?}");
        assert_msg(&err, &[&s(&img), SHA256[0]]);
    }

    #[test]
    fn real_mnist_checksums() {
        verify_dir(&real_dir()).unwrap();
    }

    /// Hand-checked: md5("") = d41d8cd98f00b204e9800998ecf8427e (RFC 1321 test suite).
    #[test]
    fn md5_of_empty_input() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    /// The streamed MD5 is the MD5 of the whole input, across chunk boundaries, and every
    /// byte reaches the writer.
    #[test]
    fn streamed_md5_matches_the_md5_of_the_whole_input() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut copy = Vec::new();
        let md5 = copy_with_md5(&mut data.as_slice(), &mut copy).unwrap();
        assert_eq!(md5, md5_hex(&data));
        assert_eq!(copy, data);
    }
}
