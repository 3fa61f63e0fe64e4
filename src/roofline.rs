//! The roofline model (Williams, Waterman and Patterson, 2009), as arithmetic: a kernel
//! that does `F` floating-point operations and moves `Q` bytes can run no faster than
//! `max(F / P, Q / W)`, where `P` is the device's peak FLOP rate and `W` its peak memory
//! bandwidth. Its arithmetic intensity `F / Q` (FLOP per byte) against the **ridge point**
//! `P / W` says which bound applies: below the ridge a kernel is memory-bound, at or above
//! it compute-bound. The fraction of the bound that applies is how close a kernel runs to
//! the roof.
//!
//! Device-neutral: the peaks come from a probe (on a GPU adapter,
//! [`crate::gpu::roofline::probe`]: a copy kernel and an fma kernel), the counts from the
//! kernels or the model ([`crate::model::MlpSpec::train_flops_per_sample`]).

use std::fmt;

/// A device's two roofs, as measured by a probe.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Peaks {
    /// Peak f32 throughput, GFLOP/s (an fma counts 2 FLOP).
    pub gflops: f64,
    /// Peak memory bandwidth, GB/s (10^9 bytes read plus written per second).
    pub gbps: f64,
}

/// Which roof limits a kernel: its arithmetic intensity against the ridge point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// Intensity below the ridge point: bandwidth is the roof.
    Memory,
    /// Intensity at or above the ridge point: FLOP rate is the roof.
    Compute,
}

impl Bound {
    /// `memory` or `compute`.
    pub fn name(self) -> &'static str {
        match self {
            Bound::Memory => "memory",
            Bound::Compute => "compute",
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where one measured piece of work sits under the roofs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attainment {
    /// Achieved GFLOP/s.
    pub gflops: f64,
    /// Achieved GB/s (bytes read plus written).
    pub gbps: f64,
    /// `gflops / Peaks::gflops`, 0..=1 for a probe that found the true peak.
    pub flop_fraction: f64,
    /// `gbps / Peaks::gbps`.
    pub bandwidth_fraction: f64,
    /// FLOP per byte; infinite for work that moves no bytes.
    pub intensity: f64,
    /// Which roof applies: `intensity` against [`Peaks::ridge_point`].
    pub bound: Bound,
}

impl Attainment {
    /// The fraction of the roof that applies: `flop_fraction` when compute-bound,
    /// `bandwidth_fraction` when memory-bound (both are achieved / attainable).
    pub fn of_roof(&self) -> f64 {
        match self.bound {
            Bound::Compute => self.flop_fraction,
            Bound::Memory => self.bandwidth_fraction,
        }
    }
}

impl Peaks {
    /// The ridge point `P / W`, FLOP per byte: the arithmetic intensity at which moving the
    /// bytes and doing the FLOP take equally long.
    pub fn ridge_point(&self) -> f64 {
        self.gflops / self.gbps
    }

    /// Which roof applies to work of `flops` FLOP over `bytes` bytes; `None` for no work.
    pub fn bound(&self, flops: f64, bytes: f64) -> Option<Bound> {
        if flops <= 0.0 && bytes <= 0.0 {
            return None;
        }
        // flops >= ridge · bytes is intensity >= ridge without dividing by zero bytes.
        Some(if flops >= self.ridge_point() * bytes {
            Bound::Compute
        } else {
            Bound::Memory
        })
    }

    /// How `flops` FLOP and `bytes` bytes done in `seconds` compare with the peaks;
    /// `None` when there was no work or no positive time.
    pub fn attainment(&self, flops: f64, bytes: f64, seconds: f64) -> Option<Attainment> {
        if !(seconds > 0.0 && seconds.is_finite()) {
            return None;
        }
        let bound = self.bound(flops, bytes)?;
        let gflops = flops / seconds / 1e9;
        let gbps = bytes / seconds / 1e9;
        Some(Attainment {
            gflops,
            gbps,
            flop_fraction: gflops / self.gflops,
            bandwidth_fraction: gbps / self.gbps,
            intensity: if bytes > 0.0 {
                flops / bytes
            } else {
                f64::INFINITY
            },
            bound,
        })
    }

    /// The least time `flops` FLOP and `bytes` bytes can take under these roofs, s:
    /// `max(flops / P, bytes / W)`.
    pub fn best_seconds(&self, flops: f64, bytes: f64) -> f64 {
        (flops / (self.gflops * 1e9)).max(bytes / (self.gbps * 1e9))
    }
}

impl fmt::Display for Peaks {
    /// `85.3 GFLOP/s, 9.87 GB/s, ridge point 8.64 FLOP/B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} GFLOP/s, {} GB/s, ridge point {} FLOP/B",
            three_digits(self.gflops),
            three_digits(self.gbps),
            three_digits(self.ridge_point())
        )
    }
}

