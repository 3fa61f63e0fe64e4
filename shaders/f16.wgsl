// The f16 directive of the f16 kernel families (matmul_f16, convert_f16).
//
// Fragment: prepended first (a directive must precede every declaration) by the Rust
// wrappers of those families, which are built only on devices created with
// wgpu::Features::SHADER_F16 (src/gpu/kernels/matmul_f16.rs checks before building).

enable f16;
