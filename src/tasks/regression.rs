//! Teacher–student regression: the target is the base network with a known rank-$r^*$ shift $\Delta W^*$ in one
//! layer, whose symmetry (PSD, NSD, asymmetric, random) decides what SingLoRA can reach (THEORY §6.1).
//!
//! The shift's effect is normalised so the task has the same difficulty at every width:
//! $y^* = f_{base}(x) + \delta/\mathrm{rms}(\delta)$, $\delta = f_{teacher}(x) - f_{base}(x)$ over the training inputs
//! (the same factor is applied to the held-out targets).

use ndarray::{s, Array2};

use crate::adapters::{AdapterConfig, Method};
use crate::error::{Error, Result};
use crate::linalg::{mm_nt, rms};
use crate::models::{MlpConfig, Model};
use crate::names::named_enum;
use crate::rng::{normal_matrix, SeedRng};
use crate::scalar::Scalar;
use crate::train::{Dataset, Loss};

/// The symmetry of the teacher's shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShiftKind {
    /// $+CC^\top$ (top-left block for non-square layers).
    Psd,
    /// $-CC^\top$.
    Nsd,
    /// $CD^\top$.
    Asymmetric,
    /// $CD^\top$ with an independent $D$ drawn per entry sign (a generic shift; same law as asymmetric, kept as its
    /// own stream so tasks can be compared).
    Random,
}

impl ShiftKind {
    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            ShiftKind::Psd => "psd",
            ShiftKind::Nsd => "nsd",
            ShiftKind::Asymmetric => "asymmetric",
            ShiftKind::Random => "random",
        }
    }

    /// $\Delta W^* \in \mathbb R^{d_{out}\times d_{in}}$ of rank ≤ r, with $C, D \sim \mathcal N(0, 1/m)$ entries
    /// ($m = \max(d_{in}, d_{out})$), so $\lVert\Delta W^*\rVert_{op} = \Theta(1)$: [`ShiftKind::factors`] multiplied out.
    pub fn draw(self, d_in: usize, d_out: usize, r: usize, seed: u64) -> Array2<f64> {
        self.factors(d_in, d_out, r, seed).rows(0..d_out)
    }

    /// The factors of [`ShiftKind::draw`]: $\Delta W^* = \pm\,L R^\top$ with $L = C_{[:d_{out}]}$ and
    /// $R = C_{[:d_{in}]}$ (PSD; NSD with the minus sign) or $R = D_{[:d_{in}]}$ (asymmetric, random).
    pub fn factors(self, d_in: usize, d_out: usize, r: usize, seed: u64) -> ShiftFactors {
        let m = d_in.max(d_out);
        let std = 1.0 / (m as f64).sqrt();
        let c: Array2<f64> = normal_matrix(&mut SeedRng::new(seed, "shift.C"), m, r, std);
        let d: Array2<f64> = normal_matrix(
            &mut SeedRng::new(seed, &format!("shift.D.{}", self.name())),
            m,
            r,
            std,
        );
        let right = match self {
            ShiftKind::Psd | ShiftKind::Nsd => c.slice(s![..d_in, ..]).to_owned(),
            ShiftKind::Asymmetric | ShiftKind::Random => d.slice(s![..d_in, ..]).to_owned(),
        };
        ShiftFactors {
            left: c.slice(s![..d_out, ..]).to_owned(),
            right,
            negate: self == ShiftKind::Nsd,
        }
    }
}

/// A low-rank shift $\Delta W^* = \pm\,L R^\top$ ($L$: $d_{out}\times r$, $R$: $d_{in}\times r$), kept factored so that
/// a wide layer's shift can be added a block of rows at a time (a dense f64 copy at width 16384 would be 2 GiB).
pub struct ShiftFactors {
    /// $L$.
    pub left: Array2<f64>,
    /// $R$.
    pub right: Array2<f64>,
    /// Whether $\Delta W^* = -LR^\top$.
    pub negate: bool,
}

impl ShiftFactors {
    /// Rows `range` of $\Delta W^*$: $\pm L_{\[range\]}R^\top$. Each entry is the same length-r dot product whatever the
    /// block (one depth block of the product kernel), so blocks assemble the whole product bit for bit.
    pub fn rows(&self, range: std::ops::Range<usize>) -> Array2<f64> {
        let block = mm_nt(self.left.slice(s![range, ..]), self.right.view());
        if self.negate {
            -block
        } else {
            block
        }
    }

