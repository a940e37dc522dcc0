//! The fast paths against the paths they replace, within derived round-off bounds: DoRA without a dense
//! $V = W_0 + c\widetilde{\Delta W}$ (row norms from $\lVert W_{0,i}\rVert^2$, the cross term and the low-rank Gram;
//! $P = XV^\top$ kept by the forward; the full norm's projection from the factors) against the dense computation it
//! replaced, and full fine-tuning's merged product $X(W_0 + cD)^\top$ against $XW_0^\top + c\,XD^\top$.
//!
//! Notation: $\varepsilon$ is the unit round-off of f64, $\gamma_n = n\varepsilon/(1 - n\varepsilon)$ the standard bound
//! of a length-n dot product ($|\mathrm{fl}(x^\top y) - x^\top y| \le \gamma_n |x|^\top|y|$), and a bar marks the same
//! computation on absolute values (every entry of $X$, $G$, $W_0$ and the factors replaced by its modulus), which
//! bounds every partial sum of the signed computation: $\bar F = |X|\,\overline{\Delta W}^\top$ with
//! $\overline{\Delta W} = |B||A|$ (SingLoRA: $|A_{out}||A_{in}|^\top$), $\bar V = |W_0| + |c|\,\overline{\Delta W}$.
//! Each bound below is first order in ε; asserted with 4× head-room for the second-order terms, and each test also
//! asserts that its bound is below $10^{-11}$ of the quantity's scale, so a wrong term (an O(1) error) cannot pass.

mod common;

use common::{gaussian, random_layer};
use ndarray::{Array1, Array2, ArrayD, Axis};
use singlora::adapters::{AdaptedLinear, DoraNorm, Kept, Method, Scaling};
use singlora::linalg::{mm, mm_nt, mm_tn, row_norms};

const EPS: f64 = f64::EPSILON / 2.0;

/// Square, tall and wide, small and moderately sized, as (d_in, d_out).
const SHAPES: [(usize, usize); 5] = [(6, 6), (5, 9), (9, 5), (48, 32), (32, 48)];

fn gamma(n: usize) -> f64 {
    let x = n as f64 * EPS;
    x / (1.0 - x)
}

/// The same layer with every base and factor entry replaced by its modulus (the bar quantities).
fn abs_layer(
    layer: &AdaptedLinear<f64>,
    rebuild: impl Fn() -> AdaptedLinear<f64>,
) -> AdaptedLinear<f64> {
    let mut a = rebuild();
    assert_eq!(a.w0, layer.w0, "the rebuilt layer is the layer");
    a.w0.mapv_inplace(f64::abs);
    for mut p in a.params_mut() {
        p.mapv_inplace(f64::abs);
    }
    a
}

/// DoRA as it was computed before the factored path (dense V, $P = XV^\top$, the projection term from
/// `grad_dense(diag(e)·V)`), step for step: the reference.
struct DenseDora {
    y: Array2<f64>,
    params: Vec<ArrayD<f64>>,
    gx: Array2<f64>,
}

fn dense_dora(layer: &AdaptedLinear<f64>, x: &Array2<f64>, g: &Array2<f64>, u: f64) -> DenseDora {
    let c = layer.c(u);
    let omega = layer.magnitude.clone().expect("DoRA");
    let mut v = layer.update.delta_w();
    v.zip_mut_with(&layer.w0, |d, &w| *d = w + c * *d);
    let eps = layer.config.dora_eps;
    let raw = row_norms(v.view());
    let floored: Vec<bool> = raw.iter().map(|&r| r.is_nan() || r < eps).collect();
    let nu = raw.mapv(|r| if r >= eps { r } else { eps });
    let k = &omega / &nu;
    let base = mm_nt(x.view(), layer.w0.view());
    let delta = layer.update.apply(x.view()) * c;
    let km1 = k.mapv(|v| v - 1.0);
    let y =
        &base * &km1.view().insert_axis(Axis(0)) + &delta * &k.view().insert_axis(Axis(0)) + &base;
    let p = mm_nt(x.view(), v.view());
    let q = (g * &p).sum_axis(Axis(0));
    let d_omega = &q / &nu;
    let g_prime = g * &k.view().insert_axis(Axis(0));
    let mut params = layer.update.grad(x.view(), g_prime.view());
    for p in &mut params {
        p.mapv_inplace(|v| v * c);
    }
    if layer.config.dora_norm == DoraNorm::Full {
        let e = Array1::from_shape_fn(nu.len(), |i| {
            if floored[i] {
                0.0
            } else {
                -(omega[i] * q[i]) / (nu[i] * nu[i] * nu[i])
            }
        });
        let proj = &v * &e.view().insert_axis(Axis(1));
        for (acc, extra) in params.iter_mut().zip(layer.update.grad_dense(proj.view())) {
            acc.scaled_add(c, &extra);
        }
    }
    let mut params: Vec<ArrayD<f64>> = params.into_iter().map(|p| p.into_dyn()).collect();
    params.push(d_omega.into_dyn());
    let mut gx = mm(g_prime.view(), layer.w0.view());
    layer
        .update
        .apply_adjoint_acc(g_prime.view(), c, gx.view_mut());
    DenseDora { y, params, gx }
}

