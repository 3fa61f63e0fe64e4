//! `wgtrain.RunConfig`: [`wgtrain::RunConfig`] built from keyword arguments with
//! `torch.optim.SGD`'s and `torch.optim.lr_scheduler`'s names and defaults.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use wgtrain::model::Normalization;
use wgtrain::optim::SgdConfig;
use wgtrain::schedule::{DEFAULT_WARMUP_START_FACTOR, LrSchedule, Schedule};
use wgtrain::{Precision, RunConfig};

use crate::errors::{config_error, to_py};

/// A run's settings. The optimizer arguments are `torch.optim.SGD`'s, with its defaults
/// (`lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False`; the `wgtrain`
/// CLI's defaults differ: lr 0.01, weight decay 1e-4); the schedule is
/// `torch.optim.lr_scheduler`'s (`lr_schedule`: `"constant"`, `"step"` with `step_size`
/// and `gamma`, `"multistep"` with `milestones` and `gamma`, `"exponential"` with `gamma`,
/// `"cosine"` with `T_max` and `eta_min`), optionally behind a `LinearLR` warm-up of
/// `warmup_epochs` epochs. Checked when built: a bad value raises `ConfigError`.
#[pyclass(module = "wgtrain", name = "RunConfig", frozen)]
pub struct PyRunConfig {
    pub inner: RunConfig,
}

/// Parses the schedule arguments into an [`LrSchedule`].
fn schedule(
    lr: f64,
    kind: &str,
    step_size: Option<usize>,
    milestones: Option<Vec<usize>>,
    gamma: Option<f64>,
    t_max: Option<usize>,
    eta_min: f64,
    warmup_epochs: usize,
    warmup_start_factor: f64,
) -> PyResult<LrSchedule> {
    let need = |what: &str| {
        config_error(format!(
            "lr_schedule=\"{kind}\" needs {what} (as torch.optim.lr_scheduler)"
        ))
    };
    const KINDS: [&str; 5] = ["constant", "step", "multistep", "exponential", "cosine"];
    if !KINDS.contains(&kind) {
        return Err(config_error(format!(
            "lr_schedule=\"{kind}\" is not one of \"constant\", \"step\", \"multistep\", \
             \"exponential\", \"cosine\" (OneCycleLR and ReduceLROnPlateau: use the wgtrain CLI)"
        )));
    }
    let unused = |name: &str, given: bool| {
        if given {
            Err(config_error(format!(
                "{name} is not used by lr_schedule=\"{kind}\"; remove it or choose the schedule that reads it"
            )))
        } else {
            Ok(())
        }
    };
    unused("step_size", step_size.is_some() && kind != "step")?;
    unused("milestones", milestones.is_some() && kind != "multistep")?;
    unused(
        "gamma",
        gamma.is_some() && !matches!(kind, "step" | "multistep" | "exponential"),
    )?;
    unused("T_max", t_max.is_some() && kind != "cosine")?;
    unused("eta_min", eta_min != 0.0 && kind != "cosine")?;
    let main = match kind {
        "constant" => Schedule::Constant,
        "step" => Schedule::Step {
            step_size: step_size.ok_or_else(|| need("step_size"))?,
            gamma: gamma.unwrap_or(0.1),
        },
        "multistep" => Schedule::MultiStep {
            milestones: milestones.ok_or_else(|| need("milestones"))?,
            gamma: gamma.unwrap_or(0.1),
        },
        "exponential" => Schedule::Exponential {
            gamma: gamma.ok_or_else(|| need("gamma"))?,
        },
        "cosine" => Schedule::Cosine {
            t_max: t_max.ok_or_else(|| need("T_max"))?,
            eta_min,
        },
        // Checked against KINDS above.
        _ => Schedule::Constant,
    };
    Ok(LrSchedule::new(lr, main).with_warmup(warmup_epochs, warmup_start_factor))
}