    /// $W \mathrel{+}= \Delta W^*$ (each entry rounded to `T` before the addition), [`SHIFT_BLOCK`] rows at a time.
    ///
    /// # Panics
    /// If `w` is not $d_{out}\times d_{in}$.
    #[track_caller]
    pub fn add_to<T: Scalar>(&self, w: &mut Array2<T>) {
        assert_eq!(
            w.dim(),
            (self.left.nrows(), self.right.nrows()),
            "ShiftFactors::add_to: W has the wrong shape"
        );
        for start in (0..w.nrows()).step_by(SHIFT_BLOCK) {
            let range = start..(start + SHIFT_BLOCK).min(w.nrows());
            let shift = self.rows(range.clone());
            w.slice_mut(s![range, ..])
                .zip_mut_with(&shift, |w, &d| *w += T::of(d));
        }
    }
}

/// Rows of a shift multiplied out at a time by [`ShiftFactors::add_to`] (at width 16384, 64 MiB of f64).
pub const SHIFT_BLOCK: usize = 512;

named_enum!(
    ShiftKind,
    "shift",
    [
        ShiftKind::Psd,
        ShiftKind::Nsd,
        ShiftKind::Asymmetric,
        ShiftKind::Random
    ]
);

/// A teacher–student task for an MLP: the base network of `base_seed`, a rank-`rank` shift of symmetry `kind` in
/// `layer`, `train` training and `test` held-out inputs drawn from `data_seed`.
#[derive(Clone, Copy, Debug)]
pub struct Teacher<'a> {
    /// The student's (and teacher's) architecture.
    pub mlp: &'a MlpConfig,
    /// Seed of the base weights (as [`MlpConfig::base_weights`] draws them).
    pub base_seed: u64,
    /// The layer holding the shift.
    pub layer: &'a str,
    /// The shift's symmetry.
    pub kind: ShiftKind,
    /// The shift's rank.
    pub rank: usize,
    /// Training examples.
    pub train: usize,
    /// Held-out examples.
    pub test: usize,
    /// Seed of the inputs.
    pub data_seed: u64,
}

/// Inputs $x \sim \mathcal N(0, I_{d_0})$ and the outputs of the base MLP and of its teacher (base plus the shift
/// $\Delta W^*$) on them, for the train and held-out splits.
pub struct TeacherOutputs<T: Scalar> {
    /// Train inputs.
    pub x_train: Array2<T>,
    /// Held-out inputs.
    pub x_test: Array2<T>,
    /// Base and teacher outputs on the train inputs.
    pub train: (Array2<T>, Array2<T>),
    /// Base and teacher outputs on the held-out inputs.
    pub test: (Array2<T>, Array2<T>),
}

impl<T: Scalar> TeacherOutputs<T> {
    /// Draws the data. The base weights come from `base_seed` exactly as [`MlpConfig::base_weights`] draws them, so a
    /// student built from the same seed starts at the base network.
    pub fn new(spec: &Teacher<'_>) -> Result<Self> {
        Self::on_base(spec, &spec.mlp.base_weights::<T>(spec.base_seed))
    }

