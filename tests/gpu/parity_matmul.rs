//! The matmul kernels (every variant: register, rows, tiled, subgroup, the 2-D tiled block
//! shapes) against the CPU reference
//! (`wgtrain::cpu`, f64 accumulation) over seeded random inputs and the shapes that break
//! kernels: 1x1, exactly the tile, tile ± 1, primes, ragged matmuls, batch 1, the MNIST
//! shapes, outliers, and grids past 65,535 workgroups; fused epilogues, the minibatch
//! dimension and the loop-cap chunking. Outputs are poisoned with NaN first, so an
//! unwritten element fails. (Split from `kernel_parity.rs`; the other kernel families are
//! in `parity_softmax_cross_entropy.rs` and `parity_elementwise.rs`.)

use crate::common;

use common::{assert_close, gpu, matmul_reference, record, uniform, with_outliers};
use wgtrain::cpu;
use wgtrain::gpu::kernels::matmul::{
    self, BatchDim, Epilogue, EpilogueOperands, MatmulLaunch, MatmulSpec, MatmulVariant,
};
use wgtrain::gpu::kernels::softmax_cross_entropy::LossMembers;
use wgtrain::gpu::kernels::{self, Dispatch, bias_relu, softmax_cross_entropy};
use wgtrain::gpu::{Gpu, GpuTensor, Kernels, View};

const ATOL: f32 = 1e-5;
const RTOL: f32 = 1e-4;

/// One launch of `spec` on `variant` ([`matmul::dispatch`]) with f32 operands: `bias` or
/// `mask` become the epilogue operands `spec.epilogue` reads (and are ignored otherwise).
#[allow(clippy::too_many_arguments)]
fn launch(
    g: &Gpu,
    kn: &Kernels,
    variant: MatmulVariant,
    label: &str,
    spec: MatmulSpec,
    a: View<'_>,
    b: View<'_>,
    bias: Option<View<'_>>,
    mask: Option<View<'_>>,
    c: View<'_>,
    dummy: View<'_>,
) -> wgtrain::Result<Dispatch> {
    let epilogue = match spec.epilogue {
        Epilogue::None => EpilogueOperands::None,
        Epilogue::Bias | Epilogue::BiasRelu => EpilogueOperands::Bias(bias.expect("a bias")),
        Epilogue::ReluMask => EpilogueOperands::Mask(mask.expect("a mask")),
        Epilogue::SgdUpdate => unreachable!("tested in fusion_update.rs"),
    };
    let launch = MatmulLaunch::new(spec, a, b, c, dummy).with_epilogue(epilogue);
    matmul::dispatch(g, kn, variant, label, launch)
}

/// Checks one matmul against the reference; false (nothing run) when `variant` does not run
/// on this device (`MatmulVariant::supports`).
#[allow(clippy::too_many_arguments)]
fn check_matmul(
    variant: MatmulVariant,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    trans_c: bool,
    epilogue: Epilogue,
    seed: u64,
) -> bool {
    let (g, kn) = gpu();
    check_matmul_on(
        g, kn, variant, m, n, k, trans_a, trans_b, trans_c, epilogue, seed,
    )
}

