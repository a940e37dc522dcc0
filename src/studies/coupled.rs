//! A width-n network coupled to a limit: it shares the limit's data and Gaussian basis exactly, and is trained by the
//! ordinary code path (the `Mlp`, its adapter, the optimiser and the training loop).
//!
//! The base weights ($W_{in}$, $W_0$, readout) and the adapter's factor are drawn as usual; then the factor's
//! component in the span of the vectors the basis measures is replaced so that the basis overlaps hold exactly:
//! with $M = [v \mid W_{in}]$ and target $C = [a_0 \mid G]^\top$ (SingLoRA, $A \in \mathbb R^{n\times r}$) or
//! $M = W_{in}$, $C = G^\top$ (LoRA, $A^\top \in \mathbb R^{n\times r}$),
//! $$A \leftarrow A + M(M^\top M)^{-1}(C - M^\top A),$$
//! so $M^\top A = C$ while the orthogonal complement keeps the init's own law. Given $W_{in}$ and $v$ the overlaps' law
//! is $\mathcal N(0, \mathrm{Var}(A_0)M^\top M)$ and the limit's is its $n\to\infty$ value, so the coupled network is
//! the usual one up to an $O(n^{-1/2})$ change of law: the finite-width error of a seed is measured against that seed's
//! own limit.

use ndarray::{concatenate, Array1, Array2, Axis};

use crate::adapters::AdapterConfig;
use crate::error::{Error, Result};
use crate::linalg::solve_spd;
use crate::models::{Activation, Linear, Mlp, MlpConfig, Readout};
use crate::optim::OptimizerConfig;
use crate::theory::limit::{Basis, Family, Grams, LimitPoint, LinearSetup, OrderParams};
use crate::train::{train_observed, Dataset, Loss, Observer, Step, TrainConfig};

/// The network a linear limit describes: input d → n (frozen) → n × n adapted → 1 (μP readout), identity activation.
pub fn mlp_config(input_dim: usize, width: usize) -> MlpConfig {
    let mut cfg = MlpConfig::new(width);
    cfg.input_dim = input_dim;
    cfg.depth = 2;
    cfg.output_dim = 1;
    cfg.activation = Activation::Identity;
    cfg.readout = Readout::Mup;
    cfg.adapt = vec!["hidden.1".into()];
    cfg
}

/// $v$ (readout times n), $W_{in}$ and $W_0$ of a coupled network.
fn weights(mlp: &Mlp<f64>) -> (Array1<f64>, &Array2<f64>, &Array2<f64>) {
    let n = mlp.config.width as f64;
    let v = mlp.layers[2].base().row(0).mapv(|w| w * n);
    (v, mlp.layers[0].base(), mlp.layers[1].base())
}

/// Builds the width-n network of `seed` and imposes `basis` on its adapter.
pub fn coupled_mlp(
    setup: &LinearSetup,
    adapter: &AdapterConfig,
    basis: &Basis,
    width: usize,
    seed: u64,
) -> Result<Mlp<f64>> {
    let cfg = mlp_config(basis.x.ncols(), width);
    let base = cfg.base_weights::<f64>(seed);
    let mut mlp = cfg.build(base, adapter, seed)?;
    let (v, w_in, _) = weights(&mlp);
    let (m, c) = match setup.family {
        Family::Singlora => (
            concatenate![Axis(1), v.view().insert_axis(Axis(1)), w_in.view()],
            concatenate![Axis(0), basis.a0.view().insert_axis(Axis(0)), basis.g.t()],
        ),
        Family::Lora => (w_in.to_owned(), basis.g.t().to_owned()),
    };
    let Linear::Adapted(layer) = &mut mlp.layers[1] else {
        unreachable!("mlp_config adapts hidden.1")
    };
    let mut params = layer.params_mut();
    let a = &mut params[0];
    // A as n × r (SingLoRA stores it so; LoRA's A is r × n, so work on its transpose).
    let mut a_nr = match setup.family {
        Family::Singlora => a.view_mut().into_dimensionality().expect("2-D"),
        Family::Lora => a
            .view_mut()
            .into_dimensionality::<ndarray::Ix2>()
            .expect("2-D")
            .reversed_axes(),
    };
    let gram = m.t().dot(&m);
    let resid = &c - &m.t().dot(&a_nr);
    let coef = solve_spd(gram.view(), resid.view()).ok_or_else(|| {
        Error::invalid(
            "width",
            width,
            "a width at which [v | W_in] has full column rank (n > input_dim + 1)",
        )
    })?;
    a_nr += &m.dot(&coef);
    Ok(mlp)
}

