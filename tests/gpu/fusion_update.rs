//! The `update` fusion (`Fusions::update`): the SGD step applied in the epilogue of each
//! layer's weight-gradient product (`matmul::sgd`, `EpilogueOperands::Sgd`) against the
//! unfused launches (matmul, `column_sum`, `sgd_update`). Same additions in the same order,
//! the same SGD arithmetic (`shaders/sgd_step.wgsl`) and the same SGD table (issue 22): the
//! parameters and momentum must agree bit for bit, and with the CPU reference within float
//! tolerance. Kernel level: every matmul variant, both orientations of C, ragged shapes and
//! a partial minibatch, momentum / nesterov / dampening / decoupled decay / undecayed
//! biases, first and later steps, a flagged non-finite loss; K members in one launch (each
//! its own settings, learning rate and flags from the table, frozen and diverged members
//! left alone) against their single launches and the CPU, up to a grid past 65,535
//! workgroups. Engine level: epochs of fused and unfused steps (SGD settings changed
//! between epochs, the last partial minibatch) give the same metrics and weights.

use crate::common;

use std::sync::atomic::AtomicBool;

use common::{assert_close, gpu, integers, uniform};
use wgtrain::cpu::{self, SgdStep, sgd_update_element};
use wgtrain::data::Dataset;
use wgtrain::engine::{Engine, EvalSet, RunData};
use wgtrain::gpu::kernels::matmul::{
    self, BatchDim, Epilogue, EpilogueOperands, MatmulLaunch, MatmulMembers, MatmulSpec,
    MatmulVariant, SgdOperands,
};
use wgtrain::gpu::kernels::sgd_update::{SgdTable, member_settings};
use wgtrain::gpu::kernels::softmax_cross_entropy::METRICS_HEADER;
use wgtrain::gpu::kernels::{self, Dispatch, column_sum, sgd_update};
use wgtrain::gpu::{Fusions, GpuTensor, StepRecord, View};
use wgtrain::optim::SgdConfig;
use wgtrain::step::{MEMBER_FIRST, MEMBER_FROZEN, MemberStep};
use wgtrain::{Device, RunConfig};

/// The SGD settings the kernel cases cover.
fn sgd_cases() -> Vec<(&'static str, SgdConfig)> {
    vec![
        ("plain", SgdConfig::default()),
        (
            "momentum+nesterov",
            SgdConfig {
                weight_decay: 1e-3,
                momentum: 0.9,
                nesterov: true,
                ..SgdConfig::default()
            },
        ),
        (
            "dampening+decoupled+undecayed bias",
            SgdConfig {
                weight_decay: 0.05,
                momentum: 0.5,
                dampening: 0.1,
                decoupled_weight_decay: true,
                decay_bias: false,
                ..SgdConfig::default()
            },
        ),
        (
            "coupled+undecayed bias",
            SgdConfig {
                weight_decay: 0.02,
                momentum: 0.8,
                decay_bias: false,
                ..SgdConfig::default()
            },
        ),
    ]
}

/// One layer's weight-gradient update: `o` outputs, `i` inputs, launches sized for `k`
/// rows run on a minibatch of `batch`.
struct Case {
    o: usize,
    i: usize,
    k: usize,
    batch: usize,
    flipped: bool,
    first: bool,
    status: f32,
}

