//! SingLoRA's LoRA+-style role split (THEORY O10): A steps along
//! $g_\lambda = \lambda\,\mathrm{pad}(G_WA_{in}) + \mathrm{pad}(G_W^\top A_{out})$ (times the layer's c).
//!
//! - λ = 1: the direction is the finite-difference gradient of L (square, tall, wide; SingLoRA and SingLoRA+DoRA with
//!   the full norm gradient), and bit for bit the formula the backward used before the split existed.
//! - λ ≠ 1: the direction is λ·(output-role part) + (input-role part), each part measured by finite differences of L
//!   with the two copies of A untied (A_out perturbed with A_in held, and the reverse): this checks the decomposition,
//!   not only the sum.
//!
//! Tolerance of every finite-difference comparison, in f64 with central differences at step h = 1e-5: the
//! truncation error is h²/6·|∂³L| and the rounding error about 2ε|L|/h with ε = 2.2e-16. L is a quartic polynomial of
//! the entries of A (plain) or a smooth function of them away from zero row norms (DoRA); the test draws entries of
//! size ~1/√r and asserts |L| ≤ 100 below, so |∂³L| stays below ~1e3 and the two errors below 2e-8 and 5e-9. The
//! assertion |direction − FD| ≤ 1e-6·max(1, max|FD|) is two orders above that and five below the size of the
//! entries.

use ndarray::{s, Array2, ArrayView2};
use singlora::adapters::singlora::Symmetric;
use singlora::adapters::{AdaptedLinear, AdapterConfig, DoraNorm, Method, RowTerms, Update};
use singlora::linalg::{mm, mm_acc, mm_tn, scale_rows};

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;

/// A layer shape under test.
#[derive(Clone, Copy, Debug)]
struct Shape {
    d_in: usize,
    d_out: usize,
}

const SHAPES: [Shape; 3] = [
    Shape { d_in: 6, d_out: 6 },
    Shape { d_in: 4, d_out: 7 },
    Shape { d_in: 7, d_out: 4 },
];

/// A deterministic matrix with entries in (−scale, scale).
fn fill(rows: usize, cols: usize, seed: u64, scale: f64) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        let v = ((i * 31 + j * 17) as f64 + seed as f64 * 7.3).sin() * 43758.5453;
        scale * (2.0 * (v - v.floor()) - 1.0)
    })
}

/// The layer, its batch and its regression target.
struct Setup {
    layer: AdaptedLinear<f64>,
    x: Array2<f64>,
    target: Array2<f64>,
}

fn setup(shape: Shape, method: Method, ratio: f64) -> Setup {
    let mut cfg = AdapterConfig::new(method)
        .rank_alpha(3, 6.0)
        .dora_norm(DoraNorm::Full);
    cfg.role_ratio = ratio;
    let w0 = fill(shape.d_out, shape.d_in, 1, 0.8);
    let mut layer = AdaptedLinear::new(w0, &cfg, 3).unwrap();
    layer.randomize(5, 1.0);
    Setup {
        layer,
        x: fill(9, shape.d_in, 2, 0.5),
        target: fill(9, shape.d_out, 4, 0.5),
    }
}

impl Setup {
    /// L = ½‖X Wᵀ − T‖² with W built from two copies of A: $V = W_0 + c\,A'_{[:d_{out}]}A''^\top_{[:d_{in}]}$, and
    /// for DoRA $W = \mathrm{diag}(\omega_i/\lVert V_i\rVert)\,V$.
    fn loss(&self, a_out: ArrayView2<'_, f64>, a_in: ArrayView2<'_, f64>) -> f64 {
        let (d_out, d_in) = self.layer.w0.dim();
        let c = self.layer.c(1.0);
        let delta = mm(a_out.slice(s![..d_out, ..]), a_in.slice(s![..d_in, ..]).t());
        let mut w = &self.layer.w0 + &(delta * c);
        if let Some(omega) = &self.layer.magnitude {
            for (mut row, &o) in w.rows_mut().into_iter().zip(omega) {
                let norm = row.dot(&row).sqrt();
                row.mapv_inplace(|v| v * o / norm);
            }
        }
        let r = mm(self.x.view(), w.t()) - &self.target;
        0.5 * r.iter().map(|v| v * v).sum::<f64>()
    }

    fn a(&self) -> Array2<f64> {
        self.layer.update.params()[0]
            .to_owned()
            .into_dimensionality()
            .unwrap()
    }