/// Asserts $|a - b| \le 4\,\text{bound}$ entry by entry, and that the bound is below $10^{-11}$ of `scale`.
#[track_caller]
fn assert_within<D: ndarray::Dimension>(
    what: &str,
    a: &ndarray::Array<f64, D>,
    b: &ndarray::Array<f64, D>,
    bound: &ndarray::Array<f64, D>,
    scale: f64,
) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes differ");
    assert_eq!(a.shape(), bound.shape(), "{what}: bound shape");
    for ((x, y), e) in a.iter().zip(b).zip(bound) {
        assert!(
            (x - y).abs() <= 4.0 * e,
            "{what}: {x:e} vs {y:e} differ by {:e} > 4 × {e:e}",
            (x - y).abs()
        );
        assert!(
            *e <= 1e-11 * scale,
            "{what}: the bound {e:e} is vacuous at scale {scale:e}"
        );
    }
}

fn max_abs<D: ndarray::Dimension>(a: &ndarray::Array<f64, D>) -> f64 {
    a.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// The per-row relative difference β of the two computations of ν. Each squared norm is a sum of rounded products
/// whose absolute sum is at most $S_i = (\lVert W_{0,i}\rVert + |c|\,\lVert\overline{\Delta W}_i\rVert)^2$ (the
/// factored cross term $\sum_k B_{ik}(W_0A^\top)_{ik}$ and Gram term $\sum_k (BAA^\top)_{ik}B_{ik}$ have absolute sums
/// $\le \lVert W_{0,i}\rVert\lVert\overline{\Delta W}_i\rVert$ and $\lVert\overline{\Delta W}_i\rVert^2$ by
/// Cauchy–Schwarz; the dense $V$ is rounded once and summed once), each within $\gamma_N S_i$ of the exact value with
/// $N = d_{in} + 2r + 3$; so $|\nu_{old}^2 - \nu_{new}^2| \le 2\gamma_N S_i$, and with the square roots
/// $|\nu_{old} - \nu_{new}|/\nu \le 2\gamma_N S_i/\nu^2 + 2\varepsilon$.
fn nu_rel(
    layer: &AdaptedLinear<f64>,
    bar: &AdaptedLinear<f64>,
    c: f64,
    rank: usize,
) -> (Array1<f64>, Array1<f64>) {
    let n = layer.d_in() + 2 * rank + 3;
    let dw_bar = bar.update.delta_w();
    let w0_norm = row_norms(layer.w0.view());
    let dw_norm = row_norms(dw_bar.view());
    let mut v = layer.update.delta_w();
    v.zip_mut_with(&layer.w0, |d, &w| *d = w + c * *d);
    let nu = row_norms(v.view());
    let beta = Array1::from_shape_fn(nu.len(), |i| {
        let s = (w0_norm[i] + c.abs() * dw_norm[i]).powi(2);
        2.0 * gamma(n) * s / (nu[i] * nu[i]) + 2.0 * EPS
    });
    (nu, beta)
}

/// The factored DoRA forward and backward against [`dense_dora`].
///
/// Forward: both compute $((k-1)\,b + k\,d) + b$ from the same $b = XW_0^\top$ and $d = c\,X\widetilde{\Delta W}^\top$
/// and differ only in $k = \omega/\nu$, by $|\Delta k_i| \le k_i(\beta_i + 2\varepsilon)$; so
/// $|\Delta y| \le |\Delta k|(|b| + |d|) + 8\varepsilon(|k-1||b| + k|d| + |b|)$.
///
/// Backward: $P_{old} = X\,\mathrm{fl}(V)^\top$ and $P_{new} = b + d$ are each within $\gamma_K M$ of $XV^\top$,
/// $M = |X||W_0|^\top + |c|\bar F$, $K = d_{in} + r + 2$; $q_i = \sum_b G_{bi}P_{bi}$ then differs by
/// $E^q_i = 2\gamma_K(|G|^\top M)_{ii}$-style row sums $\sum_b |G_{bi}|M_{bi}$ plus $2\gamma_b\sum_b|G_{bi}P_{bi}|$.
/// $\partial\omega = q/\nu$: $E^q/\nu + |q|(\beta + 4\varepsilon)/\nu$. $G' = G\,\mathrm{diag}(k)$ differs by
/// $|G||\Delta k| + 2\varepsilon|G'|$; the factors' gradient is linear in $G'$, so it differs by
/// $|c|\,\overline{\mathrm{grad}}(|X|, |\Delta G'|) + 2\gamma_{K_2}|c|\,\overline{\mathrm{grad}}(|X|, |G'|)$,
/// $K_2 = b + d_{in} + d_{out} + r$ (the longest chain of sums in a factored gradient). The full norm adds
/// $c\cdot\mathrm{grad}(\mathrm{diag}(e)V)$, $e_i = -\omega_iq_i/\nu_i^3$, with $|\Delta e_i| \le
/// \omega_i(E^q_i + |q_i|(3\beta_i + 8\varepsilon))/\nu_i^3$: it differs by $|c|\,\overline{\mathrm{grad}}
/// (\mathrm{diag}(|\Delta e|)\bar V) + 2\gamma_{K_3}|c|\,\overline{\mathrm{grad}}(\mathrm{diag}(|e|)\bar V)$,
/// $K_3 = d_{in} + d_{out} + 2r + 2$. $\partial X = G'W_0 + c\,G'\widetilde{\Delta W}$ from $G'$ alike:
/// $|\Delta G'|\bar V + 2\gamma_{d_{out}+r+1}|G'|\bar V$ (products with $\bar V$ taken factored).
#[test]
fn dora_factored_matches_the_dense_path() {
    let (b, rank) = (5, 3);
    let mut checked = 0;
    for method in [Method::Dora, Method::SingloraDora] {
        for norm in [DoraNorm::Detached, DoraNorm::Full] {
            for (si, &(d_in, d_out)) in SHAPES.iter().enumerate() {
                for u in [0.4, 1.0] {
                    let seed = 40 + si as u64;
                    let make =
                        || random_layer(method, d_in, d_out, rank, Scaling::AlphaOverR, norm, seed);
                    let layer = make();
                    let bar = abs_layer(&layer, make);
                    let (x, g) = (gaussian(b, d_in, seed, "x"), gaussian(b, d_out, seed, "g"));
                    let tag = format!("{method} {norm:?} {d_out}x{d_in} u={u}");
                    check_dora(&layer, &bar, (&x, &g), u, rank, &tag);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 2 * 2 * SHAPES.len() * 2);
}

fn check_dora(
    layer: &AdaptedLinear<f64>,
    bar: &AdaptedLinear<f64>,
    (x, g): (&Array2<f64>, &Array2<f64>),
    u: f64,
    rank: usize,
    tag: &str,
) {
    let (b, d_in, d_out) = (x.nrows(), layer.d_in(), layer.d_out());
    let c = layer.c(u);
    let reference = dense_dora(layer, x, g, u);
    let (y, kept) = layer.forward_kept(x.view(), None, u);
    let (params, gx) = layer.grads_kept(x.view(), g.view(), u, true, kept.as_ref());
    let (gx, omega) = (gx.unwrap(), layer.magnitude.clone().unwrap());
    let (nu, beta) = nu_rel(layer, bar, c, rank);
    let k = &omega / &nu;
    let dk = Array1::from_shape_fn(d_out, |i| k[i] * (beta[i] + 2.0 * EPS));
    let (xa, ga) = (x.mapv(f64::abs), g.mapv(f64::abs));
    // Forward.
    let base = mm_nt(x.view(), layer.w0.view()).mapv(f64::abs);
    let delta = (layer.update.apply(x.view()) * c).mapv(f64::abs);
    let ey = Array2::from_shape_fn((b, d_out), |(r, i)| {
        dk[i] * (base[[r, i]] + delta[[r, i]])
            + 8.0 * EPS * ((k[i] - 1.0).abs() * base[[r, i]] + k[i] * delta[[r, i]] + base[[r, i]])
    });
    assert_within(
        &format!("{tag}: y"),
        &y,
        &reference.y,
        &ey,
        max_abs(&reference.y),
    );
    // q and ∂ω.
    let m = mm_nt(xa.view(), bar.w0.view()) + bar.update.apply(xa.view()) * c.abs();
    let p = mm_nt(x.view(), layer.w0.view()) + layer.update.apply(x.view()) * c;
    let kk = d_in + rank + 2;
    let eq = Array1::from_shape_fn(d_out, |i| {
        (0..b)
            .map(|r| {
                2.0 * gamma(kk) * ga[[r, i]] * m[[r, i]]
                    + 2.0 * gamma(b) * (ga[[r, i]] * p[[r, i]]).abs()
            })
            .sum::<f64>()
    });
    let q = (g * &p).sum_axis(Axis(0));
    let last = params.len() - 1;
    let e_omega = Array1::from_shape_fn(d_out, |i| {
        eq[i] / nu[i] + q[i].abs() * (beta[i] + 4.0 * EPS) / nu[i]
    });
    let omega_new = params[last].clone().into_dimensionality().unwrap();
    let omega_old = reference.params[last]
        .clone()
        .into_dimensionality()
        .unwrap();
    assert_within(
        &format!("{tag}: ∂ω"),
        &omega_new,
        &omega_old,
        &e_omega,
        max_abs(&omega_old),
    );
    // G' and the factors' gradients.
    let gp = g * &k.view().insert_axis(Axis(0));
    let dgp = Array2::from_shape_fn((b, d_out), |(r, i)| {
        ga[[r, i]] * dk[i] + 2.0 * EPS * gp[[r, i]].abs()
    });
    let gpa = gp.mapv(f64::abs);
    let k2 = b + d_in + d_out + rank;
    let mut bounds: Vec<Array2<f64>> = bar
        .update
        .grad(xa.view(), dgp.view())
        .into_iter()
        .zip(bar.update.grad(xa.view(), gpa.view()))
        .map(|(d, s)| (d + s * (2.0 * gamma(k2) + 2.0 * EPS)) * c.abs())
        .collect();
    if layer.config.dora_norm == DoraNorm::Full {
        add_projection_bounds(&mut bounds, (layer, bar), (&q, &eq, &nu, &beta), c, rank);
    }
    for (i, bound) in bounds.iter().enumerate() {
        let (new, old) = (&params[i], &reference.params[i]);
        let bound = bound.clone().into_dyn();
        assert_within(&format!("{tag}: ∂θ{i}"), new, old, &bound, max_abs(old));
    }
    // ∂X.
    let vbar = |m: &Array2<f64>| {
        mm(m.view(), bar.w0.view()) + bar.update.apply_adjoint(m.view()) * c.abs()
    };
    let ex = vbar(&dgp) + vbar(&gpa) * (2.0 * gamma(d_out + rank + 1));
    assert_within(
        &format!("{tag}: ∂X"),
        &gx,
        &reference.gx,
        &ex,
        max_abs(&reference.gx),
    );
}

/// The full norm's projection term's share of the factor-gradient bounds (see [`dora_factored_matches_the_dense_path`]).
fn add_projection_bounds(
    bounds: &mut [Array2<f64>],
    (layer, bar): (&AdaptedLinear<f64>, &AdaptedLinear<f64>),
    (q, eq, nu, beta): (&Array1<f64>, &Array1<f64>, &Array1<f64>, &Array1<f64>),
    c: f64,
    rank: usize,
) {
    let omega = layer.magnitude.as_ref().unwrap();
    let n = nu.len();
    let e = Array1::from_shape_fn(n, |i| omega[i] * q[i].abs() / nu[i].powi(3));
    let de = Array1::from_shape_fn(n, |i| {
        omega[i] * (eq[i] + q[i].abs() * (3.0 * beta[i] + 8.0 * EPS)) / nu[i].powi(3)
    });
    let mut v_bar = bar.update.delta_w();
    v_bar.zip_mut_with(&bar.w0, |d, &w| *d = w + c.abs() * *d);
    let k3 = layer.d_in() + layer.d_out() + 2 * rank + 2;
    let rows = |d: &Array1<f64>| &v_bar * &d.view().insert_axis(Axis(1));
    let (shift, scaled) = (
        bar.update.grad_dense(rows(&de).view()),
        bar.update.grad_dense(rows(&e).view()),
    );
    for ((acc, d), s) in bounds.iter_mut().zip(shift).zip(scaled) {
        *acc += &((d + s * (2.0 * gamma(k3) + 2.0 * EPS)) * c.abs());
    }
}

/// Full fine-tuning's merged product against the two products it replaces: $\mathrm{fl}(X\,\mathrm{fl}(W_0 + cD)^\top)$
/// and $\mathrm{fl}(\mathrm{fl}(XW_0^\top) + c\,\mathrm{fl}(XD^\top))$ are each within
/// $\gamma_{d_{in}+2}\,|X|(|W_0| + |c||D|)^\top$ of the exact output, so they differ by at most twice that; $\partial X$
/// likewise with $|G|(|W_0| + |c||D|)$ and $\gamma_{d_{out}+2}$; $\partial D = c\,G^\top X$ is the same computation
/// (bit for bit). At D = 0 the merged weight is $W_0$ exactly, so the output is the base product bit for bit.
#[test]
fn full_merged_matches_the_two_product_path() {
    for (si, &(d_in, d_out)) in SHAPES.iter().enumerate() {
        for u in [0.4, 1.0] {
            let seed = 60 + si as u64;
            let layer = random_layer(
                Method::Full,
                d_in,
                d_out,
                3,
                Scaling::AlphaOverR,
                DoraNorm::Detached,
                seed,
            );
            let (x, g) = (gaussian(5, d_in, seed, "x"), gaussian(5, d_out, seed, "g"));
            let c = layer.c(u);
            let d = layer.update.delta_w();
            let tag = format!("full {d_out}x{d_in} u={u}");
            let y_ref = mm_nt(x.view(), layer.w0.view()) + mm_nt(x.view(), d.view()) * c;
            let gx_ref = mm(g.view(), layer.w0.view()) + mm(g.view(), d.view()) * c;
            let grads = layer.backward(x.view(), g.view(), u);
            let y = layer.forward(x.view(), u);
            let w_bar = layer.w0.mapv(f64::abs) + d.mapv(f64::abs) * c.abs();
            let ey = mm_nt(x.mapv(f64::abs).view(), w_bar.view()) * (2.0 * gamma(d_in + 2));
            let ex = mm(g.mapv(f64::abs).view(), w_bar.view()) * (2.0 * gamma(d_out + 2));
            assert_within(&format!("{tag}: y"), &y, &y_ref, &ey, max_abs(&y_ref));
            assert_within(
                &format!("{tag}: ∂X"),
                &grads.x,
                &gx_ref,
                &ex,
                max_abs(&gx_ref),
            );
            let gd = mm_tn(g.view(), x.view()) * c;
            assert_eq!(grads.params[0], gd.into_dyn(), "{tag}: ∂D");
        }
    }
    let fresh = singlora::adapters::AdaptedLinear::new(
        gaussian(7, 5, 1, "w0"),
        &singlora::adapters::AdapterConfig::new(Method::Full),
        1,
    )
    .unwrap();
    let x = gaussian(3, 5, 1, "x");
    assert_eq!(
        fresh.forward(x.view(), 0.7),
        fresh.base_forward(x.view()),
        "full at D = 0"
    );
}

/// The merged weight lives for one forward–backward pair: a forward pass whose kept state is still held gets its own
/// copy (so two passes at different ramp values do not overwrite each other), and once the state is dropped the next
/// pass reuses the same storage (no allocation per step).
#[test]
fn full_merged_buffer_is_reused_only_when_free() {
    let layer = random_layer(
        Method::Full,
        6,
        5,
        2,
        Scaling::AlphaOverR,
        DoraNorm::Detached,
        3,
    );
    let x = gaussian(4, 6, 3, "x");
    let merged = |k: &Option<Kept<f64>>| match k {
        Some(Kept::Merged(w)) => w.clone(),
        _ => panic!("full fine-tuning keeps its merged weight"),
    };
    let (_, k1) = layer.forward_kept(x.view(), None, 0.4);
    let (_, k2) = layer.forward_kept(x.view(), None, 1.0);
    let (w1, w2) = (merged(&k1), merged(&k2));
    assert_eq!(
        *w1,
        layer.merged_weight(0.4),
        "the first pass's weight was overwritten"
    );
    assert_eq!(*w2, layer.merged_weight(1.0));
    assert!(
        !std::sync::Arc::ptr_eq(&w1, &w2),
        "two live passes share one buffer"
    );
    let ptr = std::sync::Arc::as_ptr(&w2);
    drop((w1, w2, k1, k2));
    let (_, k3) = layer.forward_kept(x.view(), None, 0.4);
    assert_eq!(
        std::sync::Arc::as_ptr(&merged(&k3)),
        ptr,
        "a free buffer was not reused"
    );
}