/// Parameters and momentum after the fused launch, after the unfused launches, the CPU
/// reference's, and the initial ones; `None` when `variant` does not run here.
#[allow(clippy::type_complexity)]
fn run_case(
    variant: MatmulVariant,
    c: &Case,
    cfg: &SgdConfig,
    seed: u64,
) -> Option<[(Vec<f32>, Vec<f32>); 4]> {
    let (g, kn) = gpu();
    if variant.supports(g).is_err() {
        return None;
    }
    let (o, i) = (c.o, c.i);
    let bias_at = (o * i).next_multiple_of(64);
    let p_len = (bias_at + o).next_multiple_of(64);
    // Weights and bias random, the padding between and after them zero (as in the engine).
    let live = |e: usize| e < o * i || (bias_at..bias_at + o).contains(&e);
    let fill = |s: u64, lo: f32, hi: f32| -> Vec<f32> {
        let r = uniform(s, p_len, lo, hi);
        (0..p_len)
            .map(|e| if live(e) { r[e] } else { 0.0 })
            .collect()
    };
    let params = fill(seed, -1.0, 1.0);
    let velocity = fill(seed + 1, -0.5, 0.5);
    let dz = uniform(seed + 2, c.k * o, -1.0, 1.0);
    let x = uniform(seed + 3, c.k * i, -1.0, 1.0);
    let mut status = [0.0; METRICS_HEADER];
    status[0] = c.status;
    // The SGD table of one member (issue 22: what the per-layer SGD record and the step
    // record's lr and first flag carried): the bias as the no-decay range, the settings,
    // one step.
    let lr = 0.05;
    let flags = if c.first { MEMBER_FIRST } else { 0 };
    let ranges = [bias_at as u32, (bias_at + o) as u32];
    let (layout, table) = sgd_table(
        &ranges,
        std::slice::from_ref(cfg),
        &[MemberStep {
            lr,
            flags,
            scale: 1.0,
        }],
    );
    let table: &[f32] = bytemuck::cast_slice(&table);
    let up = |name: &str, v: &[f32]| GpuTensor::upload(g, name, v, &[v.len()]).unwrap();
    let [tdz, tx, tstatus, ttable] = [
        ("dz", &dz[..]),
        ("x", &x[..]),
        ("status", &status[..]),
        ("table", table),
    ]
    .map(|(n, v)| up(n, v));
    let (fp, fv, up_, uv) = (
        up("fused.params", &params),
        up("fused.velocity", &velocity),
        up("unfused.params", &params),
        up("unfused.velocity", &velocity),
    );
    let grads = up("grads", &vec![0.0; p_len]);
    let dummy = up("dummy", &[0.0; 4]);
    let plain = MatmulSpec {
        m: o,
        n: i,
        k: c.k,
        trans_a: true,
        trans_b: false,
        trans_c: false,
        epilogue: Epilogue::None,
        batch_dim: BatchDim::K,
    };
    let spec = if c.flipped {
        MatmulSpec {
            m: i,
            n: o,
            trans_c: true,
            ..plain
        }
    } else {
        plain
    };
    let (lhs, rhs) = if c.flipped {
        (tx.view(), tdz.view())
    } else {
        (tdz.view(), tx.view())
    };
    let sgd = SgdOperands {
        status: tstatus.view(),
        status_stride: 0,
        table: ttable.view(),
        hyper_offset: layout.hyper_offset,
        steps_offset: layout.steps_offset,
        velocity: part(&fv, 0, bias_at + o),
        sum_offset: 0,
        bias_offset: bias_at,
    };
    let fused = sgd_launch(
        variant,
        spec,
        MatmulMembers::ONE,
        [lhs, rhs, part(&fp, 0, bias_at + o), dummy.view()],
        sgd,
    )
    .unwrap();
    let weight_grad = MatmulLaunch::new(spec, lhs, rhs, part(&grads, 0, o * i), dummy.view());
    let unfused = vec![
        matmul::dispatch(g, kn, variant, "weight_grad", weight_grad).unwrap(),
        column_sum::dispatch(
            g,
            kn,
            "bias_grad",
            c.k,
            o,
            BatchDim::M,
            (1, 0, 0),
            tdz.view(),
            part(&grads, bias_at, o),
        )
        .unwrap(),
        sgd_update::dispatch(
            g,
            kn,
            "sgd_update",
            sgd_update::SgdUpdateBuffers {
                params: up_.view(),
                grads: grads.view(),
                velocity: uv.view(),
                table: ttable.view(),
                status: tstatus.view(),
            },
            (p_len, p_len),
            &layout,
            0,
        )
        .unwrap(),
    ];
    let rec = StepRecord {
        batch: c.batch as u32,
        ..Default::default()
    };
    kernels::run(g, kn, &[fused], rec, 1).unwrap();
    kernels::run(g, kn, &unfused, rec, 1).unwrap();

    // The CPU reference: f64-accumulated product over the minibatch, column sums, SGD.
    let (mut cp, mut cv) = (params.clone(), velocity.clone());
    if c.status == 0.0 {
        let rows = c.batch;
        let dw = cpu::matmul(&dz[..rows * o], &x[..rows * i], o, i, rows, true, false);
        let db = cpu::column_sum(&dz[..rows * o], rows, o);
        let mut cg = vec![0.0; p_len];
        cg[..o * i].copy_from_slice(&dw);
        cg[bias_at..bias_at + o].copy_from_slice(&db);
        let no_decay = if cfg.decay_bias {
            vec![]
        } else {
            vec![(bias_at, bias_at + o)]
        };
        cpu::sgd_update(&mut cp, &cg, &mut cv, cfg, lr, c.first, &no_decay);
    }
    Some([
        (fp.read(g).unwrap(), fv.read(g).unwrap()),
        (up_.read(g).unwrap(), uv.read(g).unwrap()),
        (cp, cv),
        (params, velocity),
    ])
}

