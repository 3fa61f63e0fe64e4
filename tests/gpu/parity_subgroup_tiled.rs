//! The subgroup 2-D tiled matmul (`MatmulVariant::Tiled2dSubgroup`,
//! `shaders/matmul/matmul_tiled2d_subgroup.wgsl`) against the CPU reference (`wgtrain::cpu`, f64
//! accumulation) and the register kernel's bits, on lavapipe's 8-lane subgroups: shapes its
//! 64 x 256 block and 8-deep slices do not divide, every transpose of A, B and C, every
//! epilogue, K split under a small loop cap (with K the minibatch), and team widths other
//! than the adapter's: 4 (two teams per subgroup, shuffles), 16 and 32 (teams wider than
//! the subgroups the driver runs: the kernel must see it and read A without shuffles).
//! The variant also runs in every test of `parity_matmul.rs` and `parity_population.rs`
//! that iterates `MatmulVariant::ALL` (shapes, batch dimension, members, grids past 65,535
//! workgroups, K past lavapipe's loop cap). Outputs are poisoned with NaN first, so an
//! unwritten element fails.

use crate::common;

use common::{assert_close, gpu, matmul_reference, record, uniform, with_outliers};
use wgtrain::cpu;
use wgtrain::gpu::kernels::matmul::tiled2d_subgroup as sg_tiled;
use wgtrain::gpu::kernels::matmul::{
    self, BatchDim, Epilogue, EpilogueOperands, MatmulLaunch, MatmulSpec, MatmulVariant,
};
use wgtrain::gpu::kernels::{self, Dispatch};
use wgtrain::gpu::{Gpu, GpuOptions, GpuTensor, Kernels, View};

const V: MatmulVariant = MatmulVariant::Tiled2dSubgroup;
const RTOL: f32 = 1e-4;

fn spec(m: usize, n: usize, k: usize, t: (bool, bool, bool), epilogue: Epilogue) -> MatmulSpec {
    MatmulSpec {
        m,
        n,
        k,
        trans_a: t.0,
        trans_b: t.1,
        trans_c: t.2,
        epilogue,
        batch_dim: BatchDim::None,
    }
}

/// One launch of `s` on `variant` ([`matmul::dispatch`]) with f32 operands: `bias` or
/// `mask` become the epilogue operands `s.epilogue` reads (and are ignored otherwise).
#[allow(clippy::too_many_arguments)]
fn launch(
    g: &Gpu,
    kn: &Kernels,
    variant: MatmulVariant,
    label: &str,
    s: MatmulSpec,
    a: View<'_>,
    b: View<'_>,
    bias: Option<View<'_>>,
    mask: Option<View<'_>>,
    c: View<'_>,
    dummy: View<'_>,
) -> wgtrain::Result<Dispatch> {
    let epilogue = match s.epilogue {
        Epilogue::None => EpilogueOperands::None,
        Epilogue::Bias | Epilogue::BiasRelu => EpilogueOperands::Bias(bias.expect("a bias")),
        Epilogue::ReluMask => EpilogueOperands::Mask(mask.expect("a mask")),
        Epilogue::SgdUpdate => unreachable!("tested in fusion_update.rs"),
    };
    let launch = MatmulLaunch::new(s, a, b, c, dummy).with_epilogue(epilogue);
    matmul::dispatch(g, kn, variant, label, launch)
}

/// Runs `variant` on `g` for `s` over seeded operands (A with outliers) and returns C and
/// the reference.
fn run(
    g: &Gpu,
    kn: &Kernels,
    variant: MatmulVariant,
    s: MatmulSpec,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let (m, n, k) = (s.m, s.n, s.k);
    let a = with_outliers(seed, m * k);
    let b = uniform(seed + 1, k * n, -1.0, 1.0);
    let bias = uniform(seed + 2, n, -1.0, 1.0);
    let mask = uniform(seed + 3, m * n, -1.0, 1.0);
    let up = |label, v: &[f32]| GpuTensor::upload(g, label, v, &[v.len()]).unwrap();
    let (ta, tb, tbias, tmask) = (
        up("a", &a),
        up("b", &b),
        up("bias", &bias),
        up("mask", &mask),
    );
    let tc = GpuTensor::poisoned(g, "c", &[m, n]).unwrap();
    let dummy = up("dummy", &[0.0; 4]);
    let d = launch(
        g,
        kn,
        variant,
        "test",
        s,
        ta.view(),
        tb.view(),
        Some(tbias.view()),
        Some(tmask.view()),
        tc.view(),
        dummy.view(),
    )
    .unwrap();
    kernels::run(g, kn, &[d], record(m), 1).unwrap();
    (
        tc.read(g).unwrap(),
        matmul_reference(&a, &b, &bias, &mask, &s),
    )
}

