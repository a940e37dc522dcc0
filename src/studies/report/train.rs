//! The printout of `singlora train`: train and held-out loss (and accuracy) at the evaluated steps.

use std::fmt::Write as _;

use crate::train::TrainRecord;

/// The loss table of one run: a row per held-out evaluation, then the divergence if there was one.
pub fn train_table(rec: &TrainRecord) -> String {
    let acc = !rec.test_accuracy.is_empty();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>6} {:>14} {:>14}{}",
        "step",
        "train loss",
        "held-out loss",
        if acc { "  held-out acc" } else { "" }
    );
    for (i, (&t, lt)) in rec.test_steps.iter().zip(&rec.test_loss).enumerate() {
        let l = rec.train_loss[t as usize];
        let a = rec
            .test_accuracy
            .get(i)
            .map(|v| format!(" {v:>14.4}"))
            .unwrap_or_default();
        let _ = writeln!(s, "{t:>6} {l:>14.6e} {lt:>14.6e}{a}");
    }
    if let (Some(t), Some(why)) = (rec.diverged_at, rec.divergence) {
        let _ = writeln!(s, "diverged at step {t} ({why}); training stopped there");
    }
    s
}
