//! One golden-value test per adapter on a tiny example, every expected number derived by hand in the comments.
//! Conventions: Y = X Wᵀ, G = ∂L/∂Y, G_W = GᵀX (THEORY §7). The numbers are exact in binary floating point except
//! where a √ appears; those are compared to 1e-15.

use approx::assert_abs_diff_eq;
use ndarray::{array, Array2};
use singlora::adapters::{AdaptedLinear, AdapterConfig, DoraNorm, Method};

fn layer(
    method: Method,
    w0: Array2<f64>,
    rank: usize,
    alpha: f64,
    params: &[Array2<f64>],
    magnitude: Option<ndarray::Array1<f64>>,
) -> AdaptedLinear<f64> {
    let mut l =
        AdaptedLinear::new(w0, &AdapterConfig::new(method).rank_alpha(rank, alpha), 0).unwrap();
    for (mut p, v) in l.params_mut().into_iter().zip(params) {
        p.assign(&v.view().into_dyn());
    }
    if let Some(m) = magnitude {
        l.magnitude = Some(m);
    }
    l
}

fn m2(a: &ndarray::ArrayD<f64>) -> Array2<f64> {
    match a.ndim() {
        1 => a.clone().into_shape_with_order((a.len(), 1)).unwrap(),
        _ => a.clone().into_dimensionality().unwrap(),
    }
}

/// W0 = [[1,2],[3,4]], D = [[0,1],[0,0]] ⇒ W = [[1,3],[3,4]]. x = [1,1]: y = [1+3, 3+4] = [4, 7].
/// G = [1,2]: ∂D = GᵀX = [[1,1],[2,2]]; ∂X = G W = [1·1+2·3, 1·3+2·4] = [7, 11].
#[test]
fn golden_full() {
    let l = layer(
        Method::Full,
        array![[1., 2.], [3., 4.]],
        1,
        1.0,
        &[array![[0., 1.], [0., 0.]]],
        None,
    );
    let x = array![[1., 1.]];
    let g = array![[1., 2.]];
    assert_eq!(l.forward(x.view(), 1.0), array![[4., 7.]]);
    let gr = l.backward(x.view(), g.view(), 1.0);
    assert_eq!(m2(&gr.params[0]), array![[1., 1.], [2., 2.]]);
    assert_eq!(gr.x, array![[7., 11.]]);
}

/// LoRA, r = 1, α = 2 ⇒ s = 2. W0 = I, A = [[1,2]], B = [[3],[-1]], x = [1,1].
/// Bottleneck XAᵀ = 3; (XAᵀ)Bᵀ = [9,-3]; y = x + 2·[9,-3] = [19,-5].
/// G = [1,0]: GB = 3. ∂B = s·Gᵀ(XAᵀ) = 2·[[1],[0]]·3 = [[6],[0]]; ∂A = s·(GB)ᵀX = 2·3·[1,1] = [[6,6]];
/// ∂X = G W0 + s·(GB)A = [1,0] + 6·[1,2] = [7,12].
#[test]
fn golden_lora() {
    let l = layer(
        Method::Lora,
        Array2::eye(2),
        1,
        2.0,
        &[array![[1., 2.]], array![[3.], [-1.]]],
        None,
    );
    let x = array![[1., 1.]];
    let g = array![[1., 0.]];
    assert_eq!(l.forward(x.view(), 1.0), array![[19., -5.]]);
    let gr = l.backward(x.view(), g.view(), 1.0);
    assert_eq!(m2(&gr.params[0]), array![[6., 6.]]);
    assert_eq!(m2(&gr.params[1]), array![[6.], [0.]]);
    assert_eq!(gr.x, array![[7., 12.]]);
}

