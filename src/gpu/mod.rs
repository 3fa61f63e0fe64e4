//! Everything that touches wgpu: the device ([`context`]), buffers and readback
//! ([`tensor`]), one wrapper module per WGSL kernel family ([`kernels`]), the GPU training
//! engine for K >= 1 members ([`engine`]), the profiler ([`profiler`]) and the probe of the
//! adapter's roofline peaks ([`roofline`]).

pub mod autotune;
pub mod context;
pub mod engine;
pub mod fusion;
pub mod kernels;
pub mod profiler;
pub mod roofline;
pub mod tensor;

pub use context::{
    AdapterSummary, Gpu, GpuOptions, ON_DEMAND_FEATURES, REQUESTED_FEATURES, candidate_adapters,
    is_software_adapter, list_adapters,
};
pub use fusion::Fusions;
pub use kernels::{Dispatch, Kernels, MatmulVariant, StepRecord};
pub use tensor::{GpuTensor, View};
