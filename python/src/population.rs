//! `wgtrain._wgtrain._Population`: K >= 1 members training on one device (a single run is
//! K = 1), driven epoch by epoch from Python. `wgtrain/__init__.py` wraps it
//! (`wgtrain.Population`) with numpy arrays and the epoch iterator.
//!
//! An epoch runs with the GIL released, on the calling thread; every time the engine
//! reports progress (every 16 steps on the CPU, every 64-step command buffer on the GPU)
//! the GIL is taken back for a moment to run Python's signal handlers, so Ctrl-C sets the
//! trainer's stop flag and the epoch ends at the next step boundary with the
//! `KeyboardInterrupt` raised.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict};
use wgtrain::RunConfig;
use wgtrain::checkpoint::{WeightDtype, save_as};
use wgtrain::engine::EvalSet;
use wgtrain::train::{MemberOutcome, MemberStatus};

use crate::config::PyRunConfig;
use crate::data::PyData;
use crate::device;
use crate::errors::{config_error, to_py};
use crate::session::Session;

/// An open population. See `wgtrain.Population` for the documented surface.
#[pyclass(module = "wgtrain", name = "_Population")]
pub struct PyPopulation {
    session: Session,
    stop: Arc<AtomicBool>,
    device: &'static str,
    why: String,
    evaluate_test: bool,
    describe: String,
}

fn eval_set(set: &str) -> PyResult<EvalSet> {
    match set {
        "test" => Ok(EvalSet::Test),
        "validation" => Ok(EvalSet::Validation),
        other => Err(config_error(format!(
            "set=\"{other}\" is not \"test\" or \"validation\""
        ))),
    }
}

/// One tensor of a state dict as it crosses to Python: its `nn.Sequential` name, its shape
/// and its f32 values as little-endian bytes (numpy wraps them).
type NamedTensor<'py> = (String, Vec<usize>, Bound<'py, PyByteArray>);

/// `0.weight`, `0.bias`, `2.weight`, ...: the `nn.Sequential` names of layer `l`'s tensors
/// (the odd indices are the ReLUs), as `wgtrain::checkpoint` writes them.
fn tensor_name(layer: usize, what: &str) -> String {
    format!("{}.{what}", 2 * layer)
}

#[pymethods]
impl PyPopulation {
    /// Opens one member per configuration on `data` (`device`: "auto", "gpu" or "cpu").
    #[new]
    #[pyo3(signature = (data, configs, device="auto", evaluate_test=true))]
    fn new(
        py: Python<'_>,
        data: &PyData,
        configs: Vec<PyRef<'_, PyRunConfig>>,
        device: &str,
        evaluate_test: bool,
    ) -> PyResult<Self> {
        let configs: Vec<RunConfig> = configs.iter().map(|c| c.inner.clone()).collect();
        let f16 = configs
            .iter()
            .any(|c| c.precision == wgtrain::Precision::F16);
        let (device, why) = device::resolve(device, f16)?;
        let data = data.inner.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // Opening compiles kernels and times matmul variants on the GPU: seconds, GIL free.
        let mut session = py
            .detach(move || {
                let gpu = match device {
                    "gpu" => Some(device::gpu(f16)?),
                    _ => None,
                };
                Session::open(data, gpu, &configs, flag)
            })
            .map_err(to_py)?;
        let describe = session.with(|t| {
            t.set_evaluate_test(evaluate_test);
            t.engine().describe()
        });
        Ok(PyPopulation {
            session,
            stop,
            device,
            why,
            evaluate_test,
            describe,
        })
    }

