//! `wgtrain._wgtrain.Data`: a dataset (both splits, the class count) held behind an `Arc`
//! so that engines can borrow it for as long as they live ([`crate::session`]). Arrays
//! cross the boundary as little-endian bytes; `wgtrain/__init__.py` turns them into numpy
//! arrays (the extension needs no numpy C API, so one abi3 wheel serves every numpy).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use wgtrain::data::{
    DataError, Dataset, DatasetName, LoadOptions, Mnist, Normalization, cache_dir_of, pixel_stats,
};

use crate::errors::{data_error, to_py};

/// `load`'s errors about where the files are, in the Python API's terms. The library's
/// messages are the CLI's (`--data`, `wgtrain download`), which a pip-only user does not
/// have; these name `dir=`, `$MNIST_DIR` and `load_dataset`'s own download, say "no such
/// directory" apart from "is missing files", and name the CLI only as a separate program.
/// `dir` is the `dir=` argument; `dataset` the named dataset (`None`: MNIST's file names).
fn load_error(e: DataError, dir: Option<&Path>, dataset: Option<DatasetName>) -> PyErr {
    let name = dataset.unwrap_or(DatasetName::Mnist);
    let info = name.info();
    let mnist = name == DatasetName::Mnist;
    let call = format!("wgtrain.load_dataset(\"{}\")", name.as_str());
    let cache = cache_dir_of(name);
    let four = format!(
        "the four {} files ({}; each raw or .gz)",
        info.title,
        info.files.join(", ")
    );
    let searched = if mnist {
        format!("./data/mnist and {}", cache.display())
    } else {
        format!("./data/{} and {}", name.as_str(), cache.display())
    };
    // What is wrong with a directory that was named but holds no complete dataset.
    let problem = |d: &Path, missing: &[String]| {
        if !d.exists() {
            ": no such directory".to_string()
        } else if !d.is_dir() {
            ": not a directory".to_string()
        } else {
            format!(
                " is missing files: {} (each raw or .gz)",
                missing.join(", ")
            )
        }
    };
    let message = match e {
        DataError::MissingFiles {
            dir: d, missing, ..
        } if dir.is_some() => {
            // The command-line tool can fill a missing or existing directory, not a file.
            let cli = if d.exists() && !d.is_dir() {
                String::new()
            } else {
                format!(
                    " Or, with the wgtrain command-line tool installed, `wgtrain download {} \
                     --dir {}` downloads them into this directory.",
                    name.as_str(),
                    d.display()
                )
            };
            format!(
                "dir=\"{}\"{}. Pass dir= a directory holding {four}, or leave dir out: {call} \
                 then {}looks in {searched} and downloads the files into the last when \
                 neither holds them (download=True, the default).{cli}",
                d.display(),
                problem(&d, &missing),
                if mnist {
                    "uses $MNIST_DIR when it is set, else "
                } else {
                    ""
                },
            )
        }
        // Without dir=, only a set $MNIST_DIR is a named directory (MNIST only).
        DataError::MissingFiles {
            dir: d, missing, ..
        } => mnist_dir_message(&d, &problem(&d, &missing), &four, &call, &searched),
        DataError::Io { path, .. } if dir.is_none() && mnist_dir().as_deref() == Some(&*path) => {
            mnist_dir_message(&path, &problem(&path, &[]), &four, &call, &searched)
        }
        DataError::NotFound { searched, .. } => {
            let places: Vec<String> = searched.iter().map(|d| d.display().to_string()).collect();
            format!(
                "{} files not found: none of {} holds {four}. Call {call} with \
                 download=True (the default) to download them into {}{}.",
                info.title,
                places.join(", "),
                cache.display(),
                if mnist {
                    ", pass dir= a directory holding them, or set the MNIST_DIR \
                     environment variable to one"
                } else {
                    ", or pass dir= a directory holding them"
                }
            )
        }
        DataError::Download { url, reason, .. } => format!(
            "could not download {url}: {reason}. No network? Put {four} in a directory and \
             pass it as wgtrain.load_dataset(\"{}\", dir=DIR){}.",
            name.as_str(),
            if mnist {
                ", or set the MNIST_DIR environment variable to it"
            } else {
                ""
            }
        ),
        other => return to_py(other.into()),
    };
    data_error(message)
}

