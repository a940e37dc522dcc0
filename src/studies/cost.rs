//! What a job costs, estimated from the work the engine actually does: what `--shard` balances and what the time
//! limits of `singlora slurm` are set from.
//!
//! A job's time on one core is modelled as three kinds of work at three rates:
//!
//! $$t = \frac{\text{multiply–adds}}{R_{mm}} + \frac{\text{element touches}}{R_{el}} + \frac{\text{Gaussian draws}}{R_{rng}}
//!   + t_{run},$$
//!
//! multiply–adds of the matrix products, element touches of the element-wise and row-wise passes (activations and
//! their derivatives, the loss, Adam's moments, the probes' differences and norms), draws of the frozen base, the
//! teacher and the data, and a fixed cost per run (its run file, its records). The rates are measured on the
//! development machine (module constants, each with its measurement); [`Cost`] keeps the work a job's runs share
//! apart from the job's own, since a shard computes the shared part once per share group it holds (the frozen
//! maps below the lowest trainable one and its base product on both splits, the teacher, the draws).
//!
//! `tests/cost.rs` checks its structure (the shared part counted once per group a shard holds, a low-rank run's own
//! work growing like n·r, full fine-tuning's like n², probes costing what they compute); the README's Cluster
//! section puts its estimates beside measured wall seconds of the shipped studies (within 0.8–1.3× here), and
//! `cargo run --release --example costs -- sweep DIR` does so for any finished study, group by group.

use std::ops::{Add, AddAssign, Mul};

use super::spec::{ModelSpec, RunSpec};
use crate::adapters::Method;
use crate::probes::Selection;

/// Multiply–adds per second of one core on the products of a training step (f64, batch 32…64, widths 64…4096):
/// `cargo bench --bench steps` measured 20–32 G multiply–adds/s for the GEMMs of these shapes and 10–16 G for whole
/// steps; the smaller figure is taken, as a step is not only its largest product.
pub const MADDS_PER_SECOND: f64 = 10e9;

/// Element touches per second of one core in the element-wise passes (each pass reads and writes arrays larger than
/// the L1 cache and allocates its output): set from the learning-rate study's LoRA runs without probes, whose
/// products are negligible (n = 1024, 128 rows: 1.2 ms per step for the 0.5 M touches counted here).
pub const TOUCHES_PER_SECOND: f64 = 1e9;

/// Gaussian draws per second of one core (`rng::normal_matrix` filling a 2048 × 2048 f64 matrix: 53–56 M/s).
pub const NORMALS_PER_SECOND: f64 = 50e6;

/// Seconds every run costs whatever its size: writing its run file and records, building its network.
pub const SECONDS_PER_RUN: f64 = 1e-3;

/// Work counted in the model's three kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    /// Multiply–adds of matrix products.
    pub madds: f64,
    /// Scalars read or written by element-wise and row-wise passes (counted once per pass).
    pub touches: f64,
    /// Gaussian draws.
    pub normals: f64,
}

impl Work {
    /// `m` multiply–adds.
    pub fn madds(m: f64) -> Work {
        Work {
            madds: m,
            ..Work::default()
        }
    }

    /// `e` element touches.
    pub fn touches(e: f64) -> Work {
        Work {
            touches: e,
            ..Work::default()
        }
    }

    /// `g` Gaussian draws.
    pub fn normals(g: f64) -> Work {
        Work {
            normals: g,
            ..Work::default()
        }
    }

    /// Seconds on one core at the module's rates.
    pub fn seconds(&self) -> f64 {
        self.madds / MADDS_PER_SECOND
            + self.touches / TOUCHES_PER_SECOND
            + self.normals / NORMALS_PER_SECOND
    }
}

impl Add for Work {
    type Output = Work;
    fn add(self, o: Work) -> Work {
        Work {
            madds: self.madds + o.madds,
            touches: self.touches + o.touches,
            normals: self.normals + o.normals,
        }
    }
}

impl AddAssign for Work {
    fn add_assign(&mut self, o: Work) {
        *self = *self + o;
    }
}

