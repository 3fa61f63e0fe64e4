//! The errors that mean "bad arguments or a bad input, found before the work started" (exit
//! code 2, by `cli::exit_code`): [`BadInput`] for an input file or an output path the user
//! named, [`usage`] for a flag value, and [`check_outputs`], the up-front output-path check.

use anyhow::Result;

use wgtrain::output::OutputKind;

/// A bad input found before the work starts: a dataset that is missing, incomplete or
/// malformed, an unreadable or malformed checkpoint or metrics file, an output path that
/// breaks the output rule. Exits with code 2, like a bad argument; the message is the inner
/// error's.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct BadInput(#[from] pub wgtrain::Error);

/// Marks an error from reading an input the user named as [`BadInput`] (exit code 2).
pub(crate) fn bad_input(e: impl Into<wgtrain::Error>) -> anyhow::Error {
    BadInput(e.into()).into()
}

/// Checks every output path of a command with the one rule
/// ([`wgtrain::output::check_output`]) before any work: its directory exists (parents are
/// never created) and is not `/`, and a file output is not a directory.
///
/// # Errors
/// [`wgtrain::Error::Output`] for the first bad path, marked as [`BadInput`]
/// (exit 2).
pub(crate) fn check_outputs<'a>(
    outputs: impl IntoIterator<Item = (Option<&'a std::path::Path>, OutputKind)>,
) -> Result<()> {
    let mut seen: Vec<(std::path::PathBuf, &std::path::Path, OutputKind)> = Vec::new();
    for (path, kind) in outputs {
        if let Some(p) = path {
            wgtrain::output::check_output(p, kind).map_err(bad_input)?;
            let at = resolved(p);
            // Two outputs on one file: the later write would silently replace the earlier.
            // (Two directory outputs may share a directory: their file names differ.)
            if let Some((_, q, _)) = seen
                .iter()
                .find(|(a, _, k)| *a == at && !(*k == OutputKind::Dir && kind == OutputKind::Dir))
            {
                return Err(bad_input(wgtrain::Error::Output {
                    path: p.to_path_buf(),
                    reason: format!(
                        "is also given as another output ({}); give each output its own path",
                        q.display()
                    ),
                }));
            }
            seen.push((at, p, kind));
        }
    }
    Ok(())
}

/// Refuses a file output that is one of the dataset's own files (raw or `.gz`) in the
/// directory it was loaded from: the write at the end of the run would replace the data
/// (`--save DIR/train-images-idx3-ubyte` did). Called once the data is located, before any
/// work.
///
/// # Errors
/// [`wgtrain::Error::Output`] naming the path, marked as [`BadInput`] (exit 2).
pub(crate) fn check_outputs_spare_data<'a>(
    outputs: impl IntoIterator<Item = Option<&'a std::path::Path>>,
    mnist: &wgtrain::data::Mnist,
) -> Result<()> {
    let Ok(dir) = mnist.dir.canonicalize() else {
        return Ok(());
    };
    let info = mnist
        .dataset
        .unwrap_or(wgtrain::data::DatasetName::Mnist)
        .info();
    for p in outputs.into_iter().flatten() {
        let at = resolved(p);
        let hit = info
            .files
            .iter()
            .any(|f| at == dir.join(f) || at == dir.join(format!("{f}.gz")));
        if hit {
            return Err(bad_input(wgtrain::Error::Output {
                path: p.to_path_buf(),
                reason: format!(
                    "is one of the dataset's own files (in {}); writing it would replace the data, choose another path",
                    mnist.dir.display()
                ),
            }));
        }
    }
    Ok(())
}

/// `path` made absolute with its directory resolved (symlinks, `..`), so two spellings of
/// one file compare equal; the path as given when its directory cannot be resolved.
fn resolved(path: &std::path::Path) -> std::path::PathBuf {
    let parent = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    match (parent.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

/// What is wrong, for a reason after `--flag = PATH: `: an error's source when it has one
/// ([`wgtrain::Error::Io`] displays as its path alone, its OS or parse error being the
/// source), else the error itself.
pub(crate) fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    e.source().map_or_else(|| e.to_string(), |s| s.to_string())
}

/// A usage error (exit 2): the value of `--name` (or of the setting `name`) is refused for
/// `reason`, as [`wgtrain::Error::InvalidConfig`].
pub(crate) fn usage(
    name: &'static str,
    value: impl ToString,
    reason: impl ToString,
) -> anyhow::Error {
    wgtrain::Error::InvalidConfig {
        name,
        value: value.to_string(),
        reason: reason.to_string(),
    }
    .into()
}
