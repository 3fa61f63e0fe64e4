//! The Chrome Trace Event JSON of a [`Profile`] (Perfetto, chrome://tracing): the kernel
//! track, the host track and the run's metadata, and the file `--trace` writes.

use std::path::Path;

use serde_json::{Value, json};

use super::Profile;
use crate::error::{Error, Result};

/// Track (Chrome trace `tid`) of the kernel events.
const KERNEL_TID: u32 = 1;
/// Track of the host-side spans (encode, submit, wait, readback).
const HOST_TID: u32 = 2;

impl Profile {
    /// The Chrome Trace Event document (Perfetto, chrome://tracing): one complete event
    /// (`"ph": "X"`, `ts`/`dur` in us) per valid measurement on the kernel track, one
    /// instant event per invalid one, and the host spans on their own track.
    pub fn trace_json(&self) -> Value {
        let host = self.mode.is_host_timed();
        let kernel_track = if host {
            "kernels (host-timed)".to_string()
        } else {
            format!("GPU kernels ({} timestamps)", self.mode)
        };
        let mut events = vec![
            json!({"name": "process_name", "ph": "M", "pid": 1, "tid": 0,
                   "args": {"name": format!("wgtrain profile: {}", self.adapter)}}),
            json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": KERNEL_TID,
                   "args": {"name": kernel_track}}),
            json!({"name": "thread_sort_index", "ph": "M", "pid": 1, "tid": KERNEL_TID,
                   "args": {"sort_index": 0}}),
            json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": HOST_TID,
                   "args": {"name": "host (encode, submit, wait, readback)"}}),
            json!({"name": "thread_sort_index", "ph": "M", "pid": 1, "tid": HOST_TID,
                   "args": {"sort_index": 1}}),
        ];
        for t in &self.timings {
            let d = &self.dispatches[t.dispatch];
            let mut name = format!("{} {}", d.kernel, d.label);
            if host {
                name.push_str(" (host-timed)");
            }
            let mut args = json!({
                "kernel": d.kernel,
                "label": d.label,
                "shape": d.shape,
                "step": t.step,
                "flops": d.flops,
                "bytes": d.bytes,
                "timing": self.mode.name(),
            });
            match t.duration_ns {
                Ok(ns) => events.push(json!({
                    "name": name, "cat": "kernel", "ph": "X",
                    "ts": t.start_ns / 1e3, "dur": ns / 1e3,
                    "pid": 1, "tid": KERNEL_TID, "args": args,
                })),
                Err(e) => {
                    args["invalid"] = json!(e.to_string());
                    events.push(json!({
                        "name": format!("{name} (invalid: {})", e.kind()), "cat": "invalid",
                        "ph": "i", "s": "t", "ts": t.start_ns / 1e3,
                        "pid": 1, "tid": KERNEL_TID, "args": args,
                    }));
                }
            }
        }
        for s in &self.host_spans {
            events.push(json!({
                "name": s.name, "cat": "host", "ph": "X",
                "ts": s.start_ns / 1e3, "dur": s.duration_ns / 1e3,
                "pid": 1, "tid": HOST_TID,
            }));
        }
        let summary = self.summary();
        json!({
            "traceEvents": events,
            "displayTimeUnit": "ms",
            "otherData": {
                "tool": "wgtrain profile",
                "adapter": self.adapter,
                "timing": self.mode.name(),
                "timing_description": self.mode.describe(),
                "timestamp_period_ns": self.timestamp_period_ns,
                "steps": self.steps,
                "warmup_steps": self.warmup_steps,
                "wall_ms": summary.wall_total_ms,
                "gpu_busy_ms": summary.busy_total_ms,
                "invalid_measurements": summary.invalid,
                "roofline_peaks": self.roofline,
                "notes": self.notes,
            },
        })
    }

    /// Writes [`Profile::trace_json`] to `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn write_trace(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(&self.trace_json()).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(path, text).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::profiler::tests::{info, profile};
    use crate::gpu::profiler::timings_from_ticks;

    #[test]
    fn trace_is_chrome_json_with_one_event_per_measurement_and_host_spans() {
        let d = vec![info("matmul_tiled", "train.layer0.forward", 10, 10)];
        let ticks = [100, 200, 300, 450, 500, 510];
        let p = profile(timings_from_ticks(&ticks, 1, 1.0, 0.0), d, 3);
        let text = serde_json::to_string(&p.trace_json()).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let events = v["traceEvents"].as_array().unwrap();
        let kernels: Vec<&Value> = events.iter().filter(|e| e["cat"] == "kernel").collect();
        assert_eq!(kernels.len(), 3);
        for e in &kernels {
            assert_eq!(e["ph"], "X");
            assert_eq!(e["name"], "matmul_tiled train.layer0.forward");
            assert_eq!(e["args"]["shape"], "M=1");
            assert!(e["dur"].as_f64().unwrap() > 0.0);
            assert_eq!(e["tid"], KERNEL_TID);
        }
        assert_eq!(kernels[1]["ts"].as_f64(), Some(0.2));
        assert_eq!(kernels[1]["dur"].as_f64(), Some(0.15));
        let host: Vec<&Value> = events.iter().filter(|e| e["cat"] == "host").collect();
        assert_eq!(host.len(), 1);
        assert_eq!(host[0]["tid"], HOST_TID);
    }
}
