//! The gather fusion (`Fusions::gather`): layer 0's forward product reads the minibatch's
//! u8 pixels through the sample order and normalises them in its operand loads
//! (the gather prologue, `matmul::gather`, `OperandA::Pixels`), instead of a
//! `gather_normalize` launch writing X first.
//!
//! The fused launch computes the same normalisation (`(pixel / 255 - mean) / std`, term
//! for term) and the same fma chains as the unfused pair, so everything is compared bit
//! for bit: the product, the X and y it stores, and a whole run's parameters and metrics.
//! Kernel level: every variant that reads pixels, ragged shapes (rows not a multiple of
//! any kernel's block, a partial minibatch through the step record, K not a multiple of 4)
//! and non-trivial normalisation; also against an f64 CPU product. With members (issue 22):
//! K members' layer-0 products from the shared pixels in one launch, each equal to its own
//! launch bit for bit, X and y stored once (by member 0) with the single launch's values,
//! up to a grid past 65,535 workgroups. Engine level: a few epochs with and without the
//! fusion.

use crate::common;

use common::{assert_close, gpu, integers, uniform};
use wgtrain::cpu;
use wgtrain::data::{Dataset, Normalization};
use wgtrain::engine::{Engine, EvalSet};
use wgtrain::gpu::engine::GpuEngine;
use wgtrain::gpu::kernels::matmul::gather::{self as matmul_gather, PixelSource};
use wgtrain::gpu::kernels::matmul::{
    BatchDim, Epilogue, EpilogueOperands, MatmulLaunch, MatmulMembers, MatmulSpec, OperandA, Tile2d,
};
use wgtrain::gpu::kernels::{self, Dispatch, gather_normalize, matmul};
use wgtrain::gpu::{Fusions, GpuTensor, MatmulVariant, StepRecord, View};
use wgtrain::{RunConfig, train};

/// The variants that read pixels and run on the test adapter.
fn pixel_variants() -> Vec<MatmulVariant> {
    let g = &gpu().0;
    let v: Vec<_> = [
        MatmulVariant::Subgroup,
        MatmulVariant::Tiled2d(Tile2d::T64x64),
        MatmulVariant::Tiled2d(Tile2d::T128x64),
        MatmulVariant::Tiled2d(Tile2d::T128x128),
    ]
    .into_iter()
    .filter(|v| v.supports(g).is_ok())
    .collect();
    assert!(!v.is_empty(), "no variant reads pixels on this adapter");
    v
}

fn u32_buffer(values: &[u32]) -> wgpu::Buffer {
    let g = &gpu().0;
    let buf = g
        .storage_buffer(
            "u32",
            (values.len() * 4) as u64,
            wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        )
        .unwrap();
    g.queue.write_buffer(&buf, 0, bytemuck::cast_slice(values));
    buf
}

