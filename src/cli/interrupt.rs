//! Ctrl-C, SIGTERM and SIGHUP (through `signal-hook`): the first one sets a stop flag that
//! the trainer checks at step boundaries, so `train` and `sweep` write what they were asked
//! to and exit with 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM, 129 for
//! SIGHUP), naming the signal; a second one exits at once with that code, writing nothing
//! more.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

use wgtrain::model::{MlpSpec, Normalization};
use wgtrain::train::Trainer;

use super::save::SaveAs;

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The first stopping signal received (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: i32 = 128 + signal_hook::consts::SIGINT;

/// The signals that stop a run cleanly.
#[cfg(unix)]
const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

/// How a message names `signal`: `Ctrl-C` (SIGINT), `SIGTERM`, `SIGHUP`.
pub fn signal_name(signal: i32) -> String {
    match signal {
        signal_hook::consts::SIGINT => "Ctrl-C".into(),
        signal_hook::consts::SIGTERM => "SIGTERM".into(),
        #[cfg(unix)]
        signal_hook::consts::SIGHUP => "SIGHUP".into(),
        s => format!("signal {s}"),
    }
}

/// What the first signal does, said once when it arrives (and again exits at once).
fn first_signal(signal: i32) {
    if SIGNAL
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        let first = SIGNAL.load(Ordering::SeqCst);
        // The state files are written atomically at epoch ends and first stops, so what a
        // run wrote before is whole; say how to go on from it.
        super::console::note(format_args!(
            "\nsecond {}: exiting now; a state written before (train's --state, a sweep's --out/state.safetensors) is kept whole: run the same command with --resume to go on from it",
            signal_name(signal)
        ));
        std::process::exit(128 + first);
    }
    if let Some(flag) = STOP.get() {
        flag.store(true, Ordering::SeqCst);
    }
    super::console::note(format_args!(
        "\n{}: stopping at the next step boundary and writing the outputs (a second Ctrl-C or SIGTERM exits at once)",
        signal_name(signal)
    ));
}

/// The process's stop flag, with the signal handlers installed on first use.
///
/// If the handlers cannot be installed, the flag still exists and is simply never set: a
/// signal then ends the process the default way.
pub fn stop_flag() -> Arc<AtomicBool> {
    let mut fresh = false;
    let flag = STOP
        .get_or_init(|| {
            fresh = true;
            Arc::new(AtomicBool::new(false))
        })
        .clone();
    if fresh {
        if let Err(e) = install() {
            super::console::note(format_args!(
                "warning: Ctrl-C and SIGTERM will not stop the run cleanly: {e}"
            ));
        }
    }
    flag
}

/// A thread that waits for the stop signals (unix): handlers that only write to a pipe,
/// so the messages and the exit happen outside the signal handler.
#[cfg(unix)]
fn install() -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new(STOP_SIGNALS)?;
    std::thread::Builder::new()
        .name("stop-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                first_signal(signal);
            }
        })?;
    Ok(())
}

/// Elsewhere: Ctrl-C and SIGTERM set the flag (no message from inside the handler).
#[cfg(not(unix))]
fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = STOP.get().cloned().unwrap_or_default();
    for s in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(s, 128 + s, Arc::clone(&flag))?;
        signal_hook::flag::register(s, Arc::clone(&flag))?;
    }
    Ok(())
}

/// The signal that stopped the run, when one did.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The exit code and the error line of an interrupted run: 128 + the signal (130 without
/// one recorded: a library stop flag), and `e`'s chain with the interruption naming the
/// signal (`interrupted at epoch 2, step 504 of 938 (SIGTERM)`). `None` when `e` is
/// not an interruption.
pub fn report(e: &anyhow::Error) -> Option<(i32, String)> {
    let signal = received().unwrap_or(signal_hook::consts::SIGINT);
    let mut found = false;
    let parts: Vec<String> = e
        .chain()
        .map(|layer| match layer.downcast_ref::<wgtrain::Error>() {
            Some(&wgtrain::Error::Interrupted { epoch, step, steps }) => {
                found = true;
                format!(
                    "interrupted at epoch {epoch}, step {step} of {steps} ({})",
                    signal_name(signal)
                )
            }
            _ => layer.to_string(),
        })
        .collect();
    found.then(|| (128 + signal, parts.join(": ")))
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
    note!(
        "saved {} (interrupted: the weights after step {step} of {steps} of epoch {epoch}, {global} steps in all)",
        path.display()
    );
    Ok(())
}

/// This process's command line with `--resume` added (once; followed by `value` when
/// given: `train --resume STATE`), for the hint an interrupted sweep or run prints.
/// Arguments with spaces or quotes are single-quoted for a POSIX shell.
pub fn resume_command(value: Option<&Path>) -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.first_mut() {
        *first = "wgtrain".into();
    }
    let given = |a: &String| a == "--resume" || a.starts_with("--resume=");
    if !args.iter().any(given) {
        args.push("--resume".into());
        if let Some(v) = value {
            args.push(v.display().to_string());
        }
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
