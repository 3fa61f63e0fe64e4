//! The profiler: where the time of a training step goes, kernel by kernel.
//!
//! [`Profiler`] runs real training steps (the engine's own [`Dispatch`]es, bind groups and
//! step records) after a few untimed warm-up steps, and times every dispatch of every
//! profiled step in the best way the adapter allows ([`TimingMode`]):
//!
//! - **per dispatch**: with `TIMESTAMP_QUERY_INSIDE_PASSES`, one compute pass per command
//!   buffer and a timestamp pair around each dispatch (`ComputePass::write_timestamp`);
//! - **per pass**: with `TIMESTAMP_QUERY` only, one compute pass per dispatch whose
//!   `timestamp_writes` mark its beginning and end;
//! - **host-timed**: without timestamp queries (or when asked), the host clock around a
//!   submit-and-wait of each dispatch alone. This includes submission and synchronisation,
//!   so it overstates short kernels; every output says `host-timed`.
//!
//! Timestamps are resolved into a `QUERY_RESOLVE` buffer in the command buffer that wrote
//! them, then copied to a `MAP_READ` staging buffer by a *separate* command buffer
//! submitted afterwards (sharing one encoder reads back zeros on some drivers). Ticks are
//! subtracted as integers and only then converted with the queue's timestamp period (ns
//! per tick, not always 1), so neither wrap-around nor f32 rounding of absolute tick
//! values can creep in. Every delta is checked ([`ticks_to_ns`]): a timestamp that reads
//! back as zero, an end before its start, a zero delta or one over
//! [`MAX_VALID_DELTA_NS`] is reported as invalid, counted in the table, and never summed.
//!
//! The profiler is off unless asked for: [`crate::gpu::engine::GpuEngine`]'s training path
//! writes no timestamps and adds no passes or submits. Everything after the measurement
//! (tick conversion, the table, FLOP accounting, the Chrome trace) is pure and testable
//! without a GPU: build a [`Profile`] by hand, or with [`timings_from_ticks`].
//!
//! This module owns the measurement: [`TimingMode`], tick conversion ([`ticks_to_ns`],
//! [`timings_from_ticks`]) and the [`Profiler`] that runs the steps. The report (the
//! [`Profile`], its [`KernelRow`]s, [`StepSummary`] and the printed table) lives in
//! `report.rs`, the Chrome trace JSON ([`Profile::trace_json`]) in `trace.rs`; all of it is
//! re-exported here.
//!
//! ```no_run
//! use wgtrain::gpu::profiler::{ProfileOptions, Profiler};
//! use wgtrain::gpu::{Gpu, StepRecord, engine::GpuEngine};
//! use wgtrain::step::MemberStep;
//!
//! fn profile(
//!     gpu: &Gpu,
//!     engine: &mut GpuEngine<'_>,
//!     order: &[u32],
//!     records: &[StepRecord],
//!     member_steps: &[MemberStep], // [records, K]
//! ) -> wgtrain::Result<()> {
//!     let profiler = Profiler::new(gpu, None)?; // the best mode this adapter has
//!     let opts = ProfileOptions { steps: 50, ..ProfileOptions::default() };
//!     let profile = profiler.profile_engine(engine, order, records, member_steps, &opts)?;
//!     println!("{profile}"); // the per-kernel table
//!     profile.write_trace(std::path::Path::new("trace.json"))
//! }
//! ```

mod report;
mod trace;

pub use report::{KernelRow, Profile, StepSummary, Throughput};

use std::fmt;
use std::time::Instant;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::gpu::engine::GpuEngine;
use crate::gpu::kernels::{Dispatch, STEP_STRIDE, StepRecord};
use crate::gpu::tensor::Readback;
use crate::step::MemberStep;

/// Deltas above this (10 s, in ns) are reported as invalid: no kernel of a training step
/// takes that long, but a garbage or wrapped timestamp easily looks like it.
pub const MAX_VALID_DELTA_NS: f64 = 10e9;