/// [`check_matmul`] on a given device (e.g. one with another loop cap).
#[allow(clippy::too_many_arguments)]
fn check_matmul_on(
    g: &Gpu,
    kn: &Kernels,
    variant: MatmulVariant,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    trans_c: bool,
    epilogue: Epilogue,
    seed: u64,
) -> bool {
    let spec = MatmulSpec {
        m,
        n,
        k,
        trans_a,
        trans_b,
        trans_c,
        epilogue,
        batch_dim: BatchDim::None,
    };
    if variant.supports(g).is_err() {
        return false;
    }
    let a = with_outliers(seed, m * k);
    let b = uniform(seed + 1, k * n, -1.0, 1.0);
    let bias = uniform(seed + 2, n, -1.0, 1.0);
    let mask = uniform(seed + 3, m * n, -1.0, 1.0);
    let ta = GpuTensor::upload(g, "a", &a, &[a.len()]).unwrap();
    let tb = GpuTensor::upload(g, "b", &b, &[b.len()]).unwrap();
    let tbias = GpuTensor::upload(g, "bias", &bias, &[n]).unwrap();
    let tmask = GpuTensor::upload(g, "mask", &mask, &[m * n]).unwrap();
    let tc = GpuTensor::poisoned(g, "c", &[m, n]).unwrap();
    let dummy = GpuTensor::upload(g, "dummy", &[0.0; 4], &[4]).unwrap();
    let d = launch(
        g,
        kn,
        variant,
        "test",
        spec,
        ta.view(),
        tb.view(),
        Some(tbias.view()),
        Some(tmask.view()),
        tc.view(),
        dummy.view(),
    )
    .unwrap();
    kernels::run(g, kn, &[d], record(m), 1).unwrap();
    let want = matmul_reference(&a, &b, &bias, &mask, &spec);
    // K terms of size up to 100 each: scale the absolute tolerance with the sum of |terms|.
    let atol = 1e-5 * (k as f32).sqrt() * 10.0;
    assert_close(
        &format!(
            "{variant} matmul {m}x{n}x{k} ta={trans_a} tb={trans_b} tc={trans_c} {epilogue:?}"
        ),
        &tc.read(g).unwrap(),
        &want,
        atol,
        RTOL,
    );
    true
}

/// The subgroup kernel must be tested wherever it can run; lavapipe (CI) has subgroups of 8.
fn subgroup_kernel_available() -> bool {
    let (g, _) = gpu();
    let yes = g.has_subgroups_of(matmul::SUBGROUP_SIZE);
    if !yes {
        eprintln!(
            "note: {} has no subgroups of {}; the subgroup kernel is not tested here",
            g.info.name,
            matmul::SUBGROUP_SIZE
        );
    }
    // lavapipe's subgroups are its native vector width over 32 bits: 8 at its default 256
    // (`llvmpipe (LLVM 15.0.6, 256 bits)`), 32 under LP_NATIVE_VECTOR_WIDTH=1024.
    assert!(
        yes || !(g.info.name.contains("llvmpipe") && g.info.name.contains(" 256 bits")),
        "lavapipe at 256 bits should offer subgroups of 8"
    );
    yes
}

/// Shapes: 1x1, tile (64) exactly, tile ± 1, primes, ragged, batch 1, MNIST.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (64, 64, 64),
    (63, 65, 64),
    (65, 63, 65),
    (7, 61, 1757),
    (5, 67, 3),
    (1, 1, 1757),
    (1, 256, 784),
    (64, 256, 784),
    (64, 10, 256),
    (61, 7, 61),
];

/// Extra shapes for the subgroup kernel around its 16x32 block, on top of SHAPES: exactly
/// one block, block ± 4, one row or column of vec4s, long and short K, K not a multiple of
/// 4, M not a multiple of 4 (element-wise stores of a transposed C), and the MNIST ones.
/// Operands whose contiguous axis holds a multiple of 4 are read as vec4, the others
/// element by element: between them the shapes take every combination.
const SUBGROUP_SHAPES: &[(usize, usize, usize)] = &[
    (4, 4, 4),
    (16, 32, 4),
    (20, 36, 8),
    (21, 36, 8),
    (5, 40, 12),
    (12, 28, 1756),
    (64, 256, 784),
    (256, 784, 64),
    (784, 256, 61),
    (60, 44, 3),
    (4, 8, 1),
    (68, 100, 40),
];

#[test]
fn matmul_matches_reference_for_every_variant_transpose_and_shape() {
    let mut seed = 10;
    for variant in MatmulVariant::ALL {
        if variant == MatmulVariant::Subgroup && !subgroup_kernel_available() {
            continue;
        }
        let mut shapes = SHAPES.to_vec();
        if variant == MatmulVariant::Subgroup {
            shapes.extend_from_slice(SUBGROUP_SHAPES);
        }
        let mut ran = 0;
        for &(m, n, k) in &shapes {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                seed += 1;
                ran += usize::from(check_matmul(
                    variant,
                    m,
                    n,
                    k,
                    ta,
                    tb,
                    false,
                    Epilogue::None,
                    seed,
                ));
                ran += usize::from(check_matmul(
                    variant,
                    m,
                    n,
                    k,
                    ta,
                    tb,
                    true,
                    Epilogue::None,
                    seed + 1000,
                ));
            }
        }
        assert_eq!(ran, shapes.len() * 8, "{variant} skipped shapes");
    }
}

