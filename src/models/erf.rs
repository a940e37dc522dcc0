//! `libm::erf` (the `libm` crate's port of FreeBSD msun's `s_erf.c`, with its `e_exp.c` inside) evaluated
//! `LANES` arguments at a time, bit for bit: what the transformer's f64 GELU uses, where the scalar call (a chain of
//! branches on |x|, two `exp` calls in its tails) took a sixth of a training step at n = 128.
//!
//! The scalar function picks one of five formulas by the high word of |x|: $x + x\,P(x^2)/Q(x^2)$ below 0.84375
//! (and $x(8 + 8\epsilon_x)/8$ below 2⁻²⁸), $1 - \mathrm{erx} - P(s)/Q(s)$ in $s = |x| - 1$ below 1.25, and from
//! there to 6 $e^{-z^2 - 0.5625}\,e^{(z - |x|)(z + |x|) + R(1/x^2)/S(1/x^2)}/|x|$ with $z$ = |x| with its low word
//! cleared and one of two rational fits split at 1/0.35; beyond 6 it is $\pm(1 - 2^{-1022})$. Here every lane runs
//! every formula and keeps the one its own argument selects: each kept value comes from the same IEEE operations in
//! the same order as the scalar branch (Rust fuses no multiply–add), so it is the same bits; the others are discarded,
//! whatever they are (a lane's `1/x²` may be infinite). Each `exp` is the scalar algorithm for finite arguments whose
//! result is normal, with its three reduction branches merged: $k = 0$ makes the reduction $x - 0\cdot\ln2_{hi} - 0$
//! exact, and $2^k y$ with $y \in [\tfrac12, 2]$ is exact, as `scalbn` is. A chunk holding a non-finite argument goes
//! to the scalar function. `tests/transformer.rs` compares every formula's range, its edges and millions of random
//! arguments with `libm::erf` bit for bit.

// The constants are msun's, digit for digit as printed in `s_erf.c` and `e_exp.c` (so each can be checked against
// the source; every one parses to the f64 the C code uses), hence longer than an f64 needs, and `INVLN2` is spelled
// out rather than taken from `LOG2_E` (the same value).
#![allow(clippy::excessive_precision, clippy::approx_constant)]

/// Arguments evaluated together (one 512-bit vector of f64).
pub(crate) const LANES: usize = 8;

const ERX: f64 = 8.45062911510467529297e-01;
const EFX8: f64 = 1.02703333676410069053e+00;
const PP: [f64; 5] = [
    1.28379167095512558561e-01,
    -3.25042107247001499370e-01,
    -2.84817495755985104766e-02,
    -5.77027029648944159157e-03,
    -2.37630166566501626084e-05,
];
const QQ: [f64; 5] = [
    3.97917223959155352819e-01,
    6.50222499887672944485e-02,
    5.08130628187576562776e-03,
    1.32494738004321644526e-04,
    -3.96022827877536812320e-06,
];
const PA: [f64; 7] = [
    -2.36211856075265944077e-03,
    4.14856118683748331666e-01,
    -3.72207876035701323847e-01,
    3.18346619901161753674e-01,
    -1.10894694282396677476e-01,
    3.54783043256182359371e-02,
    -2.16637559486879084300e-03,
];
const QA: [f64; 6] = [
    1.06420880400844228286e-01,
    5.40397917702171048937e-01,
    7.18286544141962662868e-02,
    1.26171219808761642112e-01,
    1.36370839120290507362e-02,
    1.19844998467991074170e-02,
];
const RA: [f64; 8] = [
    -9.86494403484714822705e-03,
    -6.93858572707181764372e-01,
    -1.05586262253232909814e+01,
    -6.23753324503260060396e+01,
    -1.62396669462573470355e+02,
    -1.84605092906711035994e+02,
    -8.12874355063065934246e+01,
    -9.81432934416914548592e+00,
];
const SA: [f64; 8] = [
    1.96512716674392571292e+01,
    1.37657754143519042600e+02,
    4.34565877475229228821e+02,
    6.45387271733267880336e+02,
    4.29008140027567833386e+02,
    1.08635005541779435134e+02,
    6.57024977031928170135e+00,
    -6.04244152148580987438e-02,
];
const RB: [f64; 7] = [
    -9.86494292470009928597e-03,
    -7.99283237680523006574e-01,
    -1.77579549177547519889e+01,
    -1.60636384855821916062e+02,
    -6.37566443368389627722e+02,
    -1.02509513161107724954e+03,
    -4.83519191608651397019e+02,
];
const SB: [f64; 7] = [
    3.03380607434824582924e+01,
    3.25792512996573918826e+02,
    1.53672958608443695994e+03,
    3.19985821950859553908e+03,
    2.55305040643316442583e+03,
    4.74528541206955367215e+02,
    -2.24409524465858183362e+01,
];

