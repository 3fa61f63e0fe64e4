//! What several subcommands share: the argument groups (`DeviceArgs`, `DataArgs`,
//! `HyperArgs` with its `ScheduleArgs` and `SgdVariantArgs`), the value parsers, and the
//! helpers that turn those flags into library values (a device, the data, a schedule, an
//! optimiser) or refuse them with exit code 2. It imports no subcommand module; every
//! subcommand imports it. This file only gathers the parts:
//!
//! - `errors`: [`BadInput`], [`usage`] and the up-front output check [`check_outputs`];
//! - `parse`: the clap value parsers;
//! - `device`: `--device` (and what `auto` chooses), `--backend`, `--adapter`,
//!   `--kernels`, `--precision`, and opening the GPU;
//! - `data`: `--data`, `--dataset`, `--normalize`, `--classes`, and loading the data;
//! - `hyper`: the model, optimiser and schedule flags, and what they become;
//! - `settings`: the flags and data fingerprint a run records for `--resume` to check.

mod data;
mod device;
mod errors;
mod hyper;
mod parse;
mod settings;

pub(crate) use data::{
    DataArgs, check_data, dataset_normalization, load_data, normalization, with_subset,
};
pub(crate) use device::{
    Backend, DeviceArgs, DeviceKind, PrecisionArgs, check_device_args, check_precision_args,
    fusions, matmul_choice, open_gpu_for, resolve_device,
};
pub(crate) use errors::{
    BadInput, FailedOutputs, bad_input, cause, check_outputs, check_outputs_spare_data,
    check_outputs_spare_inputs, usage,
};
pub(crate) use hyper::{
    DEFAULT_EPOCHS, HyperArgs, ScheduleArgs, SgdVariantArgs, check_sgd_options_apply,
    explain_divergence, run_config, schedule_from, sgd_from, tensorboard_hparams, warn_momentum,
};
pub(crate) use parse::{
    HiddenSizes, dataset_name, hidden_sizes, non_negative_f64, positive_f64, positive_usize,
    unit_interval,
};
pub(crate) use settings::{
    Flags, NOT_GIVEN, Recorded, choice, data_fingerprint, device_path, first_difference,
    hidden_text, opt, other_path_warning, schedule_flags, sgd_flags,
};
