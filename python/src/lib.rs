//! `wgtrain._wgtrain`, the extension module of the `wgtrain` Python package: the library's
//! run configuration ([`config`]), data ([`data`]) and populations ([`population`]) for
//! Python. The package's public surface (numpy arrays, the epoch iterator, Optuna's
//! batched trials) is the pure-Python `wgtrain/` next to this crate; this crate only
//! moves values across.
//!
//! Modules: `config` (`RunConfig` from PyTorch's keyword arguments), `data` (datasets held
//! in `Arc`s), `device` (`"auto"`/`"gpu"`/`"cpu"` and the process's GPU), `session` (an
//! engine, its trainer and what they borrow, in one owned value), `population` (the
//! methods Python calls), `errors` (library errors as the package's exceptions).

use pyo3::prelude::*;

mod config;
mod data;
mod device;
mod errors;
mod population;
mod session;

/// The extension module.
#[pymodule]
fn _wgtrain(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<config::PyRunConfig>()?;
    m.add_class::<data::PyData>()?;
    m.add_class::<population::PyPopulation>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
