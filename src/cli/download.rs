//! `wgtrain download`: fetch a named dataset and verify its checksums.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use wgtrain::data;
use wgtrain::output::OutputKind;

use super::common::{check_outputs, dataset_name};

/// `wgtrain download`: the flags.
#[derive(Args, Debug, Clone)]
pub struct DownloadArgs {
    /// Dataset name: mnist, fashion-mnist, kmnist, emnist-balanced, emnist-letters,
    /// emnist-digits or qmnist. $WGTRAIN_MIRROR (a base URL ending in /) replaces the mirrors.
    #[arg(value_parser = dataset_name)]
    pub dataset: wgtrain::data::DatasetName,
    /// Destination directory (default: the user cache directory, e.g.
    /// ~/.cache/wgtrain/fashion-mnist; the EMNIST splits share ~/.cache/wgtrain/emnist); a given
    /// one is created if missing, and its parent must exist.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `wgtrain download NAME [--dir DIR]`.
pub fn download_command(a: DownloadArgs) -> Result<()> {
    if let Some(dir) = &a.dir {
        check_outputs([(Some(dir.as_path()), OutputKind::Dir)])?;
    }
    let dir = a.dir.unwrap_or_else(|| data::cache_dir_of(a.dataset));
    data::download_dataset(a.dataset, &dir, true).map_err(wgtrain::Error::from)?;
    let checked = match a.dataset.info().packaging {
        data::datasets::Packaging::GzFiles { .. } if a.dataset == data::DatasetName::Mnist => {
            "SHA-256 verified"
        }
        data::datasets::Packaging::GzFiles { .. } => "MD5 verified",
        data::datasets::Packaging::Zip { .. } => "archive MD5 verified",
    };
    note!(
        "{} is in {} ({checked}); train with --dataset {} --data {}",
        a.dataset.info().title,
        dir.display(),
        a.dataset,
        dir.display()
    );
    Ok(())
}