impl Mul<f64> for Work {
    type Output = Work;
    fn mul(self, k: f64) -> Work {
        Work {
            madds: self.madds * k,
            touches: self.touches * k,
            normals: self.normals * k,
        }
    }
}

/// A job's estimated cost in seconds of one core: its own work, and the work every job of its share group
/// (`Study::share_key`) needs computed once.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Seconds of the job's own work (its training steps and probes, [`SECONDS_PER_RUN`] included).
    pub own: f64,
    /// Seconds of the work its group shares (0 for a job that shares nothing).
    pub shared: f64,
}

impl Cost {
    /// The cost of a job with `own` and `shared` work, plus the fixed cost of a run.
    pub fn of(own: Work, shared: Work) -> Cost {
        Cost {
            own: own.seconds() + SECONDS_PER_RUN,
            shared: shared.seconds(),
        }
    }

    /// A job that shares nothing.
    pub fn alone(own: Work) -> Cost {
        Cost::of(own, Work::default())
    }
}

/// Element passes over a map's output rows per forward (the activation and the kept pre-activation) and per
/// backward (the activation's derivative into the incoming gradient, the outgoing gradient).
const PASSES_FORWARD: f64 = 2.0;
const PASSES_BACKWARD: f64 = 2.0;
/// Touches per trainable scalar in one optimiser step (the gradient, the parameter, Adam's two f64 moments, read and
/// written) and in one probe step (its norm, its gradient's norm, the copy the next step's decomposition compares).
const PASSES_ADAM: f64 = 8.0;
const PASSES_PROBE_PARAMS: f64 = 4.0;
/// Passes over a map's output rows in one probe step: every map's activation statistics (rms and mean |·| of its
/// output and of the activations between maps), and for an adapted map also Δz from the previous step and from
/// step 0, the update's output, the bottleneck, the terms of the decomposition and the two kept copies. Set from the
/// default sweep's LoRA runs at n = 2048 (2.4 ms per probed step, 32 rows).
const PASSES_PROBE_MAP: f64 = 6.0;
const PASSES_PROBE_ADAPTED: f64 = 24.0;
/// Touch-equivalents per attention score and head (the max, the `exp`, the normalisation, the mask), per entry of a
/// block's rows for its two LayerNorms and residual adds, and per entry of the up-projection for the exact GELU
/// (`erf` and `exp` cost about ten simple passes each). Set from the transformer study's narrow widths, where these
/// operations dominate (n = 16: 0.33 s estimated per share group without them, 0.65 s measured).
const PASSES_SOFTMAX: f64 = 12.0;
const PASSES_NORM: f64 = 12.0;
const PASSES_GELU: f64 = 20.0;
/// The probe's power iterations for ‖ΔW‖_op (`Probe::power_iterations`).
const POWER_ITERATIONS: f64 = 50.0;

/// The direction of a pass through the network.
#[derive(Clone, Copy, Debug)]
enum Pass {
    Forward,
    Backward,
}

/// One linear map of a run's network, as the cost model sees it.
#[derive(Clone, Copy, Debug)]
struct Map {
    d_in: f64,
    d_out: f64,
    adapted: bool,
}

impl Map {
    fn dense(&self) -> f64 {
        self.d_in * self.d_out
    }
}

/// The work of one run, counted phase by phase as the engine computes it.
struct Count<'a> {
    spec: &'a RunSpec,
    maps: Vec<Map>,
    /// The lowest map with trainable tensors: the maps below it and its base product are the shared prefix.
    lowest: usize,
    rank: f64,
    /// Rows one example contributes (1, or T tokens).
    rows_per_example: f64,
}

