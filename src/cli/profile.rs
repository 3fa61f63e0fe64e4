//! `wgtrain profile` and `wgtrain train --profile`: per-kernel timings of real training
//! steps (see [`wgtrain::gpu::profiler`]) with each kernel's and the step's fractions of
//! the adapter's roofline peaks ([`wgtrain::gpu::roofline`]), printed as a table and
//! optionally written as a Chrome trace.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use wgtrain::RunConfig;
use wgtrain::engine::{Engine, RunData};
use wgtrain::gpu::engine::GpuEngine;
use wgtrain::gpu::profiler::{Profile, ProfileOptions, Profiler, TimingMode};
use wgtrain::gpu::{Gpu, Kernels, roofline};
use wgtrain::output::OutputKind;
use wgtrain::step::{MEMBER_FIRST, MemberStep};
use wgtrain::train;

use super::common::{
    DataArgs, DeviceArgs, DeviceKind, HyperArgs, PrecisionArgs, check_outputs,
    check_sgd_options_apply, load_data, normalization, run_config, sgd_from, usage,
};
use super::engines::Engines;

/// How to time the kernels.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimingChoice {
    /// GPU timestamps per dispatch if the adapter has them, else per pass, else host timing.
    Auto,
    /// GPU timestamps around each dispatch inside one pass (TIMESTAMP_QUERY_INSIDE_PASSES).
    PerDispatch,
    /// GPU timestamps at the ends of one compute pass per dispatch (TIMESTAMP_QUERY).
    PerPass,
    /// Host clock around a submit-and-wait of each dispatch.
    Host,
}

impl TimingChoice {
    fn mode(self) -> Option<TimingMode> {
        match self {
            TimingChoice::Auto => None,
            TimingChoice::PerDispatch => Some(TimingMode::PerDispatch),
            TimingChoice::PerPass => Some(TimingMode::PerPass),
            TimingChoice::Host => Some(TimingMode::HostTimed),
        }
    }
}

/// `wgtrain profile`: the train options, plus how many steps to time and where to write
/// the trace.
#[derive(Args, Debug, Clone)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub hyper: HyperArgs,
    #[command(flatten)]
    pub precision: PrecisionArgs,
    /// Training steps to time (after the warm-up).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), default_value_t = 50)]
    pub steps: usize,
    /// Untimed steps before the timed ones.
    #[arg(long, default_value_t = wgtrain::gpu::profiler::DEFAULT_WARMUP_STEPS)]
    pub warmup_steps: usize,
    /// Time each dispatch with the host clock around a submit-and-wait, even where the
    /// adapter has timestamp queries (same as --timing host).
    #[arg(long, conflicts_with = "timing")]
    pub host_timing: bool,
    /// How to time the kernels.
    #[arg(long, value_enum, default_value_t = TimingChoice::Auto)]
    pub timing: TimingChoice,
    /// Write a Chrome trace (opens in Perfetto and chrome://tracing).
    #[arg(long, value_name = "FILE.json")]
    pub trace: Option<PathBuf>,
}

/// What to profile and where the results go.
pub(crate) struct ProfileRequest {
    pub steps: usize,
    pub warmup_steps: usize,
    pub mode: Option<TimingMode>,
    pub trace: Option<PathBuf>,
}

fn needs_gpu(flag: &str) -> anyhow::Error {
    wgtrain::Error::InvalidConfig {
        name: "device",
        value: "cpu".into(),
        reason: format!("{flag} times GPU kernels; use --device gpu"),
    }
    .into()
}

/// Errors a `train --profile` would hit, checked before any data is loaded.
pub(crate) fn check_train_flags(device: DeviceKind, profile: bool) -> Result<()> {
    if profile && device == DeviceKind::Cpu {
        return Err(needs_gpu("--profile"));
    }
    Ok(())
}

/// Profiles `engine` on its run's first epoch (its training samples shuffled as epoch 0
/// is, with epoch 0's learning rates), probes the adapter's roofline peaks with the same
/// clock, prints the table on stdout, writes the trace if asked, and restores the engine's
/// parameters so that a following training run starts exactly where it would have.
pub(crate) fn profile_engine(
    gpu: &Gpu,
    kernels: &Kernels,
    engine: &mut GpuEngine<'_>,
    req: &ProfileRequest,
) -> Result<Profile> {
    let setup = engine.setup();
    let (cfg, samples) = (&setup.shared().config, &setup.shared().train_indices);
    let per_epoch = samples.len().div_ceil(cfg.batch_size);
    let order = train::epoch_order(samples, cfg.seed, 0);
    let records = train::step_records(samples.len(), cfg.batch_size);
    // Epoch 0's learning rate of each member at each step; the first step starts momentum.
    let member_steps: Vec<MemberStep> = (0..records.len())
        .flat_map(|i| {
            setup.members.iter().map(move |m| {
                let lr = m.config.schedule.lr_at(0, i, per_epoch) as f32;
                MemberStep::plain(lr, if i == 0 { MEMBER_FIRST } else { 0 })
            })
        })
        .collect();
    let profiler = Profiler::new(gpu, req.mode)?;
    let peaks = probe_roofline(gpu, kernels, Some(profiler.mode()));
    note!(
        "profiling {} steps (after {} warm-up) with {} timing",
        req.steps,
        req.warmup_steps,
        profiler.mode()
    );
    let mut profile = profiler.profile_engine(
        engine,
        &order,
        &records,
        &member_steps,
        &ProfileOptions {
            steps: req.steps,
            warmup_steps: req.warmup_steps,
        },
    )?;
    profile.roofline = peaks;
    say_raw!("{profile}");
    if let Some(path) = &req.trace {
        profile
            .write_trace(path)
            .with_context(|| format!("writing the trace {}", path.display()))?;
        note!(
            "trace: {} (open in https://ui.perfetto.dev or chrome://tracing)",
            path.display()
        );
    }
    Ok(profile)
}