fn read_u32(buf: &wgpu::Buffer, len: usize) -> Vec<u32> {
    let bytes = wgtrain::gpu::tensor::read_buffer(&gpu().0, "y", buf, 0, (len * 4) as u64);
    bytemuck::pod_collect_to_vec(&bytes.unwrap())
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

/// Layer 0's forward product of `spec` on `variant` for `members`, A read from the pixels
/// of `src` (the gather prologue), B the weights, the bias epilogue's `bias`.
fn fused_launch(
    variant: MatmulVariant,
    spec: MatmulSpec,
    members: MatmulMembers,
    src: PixelSource<'_>,
    [b, bias, c, dummy]: [View<'_>; 4],
) -> wgtrain::Result<Dispatch> {
    let (g, kn) = gpu();
    let launch = MatmulLaunch {
        spec,
        members,
        a: OperandA::Pixels(src),
        b,
        c,
        epilogue: EpilogueOperands::Bias(bias),
        dummy,
    };
    matmul::dispatch(g, kn, variant, "fused", launch)
}

/// The same product with A the f32 values `x` (after a `gather_normalize` launch).
fn unfused_launch(
    variant: MatmulVariant,
    spec: MatmulSpec,
    [x, b, bias, c, dummy]: [View<'_>; 5],
) -> wgtrain::Result<Dispatch> {
    let (g, kn) = gpu();
    let launch =
        MatmulLaunch::new(spec, x, b, c, dummy).with_epilogue(EpilogueOperands::Bias(bias));
    matmul::dispatch(g, kn, variant, "forward", launch)
}

/// A dataset of `n` samples of `k` random pixels, their labels and an order (reversed,
/// rotated by the seed), on the host and on the GPU (pixels packed four per word).
struct PixelData {
    pixels: Vec<u8>,
    labels: Vec<u32>,
    order: Vec<u32>,
    pix: wgpu::Buffer,
    lab: wgpu::Buffer,
    ord: wgpu::Buffer,
}

fn pixel_data(n: usize, k: usize, seed: u64) -> PixelData {
    let pixels: Vec<u8> = integers(seed, n * k, 256)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let labels = integers(seed + 1, n, 10);
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.reverse();
    order.rotate_left(seed as usize % n);
    let mut packed = pixels.clone();
    packed.resize(pixels.len().next_multiple_of(4), 0);
    let (pix, lab, ord) = (
        u32_buffer(bytemuck::cast_slice(&packed)),
        u32_buffer(&labels),
        u32_buffer(&order),
    );
    PixelData {
        pixels,
        labels,
        order,
        pix,
        lab,
        ord,
    }
}

impl PixelData {
    /// Operand A read from these pixels, X and y stored into `x` and `y`.
    fn source<'a>(
        &'a self,
        x: View<'a>,
        y: View<'a>,
        norm: Normalization,
        write_x: bool,
    ) -> PixelSource<'a> {
        PixelSource {
            pixels: &self.pix,
            labels: &self.lab,
            order: &self.ord,
            x,
            y,
            mean: norm.mean,
            std: norm.std,
            write_x,
        }
    }
}

/// One kernel-level case: a dataset of `n` samples of `k` pixels, an order, and layer 0 of
/// `out` outputs; a launch built for `max_rows` rows runs the minibatch of `batch` rows at
/// position `offset` of the order.
struct Case {
    n: usize,
    k: usize,
    out: usize,
    max_rows: usize,
    offset: usize,
    batch: usize,
    epilogue: Epilogue,
    norm: Normalization,
}

/// Runs `case` unfused (`gather_normalize`, then `matmul` on X) and fused (`matmul_gather`)
/// on `variant`, and checks the fused C, X and y against the unfused ones bit for bit, X
/// and y against the CPU gather and C against an f64 product. With `write_x` off, X must
/// stay untouched.
fn check(case: &Case, variant: MatmulVariant, write_x: bool, seed: u64) {
    let (g, kn) = gpu();
    let Case { n, k, out, .. } = *case;
    let data = pixel_data(n, k, seed);
    let (pixels, labels, order) = (&data.pixels, &data.labels, &data.order);
    let (pix, lab, ord) = (&data.pix, &data.lab, &data.ord);
    let w = uniform(seed + 2, out * k, -0.1, 0.1);
    let bias = uniform(seed + 3, out, -0.5, 0.5);
    let wt = GpuTensor::upload(g, "w", &w, &[out, k]).unwrap();
    let bt = GpuTensor::upload(g, "bias", &bias, &[out]).unwrap();
    let dummy = GpuTensor::upload(g, "dummy", &[0.0; 4], &[4]).unwrap();
    let spec = MatmulSpec {
        m: case.max_rows,
        n: out,
        k,
        trans_a: false,
        trans_b: true,
        trans_c: false,
        epilogue: case.epilogue,
        batch_dim: BatchDim::M,
    };
    let record = StepRecord {
        offset: case.offset as u32,
        batch: case.batch as u32,
        ..Default::default()
    };
    let what = format!(
        "{variant} n={n} K={k} N={out} rows {}/{} at {} write_x={write_x}",
        case.batch, case.max_rows, case.offset
    );

    // Unfused: gather_normalize into X and y, then the product on X.
    let x_ref = GpuTensor::poisoned(g, "x", &[case.max_rows, k]).unwrap();
    let y_ref = u32_buffer(&vec![u32::MAX; case.max_rows]);
    let c_ref = GpuTensor::poisoned(g, "c", &[case.max_rows, out]).unwrap();
    let gather = gather_normalize::dispatch(
        g,
        kn,
        "gather",
        gather_normalize::GatherNormalizeBuffers {
            pixels: pix,
            labels: lab,
            order: ord,
            x: &x_ref.buffer,
            y: &y_ref,
        },
        k,
        case.max_rows,
        case.norm.mean,
        case.norm.std,
    )
    .unwrap();
    let ops = [
        x_ref.view(),
        wt.view(),
        bt.view(),
        c_ref.view(),
        dummy.view(),
    ];
    let product = unfused_launch(variant, spec, ops).unwrap();
    kernels::run(g, kn, &[gather, product], record, 1).unwrap();

    // Fused.
    let x = GpuTensor::poisoned(g, "x", &[case.max_rows, k]).unwrap();
    let y = u32_buffer(&vec![u32::MAX; case.max_rows]);
    let c = GpuTensor::poisoned(g, "c", &[case.max_rows, out]).unwrap();
    let src = data.source(x.view(), View::whole(&y), case.norm, write_x);
    let ops = [wt.view(), bt.view(), c.view(), dummy.view()];
    let fused = fused_launch(variant, spec, MatmulMembers::ONE, src, ops).unwrap();
    assert_eq!(fused.kernel, matmul_gather_kernel(variant));
    kernels::run(g, kn, &[fused], record, 1).unwrap();

    let rows = case.batch;
    let (want_x, want_y) = cpu::gather_normalize(
        pixels,
        labels,
        k,
        order,
        case.offset,
        rows,
        case.norm.mean,
        case.norm.std,
    );
    let got_c = c.read(g).unwrap();
    let ref_c = c_ref.read(g).unwrap();
    assert_eq!(
        bits(&got_c[..rows * out]),
        bits(&ref_c[..rows * out]),
        "{what}: C differs from gather_normalize + matmul"
    );
    assert!(
        got_c[rows * out..].iter().all(|v| v.is_nan()),
        "{what}: rows past the minibatch were written"
    );
    // Independently: the f64 product of the CPU gather's X.
    let want_c: Vec<f32> = (0..rows * out)
        .map(|i| {
            let (r, o) = (i / out, i % out);
            let dot: f64 = (0..k)
                .map(|j| f64::from(want_x[r * k + j]) * f64::from(w[o * k + j]))
                .sum();
            let v = (dot + f64::from(bias[o])) as f32;
            match case.epilogue {
                Epilogue::BiasRelu => v.max(0.0),
                _ => v,
            }
        })
        .collect();
    assert_close(&what, &got_c[..rows * out], &want_c, 1e-5, 1e-5);
    assert_eq!(
        read_u32(&y, rows),
        want_y,
        "{what}: y (the minibatch's labels)"
    );
    assert_eq!(
        read_u32(&y_ref, rows),
        want_y,
        "{what}: gather_normalize's y"
    );
    let got_x = x.read(g).unwrap();
    if write_x {
        assert_eq!(
            bits(&got_x[..rows * k]),
            bits(&x_ref.read(g).unwrap()[..rows * k]),
            "{what}: X differs from gather_normalize's"
        );
        assert_close(&what, &got_x[..rows * k], &want_x, 1e-6, 1e-6);
    } else {
        assert!(
            got_x.iter().all(|v| v.is_nan()),
            "{what}: X written without write_x"
        );
    }
}

fn matmul_gather_kernel(variant: MatmulVariant) -> &'static str {
    match variant {
        MatmulVariant::Subgroup => "matmul_subgroup_gather",
        _ => "matmul_tiled2d_gather",
    }
}

