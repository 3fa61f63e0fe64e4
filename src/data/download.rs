//! Fetching a dataset: torchvision's mirrors in order (or only `$WGTRAIN_MIRROR`), a byte
//! progress bar per file, every file checked before it reaches the directory and written
//! atomically ([`crate::atomic::write_atomically_with`]), EMNIST's zip archive streamed to
//! disk with its MD5 checked on the way and the split's members extracted, and no
//! directory left behind by a failed attempt.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::DataError;
use super::checksum::{
    check_hex, check_what, copy_with_md5, file_md5, file_sha256, md5_hex, sha256_hex,
};
use super::datasets::{Check, DatasetInfo, DatasetName, Packaging};
use super::idx::{gunzip_if_gzip, gzip, is_gzip};
use super::locate::find_file;
use super::mnist::MIRRORS;
use crate::atomic::write_atomically_with;

/// Environment variable that replaces every dataset's download mirrors with one base URL
/// (ending in `/`), e.g. a local mirror, or an unreachable address to test offline errors.
pub const MIRROR_ENV: &str = "WGTRAIN_MIRROR";

/// Environment variable that sets the download deadline, in seconds: every file of one
/// dataset's download must have arrived within it (default [`DEFAULT_DEADLINE`]).
pub const DEADLINE_ENV: &str = "WGTRAIN_DOWNLOAD_TIMEOUT";

/// The overall download deadline without [`DEADLINE_ENV`]: one hour, room for EMNIST's
/// 562 MB archive at 0.2 MB/s, while a server that trickles bytes cannot hold a run forever.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3600);

/// The real files are about 10 MB; the cap only stops a misbehaving server filling memory.
const MAX_DOWNLOAD_BYTES: u64 = 256 << 20;

/// EMNIST's archive is 562 MB; it is streamed to disk, never held in memory.
const MAX_ARCHIVE_BYTES: u64 = 1 << 30;

/// Downloads the four files into `dir` (created if needed) as `<name>.gz`.
///
/// Each file is fetched from [`MIRRORS`] in order, gunzipped in memory and its SHA-256
/// checked before it is written (atomically: a temp file in `dir`, then a rename). Files
/// already present whose checksum matches are skipped; a bad `.gz` is replaced. With
/// `show_progress`, a byte progress bar per file is drawn on stderr.
///
/// # Errors
/// - [`DataError::Download`] when every mirror fails for a file;
/// - [`DataError::Checksum`] when a mirror serves wrong data, or when a raw file already
///   in `dir` has the wrong checksum (it shadows the `.gz`, so it is not silently kept);
/// - [`DataError::Io`] when `dir` or a file cannot be written.
pub fn download(dir: &Path, show_progress: bool) -> Result<(), DataError> {
    download_from(dir, &MIRRORS, show_progress)
}

/// Downloads the four files of `name` into `dir` (created if needed), as torchvision
/// publishes them, from its mirrors in order, or only from `$WGTRAIN_MIRROR`
/// ([`MIRROR_ENV`]) when that is set.
///
/// Files packaged one `.gz` each are checked before they are written (atomically): MNIST
/// by the SHA-256 of the decompressed data, the others by torchvision's MD5 of the `.gz`.
/// EMNIST's zip archive is streamed to `dir/gzip.zip`, its MD5 checked, and the split's
/// four `.gz` members extracted; the archive is kept so the other EMNIST splits need no
/// second download. Files already present are skipped when their checksum matches (for
/// EMNIST, whose members have no published checksum, when all four exist). A failed
/// download removes the directories it created.
///
/// # Errors
/// - [`DataError::Download`] when every mirror fails, naming the URL and how to get the
///   files by hand;
/// - [`DataError::Checksum`] when a mirror serves wrong data, or a raw MNIST file in `dir`
///   has the wrong checksum;
/// - [`DataError::Idx`] for an archive without the expected member;
/// - [`DataError::Io`] when `dir` or a file cannot be written.
pub fn download_dataset(
    name: DatasetName,
    dir: &Path,
    show_progress: bool,
) -> Result<(), DataError> {
    let env = std::env::var(MIRROR_ENV).ok().filter(|v| !v.is_empty());
    let mirrors: Vec<&str> = match (&env, name.info().packaging) {
        (Some(base), _) => vec![base.as_str()],
        (None, Packaging::GzFiles { mirrors, .. } | Packaging::Zip { mirrors, .. }) => {
            mirrors.to_vec()
        }
    };
    download_dataset_from(name, dir, &mirrors, show_progress, deadline_from_env()?)
}