/// Which operands the subgroup kernel reads as vec4: those whose contiguous axis holds a
/// multiple of 4 and is not the minibatch.
#[test]
fn subgroup_kernel_reads_vec4_only_along_whole_fixed_axes() {
    use matmul::vec4_operands;
    let spec = |m, n, k, trans_a, trans_b, batch_dim| MatmulSpec {
        m,
        n,
        k,
        trans_a,
        trans_b,
        trans_c: false,
        epilogue: Epilogue::None,
        batch_dim,
    };
    // (m, n, k, trans_a, trans_b, minibatch dimension, expected (a, b))
    let cases = [
        // Forward X·Wᵀ: both along K = 784.
        (64, 256, 784, false, true, BatchDim::M, (true, true)),
        // Input gradient dZ·W with 10 classes: A along K = 10, B along N = 256.
        (64, 256, 10, false, false, BatchDim::M, (false, true)),
        // Weight gradient dZᵀ·X: A along M = 10 or 256, B along N = 784; K is the
        // minibatch but contiguous in neither.
        (10, 784, 64, true, false, BatchDim::K, (false, true)),
        (256, 784, 64, true, false, BatchDim::K, (true, true)),
        // K the minibatch and contiguous: element by element, whatever its size.
        (64, 256, 64, false, true, BatchDim::K, (false, false)),
    ];
    for (m, n, k, ta, tb, batch_dim, want) in cases {
        let got = vec4_operands(&spec(m, n, k, ta, tb, batch_dim));
        assert_eq!(got, want, "{m}x{n}x{k} ta={ta} tb={tb} {batch_dim:?}");
    }
}

#[test]
fn matmul_epilogues_match_reference() {
    for variant in MatmulVariant::ALL {
        for &(m, n, k) in &[
            (64, 256, 784),
            (7, 61, 13),
            (1, 10, 256),
            (65, 3, 5),
            (21, 36, 8),
        ] {
            for ep in [Epilogue::Bias, Epilogue::BiasRelu, Epilogue::ReluMask] {
                check_matmul(variant, m, n, k, false, true, false, ep, 99);
                check_matmul(variant, m, n, k, false, false, false, ep, 98);
            }
        }
    }
}

/// The fused bias + ReLU epilogue equals the composed slow version (matmul, then the
/// separate bias_relu_forward kernel), and the fused ReLU mask equals relu_backward.
#[test]
fn fused_epilogues_equal_the_composed_kernels() {
    let (g, kn) = gpu();
    let (m, n, k) = (37, 70, 29);
    let a = uniform(1, m * k, -1.0, 1.0);
    let b = uniform(2, n * k, -1.0, 1.0);
    let bias = uniform(3, n, -1.0, 1.0);
    let h = uniform(4, m * n, -1.0, 1.0);
    let [ta, tb, tbias, th] =
        [&a, &b, &bias, &h].map(|v| GpuTensor::upload(g, "in", v, &[v.len()]).unwrap());
    let dummy = GpuTensor::upload(g, "dummy", &[0.0; 4], &[4]).unwrap();
    let fused = GpuTensor::poisoned(g, "fused", &[m, n]).unwrap();
    let plain = GpuTensor::poisoned(g, "plain", &[m, n]).unwrap();
    let composed = GpuTensor::poisoned(g, "composed", &[m, n]).unwrap();
    let v = MatmulVariant::Register;
    let spec = |epilogue| MatmulSpec {
        m,
        n,
        k,
        trans_a: false,
        trans_b: true,
        trans_c: false,
        epilogue,
        batch_dim: BatchDim::None,
    };
    let d = vec![
        launch(
            g,
            kn,
            v,
            "fused",
            spec(Epilogue::BiasRelu),
            ta.view(),
            tb.view(),
            Some(tbias.view()),
            None,
            fused.view(),
            dummy.view(),
        )
        .unwrap(),
        launch(
            g,
            kn,
            v,
            "plain",
            spec(Epilogue::None),
            ta.view(),
            tb.view(),
            None,
            None,
            plain.view(),
            dummy.view(),
        )
        .unwrap(),
        bias_relu::forward(
            g,
            kn,
            "bias_relu",
            m,
            n,
            true,
            tbias.view(),
            plain.view(),
            dummy.view(),
        )
        .unwrap(),
    ];
    kernels::run(g, kn, &d, record(m), 1).unwrap();
    assert_close(
        "bias+relu fused vs composed",
        &fused.read(g).unwrap(),
        &plain.read(g).unwrap(),
        0.0,
        0.0,
    );

    let d = vec![
        launch(
            g,
            kn,
            v,
            "fused",
            spec(Epilogue::ReluMask),
            ta.view(),
            tb.view(),
            None,
            Some(th.view()),
            fused.view(),
            dummy.view(),
        )
        .unwrap(),
        launch(
            g,
            kn,
            v,
            "plain",
            spec(Epilogue::None),
            ta.view(),
            tb.view(),
            None,
            None,
            plain.view(),
            dummy.view(),
        )
        .unwrap(),
        bias_relu::relu_backward(
            g,
            kn,
            "relu_backward",
            m,
            n,
            th.view(),
            plain.view(),
            composed.view(),
        )
        .unwrap(),
    ];
    kernels::run(g, kn, &d, record(m), 1).unwrap();
    assert_close(
        "relu mask fused vs composed",
        &fused.read(g).unwrap(),
        &composed.read(g).unwrap(),
        0.0,
        0.0,
    );
    let want = cpu::relu_backward(&cpu::matmul(&a, &b, m, n, k, false, true), &h);
    assert_close(
        "relu_backward vs reference",
        &composed.read(g).unwrap(),
        &want,
        ATOL,
        RTOL,
    );
}

