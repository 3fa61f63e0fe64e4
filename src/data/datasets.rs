//! The catalogue of named datasets: MNIST and the sets torchvision offers next to it.
//!
//! Each [`DatasetName`] has a [`DatasetInfo`]: its four file names, how they are packaged
//! and checked on download, the cache folder, the class names, the normalisation
//! statistics, and how its files differ from plain MNIST (EMNIST's transposed images,
//! QMNIST's 2-D labels). File names, URLs and MD5s are torchvision's
//! (`torchvision/datasets/mnist.py`); the class names are torchvision's `classes`.
//!
//! Checksums: torchvision publishes an MD5 of each downloaded `.gz` (or, for EMNIST, of
//! the one zip archive). wgtrain checks MNIST by the SHA-256 of each decompressed file
//! (computed from the standard release) and every other set by torchvision's MD5 of the
//! bytes as downloaded; no SHA-256 is published for them and none could be computed here
//! (no network), so MD5 is what is checked.

use std::fmt;
use std::str::FromStr;

use super::mnist;

/// A dataset wgtrain can download and load by name (`--dataset NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetName {
    /// LeCun's handwritten digits, 60,000 train / 10,000 test, 10 classes.
    Mnist,
    /// Zalando's clothing images, 60,000 / 10,000, 10 classes.
    FashionMnist,
    /// Kuzushiji (cursive Japanese) characters, 60,000 / 10,000, 10 classes.
    Kmnist,
    /// EMNIST balanced: digits and letters, 112,800 / 18,800, 47 classes.
    EmnistBalanced,
    /// EMNIST letters: 124,800 / 20,800; labels 1..=26, 27 classes with `N/A` at 0.
    EmnistLetters,
    /// EMNIST digits: 240,000 / 40,000, 10 classes.
    EmnistDigits,
    /// QMNIST: MNIST reconstructed from NIST, 60,000 train / 60,000 test, 10 classes.
    Qmnist,
}

/// Every name, in the order of [`DatasetName::NAMES`].
pub const ALL: [DatasetName; 7] = [
    DatasetName::Mnist,
    DatasetName::FashionMnist,
    DatasetName::Kmnist,
    DatasetName::EmnistBalanced,
    DatasetName::EmnistLetters,
    DatasetName::EmnistDigits,
    DatasetName::Qmnist,
];

impl DatasetName {
    /// The command-line names, aligned with [`ALL`].
    pub const NAMES: [&'static str; 7] = [
        "mnist",
        "fashion-mnist",
        "kmnist",
        "emnist-balanced",
        "emnist-letters",
        "emnist-digits",
        "qmnist",
    ];

    /// The command-line name, e.g. `fashion-mnist`.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[ALL
            .iter()
            .position(|&d| d == self)
            .expect("ALL lists every name")]
    }

    /// Everything wgtrain knows about this dataset.
    pub fn info(self) -> &'static DatasetInfo {
        match self {
            DatasetName::Mnist => &MNIST,
            DatasetName::FashionMnist => &FASHION_MNIST,
            DatasetName::Kmnist => &KMNIST,
            DatasetName::EmnistBalanced => &EMNIST_BALANCED,
            DatasetName::EmnistLetters => &EMNIST_LETTERS,
            DatasetName::EmnistDigits => &EMNIST_DIGITS,
            DatasetName::Qmnist => &QMNIST,
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = String;

    /// Parses a command-line name (case-insensitive).
    ///
    /// # Errors
    /// A message listing the valid names.
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        Self::NAMES
            .iter()
            .position(|&n| n == lower)
            .map(|i| ALL[i])
            .ok_or_else(|| format!("unknown dataset '{s}'; valid: {}", Self::NAMES.join(", ")))
    }
}