/// MNIST-like rows (K = 784, whole pixel words), a ragged minibatch of a ragged launch.
#[test]
fn fused_forward_matches_gather_then_matmul_whole_words() {
    let case = Case {
        n: 200,
        k: 784,
        out: 37,
        max_rows: 45,
        offset: 150,
        batch: 45,
        epilogue: Epilogue::BiasRelu,
        norm: Normalization {
            mean: 0.1307,
            std: 0.3081,
        },
    };
    for variant in pixel_variants() {
        check(&case, variant, true, 1);
        // The last partial minibatch through the step record: 29 of 45 rows.
        check(
            &Case {
                offset: 171,
                batch: 29,
                ..case
            },
            variant,
            true,
            2,
        );
    }
}

/// K not a multiple of 4 (samples straddle pixel words: element by element), the output
/// layer's bias-only epilogue, more rows than one block of any kernel (130 > 128), and
/// evaluation's launch (X not stored).
#[test]
fn fused_forward_matches_gather_then_matmul_ragged() {
    let case = Case {
        n: 300,
        k: 13,
        out: 10,
        max_rows: 130,
        offset: 17,
        batch: 130,
        epilogue: Epilogue::Bias,
        norm: Normalization {
            mean: 0.5,
            std: 2.0,
        },
    };
    for variant in pixel_variants() {
        check(&case, variant, true, 3);
        check(
            &Case {
                offset: 250,
                batch: 50,
                ..case
            },
            variant,
            true,
            4,
        );
        check(&case, variant, false, 5);
    }
    // K = 30: a multiple of 2, not of 4; 70 outputs (two and a bit column blocks of 32).
    let odd = Case {
        n: 80,
        k: 30,
        out: 70,
        max_rows: 33,
        offset: 3,
        batch: 31,
        epilogue: Epilogue::BiasRelu,
        norm: Normalization {
            mean: -0.25,
            std: 0.7,
        },
    };
    for variant in pixel_variants() {
        check(&odd, variant, true, 6);
    }
}

