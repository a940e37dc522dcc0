//! Shared helpers for the numerical proofs: layers in a random state, the finite-difference oracle, error norms.
#![allow(dead_code)]

use ndarray::{Array2, ArrayD, ArrayViewMutD};
use singlora::adapters::{AdaptedLinear, AdapterConfig, DoraNorm, Method, Scaling};
use singlora::rng::{normal_matrix, SeedRng};

/// The three shape families of THEORY PT1: square, tall (d_out > d_in), wide (d_in > d_out), as (d_in, d_out).
pub const SHAPES: [(usize, usize); 3] = [(6, 6), (5, 9), (9, 5)];

/// A layer of `method` on a random W0, with every trainable tensor random (so no gradient is trivially zero).
pub fn random_layer(
    method: Method,
    d_in: usize,
    d_out: usize,
    rank: usize,
    scaling: Scaling,
    norm: DoraNorm,
    seed: u64,
) -> AdaptedLinear<f64> {
    let w0: Array2<f64> = normal_matrix(
        &mut SeedRng::new(seed, "test.w0"),
        d_out,
        d_in,
        1.0 / (d_in as f64).sqrt(),
    );
    let cfg = AdapterConfig::new(method)
        .rank_alpha(rank, 3.0)
        .scaling(scaling)
        .dora_norm(norm);
    let mut layer = AdaptedLinear::new(w0, &cfg, seed).expect("valid config");
    layer.randomize(seed + 1, 0.7);
    layer
}

/// A standard-normal matrix from a named stream.
pub fn gaussian(rows: usize, cols: usize, seed: u64, stream: &str) -> Array2<f64> {
    normal_matrix(&mut SeedRng::new(seed, stream), rows, cols, 1.0)
}

/// $\lVert a - b\rVert_F / \max(\lVert a\rVert_F, \lVert b\rVert_F)$, and 0 when both are 0.
pub fn rel_err<D: ndarray::Dimension>(
    a: &ndarray::Array<f64, D>,
    b: &ndarray::Array<f64, D>,
) -> f64 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let diff = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    let scale = frob(a).max(frob(b));
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

pub fn frob<D: ndarray::Dimension>(a: &ndarray::Array<f64, D>) -> f64 {
    a.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The scalar probe $L = \langle G, Y\rangle$ whose gradient with respect to $Y$ is $G$.
pub fn probe(layer: &AdaptedLinear<f64>, x: &Array2<f64>, g: &Array2<f64>, u: f64) -> f64 {
    (&layer.forward(x.view(), u) * g).sum()
}

/// Central finite differences of a scalar function of a matrix, entry by entry, with step `h`.
pub fn fd_matrix(x: &Array2<f64>, h: f64, f: impl Fn(&Array2<f64>) -> f64) -> Array2<f64> {
    let mut xp = x.clone();
    let mut grad = Array2::zeros(x.dim());
    for idx in ndarray::indices(x.dim()) {
        let orig = xp[idx];
        xp[idx] = orig + h;
        let plus = f(&xp);
        xp[idx] = orig - h;
        let minus = f(&xp);
        xp[idx] = orig;
        grad[idx] = (plus - minus) / (2.0 * h);
    }
    grad
}

/// Central finite differences of `probe` with respect to every tensor `params` exposes (a layer's, a block's or a
/// model's trainable tensors), entry by entry, with step `h`.
pub fn fd_tensors<M>(
    m: &mut M,
    params: for<'a> fn(&'a mut M) -> Vec<ArrayViewMutD<'a, f64>>,
    h: f64,
    probe: impl Fn(&M) -> f64,
) -> Vec<ArrayD<f64>> {
    let shapes: Vec<_> = params(m).iter().map(|p| p.raw_dim()).collect();
    let mut out = Vec::with_capacity(shapes.len());
    for (k, shape) in shapes.into_iter().enumerate() {
        let mut grad = ArrayD::zeros(shape);
        for i in 0..grad.len() {
            let orig = params(m)[k].as_slice().unwrap()[i];
            params(m)[k].as_slice_mut().unwrap()[i] = orig + h;
            let plus = probe(m);
            params(m)[k].as_slice_mut().unwrap()[i] = orig - h;
            let minus = probe(m);
            params(m)[k].as_slice_mut().unwrap()[i] = orig;
            grad.as_slice_mut().unwrap()[i] = (plus - minus) / (2.0 * h);
        }
        out.push(grad);
    }
    out
}

/// Central finite differences of $L = \langle G, Y\rangle$ with respect to every trainable tensor, in f64.
pub fn fd_param_grads(
    layer: &mut AdaptedLinear<f64>,
    x: &Array2<f64>,
    g: &Array2<f64>,
    u: f64,
    h: f64,
) -> Vec<ArrayD<f64>> {
    fd_tensors(layer, AdaptedLinear::params_mut, h, |l| probe(l, x, g, u))
}

/// Central finite differences of $L$ with respect to the input X.
pub fn fd_input_grad(
    layer: &AdaptedLinear<f64>,
    x: &Array2<f64>,
    g: &Array2<f64>,
    u: f64,
    h: f64,
) -> Array2<f64> {
    fd_matrix(x, h, |xp| probe(layer, xp, g, u))
}