/// The step record's minibatch size replaces M (or K): the last partial minibatch reuses
/// the launch sized for the full one, and rows past it are left alone.
#[test]
fn matmul_batch_dim_follows_the_step_record() {
    let (g, kn) = gpu();
    let (m_max, k) = (64, 20);
    // n = 33 is ragged; with n = 36 the subgroup kernel reads the weight gradient's A as vec4.
    for (variant, n) in MatmulVariant::ALL
        .into_iter()
        .flat_map(|v| [(v, 33), (v, 36)])
    {
        for batch in [1, 31, 64] {
            let a = uniform(5, m_max * k, -1.0, 1.0);
            let b = uniform(6, n * k, -1.0, 1.0);
            let ta = GpuTensor::upload(g, "a", &a, &[m_max, k]).unwrap();
            let tb = GpuTensor::upload(g, "b", &b, &[n, k]).unwrap();
            let tc = GpuTensor::poisoned(g, "c", &[m_max, n]).unwrap();
            let dummy = GpuTensor::upload(g, "dummy", &[0.0; 4], &[4]).unwrap();
            let spec = MatmulSpec {
                m: m_max,
                n,
                k,
                trans_a: false,
                trans_b: true,
                trans_c: false,
                epilogue: Epilogue::None,
                batch_dim: BatchDim::M,
            };
            if variant.supports(g).is_err() {
                assert!(!subgroup_kernel_available(), "{variant} refused X·Wᵀ");
                continue;
            }
            let d = launch(
                g,
                kn,
                variant,
                "t",
                spec,
                ta.view(),
                tb.view(),
                None,
                None,
                tc.view(),
                dummy.view(),
            )
            .unwrap();
            kernels::run(g, kn, &[d], record(batch), 1).unwrap();
            let got = tc.read(g).unwrap();
            let want = cpu::matmul(&a, &b, batch, n, k, false, true);
            assert_close(
                &format!("{variant} batch {batch}"),
                &got[..batch * n],
                &want,
                ATOL,
                RTOL,
            );
            assert!(
                got[batch * n..].iter().all(|v| v.is_nan()),
                "rows past the minibatch were written"
            );

            // Weight gradient: K is the minibatch.
            let x = uniform(7, m_max * k, -1.0, 1.0);
            let dy = uniform(8, m_max * n, -1.0, 1.0);
            let tx = GpuTensor::upload(g, "x", &x, &[m_max, k]).unwrap();
            let tdy = GpuTensor::upload(g, "dy", &dy, &[m_max, n]).unwrap();
            let tdw = GpuTensor::poisoned(g, "dw", &[n, k]).unwrap();
            let spec = MatmulSpec {
                m: n,
                n: k,
                k: m_max,
                trans_a: true,
                trans_b: false,
                trans_c: false,
                epilogue: Epilogue::None,
                batch_dim: BatchDim::K,
            };
            if variant.supports(g).is_err() {
                assert!(!subgroup_kernel_available());
                continue;
            }
            let d = launch(
                g,
                kn,
                variant,
                "t",
                spec,
                tdy.view(),
                tx.view(),
                None,
                None,
                tdw.view(),
                dummy.view(),
            )
            .unwrap();
            kernels::run(g, kn, &[d], record(batch), 1).unwrap();
            let want = cpu::matmul(&dy[..batch * n], &x[..batch * k], n, k, batch, true, false);
            assert_close(
                &format!("{variant} weight grad batch {batch}"),
                &tdw.read(g).unwrap(),
                &want,
                ATOL,
                RTOL,
            );
        }
    }
}