/// Untimed steps run before the profiled ones by default (pipelines compiled, caches warm).
pub const DEFAULT_WARMUP_STEPS: usize = 3;

/// How dispatches are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimingMode {
    /// GPU timestamps around each dispatch inside one compute pass
    /// (`TIMESTAMP_QUERY_INSIDE_PASSES`).
    PerDispatch,
    /// GPU timestamps at the beginning and end of one compute pass per dispatch
    /// (`TIMESTAMP_QUERY`).
    PerPass,
    /// Host clock around a submit-and-wait of each dispatch alone (includes submission and
    /// synchronisation overhead).
    HostTimed,
}

impl TimingMode {
    /// The most precise mode the device's features allow.
    pub fn best_for(features: wgpu::Features) -> TimingMode {
        if features.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES) {
            TimingMode::PerDispatch
        } else if features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            TimingMode::PerPass
        } else {
            TimingMode::HostTimed
        }
    }

    /// The device features this mode needs.
    pub fn required_features(self) -> wgpu::Features {
        match self {
            TimingMode::PerDispatch => {
                wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
            }
            TimingMode::PerPass => wgpu::Features::TIMESTAMP_QUERY,
            TimingMode::HostTimed => wgpu::Features::empty(),
        }
    }

    /// True for the host-clock fallback.
    pub fn is_host_timed(self) -> bool {
        self == TimingMode::HostTimed
    }

    /// Short name used in tables and traces: `per-dispatch`, `per-pass` or `host-timed`.
    pub fn name(self) -> &'static str {
        match self {
            TimingMode::PerDispatch => "per-dispatch",
            TimingMode::PerPass => "per-pass",
            TimingMode::HostTimed => "host-timed",
        }
    }

    /// One line on what this mode measures.
    pub fn describe(self) -> &'static str {
        match self {
            TimingMode::PerDispatch => {
                "GPU timestamps, one pair per dispatch inside one compute pass (TIMESTAMP_QUERY_INSIDE_PASSES)"
            }
            TimingMode::PerPass => {
                "GPU timestamps, one compute pass per dispatch with timestamp_writes (TIMESTAMP_QUERY)"
            }
            TimingMode::HostTimed => {
                "host-timed: host clock around a submit-and-wait of each dispatch; includes submission and sync overhead, no GPU timestamps"
            }
        }
    }
}

impl fmt::Display for TimingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a timestamp pair was not used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InvalidDelta {
    /// A timestamp read back as 0: never written, or lost between resolve and readback.
    NotWritten { start: u64, end: u64 },
    /// The end tick is before the start tick (a naive `end - start` would wrap to ~1.8e19).
    EndBeforeStart { start: u64, end: u64 },
    /// Start and end are the same tick: the kernel is below the timer's resolution.
    Zero { tick: u64 },
    /// Longer than [`MAX_VALID_DELTA_NS`] (value in ns).
    TooLarge { ns: f64 },
    /// The timestamp period (ns per tick) is not a positive finite number.
    BadPeriod { period_ns: f64 },
}

impl InvalidDelta {
    /// A short category name for counts: `not written`, `end before start`, …
    pub fn kind(&self) -> &'static str {
        match self {
            InvalidDelta::NotWritten { .. } => "read back as zero",
            InvalidDelta::EndBeforeStart { .. } => "end before start",
            InvalidDelta::Zero { .. } => "zero delta",
            InvalidDelta::TooLarge { .. } => "over 10 s",
            InvalidDelta::BadPeriod { .. } => "bad timestamp period",
        }
    }
}