    /// [`TeacherOutputs::new`] given the base weights `base` that it would draw (drawn once by runs that share them).
    pub fn on_base(spec: &Teacher<'_>, base: &[Array2<T>]) -> Result<Self> {
        let cfg = spec.mlp;
        let names = cfg.layer_names();
        let l = names.iter().position(|n| n == spec.layer).ok_or_else(|| {
            Error::invalid(
                "task.layer",
                spec.layer,
                &format!("one of {}", names.join(", ")),
            )
        })?;
        let (d_out, d_in) = base[l].dim();
        if spec.rank == 0 || spec.rank > d_in.max(d_out) {
            return Err(Error::invalid(
                "task.rank",
                spec.rank,
                &format!("an integer in 1..={}", d_in.max(d_out)),
            ));
        }
        let mut frozen = cfg.clone();
        frozen.adapt.clear();
        let full = AdapterConfig::new(Method::Full);
        let inputs = |stream: &str, n: usize| -> Array2<T> {
            normal_matrix(
                &mut SeedRng::new(spec.data_seed, stream),
                n,
                cfg.input_dim,
                1.0,
            )
        };
        let (x_train, x_test) = (
            inputs("data.train", spec.train),
            inputs("data.test", spec.test),
        );
        // One network at a time (each holds a copy of the weights): the base's outputs, then the teacher's.
        let outputs = |weights: Vec<Array2<T>>| -> Result<(Array2<T>, Array2<T>)> {
            let net = frozen.build(weights, &full, 0)?;
            let run = |x: &Array2<T>| net.forward(x, T::one()).0;
            Ok((run(&x_train), run(&x_test)))
        };
        let (base_train, base_test) = outputs(base.to_vec())?;
        let mut teacher_weights = base.to_vec();
        spec.kind
            .factors(d_in, d_out, spec.rank, spec.base_seed ^ 0x5417)
            .add_to(&mut teacher_weights[l]);
        let (teacher_train, teacher_test) = outputs(teacher_weights)?;
        Ok(Self {
            x_train,
            x_test,
            train: (base_train, teacher_train),
            test: (base_test, teacher_test),
        })
    }

    /// The factor $1/\mathrm{rms}(\delta)$ that gives the shift's effect $\delta = f_{teacher} - f_{base}$ unit rms on
    /// the training split; errors if the shift does not change the output.
    pub fn shift_normaliser(&self) -> Result<T> {
        let norm = rms(&(&self.train.1 - &self.train.0));
        if !(norm > 0.0 && norm.is_finite()) {
            return Err(Error::invalid(
                "task.shift",
                norm,
                "a shift that changes the network's output (rms > 0)",
            ));
        }
        Ok(T::of(1.0 / norm))
    }
}

/// Teacher–student regression for an MLP: targets $y^* = f_{base}(x) + \delta/\mathrm{rms}(\delta)$ (the rms taken on
/// the training split), MSE loss.
pub fn teacher_regression<T: Scalar>(spec: &Teacher<'_>) -> Result<Dataset<T>> {
    regression_from(TeacherOutputs::<T>::new(spec)?)
}

/// [`teacher_regression`] from the teacher's outputs.
pub fn regression_from<T: Scalar>(t: TeacherOutputs<T>) -> Result<Dataset<T>> {
    let k = t.shift_normaliser()?;
    let y_train = &t.train.0 + &((&t.train.1 - &t.train.0) * k);
    let y_test = &t.test.0 + &((&t.test.1 - &t.test.0) * k);
    Ok(Dataset {
        x_train: t.x_train,
        y_train,
        x_test: t.x_test,
        y_test,
        loss: Loss::Mse,
        rows_per_example: 1,
    })
}

/// Data for LoRA+'s scalar toy at width n: $x \sim \mathcal N(0, I_n)$ (so $\lVert x\rVert^2 = \Theta(n)$) and
/// $y = (W^* + \delta^\top)x$ with $W^*$ drawn as [`crate::models::SingleLayer::toy`] draws it and
/// $\delta \sim \mathcal N(0, I_n/n)$, so the target's shift $\delta^\top x$ is Θ(1) at every width. MSE loss.
pub fn toy_regression<T: Scalar>(
    width: usize,
    n_train: usize,
    n_test: usize,
    seed: u64,
) -> Result<Dataset<T>> {
    if width == 0 {
        return Err(Error::invalid("width", 0, "a positive integer"));
    }
    let std = 1.0 / (width as f64).sqrt();
    let w_star: Array2<T> = normal_matrix(&mut SeedRng::new(seed, "toy.w_star"), 1, width, std);
    let delta: Array2<T> = normal_matrix(&mut SeedRng::new(seed, "toy.delta"), 1, width, std);
    let target = w_star + delta;
    let x_train: Array2<T> =
        normal_matrix(&mut SeedRng::new(seed, "toy.train"), n_train, width, 1.0);
    let x_test: Array2<T> = normal_matrix(&mut SeedRng::new(seed, "toy.test"), n_test, width, 1.0);
    let (y_train, y_test) = (
        mm_nt(x_train.view(), target.view()),
        mm_nt(x_test.view(), target.view()),
    );
    Ok(Dataset {
        x_train,
        y_train,
        x_test,
        y_test,
        loss: Loss::Mse,
        rows_per_example: 1,
    })
}