/// $c_0 + s(c_1 + s(c_2 + \dots))$, innermost first, as the scalar code nests it.
#[inline(always)]
fn horner(c: &[f64], s: f64) -> f64 {
    c.iter()
        .rev()
        .skip(1)
        .fold(c[c.len() - 1], |acc, &ci| ci + s * acc)
}

/// $1 + s(c_0 + s(c_1 + \dots))$: the denominators, whose constant term 1 is not in the table.
#[inline(always)]
fn one_plus(c: &[f64], s: f64) -> f64 {
    1.0 + s * horner(c, s)
}

/// The high word of |x|, the scalar code's branch key.
#[inline(always)]
fn high_abs(x: f64) -> u32 {
    ((x.to_bits() >> 32) as u32) & 0x7fff_ffff
}

/// `libm::exp(x)` for finite `x` with a normal result (|x| < 708.39; what the erf tails pass), branch-free.
#[inline(always)]
fn exp(x: f64) -> f64 {
    const LN2HI: f64 = 6.93147180369123816490e-01;
    const LN2LO: f64 = 1.90821492927058770002e-10;
    const INVLN2: f64 = 1.44269504088896338700e+00;
    const P: [f64; 5] = [
        1.66666666666666019037e-01,
        -2.77777777770155933842e-03,
        6.61375632143793436117e-05,
        -1.65339022054652515390e-06,
        4.13813679705723846039e-08,
    ];
    let (hx, sign) = (high_abs(x), (x.to_bits() >> 63) as usize);
    let k: i32 = if hx >= 0x3ff0_a2b2 {
        // The scalar code's `HALF[sign]`, ±0.5 with x's sign.
        (INVLN2 * x + 0.5f64.copysign(x)) as i32
    } else if hx > 0x3fd6_2e42 {
        1 - 2 * sign as i32
    } else {
        0
    };
    let kf = k as f64;
    let (hi, lo) = (x - kf * LN2HI, kf * LN2LO);
    let r = hi - lo;
    let rr = r * r;
    let c = r - rr * horner(&P, rr);
    let y = 1.0 + (r * c / (2.0 - c) - lo + hi);
    let scaled = y * f64::from_bits((k.wrapping_add(1023) as u32 as u64) << 52);
    if hx <= 0x3e30_0000 {
        1.0 + x
    } else if k == 0 {
        y
    } else {
        scaled
    }
}

/// $\mathrm{erfc}(|x|)$ for $1.25 \le |x| < 6$ from |x| and the high word of |x|, the scalar `erfc2` past its first
/// branch.
#[inline(always)]
fn erfc_tail(ax: f64, ix: u32) -> f64 {
    let s = 1.0 / (ax * ax);
    let (r, big_s) = if ix < 0x4006_db6d {
        (horner(&RA, s), one_plus(&SA, s))
    } else {
        (horner(&RB, s), one_plus(&SB, s))
    };
    let z = f64::from_bits(ax.to_bits() & 0xffff_ffff_0000_0000);
    exp(-z * z - 0.5625) * exp((z - ax) * (z + ax) + r / big_s) / ax
}

/// `libm::erf(x)` for finite `x`, every branch evaluated (see the module doc); with `TAIL = false` the lane must
/// have |x| < 1.25, and the tail formula (five of its eight divisions, both `exp`s) is not evaluated.
#[inline(always)]
fn erf_finite<const TAIL: bool>(x: f64) -> f64 {
    let (ix, ax) = (high_abs(x), x.abs());
    let z = x * x;
    let small = x + x * (horner(&PP, z) / one_plus(&QQ, z));
    let tiny = 0.125 * (8.0 * x + EFX8 * x);
    let s = ax - 1.0;
    let erfc_mid = 1.0 - ERX - horner(&PA, s) / one_plus(&QA, s);
    let erfc = if !TAIL || ix < 0x3ff4_0000 {
        erfc_mid
    } else {
        erfc_tail(ax, ix)
    };
    let y = if ix < 0x4018_0000 {
        1.0 - erfc
    } else {
        1.0 - f64::from_bits(0x0010_0000_0000_0000)
    };
    let signed = if x.is_sign_negative() { -y } else { y };
    if ix < 0x3e30_0000 {
        tiny
    } else if ix < 0x3feb_0000 {
        small
    } else {
        signed
    }
}