/// [`run`] for the subgroup 2-D tiled kernel, checked against the reference.
fn check(g: &Gpu, kn: &Kernels, s: MatmulSpec, seed: u64) {
    let (got, want) = run(g, kn, V, s, seed);
    // K terms of size up to 100 each: scale the absolute tolerance with the sum of |terms|.
    let atol = 1e-4 * (s.k as f32).sqrt();
    let w = sg_tiled::team_width(g).unwrap();
    assert_close(&format!("width {w} {s:?}"), &got, &want, atol, RTOL);
}

const TRANSPOSES: [(bool, bool, bool); 8] = [
    (false, false, false),
    (false, true, false),
    (true, false, false),
    (true, true, false),
    (false, false, true),
    (false, true, true),
    (true, false, true),
    (true, true, true),
];

/// A device like the shared one but whose smallest (and largest) subgroup size reads
/// `width`, so the kernel is built for teams of `width` lanes while lavapipe still runs
/// subgroups of 8.
fn device_with_width(width: u32) -> (Gpu, Kernels) {
    let mut g = Gpu::new(&GpuOptions::default()).unwrap();
    g.info.subgroup_min_size = width;
    g.info.subgroup_max_size = width.max(g.info.subgroup_max_size);
    let kn = Kernels::new(&g).unwrap();
    (g, kn)
}

/// lavapipe runs the kernel (subgroups of 8: teams of 8); a test that could not run it
/// would prove nothing.
fn assert_runs_here(g: &Gpu) {
    assert!(
        V.supports(g).is_ok() || !g.info.name.contains("llvmpipe"),
        "lavapipe should run the subgroup 2-D tiled kernel: {:?}",
        V.supports(g)
    );
}

/// Shapes the 64 x 256 block and the 8-deep slices do not divide (one past a block in M
/// and N, K not a multiple of 8 or 4, one row, one column, several column blocks), and one
/// whose operands are all whole vec4s; every transpose of A, B and C, and every epilogue.
#[test]
fn tiled2d_subgroup_matches_reference_on_ragged_shapes_transposes_and_epilogues() {
    let (g, kn) = gpu();
    assert_runs_here(g);
    if V.supports(g).is_err() {
        return;
    }
    // (m, n, k, with the epilogues)
    let shapes = [
        (1, 1, 1, false),
        (65, 257, 9, true),
        (70, 1, 33, false),
        (68, 516, 36, true),
    ];
    let mut seed = 900;
    for &(m, n, k, epilogues) in &shapes {
        for t in TRANSPOSES {
            seed += 1;
            check(g, kn, spec(m, n, k, t, Epilogue::None), seed);
        }
        if epilogues {
            for ep in [Epilogue::Bias, Epilogue::BiasRelu, Epilogue::ReluMask] {
                seed += 1;
                check(g, kn, spec(m, n, k, (false, true, false), ep), seed);
                check(g, kn, spec(m, n, k, (false, false, false), ep), seed + 1);
            }
        }
    }
}

/// Team widths other than the adapter's, on lavapipe's subgroups of 8: 4 (two teams in
/// each subgroup: the shuffles' source lanes offset within it), 16 and 32 (the width the
/// kernel is designed for: wider than the subgroups lavapipe runs, so the kernel must
/// detect it and read op(A) directly; shuffling across a team split over two subgroups
/// would read undefined values). Each transpose of A and B, C transposed too, a ragged and
/// a whole-vec4 shape, an epilogue, and the bits of the register kernel.
#[test]
fn tiled2d_subgroup_is_correct_for_team_widths_the_driver_did_not_pick() {
    let (g0, _) = gpu();
    if V.supports(g0).is_err() {
        assert_runs_here(g0);
        return;
    }
    for width in [4, 16, 32] {
        let (g, kn) = device_with_width(width);
        assert_eq!(sg_tiled::team_width(&g), Ok(width));
        let mut seed = 1000 + u64::from(width);
        // Each transpose of A and B once, C transposed in two of them.
        for t in [TRANSPOSES[0], TRANSPOSES[5], TRANSPOSES[6], TRANSPOSES[3]] {
            seed += 1;
            check(&g, &kn, spec(67, 260, 19, t, Epilogue::None), seed);
        }
        check(
            &g,
            &kn,
            spec(64, 256, 32, (false, true, false), Epilogue::BiasRelu),
            7,
        );
        // Same bits as the register kernel (one fma chain per output, k ascending).
        let s = spec(66, 70, 21, (true, true, false), Epilogue::None);
        let (got, _) = run(&g, &kn, V, s, 77);
        let (want, _) = run(&g, &kn, MatmulVariant::Register, s, 77);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&got) == bits(&want), "width {width}: bits differ");
    }
}