/// SingLoRA, tall 3×2, r = 1, α = 1 (s = 1), u = 1/2 ⇒ c = 1/2. A = [1,2,3]ᵀ: A_in = [1,2]ᵀ, A_out = [1,2,3]ᵀ.
/// ΔW̃ = A_out A_inᵀ = [[1,2],[2,4],[3,6]] (3×2, not transposed: bug B1). W0 = 0, x = [1,-1]: XA_in = -1,
/// y = ½·(-1)·[1,2,3] = [-½,-1,-3/2].
/// G = [1,1,1]: GA_out = 6. Output role ∂A[:3] += c·Gᵀ(XA_in) = ½·(-1)·[1,1,1]; input role
/// ∂A[:2] += c·Xᵀ(GA_out) = ½·6·[1,-1] = [3,-3]. Total ∂A = [5/2, -7/2, -1/2]. ∂X = c·(GA_out)A_inᵀ = 3·[1,2] = [3,6].
#[test]
fn golden_singlora_tall() {
    let l = layer(
        Method::Singlora,
        Array2::zeros((3, 2)),
        1,
        1.0,
        &[array![[1.], [2.], [3.]]],
        None,
    );
    let x = array![[1., -1.]];
    let g = array![[1., 1., 1.]];
    assert_eq!(l.delta_w(1.0), array![[1., 2.], [2., 4.], [3., 6.]]);
    assert_eq!(l.forward(x.view(), 0.5), array![[-0.5, -1., -1.5]]);
    let gr = l.backward(x.view(), g.view(), 0.5);
    assert_eq!(m2(&gr.params[0]), array![[2.5], [-3.5], [-0.5]]);
    assert_eq!(gr.x, array![[3., 6.]]);
}

/// DoRA, r = 1, α = 1. W0 = [[3,4],[0,1]], A = [[1,0]], B = [[0],[1]] ⇒ BA = [[0,0],[1,0]], V = [[3,4],[1,1]],
/// ν = [5, √2]. ω = [10, 1] ⇒ k = ω/ν = [2, 1/√2]. x = [1,1]: XVᵀ = [7,2], y = k⊙[7,2] = [14, √2].
/// G = [1,1] ⇒ G_W = [[1,1],[1,1]], q = ⟨G_W,i, V_i⟩ = [7,2]; ∂ω = q/ν = [7/5, √2].
/// Detached: ∂V = diag(k)G_W = [[2,2],[1/√2,1/√2]]; ∂B = ∂V Aᵀ = [[2],[1/√2]]; ∂A = Bᵀ∂V = [[1/√2,1/√2]].
/// Full: ∂V −= diag(ω q/ν³)V = diag([70/125, 2/(2√2)])V = [[1.68, 2.24],[1/√2,1/√2]] ⇒ ∂V = [[0.32,-0.24],[0,0]]
/// (row 2 of G_W is parallel to V_2, so the projection removes it); ∂B = [[0.32],[0]], ∂A = [[0,0]].
/// ∂X = G·diag(k)V = [6,8] + [1/√2,1/√2] in both modes.
#[test]
fn golden_dora_detached_and_full() {
    let r2 = 2f64.sqrt();
    for norm in [DoraNorm::Detached, DoraNorm::Full] {
        let mut l = layer(
            Method::Dora,
            array![[3., 4.], [0., 1.]],
            1,
            1.0,
            &[array![[1., 0.]], array![[0.], [1.]]],
            Some(array![10., 1.]),
        );
        l.config.dora_norm = norm;
        let x = array![[1., 1.]];
        let g = array![[1., 1.]];
        let y = l.forward(x.view(), 1.0);
        assert_abs_diff_eq!(y, array![[14., r2]], epsilon = 1e-14);
        let gr = l.backward(x.view(), g.view(), 1.0);
        assert_abs_diff_eq!(m2(&gr.params[2]), array![[1.4], [r2]], epsilon = 1e-15);
        assert_abs_diff_eq!(gr.x, array![[6. + 1. / r2, 8. + 1. / r2]], epsilon = 1e-14);
        let (ga, gb) = match norm {
            DoraNorm::Detached => (array![[1. / r2, 1. / r2]], array![[2.], [1. / r2]]),
            DoraNorm::Full => (array![[0., 0.]], array![[0.32], [0.]]),
        };
        assert_abs_diff_eq!(m2(&gr.params[0]), ga, epsilon = 1e-14);
        assert_abs_diff_eq!(m2(&gr.params[1]), gb, epsilon = 1e-14);
    }
}

