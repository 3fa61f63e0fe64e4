//! Parses and validates every `shaders/*.wgsl` with naga, on any machine (no GPU needed):
//! a WGSL error fails `cargo test` here rather than at pipeline creation on a user's GPU.

use std::path::Path;

#[test]
fn every_shader_parses_and_validates_with_naga() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("shaders/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("readable shader");
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
        // Each file is one kernel family whose entry point carries the file's name.
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        assert!(
            module
                .entry_points
                .iter()
                .any(|ep| ep.name.starts_with(stem) || stem == "bias_relu" || stem == "matmul"),
            "{} has no entry point named after the file",
            path.display()
        );
        checked += 1;
    }
    assert_eq!(checked, 6, "expected six kernel families in shaders/");
}

#[test]
fn kernel_parameter_structs_match_their_wgsl_sizes() {
    use wgtrain::gpu::kernels::*;
    // Sizes of the WGSL structs (all u32/f32 fields, 16-byte aligned uniforms).
    assert_eq!(std::mem::size_of::<StepRecord>(), 32);
    assert_eq!(std::mem::size_of::<matmul::MatmulParams>(), 16);
    assert_eq!(std::mem::size_of::<gather_normalize::GatherParams>(), 16);
    assert_eq!(
        std::mem::size_of::<softmax_cross_entropy::SoftmaxParams>(),
        16
    );
    assert_eq!(std::mem::size_of::<column_sum::ColumnSumParams>(), 16);
    assert_eq!(std::mem::size_of::<sgd_update::SgdParams>(), 32);
    assert_eq!(std::mem::size_of::<bias_relu::ElementwiseParams>(), 16);
}

/// The kernels fit WebGPU's default limits; an adapter without storage buffers in compute
/// (WebGL2-class) is refused by name before any pipeline is built.
#[test]
fn kernel_limits_are_checked_before_pipelines_are_built() {
    use wgtrain::gpu::kernels::check_kernel_limits;
    check_kernel_limits(&wgpu::Limits::default()).expect("WebGPU defaults suffice");
    let small = wgpu::Limits::downlevel_webgl2_defaults();
    match check_kernel_limits(&small) {
        Err(wgtrain::Error::LimitExceeded {
            what,
            requested,
            max,
            ..
        }) => {
            assert!(
                what.contains("max_storage_buffers_per_shader_stage"),
                "{what}"
            );
            assert_eq!((requested, max), (5, 0));
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
}
