//! The member axis of every kernel of a population step (issue 12; since issue 22 every
//! launch has one, a single run being K = 1): K members in one dispatch against K single
//! launches of the same kernel, bit for bit, on ragged shapes (not multiples of any
//! workgroup or tile), with shared operands (stride 0), the loop-cap split of K and of the
//! rows, and grids whose member row blocks pass 65,535 workgroups. Outputs are poisoned
//! with NaN, and the padding between members must stay NaN (nothing written out of a
//! member's block). The single launches are themselves held to the CPU reference in
//! `parity_matmul.rs`, `parity_softmax_cross_entropy.rs`, `parity_elementwise.rs` and
//! `precision_f16.rs`; `sgd_update` is held to the CPU reference here too. The fused
//! kernels' member axes (gather prologue, SGD epilogue, output layer) are tested in
//! `fusion_gather.rs`, `fusion_update.rs` and `fusion_output.rs`.

use crate::common;
use common::{gpu, gpu16, record, uniform, with_outliers};
use half::f16;
use wgtrain::cpu;
use wgtrain::gpu::kernels::matmul::f16::{self as matmul_f16, F16View, MatmulF16Buffers};
use wgtrain::gpu::kernels::matmul::{
    self, BatchDim, Epilogue, EpilogueOperands, MatmulLaunch, MatmulMembers, MatmulSpec,
};
use wgtrain::gpu::kernels::sgd_update::{self, SgdTable, member_settings};
use wgtrain::gpu::kernels::softmax_cross_entropy::{self, LossMembers, METRICS_HEADER};
use wgtrain::gpu::kernels::{self, Dispatch, column_sum};
use wgtrain::gpu::tensor::read_buffer;
use wgtrain::gpu::{Gpu, GpuTensor, Kernels, MatmulVariant, StepRecord, View};
use wgtrain::optim::SgdConfig;
use wgtrain::step::{MEMBER_FIRST, MEMBER_FROZEN, MemberStep};

fn run(g: &Gpu, kn: &Kernels, d: &Dispatch, rec: StepRecord) {
    kernels::run(g, kn, std::slice::from_ref(d), rec, 1).unwrap();
}