/// The download deadline: [`DEADLINE_ENV`] in seconds, or [`DEFAULT_DEADLINE`].
///
/// # Errors
/// [`DataError::InvalidEnv`] for a value that is not a positive number of seconds.
fn deadline_from_env() -> Result<Duration, DataError> {
    let Some(v) = std::env::var(DEADLINE_ENV).ok().filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_DEADLINE);
    };
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => Err(DataError::InvalidEnv {
            name: DEADLINE_ENV,
            value: v,
            reason:
                "must be a positive number of seconds (the deadline for a dataset's whole download)"
                    .into(),
        }),
    }
}

fn download_from(dir: &Path, mirrors: &[&str], show_progress: bool) -> Result<(), DataError> {
    download_dataset_from(
        DatasetName::Mnist,
        dir,
        mirrors,
        show_progress,
        DEFAULT_DEADLINE,
    )
}

/// The network side of a download: one agent, and the deadline every request of the
/// download shares (each gets what is left of it).
struct Net {
    agent: ureq::Agent,
    until: Instant,
    total: Duration,
}

impl Net {
    fn new(total: Duration) -> Net {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build()
            .into();
        Net {
            agent,
            until: Instant::now() + total,
            total,
        }
    }

    /// GET `url` with what is left of the deadline as its whole budget (headers and body).
    fn get(&self, url: &str) -> Result<ureq::http::Response<ureq::Body>, String> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.expired());
        }
        self.agent
            .get(url)
            .config()
            .timeout_global(Some(left))
            .build()
            .call()
            .map_err(|e| self.explain(e.to_string()))
    }

    /// `reason`, or the deadline's own message when the deadline has passed (a timeout
    /// then, whatever words the transport used).
    fn explain(&self, reason: String) -> String {
        if Instant::now() >= self.until {
            self.expired()
        } else {
            reason
        }
    }

    fn expired(&self) -> String {
        format!(
            "the download did not finish within its deadline of {} s (a stalled or very slow server); raise it with {DEADLINE_ENV}=SECONDS",
            self.total.as_secs_f64()
        )
    }
}