impl fmt::Display for InvalidDelta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidDelta::NotWritten { start, end } => write!(
                f,
                "timestamp read back as zero (start {start}, end {end} ticks)"
            ),
            InvalidDelta::EndBeforeStart { start, end } => {
                write!(f, "end tick {end} is before start tick {start}")
            }
            InvalidDelta::Zero { tick } => {
                write!(
                    f,
                    "start and end are the same tick ({tick}): below timer resolution"
                )
            }
            InvalidDelta::TooLarge { ns } => write!(
                f,
                "{:.3} s is over the {:.0} s plausibility limit",
                ns / 1e9,
                MAX_VALID_DELTA_NS / 1e9
            ),
            InvalidDelta::BadPeriod { period_ns } => {
                write!(f, "timestamp period {period_ns} ns/tick is not usable")
            }
        }
    }
}

/// Converts one timestamp pair to nanoseconds: `(end - start) * period_ns`, subtracted as
/// integers first, then checked. `period_ns` is `Queue::get_timestamp_period()` (ns per tick).
///
/// # Errors
/// The [`InvalidDelta`] that makes the pair unusable.
pub fn ticks_to_ns(start: u64, end: u64, period_ns: f64) -> Result<f64, InvalidDelta> {
    if !(period_ns.is_finite() && period_ns > 0.0) {
        return Err(InvalidDelta::BadPeriod { period_ns });
    }
    if start == 0 || end == 0 {
        return Err(InvalidDelta::NotWritten { start, end });
    }
    if end < start {
        return Err(InvalidDelta::EndBeforeStart { start, end });
    }
    if end == start {
        return Err(InvalidDelta::Zero { tick: start });
    }
    let ns = (end - start) as f64 * period_ns;
    if ns > MAX_VALID_DELTA_NS {
        return Err(InvalidDelta::TooLarge { ns });
    }
    Ok(ns)
}

/// What the profile keeps of a [`Dispatch`]: its names, shape and work.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DispatchInfo {
    /// Kernel entry point, e.g. `matmul_register`.
    pub kernel: String,
    /// What the launch computes, e.g. `train.layer0.forward`.
    pub label: String,
    /// Shape string, e.g. `M=64 N=256 K=784`.
    pub shape: String,
    /// Floating-point operations per call at the largest minibatch (matmuls: 2·M·N·K).
    pub flops: u64,
    /// Bytes read plus written per call at the largest minibatch.
    pub bytes: u64,
}

impl DispatchInfo {
    /// Matmuls are rated in GFLOP/s, every other kernel in GB/s.
    pub fn is_matmul(&self) -> bool {
        self.kernel.starts_with("matmul")
    }
}

impl From<&Dispatch> for DispatchInfo {
    fn from(d: &Dispatch) -> Self {
        DispatchInfo {
            kernel: d.kernel.to_string(),
            label: d.label.clone(),
            shape: d.shape.clone(),
            flops: d.flops,
            bytes: d.bytes,
        }
    }
}

/// The measurement of one dispatch in one profiled step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelTiming {
    /// Profiled step, from 0 (warm-up steps are not counted).
    pub step: usize,
    /// Index of the dispatch within the step (into [`Profile::dispatches`]).
    pub dispatch: usize,
    /// Start on the profile's timeline, ns after the profiled run began (host clock; GPU
    /// timestamps are aligned so that the first one falls at the first submit).
    pub start_ns: f64,
    /// Duration in ns, or why there is none.
    pub duration_ns: Result<f64, InvalidDelta>,
}

/// A host-side span of the profiled run (encode, submit, wait, readback).
#[derive(Clone, Debug, PartialEq)]
pub struct HostSpan {
    pub name: String,
    /// ns after the profiled run began.
    pub start_ns: f64,
    /// Duration in ns.
    pub duration_ns: f64,
}