impl Count<'_> {
    /// An adapter's multiply–adds on `rows` rows beyond the base product, forward and backward (the weight
    /// gradients and, above the lowest trainable map, the input gradient through the update).
    fn adapter(&self, m: &Map, rows: f64) -> (f64, f64) {
        let low_rank = rows * (m.d_in + m.d_out) * self.rank;
        // DoRA's row norms: the cross term W0·(update) costs d_in·d_out·r per pass, the Gram r²·d_out.
        let norms = m.dense() * self.rank + m.d_out * self.rank * self.rank;
        match self.spec.adapter.method {
            Method::Full => (rows * m.dense(), 2.0 * rows * m.dense()),
            Method::Lora | Method::Singlora => (low_rank, 2.0 * low_rank),
            Method::Dora | Method::SingloraDora => (low_rank + norms, 2.0 * (low_rank + norms)),
        }
    }

    /// One forward pass on `rows` rows from the prefix on.
    fn forward(&self, rows: f64) -> Work {
        self.pass(rows, Pass::Forward)
    }

    /// One backward pass on `rows` rows down to the lowest trainable map (whose input gradient is not computed).
    fn backward(&self, rows: f64) -> Work {
        self.pass(rows, Pass::Backward)
    }

    /// One pass through the maps from the lowest trainable one up: above it each map's dense product (its forward
    /// product, or in a backward its input gradient), the adapter's terms, and the element passes over its outputs.
    fn pass(&self, rows: f64, pass: Pass) -> Work {
        let (elements, attention) = match pass {
            Pass::Forward => (PASSES_FORWARD, 1.0),
            Pass::Backward => (PASSES_BACKWARD, 2.0),
        };
        let mut w = Work::default();
        for (l, m) in self.maps.iter().enumerate().skip(self.lowest) {
            if l > self.lowest {
                w += Work::madds(rows * m.dense());
            }
            if m.adapted {
                let (forward, backward) = self.adapter(m, rows);
                w += Work::madds(match pass {
                    Pass::Forward => forward,
                    Pass::Backward => backward,
                });
            }
            w += Work::touches(elements * rows * m.d_out);
        }
        w + self.attention(rows, attention)
    }

    /// The transformer's own operations in one forward (`passes` = 1; 2 for a backward): per block the score and
    /// mixing loops over the T keys of each query ($2BT^2n$ multiply–adds, direct loops, counted as touches), the
    /// softmax ([`PASSES_SOFTMAX`] per score and head), two LayerNorms and the residual adds ([`PASSES_NORM`] per
    /// row entry) and the GELU ([`PASSES_GELU`] per entry of the up-projection).
    fn attention(&self, rows: f64, passes: f64) -> Work {
        let ModelSpec::Transformer(t) = &self.spec.model else {
            return Work::default();
        };
        let (seq, n, blocks) = (t.seq_len as f64, t.width() as f64, t.blocks as f64);
        let scores = rows * seq * t.heads as f64;
        let per_block = 2.0 * rows * seq * n
            + PASSES_SOFTMAX * scores
            + PASSES_NORM * rows * n
            + PASSES_GELU * rows * n * t.mlp_ratio as f64;
        Work::touches(passes * blocks * per_block)
    }

    fn trainable(&self) -> f64 {
        let per_map = |m: &Map| match self.spec.adapter.method {
            Method::Full => m.dense(),
            Method::Lora | Method::Dora => (m.d_in + m.d_out) * self.rank,
            Method::Singlora | Method::SingloraDora => m.d_in.max(m.d_out) * self.rank,
        };
        self.maps.iter().filter(|m| m.adapted).map(per_map).sum()
    }

    /// A probe step's own work: the per-map differences and norms, the spectral norm's power iterations, the
    /// parameters' norms.
    fn probe(&self, rows: f64) -> Work {
        let mut w = Work::touches(PASSES_PROBE_PARAMS * self.trainable());
        for m in &self.maps {
            w += Work::touches(PASSES_PROBE_MAP * rows * m.d_out);
        }
        for m in self.maps.iter().filter(|m| m.adapted) {
            let apply = match self.spec.adapter.method {
                Method::Full => m.dense(),
                _ => (m.d_in + m.d_out) * self.rank,
            };
            w += Work::touches(PASSES_PROBE_ADAPTED * rows * m.d_out)
                + Work::madds(POWER_ITERATIONS * 2.0 * apply + rows * apply);
        }
        w
    }
}