/// Row blocks past the 65,535-workgroup limit of one grid dimension fold into z: every
/// variant, with the last rows checked (a grid that stopped at 65,535 blocks leaves them NaN).
#[test]
fn regression_matmul_past_65535_row_blocks_folds_the_grid() {
    let (g, kn) = gpu();
    let dummy = GpuTensor::upload(g, "dummy", &[0.0; 4], &[4]).unwrap();
    for variant in MatmulVariant::ALL {
        let rows_per_block = (1 << 20) / variant.blocks(1 << 20, 1).1 as usize;
        let m = 65_536 * rows_per_block + 3;
        // N = K = 2 past 64-row blocks keeps A and C (M·K and M·N floats) under lavapipe's
        // 128 MiB binding.
        let (n, k) = if rows_per_block > 64 { (2, 2) } else { (4, 4) };
        let b = uniform(31, k * n, -1.0, 1.0);
        let tb = GpuTensor::upload(g, "b", &b, &[k * n]).unwrap();
        let spec = MatmulSpec {
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            trans_c: false,
            epilogue: Epilogue::None,
            batch_dim: BatchDim::None,
        };
        if variant.supports(g).is_err() {
            assert!(!subgroup_kernel_available());
            continue;
        }
        assert!(variant.blocks(m, n).1 > 65_535);
        let a = uniform(30, m * k, -1.0, 1.0);
        let ta = GpuTensor::upload(g, "a", &a, &[m * k]).unwrap();
        let tc = GpuTensor::poisoned(g, "c", &[m, n]).unwrap();
        let d = launch(
            g,
            kn,
            variant,
            "fold",
            spec,
            ta.view(),
            tb.view(),
            None,
            None,
            tc.view(),
            dummy.view(),
        )
        .unwrap();
        kernels::run(g, kn, &[d], record(m), 1).unwrap();
        let want = cpu::matmul(&a, &b, m, n, k, false, false);
        assert_close(
            &format!("{variant} {m} rows"),
            &tc.read(g).unwrap(),
            &want,
            ATOL,
            RTOL,
        );
    }
}

/// ones(1, K) · ones(K, 1) with `variant` on `g`: exactly K in f32 (K < 2^24).
fn ones_dot(g: &Gpu, kn: &Kernels, variant: MatmulVariant, k: usize) -> f32 {
    let spec = MatmulSpec {
        m: 1,
        n: 1,
        k,
        trans_a: false,
        trans_b: false,
        trans_c: false,
        epilogue: Epilogue::None,
        batch_dim: BatchDim::None,
    };
    let ones = GpuTensor::upload(g, "ones", &vec![1.0; k], &[k]).unwrap();
    let c = GpuTensor::poisoned(g, "c", &[1, 1]).unwrap();
    let dummy = GpuTensor::upload(g, "dummy", &[0.0; 4], &[4]).unwrap();
    let d = launch(
        g,
        kn,
        variant,
        "ones_dot",
        spec,
        ones.view(),
        ones.view(),
        None,
        None,
        c.view(),
        dummy.view(),
    )
    .unwrap();
    kernels::run(g, kn, &[d], record(1), 1).unwrap();
    c.read(g).unwrap()[0]
}

