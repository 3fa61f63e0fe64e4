// The per-step record, mirrored by `StepRecord` (src/step.rs): one per minibatch
// in a buffer written once per epoch, bound in group 1 with a dynamic offset.
//
// Fragment: the Rust side prepends this file to every kernel module (first, before
// matmul_common.wgsl where there is one). Expects nothing. Provides `struct Step` and the
// uniform `step` at @group(1) @binding(0); group 1 is this file's alone, and no other file
// may declare the names `Step` or `step`.

struct Step {
    offset: u32, // first position of this minibatch in the epoch's sample order
    batch: u32,  // B: samples in this minibatch (the last one of an epoch may be smaller)
    index: u32,  // this step's slot in the metrics buffer and row of the member-step table
    _pad0: u32,
}

@group(1) @binding(0) var<uniform> step: Step;