    /// `"gpu"` or `"cpu"`.
    #[getter]
    fn device(&self) -> &'static str {
        self.device
    }

    /// One line: the device and why it was chosen, the engine.
    fn describe(&self) -> String {
        format!("{} ({}); {}", self.device, self.why, self.describe)
    }

    /// Members K.
    #[getter]
    fn members(&mut self) -> usize {
        self.session.with(|t| t.members())
    }

    /// Epochs the population has run (0-based index of the next one).
    #[getter]
    fn epoch(&mut self) -> usize {
        self.session.with(|t| t.epoch())
    }

    /// True while some member trains.
    #[getter]
    fn any_training(&mut self) -> bool {
        self.session.with(|t| t.any_training())
    }

    /// Member `k`'s status: `"training"`, `"done"`, `"frozen"` or `"diverged: ..."`.
    fn status(&mut self, k: usize) -> PyResult<String> {
        self.check(k)?;
        Ok(self.session.with(|t| match t.status(k) {
            MemberStatus::Training => "training".to_string(),
            MemberStatus::Done => "done".to_string(),
            MemberStatus::Frozen => "frozen".to_string(),
            MemberStatus::Diverged(why) => format!("diverged: {why}"),
        }))
    }

    /// Member `k`'s configuration.
    fn config(&mut self, k: usize) -> PyResult<PyRunConfig> {
        self.check(k)?;
        Ok(PyRunConfig {
            inner: self.session.with(|t| t.config(k).clone()),
        })
    }

    /// Epochs member `k`'s current run has trained.
    fn epochs_trained(&mut self, k: usize) -> PyResult<usize> {
        self.check(k)?;
        Ok(self.session.with(|t| t.epochs_trained(k)))
    }

    /// Runs the next epoch for every training member (GIL released; Ctrl-C raises
    /// `KeyboardInterrupt` at the next step boundary) and returns one dict per member that
    /// ran: `member`, `epoch` (1-based, of the member's own run), `outcome` (`"trained"`
    /// or `"diverged"`), and for a trained member `lr`, `train_loss`, `train_accuracy`,
    /// `test_loss`, `test_accuracy` (None when not evaluated), `val_loss`,
    /// `val_accuracy` (None without a validation split), `seconds`,
    /// `samples_per_second`; for a diverged one `error`.
    fn train_epoch<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.stop.store(false, Ordering::SeqCst);
        let stop = self.stop.clone();
        let session = &mut self.session;
        let (result, interrupt) = py.detach(move || {
            let mut interrupt: Option<PyErr> = None;
            let mut progress = |_done: usize| {
                if interrupt.is_some() {
                    return;
                }
                if let Err(e) = Python::attach(|py| py.check_signals()) {
                    interrupt = Some(e);
                    stop.store(true, Ordering::SeqCst);
                }
            };
            let result = session.with(|t| {
                t.run_epoch(&mut progress).map(|outcomes| {
                    outcomes
                        .into_iter()
                        .enumerate()
                        .map(|(k, o)| (k, t.epochs_trained(k), o))
                        .collect::<Vec<_>>()
                })
            });
            (result, interrupt)
        });
        let outcomes = match (result, interrupt) {
            (_, Some(e)) => return Err(e),
            (Err(e), None) => return Err(to_py(e)),
            (Ok(o), None) => o,
        };
        let mut out = Vec::new();
        for (k, epochs_trained, outcome) in outcomes {
            let d = PyDict::new(py);
            d.set_item("member", k)?;
            match outcome {
                MemberOutcome::Idle => continue,
                MemberOutcome::Trained(r) => {
                    d.set_item("epoch", r.epoch)?;
                    d.set_item("outcome", "trained")?;
                    d.set_item("lr", r.lr)?;
                    d.set_item("train_loss", r.train_loss)?;
                    d.set_item("train_accuracy", r.train_accuracy)?;
                    d.set_item("val_loss", r.val_loss)?;
                    d.set_item("val_accuracy", r.val_accuracy)?;
                    let tested = self.evaluate_test;
                    d.set_item("test_loss", tested.then_some(r.test_loss))?;
                    d.set_item("test_accuracy", tested.then_some(r.test_accuracy))?;
                    d.set_item("seconds", r.epoch_seconds)?;
                    d.set_item("samples_per_second", r.samples_per_second)?;
                }
                MemberOutcome::Diverged(e) => {
                    d.set_item("epoch", epochs_trained)?;
                    d.set_item("outcome", "diverged")?;
                    d.set_item("error", e.to_string())?;
                }
            }
            out.push(d);
        }
        Ok(out)
    }

    /// Every member's loss and accuracy on `set` (`"test"` or `"validation"`), as
    /// `[(loss, accuracy, samples)]`: mean cross-entropy per sample, accuracy in [0, 1].
    #[pyo3(signature = (set="test"))]
    fn evaluate(&mut self, py: Python<'_>, set: &str) -> PyResult<Vec<(f64, f64, usize)>> {
        let set = eval_set(set)?;
        let session = &mut self.session;
        let evals = py
            .detach(move || session.with(|t| t.engine().evaluate(set)))
            .map_err(to_py)?;
        Ok(evals
            .into_iter()
            .map(|e| (e.loss, e.accuracy, e.samples))
            .collect())
    }

    /// Member `member`'s logits on every sample of `set`: `(bytes of [N, C] f32
    /// little-endian, N, C)`.
    #[pyo3(signature = (member, set="test"))]
    fn logits<'py>(
        &mut self,
        py: Python<'py>,
        member: usize,
        set: &str,
    ) -> PyResult<(Bound<'py, PyByteArray>, usize, usize)> {
        self.check(member)?;
        let set = eval_set(set)?;
        let session = &mut self.session;
        let (logits, classes) = py
            .detach(move || {
                session.with(|t| {
                    let c = t.engine().setup().shared().spec.classes();
                    t.engine().logits(member, set).map(|l| (l, c))
                })
            })
            .map_err(to_py)?;
        let n = logits.len() / classes;
        Ok((PyByteArray::new(py, &le_bytes(&logits)), n, classes))
    }

    /// Member `member`'s parameters as `[(name, shape, bytes of f32 little-endian)]` under
    /// `nn.Sequential` names: `0.weight` `[H1, I]`, `0.bias` `[H1]`, `2.weight` `[H2, H1]`,
    /// ..., the last layer's `[C, H]`.
    fn state<'py>(&mut self, py: Python<'py>, member: usize) -> PyResult<Vec<NamedTensor<'py>>> {
        self.check(member)?;
        let (params, layout) = self
            .session
            .with(|t| {
                let layout = t.engine().setup().shared().spec.layout();
                t.engine().params(member).map(|p| (p, layout))
            })
            .map_err(to_py)?;
        let mut out = Vec::new();
        for (l, s) in layout.layers.iter().enumerate() {
            let w = &params[s.weight..s.weight + s.outputs * s.inputs];
            let b = &params[s.bias..s.bias + s.outputs];
            out.push((
                tensor_name(l, "weight"),
                vec![s.outputs, s.inputs],
                PyByteArray::new(py, &le_bytes(w)),
            ));
            out.push((
                tensor_name(l, "bias"),
                vec![s.outputs],
                PyByteArray::new(py, &le_bytes(b)),
            ));
        }
        Ok(out)
    }

    /// Replaces member `member`'s parameters with `tensors` (`{name: (shape, bytes of f32
    /// little-endian)}`, exactly the names and shapes `state` gives) and clears its
    /// momentum.
    fn load_state<'py>(
        &mut self,
        member: usize,
        tensors: std::collections::HashMap<String, (Vec<usize>, Bound<'py, PyBytes>)>,
    ) -> PyResult<()> {
        self.check(member)?;
        let (layout, spec) = self.session.with(|t| {
            let spec = t.engine().setup().shared().spec.clone();
            (spec.layout(), spec)
        });
        let mut want = Vec::new();
        for (l, s) in layout.layers.iter().enumerate() {
            want.push((
                tensor_name(l, "weight"),
                vec![s.outputs, s.inputs],
                s.weight,
            ));
            want.push((tensor_name(l, "bias"), vec![s.outputs], s.bias));
        }
        let names: Vec<&str> = want.iter().map(|w| w.0.as_str()).collect();
        let mut unexpected: Vec<&String> = tensors
            .keys()
            .filter(|k| !names.contains(&k.as_str()))
            .collect();
        unexpected.sort();
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !tensors.contains_key(*n))
            .collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(config_error(format!(
                "the state dict does not fit the MLP {spec}: missing {missing:?}, unexpected \
                 {unexpected:?}; it needs exactly {names:?}"
            )));
        }
        let mut params = vec![0.0f32; layout.len];
        for (name, shape, offset) in &want {
            let (given, bytes) = &tensors[name];
            let bytes = bytes.as_bytes();
            let count: usize = shape.iter().product();
            if given != shape || bytes.len() != 4 * count {
                return Err(config_error(format!(
                    "{name} has shape {given:?} ({} bytes) but the MLP {spec} needs {shape:?} \
                     of f32 ({} bytes)",
                    bytes.len(),
                    4 * count
                )));
            }
            for (i, c) in bytes.chunks_exact(4).enumerate() {
                params[offset + i] = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        self.session
            .with(|t| t.engine().set_params(member, &params))
            .map_err(to_py)
    }

    /// Stops member `k` from the next epoch on (pruned); its parameters stay.
    fn freeze(&mut self, k: usize) -> PyResult<()> {
        self.session.with(|t| t.freeze(k)).map_err(to_py)
    }

    /// Starts a new run `config` in slot `k` from the next epoch: fresh parameters from its
    /// `init_seed` (else `seed`), cleared momentum, its own epochs and schedule from the
    /// start. It must share the population's minibatch stream (`RunConfig.shares_stream`).
    fn restart(&mut self, k: usize, config: &PyRunConfig) -> PyResult<()> {
        self.session
            .with(|t| t.restart(k, &config.inner))
            .map_err(to_py)
    }

    /// Member `dst` continues from member `src`'s parameters and momentum (copied on the
    /// device) and its run's progress, keeping its own hyperparameters (PBT's exploit).
    fn copy_member(&mut self, src: usize, dst: usize) -> PyResult<()> {
        self.check(src)?;
        self.check(dst)?;
        self.session
            .with(|t| {
                let cfg = t.config(dst).clone();
                t.exploit(src, dst, cfg)
            })
            .map_err(to_py)
    }

    /// Saves member `member`'s parameters as safetensors under `nn.Sequential` names
    /// (`dtype` "f32", "f16" or "bf16"), with its input normalisation in the metadata;
    /// written atomically.
    #[pyo3(signature = (path, member=0, dtype="f32"))]
    fn save(&mut self, path: PathBuf, member: usize, dtype: &str) -> PyResult<()> {
        self.check(member)?;
        let dtype = match dtype {
            "f32" => WeightDtype::F32,
            "f16" => WeightDtype::F16,
            "bf16" => WeightDtype::Bf16,
            other => {
                return Err(config_error(format!(
                    "dtype=\"{other}\" is not \"f32\", \"f16\" or \"bf16\""
                )));
            }
        };
        self.session
            .with(|t| {
                let norm = t.config(member).normalization;
                let spec = t.engine().setup().shared().spec.clone();
                let params = t.engine().params(member)?;
                save_as(&path, &spec, &params, norm, dtype)
            })
            .map_err(to_py)
    }
}

impl PyPopulation {
    fn check(&mut self, k: usize) -> PyResult<()> {
        let members = self.session.with(|t| t.members());
        wgtrain::engine::check_member(k, members).map_err(to_py)
    }
}

/// `values` as little-endian bytes.
fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