/// `case` for `count` members in one launch on `variant`: the shared pixels, member j's
/// weights and bias (other seeds), C stacked with NaN gaps. The members listed in
/// `checked` equal their own launches (K = 1) bit for bit, C (the rows past the minibatch
/// unwritten in both) and the X and y stored (by member 0 alone: the single launch's
/// values; X untouched without `write_x`); no member writes outside its block of C, and
/// every member's minibatch rows are written.
fn check_members(
    case: &Case,
    variant: MatmulVariant,
    count: usize,
    write_x: bool,
    checked: &[usize],
    seed: u64,
) {
    let (g, kn) = gpu();
    let Case { n, k, out, .. } = *case;
    let rows = case.max_rows;
    let data = pixel_data(n, k, seed);
    let (sb, sbias, sc) = (
        (out * k).next_multiple_of(4) + 4,
        out.next_multiple_of(4) + 4,
        (rows * out).next_multiple_of(4) + 4,
    );
    let w: Vec<Vec<f32>> = (0..count)
        .map(|j| uniform(seed + 10 * j as u64 + 2, out * k, -0.1, 0.1))
        .collect();
    let bias: Vec<Vec<f32>> = (0..count)
        .map(|j| uniform(seed + 10 * j as u64 + 3, out, -0.5, 0.5))
        .collect();
    let stack = |parts: &[Vec<f32>], stride: usize| {
        let mut all = vec![f32::NAN; (parts.len() - 1) * stride + parts[0].len()];
        for (j, p) in parts.iter().enumerate() {
            all[j * stride..j * stride + p.len()].copy_from_slice(p);
        }
        all
    };
    let up = |name: &str, v: &[f32]| GpuTensor::upload(g, name, v, &[v.len()]).unwrap();
    let dummy = up("dummy", &[0.0; 4]);
    let spec = MatmulSpec {
        m: rows,
        n: out,
        k,
        trans_a: false,
        trans_b: true,
        trans_c: false,
        epilogue: case.epilogue,
        batch_dim: BatchDim::M,
    };
    let record = StepRecord {
        offset: case.offset as u32,
        batch: case.batch as u32,
        ..Default::default()
    };
    // One launch of `members` over the stacked weights, biases and C: C, X and y.
    let launch = |members: MatmulMembers, w: &[f32], bias: &[f32], c_len: usize| {
        let (tw, tbias) = (up("w", w), up("bias", bias));
        let c = GpuTensor::poisoned(g, "c", &[c_len]).unwrap();
        let x = GpuTensor::poisoned(g, "x", &[rows, k]).unwrap();
        let y = u32_buffer(&vec![u32::MAX; rows]);
        let src = data.source(x.view(), View::whole(&y), case.norm, write_x);
        let ops = [tw.view(), tbias.view(), c.view(), dummy.view()];
        let d = fused_launch(variant, spec, members, src, ops).unwrap();
        kernels::run(g, kn, &[d], record, 1).unwrap();
        (c.read(g).unwrap(), x.read(g).unwrap(), read_u32(&y, rows))
    };
    let members = MatmulMembers {
        count,
        a: 0, // the pixels are shared
        b: sb,
        bias: sbias,
        mask: 0,
        c: sc,
    };
    let c_len = (count - 1) * sc + rows * out;
    let (c, x, y) = launch(members, &stack(&w, sb), &stack(&bias, sbias), c_len);
    let what = format!(
        "{variant} x{count} K={k} N={out} rows {}/{rows}",
        case.batch
    );
    for &j in checked {
        let (cj, xj, yj) = launch(MatmulMembers::ONE, &w[j], &bias[j], rows * out);
        let mine = &c[j * sc..j * sc + rows * out];
        assert_eq!(bits(mine), bits(&cj), "{what}: C of member {j}");
        assert_eq!(bits(&x), bits(&xj), "{what}: X (member {j}'s launch)");
        assert_eq!(y, yj, "{what}: y (member {j}'s launch)");
    }
    let live = case.batch * out;
    for j in 0..count {
        let block = &c[j * sc..(j * sc + sc).min(c.len())];
        assert!(
            block[..live].iter().all(|v| v.is_finite()),
            "{what}: member {j} not written"
        );
        assert!(
            block[live..].iter().all(|v| v.is_nan()),
            "{what}: member {j} wrote past its rows or its block"
        );
    }
    assert_eq!(
        x.iter().all(|v| v.is_nan()),
        !write_x,
        "{what}: X stored iff write_x"
    );
}