/// Issue 10 item 2: llvmpipe stops every shader loop after 65,535 iterations (all loops of
/// an invocation together), silently: ones(1, K) · ones(K, 1) at K = 65,537 gave 65,535
/// (register, rows) and 58,255 (tiled); the subgroup kernel's vec4 loop broke past
/// 4 x 65,535. Long K is now summed in chunks, one dispatch each. The f64 reference is K
/// itself; random operands with every transpose check the chunked sum too.
#[test]
fn regression_loop_cap_matmul_past_65535_k_for_every_variant() {
    let (g, kn) = gpu();
    for variant in MatmulVariant::ALL {
        if variant.supports(g).is_err() {
            continue;
        }
        let mut ks = vec![65_537];
        if variant == MatmulVariant::Subgroup {
            ks.push(4 * 65_535 + 7); // past its vec4 loop's cliff
        }
        for k in ks {
            assert_eq!(ones_dot(g, kn, variant, k), k as f32, "{variant} K={k}");
        }
        // Random operands in the weight-gradient layout (Aᵀ, C stored transposed) and the
        // forward one with its fused epilogue. The tiled kernel (27 chunks of 2,464 here,
        // about 6 s each on lavapipe) is checked on random operands under a small cap below.
        if variant != MatmulVariant::Tiled {
            check_matmul(variant, 3, 5, 65_537, true, false, true, Epilogue::None, 11);
            check_matmul(
                variant,
                3,
                5,
                65_537,
                false,
                true,
                false,
                Epilogue::BiasRelu,
                12,
            );
        }
    }
    if g.info.name.contains("llvmpipe") {
        assert_eq!(g.loop_cap, Some(65_535), "lavapipe's loop cap is known");
    }
}

