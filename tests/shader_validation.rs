//! Parses and validates every shader module the kernels build with naga, on any machine (no GPU needed):
//! a WGSL error fails `cargo test` here rather than at pipeline creation on a user's GPU.

use std::path::Path;

use wgtrain::gpu::REQUESTED_FEATURES;
use wgtrain::gpu::kernels::{FAMILIES, KernelFamily};

/// Parses and validates `source` the way wgpu-core does on a device with exactly
/// `features` (and no downlevel extras): the naga capabilities come from
/// `wgpu_naga_bridge::features_to_naga_capabilities`, wgpu's own mapping.
fn validate_as_built(source: &str, features: wgpu::Features) -> Result<(), String> {
    let caps =
        wgpu_naga_bridge::features_to_naga_capabilities(features, wgpu::DownlevelFlags::empty());
    let mut options = naga::front::wgsl::Options::new();
    options.capabilities = caps;
    let module = naga::front::wgsl::Frontend::new_with_options(options)
        .parse(source)
        .map_err(|e| e.emit_to_string(source))?;
    wgpu_naga_bridge::create_validator(
        features,
        wgpu::DownlevelFlags::empty(),
        naga::valid::ValidationFlags::all(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string(source))?;
    Ok(())
}

/// Issue 10 item 5: every module used to be validated with every naga capability, so a
/// shader needing one the device never gets (f16, 64-bit floats, ...) passed here and
/// failed on every GPU. Each module is now validated with the capabilities of the features
/// it is built with, and those must be features wgtrain requests.
#[test]
fn every_shader_validates_with_the_capabilities_it_is_built_with() {
    for KernelFamily {
        name,
        source,
        features,
        ..
    } in FAMILIES
    {
        assert!(
            REQUESTED_FEATURES.contains(features),
            "{name} needs {features:?}, which Gpu::new never requests"
        );
        validate_as_built(source, features).unwrap_or_else(|e| panic!("{name}: {e}"));
        let module = naga::front::wgsl::parse_str(source).expect("parsed above");
        // Each module is one kernel family whose entry points carry its name; a kernel's
        // gather version (`matmul_subgroup_gather`) keeps the kernel's entry point.
        assert!(
            module
                .entry_points
                .iter()
                .any(|ep| ep.name.starts_with(name)
                    || name.strip_suffix("_gather") == Some(ep.name.as_str())),
            "{name} has no entry point named after it"
        );
    }
}

/// The rule above can fail: a module needing a capability outside its features is refused
/// (f16 without SHADER_F16, the subgroup kernel without SUBGROUP), and is accepted with it.
#[test]
fn shader_needing_an_unrequested_capability_fails_validation() {
    let f16 = "enable f16;\n@group(0) @binding(0) var<storage, read_write> x: array<f16>;\n\
               @compute @workgroup_size(1) fn main() { x[0] = x[0] + 1.0h; }";
    assert!(validate_as_built(f16, wgpu::Features::empty()).is_err());
    assert!(validate_as_built(f16, wgpu::Features::SHADER_F16).is_ok());
    // SHADER_F16 is requested only on demand (`--precision f16`), never by default.
    assert!(wgtrain::gpu::ON_DEMAND_FEATURES.contains(wgpu::Features::SHADER_F16));
    let subgroup = FAMILIES
        .iter()
        .find(|m| m.name == "matmul_subgroup")
        .expect("the subgroup module is listed");
    assert!(validate_as_built(subgroup.source, wgpu::Features::empty()).is_err());
}

/// Every file in `shaders/` and `shaders/matmul/` (the matmul family's folder, issue 22) is
/// part of a module the kernels build, so none goes stale unvalidated.
#[test]
fn every_shader_file_is_built() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut counts = Vec::new();
    for dir in [root.clone(), root.join("matmul")] {
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("the shader folder exists") {
            let path = entry.expect("readable entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable shader");
            assert!(
                FAMILIES.iter().any(|m| m.source.contains(text.as_str())),
                "{} is not built into any kernel",
                path.display()
            );
            files += 1;
        }
        counts.push(files);
    }
    // Issue 22 moved the eleven matmul files into shaders/matmul/; the roofline probe added
    // shaders/roofline.wgsl: twenty-one files in all, ten of them in shaders/.
    assert_eq!(
        counts,
        [10, 11],
        "expected ten files in shaders/ and eleven in shaders/matmul/"
    );
}