/// How one downloaded file is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// SHA-256 (hex) of the decompressed file; a raw or `.gz` copy can both be checked.
    Sha256Raw(&'static str),
    /// MD5 (hex) of the `.gz` file exactly as served (torchvision's check).
    Md5Gz(&'static str),
}

/// How a dataset's files are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packaging {
    /// `<mirror><file>.gz` for each of the four files, tried mirror by mirror.
    GzFiles {
        /// Base URLs ending in `/`.
        mirrors: &'static [&'static str],
        /// One check per file, aligned with [`DatasetInfo::files`].
        checks: [Check; 4],
    },
    /// One zip archive `<mirror><archive>` holding `<member_dir><file>.gz` for each file
    /// (and those of other splits); only the archive's MD5 is published.
    Zip {
        /// Base URLs ending in `/`.
        mirrors: &'static [&'static str],
        /// File name of the archive, e.g. `gzip.zip`.
        archive: &'static str,
        /// MD5 (hex) of the archive.
        md5: &'static str,
        /// Folder of the `.gz` members inside the archive, ending in `/`.
        member_dir: &'static str,
    },
}

/// How the label file stores the class of each sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelLayout {
    /// 1-D `[N]` integers (MNIST's `idx1-ubyte`).
    Flat,
    /// 2-D `[N, K]` integers with the class in column 0 (QMNIST's `idx2-int`, K = 8).
    Column0,
}

/// What wgtrain knows about one named dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInfo {
    /// Command-line name, e.g. `emnist-letters`.
    pub name: &'static str,
    /// Human name, e.g. `EMNIST letters`.
    pub title: &'static str,
    /// Folder under the user cache directory, e.g. `emnist` (shared by the EMNIST splits,
    /// which come from one archive).
    pub cache_folder: &'static str,
    /// Base names (no `.gz`) of train images, train labels, test images, test labels.
    pub files: [&'static str; 4],
    /// How the files are downloaded and checked.
    pub packaging: Packaging,
    /// One name per class, index = label (torchvision's `classes`); its length is `C`.
    pub class_names: &'static [&'static str],
    /// Mean and std of the training pixels scaled to [0, 1] (see the module docs of
    /// [`super::datasets`] and [`pixel_stats`] for where they come from).
    pub normalization: Normalization,
    /// The images are stored transposed (EMNIST): the loader transposes them back so they
    /// are upright.
    pub transposed: bool,
    /// How the labels are stored.
    pub labels: LabelLayout,
    /// The release's training and test sample counts: a file whose header claims more is
    /// not this dataset's and is refused before its data is read.
    pub samples: [usize; 2],
}

const MNIST_CLASSES: [&str; 10] = [
    "0 - zero",
    "1 - one",
    "2 - two",
    "3 - three",
    "4 - four",
    "5 - five",
    "6 - six",
    "7 - seven",
    "8 - eight",
    "9 - nine",
];

const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// torchvision's `classes_split_dict["balanced"]`: digits, upper case, then the lower-case
/// letters whose shapes differ from their upper case (`sorted(all - merged)`).
const EMNIST_BALANCED_CLASSES: [&str; 47] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F", "G", "H", "I",
    "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z", "a", "b",
    "d", "e", "f", "g", "h", "n", "q", "r", "t",
];

/// torchvision's `["N/A"] + list(string.ascii_lowercase)`: labels start at 1.
const EMNIST_LETTERS_CLASSES: [&str; 27] = [
    "N/A", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q",
    "r", "s", "t", "u", "v", "w", "x", "y", "z",
];

/// The EMNIST archive as torchvision fetches it (both hosts of NIST's link).
const EMNIST_ZIP: Packaging = Packaging::Zip {
    mirrors: &[
        "https://biometrics.nist.gov/cs_links/EMNIST/",
        "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/",
    ],
    archive: "gzip.zip",
    md5: "58c8d27c78d21e728a6bc7b3cc06412e",
    member_dir: "gzip/",
};

static MNIST: DatasetInfo = DatasetInfo {
    name: "mnist",
    title: "MNIST",
    cache_folder: "mnist",
    files: mnist::FILE_NAMES,
    packaging: Packaging::GzFiles {
        mirrors: &mnist::MIRRORS,
        checks: [
            Check::Sha256Raw(mnist::SHA256[0]),
            Check::Sha256Raw(mnist::SHA256[1]),
            Check::Sha256Raw(mnist::SHA256[2]),
            Check::Sha256Raw(mnist::SHA256[3]),
        ],
    },
    class_names: &MNIST_CLASSES,
    normalization: Normalization::MNIST,
    transposed: false,
    labels: LabelLayout::Flat,
    samples: [60_000, 10_000],
};

