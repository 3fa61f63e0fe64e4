//! The fused softmax + cross-entropy kernel against the CPU reference (`wgtrain::cpu`, f64
//! accumulation): random shapes with outliers, huge, equal and one-hot logits, and labels
//! out of range. Outputs are poisoned with NaN first, so an unwritten element fails.
//! (Split from `kernel_parity.rs`.)

use crate::common;

use common::{assert_close, gpu, integers, record, uniform, with_outliers};
use wgtrain::cpu;
use wgtrain::gpu::GpuTensor;
use wgtrain::gpu::kernels::softmax_cross_entropy::LossMembers;
use wgtrain::gpu::kernels::{self, softmax_cross_entropy};

struct SoftmaxRun {
    rows: Vec<f32>,
    dlogits: Vec<f32>,
    metrics: Vec<f32>,
    status: Vec<u32>,
}

fn run_softmax(logits: &[f32], labels: &[u32], classes: usize) -> SoftmaxRun {
    let (g, kn) = gpu();
    let b = labels.len();
    let tl = GpuTensor::upload(g, "logits", logits, &[b, classes]).unwrap();
    let ty = GpuTensor::upload(g, "labels", bytemuck::cast_slice(labels), &[b]).unwrap();
    let td = GpuTensor::poisoned(g, "dlogits", &[b, classes]).unwrap();
    let tr = GpuTensor::poisoned(g, "rows", &[b, 2]).unwrap();
    let tm = GpuTensor::upload(
        g,
        "metrics",
        &[0.0, 0.0, 0.0, 0.0, f32::NAN, f32::NAN],
        &[6],
    )
    .unwrap();
    let bufs = softmax_cross_entropy::SoftmaxCrossEntropyBuffers {
        logits: tl.view(),
        labels: ty.view(),
        dlogits: td.view(),
        rows: tr.view(),
        metrics: tm.view(),
        dbias: None,
    };
    let d =
        softmax_cross_entropy::dispatch(g, kn, "t", bufs, b, classes, true, LossMembers::ONE, None)
            .unwrap();
    kernels::run(g, kn, &[d], record(b), 1).unwrap();
    let all = tm.read(g).unwrap();
    let status = vec![all[0] as u32, all[1].to_bits()];
    SoftmaxRun {
        rows: tr.read(g).unwrap(),
        dlogits: td.read(g).unwrap(),
        metrics: all[4..].to_vec(),
        status,
    }
}

fn check_softmax(logits: &[f32], labels: &[u32], classes: usize, what: &str) {
    let got = run_softmax(logits, labels, classes);
    let want = cpu::softmax_cross_entropy(logits, labels, classes);
    let loss: Vec<f32> = got.rows.iter().step_by(2).copied().collect();
    let correct: Vec<f32> = got.rows.iter().skip(1).step_by(2).copied().collect();
    assert_close(&format!("{what}: loss"), &loss, &want.loss, 1e-5, 1e-5);
    assert_eq!(
        correct,
        want.correct
            .iter()
            .map(|&c| f32::from(u8::from(c)))
            .collect::<Vec<_>>(),
        "{what}: correct flags"
    );
    assert_close(
        &format!("{what}: dlogits"),
        &got.dlogits,
        &want.dlogits,
        1e-7,
        1e-4,
    );
    let loss_sum: f64 = want.loss.iter().map(|&v| f64::from(v)).sum();
    assert_close(
        &format!("{what}: loss sum"),
        &got.metrics[..1],
        &[loss_sum as f32],
        1e-4,
        1e-5,
    );
    assert_eq!(
        got.metrics[1] as usize,
        want.correct.iter().filter(|&&c| c).count(),
        "{what}: correct count"
    );
    assert_eq!(
        got.status[0],
        u32::from(!loss_sum.is_finite()),
        "{what}: status"
    );
}

#[test]
fn softmax_cross_entropy_matches_reference_on_random_shapes() {
    for (b, c, seed) in [
        (1, 10, 1),
        (7, 10, 2),
        (64, 10, 3),
        (257, 10, 4),
        (1000, 61, 5),
        (3, 1, 6),
        (600, 2, 7),
    ] {
        let logits = with_outliers(seed, b * c);
        let labels = integers(seed, b, c as u32);
        check_softmax(&logits, &labels, c, &format!("B={b} C={c}"));
    }
}

#[test]
fn softmax_cross_entropy_is_stable_on_huge_equal_and_one_hot_logits() {
    let c = 10;
    let mut logits = Vec::new();
    // ±1e4, ±1e30 and ±3e38: a naive exp overflows on every one of these rows.
    for scale in [1e4f32, -1e4, 1e30, -1e30, 3e38] {
        let mut row = vec![0.0; c];
        row[3] = scale;
        row[7] = -scale;
        logits.extend(row);
    }
    logits.extend(vec![5.0; c]); // all equal: loss ln(10), argmax = first
    let mut one_hot = vec![-50.0; c];
    one_hot[2] = 50.0;
    logits.extend(one_hot);
    let labels = [3, 3, 7, 0, 3, 0, 2];
    check_softmax(&logits, &labels, c, "outliers");
    let got = run_softmax(&logits, &labels, c);
    assert!(
        got.rows.iter().step_by(2).all(|l| l.is_finite()),
        "non-finite loss on large logits: {:?}",
        got.rows
    );
    assert!(
        (got.rows[10] - 10f32.ln()).abs() < 1e-6,
        "all-equal logits: loss {}",
        got.rows[10]
    );
}