/// An SGD table of `cfgs.len()` members: the no-decay `ranges`, each member's settings,
/// then the member steps `steps` (`[steps, K]`).
fn sgd_table(ranges: &[u32], cfgs: &[SgdConfig], steps: &[MemberStep]) -> (SgdTable, Vec<u32>) {
    let layout = SgdTable::new(ranges.len() / 2, cfgs.len(), steps.len() / cfgs.len());
    let mut table: Vec<u32> = ranges.to_vec();
    table.extend(cfgs.iter().flat_map(member_settings));
    table.extend(bytemuck::cast_slice::<MemberStep, u32>(steps));
    assert_eq!(table.len(), layout.words());
    (layout, table)
}

/// The fused weight-gradient launch of `spec` (its epilogue made `SgdUpdate`) on `variant`
/// for `members`: operands `[A, B, the layers' parameters, dummy]` and the SGD operands.
fn sgd_launch(
    variant: MatmulVariant,
    spec: MatmulSpec,
    members: MatmulMembers,
    [a, b, params, dummy]: [View<'_>; 4],
    sgd: SgdOperands<'_>,
) -> wgtrain::Result<Dispatch> {
    let (g, kn) = gpu();
    let spec = MatmulSpec {
        epilogue: Epilogue::SgdUpdate,
        ..spec
    };
    let launch = MatmulLaunch::new(spec, a, b, params, dummy)
        .with_epilogue(EpilogueOperands::Sgd(sgd))
        .with_members(members);
    matmul::dispatch(g, kn, variant, "fused", launch)
}

/// `len` floats of `t` from float `at`.
fn part(t: &GpuTensor, at: usize, len: usize) -> View<'_> {
    View {
        buffer: &t.buffer,
        offset: at as u64 * 4,
        len,
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `got` and `want` hold the same bits; else fails naming the first differing index, both
/// values and how many differ.
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let differ: Vec<usize> = (0..got.len())
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .collect();
    if let Some(&i) = differ.first() {
        panic!(
            "{what}: {} of {} elements differ; first at {i}: {} vs {}",
            differ.len(),
            got.len(),
            got[i],
            want[i]
        );
    }
}

/// Every variant, both orientations, ragged shapes (a full and a partial minibatch, a
/// multiple-of-4 input count for the subgroup kernel's vec4 transposed stores, and a
/// multiple-of-4 output count for its vec4 bias sums), the SGD
/// cases in turn (each variant meets all four), first and later steps: fused == unfused
/// bit for bit, both near the CPU.
#[test]
fn sgd_epilogue_gives_the_unfused_launches_bits() {
    // (O, I, K, minibatch): O = 12 lets the subgroup kernel read dZ as vec4 for the biases.
    let shapes = [
        (13, 37, 29, 29),
        (13, 37, 29, 23),
        (10, 36, 21, 21),
        (12, 37, 29, 26),
    ];
    let cases = sgd_cases();
    let mut ran = 0;
    for (vi, variant) in MatmulVariant::ALL.into_iter().enumerate() {
        for (si, &(o, i, k, batch)) in shapes.iter().enumerate() {
            for flipped in [false, true] {
                let ci = (vi + 2 * si + usize::from(flipped)) % cases.len();
                {
                    let (name, cfg) = &cases[ci];
                    let first = (vi + si) % 2 == 0;
                    let case = Case {
                        o,
                        i,
                        k,
                        batch,
                        flipped,
                        first,
                        status: 0.0,
                    };
                    let seed = 10 * (si * 4 + ci) as u64;
                    let Some([fused, unfused, cpu_ref, init]) = run_case(variant, &case, cfg, seed)
                    else {
                        continue;
                    };
                    let what = format!(
                        "{variant} {o}x{i} k={k} batch={batch} flipped={flipped} {name} first={first}"
                    );
                    assert_ne!(bits(&fused.0), bits(&init.0), "{what}: nothing updated");
                    assert_bits(&format!("{what}: parameters"), &fused.0, &unfused.0);
                    assert_bits(&format!("{what}: momentum"), &fused.1, &unfused.1);
                    assert_close(&what, &fused.0, &cpu_ref.0, 1e-5, 1e-4);
                    assert_close(&what, &fused.1, &cpu_ref.1, 1e-5, 1e-4);
                    ran += 1;
                }
            }
        }
    }
    assert!(ran >= 3 * 4 * 2, "too few variants ran: {ran}");
}

/// A non-finite loss flagged in the status header: the fused launch leaves parameters and
/// momentum untouched, as `sgd_update` does.
#[test]
fn sgd_epilogue_skips_the_update_after_a_non_finite_loss() {
    let (_, cfg) = &sgd_cases()[1];
    for variant in MatmulVariant::ALL {
        for flipped in [false, true] {
            let case = Case {
                o: 13,
                i: 37,
                k: 29,
                batch: 29,
                flipped,
                first: false,
                status: 1.0,
            };
            let Some([fused, unfused, _, init]) = run_case(variant, &case, cfg, 5) else {
                continue;
            };
            assert_bits(&format!("{variant} parameters"), &fused.0, &init.0);
            assert_bits(&format!("{variant} momentum"), &fused.1, &init.1);
            assert_bits(
                &format!("{variant} unfused parameters"),
                &unfused.0,
                &init.0,
            );
        }
    }
}

/// The fused launch is refused when the bias loop would pass the loop cap, and
/// `matmul::sgd::fits` says so (the engine then keeps the unfused launches).
#[test]
fn sgd_epilogue_respects_the_loop_cap() {
    let (g, _) = gpu();
    let v = MatmulVariant::Rows;
    let Some(cap) = g.loop_cap else {
        assert!(matmul::sgd::fits(g, v, 1 << 20));
        return;
    };
    // Rows: K loop k + 1, stores 80, bias loop k + 1 (and 5 spare).
    let k_max = ((cap - 87) / 2) as usize;
    assert!(matmul::sgd::fits(g, v, k_max));
    assert!(!matmul::sgd::fits(g, v, k_max + 1));
    // The unfused product alone still fits there in one chunk.
    assert!(v.loop_passes(k_max as u64 + 1) <= cap);
}

/// The SGD settings of member j of a members launch: every option somewhere (weight decay
/// or none, coupled or decoupled, momentum with and without nesterov and dampening, biases
/// decayed or not).
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

/// K layers' weight-gradient updates of `o` outputs and `i` inputs over a minibatch of
/// `batch` (launch sized for `k` rows), `flipped` computing C transposed; member j has its
/// own dZ (and, flipped, its own X: layer 0 shares X), parameters, momentum, settings
/// (`cfgs[j]`) and step (`steps[j]`), and its status word set where `diverged[j]`.
struct Members {
    o: usize,
    i: usize,
    k: usize,
    batch: usize,
    flipped: bool,
    cfgs: Vec<SgdConfig>,
    steps: Vec<MemberStep>,
    diverged: Vec<bool>,
}

/// A launch's member layout of the layer's parameters: W `[O, I]`, the bias from
/// `bias_at`, members `stride` apart.
struct ParamsLayout {
    bias_at: usize,
    stride: usize,
}

impl Members {
    /// Floats between members' dZ `[K, O]` and (when not shared) X `[K, I]`: multiples of 4.
    fn strides(&self) -> (usize, usize) {
        let st = |len: usize| len.next_multiple_of(4);
        (st(self.k * self.o), st(self.k * self.i))
    }

    fn layout(&self) -> ParamsLayout {
        let bias_at = (self.o * self.i).next_multiple_of(4) + 4;
        ParamsLayout {
            bias_at,
            stride: (bias_at + self.o).next_multiple_of(4) + 4,
        }
    }

    /// The initial parameters (or momentum, `seed` apart) of every member, stacked, with
    /// NaN everywhere but W and the bias (nothing else may be written).
    fn state(&self, seed: u64) -> Vec<f32> {
        let (l, count) = (self.layout(), self.cfgs.len());
        let r = uniform(seed, count * l.stride, -1.0, 1.0);
        (0..count * l.stride)
            .map(|e| {
                let at = e % l.stride;
                let live = at < self.o * self.i || (l.bias_at..l.bias_at + self.o).contains(&at);
                if live { r[e] } else { f32::NAN }
            })
            .collect()
    }
}

/// Runs `m` in one launch on `variant` on the stacked `dz` and `x` ([`Members::strides`]
/// apart; X shared when it holds one member's): every member's parameters and momentum
/// after it.
fn run_members(
    variant: MatmulVariant,
    m: &Members,
    params: &[f32],
    velocity: &[f32],
    (dz, x): (&[f32], &[f32]),
) -> (Vec<f32>, Vec<f32>) {
    let (g, kn) = gpu();
    let count = m.cfgs.len();
    let l = m.layout();
    let (sdz, sx) = m.strides();
    let sx = if x.len() > m.k * m.i { sx } else { 0 };
    let ranges = [l.bias_at as u32, (l.bias_at + m.o) as u32];
    let (table_layout, table) = sgd_table(&ranges, &m.cfgs, &m.steps);
    let table: &[f32] = bytemuck::cast_slice(&table);
    let status: Vec<f32> = m
        .diverged
        .iter()
        .flat_map(|&d| [f32::from(u8::from(d)), 0.0, 0.0, 0.0])
        .collect();
    let up = |name: &str, v: &[f32]| GpuTensor::upload(g, name, v, &[v.len()]).unwrap();
    let (tp, tv, tdz, tx) = (up("p", params), up("v", velocity), up("dz", dz), up("x", x));
    let (ttable, tstatus, dummy) = (
        up("table", table),
        up("status", &status),
        up("d", &[0.0; 4]),
    );
    let plain = MatmulSpec {
        m: m.o,
        n: m.i,
        k: m.k,
        trans_a: true,
        trans_b: false,
        trans_c: false,
        epilogue: Epilogue::None,
        batch_dim: BatchDim::K,
    };
    let (spec, lhs, rhs, (sa, sb)) = if m.flipped {
        let spec = MatmulSpec {
            m: m.i,
            n: m.o,
            trans_c: true,
            ..plain
        };
        (spec, tx.view(), tdz.view(), (sx, sdz))
    } else {
        (plain, tdz.view(), tx.view(), (sdz, sx))
    };
    let members = MatmulMembers {
        count,
        a: sa,
        b: sb,
        c: l.stride,
        ..MatmulMembers::ONE
    };
    let sgd = SgdOperands {
        status: tstatus.view(),
        status_stride: 4,
        table: ttable.view(),
        hyper_offset: table_layout.hyper_offset,
        steps_offset: table_layout.steps_offset,
        velocity: tv.view(),
        sum_offset: 0,
        bias_offset: l.bias_at,
    };
    let d = sgd_launch(
        variant,
        spec,
        members,
        [lhs, rhs, tp.view(), dummy.view()],
        sgd,
    );
    let rec = StepRecord {
        batch: m.batch as u32,
        ..Default::default()
    };
    kernels::run(g, kn, &[d.unwrap()], rec, 1).unwrap();
    (tp.read(g).unwrap(), tv.read(g).unwrap())
}

/// Member j of `m` alone: its launch of one member, and the CPU reference (`SgdStep`,
/// `sgd_update_element`) on the f64 product and column sums; both `(params, velocity)`.
#[allow(clippy::type_complexity)]
fn member_alone(
    variant: MatmulVariant,
    m: &Members,
    j: usize,
    (params, velocity): (&[f32], &[f32]),
    (dz, x): (&[f32], &[f32]),
) -> [(Vec<f32>, Vec<f32>); 2] {
    let stride = m.layout().stride;
    let at = j * stride..(j + 1) * stride;
    let (sdz, sx) = m.strides();
    let dz = &dz[j * sdz..j * sdz + m.k * m.o];
    let x = if x.len() > m.k * m.i {
        &x[j * sx..j * sx + m.k * m.i]
    } else {
        x
    };
    let one = Members {
        cfgs: vec![m.cfgs[j].clone()],
        steps: vec![m.steps[j]],
        diverged: vec![m.diverged[j]],
        ..*m
    };
    let single = run_members(
        variant,
        &one,
        &params[at.clone()],
        &velocity[at.clone()],
        (dz, x),
    );
    let (mut p, mut v) = (params[at.clone()].to_vec(), velocity[at].to_vec());
    let ms = m.steps[j];
    if !ms.frozen() && !m.diverged[j] {
        let (o, i, rows, bias_at) = (m.o, m.i, m.batch, m.layout().bias_at);
        let dw = cpu::matmul(&dz[..rows * o], &x[..rows * i], o, i, rows, true, false);
        let db = cpu::column_sum(&dz[..rows * o], rows, o);
        let cfg = &m.cfgs[j];
        let step = SgdStep::new(cfg, ms.lr, ms.first());
        let wd = cfg.weight_decay as f32;
        for (e, g) in dw.iter().enumerate() {
            sgd_update_element(&step, &mut p[e], *g, &mut v[e], wd);
        }
        let bias_wd = if cfg.decay_bias { wd } else { 0.0 };
        for (e, g) in db.iter().enumerate() {
            let e = bias_at + e;
            sgd_update_element(&step, &mut p[e], *g, &mut v[e], bias_wd);
        }
    }
    [single, (p, v)]
}

/// The SGD epilogue for K = 5 members in one launch (issue 22: every fusion serves every
/// K, reading the one SGD table): each member's own settings (weight decay, momentum,
/// nesterov, dampening, decoupled decay, decay_bias), learning rate and flags (its first
/// step, frozen), one member's status word set. Every variant and both orientations of C
/// on a ragged shape and a partial minibatch (and the subgroup kernel's vec4 paths on
/// multiples of 4): each member equals its launch alone (K = 1)
/// bit for bit, and the CPU reference within float tolerance; the frozen and the diverged
/// member keep their parameters and momentum bit for bit; nothing outside W and the bias
/// (the padding, the gaps between members) is written.
#[test]
fn sgd_epilogue_members_match_their_single_launches_and_the_cpu() {
    let (g, _) = gpu();
    let count = 5;
    let mut ran = 0;
    // (O, I, K, minibatch): ragged; and O, I multiples of 4 (the subgroup kernel's vec4
    // bias sums and transposed stores), on the subgroup kernel and the adapter's default.
    let mut vec4_variants = vec![MatmulVariant::Subgroup, MatmulVariant::default_for(g)];
    vec4_variants.dedup();
    let cases = MatmulVariant::ALL
        .into_iter()
        .map(|v| (v, (13, 37, 29, 23)))
        .chain(vec4_variants.into_iter().map(|v| (v, (12, 36, 21, 21))));
    for (variant, (o, i, k, batch)) in cases {
        if variant.supports(g).is_err() {
            continue;
        }
        for flipped in [false, true] {
            let m = Members {
                o,
                i,
                k,
                batch,
                flipped,
                cfgs: (0..count).map(member_sgd).collect(),
                steps: (0..count)
                    .map(|j| MemberStep {
                        lr: 0.05 * (1 + j) as f32,
                        flags: [MEMBER_FIRST, 0, 0, MEMBER_FROZEN, MEMBER_FIRST][j],
                        scale: 1.0,
                    })
                    .collect(),
                diverged: (0..count).map(|j| j == 2).collect(),
            };
            let (params, velocity) = (m.state(1), m.state(2));
            let (sdz, sx) = m.strides();
            let dz = uniform(3, count * sdz, -1.0, 1.0);
            let x = if flipped {
                uniform(4, count * sx, -1.0, 1.0)
            } else {
                uniform(4, m.k * m.i, -1.0, 1.0)
            };
            let (got_p, got_v) = run_members(variant, &m, &params, &velocity, (&dz, &x));
            let stride = m.layout().stride;
            for j in 0..count {
                let what = format!("{variant} {o}x{i} k={k} flipped={flipped} member {j}");
                let at = j * stride..(j + 1) * stride;
                let [single, reference] =
                    member_alone(variant, &m, j, (&params, &velocity), (&dz, &x));
                assert_bits(
                    &format!("{what}: parameters"),
                    &got_p[at.clone()],
                    &single.0,
                );
                assert_bits(&format!("{what}: momentum"), &got_v[at.clone()], &single.1);
                let (init_p, init_v) = (&params[at.clone()], &velocity[at.clone()]);
                if m.steps[j].frozen() || m.diverged[j] {
                    assert_bits(
                        &format!("{what}: parameters kept"),
                        &got_p[at.clone()],
                        init_p,
                    );
                    assert_bits(&format!("{what}: momentum kept"), &got_v[at], init_v);
                    continue;
                }
                assert_ne!(
                    bits(&got_p[at.clone()]),
                    bits(init_p),
                    "{what}: nothing updated"
                );
                assert_close(&what, &got_p[at.clone()], &reference.0, 1e-5, 1e-4);
                if m.cfgs[j].momentum != 0.0 {
                    assert_close(&what, &got_v[at], &reference.1, 1e-5, 1e-4);
                }
            }
            ran += 1;
        }
    }
    assert!(ran >= 3 * 2, "too few variants ran: {ran}");
}

/// Members' row blocks past 65,535 workgroups: the fused launch's grid folds, and every
/// member is updated from its own settings and step (a third of them frozen), the last
/// ones included: sampled members against their single launches (bit for bit) and the
/// CPU, and every member moved unless frozen.
#[test]
fn sgd_epilogue_members_past_65535_row_blocks_fold_the_grid() {
    let (g, _) = gpu();
    for variant in [MatmulVariant::default_for(g), MatmulVariant::Register] {
        // Two row blocks per member: O = rows + 1 outputs (M of the product).
        let rows = (1..).find(|&r| variant.blocks(r + 1, 3).1 == 2).unwrap();
        let count = 32_800;
        let m = Members {
            o: rows + 1,
            i: 3,
            k: 5,
            batch: 5,
            flipped: false,
            cfgs: (0..count).map(member_sgd).collect(),
            steps: (0..count)
                .map(|j| MemberStep {
                    lr: 0.01 * (1 + j % 7) as f32,
                    flags: [MEMBER_FIRST, 0, MEMBER_FROZEN][j % 3],
                    scale: 1.0,
                })
                .collect(),
            diverged: vec![false; count],
        };
        assert!(variant.blocks(m.o, m.i).1 * count as u64 > 65_535);
        let (params, velocity) = (m.state(5), m.state(6));
        let dz = uniform(7, count * m.strides().0, -1.0, 1.0);
        let x = uniform(8, m.k * m.i, -1.0, 1.0);
        let (got_p, _) = run_members(variant, &m, &params, &velocity, (&dz, &x));
        let stride = m.layout().stride;
        for j in [0, 1, 2, count / 2, count - 2, count - 1] {
            let at = j * stride..(j + 1) * stride;
            let [single, reference] = member_alone(variant, &m, j, (&params, &velocity), (&dz, &x));
            assert_bits(
                &format!("{variant} member {j}"),
                &got_p[at.clone()],
                &single.0,
            );
            assert_close(
                &format!("{variant} member {j}"),
                &got_p[at],
                &reference.0,
                1e-5,
                1e-4,
            );
        }
        for j in 0..count {
            let at = j * stride..(j + 1) * stride;
            assert_eq!(
                bits(&got_p[at.clone()]) == bits(&params[at]),
                m.steps[j].frozen(),
                "{variant} member {j}: only the frozen keep their parameters"
            );
        }
    }
}

/// A synthetic set of `n` 7 x 5 images (35 features) over 10 classes.
fn synthetic(seed: u64, n: usize) -> Dataset {
    Dataset {
        images: integers(seed, n * 35, 256)
            .into_iter()
            .map(|v| v as u8)
            .collect(),
        labels: integers(seed + 1, n, 10),
        rows: 7,
        cols: 5,
    }
}

fn open<'a>(
    fusions: Fusions,
    variant: MatmulVariant,
    cfg: &RunConfig,
    data: RunData<'a>,
) -> Box<dyn Engine + 'a> {
    let (gpu, kernels) = gpu();
    wgtrain::open(
        Device::Gpu {
            gpu,
            kernels,
            matmul: variant.into(),
            fusions,
        },
        std::slice::from_ref(cfg),
        data,
    )
    .unwrap()
}

