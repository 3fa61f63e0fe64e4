//! The CPU engine's matrix products: `C_j [M, N] = A_j [M, K] · B_j [K, N]` for the members
//! `j` of a population in one call ([`batched`]), each operand strided, on the
//! `matrixmultiply` SGEMM.
//!
//! Where every member multiplies the same B and the members' A and C lie one after another
//! along M (layer 0's forward product and weight gradient: every member multiplies the same
//! minibatch X), the members are **one wide product** of `count · M` rows: one SGEMM call,
//! which packs B once and parallelises over the rows. The other products (hidden and output
//! layers, each member its own operands) run one SGEMM per member, the members in parallel
//! (rayon).
//!
//! **Why a member's bits do not depend on the batching.** matrixmultiply (0.3, `gemm_loop`)
//! sums `C[i, j]` over K in blocks of `kc` = 256 from k = 0: each block is one register's
//! sequential fma chain from zero (the micro-kernel keeps one accumulator per element), and
//! the blocks are added to C in order. Only K and the kernel (fixed per CPU) decide that
//! order; M, N, the strides, the tiling, the packing and the threads only decide where and
//! when each element is computed. So member j of a wide product, a per-member call and a
//! single run's product give the same bits, and so does a product computed transposed
//! (`Cᵀ = Bᵀ · Aᵀ`: the same fma chain with its factors swapped).
//! `tests::wide_and_per_member_products_are_bit_identical` pins this on ragged shapes; if a
//! matrixmultiply update broke it, that test (and the population tests) would say so.

use std::ops::Range;
use std::sync::OnceLock;

use rayon::prelude::*;

/// The shape of one member's product: `C [M, N] = A [M, K] · B [K, N]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Rows of A and C.
    pub m: usize,
    /// The summed dimension.
    pub k: usize,
    /// Columns of B and C.
    pub n: usize,
}

/// Where one operand's matrices lie in their buffer, in floats: element `(r, c)` of member
/// `j`'s matrix is at `offset + j · member + r · rs + c · cs`. A `member` stride of 0
/// shares the operand between the members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operand {
    /// Index of member 0's element `(0, 0)`.
    pub offset: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
    /// Member stride (0: shared).
    pub member: usize,
}

impl Operand {
    /// Index of the last element of member `j`'s `rows x cols` matrix (both at least 1).
    fn last(&self, j: usize, rows: usize, cols: usize) -> usize {
        self.offset + j * self.member + (rows - 1) * self.rs + (cols - 1) * self.cs
    }

    /// Member `j`'s matrix as member 0's.
    fn of_member(self, j: usize) -> Operand {
        Operand {
            offset: self.offset + j * self.member,
            ..self
        }
    }

    /// The members that follow one another `rows` rows apart, as one matrix.
    fn stacks_rows(&self, rows: usize) -> bool {
        self.member == rows * self.rs
    }
}

/// The most threads matrixmultiply runs one product on: `MATMUL_NUM_THREADS`, else the
/// cores, at most 4 (its `MAX_THREADS`). Read once: asking the OS for the cores reads
/// cgroup files (a few percent of a step when asked per product).
fn sgemm_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::var("MATMUL_NUM_THREADS")
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(cores)
            .clamp(1, 4)
    })
}

/// Pieces a wide product of `count` members is cut into, run side by side: one where
/// matrixmultiply's own threads cover the cores (up to 4 cores), more on larger machines
/// so that the rest of the cores are not idle. The pieces are whole members, so the cut
/// changes no bits (see the module docs).
fn wide_pieces(count: usize) -> usize {
    rayon::current_num_threads()
        .div_ceil(sgemm_threads())
        .clamp(1, count.max(1))
}

/// A pointer to C that the members' tasks share; each writes only its own elements
/// ([`disjoint`]).
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the tasks write disjoint elements of C (checked by `batched` before any runs) and
// C's slice is borrowed mutably for as long as they run.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Whether `count` members' `rows x cols` matrices laid out as `o` are disjoint, each
/// without aliased elements: member after member (each one's extent before the next
/// starts), or side by side within the lines of one buffer (`[rows, K·cols]`, a layer's
/// outputs for every member, or its transpose).
fn disjoint(o: &Operand, rows: usize, cols: usize, count: usize) -> bool {
    // Within a member: a unit stride along one axis and the other at least that axis long.
    let own =
        (o.cs == 1 && (rows == 1 || o.rs >= cols)) || (o.rs == 1 && (cols == 1 || o.cs >= rows));
    if !own || count <= 1 {
        return own;
    }
    let extent = (rows - 1) * o.rs + (cols - 1) * o.cs + 1;
    if o.member >= extent {
        return true;
    }
    // Side by side: each member's line segment `span` long, all of them within a line.
    let (span, line, lines) = if o.cs == 1 {
        (cols, o.rs, rows)
    } else {
        (rows, o.cs, cols)
    };
    o.member >= span && (lines == 1 || (count - 1) * o.member + span <= line)
}