impl RunSpec {
    /// The run's estimated cost on one core ([`Cost`]), with a probe recording `probes` (`None`: no probe): its own
    /// training steps and probe steps, and what runs of its share key compute once (the draws, the teacher, the
    /// frozen prefix on both splits, pre-training).
    pub fn cost(&self, probes: Option<&Selection>) -> Cost {
        let (maps, rows_per_example) = self.maps();
        let maps: Vec<Map> = maps
            .into_iter()
            .map(|(i, o, adapted)| Map {
                d_in: i as f64,
                d_out: o as f64,
                adapted,
            })
            .collect();
        let lowest = match self.model {
            ModelSpec::Mlp(_) => maps
                .iter()
                .position(|m| m.adapted)
                .unwrap_or(maps.len() - 1),
            _ => 0,
        };
        let count = Count {
            spec: self,
            maps,
            lowest,
            rank: self.adapter.rank as f64,
            rows_per_example: rows_per_example as f64,
        };
        Cost::of(count.own(probes), count.shared())
    }
}

impl Count<'_> {
    /// Rows of the training set, the held-out set and a mini-batch.
    fn rows(&self) -> (f64, f64, f64) {
        let (t, per) = (&self.spec.task, self.rows_per_example);
        let train = t.examples as f64 * per;
        let batch = self.spec.train.batch.map_or(train, |b| b as f64 * per);
        (train, t.test_examples as f64 * per, batch.min(train))
    }

    /// The run's own work: a forward on the training set every step (the loss), a backward every step (full batch;
    /// with mini-batches a forward and backward on the batch, plus the full backward a probe step records), the
    /// optimiser, and the held-out forward and probe passes of every probed or evaluated step.
    fn own(&self, probes: Option<&Selection>) -> Work {
        let (train, test, batch) = self.rows();
        let steps = self.spec.train.steps as f64;
        let probed = probes.map_or(0.0, |p| {
            if p.steps.is_empty() {
                steps + 1.0
            } else {
                p.steps
                    .iter()
                    .filter(|&&t| t <= self.spec.train.steps)
                    .count() as f64
            }
        });
        let every = self.spec.train.eval_every;
        let evals = 2.0
            + if every > 0 {
                (steps / every as f64).floor()
            } else {
                0.0
            };
        let mut w = self.forward(train) * (steps + 1.0)
            + Work::touches(PASSES_ADAM * self.trainable() * steps)
            + self.probe(train) * probed
            + self.forward(test) * evals.max(probed);
        if batch < train {
            w += (self.forward(batch) + self.backward(batch)) * steps
                + self.backward(train) * probed;
        } else {
            w += self.backward(train) * steps.max(probed);
        }
        w
    }

    /// What every run of the share key needs computed once: the base's draws, the frozen prefix on both splits, the
    /// teacher and the data (MLP tasks), pre-training.
    fn shared(&self) -> Work {
        let (train, test, _) = self.rows();
        let dense: f64 = self.maps.iter().map(Map::dense).sum();
        let prefix: f64 = self.maps[..=self.lowest].iter().map(Map::dense).sum();
        let mut w = Work::normals(dense) + Work::madds((train + test) * prefix);
        if let ModelSpec::Mlp(m) = &self.spec.model {
            // The teacher: two copies of the base (one with the low-rank shift added), each network run on both
            // splits; the data's inputs.
            let shift = self.spec.task.rank as f64 * 2.0 * m.width as f64;
            w += Work::normals(shift + (train + test) * m.input_dim as f64)
                + Work::madds(2.0 * (train + test) * dense + shift * m.width as f64)
                + Work::touches(8.0 * dense);
        }
        if let Some(p) = self.spec.pretrain {
            // Full fine-tuning of every map on the source task: three dense products per map and row, the element
            // passes of a forward and a backward, Adam over every weight.
            let outputs: f64 = self.maps.iter().map(|m| m.d_out).sum();
            let step = Work::madds(3.0 * train * dense)
                + Work::touches(
                    (PASSES_FORWARD + PASSES_BACKWARD) * train * outputs + PASSES_ADAM * dense,
                )
                + self.attention(train, 3.0);
            w += step * p.steps as f64;
        }
        w
    }
}