#[pymethods]
impl PyRunConfig {
    /// See the class docstring; every argument is keyword-only.
    #[new]
    #[pyo3(signature = (
        *, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=false,
        batch_size=64, epochs=10, hidden=vec![256], seed=1, init_seed=None,
        validation_split=0.0, normalize=None, early_stop_patience=None, precision="f32",
        lr_schedule="constant", step_size=None, milestones=None, gamma=None, T_max=None,
        eta_min=0.0, warmup_epochs=0, warmup_start_factor=DEFAULT_WARMUP_START_FACTOR,
        decoupled_weight_decay=false, decay_bias=true
    ))]
    #[allow(non_snake_case)]
    fn new(
        lr: f64,
        momentum: f64,
        dampening: f64,
        weight_decay: f64,
        nesterov: bool,
        batch_size: usize,
        epochs: usize,
        hidden: Vec<usize>,
        seed: u64,
        init_seed: Option<u64>,
        validation_split: f64,
        normalize: Option<(f32, f32)>,
        early_stop_patience: Option<usize>,
        precision: &str,
        lr_schedule: &str,
        step_size: Option<usize>,
        milestones: Option<Vec<usize>>,
        gamma: Option<f64>,
        T_max: Option<usize>,
        eta_min: f64,
        warmup_epochs: usize,
        warmup_start_factor: f64,
        decoupled_weight_decay: bool,
        decay_bias: bool,
    ) -> PyResult<Self> {
        let precision = match precision {
            "f32" => Precision::F32,
            "f16" => Precision::F16,
            other => {
                return Err(config_error(format!(
                    "precision=\"{other}\" is not \"f32\" or \"f16\""
                )));
            }
        };
        let inner = RunConfig {
            hidden,
            batch_size,
            epochs,
            schedule: schedule(
                lr,
                lr_schedule,
                step_size,
                milestones,
                gamma,
                T_max,
                eta_min,
                warmup_epochs,
                warmup_start_factor,
            )?,
            sgd: SgdConfig {
                weight_decay,
                momentum,
                dampening,
                nesterov,
                decoupled_weight_decay,
                decay_bias,
            },
            normalization: normalize.map_or(Normalization::UNIT, |(mean, std)| Normalization {
                mean,
                std,
            }),
            seed,
            init_seed,
            validation_split,
            early_stop_patience,
            precision,
        };
        inner.validate().map_err(to_py)?;
        if inner.hidden.contains(&0) {
            return Err(config_error(format!(
                "hidden={:?}: every hidden layer needs at least one unit",
                inner.hidden
            )));
        }
        Ok(PyRunConfig { inner })
    }

    /// The keyword arguments that rebuild this configuration: `RunConfig(**c.to_dict()) == c`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.inner;
        let d = PyDict::new(py);
        d.set_item("lr", c.schedule.base_lr)?;
        d.set_item("momentum", c.sgd.momentum)?;
        d.set_item("dampening", c.sgd.dampening)?;
        d.set_item("weight_decay", c.sgd.weight_decay)?;
        d.set_item("nesterov", c.sgd.nesterov)?;
        d.set_item("batch_size", c.batch_size)?;
        d.set_item("epochs", c.epochs)?;
        d.set_item("hidden", c.hidden.clone())?;
        d.set_item("seed", c.seed)?;
        d.set_item("init_seed", c.init_seed)?;
        d.set_item("validation_split", c.validation_split)?;
        let n = c.normalization;
        let normalize = (n != Normalization::UNIT).then_some((n.mean, n.std));
        d.set_item("normalize", normalize)?;
        d.set_item("early_stop_patience", c.early_stop_patience)?;
        d.set_item("precision", c.precision.name())?;
        let (kind, step_size, milestones, gamma, t_max, eta_min) = match &c.schedule.schedule {
            Schedule::Step { step_size, gamma } => {
                ("step", Some(*step_size), None, Some(*gamma), None, 0.0)
            }
            Schedule::MultiStep { milestones, gamma } => (
                "multistep",
                None,
                Some(milestones.clone()),
                Some(*gamma),
                None,
                0.0,
            ),
            Schedule::Exponential { gamma } => ("exponential", None, None, Some(*gamma), None, 0.0),
            Schedule::Cosine { t_max, eta_min } => {
                ("cosine", None, None, None, Some(*t_max), *eta_min)
            }
            // The constructor builds no other schedule.
            _ => ("constant", None, None, None, None, 0.0),
        };
        d.set_item("lr_schedule", kind)?;
        d.set_item("step_size", step_size)?;
        d.set_item("milestones", milestones)?;
        d.set_item("gamma", gamma)?;
        d.set_item("T_max", t_max)?;
        d.set_item("eta_min", eta_min)?;
        d.set_item("warmup_epochs", c.schedule.warmup_epochs)?;
        d.set_item("warmup_start_factor", c.schedule.warmup_start_factor)?;
        d.set_item("decoupled_weight_decay", c.sgd.decoupled_weight_decay)?;
        d.set_item("decay_bias", c.sgd.decay_bias)?;
        Ok(d)
    }

    /// A copy with the given keyword arguments changed, checked as the constructor checks.
    #[pyo3(signature = (**changes))]
    fn replace<'py>(
        slf: &Bound<'py, Self>,
        changes: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let d = slf.get().to_dict(slf.py())?;
        if let Some(changes) = changes {
            for (k, v) in changes.iter() {
                d.set_item(k, v)?;
            }
        }
        slf.get_type().call((), Some(&d))
    }

    /// True when a run of `other` trains in one population with this one at the same
    /// minibatch size: the same hidden sizes, minibatch size, normalisation, seed,
    /// validation split and precision (members share one minibatch stream). Learning rate,
    /// momentum, weight decay, schedule, `init_seed` and epochs may differ. (`open` also
    /// takes members whose minibatch sizes are multiples of the smallest, which sum their
    /// gradients over micro-steps; `wgtrain.optuna` keeps one size per population, so any
    /// waiting trial can refill a slot.)
    fn shares_stream(&self, other: &PyRunConfig) -> bool {
        self.inner.batch_size == other.inner.batch_size
            && wgtrain::engine::check_shared(&self.inner, &other.inner, 1).is_ok()
    }

    #[getter]
    fn lr(&self) -> f64 {
        self.inner.schedule.base_lr
    }
    #[getter]
    fn momentum(&self) -> f64 {
        self.inner.sgd.momentum
    }
    #[getter]
    fn dampening(&self) -> f64 {
        self.inner.sgd.dampening
    }
    #[getter]
    fn weight_decay(&self) -> f64 {
        self.inner.sgd.weight_decay
    }
    #[getter]
    fn nesterov(&self) -> bool {
        self.inner.sgd.nesterov
    }
    #[getter]
    fn batch_size(&self) -> usize {
        self.inner.batch_size
    }
    #[getter]
    fn epochs(&self) -> usize {
        self.inner.epochs
    }
    #[getter]
    fn hidden(&self) -> Vec<usize> {
        self.inner.hidden.clone()
    }
    #[getter]
    fn seed(&self) -> u64 {
        self.inner.seed
    }
    #[getter]
    fn init_seed(&self) -> Option<u64> {
        self.inner.init_seed
    }
    #[getter]
    fn validation_split(&self) -> f64 {
        self.inner.validation_split
    }
    #[getter]
    fn precision(&self) -> &'static str {
        self.inner.precision.name()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .extract::<PyRef<'_, PyRunConfig>>()
            .is_ok_and(|o| o.inner == self.inner)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let d = self.to_dict(py)?;
        let defaults = py
            .get_type::<PyRunConfig>()
            .call((), None)?
            .call_method0("to_dict")?;
        let mut parts = Vec::new();
        for (k, v) in d.iter() {
            if !defaults.get_item(&k)?.eq(&v)? {
                parts.push(format!("{}={}", k.str()?, v.repr()?));
            }
        }
        Ok(format!("RunConfig({})", parts.join(", ")))
    }
}
