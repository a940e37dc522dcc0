//! The normal CDF $\Phi$ and $e^x$ in branch-free f64 arithmetic, so loops over them vectorise: what the transformer's
//! GELU uses in f32 runs, where `libm::erf` (a chain of branches, two `exp` calls in its tails) cost a third of a
//! training step.
//!
//! $\Phi(x) = 1 - \tfrac12\mathrm{erfc}(z)$ for $x \ge 0$ and $\tfrac12\mathrm{erfc}(z)$ for $x < 0$, $z = |x|/\sqrt2$,
//! with $\mathrm{erfc}(z) = t\,e^{-z^2 + h(t)}$, $t = 2/(2+z) \in (0, 1]$, and $h$ a degree-20 Chebyshev series in
//! $2t - 1$, fitted at 600 Chebyshev nodes to $h(t) = \ln(\mathrm{erfc}(z)/t) + z^2$ (smooth on $[0, 1]$: at
//! $t \to 0$ it tends to $-\ln(2\sqrt\pi)$). Measured relative error of erfc on $z \in [0, 26]$: 1.8e-13 (with
//! Python's `math.erfc` as reference); $\Phi$ has relative error ≤ 2e-13 for $x < 0$ (no cancellation, unlike
//! $\tfrac12(1 + \mathrm{erf})$) and absolute error ≤ 1e-13 for $x \ge 0$. Rounded to f32 (spacing 6e-8 relative)
//! this is the correctly rounded $\Phi$ except within 2e-13 of a rounding midpoint (`tests/transformer.rs` checks).
//! $z$ is clamped at 26 (erfc(26) ≈ 6e-296; below it $x\Phi(x)$ is 0 in f32).
//!
//! Values depend only on the input: the same IEEE operations in every lane, no fused multiply-add, so the SIMD and
//! the scalar loop give the same bits.

/// $h$'s Chebyshev coefficients $c_0 \dots c_{20}$ in $y = 2t - 1$.
const ERFC_H: [f64; 21] = [
    -0.6513268598908535,
    0.6419697923564872,
    0.01947647320418758,
    -0.009561514786809045,
    -0.0009465953444832991,
    0.00036683949785553267,
    4.2523324803510835e-05,
    -2.0278578109394023e-05,
    -1.6242900066931652e-06,
    1.3036558358061334e-06,
    1.562644313736539e-08,
    -8.523809891201623e-08,
    6.529057702615717e-09,
    5.059340467964421e-09,
    -9.913623785319734e-10,
    -2.2736520786591507e-10,
    9.646633058605366e-11,
    2.396684544174155e-12,
    -6.889359957252666e-12,
    8.971518314566304e-13,
    3.1126356016928616e-13,
];

/// $1/k!$ for $k = 0 \dots 13$.
const INV_FACTORIAL: [f64; 14] = [
    1.0,
    1.0,
    0.5,
    0.16666666666666666,
    0.041666666666666664,
    0.008333333333333333,
    0.001388888888888889,
    0.0001984126984126984,
    2.48015873015873e-05,
    2.7557319223985893e-06,
    2.755731922398589e-07,
    2.505210838544172e-08,
    2.08767569878681e-09,
    1.6059043836821613e-10,
];

/// $e^y$ for $y \in [-700, 700]$ (callers clamp), relative error ≤ 3e-16: $y = k\ln 2 + r$ with $k$ the nearest
/// integer to $y/\ln 2$ (by the $1.5\cdot 2^{52}$ rounding trick, whose bits also give $k$), $\ln 2$ split in two so
/// $r$ is exact to ~1e-19, $|r| \le 0.35$; $e^r$ by its Taylor polynomial to degree 13 (remainder
/// $0.35^{14}/14! < 5\cdot 10^{-18}$), times $2^k$ built from its exponent bits.
#[inline(always)]
pub fn exp(y: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5·2^52
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000); // 32 trailing zero bits: k·LN2_HI is exact
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76); // ln 2 − LN2_HI
    let shifted = y * std::f64::consts::LOG2_E + MAGIC;
    let kf = shifted - MAGIC;
    let k = shifted.to_bits().wrapping_sub(MAGIC.to_bits()) as i64;
    let r = (y - kf * LN2_HI) - kf * LN2_LO;
    // Horner from 1/13! down to 1/0!.
    let p = INV_FACTORIAL.iter().rev().fold(0.0, |p, &c| p * r + c);
    p * f64::from_bits(((k + 1023) as u64) << 52)
}