    /// What the backward returns for A: $c\,g_\lambda$.
    fn direction(&self) -> Array2<f64> {
        let w = self.layer.merged_weight(1.0);
        let g = mm(self.x.view(), w.t()) - &self.target;
        let (params, _) = self.layer.grads(self.x.view(), g.view(), 1.0, true);
        params[0].clone().into_dimensionality().unwrap()
    }

    /// Central differences of L in every entry of A: `tied` perturbs both copies (the gradient), otherwise
    /// (output-role part, input-role part), each zero outside its rows.
    fn fd(&self, which: Perturb) -> Array2<f64> {
        let a = self.a();
        let mut out = Array2::zeros(a.dim());
        for idx in ndarray::indices(a.dim()) {
            let at = |step: f64| {
                let mut p = a.clone();
                p[idx] += step;
                match which {
                    Perturb::Tied => self.loss(p.view(), p.view()),
                    Perturb::Out => self.loss(p.view(), a.view()),
                    Perturb::In => self.loss(a.view(), p.view()),
                }
            };
            out[idx] = (at(H) - at(-H)) / (2.0 * H);
        }
        out
    }
}

/// Which copy of A a finite difference perturbs.
#[derive(Clone, Copy)]
enum Perturb {
    Tied,
    Out,
    In,
}

fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn assert_close(got: &Array2<f64>, want: &Array2<f64>, what: &str) {
    let bound = TOL * max_abs(want).max(1.0);
    let err = max_abs(&(got - want));
    assert!(err <= bound, "{what}: max error {err:e} > {bound:e}");
}

const METHODS: [Method; 2] = [Method::Singlora, Method::SingloraDora];

#[test]
fn at_ratio_one_the_direction_is_the_gradient() {
    for shape in SHAPES {
        for method in METHODS {
            let s = setup(shape, method, 1.0);
            let a = s.a();
            let l = s.loss(a.view(), a.view());
            assert!(l <= 100.0, "the tolerance assumes |L| ≤ 100, L = {l}");
            let what = format!("{method} {shape:?}");
            assert_close(&s.direction(), &s.fd(Perturb::Tied), &what);
        }
    }
}

#[test]
fn the_split_is_lambda_times_the_output_role_plus_the_input_role() {
    for shape in SHAPES {
        for method in METHODS {
            for ratio in [16.0, 0.25] {
                let s = setup(shape, method, ratio);
                let (out, inp) = (s.fd(Perturb::Out), s.fd(Perturb::In));
                let what = format!("{method} {shape:?} λ = {ratio}");
                // The untied parts are the two copies' partials: outside their rows they vanish, and their sum is
                // the tied gradient (the chain rule through both copies).
                let (d_out, d_in) = (shape.d_out, shape.d_in);
                assert_eq!(
                    max_abs(&out.slice(s![d_out.., ..]).to_owned()),
                    0.0,
                    "{what}"
                );
                assert_eq!(
                    max_abs(&inp.slice(s![d_in.., ..]).to_owned()),
                    0.0,
                    "{what}"
                );
                assert_close(&(&out + &inp), &s.fd(Perturb::Tied), &what);
                let want = &out * ratio + &inp;
                assert_close(&s.direction(), &want, &what);
                // The split differs from the gradient by (λ − 1)·(output role), far above the tolerance, so the
                // comparison above could not pass with the gradient in place of the split.
                let gap = max_abs(&(&want - &(&out + &inp)));
                assert!(
                    gap > 1e3 * TOL * max_abs(&want).max(1.0),
                    "{what}: gap {gap:e}"
                );
            }
        }
    }
}

/// The backward as it was before the role split (the plain gradient), written out with the same products in the
/// same order: grad, grad_dense and grad_rows of [`Symmetric`].
fn plain_grad(
    a: &Array2<f64>,
    sh: Shape,
    x: ArrayView2<'_, f64>,
    g: ArrayView2<'_, f64>,
) -> Array2<f64> {
    let (a_in, a_out) = (a.slice(s![..sh.d_in, ..]), a.slice(s![..sh.d_out, ..]));
    let mut ga = Array2::zeros(a.dim());
    mm_acc(
        1.0,
        g.t(),
        mm(x, a_in).view(),
        ga.slice_mut(s![..sh.d_out, ..]),
    );
    mm_acc(
        1.0,
        x.t(),
        mm(g, a_out).view(),
        ga.slice_mut(s![..sh.d_in, ..]),
    );
    ga
}

fn plain_dense(a: &Array2<f64>, sh: Shape, g_w: ArrayView2<'_, f64>) -> Array2<f64> {
    let (a_in, a_out) = (a.slice(s![..sh.d_in, ..]), a.slice(s![..sh.d_out, ..]));
    let mut ga = Array2::zeros(a.dim());
    mm_acc(1.0, g_w, a_in, ga.slice_mut(s![..sh.d_out, ..]));
    mm_acc(1.0, g_w.t(), a_out, ga.slice_mut(s![..sh.d_in, ..]));
    ga
}