/// `C_j = A_j · B_j` (C overwritten) for the members `j` in `members`, each operand laid out
/// as its [`Operand`] says. When B is shared and A and C hold the members one after another
/// along M, the members are one wide product (`wide_pieces` calls of it, one on up to
/// four cores); otherwise one SGEMM per member, in parallel. Either way member j's bits are
/// those of its own product (module docs).
///
/// # Panics
/// When an operand reaches past its buffer, or the members' C elements overlap: both are
/// bugs in the caller's layout.
pub fn batched(
    shape: Shape,
    members: Range<usize>,
    a: &[f32],
    ao: Operand,
    b: &[f32],
    bo: Operand,
    c: &mut [f32],
    co: Operand,
) {
    let Shape { m, k, n } = shape;
    if members.is_empty() || m == 0 || n == 0 {
        return;
    }
    let (first, last) = (members.start, members.end - 1);
    let co = co.of_member(first);
    let count = members.len();
    assert!(co.last(count - 1, m, n) < c.len(), "C past its buffer");
    assert!(disjoint(&co, m, n, count), "the members' C overlap");
    if k > 0 {
        assert!(ao.last(last, m, k) < a.len(), "A past its buffer");
        assert!(bo.last(last, k, n) < b.len(), "B past its buffer");
    }
    let (ao, bo) = (ao.of_member(first), bo.of_member(first));
    let out = OutPtr(c.as_mut_ptr());
    // SAFETY (both calls below): the asserts keep every element the calls read or write in
    // its buffer, C's elements of distinct members are disjoint, and `c` is borrowed
    // mutably for the whole call.
    if bo.member == 0 && ao.stacks_rows(m) && co.stacks_rows(m) {
        let pieces = wide_pieces(count);
        let per = count.div_ceil(pieces);
        let run = |p: usize| {
            let j0 = p * per;
            let rows = (count - j0).min(per) * m;
            unsafe {
                sgemm(
                    rows,
                    k,
                    n,
                    a,
                    ao.of_member(j0),
                    b,
                    bo,
                    out,
                    co.of_member(j0),
                )
            }
        };
        if pieces == 1 {
            run(0);
        } else {
            (0..count.div_ceil(per)).into_par_iter().for_each(run);
        }
        return;
    }
    let run = |j: usize| unsafe {
        sgemm(
            m,
            k,
            n,
            a,
            ao.of_member(j),
            b,
            bo.of_member(j),
            out,
            co.of_member(j),
        )
    };
    if count == 1 {
        run(0);
    } else {
        (0..count).into_par_iter().for_each(run);
    }
}