/// Epochs of steps with explicit step records: a shuffled order, minibatches of the
/// configured size and a last partial one, the first step flagged, the learning rate
/// decaying; the SGD settings change after every epoch. Returns each epoch's sums and
/// the parameters after it.
fn train(engine: &mut dyn Engine, epochs: usize) -> Vec<(Vec<[f32; 2]>, Vec<f32>)> {
    let setup = engine.setup().shared().clone();
    let batch = setup.config.batch_size;
    let mut order = setup.train_indices.clone();
    let settings = sgd_cases();
    let mut out = Vec::new();
    for e in 0..epochs {
        // A seeded shuffle (the same for both engines).
        let keys = integers(100 + e as u64, order.len(), u32::MAX);
        let mut keyed: Vec<(u32, u32)> = keys.into_iter().zip(order.iter().copied()).collect();
        keyed.sort();
        order = keyed.into_iter().map(|(_, s)| s).collect();
        let steps: Vec<StepRecord> = (0..order.len().div_ceil(batch))
            .map(|s| StepRecord {
                offset: (s * batch) as u32,
                batch: batch.min(order.len() - s * batch) as u32,
                index: s as u32,
                ..Default::default()
            })
            .collect();
        // The learning rate and first-step flag of each step (issue 22: the member-step
        // table, no longer the step records).
        let member_steps: Vec<MemberStep> = (0..steps.len())
            .map(|s| MemberStep {
                lr: 0.1 / (1.0 + s as f32),
                flags: if e == 0 && s == 0 { MEMBER_FIRST } else { 0 },
                scale: 1.0,
            })
            .collect();
        let stop = AtomicBool::new(false);
        let sums = engine
            .train_epoch(&order, &steps, &member_steps, &mut |_| {}, &stop)
            .unwrap();
        out.push((sums[0].clone(), engine.params(0).unwrap()));
        let (_, next) = &settings[(e + 1) % settings.len()];
        let next = SgdConfig {
            decay_bias: setup.config.sgd.decay_bias,
            ..next.clone()
        };
        engine.set_sgd(0, &next).unwrap();
    }
    out
}

