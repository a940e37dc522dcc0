//! Synthetic tasks, generated in-process from a seed. Input and output dimensions never depend on the width, and
//! the data are the same at every width for a given seed, so width is the only thing that changes.
//!
//! - [`regression`]: teacher–student regression with a PSD / NSD / asymmetric / random shift in one layer.
//! - [`classification`]: labels from the arg-max of a shifted teacher.
//! - [`sequence`]: associative recall for transformers.
//!
//! [`TaskSpec`] is a study's `[task]` table: which task, and its sizes.

pub mod classification;
pub mod regression;
pub mod sequence;

use serde::{Deserialize, Serialize};

pub use classification::{classification_from, teacher_classification};
pub use regression::{
    regression_from, teacher_regression, toy_regression, ShiftKind, Teacher, TeacherOutputs,
};
pub use sequence::{associative_recall, RecallConfig};

use crate::error::{Error, Result};
use crate::names::named_enum;

/// Which task a run learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// Teacher–student regression (MLP), MSE.
    Regression,
    /// Teacher–student classification (MLP), cross-entropy.
    Classification,
    /// LoRA+'s scalar toy regression (toy model).
    Toy,
    /// Associative recall (transformer), cross-entropy on the answer token.
    Recall,
}

impl TaskKind {
    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Regression => "regression",
            TaskKind::Classification => "classification",
            TaskKind::Toy => "toy",
            TaskKind::Recall => "recall",
        }
    }
}

named_enum!(
    TaskKind,
    "task.kind",
    [
        TaskKind::Regression,
        TaskKind::Classification,
        TaskKind::Toy,
        TaskKind::Recall
    ]
);

/// A study's task (`[task]`). Fields a task kind does not use are ignored by it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskSpec {
    /// The task.
    pub kind: TaskKind,
    /// Teacher tasks: the shift's symmetry.
    pub shift: ShiftKind,
    /// Teacher tasks: the layer holding the shift.
    pub layer: String,
    /// Teacher tasks: the shift's rank.
    pub rank: usize,
    /// Training examples (sequences for recall).
    pub examples: usize,
    /// Held-out examples.
    pub test_examples: usize,
    /// Recall: key–value pairs per sequence (T = 2·pairs + 1).
    pub pairs: usize,
    /// Recall: number of distinct keys.
    pub keys: usize,
    /// Recall: number of distinct values.
    pub values: usize,
    /// Recall: answer a fixed random permutation of the retrieved value (a task to fine-tune a recall-trained base
    /// on; pre-training always uses plain recall).
    pub permute_values: bool,
}

impl Default for TaskSpec {
    /// Regression with a rank-2 PSD shift of `hidden.1`, 32 training and 32 held-out examples; recall settings 2 pairs
    /// of 8 keys and 8 values.
    fn default() -> Self {
        Self {
            kind: TaskKind::Regression,
            shift: ShiftKind::Psd,
            layer: "hidden.1".into(),
            rank: 2,
            examples: 32,
            test_examples: 32,
            pairs: 2,
            keys: 8,
            values: 8,
            permute_values: false,
        }
    }
}

impl TaskSpec {
    /// The recall task's shape.
    pub fn recall(&self) -> RecallConfig {
        RecallConfig {
            keys: self.keys,
            values: self.values,
            pairs: self.pairs,
            permute: self.permute_values,
        }
    }

    /// Checks the sizes; errors name the field. (Kind-specific settings are checked when the data are built.)
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("task.examples", self.examples),
            ("task.test_examples", self.test_examples),
        ] {
            if v == 0 {
                return Err(Error::invalid(field, v, "a positive integer"));
            }
        }
        Ok(())
    }
}