/// The gather prologue with members (issue 22: every fusion serves every K): K = 3 on
/// every variant that reads pixels (a ragged K, bias-only epilogue, a partial minibatch of
/// a launch larger than any block), K = 3 on whole pixel words with bias + ReLU and X not
/// stored (evaluation), and K = 1.
#[test]
fn fused_forward_members_match_their_single_launches() {
    let ragged = Case {
        n: 300,
        k: 13,
        out: 10,
        max_rows: 130,
        offset: 250,
        batch: 50,
        epilogue: Epilogue::Bias,
        norm: Normalization {
            mean: 0.5,
            std: 2.0,
        },
    };
    for (vi, variant) in pixel_variants().into_iter().enumerate() {
        check_members(&ragged, variant, 3, true, &[0, 1, 2], 20 + vi as u64);
    }
    let words = Case {
        n: 100,
        k: 36,
        out: 37,
        max_rows: 45,
        offset: 40,
        batch: 45,
        epilogue: Epilogue::BiasRelu,
        norm: Normalization {
            mean: 0.1307,
            std: 0.3081,
        },
    };
    let first = pixel_variants()[0];
    check_members(&words, first, 3, false, &[0, 1, 2], 30);
    check_members(&ragged, first, 1, true, &[0], 31);
}

/// Members' row blocks past 65,535 workgroups: the gather launch's grid folds, and every
/// member's rows are computed from the shared pixels; members at both ends and in the
/// middle equal their own launches bit for bit, X and y included.
#[test]
fn fused_forward_members_past_65535_row_blocks_fold_the_grid() {
    let variant = pixel_variants()[0];
    // Two row blocks per member.
    let rows = (1..).find(|&r| variant.blocks(r + 1, 3).1 == 2).unwrap() + 1;
    let count = 32_800;
    assert!(variant.blocks(rows, 3).1 * count as u64 > 65_535);
    let case = Case {
        n: rows + 7,
        k: 8,
        out: 3,
        max_rows: rows,
        offset: 5,
        batch: rows,
        epilogue: Epilogue::BiasRelu,
        norm: Normalization {
            mean: 0.2,
            std: 0.45,
        },
    };
    let checked = [0, 1, count / 2, count - 2, count - 1];
    check_members(&case, variant, count, true, &checked, 40);
}

/// What does not read pixels is refused with a reason: the other kernels, products other
/// than the forward one, and a K the loop cap would split.
#[test]
fn fusion_is_refused_where_it_cannot_run() {
    let (g, _) = gpu();
    let forward = MatmulSpec {
        m: 64,
        n: 256,
        k: 784,
        trans_a: false,
        trans_b: true,
        trans_c: false,
        epilogue: Epilogue::BiasRelu,
        batch_dim: BatchDim::M,
    };
    for variant in pixel_variants() {
        assert_eq!(matmul_gather::supports(g, variant, &forward), Ok(()));
        for other in [
            MatmulSpec {
                trans_a: true,
                ..forward
            },
            MatmulSpec {
                trans_b: false,
                ..forward
            },
            MatmulSpec {
                batch_dim: BatchDim::K,
                ..forward
            },
        ] {
            assert!(matmul_gather::supports(g, variant, &other).is_err());
        }
        if g.loop_cap.is_some() {
            let long = MatmulSpec {
                k: 4_000_000,
                ..forward
            };
            let err = matmul_gather::supports(g, variant, &long).unwrap_err();
            assert!(
                err.contains("loop cap") || err.contains("launches"),
                "{err}"
            );
        }
    }
    for variant in [
        MatmulVariant::Register,
        MatmulVariant::Tiled,
        MatmulVariant::Rows,
    ] {
        let err = matmul_gather::supports(g, variant, &forward).unwrap_err();
        assert!(err.contains("does not read pixels"), "{err}");
    }
}

