//! The report of a profiling run: the [`Profile`] (what was measured and how), its rows
//! per kernel ([`KernelRow`], with [`Throughput`] and, given the adapter's peaks, its
//! place under the roofline), the per-step totals ([`StepSummary`]) and the table
//! `wgtrain profile` prints (`Display`). Pure: no GPU needed.

use std::fmt::{self, Write as _};

use super::{DispatchInfo, HostSpan, KernelTiming, TimingMode};
use crate::roofline::{Attainment, Peaks, percent, three_digits};

/// Achieved rate of one kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Throughput {
    /// Matmuls: GFLOP/s at the largest minibatch.
    GflopPerS(f64),
    /// Other kernels: GB/s of bytes read plus written.
    GbPerS(f64),
    /// Nothing valid was measured, or the kernel reports no work.
    Unknown,
}

impl fmt::Display for Throughput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Throughput::GflopPerS(v) => write!(f, "{} GFLOP/s", three_digits(*v)),
            Throughput::GbPerS(v) => write!(f, "{} GB/s", three_digits(*v)),
            Throughput::Unknown => f.write_str("-"),
        }
    }
}

/// One row of the table: every call of one dispatch (kernel and label) across the steps.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelRow {
    pub kernel: String,
    /// Layer / role label, e.g. `train.layer0.forward`.
    pub label: String,
    pub shape: String,
    /// Calls with a valid measurement.
    pub calls: usize,
    /// Calls whose measurement was invalid (not in any total).
    pub invalid: usize,
    /// Sum of the valid durations, ms.
    pub total_ms: f64,
    /// Mean valid duration, us.
    pub mean_us: f64,
    /// Fraction of the GPU busy time (sum over all rows' totals) in this row, 0..=1.
    pub share: f64,
    /// FLOP per call at the largest minibatch.
    pub flops_per_call: u64,
    /// Bytes read plus written per call at the largest minibatch.
    pub bytes_per_call: u64,
    pub throughput: Throughput,
    /// The mean call against [`Profile::roofline`]'s peaks; `None` without peaks or time.
    pub roofline: Option<Attainment>,
}

/// Per-step totals and the gap between GPU busy time and wall time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepSummary {
    pub steps: usize,
    /// Mean over steps of the summed valid kernel time, ms.
    pub busy_mean_ms: f64,
    pub busy_min_ms: f64,
    pub busy_median_ms: f64,
    pub busy_max_ms: f64,
    /// Host wall time of the profiled run divided by the steps, ms.
    pub wall_per_step_ms: f64,
    /// `wall_per_step_ms - busy_mean_ms`: host encoding, submission, sync and GPU idle, ms.
    pub gap_per_step_ms: f64,
    /// Sum of every valid kernel time, ms.
    pub busy_total_ms: f64,
    /// Host wall time of the whole profiled run, ms.
    pub wall_total_ms: f64,
    /// Measurements that were invalid.
    pub invalid: usize,
    /// All measurements (steps × dispatches per step).
    pub measurements: usize,
}

/// The result of a profiling run: what was measured, how, and everything derived from it.
#[derive(Clone, Debug)]
pub struct Profile {
    pub mode: TimingMode,
    /// Adapter description, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Cpu, Vulkan)`.
    pub adapter: String,
    /// ns per timestamp tick (`Queue::get_timestamp_period`); `None` when host-timed.
    pub timestamp_period_ns: Option<f64>,
    /// The launches of one step, in order.
    pub dispatches: Vec<DispatchInfo>,
    /// Profiled steps.
    pub steps: usize,
    /// Untimed steps run before them.
    pub warmup_steps: usize,
    /// `steps × dispatches.len()` measurements, step-major.
    pub timings: Vec<KernelTiming>,
    /// Host-side spans of the profiled run.
    pub host_spans: Vec<HostSpan>,
    /// Host wall time of the profiled run (first encode to the end of the wait), ns.
    pub wall_ns: f64,
    /// Things the reader must know (fallbacks, invalid measurements, inconsistencies).
    pub notes: Vec<String>,
    /// The adapter's peaks ([`crate::gpu::roofline::probe`], measured with the same
    /// clock), for each row's and the step's fractions of them; `None`: not probed.
    pub roofline: Option<Peaks>,
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if !n.is_multiple_of(2) => sorted[n / 2],
        n => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
    }
}