fn plain_rows(
    a: &Array2<f64>,
    sh: Shape,
    w0: ArrayView2<'_, f64>,
    e: &ndarray::Array1<f64>,
    c: f64,
    terms: &RowTerms<f64>,
) -> Array2<f64> {
    let (a_in, a_out) = (a.slice(s![..sh.d_in, ..]), a.slice(s![..sh.d_out, ..]));
    let mut va = terms.w0_side.clone().unwrap();
    mm_acc(c, a_out, mm_tn(a_in, a_in).view(), va.view_mut());
    let mut ga = Array2::zeros(a.dim());
    ga.slice_mut(s![..sh.d_out, ..])
        .assign(&scale_rows(e.view(), va.view()));
    let e_out = scale_rows(e.view(), a_out);
    let mut top = ga.slice_mut(s![..sh.d_in, ..]);
    mm_acc(1.0, w0.t(), e_out.view(), top.view_mut());
    mm_acc(c, a_in, mm_tn(a_out, e_out.view()).view(), top);
    ga
}

#[test]
fn at_ratio_one_the_backward_is_bit_for_bit_the_plain_gradient() {
    for sh in SHAPES {
        let m = sh.d_in.max(sh.d_out);
        let a = fill(m, 3, 6, 0.5);
        let sym = Symmetric::new(a.clone(), sh.d_in, sh.d_out).with_ratio(1.0);
        let (x, g) = (fill(5, sh.d_in, 7, 1.0), fill(5, sh.d_out, 8, 1.0));
        let g_w = fill(sh.d_out, sh.d_in, 9, 1.0);
        let w0 = fill(sh.d_out, sh.d_in, 10, 1.0);
        let e = fill(sh.d_out, 1, 11, 1.0).column(0).to_owned();
        let terms = sym.row_terms(w0.view());
        assert_eq!(
            sym.grad(x.view(), g.view())[0],
            plain_grad(&a, sh, x.view(), g.view())
        );
        let mut gx = Array2::zeros((5, sh.d_in));
        let both = sym.grad_and_adjoint_acc(x.view(), g.view(), 0.7, gx.view_mut());
        assert_eq!(both[0], plain_grad(&a, sh, x.view(), g.view()));
        assert_eq!(
            sym.grad_dense(g_w.view())[0],
            plain_dense(&a, sh, g_w.view())
        );
        let rows = sym.grad_rows(e.view(), w0.view(), 0.7, &terms);
        assert_eq!(rows[0], plain_rows(&a, sh, w0.view(), &e, 0.7, &terms));
    }
}

#[test]
fn a_ratio_is_refused_where_it_means_nothing() {
    let mut cfg = AdapterConfig::new(Method::Lora);
    cfg.role_ratio = 16.0;
    let err = AdaptedLinear::<f64>::new(Array2::eye(4), &cfg.clone().rank_alpha(2, 2.0), 0)
        .err()
        .expect("LoRA refuses a role split")
        .to_string();
    assert!(
        err.contains("role_ratio") && err.contains("16") && !err.contains('\n'),
        "{err}"
    );
    cfg.method = Method::Singlora;
    cfg.role_ratio = -1.0;
    let err = AdaptedLinear::<f64>::new(Array2::eye(4), &cfg.rank_alpha(2, 2.0), 0)
        .err()
        .expect("a negative λ is refused")
        .to_string();
    assert!(err.contains("role_ratio") && err.contains("> 0"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_singlora"))
        .args([
            "train",
            "--method",
            "full",
            "--loraplus-ratio",
            "16",
            "--steps",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--loraplus-ratio") && stderr.contains("16"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn a_cell_ratio_reaches_the_role_split_for_singlora_and_b_for_lora() {
    use singlora::studies::config::StudyConfig;
    use singlora::studies::spec::RunSpec;
    let cfg = StudyConfig::default();
    let mut cell = cfg.cells()[0].clone();
    cell.loraplus_ratio = 16.0;
    for (method, role, b) in [(Method::Singlora, 16.0, 1.0), (Method::Lora, 1.0, 16.0)] {
        cell.arm.method = method;
        let spec = RunSpec::resolve(&cfg, &cell);
        assert_eq!(spec.adapter.role_ratio, role, "{method}");
        assert_eq!(spec.train.optimizer.groups.loraplus_ratio, b, "{method}");
    }
}