/// Issue 10 item 1: with every logit near 1e8 (f32 spacing 8), `max + log(sum) - logit`
/// rounded `log(sum)` away: `[[1e8, 1e8]]`, target 1 gave loss 0 instead of ln 2, and
/// `[[-1e7; 3]]` gave 1 instead of ln 3. The loss is now `(max - logit) + log(sum)`, on the
/// GPU and in the reference; the expected values are ln C by hand (a uniform softmax).
#[test]
fn regression_loss_at_large_common_logits_keeps_log_sum() {
    for (row, label, want) in [
        (vec![1e8f32, 1e8], 1u32, 2f64.ln()),
        (vec![-1e7f32; 3], 0, 3f64.ln()),
        (vec![3e37f32; 10], 9, 10f64.ln()),
    ] {
        let c = row.len();
        let gpu_loss = run_softmax(&row, &[label], c).rows[0];
        let cpu_loss = cpu::softmax_cross_entropy(&row, &[label], c).loss[0];
        for (path, got) in [("gpu", gpu_loss), ("cpu reference", cpu_loss)] {
            assert!(
                (f64::from(got) - want).abs() < 1e-6,
                "{path}: logits {:e} x {c}, target {label}: loss {got}, want {want}",
                row[0]
            );
        }
    }
}

/// A label outside the class range must never produce a finite loss.
#[test]
fn regression_label_out_of_range_gives_nan_loss_and_sets_status() {
    let logits = uniform(1, 4 * 10, -1.0, 1.0);
    let got = run_softmax(&logits, &[1, 2, 10, 3], 10);
    assert!(got.rows[4].is_nan(), "loss of the bad row: {}", got.rows[4]);
    assert!(got.metrics[0].is_nan());
    assert_eq!(got.status, [1, 0]);
}

/// The fused bias gradient (`dbias`): `Σ_b dlogits[b, c]` over the step's rows, against
/// `column_sum` over the same launch's dlogits (the unfused path, which adds the rows in the
/// same order 0..B: bit for bit) and against the CPU reference's column sums (f64). Ragged
/// shapes: rows not a multiple of the 256-wide workgroup, more classes than invocations
/// (C = 300: a second column pass), and a partial last minibatch (`rows` < `max_batch`).
#[test]
fn fused_bias_gradient_matches_column_sum_and_reference() {
    use wgtrain::gpu::kernels::column_sum;
    use wgtrain::gpu::kernels::matmul::BatchDim;
    let (g, kn) = gpu();
    for (max_batch, rows, c, seed) in [
        (300, 300, 10, 11),
        (1000, 1000, 61, 12),
        (7, 7, 300, 13),
        (64, 50, 10, 14),
        (257, 1, 3, 15),
    ] {
        let what = format!("B={rows} of {max_batch}, C={c}");
        let logits = with_outliers(seed, max_batch * c);
        let labels = integers(seed, max_batch, c as u32);
        let tl = GpuTensor::upload(g, "logits", &logits, &[max_batch, c]).unwrap();
        let ty =
            GpuTensor::upload(g, "labels", bytemuck::cast_slice(&labels), &[max_batch]).unwrap();
        let td = GpuTensor::poisoned(g, "dlogits", &[max_batch, c]).unwrap();
        let tr = GpuTensor::poisoned(g, "rows", &[max_batch, 2]).unwrap();
        let tm = GpuTensor::upload(g, "metrics", &[0.0; 6], &[6]).unwrap();
        let tdb = GpuTensor::poisoned(g, "dbias", &[c]).unwrap();
        let tcs = GpuTensor::poisoned(g, "colsum", &[c]).unwrap();
        let bufs = softmax_cross_entropy::SoftmaxCrossEntropyBuffers {
            logits: tl.view(),
            labels: ty.view(),
            dlogits: td.view(),
            rows: tr.view(),
            metrics: tm.view(),
            dbias: Some(tdb.view()),
        };
        let fused = softmax_cross_entropy::dispatch(
            g,
            kn,
            "t",
            bufs,
            max_batch,
            c,
            true,
            LossMembers::ONE,
            None,
        )
        .unwrap();
        let colsum = column_sum::dispatch(
            g,
            kn,
            "colsum",
            max_batch,
            c,
            BatchDim::M,
            (1, 0, 0),
            td.view(),
            tcs.view(),
        )
        .unwrap();
        kernels::run(g, kn, &[fused, colsum], record(rows), 1).unwrap();
        let got = tdb.read(g).unwrap();
        let unfused = tcs.read(g).unwrap();
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            unfused.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{what}: fused vs column_sum"
        );
        let want = cpu::softmax_cross_entropy(&logits[..rows * c], &labels[..rows], c);
        let want_db: Vec<f32> = (0..c)
            .map(|k| {
                (0..rows)
                    .map(|r| f64::from(want.dlogits[r * c + k]))
                    .sum::<f64>() as f32
            })
            .collect();
        assert_close(&format!("{what}: dbias"), &got, &want_db, 1e-6, 1e-4);
    }
}