/// $\mathrm{erfc}(z)$ for $z \ge 0$ (see the module doc), $z$ clamped at 26.
#[inline(always)]
fn erfc_nonneg(z: f64) -> f64 {
    let z = z.min(26.0);
    let t = 2.0 / (2.0 + z);
    let y = 2.0 * t - 1.0;
    // Clenshaw: b_k = c_k + 2y b_{k+1} − b_{k+2}, h = c_0 + y b_1 − b_2.
    let (mut b1, mut b2) = (0.0, 0.0);
    for &c in ERFC_H[1..].iter().rev() {
        let b0 = c + 2.0 * y * b1 - b2;
        b2 = b1;
        b1 = b0;
    }
    let h = ERFC_H[0] + y * b1 - b2;
    t * exp(-z * z + h)
}

/// $\Phi(x)$, the standard normal CDF (see the module doc for the error bound).
#[inline(always)]
pub fn phi(x: f64) -> f64 {
    let tail = 0.5 * erfc_nonneg(x.abs() * std::f64::consts::FRAC_1_SQRT_2);
    if x < 0.0 {
        tail
    } else {
        1.0 - tail
    }
}

/// The standard normal density $\varphi(x) = e^{-x^2/2}/\sqrt{2\pi}$ (exponent clamped at −700, where it is
/// ~1e-304, below any f32).
#[inline(always)]
pub fn pdf(x: f64) -> f64 {
    exp((-0.5 * x * x).max(-700.0)) / (2.0 * std::f64::consts::PI).sqrt()
}

/// Lanes processed together: every step below is a loop over `LANES` independent values, which the compiler turns
/// into several independent vector operations, so the long dependency chains (Clenshaw, Horner) overlap instead of
/// waiting on each other's latency.
pub(crate) const LANES: usize = 16;

/// `LANES` f32 values widened to f64 (exact).
///
/// The lane helpers spell their maps as plain loops, not `std::array::from_fn`: that one is compiled out of line
/// for baseline x86-64 (SSE2), outside the AVX-512/AVX2 function that calls it, which made the vectorised GELU
/// pass its lanes through memory and switch between SSE and AVX code every few instructions.
#[inline(always)]
fn widened(z: &[f32]) -> [f64; LANES] {
    let mut x = [0.0; LANES];
    for i in 0..LANES {
        x[i] = z[i] as f64;
    }
    x
}

/// [`exp`] on every lane (the same operations in the same order, so the same bits).
#[inline(always)]
fn exp_lanes(y: &[f64; LANES]) -> [f64; LANES] {
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    let (mut r, mut scale, mut p) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
    for i in 0..LANES {
        let shifted = y[i] * std::f64::consts::LOG2_E + MAGIC;
        let kf = shifted - MAGIC;
        let k = shifted.to_bits().wrapping_sub(MAGIC.to_bits()) as i64;
        r[i] = (y[i] - kf * LN2_HI) - kf * LN2_LO;
        scale[i] = f64::from_bits(((k + 1023) as u64) << 52);
    }
    for &c in INV_FACTORIAL.iter().rev() {
        for i in 0..LANES {
            p[i] = p[i] * r[i] + c;
        }
    }
    for i in 0..LANES {
        p[i] *= scale[i];
    }
    p
}

