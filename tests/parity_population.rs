//! The member axis of every kernel of a population step (issue 12): K members in one
//! dispatch against K single launches of the same kernel, bit for bit, on ragged shapes
//! (not multiples of any workgroup or tile), with shared operands (stride 0), the loop-cap
//! split of K and of the rows, and grids whose member row blocks pass 65,535 workgroups.
//! Outputs are poisoned with NaN, and the padding between members must stay NaN (nothing
//! written out of a member's block). The single launches are themselves held to the CPU
//! reference in `parity_matmul.rs`, `parity_softmax_cross_entropy.rs` and
//! `parity_elementwise.rs`.

mod common;

use common::{gpu, record, uniform, with_outliers};
use wgtrain::cpu;
use wgtrain::gpu::kernels::matmul::{self, BatchDim, Epilogue, MatmulMembers, MatmulSpec};
use wgtrain::gpu::kernels::sgd_update::{self, SgdMembers, member_settings};
use wgtrain::gpu::kernels::softmax_cross_entropy::{self, LossMembers, METRICS_HEADER};
use wgtrain::gpu::kernels::{self, Dispatch, column_sum};
use wgtrain::gpu::{Gpu, GpuTensor, Kernels, MatmulVariant, StepRecord, View};
use wgtrain::optim::SgdConfig;
use wgtrain::population::{MEMBER_FIRST, MEMBER_FROZEN, MemberStep};

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
    let d = matmul::dispatch_members(
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
            let d = matmul::dispatch(
                g,
                kn,
                variant,
                "single",
                spec,
                ta.view(),
                tb.view(),
                Some(tbias.view()),
                Some(tmask.view()),
                tc.view(),
                dummy.view(),
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
        // Ragged everything: 5 x 7 x 3, full minibatch.
        let (spec, _) = step_specs(5, 7, 3)[0];
        check_matmul_members(g, kn, variant, spec, 4, false, 5, 50 + vi as u64);
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
        let d = matmul::dispatch_members(
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
    let d = softmax_cross_entropy::dispatch_members(
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
        )
        .unwrap();
        run(g, kn, &d, rec);
        let rows = (b - 2) * c;
        // The fused bias gradient: the single launch's, and column_sum's over the same
        // dlogits (the unfused path), bit for bit; NaN for member 1 (infinite logit).
        let db1 = tdb1.read(g).unwrap();
        let tcs = GpuTensor::poisoned(g, "colsum", &[c]).unwrap();
        let cs = column_sum::dispatch(g, kn, "colsum", b, c, BatchDim::M, td1.view(), tcs.view())
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
        let d = column_sum::dispatch_members(
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

/// sgd_update_members: each member with its own settings, learning rate and first-step
/// flag equals a single sgd_update launch of that member's configuration; a frozen member
/// and one whose status word is set are left as they were.
#[test]
fn sgd_update_members_match_single_launches() {
    // P not a multiple of 4; one workgroup per member, then two (4,096 floats each).
    for (len, stride) in [(203, 208), (4_103, 4_160)] {
        check_sgd_members(len, stride);
    }
}

fn check_sgd_members(len: usize, stride: usize) {
    let (g, kn) = gpu();
    let count = 5;
    let cfgs: Vec<SgdConfig> = (0..count)
        .map(|j| SgdConfig {
            weight_decay: [0.0, 1e-2, 5e-3][j % 3],
            momentum: [0.0, 0.9, 0.5, 0.9, 0.8][j],
            dampening: if j == 2 { 0.1 } else { 0.0 },
            nesterov: j == 3,
            decoupled_weight_decay: j % 2 == 1,
            decay_bias: j != 1,
        })
        .collect();
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
        })
        .collect();
    let mut table: Vec<u32> = ranges.to_vec();
    let hyper_offset = table.len();
    for c in &cfgs {
        table.extend(member_settings(c));
    }
    let steps_offset = table.len();
    table.extend(bytemuck::cast_slice::<MemberStep, u32>(&steps));
    let (p_all, p) = stacked(count, len, stride, 21);
    let (g_all, gr) = stacked(count, len, stride, 31);
    let (v_all, v) = stacked(count, len, stride, 41);
    let sm = 8;
    let mut status = vec![0.0f32; count * sm];
    status[2 * sm] = 1.0; // member 2 diverged earlier
    let up = |name: &str, v: &[f32]| GpuTensor::upload(g, name, v, &[v.len()]).unwrap();
    let pad = |v: Vec<f32>| {
        let mut v = v;
        v.resize(count * stride, 0.0);
        v
    };
    let (tp, tg, tv) = (
        up("p", &pad(p_all)),
        up("g", &pad(g_all)),
        up("v", &pad(v_all)),
    );
    let ttable =
        GpuTensor::upload(g, "table", bytemuck::cast_slice(&table), &[table.len()]).unwrap();
    let tstatus = up("status", &status);
    let d = sgd_update::dispatch_members(
        g,
        kn,
        "members",
        sgd_update::SgdUpdateBuffers {
            params: tp.view(),
            grads: tg.view(),
            velocity: tv.view(),
            no_decay: ttable.view(),
            status: tstatus.view(),
        },
        len,
        2,
        SgdMembers {
            count,
            stride,
            hyper_offset,
            steps_offset,
            stride_status: sm,
        },
    )
    .unwrap();
    let rec = StepRecord {
        index: step_index,
        ..record(1)
    };
    run(g, kn, &d, rec);
    let (got_p, got_v) = (tp.read(g).unwrap(), tv.read(g).unwrap());
    for j in 0..count {
        let ms = steps[step_index as usize * count + j];
        let (mut want_p, mut want_v) = (p[j].clone(), v[j].clone());
        if ms.flags & MEMBER_FROZEN == 0 && j != 2 {
            let (tp1, tg1, tv1) = (up("p1", &p[j]), up("g1", &gr[j]), up("v1", &v[j]));
            let nd = GpuTensor::upload(g, "nd", bytemuck::cast_slice(&ranges), &[4]).unwrap();
            let st1 = up("st1", &[0.0; 4]);
            let d = sgd_update::dispatch(
                g,
                kn,
                "single",
                sgd_update::SgdUpdateBuffers {
                    params: tp1.view(),
                    grads: tg1.view(),
                    velocity: tv1.view(),
                    no_decay: nd.view(),
                    status: st1.view(),
                },
                len,
                if cfgs[j].decay_bias { 0 } else { 2 },
                &cfgs[j],
            )
            .unwrap();
            let rec1 = StepRecord {
                lr: ms.lr,
                first: ms.flags & MEMBER_FIRST,
                ..record(1)
            };
            run(g, kn, &d, rec1);
            want_p = tp1.read(g).unwrap();
            want_v = tv1.read(g).unwrap();
        }
        let what = format!("member {j} ({:?}, flags {})", cfgs[j], ms.flags);
        assert_eq!(
            bits(&got_p[j * stride..j * stride + len]),
            bits(&want_p),
            "params of {what}"
        );
        assert_eq!(
            bits(&got_v[j * stride..j * stride + len]),
            bits(&want_v),
            "velocity of {what}"
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
    let err = matmul::dispatch_members(
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
