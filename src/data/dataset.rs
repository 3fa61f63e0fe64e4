//! The loaded data: one split of images and labels ([`Dataset`]) and a whole dataset with
//! its class count and class names ([`Mnist`]), the types every trainer and evaluator takes.

use std::path::PathBuf;

use super::datasets::DatasetName;

/// One split of an MNIST-style dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Pixels, shape `[n, rows*cols]`, row-major, one byte per pixel (0..=255).
    pub images: Vec<u8>,
    /// Class labels, shape `[n]`, each `< classes` of the owning [`Mnist`].
    pub labels: Vec<u32>,
    /// Image height in pixels.
    pub rows: usize,
    /// Image width in pixels.
    pub cols: usize,
}

impl Dataset {
    /// Number of samples `n`.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Input size of one sample: `rows * cols`.
    pub fn features(&self) -> usize {
        self.rows * self.cols
    }

    /// Pixels of sample `i`, `rows*cols` bytes, row-major.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let f = self.features();
        &self.images[i * f..(i + 1) * f]
    }

    /// A copy of the first `n` samples (all of them when `n >= self.len()`).
    pub fn head(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            images: self.images[..n * self.features()].to_vec(),
            labels: self.labels[..n].to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// A loaded dataset: both splits, the class count and the directory they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist {
    pub train: Dataset,
    pub test: Dataset,
    /// The class count `C`: given, the named dataset's, or the largest training label + 1.
    /// Every train and test label is below it.
    pub classes: usize,
    /// One name per class, `C` of them: the named dataset's (torchvision's `classes`,
    /// numbered past its end when `--classes` adds more), else `"0"`, `"1"`, ...
    pub class_names: Vec<String>,
    /// The named dataset, or `None` for a plain directory of MNIST-named IDX files.
    pub dataset: Option<DatasetName>,
    pub dir: PathBuf,
}