/// At least three significant digits for rates from 0.001 to thousands.
pub fn three_digits(v: f64) -> String {
    match v.abs() {
        a if a.is_infinite() => "inf".into(),
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        a if a >= 1.0 => format!("{v:.2}"),
        a if a >= 0.01 => format!("{v:.3}"),
        0.0 => "0".into(),
        _ => format!("{v:.1e}"),
    }
}

/// A fraction as a percentage for tables: `12.3%`, `0.41%`, `<0.01%`.
pub fn percent(fraction: f64) -> String {
    let p = 100.0 * fraction;
    match p {
        p if p >= 10.0 => format!("{p:.1}%"),
        p if p >= 0.01 => format!("{p:.2}%"),
        p if p > 0.0 => "<0.01%".into(),
        _ => "0%".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEAKS: Peaks = Peaks {
        gflops: 100.0,
        gbps: 25.0,
    };

    #[test]
    fn ridge_point_is_peak_flops_over_peak_bandwidth() {
        // 100 GFLOP/s over 25 GB/s: 4 FLOP must come with each byte to keep up.
        assert_eq!(PEAKS.ridge_point(), 4.0);
    }

    #[test]
    fn fractions_and_bound_of_a_memory_bound_kernel() {
        // 2 GFLOP and 1 GB in 0.1 s: 20 GFLOP/s (20% of 100), 10 GB/s (40% of 25),
        // intensity 2 FLOP/B < 4: memory-bound, at 40% of its roof.
        let a = PEAKS.attainment(2e9, 1e9, 0.1).unwrap();
        assert!((a.gflops - 20.0).abs() < 1e-12, "{a:?}");
        assert!((a.gbps - 10.0).abs() < 1e-12, "{a:?}");
        assert!((a.flop_fraction - 0.2).abs() < 1e-12, "{a:?}");
        assert!((a.bandwidth_fraction - 0.4).abs() < 1e-12, "{a:?}");
        assert_eq!(a.intensity, 2.0);
        assert_eq!(a.bound, Bound::Memory);
        assert!((a.of_roof() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn fractions_and_bound_of_a_compute_bound_kernel() {
        // 8 GFLOP and 1 GB in 0.2 s: 40 GFLOP/s (40%), 5 GB/s (20%), 8 FLOP/B > 4.
        let a = PEAKS.attainment(8e9, 1e9, 0.2).unwrap();
        assert!((a.flop_fraction - 0.4).abs() < 1e-12, "{a:?}");
        assert!((a.bandwidth_fraction - 0.2).abs() < 1e-12, "{a:?}");
        assert_eq!(a.intensity, 8.0);
        assert_eq!(a.bound, Bound::Compute);
        assert!((a.of_roof() - 0.4).abs() < 1e-12);
        // Exactly at the ridge (4 FLOP/B) both roofs meet; it counts as compute-bound.
        assert_eq!(PEAKS.bound(4e9, 1e9), Some(Bound::Compute));
        assert_eq!(PEAKS.bound(3.999e9, 1e9), Some(Bound::Memory));
    }

    #[test]
    fn work_without_bytes_or_flops_has_one_bound_and_no_work_none() {
        let copy = PEAKS.attainment(0.0, 1e9, 0.1).unwrap();
        assert_eq!((copy.bound, copy.intensity), (Bound::Memory, 0.0));
        assert_eq!(copy.flop_fraction, 0.0);
        let fma = PEAKS.attainment(1e9, 0.0, 0.1).unwrap();
        assert_eq!((fma.bound, fma.intensity), (Bound::Compute, f64::INFINITY));
        assert_eq!(PEAKS.attainment(0.0, 0.0, 0.1), None);
        assert_eq!(PEAKS.attainment(1e9, 1e9, 0.0), None);
    }

    #[test]
    fn best_time_is_the_slower_of_the_two_roofs() {
        // 2 GFLOP at 100 GFLOP/s: 0.02 s; 1 GB at 25 GB/s: 0.04 s.
        assert!((PEAKS.best_seconds(2e9, 1e9) - 0.04).abs() < 1e-15);
        // 49.09056 GFLOP (an MNIST epoch of 784-256-10) and 1 GB: 0.4909 s.
        assert!((PEAKS.best_seconds(49_090_560_000.0, 1e9) - 0.4909056).abs() < 1e-12);
    }

    #[test]
    fn numbers_print_with_three_digits_and_percentages() {
        assert_eq!(three_digits(1234.4), "1234");
        assert_eq!(three_digits(12.345), "12.3");
        assert_eq!(three_digits(f64::INFINITY), "inf");
        assert_eq!(percent(0.123), "12.3%");
        assert_eq!(percent(0.0041), "0.41%");
        assert_eq!(percent(0.00001), "<0.01%");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(
            PEAKS.to_string(),
            "100 GFLOP/s, 25.0 GB/s, ridge point 4.00 FLOP/B"
        );
    }
}