/// Turns raw timestamps (`ticks[2i]` start and `ticks[2i + 1]` end of measurement `i`,
/// step-major: step `i / dispatches_per_step`, dispatch `i % dispatches_per_step`) into
/// timings. The earliest valid start is placed at `origin_ns` on the profile timeline;
/// invalid measurements are placed where the previous valid one ended.
pub fn timings_from_ticks(
    ticks: &[u64],
    dispatches_per_step: usize,
    period_ns: f64,
    origin_ns: f64,
) -> Vec<KernelTiming> {
    assert!(dispatches_per_step > 0, "a step has at least one dispatch");
    let pairs: Vec<(u64, Result<f64, InvalidDelta>)> = ticks
        .chunks_exact(2)
        .map(|p| (p[0], ticks_to_ns(p[0], p[1], period_ns)))
        .collect();
    let base = pairs
        .iter()
        .filter(|(_, d)| d.is_ok())
        .map(|(s, _)| *s)
        .min();
    let mut cursor = origin_ns;
    pairs
        .into_iter()
        .enumerate()
        .map(|(i, (start, duration_ns))| {
            let start_ns = match (duration_ns, base) {
                // `start >= base`: base is the minimum over the valid starts.
                (Ok(ns), Some(base)) => {
                    let s = origin_ns + (start - base) as f64 * period_ns;
                    cursor = s + ns;
                    s
                }
                _ => cursor,
            };
            KernelTiming {
                step: i / dispatches_per_step,
                dispatch: i % dispatches_per_step,
                start_ns,
                duration_ns,
            }
        })
        .collect()
}

/// How many steps to profile and warm up.
#[derive(Clone, Debug)]
pub struct ProfileOptions {
    /// Profiled steps.
    pub steps: usize,
    /// Untimed steps before them.
    pub warmup_steps: usize,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            steps: 20,
            warmup_steps: DEFAULT_WARMUP_STEPS,
        }
    }
}

/// Times the dispatches of training steps on one device. See the module docs.
pub struct Profiler<'g> {
    gpu: &'g Gpu,
    mode: TimingMode,
    period_ns: Option<f64>,
    notes: Vec<String>,
}

