//! Quickcheck properties over random shapes, ranks and seeds (THEORY PT2, PT4, PT9 and the scale rules of ANCHORS
//! B11, B13, B14). Each property returns `false` on violation; quickcheck shrinks to a minimal failing case.
//!
//! Tolerances: the quantities compared are sums of at most $m\,r \le 12\cdot12$ products of O(1) numbers, so their
//! round-off is below $m r\varepsilon \approx 3\cdot10^{-14}$ relative; we allow 1e-12. The PSD bound is relative to
//! ‖ΔW‖_F: eigenvalues of a PSD matrix computed by a backward-stable solver lie within $O(m\varepsilon)\lVert\Delta W\rVert$
//! of the exact ones, which are ≥ 0.

mod common;

use common::{frob, gaussian, random_layer, rel_err};
use ndarray::{s, Array2};
use quickcheck::{Arbitrary, Gen, QuickCheck};
use singlora::adapters::{AdaptedLinear, AdapterConfig, DoraNorm, Method, Scaling};
use singlora::linalg::{mm_nt, numerical_rank, symmetric_eigenvalues};

/// A random layer shape, rank and seed: 1 ≤ d ≤ 12, 1 ≤ r ≤ max(d_in, d_out).
#[derive(Clone, Debug)]
struct Case {
    d_in: usize,
    d_out: usize,
    rank: usize,
    seed: u64,
    u: f64,
}

impl Arbitrary for Case {
    fn arbitrary(g: &mut Gen) -> Self {
        let d_in = 1 + usize::arbitrary(g) % 12;
        let d_out = 1 + usize::arbitrary(g) % 12;
        let rank = 1 + usize::arbitrary(g) % d_in.max(d_out);
        let u = [0.25, 0.5, 1.0][usize::arbitrary(g) % 3];
        Case {
            d_in,
            d_out,
            rank,
            seed: u64::arbitrary(g) % 10_000,
            u,
        }
    }
    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let c = self.clone();
        Box::new((1..c.d_in).rev().map(move |d| Case {
            d_in: d,
            rank: c.rank.min(d.max(c.d_out)),
            ..c.clone()
        }))
    }
}

fn qc() -> QuickCheck {
    // A fixed seed: every CI run checks the same 200 cases, and a failure reproduces.
    QuickCheck::new()
        .tests(200)
        .rng(Gen::from_size_and_seed(64, 0x5EED))
}

fn singlora(c: &Case) -> AdaptedLinear<f64> {
    random_layer(
        Method::Singlora,
        c.d_in,
        c.d_out,
        c.rank,
        Scaling::AlphaOverR,
        DoraNorm::Detached,
        c.seed,
    )
}

#[test]
fn square_singlora_update_is_symmetric_psd_and_rank_at_most_r() {
    fn prop(c: Case) -> bool {
        let c = Case {
            d_out: c.d_in,
            rank: c.rank.min(c.d_in),
            ..c
        };
        let dw = singlora(&c).delta_w(c.u);
        let norm = frob(&dw);
        let symmetric = dw.iter().zip(dw.t().iter()).all(|(a, b)| a == b);
        let min_eig = symmetric_eigenvalues(dw.view())[0];
        let rank = numerical_rank(dw.view(), 1e-10);
        symmetric && min_eig >= -1e-12 * norm.max(1.0) && rank <= c.rank
    }
    qc().quickcheck(prop as fn(Case) -> bool);
}

/// PT9: ΔW has shape d_out × d_in in both orientations and equals the top-left block of the square $s u A A^\top$;
/// its top-left k×k block is PSD.
#[test]
fn nonsquare_update_is_the_block_of_the_square_one() {
    fn prop(c: Case) -> bool {
        let layer = singlora(&c);
        let dw = layer.delta_w(c.u);
        let a = layer.params()[0]
            .to_owned()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap();
        let full = mm_nt(a.view(), a.view()) * layer.c(c.u);
        let block = full.slice(s![..c.d_out, ..c.d_in]).to_owned();
        let k = c.d_in.min(c.d_out);
        let top = dw.slice(s![..k, ..k]).to_owned();
        let min_eig = symmetric_eigenvalues(top.view())[0];
        dw.dim() == (c.d_out, c.d_in)
            && rel_err(&dw, &block) <= 1e-12
            && min_eig >= -1e-12 * frob(&top).max(1.0)
    }
    qc().quickcheck(prop as fn(Case) -> bool);
}

/// Adapter output minus base output equals $s\,u\,X\widetilde{\Delta W}^\top$: the scale never touches the base (B13).
#[test]
fn output_minus_base_is_the_scaled_update() {
    fn prop(c: Case, method_pick: u8) -> bool {
        let method = [Method::Full, Method::Lora, Method::Singlora][method_pick as usize % 3];
        let rank = if method == Method::Lora {
            1 + c.rank % c.d_in.min(c.d_out)
        } else {
            c.rank
        };
        let layer = random_layer(
            method,
            c.d_in,
            c.d_out,
            rank,
            Scaling::AlphaOverR,
            DoraNorm::Detached,
            c.seed,
        );
        let x = gaussian(3, c.d_in, c.seed, "x");
        let y = layer.forward(x.view(), c.u);
        let base = mm_nt(x.view(), layer.w0.view());
        let expected = mm_nt(x.view(), layer.update.delta_w().view()) * layer.c(c.u);
        let scale = frob(&y).max(1.0);
        ((&y - &base) - &expected)
            .iter()
            .all(|v| v.abs() <= 1e-12 * scale)
    }
    qc().quickcheck(prop as fn(Case, u8) -> bool);
}