/// [`phi`] on every lane (the same operations in the same order, so the same bits).
#[inline(always)]
fn phi_lanes(x: &[f64; LANES]) -> [f64; LANES] {
    let (mut z, mut t, mut y) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
    for i in 0..LANES {
        z[i] = (x[i].abs() * std::f64::consts::FRAC_1_SQRT_2).min(26.0);
        t[i] = 2.0 / (2.0 + z[i]);
        y[i] = 2.0 * t[i] - 1.0;
    }
    let (mut b1, mut b2) = ([0.0; LANES], [0.0; LANES]);
    for &c in ERFC_H[1..].iter().rev() {
        for i in 0..LANES {
            let b0 = c + 2.0 * y[i] * b1[i] - b2[i];
            b2[i] = b1[i];
            b1[i] = b0;
        }
    }
    let mut e = [0.0; LANES];
    for i in 0..LANES {
        e[i] = -z[i] * z[i] + (ERFC_H[0] + y[i] * b1[i] - b2[i]);
    }
    let e = exp_lanes(&e);
    let mut p = [0.0; LANES];
    for i in 0..LANES {
        let tail = 0.5 * (t[i] * e[i]);
        p[i] = if x[i] < 0.0 { tail } else { 1.0 - tail };
    }
    p
}

crate::scalar::widest_vectors! {
    /// `act[i] = z_i Φ(z_i)` and `cdf[i] = Φ(z_i)` over f32 slices, computed in f64 and rounded once.
    ///
    /// # Panics
    /// If the slices differ in length.
    pub fn gelu_f32(z: &[f32], act: &mut [f32], cdf: &mut [f32]) {
        assert!(
            z.len() == act.len() && z.len() == cdf.len(),
            "gelu_f32: lengths differ"
        );
    } => gelu_f32_loop
}

#[inline(always)]
fn gelu_f32_loop(z: &[f32], act: &mut [f32], cdf: &mut [f32]) {
    let chunks = z
        .chunks_exact(LANES)
        .zip(act.chunks_exact_mut(LANES))
        .zip(cdf.chunks_exact_mut(LANES));
    for ((zc, ac), cc) in chunks {
        let x = widened(zc);
        let p = phi_lanes(&x);
        for i in 0..LANES {
            ac[i] = (x[i] * p[i]) as f32;
            cc[i] = p[i] as f32;
        }
    }
    let done = z.len() - z.len() % LANES;
    let tail = z[done..].iter().zip(&mut act[done..]).zip(&mut cdf[done..]);
    for ((&zi, a), c) in tail {
        let x = zi as f64;
        let p = phi(x);
        *a = (x * p) as f32;
        *c = p as f32;
    }
}

crate::scalar::widest_vectors! {
    /// GELU's backward pass over f32 slices: `g[i] *= Φ(z_i) + z_i φ(z_i)` with the cached Φ (rounded to f32, as the
    /// f64 path does), the factor computed in f64 and rounded once.
    ///
    /// # Panics
    /// If the slices differ in length.
    pub fn gelu_backward_f32(z: &[f32], cdf: &[f32], g: &mut [f32]) {
        assert!(
            z.len() == cdf.len() && z.len() == g.len(),
            "gelu_backward_f32: lengths differ"
        );
    } => gelu_backward_f32_loop
}

#[inline(always)]
fn gelu_backward_f32_loop(z: &[f32], cdf: &[f32], g: &mut [f32]) {
    let sqrt_2pi = (2.0 * std::f64::consts::PI).sqrt();
    let chunks = z
        .chunks_exact(LANES)
        .zip(cdf.chunks_exact(LANES))
        .zip(g.chunks_exact_mut(LANES));
    for ((zc, cc), gc) in chunks {
        let x = widened(zc);
        let mut y = [0.0; LANES];
        for i in 0..LANES {
            y[i] = (-0.5 * x[i] * x[i]).max(-700.0);
        }
        let e = exp_lanes(&y);
        for i in 0..LANES {
            gc[i] *= (cc[i] as f64 + x[i] * (e[i] / sqrt_2pi)) as f32;
        }
    }
    let done = z.len() - z.len() % LANES;
    let tail = z[done..].iter().zip(&cdf[done..]).zip(&mut g[done..]);
    for ((&zi, &c), gi) in tail {
        let x = zi as f64;
        *gi *= (c as f64 + x * pdf(x)) as f32;
    }
}