/// Fused and unfused steps give the same per-step sums, weights and evaluation, bit for
/// bit, over epochs with changing SGD settings and a last partial minibatch; one and two
/// hidden layers; the default kernel and the rows kernel; the fused step has 2 launches
/// fewer per layer-0 bias gradient and update.
#[test]
fn fused_update_steps_equal_unfused_steps() {
    let (g, _) = gpu();
    let (train_set, test_set) = (synthetic(1, 97), synthetic(3, 37));
    let data = RunData {
        train: &train_set,
        test: &test_set,
        classes: 10,
        micro_batch: None,
    };
    let fused_only = Fusions {
        update: true,
        ..Fusions::NONE
    };
    for (hidden, decay_bias) in [(vec![13], true), (vec![13, 11], false)] {
        for variant in [MatmulVariant::default_for(g), MatmulVariant::Rows] {
            let cfg = RunConfig {
                hidden: hidden.clone(),
                batch_size: 16, // 78 training samples: 4 full minibatches and one of 14
                seed: 7,
                validation_split: 0.2,
                sgd: SgdConfig {
                    momentum: 0.9,
                    decay_bias,
                    ..SgdConfig::default()
                },
                ..RunConfig::default()
            };
            let mut unfused = open(Fusions::NONE, variant, &cfg, data);
            let mut fused = open(fused_only, variant, &cfg, data);
            let layers = hidden.len() + 1;
            // Unfused: gather, L forwards, loss, L weight grads, L - 1 column sums (the
            // last bias gradient is the loss launch's), L - 1 input grads, update.
            assert_eq!(
                unfused.dispatches_per_step(),
                1 + layers + 1 + 3 * layers - 1
            );
            assert_eq!(
                fused.dispatches_per_step(),
                unfused.dispatches_per_step() - layers
            );
            let want = train(unfused.as_mut(), 3);
            let got = train(fused.as_mut(), 3);
            for (e, (g, w)) in got.iter().zip(&want).enumerate() {
                let what = format!("{hidden:?} {variant} epoch {e}");
                assert_eq!(g.0.len(), 5, "{what}: steps");
                assert_eq!(
                    g.0.iter()
                        .flatten()
                        .map(|v| v.to_bits())
                        .collect::<Vec<_>>(),
                    w.0.iter()
                        .flatten()
                        .map(|v| v.to_bits())
                        .collect::<Vec<_>>(),
                    "{what}: step sums"
                );
                assert_bits(&format!("{what}: parameters"), &g.1, &w.1);
            }
            assert_ne!(bits(&got[0].1), bits(&got[2].1), "training moved nothing");
            let (a, b) = (
                fused.evaluate(EvalSet::Test).unwrap()[0],
                unfused.evaluate(EvalSet::Test).unwrap()[0],
            );
            assert_eq!(
                a.loss.to_bits(),
                b.loss.to_bits(),
                "{hidden:?} {variant}: test loss"
            );
        }
    }
}