/// The adapter's roofline peaks measured with `mode` (`None`: the best clock), the probe's
/// line printed on stderr; `None`, with a warning, when the probe fails (a driver whose
/// timestamps are unusable, say), so that the tables still print, without fractions.
pub(crate) fn probe_roofline(
    gpu: &Gpu,
    kernels: &Kernels,
    mode: Option<TimingMode>,
) -> Option<wgtrain::roofline::Peaks> {
    match roofline::probe(gpu, kernels, mode) {
        Ok(p) => {
            note!("{p}");
            Some(p.peaks)
        }
        Err(e) => {
            note!("warning: the roofline probe failed, so no fractions of peak are shown: {e}");
            None
        }
    }
}

/// Refuses the training flags that `profile` would ignore: it times single steps at the
/// constant `--lr`, so `--epochs`, `--lr-schedule`, `--warmup-epochs` and every schedule
/// option would do nothing.
fn check_profile_flags(h: &HyperArgs) -> Result<()> {
    let s = &h.schedule;
    let mut given: Vec<(&'static str, String)> = Vec::new();
    if let Some(e) = h.epochs {
        given.push(("epochs", e.to_string()));
    }
    if let Some(k) = &s.lr_schedule {
        given.push(("lr-schedule", k.clone()));
    }
    if s.warmup_epochs > 0 {
        given.push(("warmup-epochs", s.warmup_epochs.to_string()));
    }
    given.extend(s.given().into_iter().map(|(flag, v, _)| (flag, v)));
    match given.into_iter().next() {
        Some((flag, value)) => Err(usage(
            flag,
            value,
            "applies to train only: profile times single training steps at the constant --lr; drop it",
        )),
        None => Ok(()),
    }
}

/// `wgtrain profile`.
pub fn profile_command(mut a: ProfileArgs) -> Result<()> {
    match a.device.device {
        DeviceKind::Cpu => return Err(needs_gpu("profile")),
        // Profiling times GPU kernels: there is nothing to choose.
        DeviceKind::Auto => a.device.device = DeviceKind::Gpu,
        DeviceKind::Gpu => {}
    }
    check_outputs([(a.trace.as_deref(), OutputKind::File)])?;
    let h = &a.hyper;
    check_profile_flags(h)?;
    sgd_from(h).validate()?;
    check_sgd_options_apply(&h.sgd, &[h.momentum], &[h.weight_decay], "this run's")?;
    let mode = if a.host_timing {
        Some(TimingMode::HostTimed)
    } else {
        a.timing.mode()
    };
    let mnist = load_data(&a.data, false)?;
    let n_train = mnist.train.len();
    if h.batch_size > n_train {
        return Err(wgtrain::Error::InvalidConfig {
            name: "batch size",
            value: h.batch_size.to_string(),
            reason: format!("must be between 1 and the number of training samples ({n_train})"),
        }
        .into());
    }
    let cfg = RunConfig {
        precision: a.precision.precision.to_lib(),
        ..run_config(
            h,
            n_train.div_ceil(h.batch_size),
            normalization(&a.data),
            0.0,
        )?
    };
    let mut engines = Engines::open_for(&a.device, a.precision.precision.to_lib())?;
    engines.with_gpu(&cfg, RunData::from(&mnist), |gpu, kernels, engine| {
        note!(
            "model: MLP {}, batch {}, {} dispatches per step; {}",
            engine.setup().shared().spec,
            h.batch_size,
            engine.dispatches_per_step(),
            engine.describe()
        );
        profile_engine(
            gpu,
            kernels,
            engine,
            &ProfileRequest {
                steps: a.steps,
                warmup_steps: a.warmup_steps,
                mode,
                trace: a.trace.clone(),
            },
        )
    })?;
    Ok(())
}

/// `wgtrain train --profile`: times `steps` steps of the engine the run will train with,
/// on the run's own training samples (those not held out for validation) and epoch-0
/// learning rates, prints the table, and leaves the parameters as they were.
pub(crate) fn profile_before_training(
    gpu: &Gpu,
    kernels: &Kernels,
    engine: &mut GpuEngine<'_>,
    steps: usize,
) -> Result<()> {
    profile_engine(
        gpu,
        kernels,
        engine,
        &ProfileRequest {
            steps,
            warmup_steps: wgtrain::gpu::profiler::DEFAULT_WARMUP_STEPS,
            mode: None,
            trace: None,
        },
    )?;
    Ok(())
}
