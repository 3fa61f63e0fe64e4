//! Ctrl-C (and SIGTERM, SIGHUP: the `ctrlc` crate's `termination` feature): the first one
//! sets a stop flag that the trainer checks at step boundaries, so `train` and `sweep`
//! write what they were asked to and exit with code 130; a second one exits at once with
//! code 130, writing nothing more.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use wgtrain::model::{MlpSpec, Normalization};
use wgtrain::train::Trainer;

use super::save::SaveAs;

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The process's stop flag, with the Ctrl-C handler installed on first use.
///
/// If the handler cannot be installed (another one is), the flag still exists and is
/// simply never set: Ctrl-C then ends the process the default way.
pub fn stop_flag() -> Arc<AtomicBool> {
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&flag);
        let installed = ctrlc::set_handler(move || {
            if seen.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond Ctrl-C: exiting now");
                std::process::exit(EXIT_INTERRUPTED);
            }
            eprintln!(
                "\nCtrl-C: stopping at the next step boundary and writing the outputs (Ctrl-C again exits at once)"
            );
        });
        if let Err(e) = installed {
            eprintln!("warning: Ctrl-C will not stop the run cleanly: {e}");
        }
        flag
    })
    .clone()
}

/// Saves the weights an interrupted run reached, with metadata saying where it stopped:
/// `wgtrain.interrupted = true`, `wgtrain.epoch` (1-based, the epoch that was running),
/// `wgtrain.step` (its steps that finished), `wgtrain.steps_per_epoch` and
/// `wgtrain.global_step` (steps since the start of the run), with the tensors stored as
/// `how` (the run's `--save-dtype` and `--fold-normalize`).
///
/// # Errors
/// As [`super::save::save_checkpoint`]; `interrupted` must be [`wgtrain::Error::Interrupted`].
pub fn save_interrupted(
    path: &Path,
    spec: &MlpSpec,
    trainer: &mut Trainer<'_>,
    norm: Normalization,
    how: SaveAs,
    interrupted: &wgtrain::Error,
) -> anyhow::Result<()> {
    let wgtrain::Error::Interrupted { epoch, step, steps } = *interrupted else {
        anyhow::bail!("save_interrupted needs an Interrupted error, got: {interrupted}");
    };
    let global = trainer.steps_taken(0);
    let params = trainer.engine().params(0)?;
    super::save::save_checkpoint(
        path,
        spec,
        &params,
        norm,
        how,
        &[
            ("wgtrain.interrupted", "true".into()),
            ("wgtrain.epoch", epoch.to_string()),
            ("wgtrain.step", step.to_string()),
            ("wgtrain.steps_per_epoch", steps.to_string()),
            ("wgtrain.global_step", global.to_string()),
        ],
    )?;
    eprintln!(
        "saved {} (interrupted: the weights after step {step} of {steps} of epoch {epoch}, {global} steps in all)",
        path.display()
    );
    Ok(())
}

/// This process's command line with `--resume` added (once), for the hint an interrupted
/// sweep prints. Arguments with spaces or quotes are single-quoted for a POSIX shell.
pub fn resume_command() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.first_mut() {
        *first = "wgtrain".into();
    }
    if !args.iter().any(|a| a == "--resume") {
        args.push("--resume".into());
    }
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