/// The network's Grams ($v^\top v/n$, $K$, $\omega$, base outputs, $1/n$) on the inputs `x`.
pub fn grams(mlp: &Mlp<f64>, x: &Array2<f64>) -> Grams {
    let n = mlp.config.width as f64;
    let (v, w_in, w0) = weights(mlp);
    let h = w_in.dot(&x.t()); // n × N
    Grams {
        vv: v.dot(&v) / n,
        k: w_in.t().dot(w_in) / n,
        omega: w_in.t().dot(&v) / n,
        base: w0.dot(&h).t().dot(&v) / n,
        inv_n: 1.0 / n,
    }
}

/// The network's order parameters in the limit's units (see [`LinearSetup::e`]).
pub fn order_params(setup: &LinearSetup, mlp: &Mlp<f64>, x: &Array2<f64>) -> OrderParams {
    let n = mlp.config.width as f64;
    let (v, w_in, _) = weights(mlp);
    let h = w_in.dot(&x.t());
    let p = mlp.layers[1].params();
    let a = p[0]
        .view()
        .into_dimensionality::<ndarray::Ix2>()
        .expect("2-D");
    let up = n.powf(setup.e);
    match setup.family {
        Family::Lora => {
            let b = p[1]
                .view()
                .into_dimensionality::<ndarray::Ix2>()
                .expect("2-D");
            OrderParams {
                readout_overlap: b.t().dot(&v) * (up / n),
                bottleneck: a.dot(&h) / up,
            }
        }
        Family::Singlora => OrderParams {
            readout_overlap: a.t().dot(&v) / up,
            bottleneck: a.t().dot(&h) / up,
        },
    }
}

/// Records a coupled network's state in the limit's units at every step.
struct Points<'a> {
    setup: &'a LinearSetup,
    x: &'a Array2<f64>,
    points: Vec<LimitPoint>,
}

impl Observer<f64, Mlp<f64>> for Points<'_> {
    fn wants(&self, _t: u64) -> bool {
        true
    }

    fn observe(&mut self, s: &Step<'_, f64, Mlp<f64>>) {
        self.points.push(LimitPoint {
            loss: s.loss,
            f: s.out.column(0).to_owned(),
            params: order_params(self.setup, s.model, self.x),
        });
    }
}

/// A coupled network's trajectory at t = 0…steps, trained by the ordinary loop, and the step at which it diverged.
pub fn finite_trajectory(
    setup: &LinearSetup,
    adapter: &AdapterConfig,
    optimizer: &OptimizerConfig,
    basis: &Basis,
    width: usize,
    seed: u64,
    steps: u64,
) -> Result<(Vec<LimitPoint>, Option<u64>)> {
    let mut mlp = coupled_mlp(setup, adapter, basis, width, seed)?;
    let y = basis.y.clone().insert_axis(Axis(1));
    let data = Dataset {
        x_train: basis.x.clone(),
        y_train: y.clone(),
        x_test: basis.x.clone(),
        y_test: y,
        loss: Loss::Mse,
        rows_per_example: 1,
    };
    let tc = TrainConfig {
        optimizer: optimizer.clone(),
        steps,
        ramp: adapter.ramp,
        width,
        ..TrainConfig::default()
    };
    let mut points = Points {
        setup,
        x: &basis.x,
        points: Vec::with_capacity(steps as usize + 1),
    };
    let rec = train_observed(&mut mlp, &tc, &data, &mut points)?;
    Ok((points.points, rec.diverged_at))
}