/// PT2: at u = 0 the output equals the base bit for bit, for SingLoRA and SingLoRA+DoRA.
#[test]
fn ramp_zero_is_an_exact_no_op() {
    fn prop(c: Case, dora: bool) -> bool {
        let method = if dora {
            Method::SingloraDora
        } else {
            Method::Singlora
        };
        let w0 = gaussian(c.d_out, c.d_in, c.seed, "w0");
        let mut cfg = AdapterConfig::new(method).rank_alpha(c.rank, 2.0);
        cfg.ramp.steps = 10;
        let layer = AdaptedLinear::new(w0.clone(), &cfg, c.seed).unwrap();
        let x = gaussian(3, c.d_in, c.seed, "x");
        let u0 = cfg.ramp.u(0);
        u0 == 0.0 && layer.forward(x.view(), u0) == mm_nt(x.view(), w0.view())
    }
    qc().quickcheck(prop as fn(Case, bool) -> bool);
}

/// LoRA and DoRA start as exact no-ops (B = 0, ω = ν so ω/ν = 1 exactly).
#[test]
fn lora_and_dora_start_as_exact_no_ops() {
    fn prop(c: Case, dora: bool) -> bool {
        let method = if dora { Method::Dora } else { Method::Lora };
        let rank = 1 + c.rank % c.d_in.min(c.d_out);
        let w0 = gaussian(c.d_out, c.d_in, c.seed, "w0");
        let layer = AdaptedLinear::new(
            w0.clone(),
            &AdapterConfig::new(method).rank_alpha(rank, 2.0),
            c.seed,
        )
        .unwrap();
        let x = gaussian(3, c.d_in, c.seed, "x");
        layer.forward(x.view(), 1.0) == mm_nt(x.view(), w0.view())
    }
    qc().quickcheck(prop as fn(Case, bool) -> bool);
}

/// The scale is exactly α/r or α/√r: padding the factors with zero columns doubles r, leaves the product unchanged
/// and so multiplies ΔW by exactly 1/2 (α/r) or 1/√2 (α/√r) (B11, B14).
#[test]
fn doubling_rank_by_zero_padding_rescales_exactly() {
    fn prop(c: Case, lora: bool, rs: bool) -> bool {
        let scaling = if rs {
            Scaling::AlphaOverSqrtR
        } else {
            Scaling::AlphaOverR
        };
        let method = if lora { Method::Lora } else { Method::Singlora };
        let max_r = if lora {
            c.d_in.min(c.d_out)
        } else {
            c.d_in.max(c.d_out)
        };
        if 2 * max_r < 2 || max_r < 2 {
            return true;
        }
        let r = 1 + c.rank % (max_r / 2);
        let small = random_layer(
            method,
            c.d_in,
            c.d_out,
            r,
            scaling,
            DoraNorm::Detached,
            c.seed,
        );
        let mut big = random_layer(
            method,
            c.d_in,
            c.d_out,
            2 * r,
            scaling,
            DoraNorm::Detached,
            c.seed,
        );
        // Copy the small factors into the big ones, zero elsewhere.
        let smalls: Vec<Array2<f64>> = small
            .params()
            .iter()
            .map(|p| p.to_owned().into_dimensionality().unwrap())
            .collect();
        for (mut p, sp) in big.params_mut().into_iter().zip(&smalls) {
            p.fill(0.0);
            let (rows, cols) = sp.dim();
            p.slice_each_axis_mut(|ax| {
                ndarray::Slice::from(0..if ax.axis.index() == 0 { rows } else { cols })
            })
            .assign(&sp.view().into_dyn());
        }
        let ratio = if rs { 1.0 / 2f64.sqrt() } else { 0.5 };
        let ds = small.delta_w(c.u);
        let db = big.delta_w(c.u);
        (&ds * ratio - &db)
            .iter()
            .all(|v| v.abs() <= 1e-12 * frob(&ds).max(1e-300))
    }
    qc().quickcheck(prop as fn(Case, bool, bool) -> bool);
}

/// The scale table over r ∈ {1, 2, 4, …, 64} (B14): α/r and α/√r exactly.
#[test]
fn scale_table_over_ranks() {
    for k in 0..7 {
        let r = 1usize << k;
        for (scaling, expected) in [
            (Scaling::AlphaOverR, 16.0 / r as f64),
            (Scaling::AlphaOverSqrtR, 16.0 / (r as f64).sqrt()),
        ] {
            let cfg = AdapterConfig::new(Method::Lora)
                .rank_alpha(r, 16.0)
                .scaling(scaling);
            assert_eq!(cfg.scale(64, 64), expected, "r = {r} {scaling:?}");
            let w0 = Array2::<f64>::zeros((64, 64));
            assert_eq!(AdaptedLinear::new(w0, &cfg, 0).unwrap().scale, expected);
        }
    }
    // The width multiplier n^(−γ) multiplies s and nothing else.
    let mut cfg = AdapterConfig::new(Method::Singlora).rank_alpha(4, 4.0);
    cfg.multiplier_exponent = 0.5;
    cfg.width = Some(256);
    assert_eq!(cfg.scale(10, 20), 1.0 / 16.0);
}