/// A set `$MNIST_DIR` that is no complete MNIST directory, and the ways out from Python.
fn mnist_dir_message(d: &Path, problem: &str, four: &str, call: &str, searched: &str) -> String {
    format!(
        "MNIST_DIR=\"{}\" (the environment variable load_dataset reads when dir is not given){problem}. \
         Set MNIST_DIR to a directory holding {four}, pass dir= such a directory, or unset \
         MNIST_DIR (del os.environ[\"MNIST_DIR\"]): {call} then looks in {searched}, and \
         downloads the files into the last when neither holds them (download=True, the default).",
        d.display()
    )
}

/// `$MNIST_DIR` as the library reads it: set and non-empty.
fn mnist_dir() -> Option<PathBuf> {
    std::env::var_os("MNIST_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A loaded dataset: training and test splits of `[N, rows*cols]` u8 images and `[N]`
/// labels, and the class count `C`.
#[pyclass(module = "wgtrain", name = "_Data", frozen)]
pub struct PyData {
    pub inner: Arc<Mnist>,
}

/// Labels from little-endian u32 bytes.
fn labels(bytes: &[u8], what: &str) -> PyResult<Vec<u32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(data_error(format!(
            "{what}: {} bytes is not a whole number of u32 labels",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// One split from its bytes, checked against the image size.
fn split(
    images: &[u8],
    label_bytes: &[u8],
    rows: usize,
    cols: usize,
    name: &str,
) -> PyResult<Dataset> {
    let labels = labels(label_bytes, &format!("{name}_labels"))?;
    let f = rows * cols;
    if f == 0 || images.len() != labels.len() * f {
        return Err(data_error(format!(
            "{name}_images holds {} bytes but {name}_labels has {} labels of {rows}x{cols} = {f} \
             pixels each ({} bytes); give images of shape [N, {f}] for N labels",
            images.len(),
            labels.len(),
            labels.len() * f
        )));
    }
    Ok(Dataset {
        images: images.to_vec(),
        labels,
        rows,
        cols,
    })
}

#[pymethods]
impl PyData {
    /// Loads a directory of MNIST-named IDX files, or a named dataset (`"mnist"`,
    /// `"fashion-mnist"`, `"kmnist"`, `"emnist-balanced"`, `"emnist-letters"`,
    /// `"emnist-digits"`, `"qmnist"`) from `dir` or its usual places, downloading it into
    /// the cache folder when `download` and no `dir` is given (as `wgtrain train --dataset`).
    #[staticmethod]
    #[pyo3(signature = (dir=None, dataset=None, classes=None, download=true))]
    fn load(
        py: Python<'_>,
        dir: Option<PathBuf>,
        dataset: Option<&str>,
        classes: Option<usize>,
        download: bool,
    ) -> PyResult<PyData> {
        let dataset = dataset
            .map(|d| d.parse::<DatasetName>())
            .transpose()
            .map_err(|e| data_error(format!("dataset=\"{}\": {e}", dataset.unwrap_or(""))))?;
        let opts = LoadOptions { dataset, classes };
        let mnist = py
            .detach(|| wgtrain::data::load_or_download_with(dir.as_deref(), &opts, download, false))
            .map_err(|e| load_error(e, dir.as_deref(), dataset))?;
        Ok(PyData {
            inner: Arc::new(mnist),
        })
    }

    /// Data from arrays' bytes: images `[N, rows*cols]` u8 row-major, labels `[N]` as
    /// little-endian u32, for both splits; `classes` defaults to the largest label + 1.
    #[staticmethod]
    #[pyo3(signature = (train_images, train_labels, test_images, test_labels, rows, cols, classes=None))]
    fn from_bytes(
        train_images: &[u8],
        train_labels: &[u8],
        test_images: &[u8],
        test_labels: &[u8],
        rows: usize,
        cols: usize,
        classes: Option<usize>,
    ) -> PyResult<PyData> {
        let train = split(train_images, train_labels, rows, cols, "train")?;
        let test = split(test_images, test_labels, rows, cols, "test")?;
        if train.is_empty() {
            return Err(data_error(
                "train_images is empty: give at least one training sample".into(),
            ));
        }
        let largest = train.labels.iter().chain(&test.labels).max().copied();
        let classes = match classes {
            Some(c) => c,
            None => largest.map_or(0, |l| l as usize + 1),
        };
        for (name, s) in [("train", &train), ("test", &test)] {
            if let Some(i) = s.labels.iter().position(|&l| l as usize >= classes) {
                return Err(data_error(format!(
                    "{name}_labels[{i}] is {} but classes={classes}: labels must lie in \
                     0..classes; raise classes or fix the label",
                    s.labels[i]
                )));
            }
        }
        if classes < 2 {
            return Err(data_error(format!(
                "classes={classes}: a classifier needs at least 2 classes"
            )));
        }
        Ok(PyData {
            inner: Arc::new(Mnist {
                train,
                test,
                classes,
                class_names: (0..classes).map(|c| c.to_string()).collect(),
                dataset: None,
                dir: PathBuf::new(),
            }),
        })
    }

    /// Training samples N.
    #[getter]
    fn train_len(&self) -> usize {
        self.inner.train.len()
    }
    /// Test samples.
    #[getter]
    fn test_len(&self) -> usize {
        self.inner.test.len()
    }
    /// Image height, pixels.
    #[getter]
    fn rows(&self) -> usize {
        self.inner.train.rows
    }
    /// Image width, pixels.
    #[getter]
    fn cols(&self) -> usize {
        self.inner.train.cols
    }
    /// The class count C.
    #[getter]
    fn classes(&self) -> usize {
        self.inner.classes
    }
    /// One name per class.
    #[getter]
    fn class_names(&self) -> Vec<String> {
        self.inner.class_names.clone()
    }
    /// The named dataset, or None.
    #[getter]
    fn name(&self) -> Option<&'static str> {
        self.inner.dataset.map(DatasetName::as_str)
    }
    /// The directory the files came from, or None for arrays.
    #[getter]
    fn dir(&self) -> Option<String> {
        let d = &self.inner.dir;
        (!d.as_os_str().is_empty()).then(|| d.to_string_lossy().into_owned())
    }
    /// `(mean, std)` of the pixels scaled to [0, 1]: the named dataset's published values,
    /// else computed from the training pixels (`RunConfig(normalize=...)`).
    #[getter]
    fn normalization(&self) -> (f32, f32) {
        let n: Normalization = match self.inner.dataset {
            Some(d) => d.info().normalization,
            None => pixel_stats(&self.inner.train),
        };
        (n.mean, n.std)
    }
    /// The pixels of a split (`"train"` or `"test"`), `[N, rows*cols]` u8 bytes.
    fn images<'py>(&self, py: Python<'py>, split: &str) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.split(split)?.images))
    }
    /// The labels of a split, `[N]` little-endian u32 bytes.
    fn labels<'py>(&self, py: Python<'py>, split: &str) -> PyResult<Bound<'py, PyBytes>> {
        let l = &self.split(split)?.labels;
        let bytes: Vec<u8> = l.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok(PyBytes::new(py, &bytes))
    }
}

impl PyData {
    fn split(&self, name: &str) -> PyResult<&Dataset> {
        match name {
            "train" => Ok(&self.inner.train),
            "test" => Ok(&self.inner.test),
            other => Err(data_error(format!(
                "split=\"{other}\" is not \"train\" or \"test\""
            ))),
        }
    }
}