/// A synthetic dataset of `n` samples of `features` pixels.
fn dataset(n: usize, features: usize, seed: u64) -> Dataset {
    Dataset {
        images: integers(seed, n * features, 256)
            .into_iter()
            .map(|v| v as u8)
            .collect(),
        labels: integers(seed + 1, n, 10),
        rows: 1,
        cols: features,
    }
}

/// What a run leaves: per-step sums of every epoch, the parameters, the test and
/// validation metrics and the test logits, and the dispatches per step.
type Outcome = (Vec<[f32; 2]>, Vec<f32>, Vec<(f64, f64)>, Vec<f32>, usize);

fn run(
    fusions: Fusions,
    variant: MatmulVariant,
    cfg: &RunConfig,
    train_set: &Dataset,
    test: &Dataset,
) -> Outcome {
    let (g, kn) = gpu();
    let data = common::data(train_set, test);
    let cfgs = std::slice::from_ref(cfg);
    let mut e = GpuEngine::new(g, kn, variant.into(), fusions, cfgs, data).unwrap();
    let samples = e.setup().shared().train_indices.clone();
    let mut sums = Vec::new();
    for epoch in 0..2 {
        let order = train::epoch_order(&samples, 5, epoch);
        let steps = train::step_records(samples.len(), cfg.batch_size);
        let first = epoch == 0;
        let epoch_sums = common::train_epoch(&mut e, &order, &steps, 0.1, first).unwrap();
        sums.extend_from_slice(&epoch_sums[0]);
    }
    let evals = [EvalSet::Test, EvalSet::Validation]
        .map(|s| {
            let r = e.evaluate(s).unwrap()[0];
            (r.loss, r.accuracy)
        })
        .to_vec();
    let logits = e.logits(0, EvalSet::Test).unwrap();
    (
        sums,
        e.params(0).unwrap(),
        evals,
        logits,
        e.dispatches_per_step(),
    )
}

/// Two epochs of an MLP with only the gather fusion against none: the same bits
/// everywhere, one dispatch fewer per step on the variants that read pixels and the
/// unfused step (fallback) on one that does not. One hidden layer on each variant; no
/// hidden layer (layer 0 is the output layer: bias epilogue), two hidden layers, and 30
/// inputs (not whole pixel words) on the adapter's first pixel variant. The last training
/// minibatch is partial, as is the last evaluation minibatch (1,030 test samples, 1,000 a
/// launch), and a validation split is evaluated too (the training set's pixels).
#[test]
fn training_with_the_gather_fusion_is_bit_identical() {
    let gather_only = Fusions {
        gather: true,
        ..Fusions::NONE
    };
    let pixels = pixel_variants();
    let mut cases: Vec<(MatmulVariant, Vec<usize>, usize)> = pixels
        .iter()
        .take(2) // the subgroup kernel and the smallest 2-D tiled block
        .chain([&MatmulVariant::Rows])
        .map(|&v| (v, vec![20], 36))
        .collect();
    cases.push((pixels[0], vec![], 36));
    cases.push((pixels[0], vec![12, 8], 36));
    cases.push((pixels[0], vec![20], 30));
    for (variant, hidden, features) in cases {
        let (train_set, test) = (dataset(330, features, 11), dataset(1030, features, 12));
        let cfg = RunConfig {
            hidden: hidden.clone(),
            batch_size: 64,
            validation_split: 0.1,
            seed: 3,
            normalization: Normalization {
                mean: 0.2,
                std: 0.45,
            },
            ..RunConfig::default()
        };
        let what = format!("{variant}, hidden {hidden:?}, {features} inputs");
        let base = run(Fusions::NONE, variant, &cfg, &train_set, &test);
        let fused = run(gather_only, variant, &cfg, &train_set, &test);
        let reads_pixels = variant != MatmulVariant::Rows;
        assert_eq!(
            fused.4,
            base.4 - usize::from(reads_pixels),
            "{what}: dispatches per step"
        );
        assert_eq!(fused.0, base.0, "{what}: per-step loss and correct sums");
        assert_eq!(bits(&fused.1), bits(&base.1), "{what}: parameters");
        assert_eq!(fused.2, base.2, "{what}: test and validation metrics");
        assert_eq!(bits(&fused.3), bits(&base.3), "{what}: test logits");
        assert!(base.2.iter().all(|(l, _)| l.is_finite() && *l > 0.0));
    }
}

