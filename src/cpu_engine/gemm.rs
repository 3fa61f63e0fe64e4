//! The CPU engine's matrix products: `C_j [M, N] = A_j [M, K] · B_j [K, N]` for the members
//! `j` of a population in one call ([`batched`]), each operand strided, on the
//! `matrixmultiply` SGEMM.
//!
//! Where every member multiplies the same B and the members' A and C lie one after another
//! along M (layer 0's forward product and weight gradient: every member multiplies the same
//! minibatch X), the members are **one wide product** of `count · M` rows. The other
//! products (hidden and output layers, each member its own operands) are one product per
//! member.
//!
//! **Parallelism is rayon's alone**: every SGEMM call is single-threaded (matrixmultiply
//! without its `threading` feature) and a call's work is cut into pieces run side by side
//! (`pieces`): a population's members, each on one core, or the rows of a single run's
//! product. matrixmultiply's own thread pool spin-yields between products; a K = 8 step
//! spent a third of its CPU samples in `sched_yield` on this shared 2-core machine
//! (docs/performance.md).
//!
//! **Why a member's bits do not depend on the batching.** matrixmultiply (0.3, `gemm_loop`)
//! sums `C[i, j]` over K in blocks of `kc` = 256 from k = 0: each block is one register's
//! sequential fma chain from zero (the micro-kernel keeps one accumulator per element), and
//! the blocks are added to C in order. Only K and the kernel (fixed per CPU) decide that
//! order; M, N, the strides, the tiling, the packing and the cut into pieces only decide
//! where and when each element is computed. So member j of a wide product, a per-member
//! call and a single run's product give the same bits, and so does a product computed transposed
//! (`Cᵀ = Bᵀ · Aᵀ`: the same fma chain with its factors swapped).
//! `tests::wide_and_per_member_products_are_bit_identical` pins this on ragged shapes; if a
//! matrixmultiply update broke it, that test (and the population tests) would say so.

use std::ops::Range;

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

/// Rows (or columns) below which a product is not cut further: two of the AVX-512
/// kernel's 16-row tiles, so a piece is never mostly a masked edge tile.
const MIN_PIECE: usize = 32;

/// Multiply-adds below which a piece is not worth a task of its own (~5 us of SGEMM at
/// 100 GFLOP/s, a few times what handing it to another thread costs).
const MIN_PIECE_MACS: usize = 1 << 18;

/// One task of a [`batched`] call: rows `rows` and columns `cols` of member `member`'s C.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Piece {
    member: usize,
    rows: Range<usize>,
    cols: Range<usize>,
}

/// Cuts `count` products of `m x n` into about `threads` pieces, run side by side on
/// rayon's pool, each one single-threaded SGEMM: whole members where there are at least as
/// many as threads (a population's members in parallel, no product shared between cores),
/// else each member's longer side in equal runs of whole `MIN_PIECE` blocks (products too
/// small to be worth it stay whole). A piece
/// computes each of its elements with the member's whole K chain, so the cut changes no
/// bits (module docs).
fn pieces(count: usize, m: usize, k: usize, n: usize, threads: usize) -> Vec<Piece> {
    let per_member = threads.div_ceil(count.max(1)).max(1);
    let long = m.max(n);
    let worth = (m * k * n / MIN_PIECE_MACS).max(1);
    let cuts = per_member.min(long.div_ceil(MIN_PIECE)).min(worth).max(1);
    let step = long.div_ceil(cuts).div_ceil(MIN_PIECE) * MIN_PIECE;
    let mut out = Vec::with_capacity(count * cuts);
    for member in 0..count {
        for start in (0..long).step_by(step.max(1)) {
            let run = start..(start + step).min(long);
            let (rows, cols) = if m >= n { (run, 0..n) } else { (0..m, run) };
            out.push(Piece { member, rows, cols });
        }
    }
    out
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
/// along M, the members are one wide product; otherwise one product per member. Either is
/// cut into pieces (`pieces`) run in parallel, and either way member j's bits are those of its
/// own product (module docs).
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
    // A wide product: the members one after another along M, B shared, as one matrix.
    let (count, m, ao, co) = if bo.member == 0 && ao.stacks_rows(m) && co.stacks_rows(m) {
        (
            1,
            count * m,
            Operand { member: 0, ..ao },
            Operand { member: 0, ..co },
        )
    } else {
        (count, m, ao, co)
    };
    let out = OutPtr(c.as_mut_ptr());
    let run = |p: &Piece| {
        let (a0, c0, b0) = (
            ao.of_member(p.member),
            co.of_member(p.member),
            bo.of_member(p.member),
        );
        let (r, t) = (p.rows.start, p.cols.start);
        // SAFETY: the asserts keep every element in its buffer, the pieces cover disjoint
        // elements of C (distinct members are disjoint, and one member's pieces are
        // disjoint runs of its rows or columns), and `c` is borrowed mutably for the call.
        unsafe {
            sgemm(
                p.rows.len(),
                k,
                p.cols.len(),
                a,
                Operand {
                    offset: a0.offset + r * a0.rs,
                    ..a0
                },
                b,
                Operand {
                    offset: b0.offset + t * b0.cs,
                    ..b0
                },
                out,
                Operand {
                    offset: c0.offset + r * c0.rs + t * c0.cs,
                    ..c0
                },
            )
        }
    };
    let tasks = pieces(count, m, k, n, rayon::current_num_threads());
    if tasks.len() == 1 {
        run(&tasks[0]);
    } else {
        tasks.par_iter().for_each(run);
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

    /// The cut covers every element of every member once, keeps a population's members
    /// whole, splits a lone product along its longer side in whole 32-blocks, and leaves
    /// small products whole.
    #[test]
    fn pieces_cover_each_member_once() {
        let cover = |count: usize, m: usize, k: usize, n: usize, threads: usize| {
            let ps = pieces(count, m, k, n, threads);
            let mut seen = vec![0u8; count * m * n];
            for p in &ps {
                for r in p.rows.clone() {
                    for c in p.cols.clone() {
                        seen[p.member * m * n + r * n + c] += 1;
                    }
                }
            }
            assert!(
                seen.iter().all(|&v| v == 1),
                "{count}x{m}x{k}x{n} on {threads}"
            );
            ps
        };
        // A population of 8 on 2 threads: one piece per member.
        assert_eq!(cover(8, 256, 784, 64, 2).len(), 8);
        // A single run's forward product on 2 threads: two halves of the 256 rows.
        let single = cover(1, 256, 784, 64, 2);
        assert_eq!(
            single.iter().map(|p| p.rows.clone()).collect::<Vec<_>>(),
            vec![0..128, 128..256]
        );
        // The wide product of 8 members (2048 rows) on 16 threads: 16 pieces of 128 rows.
        assert_eq!(cover(1, 2048, 784, 64, 16).len(), 16);
        // Longer along N: cut the columns; ragged sizes; 3 threads.
        let wide_n = cover(1, 10, 256, 300, 3);
        assert!(
            wide_n
                .iter()
                .all(|p| p.rows == (0..10) && p.cols.len() % 32 == 0 || p.cols.end == 300)
        );
        cover(3, 37, 100, 45, 4);
        // The output layer's 10 x 256 x 64 product is too small to cut.
        assert_eq!(cover(1, 10, 256, 64, 2).len(), 1);
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