/// A non-finite loss (a NaN weight) flags the step: the fused update then leaves every
/// parameter as it was, as the unfused one does.
#[test]
fn fused_update_leaves_params_after_a_non_finite_loss() {
    let (train_set, test_set) = (synthetic(5, 60), synthetic(6, 10));
    let data = RunData {
        train: &train_set,
        test: &test_set,
        classes: 10,
        micro_batch: None,
    };
    let cfg = RunConfig {
        hidden: vec![13],
        batch_size: 16,
        seed: 3,
        validation_split: 0.0,
        sgd: SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        },
        ..RunConfig::default()
    };
    let fused_only = Fusions {
        update: true,
        ..Fusions::NONE
    };
    for fusions in [fused_only, Fusions::NONE] {
        let mut engine = open(fusions, MatmulVariant::default_for(&gpu().0), &cfg, data);
        let mut params = engine.params(0).unwrap();
        // In the output layer's bias: every logit of class 0 is NaN (a NaN before a ReLU
        // may be clamped away).
        let layout = engine.setup().shared().spec.layout();
        params[layout.layers[1].bias] = f32::NAN;
        engine.set_params(0, &params).unwrap();
        let sums = train(engine.as_mut(), 1);
        assert!(
            !sums[0].0[0][0].is_finite(),
            "{fusions:?}: the loss is finite"
        );
        assert_bits(
            &format!("{fusions:?}: parameters changed"),
            &sums[0].1,
            &params,
        );
    }
}