static FASHION_MNIST: DatasetInfo = DatasetInfo {
    name: "fashion-mnist",
    title: "Fashion-MNIST",
    cache_folder: "fashion-mnist",
    files: mnist::FILE_NAMES,
    packaging: Packaging::GzFiles {
        mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        checks: [
            Check::Md5Gz("8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            Check::Md5Gz("25c81989df183df01b3e8a0aad5dffbe"),
            Check::Md5Gz("bef4ecab320f06d8554ea6380940ec79"),
            Check::Md5Gz("bb300cfdad3c16e7a12a480ee83cd310"),
        ],
    },
    class_names: &[
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    normalization: Normalization {
        mean: 0.2860,
        std: 0.3530,
    },
    transposed: false,
    labels: LabelLayout::Flat,
    samples: [60_000, 10_000],
};

static KMNIST: DatasetInfo = DatasetInfo {
    name: "kmnist",
    title: "Kuzushiji-MNIST",
    cache_folder: "kmnist",
    files: mnist::FILE_NAMES,
    packaging: Packaging::GzFiles {
        mirrors: &["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"],
        checks: [
            Check::Md5Gz("bdb82020997e1d708af4cf47b453dcf7"),
            Check::Md5Gz("e144d726b3acfaa3e44228e80efcd344"),
            Check::Md5Gz("5c965bf0a639b31b8f53240b1b52f4d7"),
            Check::Md5Gz("7320c461ea6c1c855c0b718fb2a4b134"),
        ],
    },
    class_names: &["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
    normalization: Normalization {
        mean: 0.1918,
        std: 0.3483,
    },
    transposed: false,
    labels: LabelLayout::Flat,
    samples: [60_000, 10_000],
};

static EMNIST_BALANCED: DatasetInfo = DatasetInfo {
    name: "emnist-balanced",
    title: "EMNIST balanced",
    cache_folder: "emnist",
    files: [
        "emnist-balanced-train-images-idx3-ubyte",
        "emnist-balanced-train-labels-idx1-ubyte",
        "emnist-balanced-test-images-idx3-ubyte",
        "emnist-balanced-test-labels-idx1-ubyte",
    ],
    packaging: EMNIST_ZIP,
    class_names: &EMNIST_BALANCED_CLASSES,
    normalization: Normalization {
        mean: 0.1751,
        std: 0.3332,
    },
    transposed: true,
    labels: LabelLayout::Flat,
    samples: [112_800, 18_800],
};

static EMNIST_LETTERS: DatasetInfo = DatasetInfo {
    name: "emnist-letters",
    title: "EMNIST letters",
    cache_folder: "emnist",
    files: [
        "emnist-letters-train-images-idx3-ubyte",
        "emnist-letters-train-labels-idx1-ubyte",
        "emnist-letters-test-images-idx3-ubyte",
        "emnist-letters-test-labels-idx1-ubyte",
    ],
    packaging: EMNIST_ZIP,
    class_names: &EMNIST_LETTERS_CLASSES,
    normalization: Normalization {
        mean: 0.1722,
        std: 0.3309,
    },
    transposed: true,
    labels: LabelLayout::Flat,
    samples: [124_800, 20_800],
};

static EMNIST_DIGITS: DatasetInfo = DatasetInfo {
    name: "emnist-digits",
    title: "EMNIST digits",
    cache_folder: "emnist",
    files: [
        "emnist-digits-train-images-idx3-ubyte",
        "emnist-digits-train-labels-idx1-ubyte",
        "emnist-digits-test-images-idx3-ubyte",
        "emnist-digits-test-labels-idx1-ubyte",
    ],
    packaging: EMNIST_ZIP,
    class_names: &DIGITS,
    normalization: Normalization {
        mean: 0.1733,
        std: 0.3317,
    },
    transposed: true,
    labels: LabelLayout::Flat,
    samples: [240_000, 40_000],
};

static QMNIST: DatasetInfo = DatasetInfo {
    name: "qmnist",
    title: "QMNIST",
    cache_folder: "qmnist",
    files: [
        "qmnist-train-images-idx3-ubyte",
        "qmnist-train-labels-idx2-int",
        "qmnist-test-images-idx3-ubyte",
        "qmnist-test-labels-idx2-int",
    ],
    packaging: Packaging::GzFiles {
        mirrors: &["https://raw.githubusercontent.com/facebookresearch/qmnist/master/"],
        checks: [
            Check::Md5Gz("ed72d4157d28c017586c42bc6afe6370"),
            Check::Md5Gz("0058f8dd561b90ffdd0f734c6a30e5e4"),
            Check::Md5Gz("1394631089c404de565df7b7aeaf9412"),
            Check::Md5Gz("5b5b05890a5e13444e108efe57b788aa"),
        ],
    },
    class_names: &MNIST_CLASSES,
    // QMNIST's training set is MNIST's, reconstructed: MNIST's statistics.
    normalization: Normalization::MNIST,
    transposed: false,
    labels: LabelLayout::Column0,
    samples: [60_000, 60_000],
};

/// Mean and (population) standard deviation of a split's pixels scaled to [0, 1], the
/// statistics `transforms.Normalize(mean, std)` is given: `mean = Σx / n`,
/// `std = sqrt(Σx² / n - mean²)` over every pixel of every image, accumulated in f64.
/// On MNIST's training set this gives 0.1307 and 0.3081.
///
/// Returns mean 0 and std 1 for an empty split.
pub fn pixel_stats(split: &super::Dataset) -> Normalization {
    if split.images.is_empty() {
        return Normalization::UNIT;
    }
    let mut hist = [0u64; 256];
    split.images.iter().for_each(|&p| hist[p as usize] += 1);
    let n = split.images.len() as f64;
    let (mut sum, mut sq) = (0.0f64, 0.0f64);
    for (v, &count) in hist.iter().enumerate() {
        let x = v as f64 / 255.0;
        sum += x * count as f64;
        sq += x * x * count as f64;
    }
    let mean = sum / n;
    Normalization {
        mean: mean as f32,
        std: (sq / n - mean * mean).max(0.0).sqrt() as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_lists_valid() {
        for (d, n) in ALL.iter().zip(DatasetName::NAMES) {
            assert_eq!(d.as_str(), n);
            assert_eq!(n.parse::<DatasetName>().unwrap(), *d);
            assert_eq!(d.info().name, n);
        }
        let err = "cifar".parse::<DatasetName>().unwrap_err();
        assert!(
            err.contains("fashion-mnist") && err.contains("qmnist"),
            "{err}"
        );
    }

    /// Class counts as torchvision defines them: letters keeps 27 with N/A at 0.
    #[test]
    fn class_counts_follow_torchvision() {
        let counts: Vec<usize> = ALL.iter().map(|d| d.info().class_names.len()).collect();
        assert_eq!(counts, [10, 10, 10, 47, 27, 10, 10]);
        assert_eq!(EMNIST_LETTERS_CLASSES[0], "N/A");
        assert_eq!(EMNIST_LETTERS_CLASSES[26], "z");
        // sorted(set(digits + letters) - merged): 36 + 11 lower-case letters.
        let lower: String = EMNIST_BALANCED_CLASSES[36..].concat();
        assert_eq!(lower, "abdefghnqrt");
    }

    #[test]
    fn pixel_stats_by_hand() {
        // Pixels 0 and 255: mean 0.5, std 0.5.
        let d = super::super::Dataset {
            images: vec![0, 255, 0, 255],
            labels: vec![0, 1],
            rows: 1,
            cols: 2,
        };
        let s = pixel_stats(&d);
        assert!(
            (s.mean - 0.5).abs() < 1e-7 && (s.std - 0.5).abs() < 1e-7,
            "{s:?}"
        );
    }
}

/// Input normalisation applied by the gather kernel: `(pixel / 255 - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub mean: f32,
    pub std: f32,
}

impl Normalization {
    /// Pixels in [0, 1].
    pub const UNIT: Normalization = Normalization {
        mean: 0.0,
        std: 1.0,
    };
    /// MNIST's mean and std (0.1307, 0.3081), as in the PyTorch example.
    pub const MNIST: Normalization = Normalization {
        mean: 0.1307,
        std: 0.3081,
    };
}