/// `out[i] = libm::erf(x[i])` for `LANES` arguments, bit for bit. A chunk whose arguments all lie below 1.25 in
/// magnitude (about half of them for GELU inputs of unit scale) skips the tail formula.
#[inline(always)]
pub(crate) fn erf_lanes(x: &[f64; LANES]) -> [f64; LANES] {
    let mut out = [0.0; LANES];
    let high = x.iter().fold(0, |m, &v| m.max(high_abs(v)));
    if high < 0x3ff4_0000 {
        for i in 0..LANES {
            out[i] = erf_finite::<false>(x[i]);
        }
    } else if high < 0x7ff0_0000 {
        for i in 0..LANES {
            out[i] = erf_finite::<true>(x[i]);
        }
    } else {
        for i in 0..LANES {
            out[i] = libm::erf(x[i]);
        }
    }
    out
}

/// `out[i] = libm::erf(x[i])` through `erf_lanes`, chunk by chunk as the GELU runs it (the last `len % LANES`
/// through `libm::erf`): what the tests compare with `libm::erf`, in argument orders that make the chunks mixed and
/// uniform in range.
///
/// # Panics
/// If the slices differ in length.
#[track_caller]
pub fn erf_slice(x: &[f64], out: &mut [f64]) {
    assert_eq!(x.len(), out.len(), "erf_slice: lengths differ");
    for (xc, oc) in x.chunks_exact(LANES).zip(out.chunks_exact_mut(LANES)) {
        oc.copy_from_slice(&erf_lanes(xc.try_into().expect("LANES values")));
    }
    let done = x.len() - x.len() % LANES;
    for (&xi, o) in x[done..].iter().zip(&mut out[done..]) {
        *o = libm::erf(xi);
    }
}

crate::scalar::widest_vectors! {
    /// The exact GELU over f64 slices: `cdf[i] = ½(1 + erf(z_i/√2))` and `act[i] = z_i·cdf[i]`, bit for bit the scalar
    /// formula with `libm::erf` ([`super::Activation::Gelu`]), `LANES` elements at a time in the CPU's widest vectors.
    ///
    /// # Panics
    /// If the slices differ in length.
    #[track_caller]
    pub fn gelu_f64(z: &[f64], act: &mut [f64], cdf: &mut [f64]) {
        assert!(
            z.len() == act.len() && z.len() == cdf.len(),
            "gelu_f64: lengths differ"
        );
    } => gelu_f64_loop
}

/// One element of [`gelu_f64`] from its erf: $z\cdot\tfrac12(1 + \mathrm{erf}) = \tfrac12 z(1 + \mathrm{erf})$ exactly,
/// halving being exact outside subnormals.
#[inline(always)]
fn gelu_entry(z: f64, erf: f64, act: &mut f64, cdf: &mut f64) {
    *cdf = 0.5 * (1.0 + erf);
    *act = z * *cdf;
}

#[inline(always)]
fn gelu_f64_loop(z: &[f64], act: &mut [f64], cdf: &mut [f64]) {
    let chunks = z
        .chunks_exact(LANES)
        .zip(act.chunks_exact_mut(LANES))
        .zip(cdf.chunks_exact_mut(LANES));
    for ((zc, ac), cc) in chunks {
        let mut w = [0.0; LANES];
        for i in 0..LANES {
            w[i] = zc[i] / std::f64::consts::SQRT_2;
        }
        let e = erf_lanes(&w);
        for i in 0..LANES {
            gelu_entry(zc[i], e[i], &mut ac[i], &mut cc[i]);
        }
    }
    let done = z.len() - z.len() % LANES;
    let tail = z[done..].iter().zip(&mut act[done..]).zip(&mut cdf[done..]);
    for ((&zi, a), c) in tail {
        gelu_entry(zi, libm::erf(zi / std::f64::consts::SQRT_2), a, c);
    }
}
