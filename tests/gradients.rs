//! PT1, PT5, PT7: every backward formula against central finite differences in f64, on square, tall and wide shapes,
//! at u ∈ {0, 0.4, 1}, under both scaling rules, and the factored, explicit and dense forms against each other.
//!
//! Error budget. The probe is $L = \langle G, Y\rangle$ with $|L| = O(10)$ on these shapes. For full fine-tuning,
//! LoRA and SingLoRA, $Y$ is a polynomial of degree ≤ 2 in any single parameter entry (SingLoRA's diagonal entries
//! appear in both $A_{out}$ and $A_{in}$), so a central difference has **no** truncation error and only round-off:
//! $|e| \lesssim \varepsilon|L|/h \approx 1.1\cdot10^{-16}\cdot 10/10^{-5} = 10^{-10}$ per entry, a relative error
//! near $10^{-10}$ for gradients of norm $O(1)$. DoRA is rational in its parameters; with $h = 10^{-5}$ its truncation
//! error $h^2|L'''|/6 \approx 10^{-10}$ for $O(1)$ third derivatives matches the round-off. We assert a normwise
//! relative error ≤ 1e-7: three orders above the budget for head-room, and seven below the $O(1)$ error that any
//! wrong term, factor or transpose produces.

mod common;

use common::{fd_input_grad, fd_param_grads, gaussian, random_layer, rel_err, SHAPES};
use ndarray::{s, Array2};
use singlora::adapters::{DoraNorm, Method, Scaling};
use singlora::linalg::{mm, mm_nt, mm_tn, row_norms};

const TOL: f64 = 1e-7;
const H: f64 = 1e-5;

fn check_all(method: Method, norm: DoraNorm) {
    let mut checked = 0;
    for (si, &(d_in, d_out)) in SHAPES.iter().enumerate() {
        for scaling in [Scaling::AlphaOverR, Scaling::AlphaOverSqrtR] {
            for u in [0.0, 0.4, 1.0] {
                let seed = 100 + si as u64;
                let mut layer = random_layer(method, d_in, d_out, 3, scaling, norm, seed);
                let x = gaussian(4, d_in, seed, "x");
                let g = gaussian(4, d_out, seed, "g");
                let grads = layer.backward(x.view(), g.view(), u);
                let fd = fd_param_grads(&mut layer, &x, &g, u, H);
                for ((info, a), b) in layer.param_info().iter().zip(&grads.params).zip(&fd) {
                    let e = rel_err(a, b);
                    assert!(
                        e <= TOL,
                        "{method} {norm:?} {d_out}x{d_in} {scaling:?} u={u}: grad {} rel err {e:e}",
                        info.name
                    );
                    checked += 1;
                }
                let fdx = fd_input_grad(&layer, &x, &g, u, H);
                let e = rel_err(&grads.x, &fdx);
                assert!(
                    e <= TOL,
                    "{method} {d_out}x{d_in} {scaling:?} u={u}: grad x rel err {e:e}"
                );
                // At u = 0 the update factors get exactly zero gradient (PT2); DoRA's magnitude still learns.
                if u == 0.0 {
                    for (info, a) in layer.param_info().iter().zip(&grads.params) {
                        if info.name != "lora_magnitude_vector" && method != Method::Full {
                            assert!(
                                a.iter().all(|&v| v == 0.0),
                                "{method}: {} not exactly 0 at u = 0",
                                info.name
                            );
                        }
                    }
                }
            }
        }
    }
    assert!(checked >= 18);
}

#[test]
fn full_finetuning_matches_finite_differences() {
    check_all(Method::Full, DoraNorm::Detached);
}

#[test]
fn lora_matches_finite_differences() {
    check_all(Method::Lora, DoraNorm::Detached);
}

#[test]
fn singlora_matches_finite_differences() {
    check_all(Method::Singlora, DoraNorm::Detached);
}

/// The full (non-detached) DoRA gradient is the true derivative, so it must match finite differences.
#[test]
fn dora_full_norm_matches_finite_differences() {
    check_all(Method::Dora, DoraNorm::Full);
}

#[test]
fn singlora_dora_full_norm_matches_finite_differences() {
    check_all(Method::SingloraDora, DoraNorm::Full);
}