/// Each family is named after its shader file (`shaders/<name>.wgsl`, and
/// `shaders/matmul/<name>.wgsl` for the matmul family's), so one grep finds the shader,
/// the wrapper module and the entry points.
#[test]
fn every_family_is_named_after_its_shader_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for family in FAMILIES {
        let (dir, other) = if family.name.starts_with("matmul") {
            (root.join("matmul"), root.clone())
        } else {
            (root.clone(), root.join("matmul"))
        };
        let file = dir.join(format!("{}.wgsl", family.name));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(family.source.ends_with(text.as_str()), "{}", family.name);
        let stray = other.join(format!("{}.wgsl", family.name));
        assert!(!stray.exists(), "{} has a second copy", stray.display());
    }
}

/// The size naga computes for the WGSL struct `name` in `source` (its span: the size a
/// uniform binding of it has).
fn wgsl_struct_size(source: &str, name: &str) -> usize {
    let module = naga::front::wgsl::parse_str(source).expect("the shaders parse");
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, ty)| ty.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no struct {name} in the module"));
    match ty.inner {
        naga::TypeInner::Struct { span, .. } => span as usize,
        ref other => panic!("{name} is {other:?}, not a struct"),
    }
}

/// Each `#[repr(C)]` parameter block has the size of the WGSL struct it mirrors, as naga
/// lays that struct out: a field added on one side only fails here.
#[test]
fn kernel_parameter_structs_match_their_wgsl_sizes() {
    use std::mem::size_of;
    use wgtrain::gpu::kernels::matmul::{gather as matmul_gather, tiled2d_subgroup};
    use wgtrain::gpu::kernels::*;
    // Issue 22: the learning rate and the first-step flag left the step record for the
    // per-member SGD table; offset, batch, index and padding are left.
    assert_eq!(size_of::<StepRecord>(), 16);
    for family in FAMILIES {
        assert_eq!(
            size_of::<StepRecord>(),
            wgsl_struct_size(family.source, "Step"),
            "StepRecord vs Step in {}",
            family.name
        );
    }
    let params = [
        (
            matmul::FAMILY,
            "MatmulParams",
            size_of::<matmul::MatmulParams>(),
        ),
        (
            matmul::SUBGROUP_FAMILY,
            "MatmulParams",
            size_of::<matmul::MatmulParams>(),
        ),
        (
            matmul::TILED2D_FAMILY,
            "MatmulParams",
            size_of::<matmul::MatmulParams>(),
        ),
        (
            tiled2d_subgroup::FAMILY,
            "MatmulParams",
            size_of::<matmul::MatmulParams>(),
        ),
        (
            matmul_gather::SUBGROUP_FAMILY,
            "MatmulParams",
            size_of::<matmul::MatmulParams>(),
        ),
        (
            matmul_gather::TILED2D_FAMILY,
            "GatherParams",
            size_of::<matmul_gather::GatherParams>(),
        ),
        (
            matmul_gather::SUBGROUP_FAMILY,
            "GatherParams",
            size_of::<matmul_gather::GatherParams>(),
        ),
        (
            matmul::f16::FAMILY,
            "MatmulF16Params",
            size_of::<matmul::f16::MatmulF16Params>(),
        ),
        (
            gather_normalize::FAMILY,
            "GatherNormalizeParams",
            size_of::<gather_normalize::GatherNormalizeParams>(),
        ),
        (
            softmax_cross_entropy::FAMILY,
            "SoftmaxCrossEntropyParams",
            size_of::<softmax_cross_entropy::SoftmaxCrossEntropyParams>(),
        ),
        (
            column_sum::FAMILY,
            "ColumnSumParams",
            size_of::<column_sum::ColumnSumParams>(),
        ),
        (
            sgd_update::FAMILY,
            "SgdUpdateParams",
            size_of::<sgd_update::SgdUpdateParams>(),
        ),
        (
            bias_relu::FAMILY,
            "BiasReluParams",
            size_of::<bias_relu::BiasReluParams>(),
        ),
        (
            roofline::FAMILY,
            "RooflineParams",
            size_of::<roofline::RooflineParams>(),
        ),
    ];
    for (family, wgsl, rust) in params {
        assert_eq!(rust, wgsl_struct_size(family.source, wgsl), "{wgsl}");
    }
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
