//! Where a dataset's files are: the directories searched (an explicit `--data` directory,
//! `$MNIST_DIR`, `./data/<name>`, the cache directory), the cache directories downloads go
//! to, and the check that a directory holds all four files (each raw or `.gz`).

use std::path::{Path, PathBuf};

use super::DataError;
use super::datasets::{DatasetInfo, DatasetName};
use super::mnist::FILE_NAMES;

/// Directories searched for the files, in order.
///
/// With `explicit`, only that directory. Otherwise, when `$MNIST_DIR` is set and non-empty,
/// only that directory (a set `MNIST_DIR` is never skipped). Otherwise `./data/mnist`, then
/// [`cache_dir`].
pub fn default_search_dirs(explicit: Option<&Path>) -> Vec<PathBuf> {
    search_dirs(explicit, mnist_dir_env())
}

/// `$MNIST_DIR` when it is set and non-empty.
fn mnist_dir_env() -> Option<PathBuf> {
    std::env::var_os("MNIST_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// [`default_search_dirs`] with the value of `$MNIST_DIR` passed in.
fn search_dirs(explicit: Option<&Path>, env: Option<PathBuf>) -> Vec<PathBuf> {
    match explicit.map(Path::to_path_buf).or(env) {
        Some(dir) => vec![dir],
        None => vec![PathBuf::from("data").join("mnist"), cache_dir()],
    }
}

/// Where downloads go: `<user cache dir>/wgtrain/mnist` (e.g. `~/.cache/wgtrain/mnist`),
/// or under the system temp dir when the platform has no cache dir.
pub fn cache_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("wgtrain")
        .join("mnist")
}

/// Directories searched for a named dataset, in order: with `explicit`, only that
/// directory; otherwise (MNIST only) `$MNIST_DIR` if set and non-empty, then
/// `./data/<name>`, then [`cache_dir_of`].
pub fn search_dirs_of(name: DatasetName, explicit: Option<&Path>) -> Vec<PathBuf> {
    if name == DatasetName::Mnist {
        return default_search_dirs(explicit);
    }
    match explicit {
        Some(dir) => vec![dir.to_path_buf()],
        None => vec![
            PathBuf::from("data").join(name.as_str()),
            cache_dir_of(name),
        ],
    }
}

/// Where a named dataset is downloaded: `<user cache dir>/wgtrain/<cache folder>` (e.g.
/// `~/.cache/wgtrain/fashion-mnist`; the three EMNIST splits share `emnist`, their
/// archive's folder).
pub fn cache_dir_of(name: DatasetName) -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("wgtrain")
        .join(name.info().cache_folder)
}

/// The first of [`default_search_dirs`] that holds all four files (raw or `.gz`).
///
/// # Errors
/// With `explicit`, [`DataError::MissingFiles`] for it when it lacks files. With
/// `$MNIST_DIR` set (and no `explicit`): [`DataError::Io`] naming it when it is not a
/// directory, [`DataError::MissingFiles`] when it lacks files. Otherwise
/// [`DataError::NotFound`] listing the directories searched and how to fix it.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, DataError> {
    locate_in(explicit, None, mnist_dir_env())
}

/// The first of [`search_dirs_of`] that holds all four files of `name` (raw or `.gz`).
///
/// # Errors
/// As [`locate`] (`$MNIST_DIR` is read for MNIST only).
pub fn locate_dataset(name: DatasetName, explicit: Option<&Path>) -> Result<PathBuf, DataError> {
    let env = if name == DatasetName::Mnist {
        mnist_dir_env()
    } else {
        None
    };
    locate_in(explicit, Some(name), env)
}

/// [`locate`] for a plain directory (`None`: MNIST's names) or a named dataset, with the
/// value of `$MNIST_DIR` passed in.
fn locate_in(
    explicit: Option<&Path>,
    name: Option<DatasetName>,
    env: Option<PathBuf>,
) -> Result<PathBuf, DataError> {
    let info = name.map(DatasetName::info);
    if let Some(dir) = explicit {
        return find_all_of(dir, info).map(|_| dir.to_path_buf());
    }
    if let Some(dir) = env {
        // Regression (issue 10): a set but missing MNIST_DIR was skipped silently, and the
        // run fell through to a download that then advised setting MNIST_DIR.
        if !dir.is_dir() {
            let reason = format!(
                "MNIST_DIR={} is not a directory; set MNIST_DIR to the directory holding the \
                 four MNIST files (raw or .gz), or unset it",
                dir.display()
            );
            return Err(DataError::Io {
                path: dir,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, reason),
            });
        }
        return find_all_of(&dir, info).map(|_| dir);
    }
    let searched = match name {
        Some(n) if n != DatasetName::Mnist => search_dirs_of(n, None),
        _ => search_dirs(None, None),
    };
    match searched.iter().find(|dir| find_all_of(dir, info).is_ok()) {
        Some(dir) => Ok(dir.clone()),
        None => Err(DataError::NotFound {
            dataset: name.unwrap_or(DatasetName::Mnist).info(),
            searched,
        }),
    }
}