impl Profile {
    /// Sum of every valid kernel duration, ns.
    pub fn busy_ns(&self) -> f64 {
        self.timings.iter().filter_map(|t| t.duration_ns.ok()).sum()
    }

    /// Measurements that were invalid.
    pub fn invalid(&self) -> impl Iterator<Item = &KernelTiming> {
        self.timings.iter().filter(|t| t.duration_ns.is_err())
    }

    /// One row per dispatch of the step (kernel and label), sorted by total time, largest
    /// first (ties keep step order).
    pub fn rows(&self) -> Vec<KernelRow> {
        let n = self.dispatches.len();
        let mut total = vec![0.0f64; n];
        let mut calls = vec![0usize; n];
        let mut invalid = vec![0usize; n];
        for t in &self.timings {
            match t.duration_ns {
                Ok(ns) => {
                    total[t.dispatch] += ns;
                    calls[t.dispatch] += 1;
                }
                Err(_) => invalid[t.dispatch] += 1,
            }
        }
        let busy: f64 = total.iter().sum();
        let mut rows: Vec<KernelRow> = self
            .dispatches
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mean_ns = if calls[i] > 0 {
                    total[i] / calls[i] as f64
                } else {
                    0.0
                };
                let throughput = if mean_ns <= 0.0 {
                    Throughput::Unknown
                } else if d.is_matmul() {
                    // FLOP per ns = GFLOP per s.
                    Throughput::GflopPerS(d.flops as f64 / mean_ns)
                } else if d.bytes > 0 {
                    // Bytes per ns = GB per s.
                    Throughput::GbPerS(d.bytes as f64 / mean_ns)
                } else {
                    Throughput::Unknown
                };
                KernelRow {
                    kernel: d.kernel.clone(),
                    label: d.label.clone(),
                    shape: d.shape.clone(),
                    calls: calls[i],
                    invalid: invalid[i],
                    total_ms: total[i] / 1e6,
                    mean_us: mean_ns / 1e3,
                    share: if busy > 0.0 { total[i] / busy } else { 0.0 },
                    flops_per_call: d.flops,
                    bytes_per_call: d.bytes,
                    throughput,
                    roofline: self
                        .roofline
                        .and_then(|p| p.attainment(d.flops as f64, d.bytes as f64, mean_ns / 1e9)),
                }
            })
            .collect();
        rows.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        rows
    }

    /// Per-step totals and the busy/wall gap.
    pub fn summary(&self) -> StepSummary {
        let mut per_step = vec![0.0f64; self.steps];
        for t in &self.timings {
            if let (Ok(ns), Some(s)) = (t.duration_ns, per_step.get_mut(t.step)) {
                *s += ns / 1e6;
            }
        }
        let busy_total_ms = per_step.iter().sum::<f64>();
        let steps = self.steps.max(1) as f64;
        let mut sorted = per_step.clone();
        sorted.sort_by(f64::total_cmp);
        let busy_mean_ms = busy_total_ms / steps;
        let wall_per_step_ms = self.wall_ns / 1e6 / steps;
        StepSummary {
            steps: self.steps,
            busy_mean_ms,
            busy_min_ms: sorted.first().copied().unwrap_or(0.0),
            busy_median_ms: median(&sorted),
            busy_max_ms: sorted.last().copied().unwrap_or(0.0),
            wall_per_step_ms,
            gap_per_step_ms: wall_per_step_ms - busy_mean_ms,
            busy_total_ms,
            wall_total_ms: self.wall_ns / 1e6,
            invalid: self.invalid().count(),
            measurements: self.timings.len(),
        }
    }

    /// One step's work (the FLOP and bytes of every dispatch, at the largest minibatch) over
    /// its mean GPU busy time, against [`Profile::roofline`]'s peaks; `None` without peaks
    /// or time.
    pub fn step_roofline(&self) -> Option<Attainment> {
        let flops: u64 = self.dispatches.iter().map(|d| d.flops).sum();
        let bytes: u64 = self.dispatches.iter().map(|d| d.bytes).sum();
        let seconds = self.summary().busy_mean_ms / 1e3;
        self.roofline?
            .attainment(flops as f64, bytes as f64, seconds)
    }

    /// The per-kernel table, per-step totals and notes, as printed by `wgtrain profile`.
    pub fn table(&self) -> String {
        self.to_string()
    }
}