/// Without a split of K, the kernel gives the register kernel's bits at the adapter's own
/// width: each output is one fma chain over k ascending from zero, padded past K with
/// +0 · -0 (the identity of addition).
#[test]
fn tiled2d_subgroup_gives_the_register_kernels_bits() {
    let (g, kn) = gpu();
    if V.supports(g).is_err() {
        assert_runs_here(g);
        return;
    }
    for &(m, n, k) in &[(65, 67, 63), (7, 300, 20), (3, 5, 1)] {
        for t in TRANSPOSES {
            let s = spec(m, n, k, t, Epilogue::None);
            let (got, _) = run(g, kn, V, s, 70);
            let (want, _) = run(g, kn, MatmulVariant::Register, s, 70);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(bits(&got) == bits(&want), "{m}x{n}x{k} {t:?}: bits differ");
        }
    }
}

/// K summed in chunks under a loop cap far below lavapipe's (as `WGT_LOOP_CAP` sets it):
/// 144 of K per chunk (`11·⌈144/8⌉ + 81 = 279 <= 300`), so K = 1757 takes 13 launches:
/// transposes, epilogues (applied by the last chunk only), and a weight gradient whose K is
/// the minibatch (1000 of at most 1757: later chunks find nothing to add).
#[test]
fn tiled2d_subgroup_split_k_matches_reference_under_a_small_loop_cap() {
    let mut g = Gpu::new(&GpuOptions::default()).unwrap();
    if V.supports(&g).is_err() {
        assert_runs_here(&g);
        return;
    }
    g.loop_cap = Some(300);
    let kn = Kernels::new(&g).unwrap();
    assert_eq!(matmul::k_chunk_len(V, 300), Some(144));
    assert_eq!(matmul::k_chunks(&g, V, "t", 1757).unwrap().len(), 13);
    for (t, ep) in [
        ((false, false, false), Epilogue::None),
        ((true, false, true), Epilogue::None),
        ((false, true, false), Epilogue::BiasRelu),
        ((false, false, false), Epilogue::ReluMask),
    ] {
        check(&g, &kn, spec(21, 260, 1757, t, ep), 13);
    }
    // Weight gradient dW = dYᵀ·X with K the minibatch.
    let (m, n, k_max, batch) = (9, 12, 1757, 1000);
    let x = uniform(15, k_max * n, -1.0, 1.0);
    let dy = uniform(16, k_max * m, -1.0, 1.0);
    let tx = GpuTensor::upload(&g, "x", &x, &[k_max, n]).unwrap();
    let tdy = GpuTensor::upload(&g, "dy", &dy, &[k_max, m]).unwrap();
    let tdw = GpuTensor::poisoned(&g, "dw", &[m, n]).unwrap();
    let dummy = GpuTensor::upload(&g, "dummy", &[0.0; 4], &[4]).unwrap();
    let s = MatmulSpec {
        batch_dim: BatchDim::K,
        ..spec(m, n, k_max, (true, false, false), Epilogue::None)
    };
    let d = launch(
        &g,
        &kn,
        V,
        "dw",
        s,
        tdy.view(),
        tx.view(),
        None,
        None,
        tdw.view(),
        dummy.view(),
    )
    .unwrap();
    assert_eq!(d.splits.len(), 12, "K = {k_max} is split into 13 chunks");
    kernels::run(&g, &kn, &[d], record(batch), 1).unwrap();
    assert_close(
        "weight gradient over a minibatch of 1000",
        &tdw.read(&g).unwrap(),
        &cpu::matmul(&dy[..batch * m], &x[..batch * n], m, n, batch, true, false),
        1e-4,
        RTOL,
    );
}

/// Which adapters run it, and who times it: refused (with the reason) without subgroups
/// or with a smallest subgroup wider than 32; timed by autotune on GPUs, never on CPU
/// adapters (lavapipe's candidates stay subgroup and rows, so its start-up does not grow).
#[test]
fn tiled2d_subgroup_support_and_candidates() {
    let mut g = Gpu::new(&GpuOptions::default()).unwrap();
    if g.is_cpu_adapter() {
        assert!(!MatmulVariant::candidates(&g).contains(&V));
    }
    if g.has_subgroups_of(matmul::SUBGROUP_SIZE) {
        assert_eq!(
            MatmulVariant::candidates(&g),
            &[MatmulVariant::Subgroup, MatmulVariant::Rows]
        );
    }
    assert_eq!(V.to_string(), "tiled2d-subgroup");
    g.info.device_type = wgpu::DeviceType::DiscreteGpu;
    g.info.subgroup_min_size = 32;
    g.info.subgroup_max_size = 32;
    assert!(MatmulVariant::candidates(&g).contains(&V));
    assert_eq!(V.blocks(65, 257), (2, 2));
    g.info.subgroup_min_size = 64;
    g.info.subgroup_max_size = 64;
    let err = V.supports(&g).unwrap_err();
    assert!(
        err.contains("64") && err.contains("power of two from 4 to 32"),
        "{err}"
    );
    g.features.remove(wgpu::Features::SUBGROUP);
    let err = V.supports(&g).unwrap_err();
    assert!(err.contains("subgroup operations"), "{err}");
    g.features.insert(wgpu::Features::SUBGROUP);
    g.info.subgroup_min_size = 32;
    g.limits.max_compute_workgroup_storage_size = 8192;
    let err = V.supports(&g).unwrap_err();
    assert!(
        err.contains("max_compute_workgroup_storage_size >= 16384"),
        "{err}"
    );
}