/// One SGEMM, `C = A · B` (beta = 0: C overwritten), operands at `ao`, `bo`, `co`.
///
/// # Safety
/// Every element of the three matrices lies within its buffer, and no other thread reads
/// or writes C's elements meanwhile.
unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    ao: Operand,
    b: &[f32],
    bo: Operand,
    c: OutPtr,
    co: Operand,
) {
    // SAFETY: the caller's contract; with k = 0 matrixmultiply reads neither A nor B.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr().wrapping_add(ao.offset),
            ao.rs as isize,
            ao.cs as isize,
            b.as_ptr().wrapping_add(bo.offset),
            bo.rs as isize,
            bo.cs as isize,
            0.0,
            c.0.add(co.offset),
            co.rs as isize,
            co.cs as isize,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(seed: u32, n: usize) -> Vec<f32> {
        // A small LCG: values in [-1, 1) with every mantissa bit in use.
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// One member's product by the plain loop: the order matrixmultiply sums in, blocks
    /// of 256 along K, each a sequential fma chain (the independent oracle of the claim in
    /// the module docs, on a CPU with FMA; without it, the products are compared with each
    /// other only).
    fn blocked_fma(a: &[f32], ao: Operand, b: &[f32], bo: Operand, s: Shape) -> Vec<f32> {
        let mut c = vec![0.0f32; s.m * s.n];
        for i in 0..s.m {
            for j in 0..s.n {
                let mut total = 0.0f32;
                for (blk, k0) in (0..s.k).step_by(256).enumerate() {
                    let mut acc = 0.0f32;
                    for p in k0..(k0 + 256).min(s.k) {
                        let x = a[ao.offset + i * ao.rs + p * ao.cs];
                        let y = b[bo.offset + p * bo.rs + j * bo.cs];
                        acc = x.mul_add(y, acc);
                    }
                    total = if blk == 0 { acc } else { total + acc };
                }
                c[i * s.n + j] = total;
            }
        }
        c
    }

    /// Whether matrixmultiply's x86 kernels fuse their multiply-adds here (the oracle's
    /// `mul_add`); elsewhere the oracle is skipped.
    fn has_fma() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("fma") && is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Issue 28's premise: a wide product (the members folded into M, one call) gives each
    /// member the bits of its own product, at ragged sizes, K past one block of 256 and
    /// strided (transposed) operands, as the CPU engine's layer 0 uses them.
    #[test]
    fn wide_and_per_member_products_are_bit_identical() {
        for &(count, m, k, n) in &[
            (3, 13, 35, 16),
            (5, 7, 600, 9),
            (2, 64, 784, 33),
            (4, 1, 257, 1),
        ] {
            let s = Shape { m, k, n };
            // Forward, transposed: Yᵀ_j [O, B] = W_j [O, I] · Xᵀ [I, B] into Y [B, count·O].
            let w = values(1, count * m * k);
            let x = values(2, n * k);
            let wo = Operand {
                offset: 0,
                rs: k,
                cs: 1,
                member: m * k,
            };
            let xo = Operand {
                offset: 0,
                rs: 1,
                cs: k,
                member: 0,
            };
            let yo = Operand {
                offset: 0,
                rs: 1,
                cs: count * m,
                member: m,
            };
            let mut wide = vec![f32::NAN; n * count * m];
            batched(s, 0..count, &w, wo, &x, xo, &mut wide, yo);
            for j in 0..count {
                // One member alone, in its own buffer (a single run's product).
                let mut own = vec![f32::NAN; m * n];
                let own_o = Operand {
                    offset: 0,
                    rs: n,
                    cs: 1,
                    member: 0,
                };
                batched(s, 0..1, &w, wo.of_member(j), &x, xo, &mut own, own_o);
                let reference = blocked_fma(&w, wo.of_member(j), &x, xo, s);
                let fma = has_fma();
                for i in 0..m {
                    for t in 0..n {
                        let got = wide[t * count * m + j * m + i];
                        assert_eq!(
                            got.to_bits(),
                            own[i * n + t].to_bits(),
                            "member {j} ({i}, {t}) of {s:?}"
                        );
                        if fma {
                            assert_eq!(
                                got.to_bits(),
                                reference[i * n + t].to_bits(),
                                "order ({i}, {t})"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Per-member products (nothing shared) write each member's block and nothing else.
    #[test]
    fn per_member_products_write_their_own_columns() {
        let (count, s) = (3, Shape { m: 5, k: 7, n: 4 });
        let a = values(3, count * s.m * s.k);
        let b = values(4, count * s.k * s.n);
        let ao = Operand {
            offset: 0,
            rs: s.k,
            cs: 1,
            member: s.m * s.k,
        };
        let bo = Operand {
            offset: 0,
            rs: s.n,
            cs: 1,
            member: s.k * s.n,
        };
        // C side by side within rows, [M, count·N], one spare member slot left untouched.
        let co = Operand {
            offset: s.n,
            rs: (count + 1) * s.n,
            cs: 1,
            member: s.n,
        };
        let mut c = vec![f32::NAN; s.m * (count + 1) * s.n];
        batched(s, 0..count, &a, ao, &b, bo, &mut c, co);
        for j in 0..count {
            let want = crate::cpu::matmul(
                &a[j * s.m * s.k..],
                &b[j * s.k * s.n..],
                s.m,
                s.n,
                s.k,
                false,
                false,
            );
            for i in 0..s.m {
                for t in 0..s.n {
                    let got = c[i * (count + 1) * s.n + (j + 1) * s.n + t];
                    let w = want[i * s.n + t];
                    assert!(
                        (got - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "member {j} ({i}, {t}): {got} vs {w}"
                    );
                }
            }
        }
        for i in 0..s.m {
            assert!(
                c[i * (count + 1) * s.n..][..s.n].iter().all(|v| v.is_nan()),
                "slot 0 written"
            );
        }
    }

    #[test]
    fn disjoint_accepts_the_engines_layouts_and_refuses_overlaps() {
        // [B, K·O] side by side, its transpose, member after member.
        assert!(disjoint(
            &Operand {
                offset: 0,
                rs: 24,
                cs: 1,
                member: 8
            },
            4,
            8,
            3
        ));
        assert!(disjoint(
            &Operand {
                offset: 0,
                rs: 1,
                cs: 24,
                member: 8
            },
            8,
            4,
            3
        ));
        assert!(disjoint(
            &Operand {
                offset: 0,
                rs: 7,
                cs: 1,
                member: 35
            },
            5,
            7,
            4
        ));
        // Overlaps: members closer than a row, a fourth member past the line, aliased rows.
        assert!(!disjoint(
            &Operand {
                offset: 0,
                rs: 24,
                cs: 1,
                member: 7
            },
            4,
            8,
            3
        ));
        assert!(!disjoint(
            &Operand {
                offset: 0,
                rs: 24,
                cs: 1,
                member: 8
            },
            4,
            8,
            4
        ));
        assert!(!disjoint(
            &Operand {
                offset: 0,
                rs: 0,
                cs: 1,
                member: 100
            },
            4,
            8,
            1
        ));
    }
}