/// The chunking itself, on a device whose loop cap is overridden far below lavapipe's (as
/// `WGT_LOOP_CAP` does), so every variant (the 2-D tiled kernel with its smallest and
/// largest blocks) splits K = 1757 into several chunks: all
/// transposes and epilogues, a minibatch K shorter than the largest (later chunks skip), and
/// a cap too small for one chunk of the tiled kernel, refused with the limit named.
#[test]
fn regression_loop_cap_chunks_match_the_reference_under_a_small_cap() {
    let mut g = wgtrain::gpu::Gpu::new(&wgtrain::gpu::GpuOptions::default()).unwrap();
    g.loop_cap = Some(300);
    let kn = wgtrain::gpu::Kernels::new(&g).unwrap();
    // Chunk lengths by hand from MatmulVariant::loop_passes: register L + 31 <= 300 -> 256,
    // rows L + 81 -> 208, subgroup L/4 + 161 -> 544, tiled2d 10·L/8 + 81 -> 160; tiled
    // needs 449 for one slice of 16.
    let tiled2d = MatmulVariant::Tiled2d(matmul::Tile2d::T64x64);
    assert_eq!(matmul::k_chunk_len(tiled2d, 300), Some(160));
    assert_eq!(matmul::k_chunk_len(tiled2d, 65_535), Some(52_352));
    assert_eq!(matmul::k_chunk_len(MatmulVariant::Register, 300), Some(256));
    assert_eq!(matmul::k_chunk_len(MatmulVariant::Rows, 300), Some(208));
    assert_eq!(matmul::k_chunk_len(MatmulVariant::Subgroup, 300), Some(544));
    assert_eq!(matmul::k_chunk_len(MatmulVariant::Tiled, 300), None);
    assert_eq!(
        matmul::k_chunk_len(MatmulVariant::Register, 65_535),
        Some(65_504)
    );
    assert_eq!(
        matmul::k_chunk_len(MatmulVariant::Tiled, 65_535),
        Some(2_464)
    );
    for variant in [
        MatmulVariant::Register,
        MatmulVariant::Rows,
        MatmulVariant::Subgroup,
        tiled2d,
        MatmulVariant::Tiled2d(matmul::Tile2d::T128x128),
    ] {
        if variant.supports(&g).is_err() {
            continue;
        }
        assert_eq!(ones_dot(&g, &kn, variant, 1757), 1757.0, "{variant}");
        for (ta, tb, tc, ep) in [
            (false, false, false, Epilogue::None),
            (true, false, true, Epilogue::None),
            (true, false, false, Epilogue::None),
            (false, true, false, Epilogue::Bias),
            (false, true, false, Epilogue::BiasRelu),
            (false, false, false, Epilogue::ReluMask),
        ] {
            check_matmul_on(&g, &kn, variant, 21, 36, 1757, ta, tb, tc, ep, 13);
            check_matmul_on(&g, &kn, variant, 5, 7, 1757, ta, tb, tc, ep, 14);
        }
        // Weight gradient with K the minibatch: 1000 of at most 1757 rows.
        let (m, n, k_max, batch) = (9, 12, 1757, 1000);
        let x = uniform(15, k_max * n, -1.0, 1.0);
        let dy = uniform(16, k_max * m, -1.0, 1.0);
        let tx = GpuTensor::upload(&g, "x", &x, &[k_max, n]).unwrap();
        let tdy = GpuTensor::upload(&g, "dy", &dy, &[k_max, m]).unwrap();
        let tdw = GpuTensor::poisoned(&g, "dw", &[m, n]).unwrap();
        let dummy = GpuTensor::upload(&g, "dummy", &[0.0; 4], &[4]).unwrap();
        let spec = MatmulSpec {
            m,
            n,
            k: k_max,
            trans_a: true,
            trans_b: false,
            trans_c: false,
            epilogue: Epilogue::None,
            batch_dim: BatchDim::K,
        };
        let d = launch(
            &g,
            &kn,
            variant,
            "dw",
            spec,
            tdy.view(),
            tx.view(),
            None,
            None,
            tdw.view(),
            dummy.view(),
        )
        .unwrap();
        assert!(!d.splits.is_empty(), "{variant}: K = {k_max} is split");
        kernels::run(&g, &kn, &[d], record(batch), 1).unwrap();
        assert_close(
            &format!("{variant} weight gradient over a minibatch of {batch}"),
            &tdw.read(&g).unwrap(),
            &cpu::matmul(&dy[..batch * m], &x[..batch * n], m, n, batch, true, false),
            1e-4,
            RTOL,
        );
    }
    // The tiled kernel under a cap of 1000: 16 · floor((1000 - 26) / 423) = 32 per chunk,
    // so K = 1757 takes 55 chunks.
    g.loop_cap = Some(1000);
    assert_eq!(matmul::k_chunk_len(MatmulVariant::Tiled, 1000), Some(32));
    assert_eq!(
        ones_dot(&g, &kn, MatmulVariant::Tiled, 1757),
        1757.0,
        "tiled"
    );
    for (ta, tb, tc, ep) in [
        (true, false, true, Epilogue::None),
        (false, true, false, Epilogue::BiasRelu),
        (false, false, false, Epilogue::ReluMask),
    ] {
        check_matmul_on(
            &g,
            &kn,
            MatmulVariant::Tiled,
            65,
            7,
            1757,
            ta,
            tb,
            tc,
            ep,
            17,
        );
    }
    g.loop_cap = Some(300);
    // The tiled kernel cannot fit one slice of K under this cap: refused, naming the cap.
    let a = GpuTensor::upload(&g, "a", &[1.0; 64], &[64]).unwrap();
    let c = GpuTensor::poisoned(&g, "c", &[1, 1]).unwrap();
    let spec = MatmulSpec {
        m: 1,
        n: 1,
        k: 64,
        trans_a: false,
        trans_b: false,
        trans_c: false,
        epilogue: Epilogue::None,
        batch_dim: BatchDim::None,
    };
    let err = launch(
        &g,
        &kn,
        MatmulVariant::Tiled,
        "t",
        spec,
        a.view(),
        a.view(),
        None,
        None,
        c.view(),
        a.view(),
    )
    .expect_err("refused");
    match &err {
        wgtrain::Error::LimitExceeded {
            what,
            requested,
            max,
            unit,
            ..
        } => {
            assert_eq!((*requested, *max, *unit), (449, 300, "loop iterations"));
            assert!(
                what.contains("loop cap") && what.contains("WGT_LOOP_CAP"),
                "{what}"
            );
        }
        e => panic!("expected LimitExceeded, got {e}"),
    }
    // So is a softmax whose rows would run one invocation past the cap:
    // ceil(1000 / 256) = 4 rows x (3 * 100 + 3) + 1 = 1213 passes.
    let logits = GpuTensor::upload(&g, "l", &vec![0.0; 100_000], &[1000, 100]).unwrap();
    let bufs = softmax_cross_entropy::SoftmaxCrossEntropyBuffers {
        logits: logits.view(),
        labels: logits.view(),
        dlogits: logits.view(),
        rows: logits.view(),
        metrics: logits.view(),
        dbias: None,
    };
    let one = LossMembers::ONE;
    match softmax_cross_entropy::dispatch(&g, &kn, "t", bufs, 1000, 100, true, one, None) {
        Err(wgtrain::Error::LimitExceeded {
            requested,
            max,
            hint,
            ..
        }) => {
            assert_eq!((requested, max), (1213, 300));
            assert!(hint.contains("--batch-size"), "{hint}");
        }
        other => panic!("expected LimitExceeded, got {:?}", other.map(|_| ())),
    }
}