/// SingLoRA+DoRA, square 2×2, r = 1, s = 1, u = 1. A = [1,1]ᵀ ⇒ ΔW̃ = [[1,1],[1,1]]; W0 = diag(1,2) ⇒
/// V = [[2,1],[1,3]], ν = [√5, √10]. ω = [√5, 2√10] ⇒ k = [1, 2]. x = [1,0]: XVᵀ = [2,1], y = [2, 2].
/// G = [1,0] ⇒ G_W = [[1,0],[0,0]]; ∂ω = [⟨[1,0],[2,1]⟩/√5, 0] = [2/√5, 0].
/// Detached ∂V = diag(k)G_W = [[1,0],[0,0]]; ∂A = (∂V + ∂Vᵀ)A = [[2,0],[0,0]]·[1,1]ᵀ = [2,0]ᵀ.
/// ∂X = G·diag(k)V = row 1 of W′ = [2,1].
#[test]
fn golden_singlora_dora() {
    let (r5, r10) = (5f64.sqrt(), 10f64.sqrt());
    let l = layer(
        Method::SingloraDora,
        array![[1., 0.], [0., 2.]],
        1,
        1.0,
        &[array![[1.], [1.]]],
        Some(array![r5, 2. * r10]),
    );
    let x = array![[1., 0.]];
    let g = array![[1., 0.]];
    assert_abs_diff_eq!(l.forward(x.view(), 1.0), array![[2., 2.]], epsilon = 1e-14);
    let gr = l.backward(x.view(), g.view(), 1.0);
    assert_abs_diff_eq!(m2(&gr.params[0]), array![[2.], [0.]], epsilon = 1e-14);
    assert_abs_diff_eq!(m2(&gr.params[1]), array![[2. / r5], [0.]], epsilon = 1e-15);
    assert_abs_diff_eq!(gr.x, array![[2., 1.]], epsilon = 1e-14);
}

/// Zero rows of W0 (Llama-3.1-8B's o_proj has 511, bug B17): DoRA at init has ω = ν = 0 on those rows; the ε floor
/// keeps every output and gradient finite, the row's output stays exactly 0, and ∂ω stays finite.
#[test]
fn dora_zero_rows_never_produce_nan() {
    for method in [Method::Dora, Method::SingloraDora] {
        for norm in [DoraNorm::Detached, DoraNorm::Full] {
            let mut w0 = array![[1., 2., 0.5], [0., 0., 0.], [3., -1., 2.]];
            w0.row_mut(1).fill(0.0);
            let cfg = AdapterConfig::new(method)
                .rank_alpha(2, 2.0)
                .dora_norm(norm);
            let mut l = AdaptedLinear::new(w0.clone(), &cfg, 1).unwrap();
            let x = array![[1., 2., 3.], [-1., 0.5, 2.]];
            let g = array![[1., 1., 1.], [0.5, -2., 1.]];
            let y = l.forward(x.view(), 1.0);
            let gr = l.backward(x.view(), g.view(), 1.0);
            assert!(
                y.iter().all(|v: &f64| v.is_finite()),
                "{method} {norm:?}: non-finite output at init"
            );
            assert!(
                gr.params
                    .iter()
                    .all(|p| p.iter().all(|v: &f64| v.is_finite())),
                "{method} {norm:?}: non-finite gradient at init"
            );
            assert!(gr.x.iter().all(|v: &f64| v.is_finite()));
            // After the factors move off zero, the row's V is no longer zero but ω is still 0: still finite.
            l.randomize(5, 1.0);
            l.magnitude.as_mut().unwrap()[1] = 0.0;
            let y = l.forward(x.view(), 1.0);
            let gr = l.backward(x.view(), g.view(), 1.0);
            assert!(
                y.iter().all(|v: &f64| v.is_finite())
                    && gr
                        .params
                        .iter()
                        .all(|p| p.iter().all(|v: &f64| v.is_finite()))
            );
            assert!(
                y.column(1).iter().all(|&v| v == 0.0),
                "ω = 0 must silence the row"
            );
        }
    }
}
