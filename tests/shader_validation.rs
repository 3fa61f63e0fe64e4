//! Parses and validates every shader module the kernels build with naga, on any machine (no GPU needed):
//! a WGSL error fails `cargo test` here rather than at pipeline creation on a user's GPU.

use std::path::Path;

#[test]
fn every_shader_parses_and_validates_with_naga() {
    for (name, source) in wgtrain::gpu::kernels::SOURCES {
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
        // Each module is one kernel family whose entry points carry its name.
        assert!(
            module
                .entry_points
                .iter()
                .any(|ep| ep.name.starts_with(name) || name == "bias_relu" || name == "matmul"),
            "{name} has no entry point named after it"
        );
    }
}

/// Every file in `shaders/` is part of a module the kernels build, so none goes stale
/// unvalidated.
#[test]
fn every_shader_file_is_built() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("shaders/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable shader");
        assert!(
            wgtrain::gpu::kernels::SOURCES
                .iter()
                .any(|(_, source)| source.contains(text.as_str())),
            "{} is not built into any kernel",
            path.display()
        );
        files += 1;
    }
    assert_eq!(files, 9, "expected nine files in shaders/");
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