/// The file for `name` in `dir`: raw if it exists, else `.gz`.
pub(super) fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// Paths of the four files in [`FILE_NAMES`] order, or the error listing what is missing.
pub(super) fn find_all(dir: &Path) -> Result<[PathBuf; 4], DataError> {
    find_all_of(dir, None)
}

/// Paths of the four files of `info` (MNIST's names for `None`), or the error listing
/// what is missing.
pub(super) fn find_all_of(
    dir: &Path,
    info: Option<&'static DatasetInfo>,
) -> Result<[PathBuf; 4], DataError> {
    let names = info.map_or(FILE_NAMES, |i| i.files);
    let found = names.map(|name| find_file(dir, name));
    let missing: Vec<String> = names
        .iter()
        .zip(&found)
        .filter(|(_, path)| path.is_none())
        .map(|(name, _)| name.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(DataError::MissingFiles {
            dir: dir.to_path_buf(),
            dataset: info.map_or("mnist", |i| i.name),
            missing,
            looked_for: names
                .iter()
                .flat_map(|name| [name.to_string(), format!("{name}.gz")])
                .collect(),
        });
    }
    Ok(found.map(|path| path.expect("no file is missing")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::load_or_download;
    use crate::data::test_util::{assert_msg, real_dir, write_valid};

    #[test]
    fn locate_explicit_dir() {
        let dir = tempfile::tempdir().unwrap();
        let err = locate(Some(dir.path())).unwrap_err();
        assert!(matches!(&err, DataError::MissingFiles { missing, .. } if missing.len() == 4));
        write_valid(dir.path());
        assert_eq!(locate(Some(dir.path())).unwrap(), dir.path());
    }

    #[test]
    fn search_dirs_order() {
        let explicit = Path::new("/some/dir");
        assert_eq!(default_search_dirs(Some(explicit)), [explicit]);
        let env = PathBuf::from("/env/dir");
        assert_eq!(search_dirs(Some(explicit), Some(env.clone())), [explicit]);
        assert_eq!(search_dirs(None, Some(env.clone())), [env]);
        let tail = [PathBuf::from("data/mnist"), cache_dir()];
        assert_eq!(search_dirs(None, None), tail);
        assert!(cache_dir().ends_with("wgtrain/mnist"));
    }

    /// Regression (issue 10, item 12): `MNIST_DIR=/nonexistent` was skipped silently and
    /// the run fell through to a download. A set MNIST_DIR is the only directory searched.
    #[test]
    fn a_set_mnist_dir_that_is_missing_or_incomplete_is_an_error_naming_it() {
        let missing = PathBuf::from("/nonexistent/mnist");
        let err = locate_in(None, None, Some(missing.clone())).unwrap_err();
        assert!(
            matches!(&err, DataError::Io { path, .. } if *path == missing),
            "{err:?}"
        );
        let shown = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            shown.contains("MNIST_DIR=/nonexistent/mnist is not a directory"),
            "{shown}"
        );
        let empty = tempfile::tempdir().unwrap();
        let err = locate_in(None, None, Some(empty.path().to_path_buf())).unwrap_err();
        assert!(
            matches!(&err, DataError::MissingFiles { dir, missing, .. }
                if dir == empty.path() && missing.len() == 4),
            "{err:?}"
        );
        write_valid(empty.path());
        assert_eq!(
            locate_in(None, None, Some(empty.path().to_path_buf())).unwrap(),
            empty.path()
        );
    }

    #[test]
    fn not_found_message_explains_fix() {
        let err = DataError::NotFound {
            dataset: DatasetName::Mnist.info(),
            searched: vec![PathBuf::from("/a/mnist"), PathBuf::from("data/mnist")],
        };
        let phrases = [
            "/a/mnist",
            "data/mnist",
            "--data DIR",
            "MNIST_DIR=",
            "wgtrain download mnist",
        ];
        assert_msg(&err, &phrases);
        assert_msg(&err, &FILE_NAMES);
    }

    #[test]
    fn real_mnist_located_explicitly() {
        let dir = real_dir();
        assert_eq!(locate(Some(&dir)).unwrap(), dir);
        let m = load_or_download(Some(&dir), false, false).unwrap();
        assert_eq!(m.dir, dir);
    }
}
