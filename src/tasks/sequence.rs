//! Associative recall, a sequence task that needs attention: a sequence of $p$ key–value pairs followed by one of the
//! keys; the target at the last position is that key's value. Tokens are one-hot rows over a vocabulary of
//! `keys + values` symbols; each sequence has $T = 2p + 1$ rows, and only the last row of each sequence is scored
//! (all other target rows are zero, which [`crate::train::cross_entropy`] ignores). Keys within a sequence are
//! distinct, so the answer is unique. With `permute`, the answer is the key's value relabelled by a fixed random
//! permutation π of the values (drawn from the data seed): a fine-tuning task for a base pre-trained on plain recall,
//! which retrieves the value but must learn π.

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::rng::SeedRng;
use crate::scalar::Scalar;
use crate::train::{Dataset, Loss};

/// Vocabulary and sequence shape of the recall task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecallConfig {
    /// Number of distinct key symbols.
    pub keys: usize,
    /// Number of distinct value symbols.
    pub values: usize,
    /// Key–value pairs per sequence (p ≤ keys).
    pub pairs: usize,
    /// Answer π(value) instead of the value, for a fixed random permutation π of the values.
    pub permute: bool,
}

impl RecallConfig {
    /// Vocabulary size, the model's input and output dimension.
    pub fn vocab(&self) -> usize {
        self.keys + self.values
    }

    /// Sequence length T = 2p + 1.
    pub fn seq_len(&self) -> usize {
        2 * self.pairs + 1
    }

    fn sequences<T: Scalar>(
        &self,
        n: usize,
        rng: &mut SeedRng,
        answer: &[usize],
    ) -> (Array2<T>, Array2<T>) {
        let (t_len, v) = (self.seq_len(), self.vocab());
        let mut x = Array2::zeros((n * t_len, v));
        let mut y = Array2::zeros((n * t_len, v));
        for s in 0..n {
            let mut keys: Vec<usize> = (0..self.keys).collect();
            for i in 0..self.pairs {
                let j = i + rng.below(self.keys - i);
                keys.swap(i, j);
            }
            let vals: Vec<usize> = (0..self.pairs)
                .map(|_| self.keys + rng.below(self.values))
                .collect();
            let row0 = s * t_len;
            for i in 0..self.pairs {
                x[[row0 + 2 * i, keys[i]]] = T::one();
                x[[row0 + 2 * i + 1, vals[i]]] = T::one();
            }
            let q = rng.below(self.pairs);
            x[[row0 + t_len - 1, keys[q]]] = T::one();
            y[[row0 + t_len - 1, self.keys + answer[vals[q] - self.keys]]] = T::one();
        }
        (x, y)
    }
}

/// `n_train` and `n_test` recall sequences from `seed`.
pub fn associative_recall<T: Scalar>(
    cfg: &RecallConfig,
    n_train: usize,
    n_test: usize,
    seed: u64,
) -> Result<Dataset<T>> {
    if cfg.pairs == 0 || cfg.pairs > cfg.keys {
        return Err(Error::invalid(
            "task.pairs",
            cfg.pairs,
            &format!("an integer in 1..={} (the number of keys)", cfg.keys),
        ));
    }
    if cfg.values == 0 {
        return Err(Error::invalid("task.values", 0, "a positive integer"));
    }
    let mut answer: Vec<usize> = (0..cfg.values).collect();
    if cfg.permute {
        let mut rng = SeedRng::new(seed, "recall.permutation");
        for i in (1..answer.len()).rev() {
            answer.swap(i, rng.below(i + 1));
        }
    }
    let (x_train, y_train) =
        cfg.sequences(n_train, &mut SeedRng::new(seed, "recall.train"), &answer);
    let (x_test, y_test) = cfg.sequences(n_test, &mut SeedRng::new(seed, "recall.test"), &answer);
    Ok(Dataset {
        x_train,
        y_train,
        x_test,
        y_test,
        loss: Loss::CrossEntropy,
        rows_per_example: cfg.seq_len(),
    })
}