impl<'g> Profiler<'g> {
    /// A profiler in `mode`, or in the best mode the device has when `None`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `mode` needs timestamp features the device lacks, or
    /// when the adapter reports an unusable timestamp period for a requested timestamp mode.
    pub fn new(gpu: &'g Gpu, mode: Option<TimingMode>) -> Result<Profiler<'g>> {
        let mut notes = Vec::new();
        let mut chosen = mode.unwrap_or_else(|| TimingMode::best_for(gpu.features));
        if !gpu.features.contains(chosen.required_features()) {
            return Err(Error::InvalidConfig {
                name: "timing mode",
                value: chosen.name().into(),
                reason: format!(
                    "adapter {} lacks {:?} (it has timestamp queries: {}); use --host-timing or --timing auto",
                    gpu.info.name,
                    chosen.required_features() - gpu.features,
                    TimingMode::best_for(gpu.features)
                ),
            });
        }
        let mut period_ns = None;
        if !chosen.is_host_timed() {
            let p = f64::from(gpu.queue.get_timestamp_period());
            if p.is_finite() && p > 0.0 {
                period_ns = Some(p);
            } else if mode.is_some() {
                return Err(Error::InvalidConfig {
                    name: "timing mode",
                    value: chosen.name().into(),
                    reason: format!("the adapter reports a timestamp period of {p} ns/tick"),
                });
            } else {
                notes.push(format!(
                    "the adapter has timestamp queries but reports a timestamp period of {p} ns/tick: fell back to host timing"
                ));
                chosen = TimingMode::HostTimed;
            }
        }
        if chosen.is_host_timed() && mode.is_none() {
            notes.push(
                "this adapter has no timestamp queries: kernel times are host-timed (submit and wait per dispatch) and include submission and sync overhead".into(),
            );
        }
        Ok(Profiler {
            gpu,
            mode: chosen,
            period_ns,
            notes,
        })
    }

    /// The mode this profiler times with.
    pub fn mode(&self) -> TimingMode {
        self.mode
    }

    /// ns per timestamp tick, `None` when host-timed.
    pub fn timestamp_period_ns(&self) -> Option<f64> {
        self.period_ns
    }

    /// Profiles an engine: writes `order`, the full-size minibatches of `records` and their
    /// rows of `member_steps` (`[records, K]`) with [`GpuEngine::upload_epoch`] (a partial
    /// last minibatch is left out so that the FLOP and byte counts, taken at the largest
    /// minibatch, are exact), runs `opts.warmup_steps` untimed steps then `opts.steps` timed
    /// ones (cycling through the records when there are fewer), and restores every member's
    /// parameters and momentum ([`Engine::set_state`]).
    ///
    /// # Errors
    /// As [`Profiler::run`]; [`Error::InvalidConfig`] when no record holds a full minibatch.
    pub fn profile_engine(
        &self,
        engine: &mut GpuEngine<'_>,
        order: &[u32],
        records: &[StepRecord],
        member_steps: &[MemberStep],
        opts: &ProfileOptions,
    ) -> Result<Profile> {
        let k = engine.members();
        crate::engine::check_table(member_steps.len(), records.len(), k)?;
        let full = records.iter().map(|r| r.batch).max().unwrap_or(0);
        let (records, member_steps): (Vec<StepRecord>, Vec<&[MemberStep]>) = records
            .iter()
            .zip(member_steps.chunks(k))
            .filter(|(r, _)| r.batch == full)
            .enumerate()
            .map(|(i, (r, row))| {
                let r = StepRecord {
                    index: i as u32,
                    ..*r
                };
                (r, row)
            })
            .unzip();
        let member_steps = member_steps.concat();
        if full == 0 || records.is_empty() {
            return Err(Error::InvalidConfig {
                name: "profile steps",
                value: "0".into(),
                reason: "no step record holds a minibatch".into(),
            });
        }
        let saved = (0..k)
            .map(|m| Ok((engine.params(m)?, engine.momentum(m)?)))
            .collect::<Result<Vec<_>>>()?;
        engine.upload_epoch(order, &records, &member_steps)?;
        let profile = self.run(
            engine.train_step_dispatches(),
            engine.steps_bind_group(),
            records.len(),
            opts,
        );
        for (m, (params, momentum)) in saved.iter().enumerate() {
            engine.set_state(m, params, Some(momentum))?;
        }
        profile
    }

    /// Runs `opts.warmup_steps` untimed then `opts.steps` timed steps of `dispatches`. Step
    /// `j` (warm-up included) uses step record `j % records` of the buffer behind
    /// `steps_bind_group`, which the caller has written (e.g. with
    /// [`GpuEngine::upload_epoch`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero steps, dispatches or records;
    /// [`Error::LimitExceeded`] when one step needs more timestamp queries than a query set
    /// holds; [`Error::Gpu`] / [`Error::Readback`] on device errors.
    pub fn run(
        &self,
        dispatches: &[Dispatch],
        steps_bind_group: &wgpu::BindGroup,
        records: usize,
        opts: &ProfileOptions,
    ) -> Result<Profile> {
        for (name, v) in [
            ("profile steps", opts.steps),
            ("dispatches per step", dispatches.len()),
            ("step records", records),
        ] {
            if v == 0 {
                return Err(Error::InvalidConfig {
                    name,
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        let offset = |step: usize| ((step % records) as u64 * STEP_STRIDE) as u32;
        let gpu = self.gpu;
        gpu.take_error("before profiling")?;
        if opts.warmup_steps > 0 {
            let mut enc = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("profile.warmup"),
                });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("profile.warmup"),
                    timestamp_writes: None,
                });
                for step in 0..opts.warmup_steps {
                    for d in dispatches {
                        d.record(&mut pass, steps_bind_group, offset(step));
                    }
                }
            }
            gpu.queue.submit([enc.finish()]);
            gpu.wait()?;
            gpu.take_error("the profiler's warm-up steps")?;
        }
        let first = opts.warmup_steps;
        let mut profile = Profile {
            mode: self.mode,
            adapter: format!(
                "{} ({:?}, {:?})",
                gpu.info.name, gpu.info.device_type, gpu.info.backend
            ),
            timestamp_period_ns: self.period_ns,
            dispatches: dispatches.iter().map(DispatchInfo::from).collect(),
            steps: opts.steps,
            warmup_steps: opts.warmup_steps,
            timings: Vec::new(),
            host_spans: Vec::new(),
            wall_ns: 0.0,
            notes: self.notes.clone(),
            roofline: None,
        };
        match (self.mode, self.period_ns) {
            (TimingMode::HostTimed, _) | (_, None) => {
                self.run_host_timed(dispatches, steps_bind_group, first, offset, &mut profile)?;
            }
            (mode, Some(period)) => {
                self.run_timestamped(
                    mode,
                    period,
                    dispatches,
                    steps_bind_group,
                    first,
                    offset,
                    &mut profile,
                )?;
            }
        }
        let busy = profile.busy_ns();
        if busy > profile.wall_ns {
            profile.notes.push(format!(
                "the kernel times add up to {:.3} ms, more than the {:.3} ms of wall time: the timestamps of this adapter are not trustworthy",
                busy / 1e6,
                profile.wall_ns / 1e6
            ));
        }
        Ok(profile)
    }