/// The `%FLOP`, `%BW`, `FLOP/B` and `bound` cells of a row: `-` without a roofline.
fn roofline_cells(a: Option<&Attainment>) -> [String; 4] {
    match a {
        Some(a) => [
            percent(a.flop_fraction),
            percent(a.bandwidth_fraction),
            three_digits(a.intensity),
            a.bound.to_string(),
        ],
        None => ["-".into(), "-".into(), "-".into(), "-".into()],
    }
}

fn fmt_count(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.mode.is_host_timed();
        let tag = if host { " [host-timed]" } else { "" };
        writeln!(
            f,
            "profile{tag}: {} steps after {} warm-up, {} dispatches per step, {}",
            self.steps,
            self.warmup_steps,
            self.dispatches.len(),
            self.adapter
        )?;
        write!(f, "timing: {}", self.mode.describe())?;
        if let Some(p) = self.timestamp_period_ns {
            write!(f, ", {p} ns/tick")?;
        }
        writeln!(f)?;
        match &self.roofline {
            Some(p) => writeln!(f, "roofline: peak {p} (probed with the same clock)")?,
            None => writeln!(f, "roofline: not probed (no fractions of peak)")?,
        }
        let rows = self.rows();
        let w_kernel = rows
            .iter()
            .map(|r| r.kernel.len())
            .max()
            .unwrap_or(0)
            .max(6);
        let w_label = rows.iter().map(|r| r.label.len()).max().unwrap_or(0).max(5);
        let w_shape = rows.iter().map(|r| r.shape.len()).max().unwrap_or(0).max(5);
        let time_head = if host { "host ms" } else { "total ms" };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<w_kernel$}  {:<w_label$}  {:<w_shape$}  {:>6}  {:>10}  {:>10}  {:>6}  {:>12}  {:>16}  {:>7}  {:>7}  {:>7}  bound",
            "kernel",
            "layer",
            "shape",
            "calls",
            time_head,
            "mean us",
            "share",
            "FLOP/call",
            "achieved",
            "%FLOP",
            "%BW",
            "FLOP/B"
        );
        for r in &rows {
            let calls = if r.invalid > 0 {
                format!("{}+{}!", r.calls, r.invalid)
            } else {
                r.calls.to_string()
            };
            let flops = if r.flops_per_call > 0 {
                fmt_count(r.flops_per_call)
            } else {
                "-".into()
            };
            let [flop_pct, bw_pct, intensity, bound] = roofline_cells(r.roofline.as_ref());
            let _ = writeln!(
                out,
                "{:<w_kernel$}  {:<w_label$}  {:<w_shape$}  {:>6}  {:>10.3}  {:>10.2}  {:>5.1}%  {:>12}  {:>16}  {flop_pct:>7}  {bw_pct:>7}  {intensity:>7}  {bound}",
                r.kernel,
                r.label,
                r.shape,
                calls,
                r.total_ms,
                r.mean_us,
                100.0 * r.share,
                flops,
                r.throughput.to_string()
            );
        }
        let s = self.summary();
        let _ = writeln!(
            out,
            "{:<w_kernel$}  {:<w_label$}  {:<w_shape$}  {:>6}  {:>10.3}  {:>10}  {:>5.1}%",
            "total",
            "",
            "",
            s.measurements - s.invalid,
            s.busy_total_ms,
            "",
            if s.busy_total_ms > 0.0 { 100.0 } else { 0.0 },
        );
        f.write_str(&out)?;
        writeln!(
            f,
            "share: of the summed kernel time; FLOP/call and achieved rates at the largest minibatch (matmuls in GFLOP/s, other kernels in GB/s read + written)"
        )?;
        writeln!(
            f,
            "%FLOP, %BW: achieved GFLOP/s and GB/s over the roofline peaks; FLOP/B: arithmetic intensity; bound: memory below the ridge point, compute at or above it"
        )?;
        let busy_what = if host {
            "host-timed kernel time (submit + wait)"
        } else {
            "GPU busy"
        };
        writeln!(
            f,
            "per step{tag}: {busy_what} {:.3} ms (min {:.3}, median {:.3}, max {:.3}); wall {:.3} ms; gap {:.3} ms ({:.1}% of wall: host encode, submission, sync, GPU idle)",
            s.busy_mean_ms,
            s.busy_min_ms,
            s.busy_median_ms,
            s.busy_max_ms,
            s.wall_per_step_ms,
            s.gap_per_step_ms,
            if s.wall_per_step_ms > 0.0 {
                100.0 * s.gap_per_step_ms / s.wall_per_step_ms
            } else {
                0.0
            }
        )?;
        if let Some(a) = self.step_roofline() {
            writeln!(
                f,
                "per step{tag}, roofline: {} GFLOP/s ({} of peak), {} GB/s ({} of peak), {} FLOP/B: {}-bound, at {} of that roof (all dispatches' FLOP and bytes over the {busy_what} time)",
                three_digits(a.gflops),
                percent(a.flop_fraction),
                three_digits(a.gbps),
                percent(a.bandwidth_fraction),
                three_digits(a.intensity),
                a.bound,
                percent(a.of_roof()),
            )?;
        }
        writeln!(
            f,
            "total{tag}: {busy_what} {:.3} ms over {} steps, wall {:.3} ms",
            s.busy_total_ms, s.steps, s.wall_total_ms
        )?;
        if s.invalid > 0 {
            let mut kinds: Vec<(&str, usize)> = Vec::new();
            for t in self.invalid() {
                if let Err(e) = t.duration_ns {
                    match kinds.iter_mut().find(|(k, _)| *k == e.kind()) {
                        Some((_, n)) => *n += 1,
                        None => kinds.push((e.kind(), 1)),
                    }
                }
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            writeln!(
                f,
                "INVALID: {} of {} measurements could not be used ({}); they are excluded from every total above (calls shown as valid+invalid!)",
                s.invalid,
                s.measurements,
                kinds.join(", ")
            )?;
            if let Some(t) = self.invalid().next() {
                let d = &self.dispatches[t.dispatch];
                if let Err(e) = t.duration_ns {
                    writeln!(f, "  first: step {} {} {}: {e}", t.step, d.kernel, d.label)?;
                }
            }
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::profiler::tests::{info, profile};
    use crate::gpu::profiler::{InvalidDelta, timings_from_ticks};
    use serde_json::Value;

    #[test]
    fn invalid_measurements_are_counted_excluded_and_shown() {
        let d = vec![
            info("matmul_tiled", "a", 100, 10),
            info("column_sum", "b", 0, 64),
        ];
        // step 0: a ok (100 ns), b end-before-start; step 1: a zero, b ok (50 ns).
        let ticks = [1000, 1100, 1200, 1150, 1300, 1300, 1400, 1450];
        let t = timings_from_ticks(&ticks, 2, 1.0, 0.0);
        assert_eq!(t.len(), 4);
        assert_eq!((t[3].step, t[3].dispatch), (1, 1));
        assert!(matches!(
            t[1].duration_ns,
            Err(InvalidDelta::EndBeforeStart { .. })
        ));
        assert!(matches!(t[2].duration_ns, Err(InvalidDelta::Zero { .. })));
        let p = profile(t, d, 2);
        assert_eq!(p.busy_ns(), 150.0);
        let s = p.summary();
        assert_eq!((s.invalid, s.measurements), (2, 4));
        let rows = p.rows();
        assert_eq!(
            (rows[0].label.as_str(), rows[0].calls, rows[0].invalid),
            ("a", 1, 1)
        );
        assert_eq!((rows[1].calls, rows[1].invalid), (1, 1));
        let table = p.table();
        assert!(table.contains("INVALID: 2 of 4"), "{table}");
        assert!(table.contains("1 end before start"), "{table}");
        assert!(table.contains("1 zero delta"), "{table}");
        assert!(table.contains("1+1!"), "{table}");
        let trace = p.trace_json();
        let events = trace["traceEvents"].as_array().unwrap();
        let x = events.iter().filter(|e| e["cat"] == "kernel").count();
        let invalid = events.iter().filter(|e| e["cat"] == "invalid").count();
        assert_eq!((x, invalid), (2, 2));
    }

    #[test]
    fn rows_are_sorted_by_total_with_shares_and_rates() {
        let d = vec![
            info("gather_normalize", "g", 0, 2000),
            info("matmul_register", "m", 25_690_112, 1000),
            info("sgd_update", "s", 0, 0),
        ];
        let mut timings = Vec::new();
        for step in 0..2 {
            for (i, ns) in [1000.0, 4000.0, 0.5].into_iter().enumerate() {
                timings.push(KernelTiming {
                    step,
                    dispatch: i,
                    start_ns: 0.0,
                    duration_ns: Ok(ns),
                });
            }
        }
        let p = profile(timings, d, 2);
        let rows = p.rows();
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["m", "g", "s"]);
        assert_eq!(rows[0].calls, 2);
        assert!((rows[0].total_ms - 0.008).abs() < 1e-12);
        assert!((rows[0].mean_us - 4.0).abs() < 1e-12);
        assert!((rows[0].share - 8000.0 / 10001.0).abs() < 1e-12);
        // 25,690,112 FLOP in 4 us = 6422.528 GFLOP/s.
        assert_eq!(
            rows[0].throughput,
            Throughput::GflopPerS(25_690_112.0 / 4000.0)
        );
        // 2000 B in 1 us = 2 GB/s.
        assert_eq!(rows[1].throughput, Throughput::GbPerS(2.0));
        assert_eq!(rows[2].throughput, Throughput::Unknown);
        let shares: f64 = rows.iter().map(|r| r.share).sum();
        assert!((shares - 1.0).abs() < 1e-12);
        let s = p.summary();
        assert!((s.busy_mean_ms - 0.0050005).abs() < 1e-12);
        assert!((s.wall_per_step_ms - 0.005).abs() < 1e-12);
        let table = p.table();
        assert!(table.contains("25,690,112"), "{table}");
        assert!(table.contains("GFLOP/s"), "{table}");
        assert!(table.contains("GB/s"), "{table}");
        let first_row = table.lines().nth(4).unwrap();
        assert!(first_row.starts_with("matmul_register"), "{table}");
    }

    /// Item 3 of issue 27: every profile row and the step show their fractions of the
    /// adapter's roofline peaks and which roof applies.
    #[test]
    fn roofline_columns_are_each_rows_fractions_of_the_peaks() {
        let d = vec![
            info("gather_normalize", "g", 0, 2000),
            info("matmul_register", "m", 25_690_112, 1000),
        ];
        let timings = vec![
            KernelTiming {
                step: 0,
                dispatch: 0,
                start_ns: 0.0,
                duration_ns: Ok(1000.0),
            },
            KernelTiming {
                step: 0,
                dispatch: 1,
                start_ns: 0.0,
                duration_ns: Ok(4000.0),
            },
        ];
        let mut p = profile(timings, d, 1);
        let table = p.table();
        assert!(table.contains("roofline: not probed"), "{table}");
        assert!(p.rows().iter().all(|r| r.roofline.is_none()));
        assert!(p.step_roofline().is_none());

        // Peaks 12,845.056 GFLOP/s and 4 GB/s: ridge point 3,211.264 FLOP/B.
        p.roofline = Some(Peaks {
            gflops: 12_845.056,
            gbps: 4.0,
        });
        let rows = p.rows();
        // m: 25,690,112 FLOP in 4 us = 6,422.528 GFLOP/s = 50% of peak; 1000 B in 4 us =
        // 0.25 GB/s = 6.25%; 25,690.112 FLOP/B, over the ridge: compute-bound.
        let m = rows[0].roofline.expect("m has a roofline");
        assert_eq!(rows[0].label, "m");
        assert!((m.flop_fraction - 0.5).abs() < 1e-12, "{m:?}");
        assert!((m.bandwidth_fraction - 0.0625).abs() < 1e-12, "{m:?}");
        assert!((m.intensity - 25_690.112).abs() < 1e-9, "{m:?}");
        assert_eq!(m.bound, crate::roofline::Bound::Compute);
        // g: 2000 B in 1 us = 2 GB/s = 50% of the bandwidth, no FLOP: memory-bound.
        let g = rows[1].roofline.expect("g has a roofline");
        assert!((g.bandwidth_fraction - 0.5).abs() < 1e-12, "{g:?}");
        assert_eq!((g.flop_fraction, g.intensity), (0.0, 0.0));
        assert_eq!(g.bound, crate::roofline::Bound::Memory);
        // The step: 25,690,112 FLOP and 3000 B in 5 us: 5,138.0224 GFLOP/s (40%), 0.6 GB/s
        // (15%), 8,563.37 FLOP/B: compute-bound.
        let step = p.step_roofline().expect("a step roofline");
        assert!((step.flop_fraction - 0.4).abs() < 1e-12, "{step:?}");
        assert!((step.bandwidth_fraction - 0.15).abs() < 1e-12, "{step:?}");
        assert_eq!(step.bound, crate::roofline::Bound::Compute);

        let table = p.table();
        assert!(
            table.contains("roofline: peak 12845 GFLOP/s, 4.00 GB/s, ridge point 3211 FLOP/B"),
            "{table}"
        );
        let header = table.lines().nth(3).unwrap();
        for col in ["%FLOP", "%BW", "FLOP/B", "bound"] {
            assert!(header.contains(col), "{header}");
        }
        let cells = |label: &str| -> Vec<String> {
            let line = table
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(label))
                .unwrap_or_else(|| panic!("no row {label}: {table}"));
            let w: Vec<&str> = line.split_whitespace().collect();
            w[w.len() - 4..].iter().map(|s| s.to_string()).collect()
        };
        assert_eq!(cells("m"), ["50.0%", "6.25%", "25690", "compute"]);
        assert_eq!(cells("g"), ["0%", "50.0%", "0", "memory"]);
        assert!(
            table.contains("per step, roofline: 5138 GFLOP/s (40.0% of peak), 0.600 GB/s (15.0% of peak), 8563 FLOP/B: compute-bound, at 40.0% of that roof"),
            "{table}"
        );
    }

    #[test]
    fn host_timed_profiles_say_so_everywhere() {
        let mut p = profile(
            vec![KernelTiming {
                step: 0,
                dispatch: 0,
                start_ns: 0.0,
                duration_ns: Ok(100.0),
            }],
            vec![info("sgd_update", "sgd_update", 6, 20)],
            1,
        );
        p.mode = TimingMode::HostTimed;
        p.timestamp_period_ns = None;
        let table = p.table();
        for line in table.lines().filter(|l| !l.starts_with(' ')) {
            if line.starts_with("profile")
                || line.starts_with("timing")
                || line.starts_with("per step")
            {
                assert!(line.contains("host-timed"), "{line}");
            }
        }
        let trace = serde_json::to_string(&p.trace_json()).unwrap();
        let v: Value = serde_json::from_str(&trace).unwrap();
        assert_eq!(v["otherData"]["timing"], "host-timed");
        let e = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["cat"] == "kernel")
            .unwrap();
        assert!(e["name"].as_str().unwrap().contains("host-timed"));
        assert_eq!(e["args"]["timing"], "host-timed");
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1000), "1,000");
        assert_eq!(fmt_count(25_690_112), "25,690,112");
        assert_eq!(three_digits(1234.4), "1234");
        assert_eq!(three_digits(12.345), "12.3");
        assert_eq!(three_digits(7.1), "7.10");
        assert_eq!(three_digits(0.0312), "0.031");
        assert_eq!(three_digits(0.00123), "1.2e-3");
        assert_eq!(three_digits(0.0), "0");
    }
}