/// The detached gradient is *not* the derivative of the forward pass; it is the derivative with ν held constant.
/// We check it against finite differences of that frozen-ν function, $Y = X(\mathrm{diag}(\omega/\nu_0)V)^\top$,
/// and check that it differs from the full gradient exactly by the projection term (PT7).
#[test]
fn dora_detached_is_the_frozen_norm_derivative() {
    for method in [Method::Dora, Method::SingloraDora] {
        for &(d_in, d_out) in &SHAPES {
            let u = 0.4;
            let det = random_layer(
                method,
                d_in,
                d_out,
                2,
                Scaling::AlphaOverR,
                DoraNorm::Detached,
                7,
            );
            let full = random_layer(
                method,
                d_in,
                d_out,
                2,
                Scaling::AlphaOverR,
                DoraNorm::Full,
                7,
            );
            let x = gaussian(3, d_in, 7, "x");
            let g = gaussian(3, d_out, 7, "g");
            let gd = det.backward(x.view(), g.view(), u);
            let gf = full.backward(x.view(), g.view(), u);
            // ∂ω and ∂X do not depend on the detach.
            let last = gd.params.len() - 1;
            assert_eq!(
                gd.params[last], gf.params[last],
                "{method}: ∂ω depends on the detach"
            );
            assert_eq!(gd.x, gf.x, "{method}: ∂X depends on the detach");
            // Frozen-ν derivative: perturb factors, keep ν at its unperturbed value, by hand.
            let omega = det.magnitude.clone().unwrap();
            let c = det.c(u);
            let v0 = &det.w0 + &(det.update.delta_w() * c);
            let nu0 = row_norms(v0.view());
            let frozen = |layer: &singlora::adapters::AdaptedLinear<f64>| -> f64 {
                let v = &layer.w0 + &(layer.update.delta_w() * c);
                let w = &v * &(&omega / &nu0).insert_axis(ndarray::Axis(1));
                (&mm_nt(x.view(), w.view()) * &g).sum()
            };
            let mut probe_layer = random_layer(
                method,
                d_in,
                d_out,
                2,
                Scaling::AlphaOverR,
                DoraNorm::Detached,
                7,
            );
            for k in 0..last {
                let len = probe_layer.params()[k].len();
                let mut fd = vec![0.0; len];
                for (i, fd_i) in fd.iter_mut().enumerate() {
                    let orig = probe_layer.params()[k].as_slice().unwrap()[i];
                    probe_layer.params_mut()[k].as_slice_mut().unwrap()[i] = orig + H;
                    let p = frozen(&probe_layer);
                    probe_layer.params_mut()[k].as_slice_mut().unwrap()[i] = orig - H;
                    let m = frozen(&probe_layer);
                    probe_layer.params_mut()[k].as_slice_mut().unwrap()[i] = orig;
                    *fd_i = (p - m) / (2.0 * H);
                }
                let fd = ndarray::ArrayD::from_shape_vec(gd.params[k].raw_dim(), fd).unwrap();
                let e = rel_err(&gd.params[k], &fd);
                assert!(
                    e <= TOL,
                    "{method} {d_out}x{d_in}: detached grad {k} rel err {e:e}"
                );
                // Full minus detached is the projection term, which is non-zero for random states.
                let diff = rel_err(&gd.params[k], &gf.params[k]);
                assert!(
                    diff > 1e-6,
                    "{method}: full and detached gradients coincide ({diff:e})"
                );
            }
        }
    }
}

/// PT5: SingLoRA's unified factored gradient, the explicit tall/wide forms and the dense $(\hat G + \hat G^\top)A$
/// form agree to round-off (1e-12 relative; each is a handful of O(1) dot products).
#[test]
fn singlora_unified_explicit_and_dense_forms_agree() {
    for &(d_in, d_out) in &[(6, 6), (5, 9), (9, 5), (1, 7), (7, 1)] {
        let layer = random_layer(
            Method::Singlora,
            d_in,
            d_out,
            3,
            Scaling::AlphaOverR,
            DoraNorm::Detached,
            3,
        );
        let u = 0.4;
        let c = layer.c(u);
        let x = gaussian(4, d_in, 3, "x");
        let g = gaussian(4, d_out, 3, "g");
        let unified = layer.backward(x.view(), g.view(), u).params[0]
            .clone()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap();
        let a = layer.params()[0]
            .to_owned()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap();
        let m = d_in.max(d_out);
        let g_w = mm_tn(g.view(), x.view());
        // Dense: Ĝ ∈ R^{m×m}, Ĝ[:d_out, :d_in] = G_W.
        let mut g_hat = Array2::<f64>::zeros((m, m));
        g_hat.slice_mut(s![..d_out, ..d_in]).assign(&g_w);
        let sym = &g_hat + &g_hat.t();
        let dense = mm(sym.view(), a.view()) * c;
        // Explicit: tall ⇒ G_W A* on all rows plus G_Wᵀ A on the first d_in rows (A* = A[:d_in]); wide symmetric.
        let mut explicit = Array2::<f64>::zeros((m, 3));
        if d_out >= d_in {
            explicit.assign(&mm(g_w.view(), a.slice(s![..d_in, ..])));
            let extra = mm(g_w.t(), a.view());
            let mut top = explicit.slice_mut(s![..d_in, ..]);
            top += &extra;
        } else {
            explicit.assign(&mm(g_w.t(), a.slice(s![..d_out, ..])));
            let extra = mm(g_w.view(), a.view());
            let mut top = explicit.slice_mut(s![..d_out, ..]);
            top += &extra;
        }
        explicit *= c;
        assert!(
            rel_err(&unified, &dense) < 1e-12,
            "{d_out}x{d_in}: unified vs dense {:e}",
            rel_err(&unified, &dense)
        );
        assert!(
            rel_err(&unified, &explicit) < 1e-12,
            "{d_out}x{d_in}: unified vs explicit {:e}",
            rel_err(&unified, &explicit)
        );
    }
}