/// `count` members' values of `len` floats each, `stride` apart (the gaps NaN).
fn stacked(count: usize, len: usize, stride: usize, seed: u64) -> (Vec<f32>, Vec<Vec<f32>>) {
    let per: Vec<Vec<f32>> = (0..count)
        .map(|j| with_outliers(seed + j as u64, len))
        .collect();
    let mut all = vec![f32::NAN; (count - 1) * stride + len];
    for (j, p) in per.iter().enumerate() {
        all[j * stride..j * stride + len].copy_from_slice(p);
    }
    (all, per)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Member j's `len` floats of `all` equal `want[j]` bit for bit, and the gaps stayed NaN.
#[track_caller]
fn assert_members(what: &str, all: &[f32], stride: usize, len: usize, want: &[Vec<f32>]) {
    for (j, w) in want.iter().enumerate() {
        let got = &all[j * stride..j * stride + len];
        assert_eq!(bits(got), bits(w), "{what}: member {j}");
        if j + 1 < want.len() {
            let gap = &all[j * stride + len..(j + 1) * stride];
            assert!(
                gap.iter().all(|v| v.is_nan()),
                "{what}: member {j} wrote past its block"
            );
        }
    }
}

/// One f32 launch of `spec` for `members` ([`matmul::dispatch`]): operands `[A, B, C,
/// dummy]`, and `bias` or `mask` as the epilogue operands `spec.epilogue` reads (ignored
/// otherwise).
#[allow(clippy::too_many_arguments)]
fn launch(
    g: &Gpu,
    kn: &Kernels,
    variant: MatmulVariant,
    label: &str,
    spec: MatmulSpec,
    members: MatmulMembers,
    [a, b, c, dummy]: [View<'_>; 4],
    bias: Option<View<'_>>,
    mask: Option<View<'_>>,
) -> wgtrain::Result<Dispatch> {
    let epilogue = match spec.epilogue {
        Epilogue::None => EpilogueOperands::None,
        Epilogue::Bias | Epilogue::BiasRelu => EpilogueOperands::Bias(bias.expect("a bias")),
        Epilogue::ReluMask => EpilogueOperands::Mask(mask.expect("a mask")),
        Epilogue::SgdUpdate => unreachable!("tested in fusion_update.rs"),
    };
    let launch = MatmulLaunch::new(spec, a, b, c, dummy)
        .with_epilogue(epilogue)
        .with_members(members);
    matmul::dispatch(g, kn, variant, label, launch)
}

/// One matmul of `spec` for `count` members in one launch vs `count` single launches;
/// `shared_b` shares B across members (stride 0), as layer 0 shares X.
#[allow(clippy::too_many_arguments)]
fn check_matmul_members(
    g: &Gpu,
    kn: &Kernels,
    variant: MatmulVariant,
    spec: MatmulSpec,
    count: usize,
    shared_b: bool,
    rows: usize,
    seed: u64,
) {
    let (m, n, k) = (spec.m, spec.n, spec.k);
    // Strides a little over each operand (a multiple of 4), so members do not abut.
    let st = |len: usize| len.next_multiple_of(4) + 4;
    let (sa, sb, sbias, smask, sc) = (
        st(m * k),
        if shared_b { 0 } else { st(k * n) },
        st(n),
        st(m * n),
        st(m * n),
    );
    let (a_all, a) = stacked(count, m * k, sa, seed);
    let (b_all, b) = if shared_b {
        let b = with_outliers(seed + 100, k * n);
        (b.clone(), vec![b; count])
    } else {
        stacked(count, k * n, sb, seed + 100)
    };
    let (bias_all, bias) = stacked(count, n, sbias, seed + 200);
    let (mask_all, mask) = stacked(count, m * n, smask, seed + 300);
    let up = |name: &str, v: &[f32]| GpuTensor::upload(g, name, v, &[v.len()]).unwrap();
    let (ta, tb, tbias, tmask) = (
        up("a", &a_all),
        up("b", &b_all),
        up("bias", &bias_all),
        up("mask", &mask_all),
    );
    let tc = GpuTensor::poisoned(g, "c", &[(count - 1) * sc + m * n]).unwrap();
    let dummy = GpuTensor::upload(g, "dummy", &[0.0; 4], &[4]).unwrap();
    let members = MatmulMembers {
        count,
        a: sa,
        b: sb,
        bias: sbias,
        mask: smask,
        c: sc,
    };
    let d = launch(
        g,
        kn,
        variant,
        "members",
        spec,
        members,
        [ta.view(), tb.view(), tc.view(), dummy.view()],
        Some(tbias.view()),
        Some(tmask.view()),
    )
    .unwrap();
    let rec = record(rows);
    run(g, kn, &d, rec);
    let got = tc.read(g).unwrap();
    let want: Vec<Vec<f32>> = (0..count)
        .map(|j| {
            let (ta, tb) = (up("a1", &a[j]), up("b1", &b[j]));
            let (tbias, tmask) = (up("bias1", &bias[j]), up("mask1", &mask[j]));
            let tc = GpuTensor::poisoned(g, "c1", &[m * n]).unwrap();
            let d = launch(
                g,
                kn,
                variant,
                "single",
                spec,
                MatmulMembers::ONE,
                [ta.view(), tb.view(), tc.view(), dummy.view()],
                Some(tbias.view()),
                Some(tmask.view()),
            )
            .unwrap();
            run(g, kn, &d, rec);
            tc.read(g).unwrap()
        })
        .collect();
    assert_members(
        &format!("{variant} {spec:?} x{count}"),
        &got,
        sc,
        m * n,
        &want,
    );
}

/// The step's matmul shapes (forward with bias + ReLU, weight gradient plain and with C
/// transposed, input gradient through the ReLU mask), ragged, minibatch partial.
fn step_specs(b: usize, i: usize, o: usize) -> [(MatmulSpec, bool); 4] {
    let base = MatmulSpec {
        m: b,
        n: o,
        k: i,
        trans_a: false,
        trans_b: true,
        trans_c: false,
        epilogue: Epilogue::BiasRelu,
        batch_dim: BatchDim::M,
    };
    [
        (base, true), // layer 0: X shared
        (
            MatmulSpec {
                m: o,
                n: i,
                k: b,
                trans_a: true,
                trans_b: false,
                epilogue: Epilogue::None,
                batch_dim: BatchDim::K,
                ..base
            },
            false,
        ),
        (
            MatmulSpec {
                m: i,
                n: o,
                k: b,
                trans_a: true,
                trans_b: false,
                trans_c: true,
                epilogue: Epilogue::None,
                batch_dim: BatchDim::K,
            },
            true,
        ),
        (
            MatmulSpec {
                m: b,
                n: i,
                k: o,
                trans_a: false,
                trans_b: false,
                epilogue: Epilogue::ReluMask,
                ..base
            },
            false,
        ),
    ]
}

#[test]
fn matmul_members_match_single_launches_for_every_variant() {
    let (g, kn) = gpu();
    let variants: Vec<MatmulVariant> = MatmulVariant::ALL
        .into_iter()
        .filter(|v| v.supports(g).is_ok())
        .collect();
    assert!(variants.contains(&MatmulVariant::Register));
    for (vi, &variant) in variants.iter().enumerate() {
        // 19 rows (partial minibatch of 17), 36 inputs (vec4 rows), 13 outputs.
        for (si, (spec, shared_b)) in step_specs(19, 36, 13).into_iter().enumerate() {
            let seed = (vi * 10 + si) as u64;
            check_matmul_members(g, kn, variant, spec, 3, shared_b, 17, seed);
        }
        // Ragged everything: 5 x 7 x 3, full minibatch; K = 4, and K = 1 (the launch of a
        // single run, with member strides that must not matter).
        let (spec, _) = step_specs(5, 7, 3)[0];
        check_matmul_members(g, kn, variant, spec, 4, false, 5, 50 + vi as u64);
        check_matmul_members(g, kn, variant, spec, 1, false, 5, 60 + vi as u64);
    }
}

/// Split K under a small loop cap, with members: every chunk's bind group carries the
/// strides, and the chunks add up per member as in a single launch.
#[test]
fn matmul_members_split_k_under_a_small_loop_cap() {
    let mut g = Gpu::new(&wgtrain::gpu::GpuOptions::default()).unwrap();
    g.loop_cap = Some(300);
    let kn = Kernels::new(&g).unwrap();
    for variant in [MatmulVariant::Register, MatmulVariant::default_for(&g)] {
        // Weight gradient over a minibatch of 700 (K), partial: 690 rows.
        let (spec, shared_b) = step_specs(700, 21, 6)[1];
        assert!(matmul::k_chunks(&g, variant, "t", spec.k).unwrap().len() > 1);
        check_matmul_members(&g, &kn, variant, spec, 3, shared_b, 690, 7);
        let spec = MatmulSpec {
            k: 700,
            ..step_specs(9, 700, 5)[0].0
        };
        check_matmul_members(&g, &kn, variant, spec, 3, true, 9, 8);
    }
}

/// K x row blocks past 65,535 workgroups: the grid folds into z and every member's rows
/// are still computed (tiny products keep it cheap). CPU reference per member.
#[test]
fn matmul_members_past_65535_row_blocks_fold_into_z() {
    let (g, kn) = gpu();
    for variant in [MatmulVariant::default_for(g), MatmulVariant::Register] {
        // Rows of C per workgroup: M = rows + 1 gives two row blocks per member.
        let rows = (1..).find(|&r| variant.blocks(r + 1, 1).1 == 2).unwrap();
        let (m, n, k) = (rows + 1, 3, 5);
        let count = 32_800; // 65,600 row blocks
        let spec = MatmulSpec {
            m,
            n,
            k,
            trans_a: false,
            trans_b: true,
            trans_c: false,
            epilogue: Epilogue::Bias,
            batch_dim: BatchDim::None,
        };
        let grid_rows = variant.blocks(m, n).1 * count as u64;
        assert!(grid_rows > 65_535, "{grid_rows}");
        let sa = (m * k).next_multiple_of(4);
        let sc = (m * n).next_multiple_of(4);
        let a = uniform(1, (count - 1) * sa + m * k, -1.0, 1.0);
        let w = uniform(2, n * k, -1.0, 1.0);
        let bias = uniform(3, 4, -1.0, 1.0);
        let up = |name: &str, v: &[f32]| GpuTensor::upload(g, name, v, &[v.len()]).unwrap();
        let (ta, tw, tbias) = (up("a", &a), up("w", &w), up("bias", &bias));
        let tc = GpuTensor::poisoned(g, "c", &[(count - 1) * sc + m * n]).unwrap();
        let members = MatmulMembers {
            c: sc,
            a: sa,
            ..MatmulMembers::ONE
        };
        let members = MatmulMembers { count, ..members };
        let d = launch(
            g,
            kn,
            variant,
            "fold",
            spec,
            members,
            [ta.view(), tw.view(), tc.view(), tbias.view()],
            Some(tbias.view()),
            None,
        )
        .unwrap();
        assert!(d.grid[2] > 1, "{:?}", d.grid);
        run(g, kn, &d, record(m));
        let got = tc.read(g).unwrap();
        for j in [0, 1, count / 2, count - 2, count - 1] {
            let mut want = cpu::matmul(&a[j * sa..j * sa + m * k], &w, m, n, k, false, true);
            cpu::bias_relu_forward(&mut want, &bias[..n], n, false);
            common::assert_close(
                &format!("{variant} member {j}"),
                &got[j * sc..j * sc + m * n],
                &want,
                1e-5,
                1e-4,
            );
        }
        assert!(
            got.chunks(sc)
                .all(|c| c[..m * n].iter().all(|v| v.is_finite())),
            "{variant}: every member written"
        );
    }
}

#[test]
fn softmax_cross_entropy_members_match_single_launches() {
    let (g, kn) = gpu();
    let (count, b, c, steps): (usize, usize, usize, usize) = (3, 37, 7, 2);
    let sl = (b * c).next_multiple_of(4) + 4;
    let sr = 2 * b + 4;
    let sm = METRICS_HEADER + 2 * steps + 4;
    let (logits_all, logits) = stacked(count, b * c, sl, 5);
    let mut logits_all = logits_all;
    logits_all[sl] = f32::INFINITY; // member 1 turns non-finite
    let mut logits = logits;
    logits[1][0] = f32::INFINITY;
    let labels = common::integers(9, b, c as u32);
    let up = |name: &str, v: &[f32]| GpuTensor::upload(g, name, v, &[v.len()]).unwrap();
    let tl = up("logits", &logits_all);
    let ty = GpuTensor::upload(g, "y", bytemuck::cast_slice(&labels), &[b]).unwrap();
    let td = GpuTensor::poisoned(g, "dlogits", &[(count - 1) * sl + b * c]).unwrap();
    let trows = GpuTensor::poisoned(g, "rows", &[(count - 1) * sr + 2 * b]).unwrap();
    let tm = up("metrics", &vec![0.0; count * sm]);
    let sb = c + 5; // the fused bias gradient of each member
    let tdb = GpuTensor::poisoned(g, "dbias", &[(count - 1) * sb + c]).unwrap();
    let d = softmax_cross_entropy::dispatch(
        g,
        kn,
        "members",
        softmax_cross_entropy::SoftmaxCrossEntropyBuffers {
            logits: tl.view(),
            labels: ty.view(),
            dlogits: td.view(),
            rows: trows.view(),
            metrics: tm.view(),
            dbias: Some(tdb.view()),
        },
        b,
        c,
        true,
        LossMembers {
            count,
            logits: sl,
            rows: sr,
            metrics: sm,
            bias: sb,
        },
        None,
    )
    .unwrap();
    let rec = StepRecord {
        index: 1,
        ..record(b - 2)
    };
    run(g, kn, &d, rec);
    let (got_d, got_m) = (td.read(g).unwrap(), tm.read(g).unwrap());
    let got_db = tdb.read(g).unwrap();
    for j in 0..count {
        let tl1 = up("l1", &logits[j]);
        let td1 = GpuTensor::poisoned(g, "d1", &[b * c]).unwrap();
        let tr1 = GpuTensor::poisoned(g, "r1", &[2 * b]).unwrap();
        let tm1 = up("m1", &vec![0.0; METRICS_HEADER + 2 * steps]);
        let tdb1 = GpuTensor::poisoned(g, "db1", &[c]).unwrap();
        let d = softmax_cross_entropy::dispatch(
            g,
            kn,
            "single",
            softmax_cross_entropy::SoftmaxCrossEntropyBuffers {
                logits: tl1.view(),
                labels: ty.view(),
                dlogits: td1.view(),
                rows: tr1.view(),
                metrics: tm1.view(),
                dbias: Some(tdb1.view()),
            },
            b,
            c,
            true,
            LossMembers::ONE,
            None,
        )
        .unwrap();
        run(g, kn, &d, rec);
        let rows = (b - 2) * c;
        // The fused bias gradient: the single launch's, and column_sum's over the same
        // dlogits (the unfused path), bit for bit; NaN for member 1 (infinite logit).
        let db1 = tdb1.read(g).unwrap();
        let tcs = GpuTensor::poisoned(g, "colsum", &[c]).unwrap();
        let one = (1, 0, 0);
        let cs = column_sum::dispatch(
            g,
            kn,
            "colsum",
            b,
            c,
            BatchDim::M,
            one,
            td1.view(),
            tcs.view(),
        )
        .unwrap();
        run(g, kn, &cs, rec);
        let unfused = tcs.read(g).unwrap();
        if j == 1 {
            assert!(got_db[j * sb..j * sb + c].iter().any(|v| v.is_nan()));
        } else {
            assert_eq!(bits(&got_db[j * sb..j * sb + c]), bits(&db1), "dbias {j}");
            assert_eq!(bits(&db1), bits(&unfused), "dbias {j} vs column_sum");
        }
        assert_eq!(
            bits(&got_d[j * sl..j * sl + rows]),
            bits(&td1.read(g).unwrap()[..rows]),
            "dlogits of member {j}"
        );
        let want_m = tm1.read(g).unwrap();
        assert_eq!(
            bits(&got_m[j * sm..j * sm + want_m.len()]),
            bits(&want_m),
            "metrics of member {j}"
        );
        assert_eq!(
            got_m[j * sm] != 0.0,
            j == 1,
            "only member 1's status is set"
        );
    }
}

#[test]
fn column_sum_members_match_single_launches_and_split_rows() {
    let mut capped = Gpu::new(&wgtrain::gpu::GpuOptions::default()).unwrap();
    capped.loop_cap = Some(30);
    let capped_kernels = Kernels::new(&capped).unwrap();
    let (g, kn) = gpu();
    for (g, kn) in [(g, kn), (&capped, &capped_kernels)] {
        let (count, m, n): (usize, usize, usize) = (5, 77, 67); // 67 columns: two blocks of 64, ragged
        let (sx, so) = ((m * n).next_multiple_of(4) + 8, n.next_multiple_of(4) + 4);
        let (x_all, x) = stacked(count, m * n, sx, 11);
        let tx = GpuTensor::upload(g, "x", &x_all, &[x_all.len()]).unwrap();
        let tout = GpuTensor::poisoned(g, "out", &[(count - 1) * so + n]).unwrap();
        let d = column_sum::dispatch(
            g,
            kn,
            "members",
            m,
            n,
            BatchDim::M,
            (count, sx, so),
            tx.view(),
            tout.view(),
        )
        .unwrap();
        let rec = record(m - 3);
        run(g, kn, &d, rec);
        let want: Vec<Vec<f32>> = x
            .iter()
            .map(|xj| {
                let tx = GpuTensor::upload(g, "x1", xj, &[xj.len()]).unwrap();
                let tout = GpuTensor::poisoned(g, "out1", &[n]).unwrap();
                let d = column_sum::dispatch(
                    g,
                    kn,
                    "single",
                    m,
                    n,
                    BatchDim::M,
                    (1, 0, 0),
                    tx.view(),
                    tout.view(),
                )
                .unwrap();
                run(g, kn, &d, rec);
                tout.read(g).unwrap()
            })
            .collect();
        assert_members("column_sum", &tout.read(g).unwrap(), so, n, &want);
    }
}

/// `sgd_update` reads the SGD table for K members (issue 22: its one entry point, the
/// settings no longer in a uniform, the learning rate and first-step flag no longer in the
/// step record): each member with its own settings, learning rate and first-step flag
/// equals the CPU reference of its configuration (`cpu::sgd_update`, within float
/// tolerance) and the same kernel launched for it alone (a table of K = 1, bit for bit); a
/// frozen member and one whose status word is set keep their parameters and momentum
/// bit for bit; the padding between members stays NaN.
#[test]
fn sgd_update_members_match_the_reference_and_single_launches() {
    // P not a multiple of 4; one workgroup per member, then two (4,096 floats each).
    for (len, stride) in [(203, 208), (4_103, 4_160)] {
        check_sgd_members(len, stride);
    }
}

/// The SGD settings of member j of `check_sgd_members`: every option somewhere.
fn member_sgd(j: usize) -> SgdConfig {
    SgdConfig {
        weight_decay: [0.0, 1e-2, 5e-3][j % 3],
        momentum: [0.0, 0.9, 0.5, 0.9, 0.8][j % 5],
        dampening: if j % 5 == 2 { 0.1 } else { 0.0 },
        nesterov: j % 5 == 3,
        decoupled_weight_decay: j % 2 == 1,
        decay_bias: j % 5 != 1,
    }
}

/// An SGD table of `cfgs.len()` members: the no-decay `ranges`, each member's settings,
/// then the member steps `steps` (`[steps, K]`).
fn sgd_table(ranges: &[u32], cfgs: &[SgdConfig], steps: &[MemberStep]) -> (SgdTable, Vec<u32>) {
    let layout = SgdTable::new(ranges.len() / 2, cfgs.len(), steps.len() / cfgs.len());
    let mut table: Vec<u32> = ranges.to_vec();
    assert_eq!(table.len(), layout.hyper_offset);
    for c in cfgs {
        table.extend(member_settings(c));
    }
    assert_eq!(table.len(), layout.steps_offset);
    table.extend(bytemuck::cast_slice::<MemberStep, u32>(steps));
    assert_eq!(table.len(), layout.words());
    (layout, table)
}

/// One `sgd_update` launch over `[K, stride]` buffers holding `p`, `grads`, `v` with the
/// SGD table `table`, the members' status words `stride_status` apart in `status`, at step
/// `index`: the parameters and momentum after it.
fn run_sgd(
    (p, grads, v): (&[f32], &[f32], &[f32]),
    (len, stride): (usize, usize),
    (layout, table): &(SgdTable, Vec<u32>),
    (status, stride_status): (&[f32], usize),
    index: u32,
) -> (Vec<f32>, Vec<f32>) {
    let (g, kn) = gpu();
    let up = |name: &str, v: &[f32]| GpuTensor::upload(g, name, v, &[v.len()]).unwrap();
    let whole = |name: &str, v: &[f32]| {
        let mut v = v.to_vec();
        v.resize(layout.members * stride, 0.0); // whole vec4s per member
        up(name, &v)
    };
    let (tp, tg, tv) = (whole("p", p), whole("g", grads), whole("v", v));
    let (tstatus, ttable) = (
        up("status", status),
        up("table", bytemuck::cast_slice(table)),
    );
    let bufs = sgd_update::SgdUpdateBuffers {
        params: tp.view(),
        grads: tg.view(),
        velocity: tv.view(),
        table: ttable.view(),
        status: tstatus.view(),
    };
    let d = sgd_update::dispatch(g, kn, "sgd", bufs, (len, stride), layout, stride_status);
    run(g, kn, &d.unwrap(), StepRecord { index, ..record(1) });
    let n = p.len();
    let read = |t: &GpuTensor| t.read(g).unwrap()[..n].to_vec();
    (read(&tp), read(&tv))
}

/// Parameters and momentum after one step of the CPU reference.
fn sgd_reference(
    (p, grads, v): (&[f32], &[f32], &[f32]),
    cfg: &SgdConfig,
    ms: MemberStep,
    ranges: &[u32],
) -> (Vec<f32>, Vec<f32>) {
    let (mut p, mut v) = (p.to_vec(), v.to_vec());
    let no_decay: Vec<(usize, usize)> = ranges.chunks(2).map(|r| (r[0] as _, r[1] as _)).collect();
    let no_decay = if cfg.decay_bias { &[][..] } else { &no_decay };
    cpu::sgd_update(&mut p, grads, &mut v, cfg, ms.lr, ms.first(), no_decay);
    (p, v)
}

fn check_sgd_members(len: usize, stride: usize) {
    let count = 5;
    let cfgs: Vec<SgdConfig> = (0..count).map(member_sgd).collect();
    let ranges: [u32; 4] = [7, 19, 150, 160];
    let step_index = 1;
    let steps: Vec<MemberStep> = (0..2 * count)
        .map(|i| MemberStep {
            lr: 0.01 * (1 + i) as f32,
            flags: match i % count {
                0 => MEMBER_FIRST,
                4 => MEMBER_FROZEN,
                _ => 0,
            },
            scale: 1.0,
        })
        .collect();
    let table = sgd_table(&ranges, &cfgs, &steps);
    let (p_all, p) = stacked(count, len, stride, 21);
    let (g_all, gr) = stacked(count, len, stride, 31);
    let (v_all, v) = stacked(count, len, stride, 41);
    let sm = 8;
    let mut status = vec![0.0f32; count * sm];
    status[2 * sm] = 1.0; // member 2 diverged earlier
    let all = (&p_all[..], &g_all[..], &v_all[..]);
    let (got_p, got_v) = run_sgd(all, (len, stride), &table, (&status, sm), step_index);
    let (mut want_p, mut want_v) = (Vec::new(), Vec::new());
    for j in 0..count {
        let ms = steps[step_index as usize * count + j];
        let what = format!("member {j} ({:?}, flags {})", cfgs[j], ms.flags);
        let mine = (&p[j][..], &gr[j][..], &v[j][..]);
        if ms.frozen() || j == 2 {
            // Frozen, or its loss turned non-finite: not a bit changes.
            want_p.push(p[j].clone());
            want_v.push(v[j].clone());
            continue;
        }
        // The CPU reference.
        let (cp, cv) = sgd_reference(mine, &cfgs[j], ms, &ranges);
        let at = j * stride..j * stride + len;
        common::assert_close(
            &format!("params {what}"),
            &got_p[at.clone()],
            &cp,
            1e-7,
            1e-6,
        );
        common::assert_close(&format!("velocity {what}"), &got_v[at], &cv, 1e-7, 1e-6);
        // The same kernel for this member alone (K = 1): its step is row 0 of its table.
        let one = sgd_table(&ranges, std::slice::from_ref(&cfgs[j]), &[ms]);
        let dims = (len, len.next_multiple_of(4));
        let (sp, sv) = run_sgd(mine, dims, &one, (&[0.0], 0), 0);
        want_p.push(sp);
        want_v.push(sv);
    }
    assert_members("sgd params", &got_p, stride, len, &want_p);
    assert_members("sgd velocity", &got_v, stride, len, &want_v);
}

/// K x one workgroup past 65,535 workgroups: `sgd_update`'s grid folds into y, and every
/// member (its own settings, learning rate and flags from the table) is updated, the last
/// ones included, against the CPU reference; a frozen member is left alone.
#[test]
fn sgd_update_members_past_65535_workgroups_fold_the_grid() {
    let (count, len, stride) = (65_600, 3, 4);
    let cfgs: Vec<SgdConfig> = (0..count).map(member_sgd).collect();
    let steps: Vec<MemberStep> = (0..count)
        .map(|j| MemberStep {
            lr: 0.01 + (j % 7) as f32 * 0.01,
            flags: [MEMBER_FIRST, 0, MEMBER_FROZEN][j % 3],
            scale: 1.0,
        })
        .collect();
    let ranges = [1u32, 2];
    let table = sgd_table(&ranges, &cfgs, &steps);
    let (p_all, p) = stacked(count, len, stride, 51);
    let (g_all, gr) = stacked(count, len, stride, 52);
    let (v_all, v) = stacked(count, len, stride, 53);
    let status = vec![0.0f32; count];
    let all = (&p_all[..], &g_all[..], &v_all[..]);
    let (got_p, got_v) = run_sgd(all, (len, stride), &table, (&status, 1), 0);
    for j in (0..count).step_by(997).chain(count - 3..count) {
        let ms = steps[j];
        let (cp, cv) = if ms.frozen() {
            (p[j].clone(), v[j].clone())
        } else {
            sgd_reference((&p[j], &gr[j], &v[j]), &cfgs[j], ms, &ranges)
        };
        let at = j * stride..j * stride + len;
        common::assert_close(&format!("params {j}"), &got_p[at.clone()], &cp, 1e-7, 1e-6);
        common::assert_close(&format!("velocity {j}"), &got_v[at], &cv, 1e-7, 1e-6);
    }
    for (j, ms) in steps.iter().enumerate() {
        let got = &got_p[j * stride..j * stride + len];
        assert_eq!(
            bits(got) == bits(&p[j]),
            ms.frozen(),
            "member {j} (flags {}): only the frozen keep their parameters",
            ms.flags
        );
    }
}

/// The views the kernels are bound with must cover every member: a too-short operand is a
/// clear error, not an out-of-bounds read.
#[test]
fn matmul_members_refuse_operands_shorter_than_every_member() {
    let (g, kn) = gpu();
    let spec = step_specs(4, 8, 4)[0].0;
    let t = GpuTensor::poisoned(g, "t", &[64]).unwrap();
    let members = MatmulMembers {
        count: 3,
        a: 32,
        ..MatmulMembers::ONE
    };
    let v = t.view();
    let err = launch(
        g,
        kn,
        MatmulVariant::Register,
        "short",
        spec,
        members,
        [v, v, v, v],
        Some(View { len: 4, ..v }),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("needs at least 96"), "{err}");
}

/// An f16 storage buffer of `v` (NaN stays NaN: the padding between members).
fn f16_buffer(g: &Gpu, label: &str, v: &[f32]) -> wgpu::Buffer {
    let mut halves: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
    halves.resize(halves.len().next_multiple_of(2), f16::NAN);
    let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    let usage = wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
    let b = g.storage_buffer(label, bytes.len() as u64, usage).unwrap();
    g.queue.write_buffer(&b, 0, &bytes);
    b
}

/// The first `len` f16 values of `b`, widened.
fn read_f16(g: &Gpu, b: &wgpu::Buffer, len: usize) -> Vec<f32> {
    read_buffer(g, "f16", b, 0, (2 * len) as u64)
        .unwrap()
        .chunks_exact(2)
        .take(len)
        .map(|h| f16::from_le_bytes([h[0], h[1]]).to_f32())
        .collect()
}

/// One `matmul_f16` launch of `spec` over `[A, B, bias, mask]` for `members` (A f16 or
/// f32, C's f16 copy written when `c16`), run on `rows` rows: C and its f16 copy (`c_len`
/// elements), widened.
#[allow(clippy::too_many_arguments)]
fn run_f16(
    g: &Gpu,
    kn: &Kernels,
    spec: MatmulSpec,
    members: MatmulMembers,
    [a, b, bias, mask]: [&[f32]; 4],
    (a_f16, c16): (bool, bool),
    c_len: usize,
    rows: usize,
) -> (Vec<f32>, Vec<f32>) {
    let f32_buf = |name: &str, v: &[f32]| GpuTensor::upload(g, name, v, &[v.len()]).unwrap();
    let (a16, a32, b16) = (
        f16_buffer(g, "a16", a),
        f32_buf("a32", a),
        f16_buffer(g, "b16", b),
    );
    let (tbias, tmask) = (f32_buf("bias", bias), f32_buf("mask", mask));
    let tc = GpuTensor::poisoned(g, "c", &[c_len]).unwrap();
    let tc16 = f16_buffer(g, "c16", &vec![f32::NAN; c_len]);
    let dummy = f32_buf("dummy", &[0.0; 4]);
    let a = if a_f16 {
        matmul_f16::OperandA::F16(F16View {
            buffer: &a16,
            offset: 0,
            len: a.len(),
        })
    } else {
        matmul_f16::OperandA::F32(a32.view())
    };
    let bufs = MatmulF16Buffers {
        members,
        a,
        b: F16View {
            buffer: &b16,
            offset: 0,
            len: b.len(),
        },
        bias: Some(tbias.view()),
        mask: Some(tmask.view()),
        c: tc.view(),
        c16: c16.then(|| F16View::whole(&tc16)),
        dummy: dummy.view(),
    };
    let d = matmul_f16::dispatch(g, kn, "f16", spec, bufs).unwrap();
    run(g, kn, &d, record(rows));
    (tc.read(g).unwrap(), read_f16(g, &tc16, c_len))
}

/// `matmul_f16` for `count` members in one launch against `count` single launches, bit
/// for bit, C and its f16 copy; the padding between members stays NaN in both.
fn check_f16_members(
    spec: MatmulSpec,
    count: usize,
    shared_a: bool,
    (a_f16, c16): (bool, bool),
    rows: usize,
    seed: u64,
) {
    let (g, kn) = gpu16();
    let (m, n, k) = (spec.m, spec.n, spec.k);
    // Strides a little over each operand, not multiples of 4 (matmul_f16 loads elements).
    let st = |len: usize| len + 3;
    let (sa, sb, sbias, smask, sc) = (
        if shared_a { 0 } else { st(m * k) },
        st(k * n),
        st(n),
        st(m * n),
        st(m * n),
    );
    let a = if shared_a {
        let a = with_outliers(seed, m * k);
        (a.clone(), vec![a; count])
    } else {
        stacked(count, m * k, sa, seed)
    };
    let b = stacked(count, k * n, sb, seed + 100);
    let bias = stacked(count, n, sbias, seed + 200);
    let mask = stacked(count, m * n, smask, seed + 300);
    let members = MatmulMembers {
        count,
        a: sa,
        b: sb,
        bias: sbias,
        mask: smask,
        c: sc,
    };
    let all = [&a.0[..], &b.0, &bias.0, &mask.0];
    let c_len = (count - 1) * sc + m * n;
    let (c, c16_all) = run_f16(g, kn, spec, members, all, (a_f16, c16), c_len, rows);
    let (mut want, mut want16) = (Vec::new(), Vec::new());
    for j in 0..count {
        let one = [&a.1[j][..], &b.1[j], &bias.1[j], &mask.1[j]];
        let (cj, c16j) = run_f16(
            g,
            kn,
            spec,
            MatmulMembers::ONE,
            one,
            (a_f16, c16),
            m * n,
            rows,
        );
        want.push(cj);
        want16.push(c16j);
    }
    let what = format!("matmul_f16 {spec:?} x{count} a_f16={a_f16}");
    assert_members(&what, &c, sc, m * n, &want);
    if c16 {
        assert_members(&format!("{what} f16 copy"), &c16_all, sc, m * n, &want16);
    }
    assert!(want[0].iter().any(|v| v.is_finite()), "{what}: nothing ran");
}

/// `matmul_f16` with members (issue 22: f16 populations): the step's f16 products (the
/// forward with bias + ReLU and its f16 copy of C, the weight gradient with the f32
/// gradient as A, C plain and transposed, the input gradient through the ReLU mask) for
/// K = 3 and K = 1, ragged, on a partial minibatch, the first layer's input shared.
#[test]
fn matmul_f16_members_match_single_launches() {
    for (si, (spec, shared)) in step_specs(19, 36, 13).into_iter().enumerate() {
        let a_f16 = si == 0; // the forward reads f16 activations, the backward f32 gradients
        let c16 = si == 0; // and writes the next layer's f16 input
        let shared_a = shared && si == 0;
        let seed = 70 + si as u64;
        check_f16_members(spec, 3, shared_a, (a_f16, c16), 17, seed);
    }
    let (spec, _) = step_specs(5, 7, 3)[0];
    check_f16_members(spec, 1, false, (true, true), 5, 80);
    check_f16_members(spec, 4, false, (true, false), 5, 81);
}

/// K x row blocks of `matmul_f16` past 65,535 workgroups: the grid folds, and
/// members at both ends and in the middle equal their single launches bit for bit; every
/// member's C is written.
#[test]
fn matmul_f16_members_past_65535_row_blocks_fold_the_grid() {
    let (g, kn) = gpu16();
    let rows = matmul_f16::ROWS as usize;
    let (m, n, k) = (rows + 1, 3, 5); // two row blocks per member
    let count = 32_800; // 65,600 row blocks
    let spec = MatmulSpec {
        m,
        n,
        k,
        trans_a: false,
        trans_b: true,
        trans_c: false,
        epilogue: Epilogue::Bias,
        batch_dim: BatchDim::None,
    };
    let (sa, sc) = (m * k, m * n);
    let a = uniform(1, (count - 1) * sa + m * k, -1.0, 1.0);
    let w = uniform(2, n * k, -1.0, 1.0);
    let bias = uniform(3, n, -1.0, 1.0);
    let members = MatmulMembers {
        count,
        a: sa,
        c: sc,
        ..MatmulMembers::ONE
    };
    let c_len = (count - 1) * sc + m * n;
    let ops = [&a[..], &w, &bias, &bias];
    let (c, _) = run_f16(g, kn, spec, members, ops, (true, false), c_len, m);
    assert!(c.iter().all(|v| v.is_finite()), "every member written");
    for j in [0, 1, count / 2, count - 2, count - 1] {
        let one = [&a[j * sa..j * sa + m * k], &w, &bias, &bias];
        let (want, _) = run_f16(
            g,
            kn,
            spec,
            MatmulMembers::ONE,
            one,
            (true, false),
            m * n,
            m,
        );
        assert_eq!(bits(&c[j * sc..j * sc + m * n]), bits(&want), "member {j}");
    }
}