/// Timing, not a check (`cargo test --release --test gpu fusion_gather:: -- --ignored
/// --nocapture`): layer 0's forward at MNIST's shape (K = 784, N = 256) on the adapter's
/// default kernel, unfused (`gather_normalize` + matmul) against fused with and without
/// storing X, interleaved round by round so that machine noise hits all three alike; per
/// launch, min and median over 21 rounds of 10 back-to-back launches, and the median of
/// each round's ratio to the unfused pair.
#[test]
#[ignore = "timing for docs/performance.md"]
fn time_fused_forward() {
    let (g, kn) = gpu();
    let variant = MatmulVariant::default_for(g);
    let (n, k, out) = (2048, 784, 256);
    let pixels: Vec<u32> = integers(1, n * k / 4, u32::MAX);
    let labels = integers(2, n, 10);
    let order: Vec<u32> = (0..n as u32).rev().collect();
    let (pix, lab, ord) = (u32_buffer(&pixels), u32_buffer(&labels), u32_buffer(&order));
    let wt = GpuTensor::upload(g, "w", &uniform(3, out * k, -0.1, 0.1), &[out, k]).unwrap();
    let bt = GpuTensor::upload(g, "bias", &uniform(4, out, -0.1, 0.1), &[out]).unwrap();
    let dummy = GpuTensor::upload(g, "dummy", &[0.0; 4], &[4]).unwrap();
    for rows in [64, 512] {
        let spec = MatmulSpec {
            m: rows,
            n: out,
            k,
            trans_a: false,
            trans_b: true,
            trans_c: false,
            epilogue: Epilogue::BiasRelu,
            batch_dim: BatchDim::M,
        };
        let x = GpuTensor::poisoned(g, "x", &[rows, k]).unwrap();
        let y = u32_buffer(&vec![0; rows]);
        let c = GpuTensor::poisoned(g, "c", &[rows, out]).unwrap();
        let gather = gather_normalize::dispatch(
            g,
            kn,
            "gather",
            gather_normalize::GatherNormalizeBuffers {
                pixels: &pix,
                labels: &lab,
                order: &ord,
                x: &x.buffer,
                y: &y,
            },
            k,
            rows,
            0.1307,
            0.3081,
        )
        .unwrap();
        let ops = [x.view(), wt.view(), bt.view(), c.view(), dummy.view()];
        let product = unfused_launch(variant, spec, ops).unwrap();
        let fused = |write_x| {
            let src = PixelSource {
                pixels: &pix,
                labels: &lab,
                order: &ord,
                x: x.view(),
                y: View::whole(&y),
                mean: 0.1307,
                std: 0.3081,
                write_x,
            };
            let ops = [wt.view(), bt.view(), c.view(), dummy.view()];
            fused_launch(variant, spec, MatmulMembers::ONE, src, ops).unwrap()
        };
        let runs: [(&str, Vec<wgtrain::gpu::Dispatch>); 4] = [
            ("gather_normalize alone", vec![gather.clone()]),
            ("gather_normalize + matmul", vec![gather, product]),
            ("fused, X stored", vec![fused(true)]),
            ("fused, X not stored", vec![fused(false)]),
        ];
        let record = StepRecord {
            offset: 7,
            batch: rows as u32,
            ..Default::default()
        };
        let mut times = vec![Vec::new(); runs.len()];
        for _ in 0..21 {
            for (t, (_, d)) in times.iter_mut().zip(&runs) {
                let s = kernels::run(g, kn, d, record, 10).unwrap().as_secs_f64();
                t.push(s * 1e6 / 10.0);
            }
        }
        let unfused = times[1].clone();
        for (mut t, (what, _)) in times.into_iter().zip(&runs) {
            // Per round against the unfused pair measured next to it: the noise that a
            // loaded machine adds to both cancels in the ratio more than in the times.
            let mut ratio: Vec<f64> = t.iter().zip(&unfused).map(|(a, b)| a / b).collect();
            ratio.sort_by(f64::total_cmp);
            t.sort_by(f64::total_cmp);
            eprintln!(
                "{variant} B={rows}: {what:<28} min {:>7.0} us, median {:>7.0} us, median ratio to unfused {:.2}",
                t[0],
                t[t.len() / 2],
                ratio[ratio.len() / 2]
            );
        }
    }
}
