//! Classification from a teacher network: the label of $x$ is the arg-max of the teacher MLP's output
//! ($d_{out}$ = number of classes), where the teacher is the base network plus a shift $\Delta W^*$ in one layer.
//! Cross-entropy loss, accuracy as the held-out metric. Only the examples whose label the shift changes carry
//! information the base lacks; the base's own accuracy is reported by the first held-out evaluation.

use ndarray::Array2;

use super::regression::{Teacher, TeacherOutputs};
use crate::error::{Error, Result};
use crate::scalar::Scalar;
use crate::train::{Dataset, Loss};

/// One-hot rows of the arg-max of each row of `logits`.
pub fn one_hot_argmax<T: Scalar>(logits: &Array2<T>) -> Array2<T> {
    let mut out = Array2::zeros(logits.dim());
    for (row, mut o) in logits.outer_iter().zip(out.outer_iter_mut()) {
        let best = row
            .iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |b, (i, v)| {
                if v.f64() > b.1 {
                    (i, v.f64())
                } else {
                    b
                }
            })
            .0;
        o[best] = T::one();
    }
    out
}

/// The classification task (see the module doc): labels are the arg-max of the teacher's logits, with the shift
/// rescaled, like the regression task, so that it moves the logits by rms 1 on the training split.
pub fn teacher_classification<T: Scalar>(spec: &Teacher<'_>) -> Result<Dataset<T>> {
    check_classes(spec.mlp.output_dim)?;
    classification_from(TeacherOutputs::<T>::new(spec)?)
}

fn check_classes(output_dim: usize) -> Result<()> {
    if output_dim < 2 {
        return Err(Error::invalid(
            "output_dim",
            output_dim,
            "at least 2 classes for classification",
        ));
    }
    Ok(())
}

/// [`teacher_classification`] from the teacher's outputs.
pub fn classification_from<T: Scalar>(t: TeacherOutputs<T>) -> Result<Dataset<T>> {
    check_classes(t.train.0.ncols())?;
    let k = t.shift_normaliser()?;
    let label = |(b, te): &(Array2<T>, Array2<T>)| one_hot_argmax(&(b + &((te - b) * k)));
    Ok(Dataset {
        y_train: label(&t.train),
        y_test: label(&t.test),
        x_train: t.x_train,
        x_test: t.x_test,
        loss: Loss::CrossEntropy,
        rows_per_example: 1,
    })
}