    fn run_host_timed(
        &self,
        dispatches: &[Dispatch],
        steps_bind_group: &wgpu::BindGroup,
        first: usize,
        offset: impl Fn(usize) -> u32,
        profile: &mut Profile,
    ) -> Result<()> {
        let gpu = self.gpu;
        let origin = Instant::now();
        let since = |t: Instant| t.duration_since(origin).as_secs_f64() * 1e9;
        for step in 0..profile.steps {
            for (i, d) in dispatches.iter().enumerate() {
                let t0 = Instant::now();
                let mut enc = gpu
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("profile.host"),
                    });
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&d.label),
                        timestamp_writes: None,
                    });
                    d.record(&mut pass, steps_bind_group, offset(first + step));
                }
                let cb = enc.finish();
                let t1 = Instant::now();
                gpu.queue.submit([cb]);
                gpu.wait()?;
                let t2 = Instant::now();
                profile.host_spans.push(HostSpan {
                    name: "encode".into(),
                    start_ns: since(t0),
                    duration_ns: since(t1) - since(t0),
                });
                let ns = since(t2) - since(t1);
                profile.timings.push(KernelTiming {
                    step,
                    dispatch: i,
                    start_ns: since(t1),
                    // The host clock is monotonic; a zero reading is still reported.
                    duration_ns: if ns > 0.0 {
                        Ok(ns)
                    } else {
                        Err(InvalidDelta::Zero { tick: 0 })
                    },
                });
            }
        }
        profile.wall_ns = since(Instant::now());
        gpu.take_error("profiling (host-timed)")
    }

    #[allow(clippy::too_many_arguments)]
    fn run_timestamped(
        &self,
        mode: TimingMode,
        period_ns: f64,
        dispatches: &[Dispatch],
        steps_bind_group: &wgpu::BindGroup,
        first: usize,
        offset: impl Fn(usize) -> u32,
        profile: &mut Profile,
    ) -> Result<()> {
        let gpu = self.gpu;
        let per_step = 2 * dispatches.len() as u64;
        let max_queries = u64::from(wgpu::QUERY_SET_MAX_QUERIES);
        if per_step > max_queries {
            return Err(Error::LimitExceeded {
                what: "the timestamp queries of one step".into(),
                requested: per_step,
                max: max_queries,
                unit: "queries",
                hint: "profile a model with fewer layers, or use --host-timing".into(),
            });
        }
        let chunk_steps = (max_queries / per_step) as usize;
        let steps = profile.steps;
        let chunks: Vec<(usize, usize)> = (0..steps)
            .step_by(chunk_steps)
            .map(|s| (s, chunk_steps.min(steps - s)))
            .collect();
        // Each command buffer resolves its own query set into its own 256-byte-aligned slice.
        let slice_bytes = |count: usize| count as u64 * per_step * wgpu::QUERY_SIZE as u64;
        let stride =
            slice_bytes(chunk_steps).next_multiple_of(wgpu::QUERY_RESOLVE_BUFFER_ALIGNMENT);
        let resolve_bytes = stride * chunks.len() as u64;
        gpu.check_buffer(
            "the profiler's timestamp buffer",
            resolve_bytes,
            "profile fewer --steps",
        )?;
        let resolve = gpu.buffer(
            "profile.timestamps.resolve",
            resolve_bytes,
            wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        );
        let query_sets: Vec<wgpu::QuerySet> = chunks
            .iter()
            .map(|&(_, count)| {
                gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("profile.timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: (count as u64 * per_step) as u32,
                })
            })
            .collect();
        let staging = Readback::new(gpu, "profile.timestamps.staging", resolve_bytes);
        gpu.take_error("creating the profiler's query sets")?;

        let origin = Instant::now();
        let since = |t: Instant| t.duration_since(origin).as_secs_f64() * 1e9;
        let span = |name: &str, t0: Instant, t1: Instant| HostSpan {
            name: name.to_string(),
            start_ns: since(t0),
            duration_ns: since(t1) - since(t0),
        };
        let mut spans = Vec::new();
        let mut gpu_origin_ns = None;
        for (c, &(start, count)) in chunks.iter().enumerate() {
            let t0 = Instant::now();
            let qs = &query_sets[c];
            let mut enc = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("profile.steps"),
                });
            let mut q = 0u32;
            match mode {
                TimingMode::PerDispatch => {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("profile.steps"),
                        timestamp_writes: None,
                    });
                    for step in start..start + count {
                        for d in dispatches {
                            pass.write_timestamp(qs, q);
                            d.record(&mut pass, steps_bind_group, offset(first + step));
                            pass.write_timestamp(qs, q + 1);
                            q += 2;
                        }
                    }
                }
                TimingMode::PerPass => {
                    for step in start..start + count {
                        for d in dispatches {
                            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                                label: Some(&d.label),
                                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                                    query_set: qs,
                                    beginning_of_pass_write_index: Some(q),
                                    end_of_pass_write_index: Some(q + 1),
                                }),
                            });
                            d.record(&mut pass, steps_bind_group, offset(first + step));
                            q += 2;
                        }
                    }
                }
                TimingMode::HostTimed => unreachable!("host timing has its own path"),
            }
            enc.resolve_query_set(qs, 0..q, &resolve, c as u64 * stride);
            let cb = enc.finish();
            let t1 = Instant::now();
            gpu.queue.submit([cb]);
            let t2 = Instant::now();
            gpu_origin_ns.get_or_insert(since(t1));
            spans.push(span("encode", t0, t1));
            spans.push(span("submit", t1, t2));
        }
        let t0 = Instant::now();
        gpu.wait()?;
        let t1 = Instant::now();
        spans.push(span("wait", t0, t1));
        profile.wall_ns = since(t1);
        gpu.take_error("profiling")?;

        // A separate command buffer copies the resolved timestamps to the staging buffer.
        let t0 = Instant::now();
        let bytes = staging.read(gpu, "the timestamps", &resolve, 0, resolve_bytes)?;
        spans.push(span("readback", t0, Instant::now()));
        let all: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
        let mut ticks = Vec::with_capacity(steps * per_step as usize);
        for (c, &(_, count)) in chunks.iter().enumerate() {
            let at = c * (stride / 8) as usize;
            ticks.extend_from_slice(&all[at..at + count * per_step as usize]);
        }
        profile.timings = timings_from_ticks(
            &ticks,
            dispatches.len(),
            period_ns,
            gpu_origin_ns.unwrap_or(0.0),
        );
        profile.host_spans = spans;
        if ticks.iter().all(|&t| t == 0) {
            profile.notes.push(
                "every timestamp read back as zero: this adapter or driver did not write them; use --host-timing".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(super) fn info(kernel: &str, label: &str, flops: u64, bytes: u64) -> DispatchInfo {
        DispatchInfo {
            kernel: kernel.into(),
            label: label.into(),
            shape: "M=1".into(),
            flops,
            bytes,
        }
    }

    pub(super) fn profile(
        timings: Vec<KernelTiming>,
        dispatches: Vec<DispatchInfo>,
        steps: usize,
    ) -> Profile {
        Profile {
            mode: TimingMode::PerDispatch,
            adapter: "test".into(),
            timestamp_period_ns: Some(1.0),
            dispatches,
            steps,
            warmup_steps: 0,
            timings,
            host_spans: vec![HostSpan {
                name: "encode".into(),
                start_ns: 0.0,
                duration_ns: 500.0,
            }],
            wall_ns: 10_000.0,
            notes: vec![],
            roofline: None,
        }
    }

    #[test]
    fn ticks_convert_with_the_timestamp_period() {
        assert_eq!(ticks_to_ns(1000, 1250, 1.0), Ok(250.0));
        // An adapter at 83.333 ns per tick (some integrated GPUs): 12 ticks are 1 us, not 12 ns.
        let ns = ticks_to_ns(10, 22, 83.333).unwrap();
        assert!((ns - 999.996).abs() < 1e-9, "{ns}");
        // Huge absolute tick values lose nothing: subtraction happens on integers.
        let big = 1u64 << 62;
        assert_eq!(ticks_to_ns(big, big + 1, 1.0), Ok(1.0));
        assert_eq!(ticks_to_ns(big + 7, big + 10, 0.5), Ok(1.5));
    }

    #[test]
    fn invalid_deltas_are_reported_not_used() {
        // end before start: a naive u64 subtraction would wrap to ~1.8e19 ticks.
        assert_eq!(
            ticks_to_ns(500, 400, 1.0),
            Err(InvalidDelta::EndBeforeStart {
                start: 500,
                end: 400
            })
        );
        assert_eq!(
            ticks_to_ns(500, 500, 1.0),
            Err(InvalidDelta::Zero { tick: 500 })
        );
        assert_eq!(
            ticks_to_ns(0, 400, 1.0),
            Err(InvalidDelta::NotWritten { start: 0, end: 400 })
        );
        assert_eq!(
            ticks_to_ns(400, 0, 1.0),
            Err(InvalidDelta::NotWritten { start: 400, end: 0 })
        );
        assert!(matches!(
            ticks_to_ns(1, 11_000_000_001, 1.0),
            Err(InvalidDelta::TooLarge { .. })
        ));
        // 10 s in ticks of 100 ns is fine; one tick more is not.
        assert_eq!(ticks_to_ns(1, 100_000_001, 100.0), Ok(1e10));
        assert!(matches!(
            ticks_to_ns(1, 100_000_002, 100.0),
            Err(InvalidDelta::TooLarge { .. })
        ));
        for p in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                ticks_to_ns(1, 2, p),
                Err(InvalidDelta::BadPeriod { .. })
            ));
        }
    }

    #[test]
    fn gpu_timestamps_are_placed_from_the_first_start() {
        let ticks = [5000, 5010, 5020, 5050];
        let t = timings_from_ticks(&ticks, 1, 2.0, 1000.0);
        assert_eq!(t[0].start_ns, 1000.0);
        assert_eq!(t[0].duration_ns, Ok(20.0));
        assert_eq!(t[1].start_ns, 1040.0);
        assert_eq!(t[1].duration_ns, Ok(60.0));
        assert_eq!((t[1].step, t[1].dispatch), (1, 0));
    }

    #[test]
    fn best_mode_follows_the_features() {
        use wgpu::Features as F;
        assert_eq!(TimingMode::best_for(F::empty()), TimingMode::HostTimed);
        assert_eq!(
            TimingMode::best_for(F::TIMESTAMP_QUERY),
            TimingMode::PerPass
        );
        assert_eq!(
            TimingMode::best_for(F::TIMESTAMP_QUERY | F::TIMESTAMP_QUERY_INSIDE_PASSES),
            TimingMode::PerDispatch
        );
    }
}