fn download_dataset_from(
    name: DatasetName,
    dir: &Path,
    mirrors: &[&str],
    show_progress: bool,
    deadline: Duration,
) -> Result<(), DataError> {
    // The directories this call creates, innermost first: removed again (while empty) when
    // the download fails, so a failed attempt leaves nothing behind.
    let created: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .map(Path::to_path_buf)
        .collect();
    fs::create_dir_all(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let info = name.info();
    let net = Net::new(deadline);
    let result = match info.packaging {
        Packaging::GzFiles { checks, .. } => {
            fetch_all(&net, dir, info, &checks, mirrors, show_progress)
        }
        Packaging::Zip {
            archive,
            md5,
            member_dir,
            ..
        } => fetch_archive(
            &net,
            dir,
            info,
            (archive, md5, member_dir),
            mirrors,
            show_progress,
        ),
    };
    if result.is_err() {
        for d in &created {
            // Fails, harmlessly, on a directory that is not empty.
            let _ = fs::remove_dir(d);
        }
    }
    result
}

/// How to get the files of `info` without wgtrain's download, for [`DataError::Download`].
fn manual_hint(info: &DatasetInfo, mirrors: &[&str]) -> String {
    match info.packaging {
        _ if info.name == "mnist" => "No network? Copy the four MNIST files (raw or .gz) into a \
             directory and pass --data DIR or set MNIST_DIR=DIR"
            .into(),
        Packaging::GzFiles { .. } => format!(
            "No network? Copy the four {} files ({}, raw or .gz) into a directory and pass \
             --dataset {} --data DIR",
            info.title,
            info.files.join(", "),
            info.name
        ),
        Packaging::Zip {
            archive,
            member_dir,
            ..
        } => format!(
            "No network? Fetch {}{archive} by other means, unzip it and pass --dataset {} \
             --data DIR/{} (it holds {}.gz and the other files)",
            mirrors.first().copied().unwrap_or_default(),
            info.name,
            member_dir.trim_end_matches('/'),
            info.files[0]
        ),
    }
}

/// Fetches the four `.gz` files of `info` into the existing `dir` (see
/// [`download_dataset_from`]).
fn fetch_all(
    net: &Net,
    dir: &Path,
    info: &DatasetInfo,
    checks: &[Check; 4],
    mirrors: &[&str],
    show_progress: bool,
) -> Result<(), DataError> {
    for (name, &check) in info.files.into_iter().zip(checks) {
        if let Some(existing) = find_file(dir, name) {
            let raw = existing == dir.join(name);
            // An unreadable or corrupt .gz is simply fetched again.
            let actual = match check {
                Check::Sha256Raw(_) => file_sha256(&existing),
                // MD5 is published for the .gz only: a raw file cannot be checked.
                Check::Md5Gz(_) if raw => {
                    if show_progress {
                        eprintln!(
                            "{name}: already present (raw; its MD5 is unpublished, not checked)"
                        );
                    }
                    continue;
                }
                Check::Md5Gz(_) => file_md5(&existing),
            };
            let expected = check_hex(check);
            if actual.as_deref().is_ok_and(|a| a == expected) {
                if show_progress {
                    eprintln!("{name}: already present, checksum ok");
                }
                continue;
            }
            if raw {
                return Err(DataError::Checksum {
                    file: existing.display().to_string(),
                    what: check_what(check),
                    expected: expected.into(),
                    actual: actual?,
                    dataset: info.name,
                    kept: true,
                });
            }
        }
        let gz = fetch_verified(net, info, mirrors, name, check, show_progress)?;
        write_file(&dir.join(format!("{name}.gz")), &gz)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically ([`write_atomically_with`]), so an interrupted
/// download never leaves a partial file under the real name; errors name `path`.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    write_atomically_with(path, |file| file.write_all(bytes)).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Fetches `<mirror><name>.gz` from the first mirror that serves data passing `check`,
/// returning the bytes to store as `<name>.gz`.
fn fetch_verified(
    net: &Net,
    info: &DatasetInfo,
    mirrors: &[&str],
    name: &str,
    check: Check,
    show_progress: bool,
) -> Result<Vec<u8>, DataError> {
    let mut failures = Vec::new();
    let mut bad_checksum = None;
    let expected = check_hex(check);
    for mirror in mirrors {
        let url = format!("{mirror}{name}.gz");
        let body = match fetch(net, &url, name, show_progress) {
            Ok(body) => body,
            Err(reason) => {
                failures.push((url, reason));
                continue;
            }
        };
        if let Check::Md5Gz(_) = check {
            let actual = md5_hex(&body);
            if actual == expected {
                return Ok(body);
            }
            bad_checksum = Some(DataError::Checksum {
                file: url,
                what: check_what(check),
                expected: expected.into(),
                actual,
                dataset: info.name,
                kept: false,
            });
            continue;
        }
        let raw = match gunzip_if_gzip(&body, Path::new(&url)) {
            Ok(raw) => raw,
            Err(e) => {
                failures.push((url, e.to_string()));
                continue;
            }
        };
        let actual = sha256_hex(&raw);
        if actual != expected {
            bad_checksum = Some(DataError::Checksum {
                file: url,
                what: check_what(check),
                expected: expected.into(),
                actual,
                dataset: info.name,
                kept: false,
            });
            continue;
        }
        // A server that sets Content-Encoding: gzip has the body decompressed by ureq.
        return Ok(if is_gzip(&body) { body } else { gzip(&raw) });
    }
    if let Some(err) = bad_checksum {
        return Err(err);
    }
    Err(download_error(failures, name, info, mirrors))
}

/// The [`DataError::Download`] for a file every mirror failed: the last URL and reason,
/// the earlier ones, and the way to get the files by hand.
fn download_error(
    mut failures: Vec<(String, String)>,
    name: &str,
    info: &DatasetInfo,
    mirrors: &[&str],
) -> DataError {
    let (url, reason) = failures
        .pop()
        .unwrap_or_else(|| (name.into(), "no mirrors".into()));
    let earlier: Vec<String> = failures.iter().map(|(u, r)| format!("{u}: {r}")).collect();
    let reason = if earlier.is_empty() {
        reason
    } else {
        format!("{reason} (also failed: {})", earlier.join("; "))
    };
    DataError::Download {
        url,
        reason,
        hint: manual_hint(info, mirrors),
    }
}

/// Why one mirror's archive did not become the file in the directory.
enum ArchiveAttempt {
    /// The request or the transfer failed (tried on the next mirror).
    Failed(String),
    /// The archive arrived but its MD5 (the hex value held) is not the published one.
    Mismatch(String),
    /// The temporary file could not be created, synced or renamed into place.
    Io(std::io::Error),
}

impl From<std::io::Error> for ArchiveAttempt {
    fn from(e: std::io::Error) -> Self {
        ArchiveAttempt::Io(e)
    }
}

/// EMNIST: makes sure the archive is in `dir` (fetched and MD5-checked, or already there
/// with the right MD5), then extracts the split's four `.gz` members next to it.
fn fetch_archive(
    net: &Net,
    dir: &Path,
    info: &DatasetInfo,
    (archive, md5, member_dir): (&str, &str, &str),
    mirrors: &[&str],
    show_progress: bool,
) -> Result<(), DataError> {
    if info.files.iter().all(|f| find_file(dir, f).is_some()) {
        if show_progress {
            eprintln!(
                "{}: the four files are present (only the archive's MD5 is published; not re-checked)",
                info.name
            );
        }
        return Ok(());
    }
    let zip_path = dir.join(archive);
    let have_archive = zip_path.is_file() && file_md5(&zip_path).is_ok_and(|a| a == md5);
    if !have_archive {
        let mut failures = Vec::new();
        let mut fetched = false;
        for mirror in mirrors {
            let url = format!("{mirror}{archive}");
            // The archive reaches `zip_path` only when its MD5 matches.
            let attempt = write_atomically_with(&zip_path, |file| {
                let actual = fetch_to_file(net, &url, file, archive, show_progress)
                    .map_err(ArchiveAttempt::Failed)?;
                if actual == md5 {
                    Ok(())
                } else {
                    Err(ArchiveAttempt::Mismatch(actual))
                }
            });
            match attempt {
                Ok(()) => {
                    fetched = true;
                    break;
                }
                Err(ArchiveAttempt::Mismatch(actual)) => {
                    return Err(DataError::Checksum {
                        file: url,
                        what: "MD5 of the archive",
                        expected: md5.into(),
                        actual,
                        dataset: info.name,
                        kept: false,
                    });
                }
                Err(ArchiveAttempt::Failed(reason)) => failures.push((url, reason)),
                Err(ArchiveAttempt::Io(source)) => {
                    return Err(DataError::Io {
                        path: zip_path,
                        source,
                    });
                }
            }
        }
        if !fetched {
            return Err(download_error(failures, archive, info, mirrors));
        }
    }
    extract_members(&zip_path, member_dir, &info.files, dir)
}

/// Copies `<member_dir><file>.gz` of the zip archive at `zip_path` to `dir/<file>.gz` for
/// each of `files` (atomically).
///
/// # Errors
/// [`DataError::Io`] for an unreadable archive or unwritable file, [`DataError::Idx`]
/// (naming the archive) for a corrupt archive or a missing member.
pub(crate) fn extract_members(
    zip_path: &Path,
    member_dir: &str,
    files: &[&str],
    dir: &Path,
) -> Result<(), DataError> {
    let bad = |reason: String| DataError::Idx {
        path: zip_path.to_path_buf(),
        reason,
    };
    let file = fs::File::open(zip_path).map_err(|source| DataError::Io {
        path: zip_path.to_path_buf(),
        source,
    })?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| bad(format!("not a readable zip archive: {e}")))?;
    for f in files {
        let member = format!("{member_dir}{f}.gz");
        let mut entry = zip
            .by_name(&member)
            .map_err(|e| bad(format!("archive has no member {member}: {e}")))?;
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("cannot read member {member}: {e}")))?;
        write_file(&dir.join(format!("{f}.gz")), &bytes)?;
    }
    Ok(())
}

