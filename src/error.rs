//! The library's one error type: every variant carries the numbers and names a user needs
//! to see what went wrong and how to fix it.

use std::path::PathBuf;

use crate::data::DataError;

/// Errors returned by the wgtrain library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter matched (or none exists at all).
    #[error(
        "no GPU adapter found for {backends}{filter}. {hint} Or train on the CPU with --device cpu."
    )]
    NoAdapter {
        /// The backends searched, e.g. `vulkan, metal, dx12`.
        backends: String,
        /// ` matching name "…"` when a name filter was given, else empty.
        filter: String,
        /// The backends were chosen by the user (`--backend` or `WGPU_BACKEND`).
        explicit_backend: bool,
        /// What to install or which adapters exist.
        hint: String,
    },
    /// The device could not be created.
    #[error("could not open the device on adapter {adapter}: {reason}")]
    RequestDevice { adapter: String, reason: String },
    /// A buffer, binding or dispatch does not fit the adapter's limits.
    #[error("{what} needs {requested} {unit}, over this adapter's limit of {max} {unit}; {hint}")]
    LimitExceeded {
        /// What does not fit, naming the limit, e.g. "the buffer `x` (minibatch inputs)
        /// as one storage binding (max_storage_buffer_binding_size)".
        what: String,
        requested: u64,
        max: u64,
        /// Unit of `requested` and `max`, e.g. "bytes" or "workgroups".
        unit: &'static str,
        /// How to make it fit, e.g. "use a smaller --batch-size".
        hint: String,
    },
    /// wgpu reported a validation or out-of-memory error.
    #[error("GPU error in {context}: {message}")]
    Gpu { context: String, message: String },
    /// A readback buffer could not be mapped.
    #[error("could not read back {what} from the GPU: {reason}")]
    Readback { what: String, reason: String },
    /// A dataset file is missing, malformed or inconsistent.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A configuration value is out of its valid range.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidConfig {
        name: &'static str,
        value: String,
        reason: String,
    },
    /// Training produced a loss that is not finite.
    #[error(
        "the training loss became non-finite at epoch {epoch}, step {step} (last finite minibatch loss: {last_finite}); \
         the run was stopped and the parameters kept as they were before that step. \
         Lower the learning rate (--lr) or check the input data."
    )]
    NonFiniteLoss {
        epoch: usize,
        step: usize,
        last_finite: String,
    },
    /// Training produced a finite loss far above where it started
    /// ([`crate::train::EXPLODED_LOSS_FACTOR`] times its first step's): the run diverged.
    #[error(
        "the training loss exploded at epoch {epoch}: its mean was {loss} against {first} at the first step, \
         with learning rate {lr:.3e}; the run was stopped. Lower the learning rate (--lr) or the weight decay."
    )]
    LossExploded {
        /// 1-based epoch of the member's run.
        epoch: usize,
        /// The epoch's mean training loss.
        loss: String,
        /// The run's first step's mean loss.
        first: String,
        /// Learning rate of the epoch's first step.
        lr: f64,
    },
    /// A run was stopped by its stop flag (set by the CLI on Ctrl-C or SIGTERM) at a step
    /// boundary; the engine's parameters are those after that step. The CLI names the
    /// signal and exits with 128 + its number (130 for Ctrl-C, 143 for SIGTERM), after
    /// writing what the run was asked to write (and saying what it wrote: the message
    /// claims nothing, since a sweep or a run without `--save` keeps no parameters).
    #[error("interrupted at epoch {epoch}, step {step} of {steps} (its stop flag was set)")]
    Interrupted {
        /// 1-based epoch that was running.
        epoch: usize,
        /// Steps of that epoch that finished (0: stopped before it started).
        step: usize,
        /// Steps per epoch.
        steps: usize,
    },
    /// A checkpoint could not be written or read.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// An input file (a metrics file, say) is not in the expected format.
    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    /// An output file or directory cannot be written (checked before a run starts).
    #[error("cannot write {}: {reason}", path.display())]
    Output { path: PathBuf, reason: String },
    /// Another run holds the advisory lock of an output path (see [`crate::lock`]).
    #[error(
        "{} is being written by another wgtrain run{}; wait for it or choose another path",
        path.display(),
        pid.map_or(String::new(), |p| format!(" (PID {p})"))
    )]
    Locked {
        /// The output file or directory.
        path: PathBuf,
        /// The PID the lock file names, when it could be read.
        pid: Option<u32>,
    },
    /// An output lies inside a directory another run holds (a sweep's `--out`), whose
    /// files that run writes (see [`crate::lock`]).
    #[error(
        "{} is inside {}, which another wgtrain run{} is writing; wait for it or choose a path outside it",
        path.display(),
        dir.display(),
        pid.map_or(String::new(), |p| format!(" (PID {p})"))
    )]
    LockedInside {
        /// The output file or directory.
        path: PathBuf,
        /// The held directory above it.
        dir: PathBuf,
        /// The PID the directory's lock file names, when it could be read.
        pid: Option<u32>,
    },
    /// A directory output holds an output another run is writing (see [`crate::lock`]).
    #[error(
        "{} holds {}, which another wgtrain run{} is writing; wait for it or choose another directory",
        dir.display(),
        path.display(),
        pid.map_or(String::new(), |p| format!(" (PID {p})"))
    )]
    LockedWithin {
        /// The directory output.
        dir: PathBuf,
        /// The held output inside it.
        path: PathBuf,
        /// The PID its lock file names, when it could be read.
        pid: Option<u32>,
    },
    /// An I/O error on a named file (the OS error is the `source()`).
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