/// PT3: SingLoRA has a saddle at A = 0 (∂A = 0); LoRA has ∂A = 0 at B = 0 while ∂B ≠ 0.
#[test]
fn saddles_at_zero_factors() {
    let mut sl = random_layer(
        Method::Singlora,
        6,
        6,
        2,
        Scaling::AlphaOverR,
        DoraNorm::Detached,
        1,
    );
    sl.params_mut()[0].fill(0.0);
    let x = gaussian(3, 6, 1, "x");
    let g = gaussian(3, 6, 1, "g");
    assert!(sl.backward(x.view(), g.view(), 1.0).params[0]
        .iter()
        .all(|&v| v == 0.0));
    let mut lora = random_layer(
        Method::Lora,
        6,
        6,
        2,
        Scaling::AlphaOverR,
        DoraNorm::Detached,
        1,
    );
    lora.params_mut()[1].fill(0.0);
    let grads = lora.backward(x.view(), g.view(), 1.0);
    assert!(grads.params[0].iter().all(|&v| v == 0.0), "∂A ≠ 0 at B = 0");
    assert!(common::frob(&grads.params[1]) > 1e-3, "∂B = 0 at B = 0");
}

/// DoRA's row norms in factored form, $\lVert V_i\rVert^2 = \lVert W_{0,i}\rVert^2 + 2c\langle W_{0,i},
/// \widetilde{\Delta W}_i\rangle + c^2\lVert\widetilde{\Delta W}_i\rVert^2$ (never a dense $V$), against the dense
/// $\lVert W_{0,i} + c\widetilde{\Delta W}_i\rVert$, read through `merged_weight` $= \mathrm{diag}(\omega/\nu)V$.
///
/// Bound: each side is a sum of at most $d_{in} + 2r + 4$ rounded products of entries whose absolute sum is at most
/// $S_i = (\lVert W_{0,i}\rVert + |c|\,\lVert\overline{\Delta W}_i\rVert)^2$ with $\overline{\Delta W} = |B||A|$
/// (SingLoRA: $|A_{out}||A_{in}|^\top$; the factored sums run over the factors' entries, so their absolute sums are
/// those of the absolute factors, and Cauchy–Schwarz bounds the cross term), so
/// each squared norm is within $\gamma S_i$ of the exact one, $\gamma = (d_{in} + 2r + 4)\,\varepsilon$ (the standard
/// dot-product bound; the factors' own Gram products are folded into the $2r$). The rows of the merged weight then
/// differ by the factor $\nu_{dense}/\nu_{factored}$, i.e. relatively by at most $2\gamma S_i / (2\lVert V_i\rVert^2)$
/// plus one rounding of the ratio. Asserted with 4× head-room.
#[test]
fn dora_factored_norms_match_the_dense_norms() {
    for method in [Method::Dora, Method::SingloraDora] {
        for &(d_in, d_out) in &SHAPES {
            for u in [0.4, 1.0] {
                let r = 2;
                let layer = random_layer(
                    method,
                    d_in,
                    d_out,
                    r,
                    Scaling::AlphaOverR,
                    DoraNorm::Full,
                    9,
                );
                let c = layer.c(u);
                let dw = layer.update.delta_w();
                let mut bar = random_layer(
                    method,
                    d_in,
                    d_out,
                    r,
                    Scaling::AlphaOverR,
                    DoraNorm::Full,
                    9,
                );
                for mut p in bar.params_mut() {
                    p.mapv_inplace(f64::abs);
                }
                let dw_bar = bar.update.delta_w();
                let v = &layer.w0 + &(&dw * c);
                let nu = row_norms(v.view());
                let omega = layer.magnitude.clone().unwrap();
                let dense = &v * &(&omega / &nu).insert_axis(ndarray::Axis(1));
                let merged = layer.merged_weight(u);
                let gamma = (d_in + 2 * r + 4) as f64 * f64::EPSILON;
                for i in 0..d_out {
                    let s_i = (row_norms(layer.w0.view())[i]
                        + c.abs() * row_norms(dw_bar.view())[i])
                        .powi(2);
                    let bound = 4.0 * (gamma * s_i / (nu[i] * nu[i]) + f64::EPSILON);
                    let diff = (&merged.row(i) - &dense.row(i))
                        .mapv(|x| x * x)
                        .sum()
                        .sqrt();
                    let rel = diff / dense.row(i).mapv(|x| x * x).sum().sqrt();
                    assert!(
                        rel <= bound,
                        "{method} {d_out}x{d_in} u={u} row {i}: {rel:e} > {bound:e}"
                    );
                }
            }
        }
    }
}