/// Streams `url` into `file`, returning the MD5 (hex) of what was written; the caller
/// syncs the file and decides whether it is kept.
fn fetch_to_file(
    net: &Net,
    url: &str,
    file: &mut fs::File,
    name: &str,
    show_progress: bool,
) -> Result<String, String> {
    let mut response = net.get(url)?;
    let bar = progress_bar(show_progress, response.body().content_length(), name);
    let mut reader = bar.wrap_read(response.body_mut().as_reader().take(MAX_ARCHIVE_BYTES));
    match copy_with_md5(&mut reader, file) {
        Ok(md5) => {
            bar.finish();
            Ok(md5)
        }
        Err(e) => {
            bar.abandon();
            Err(net.explain(e.to_string()))
        }
    }
}

/// A byte progress bar on stderr (hidden unless `show`), prefixed with `name`.
fn progress_bar(show: bool, len: Option<u64>, name: &str) -> ProgressBar {
    let bar = match (show, len) {
        (false, _) => ProgressBar::hidden(),
        (true, Some(len)) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{prefix:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        (true, None) => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{prefix:>24} {spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_prefix(name.to_string());
    bar
}

/// Reads a whole response body, drawing a byte progress bar when asked.
fn fetch(net: &Net, url: &str, name: &str, show_progress: bool) -> Result<Vec<u8>, String> {
    let mut response = net.get(url)?;
    let bar = progress_bar(show_progress, response.body().content_length(), name);
    let mut body = Vec::new();
    let read = bar
        .wrap_read(response.body_mut().as_reader().take(MAX_DOWNLOAD_BYTES))
        .read_to_end(&mut body);
    match read {
        Ok(_) => {
            bar.finish();
            Ok(body)
        }
        Err(e) => {
            bar.abandon();
            Err(net.explain(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::{IdxArray, IdxData, encode_idx};
    use crate::data::mnist::{FILE_NAMES, SHA256};
    use crate::data::test_util::{
        assert_msg, dead_mirror, images, labels, real_dir, s, serve, trickle, write_valid,
    };
    use crate::data::{LoadOptions, load_dir_with, verify_dir};
    use std::collections::HashMap;

    /// `[n, rows, cols]` images whose pixel (i, r, c) is `i*100 + r*10 + c`.
    fn coded_images(n: usize, rows: usize, cols: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                (0..rows).flat_map(move |r| (0..cols).map(move |c| (i * 100 + r * 10 + c) as u8))
            })
            .collect()
    }

    #[test]
    fn download_unreachable_mirrors() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dead_mirror(), dead_mirror());
        let err = download_from(dir.path(), &[&a, &b], false).unwrap_err();
        assert!(matches!(err, DataError::Download { .. }), "{err:?}");
        let first = format!("{a}train-images-idx3-ubyte.gz");
        let last = format!("{b}train-images-idx3-ubyte.gz");
        assert_msg(
            &err,
            &[&first, &last, "No network?", "--data DIR", "MNIST_DIR"],
        );
        assert!(
            fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing may be written"
        );
    }

    #[test]
    fn download_rejects_wrong_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let fake = gzip(&encode_idx(&images(2, 2, 2)));
        let base = serve(HashMap::from([(
            "/m/train-images-idx3-ubyte.gz".into(),
            fake,
        )]));
        let mirror = format!("{base}/m/");
        let err = download_from(dir.path(), &[&mirror], false).unwrap_err();
        assert!(matches!(err, DataError::Checksum { .. }), "{err:?}");
        assert_msg(
            &err,
            &["train-images-idx3-ubyte.gz", SHA256[0], "checksum mismatch"],
        );
        assert!(
            fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing may be written"
        );
    }

    /// Regression (issue 25, item 10): a server that sent its headers and then a byte every
    /// few seconds held a download (and the run waiting on it) forever: every read came
    /// within the per-read timeout. The whole download now has a deadline
    /// ([`DEADLINE_ENV`]); past it the download fails naming the deadline and how to raise
    /// it, and nothing is written.
    #[test]
    fn regression_a_trickling_server_meets_the_download_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let slow = trickle(Duration::from_millis(100));
        let err = download_dataset_from(
            DatasetName::Mnist,
            dir.path(),
            &[&slow],
            false,
            Duration::from_millis(800),
        )
        .unwrap_err();
        assert!(matches!(err, DataError::Download { .. }), "{err:?}");
        assert_msg(
            &err,
            &[
                "train-images-idx3-ubyte.gz",
                "did not finish within its deadline of 0.8 s",
                "WGTRAIN_DOWNLOAD_TIMEOUT=SECONDS",
            ],
        );
        assert!(fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    /// Regression (issue 25, item 11): a download refused for its checksum said "Delete
    /// it" although nothing had been written; a file on disk that fails still says so.
    #[test]
    fn regression_a_refused_download_does_not_say_delete_it() {
        let dir = tempfile::tempdir().unwrap();
        let fake = gzip(&encode_idx(&images(2, 2, 2)));
        let base = serve(HashMap::from([(
            "/m/train-images-idx3-ubyte.gz".into(),
            fake,
        )]));
        let err = download_from(dir.path(), &[&format!("{base}/m/")], false).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("Delete it"), "{msg}");
        assert!(msg.contains("nothing was kept"), "{msg}");
        assert!(fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    /// A failed download removes the directories it created (the user's cache stays clean);
    /// a directory that existed before is kept.
    #[test]
    fn failed_download_leaves_no_directories_behind() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cache").join("mnist");
        assert!(download_from(&dir, &[&dead_mirror()], false).is_err());
        assert!(!root.path().join("cache").exists());
        assert!(download_from(root.path(), &[&dead_mirror()], false).is_err());
        assert!(root.path().is_dir());
    }

    #[test]
    fn download_refuses_bad_raw_file() {
        let dir = tempfile::tempdir().unwrap();
        let [img, ..] = write_valid(dir.path());
        let err = download_from(dir.path(), &[&dead_mirror()], false).unwrap_err();
        assert!(matches!(err, DataError::Checksum { .. }), "{err:?}");
        assert_msg(&err, &[&s(&img), "Delete it"]);
    }

    /// Serves the real gzipped files from a second mirror after a dead first one.
    #[test]
    fn real_mnist_download_from_local_mirror() {
        let src = real_dir();
        let files = FILE_NAMES
            .iter()
            .map(|name| {
                let path = find_file(&src, name).expect("real file present");
                let bytes = fs::read(path).unwrap();
                let gz = if is_gzip(&bytes) { bytes } else { gzip(&bytes) };
                (format!("/mnist/{name}.gz"), gz)
            })
            .collect();
        let good = format!("{}/mnist/", serve(files));
        let dir = tempfile::tempdir().unwrap();
        download_from(dir.path(), &[&dead_mirror(), &good], false).unwrap();
        verify_dir(dir.path()).unwrap();
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut want: Vec<_> = FILE_NAMES.iter().map(|n| format!("{n}.gz")).collect();
        want.sort();
        assert_eq!(names, want, "only the four .gz files, no temp files left");

        // Verified files are skipped: with only dead mirrors this still succeeds.
        download_from(dir.path(), &[&dead_mirror()], false).unwrap();
        // A corrupt .gz is replaced.
        fs::write(
            dir.path().join("t10k-labels-idx1-ubyte.gz"),
            b"\x1f\x8bjunk",
        )
        .unwrap();
        download_from(dir.path(), &[&good], false).unwrap();
        verify_dir(dir.path()).unwrap();
    }

    /// Regression-style pin of EMNIST's packaging and orientation: a zip holding
    /// `gzip/<file>.gz` as NIST ships it, images stored transposed (stored[c][r]), letters
    /// labels 1..=26 with 27 classes and N/A at 0, as torchvision keeps them.
    #[test]
    fn emnist_letters_from_its_zip_of_gz_files_is_upright_with_27_classes() {
        use zip::write::SimpleFileOptions;
        let name = DatasetName::EmnistLetters;
        let (n, rows, cols) = (3, 2, 3); // upright images are 2 rows x 3 cols
        let upright = coded_images(n, rows, cols);
        // Stored transposed: [n, cols, rows] with stored[i][c][r] = upright[i][r][c].
        let mut stored = vec![0u8; upright.len()];
        for i in 0..n {
            for r in 0..rows {
                for c in 0..cols {
                    stored[i * 6 + c * rows + r] = upright[i * 6 + r * cols + c];
                }
            }
        }
        let imgs = IdxArray {
            dims: vec![n, cols, rows],
            data: IdxData::U8(stored),
        };
        let train_labels = labels(&[1, 26, 5]);
        let test_labels = labels(&[26, 1, 2]);
        let tmp = tempfile::tempdir().unwrap();
        let zip_path = tmp.path().join("gzip.zip");
        let mut zip = zip::ZipWriter::new(fs::File::create(&zip_path).unwrap());
        let arrays = [&imgs, &train_labels, &imgs, &test_labels];
        for (f, arr) in name.info().files.iter().zip(arrays) {
            zip.start_file(format!("gzip/{f}.gz"), SimpleFileOptions::default())
                .unwrap();
            zip.write_all(&gzip(&encode_idx(arr))).unwrap();
        }
        zip.finish().unwrap();

        let dir = tmp.path().join("emnist");
        fs::create_dir(&dir).unwrap();
        extract_members(&zip_path, "gzip/", &name.info().files, &dir).unwrap();
        let opts = LoadOptions {
            dataset: Some(name),
            classes: None,
        };
        let m = load_dir_with(&dir, &opts).unwrap();
        assert_eq!((m.train.rows, m.train.cols), (rows, cols));
        assert_eq!(m.train.images, upright);
        assert_eq!(m.train.image(1), &[100, 101, 102, 110, 111, 112]);
        assert_eq!(m.classes, 27);
        assert_eq!(
            (m.class_names[0].as_str(), m.class_names[26].as_str()),
            ("N/A", "z")
        );
        assert_eq!(m.train.labels, [1, 26, 5]);
        assert_eq!(m.dataset, Some(name));

        // A label of 27 does not fit torchvision's 27 classes: refused by file and index.
        fs::write(
            dir.join(format!("{}.gz", name.info().files[3])),
            gzip(&encode_idx(&labels(&[1, 27, 2]))),
        )
        .unwrap();
        let err = load_dir_with(&dir, &opts).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 27,
                    classes: 27,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_msg(&err, &["sample 1 has label 27", "--dataset emnist-letters"]);

        // An archive without the split's members names the archive and the member.
        let err = extract_members(
            &zip_path,
            "gzip/",
            &DatasetName::EmnistDigits.info().files,
            &dir,
        )
        .unwrap_err();
        assert_msg(
            &err,
            &[
                &s(&zip_path),
                "no member gzip/emnist-digits-train-images-idx3-ubyte.gz",
            ],
        );
    }

    /// EMNIST's archive streams through the atomic write: served with an MD5 other than
    /// the expected one it is refused and nothing is left in the directory (no archive, no
    /// temporary file); served after a dead mirror with the right MD5 it is kept under its
    /// name and the split's members are extracted next to it.
    #[test]
    fn streamed_archive_is_kept_only_when_its_md5_matches() {
        use zip::write::SimpleFileOptions;
        let name = DatasetName::EmnistDigits;
        let info = name.info();
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let arrays = [
            &images(2, 2, 2),
            &labels(&[0, 1]),
            &images(1, 2, 2),
            &labels(&[1]),
        ];
        for (f, arr) in info.files.iter().zip(arrays) {
            zip.start_file(format!("gzip/{f}.gz"), SimpleFileOptions::default())
                .unwrap();
            zip.write_all(&gzip(&encode_idx(arr))).unwrap();
        }
        let archive = zip.finish().unwrap().into_inner();
        let md5 = md5_hex(&archive);
        let base = serve(HashMap::from([("/e/gzip.zip".into(), archive.clone())]));
        let mirror = format!("{base}/e/");
        let net = Net::new(DEFAULT_DEADLINE);
        let dir = tempfile::tempdir().unwrap();

        let wrong = "0".repeat(32);
        let err = fetch_archive(
            &net,
            dir.path(),
            info,
            ("gzip.zip", &wrong, "gzip/"),
            &[&mirror],
            false,
        )
        .unwrap_err();
        assert!(matches!(err, DataError::Checksum { .. }), "{err:?}");
        assert_msg(&err, &["MD5 of the archive", &md5, &wrong]);
        assert!(
            fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing may be written"
        );

        fetch_archive(
            &net,
            dir.path(),
            info,
            ("gzip.zip", &md5, "gzip/"),
            &[&dead_mirror(), &mirror],
            false,
        )
        .unwrap();
        assert_eq!(fs::read(dir.path().join("gzip.zip")).unwrap(), archive);
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut want: Vec<String> = info.files.iter().map(|f| format!("{f}.gz")).collect();
        want.push("gzip.zip".into());
        want.sort();
        assert_eq!(
            names, want,
            "the archive and the four members, no temporary files"
        );
    }

    /// Offline, every named dataset fails with the URL it tried and how to get the files
    /// by hand, and leaves nothing behind.
    #[test]
    fn every_dataset_download_fails_clearly_offline() {
        for name in crate::data::datasets::ALL {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("cache").join(name.info().cache_folder);
            let dead = dead_mirror();
            let err =
                download_dataset_from(name, &dir, &[&dead], false, DEFAULT_DEADLINE).unwrap_err();
            assert!(matches!(err, DataError::Download { .. }), "{name}: {err:?}");
            let first = match name.info().packaging {
                Packaging::GzFiles { .. } => format!("{dead}{}.gz", name.info().files[0]),
                Packaging::Zip { archive, .. } => format!("{dead}{archive}"),
            };
            let flag = if name == DatasetName::Mnist {
                "MNIST_DIR".to_string()
            } else {
                format!("--dataset {name} --data DIR")
            };
            assert_msg(&err, &[&first, "No network?", &flag]);
            assert!(
                !root.path().join("cache").exists(),
                "{name}: nothing may be left"
            );
        }
    }

    /// A mirror serving other data is refused by torchvision's MD5 of the .gz.
    #[test]
    fn md5_checked_download_rejects_other_data() {
        let dir = tempfile::tempdir().unwrap();
        let fake = gzip(&encode_idx(&images(2, 2, 2)));
        let fake_md5 = md5_hex(&fake);
        let base = serve(HashMap::from([(
            "/f/train-images-idx3-ubyte.gz".into(),
            fake,
        )]));
        let mirror = format!("{base}/f/");
        let err = download_dataset_from(
            DatasetName::FashionMnist,
            dir.path(),
            &[&mirror],
            false,
            DEFAULT_DEADLINE,
        )
        .unwrap_err();
        assert_msg(
            &err,
            &[
                "MD5 of the .gz file",
                &fake_md5,
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "wgtrain download fashion-mnist",
            ],
        );
        assert!(
            fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing may be written"
        );
    }
}
