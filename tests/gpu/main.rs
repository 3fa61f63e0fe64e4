//! Every GPU-side test in one test target (`cargo test --release --test gpu`): one link
//! instead of fifteen, one device and one MNIST load shared by all (`common::gpu`,
//! `common::mnist`), and one executable for the device kit (`scripts/device-kit.sh`). A
//! module per former test file; filter by module, e.g. `cargo test --release --test gpu
//! parity_matmul::`. The CPU halves of these files (finite differences, the CPU engine
//! against the reference) stay beside their GPU halves.

#[path = "../common/mod.rs"]
mod common;

mod eval;
mod fusion;
mod fusion_gather;
mod fusion_output;
mod fusion_update;
mod member_groups;
mod mixed_batch;
mod parity_elementwise;
mod parity_matmul;
mod parity_population;
mod parity_softmax_cross_entropy;
mod parity_subgroup_tiled;
mod population;
mod precision_f16;
mod profiler;
mod resources;
mod resume;
mod training;
