//! The errors that mean "bad arguments or a bad input, found before the work started" (exit
//! code 2, by `cli::exit_code`): [`BadInput`] for an input file or an output path the user
//! named, [`usage`] for a flag value, and [`check_outputs`], the up-front output-path check.

use std::path::Path;

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
/// never created) and is not `/`, and a file output is not a directory; and no two outputs
/// are one file (by path, or by identity: a hard link to another output).
///
/// # Errors
/// [`wgtrain::Error::Output`] for the first bad path, marked as [`BadInput`]
/// (exit 2).
pub(crate) fn check_outputs<'a>(
    outputs: impl IntoIterator<Item = (Option<&'a Path>, OutputKind)>,
) -> Result<()> {
    let mut seen: Vec<(std::path::PathBuf, &Path, OutputKind)> = Vec::new();
    for (path, kind) in outputs {
        if let Some(p) = path {
            wgtrain::output::check_output(p, kind).map_err(bad_input)?;
            let at = resolved(p);
            // Two outputs on one file: the later write would silently replace the earlier.
            // (Two directory outputs may share a directory: their file names differ.)
            if let Some((a, q, _)) = seen.iter().find(|(a, q, k)| {
                !(*k == OutputKind::Dir && kind == OutputKind::Dir)
                    && (*a == at || wgtrain::output::same_file(q, p))
            }) {
                let how = if *a == at {
                    ""
                } else {
                    " under another name (a hard link or symlink to it)"
                };
                return Err(bad_input(wgtrain::Error::Output {
                    path: p.to_path_buf(),
                    reason: format!(
                        "is also given as another output ({}){how}; give each output its own path",
                        q.display()
                    ),
                }));
            }
            seen.push((at, p, kind));
        }
    }
    Ok(())
}

/// Refuses a file output that is one of the command's input files (`--init`,
/// `--hparam-schedule`, `--configs`, each given as `(flag, path)`): by path, or by identity
/// (a hard link or symlink to it), since writing the output would replace or truncate the
/// input.
///
/// # Errors
/// [`wgtrain::Error::Output`] naming the output and the input, marked as [`BadInput`]
/// (exit 2).
pub(crate) fn check_outputs_spare_inputs<'a>(
    outputs: impl IntoIterator<Item = Option<&'a Path>>,
    inputs: &[(&str, Option<&Path>)],
) -> Result<()> {
    for out in outputs.into_iter().flatten() {
        for (flag, input) in inputs {
            let Some(input) = input else { continue };
            if resolved(out) == resolved(input) || wgtrain::output::same_file(out, input) {
                let how = if resolved(out) == resolved(input) {
                    ""
                } else {
                    " under another name (a hard link or symlink to it)"
                };
                return Err(bad_input(wgtrain::Error::Output {
                    path: out.to_path_buf(),
                    reason: format!(
                        "is the input --{flag} {}{how}; writing it would replace that file, choose another path",
                        input.display()
                    ),
                }));
            }
        }
    }
    Ok(())
}

/// Refuses a file output that is one of the dataset's own files (raw or `.gz`) in the
/// directory it was loaded from: the write at the end of the run would replace the data
/// (`--save DIR/train-images-idx3-ubyte` did), and a `--metrics` file, written in place,
/// would truncate it. Compared by path and by identity, so a hard link to a data file
/// elsewhere is refused too. Called once the data is located, before any work.
///
/// # Errors
/// [`wgtrain::Error::Output`] naming the path, marked as [`BadInput`] (exit 2).
pub(crate) fn check_outputs_spare_data<'a>(
    outputs: impl IntoIterator<Item = Option<&'a Path>>,
    mnist: &wgtrain::data::Mnist,
) -> Result<()> {
    let info = mnist
        .dataset
        .unwrap_or(wgtrain::data::DatasetName::Mnist)
        .info();
    let files: Vec<std::path::PathBuf> = info
        .files
        .iter()
        .flat_map(|f| [mnist.dir.join(f), mnist.dir.join(format!("{f}.gz"))])
        .collect();
    let dir = mnist.dir.canonicalize().ok();
    for p in outputs.into_iter().flatten() {
        let at = resolved(p);
        let named = dir.as_ref().is_some_and(|d| {
            info.files
                .iter()
                .any(|f| at == d.join(f) || at == d.join(format!("{f}.gz")))
        });
        let linked = files.iter().find(|f| wgtrain::output::same_file(p, f));
        if named || linked.is_some() {
            let how = match linked {
                Some(f) if !named => format!(
                    " ({} under another name: a hard link or symlink to it)",
                    f.display()
                ),
                _ => String::new(),
            };
            return Err(bad_input(wgtrain::Error::Output {
                path: p.to_path_buf(),
                reason: format!(
                    "is one of the dataset's own files{how} (in {}); writing it would replace the data, choose another path",
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

/// The outputs of a run that failed to be written while the run went on: a failed output
/// (a full disk under `--metrics`) must not cost the others (`--save` above all), so each
/// failure is said at once, as a warning, and the run reports them at its end.
#[derive(Debug, Default)]
pub(crate) struct FailedOutputs(Vec<anyhow::Error>);

impl FailedOutputs {
    /// Records a failed output, warning now when the run goes on after it (`during`).
    pub(crate) fn record(&mut self, e: anyhow::Error, during: bool) {
        if during {
            note!("warning: {e:#}; the run goes on and will write its other outputs");
        }
        self.0.push(e);
    }

    /// True when no output failed.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when every output was written; else the first failure (exit 1), saying that
    /// the other outputs were written and how many more failed (each warned of above).
    pub(crate) fn into_result(self) -> Result<()> {
        let n = self.0.len();
        match self.0.into_iter().next() {
            None => Ok(()),
            Some(first) if n == 1 => Err(anyhow::anyhow!(
                "{first:#}; the run's other outputs were written"
            )),
            Some(first) => Err(anyhow::anyhow!(
                "{first:#}; {} other output(s) failed too (see the warnings above), the rest were written",
                n - 1
            )),
        }
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
