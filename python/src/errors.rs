//! wgtrain's errors as Python exceptions. The exception classes live in
//! `wgtrain/_errors.py` (so that they can also derive from `ValueError` or
//! `RuntimeError`); this module maps each [`wgtrain::Error`] to one of them.

use pyo3::prelude::*;
use wgtrain::Error;

/// An instance of `wgtrain._errors.<class>` carrying `message`.
fn raise(class: &str, message: String) -> PyErr {
    Python::attach(|py| {
        let made = py
            .import("wgtrain._errors")
            .and_then(|m| m.getattr(class))
            .and_then(|c| c.call1((message.clone(),)));
        match made {
            Ok(e) => PyErr::from_value(e),
            // The package's own module is missing: the package is broken; say both.
            Err(e) => pyo3::exceptions::PyRuntimeError::new_err(format!(
                "{message} (and wgtrain._errors.{class} could not be raised: {e})"
            )),
        }
    })
}

/// A `ConfigError` (a `ValueError`): an argument out of its range.
pub fn config_error(message: String) -> PyErr {
    raise("ConfigError", message)
}

/// A `DataError` (a `ValueError`): data that cannot be trained on.
pub fn data_error(message: String) -> PyErr {
    raise("DataError", message)
}

/// `e`'s message followed by its causes' (`cannot access FILE: Is a directory (os error
/// 21)`): Display alone drops the OS error that a `source()` carries.
fn with_causes(e: &Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// The Python exception of a library error. Messages name Python's arguments where the
/// library's name a CLI flag (`device="cpu"` for `--device cpu`).
pub fn to_py(e: Error) -> PyErr {
    match e {
        Error::NoAdapter {
            backends,
            filter,
            hint,
            ..
        } => raise(
            "NoAdapterError",
            format!(
                "no GPU adapter found for {backends}{filter}. {hint} Or train on the CPU: \
                 wgtrain.open(..., device=\"cpu\")."
            ),
        ),
        Error::InvalidConfig { .. } => raise("ConfigError", with_causes(&e)),
        Error::Data(_) => raise("DataError", with_causes(&e)),
        Error::Checkpoint { .. } | Error::Io { .. } | Error::Output { .. } => {
            raise("CheckpointError", with_causes(&e))
        }
        Error::NonFiniteLoss { .. } | Error::LossExploded { .. } => {
            raise("DivergedError", with_causes(&e))
        }
        Error::RequestDevice { .. }
        | Error::LimitExceeded { .. }
        | Error::Gpu { .. }
        | Error::Readback { .. } => raise("DeviceError", with_causes(&e)),
        _ => raise("WgtrainError", with_causes(&e)),
    }
}