/// ones(1, K) · ones(K, 1): exactly K in f32.
fn ones_dot(g: &Gpu, kn: &Kernels, k: usize) -> (f32, usize) {
    let s = spec(1, 1, k, (false, false, false), Epilogue::None);
    let ones = GpuTensor::upload(g, "ones", &vec![1.0; k], &[k]).unwrap();
    let c = GpuTensor::poisoned(g, "c", &[1, 1]).unwrap();
    let d = launch(
        g,
        kn,
        V,
        "ones_dot",
        s,
        ones.view(),
        ones.view(),
        None,
        None,
        c.view(),
        ones.view(),
    )
    .unwrap();
    let launches = d.splits.len() + 1;
    kernels::run(g, kn, &[d], record(1), 1).unwrap();
    (c.read(g).unwrap()[0], launches)
}

/// lavapipe's real loop cap (65,535 passes per invocation, silently): the longest chunk
/// `loop_passes` allows, 47,600 of K, runs whole in one launch (its first model, 10 passes
/// per slice, allowed 52,352 and the sum stopped at 47,664: the k loop of the path not
/// taken costs a pass too), and one more slice of 16 takes two.
#[test]
fn regression_tiled2d_subgroup_longest_chunk_fits_lavapipes_loop_cap() {
    let (g, kn) = gpu();
    if V.supports(g).is_err() {
        assert_runs_here(g);
        return;
    }
    let Some(cap) = g.loop_cap else {
        return; // no loop cap on this adapter: nothing to check
    };
    let len = matmul::k_chunk_len(V, cap).unwrap();
    if cap == 65_535 {
        assert_eq!(len, 47_600);
    }
    assert_eq!(ones_dot(g, kn, len), (len as f32, 1));
    assert_eq!(ones_dot(g, kn, len + 16), ((len + 16) as f32, 2));
}

/// lavapipe's subgroups hold its native vector width over 32 bits, the width its adapter
/// name gives (`llvmpipe (LLVM 15.0.6, 256 bits)`: 8 lanes), and the kernel's teams are
/// the smallest subgroup. The 32-lane leg of `scripts/test.sh` sets
/// `LP_NATIVE_VECTOR_WIDTH=1024` to run this file on subgroups of 32, NVIDIA's width: a
/// lavapipe that ignored the variable would leave the leg testing 8 lanes again, and a
/// test device that did not take a GPU's candidates (`WGTRAIN_TEST_AS_DISCRETE_GPU`) would
/// leave autotuning on lavapipe's.
#[test]
fn subgroups_and_teams_have_the_adapters_width() {
    let (g, _) = gpu();
    let (min, max) = (g.info.subgroup_min_size, g.info.subgroup_max_size);
    if g.info.name.contains("llvmpipe") {
        let bits: u32 = g
            .info
            .name
            .split([',', '('])
            .find_map(|part| part.trim().strip_suffix(" bits)")?.parse().ok())
            .unwrap_or_else(|| panic!("no vector width in {:?}", g.info.name));
        if let Ok(width) = std::env::var("LP_NATIVE_VECTOR_WIDTH") {
            assert_eq!(
                bits.to_string(),
                width,
                "{}: LP_NATIVE_VECTOR_WIDTH ignored",
                g.info.name
            );
        }
        assert_eq!((min, max), (bits / 32, bits / 32), "{}", g.info.name);
        assert_eq!(sg_tiled::team_width(g), Ok(bits / 32));
    } else if V.supports(g).is_ok() {
        assert_eq!(sg_tiled::team_width(g), Ok(min));
    }
    let gpu_candidates = MatmulVariant::candidates(g).contains(&V);
    if std::env::var_os(common::AS_DISCRETE_GPU).is_some() {
        assert!(gpu_candidates, "{:?}", MatmulVariant::candidates(g));
        assert_eq!(
            MatmulVariant::default_for(g),
            MatmulVariant::Tiled2d(matmul::Tile2d::T64x64)
        );
    } else if g.is_cpu_adapter() {
        assert!(!gpu_candidates, "{:?}", MatmulVariant::candidates(g));
    }
}
