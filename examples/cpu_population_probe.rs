//! Times the CPU engine's layer-0 products for a population of K members of an MLP
//! 784-H-10 (H = 256) at a batch size B, each way it could compute them, interleaved in
//! rounds so that a shared machine's load falls on all of them alike:
//!
//! - forward, wide: `Yᵀ [K·H, B] = W [K·H, I] · Xᵀ`, one SGEMM (what the engine runs);
//! - forward, wide with X on the row side: `Y [B, K·H] = X · Wᵀ`, one SGEMM;
//! - forward per member: K SGEMMs `Y_j = X · W_jᵀ` one after another (a single run's
//!   product, K times), and the same K SGEMMs in parallel (rayon, the engine before
//!   issue 28);
//! - weight gradient, wide: `dW [K·H, I] = dZᵀ · X`, one SGEMM; per member in turn; and
//!   per member in parallel (as `dW_jᵀ = Xᵀ · dZ_j`).
//!
//! `cargo run --release --example cpu_population_probe [K] [B] [ROUNDS]` (defaults 8, 64,
//! 20) prints each way's median and best milliseconds per call and GFLOP/s at the median.
//! `RAYON_NUM_THREADS=1` runs every way on one core (each SGEMM call is single-threaded).

use std::time::Instant;

use rayon::prelude::*;
use wgtrain::cpu_engine::gemm::{Operand, Shape, batched};

/// One way to compute the products: its name and the closure that runs it once.
type Way<'a> = (&'static str, Box<dyn FnMut() + 'a>);

const I: usize = 784;
const H: usize = 256;

fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("K B ROUNDS"));
    let k = args.next().unwrap_or(8);
    let b = args.next().unwrap_or(64);
    let rounds = args.next().unwrap_or(20);
    let w = values(k * H * I, 1);
    let x = values(b * I, 2);
    let dz = values(b * k * H, 3);
    let mut y = vec![0.0f32; b * k * H];
    let mut dw = vec![0.0f32; k * H * I];
    let shared = |rs, cs| Operand {
        offset: 0,
        rs,
        cs,
        member: 0,
    };
    let mut ways: Vec<Way<'_>> = Vec::new();
    {
        let (w, x, y) = (&w, &x, &mut y as *mut Vec<f32>);
        // SAFETY (the closures below): each closure runs alone, in turn, on this thread.
        let y = move || unsafe { &mut *y };
        ways.push((
            "forward, wide Wx (engine)",
            Box::new(move || {
                let wo = Operand {
                    offset: 0,
                    rs: I,
                    cs: 1,
                    member: H * I,
                };
                let yo = Operand {
                    offset: 0,
                    rs: 1,
                    cs: k * H,
                    member: H,
                };
                batched(
                    Shape { m: H, k: I, n: b },
                    0..k,
                    w,
                    wo,
                    x,
                    shared(1, I),
                    y(),
                    yo,
                );
            }),
        ));
        ways.push((
            "forward, wide xW",
            Box::new(move || {
                // One product with N = K·H: B = Wᵀ, all members' rows as columns.
                let wt = Operand {
                    offset: 0,
                    rs: 1,
                    cs: I,
                    member: 0,
                };
                let yo = Operand {
                    offset: 0,
                    rs: k * H,
                    cs: 1,
                    member: 0,
                };
                batched(
                    Shape {
                        m: b,
                        k: I,
                        n: k * H,
                    },
                    0..1,
                    x,
                    shared(I, 1),
                    w,
                    wt,
                    y(),
                    yo,
                );
            }),
        ));
        ways.push((
            "forward, K calls in turn",
            Box::new(move || {
                for j in 0..k {
                    let wt = Operand {
                        offset: j * H * I,
                        rs: 1,
                        cs: I,
                        member: 0,
                    };
                    let yo = Operand {
                        offset: j * H,
                        rs: k * H,
                        cs: 1,
                        member: 0,
                    };
                    batched(
                        Shape { m: b, k: I, n: H },
                        0..1,
                        x,
                        shared(I, 1),
                        w,
                        wt,
                        y(),
                        yo,
                    );
                }
            }),
        ));
        ways.push((
            "forward, K calls in parallel",
            Box::new(move || {
                let wt = Operand {
                    offset: 0,
                    rs: 1,
                    cs: I,
                    member: H * I,
                };
                let yo = Operand {
                    offset: 0,
                    rs: k * H,
                    cs: 1,
                    member: H,
                };
                // The members' own B (nothing shared): batched runs one SGEMM per member, rayon.
                batched(
                    Shape { m: b, k: I, n: H },
                    0..k,
                    x,
                    shared(I, 1),
                    w,
                    wt,
                    y(),
                    yo,
                );
            }),
        ));
    }
    {
        let (x, dz, dw) = (&x, &dz, &mut dw as *mut Vec<f32>);
        // SAFETY: as above.
        let dw = move || unsafe { &mut *dw };
        ways.push((
            "weight grad, wide (engine)",
            Box::new(move || {
                let dzt = Operand {
                    offset: 0,
                    rs: 1,
                    cs: k * H,
                    member: H,
                };
                let dwo = Operand {
                    offset: 0,
                    rs: I,
                    cs: 1,
                    member: H * I,
                };
                batched(
                    Shape { m: H, k: b, n: I },
                    0..k,
                    dz,
                    dzt,
                    x,
                    shared(I, 1),
                    dw(),
                    dwo,
                );
            }),
        ));
        ways.push((
            "weight grad, K calls in turn",
            Box::new(move || {
                for j in 0..k {
                    let dzt = Operand {
                        offset: j * H,
                        rs: 1,
                        cs: k * H,
                        member: 0,
                    };
                    let dwo = Operand {
                        offset: j * H * I,
                        rs: I,
                        cs: 1,
                        member: 0,
                    };
                    batched(
                        Shape { m: H, k: b, n: I },
                        0..1,
                        dz,
                        dzt,
                        x,
                        shared(I, 1),
                        dw(),
                        dwo,
                    );
                }
            }),
        ));
        ways.push((
            "weight grad, K calls in parallel",
            Box::new(move || {
                // dW_jᵀ [I, H] = Xᵀ · dZ_j: the members' own B, so one SGEMM per member (rayon).
                let dzo = Operand {
                    offset: 0,
                    rs: k * H,
                    cs: 1,
                    member: H,
                };
                let dwt = Operand {
                    offset: 0,
                    rs: 1,
                    cs: I,
                    member: H * I,
                };
                batched(
                    Shape { m: I, k: b, n: H },
                    0..k,
                    x,
                    shared(1, I),
                    dz,
                    dzo,
                    dw(),
                    dwt,
                );
            }),
        ));
    }
    let mut times = vec![Vec::new(); ways.len()];
    for _ in 0..rounds {
        for (t, (_, f)) in times.iter_mut().zip(ways.iter_mut()) {
            let start = Instant::now();
            f();
            t.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "K = {k}, B = {b}, I = {I}, H = {H}, {rounds} rounds, rayon {} threads, load {}",
        rayon::current_num_threads(),
        load.split_whitespace().next().unwrap_or("?")
    );
    let flop = 2.0 * (k * b * I * H) as f64;
    for ((name, _), t) in ways.iter().zip(&mut times) {
        t.sort_by(f64::total_cmp);
        let median = t[t.len() / 2];
        println!(
            "{name:<34} median {median:8.3} ms  best {:8.3} ms  {:6.1} GFLOP/s",
            t[0],
            flop / median / 1e6
        );
    }
    // Keep the outputs alive and used.
    let _ = (y.par_iter().sum::<f32>(), dw.par_iter().sum::<f32>());
}
