//! The attention-score expressiveness measurement (src/studies/attention.rs): its metrics mean what they say, its
//! positive control is reached, and its numbers do not depend on the thread count.

use singlora::adapters::Method;
use singlora::studies::attention::{fit, run_attention, AttentionConfig, ScoreTarget, Student};

fn small() -> AttentionConfig {
    AttentionConfig {
        width: 16,
        rank: 2,
        seq_len: 4,
        examples: 32,
        steps: 150,
        lr: 1e-2,
        seeds: vec![0],
    }
}

const FULL: Student = Student {
    method: Method::Full,
    rank_factor: 1,
};
const SINGLORA: Student = Student {
    method: Method::Singlora,
    rank_factor: 1,
};

/// A student that barely moves (one step at η = 1e-12) has ΔM ≈ 0, so its score error
/// ‖P(0 − ΔM*)P‖/‖PΔM*P‖ is 1 up to the step's relative size 1e-12·‖sign‖/‖ΔM*‖ ≪ 1e-6; and both targets change
/// the scores asymmetrically (skew fraction of a generic product S·W_K0 is near 1/√2; we assert > 0.3).
#[test]
fn an_unmoved_student_has_score_error_one_and_targets_are_asymmetric() {
    let cfg = AttentionConfig {
        steps: 1,
        lr: 1e-12,
        ..small()
    };
    for target in ScoreTarget::ALL {
        let r = fit(&cfg, target, FULL, 0).unwrap();
        assert!(
            (r.score_error - 1.0).abs() < 1e-6,
            "{target}: {}",
            r.score_error
        );
        assert!(r.target_skew > 0.3, "{target}: skew {}", r.target_skew);
        assert!(
            (r.final_loss / r.initial_loss - 1.0).abs() < 1e-6,
            "{target}: the loss moved"
        );
    }
}

/// psd-qk is inside SingLoRA's family (A_Q A_Qᵀ = UUᵀ has the solution A_Q = U at α/r = 1), so the infimum of its loss
/// is 0. Asserted after 400 steps: the loss falls 100-fold and the score error is below 0.5, while the asymmetric
/// score change is reached with symmetric per-map updates (achieved skew > 0.3). Measured at this size over seeds
/// 0–2: loss ratio ≤ 3.4e-3 and score error ≤ 0.31 (full fine-tuning of q and k: 0.35 — with 32 sequences of 4 rows
/// the data pin ΔM down only this well), so the bounds hold with a margin of ≥ 1.6×; an optimiser that cannot reach
/// the family's own targets fails them.
#[test]
fn singlora_reaches_the_target_inside_its_family() {
    let cfg = AttentionConfig {
        steps: 400,
        ..small()
    };
    let r = fit(&cfg, ScoreTarget::PsdQK, SINGLORA, 0).unwrap();
    assert!(r.diverged_at.is_none());
    assert!(r.final_loss < 1e-2 * r.initial_loss, "{r:?}");
    assert!(r.score_error < 0.5, "{r:?}");
    assert!(r.skew > 0.3, "{r:?}");
    assert_eq!(r.params, 2 * 16 * 2, "SingLoRA: one n×r matrix per map");
}

#[test]
fn fits_do_not_depend_on_the_thread_count() {
    let cfg = AttentionConfig {
        steps: 20,
        ..small()
    };
    let on = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let fits = pool.install(|| run_attention(&cfg)).unwrap();
        serde_json::to_string(&fits).unwrap()
    };
    assert_eq!(on(1), on(2));
}

#[test]
fn bad_settings_name_their_flag() {
    let e = run_attention(&AttentionConfig { rank: 9, ..small() })
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--rank") && e.contains('9') && e.contains("width/2 = 8"),
        "{e}"
    );
    let e = run_attention(&AttentionConfig {
        seeds: vec![],
        ..small()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("--seeds"), "{e}");
}