/// The 2-D tiled kernels on shapes their 64- and 128-wide blocks and 8-deep slices do not
/// divide (1x1x1, one past a block, K not a multiple of 8 or of 4, a single row or column)
/// and on one whose operands are all whole vec4s (`vec4_operands`), every transpose, C
/// transposed, and every epilogue. The smallest and largest blocks (128x64 shares their
/// code, and runs in every test that iterates `MatmulVariant::ALL`); each combination is a
/// pipeline lavapipe compiles, so the list stays short.
#[test]
fn tiled2d_matches_reference_where_blocks_do_not_divide_the_shape() {
    let shapes = [
        (1, 1, 1),
        (65, 67, 63),
        (129, 1, 257),
        (1, 129, 17),
        (130, 131, 9),
        (68, 132, 36),
    ];
    let mut seed = 500;
    for tile in [matmul::Tile2d::T64x64, matmul::Tile2d::T128x128] {
        let variant = MatmulVariant::Tiled2d(tile);
        for &(m, n, k) in &shapes {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                seed += 1;
                assert!(check_matmul(
                    variant,
                    m,
                    n,
                    k,
                    ta,
                    tb,
                    false,
                    Epilogue::None,
                    seed
                ));
                check_matmul(variant, m, n, k, ta, tb, true, Epilogue::None, seed + 1);
            }
            for ep in [Epilogue::Bias, Epilogue::BiasRelu, Epilogue::ReluMask] {
                check_matmul(variant, m, n, k, false, true, false, ep, seed + 2);
            }
        }
    }
}

/// Every variant sums each output element in one invocation over k ascending with `fma`
/// from zero, so without a split of K they give the same bits: the 2-D tiled kernel (whose
/// slices pad K past its end with +0 · -0, the identity of addition) against the register
/// kernel, on shapes its blocks and slices do not divide, every transpose.
#[test]
fn tiled2d_gives_the_register_kernels_bits() {
    let (g, kn) = gpu();
    for &(m, n, k) in &[(65, 67, 63), (7, 130, 20), (3, 5, 1)] {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let spec = MatmulSpec {
                m,
                n,
                k,
                trans_a: ta,
                trans_b: tb,
                trans_c: false,
                epilogue: Epilogue::None,
                batch_dim: BatchDim::None,
            };
            let a = with_outliers(70, m * k);
            let b = uniform(71, k * n, -1.0, 1.0);
            let ta_ = GpuTensor::upload(g, "a", &a, &[a.len()]).unwrap();
            let tb_ = GpuTensor::upload(g, "b", &b, &[b.len()]).unwrap();
            let dummy = GpuTensor::upload(g, "dummy", &[0.0; 4], &[4]).unwrap();
            let out = |variant| {
                let c = GpuTensor::poisoned(g, "c", &[m, n]).unwrap();
                let d = launch(
                    g,
                    kn,
                    variant,
                    "bits",
                    spec,
                    ta_.view(),
                    tb_.view(),
                    None,
                    None,
                    c.view(),
                    dummy.view(),
                )
                .unwrap();
                kernels::run(g, kn, &[d], record(m), 1).unwrap();
                c.read(g).unwrap()
            };
            let want: Vec<u32> = out(MatmulVariant::Register)
                .iter()
                .map(|v| v.to_bits())
                .collect();
            for tile in matmul::Tile2d::ALL {
                let got: Vec<u32> = out(MatmulVariant::Tiled2d(tile))
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                assert!(
                    got == want,
                    "{tile:?} {m}x{n}x{k} ta={ta} tb={tb}: bits differ"
                );
            }
        }
    }
}
