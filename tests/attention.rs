//! The attention-score expressiveness measurement (src/studies/attention.rs): its metrics mean what they say, its
//! positive control is reached, and its numbers do not depend on the thread count.

use singlora::adapters::Method;
use singlora::linalg::frobenius;
use singlora::models::Model;
use singlora::studies::attention::{
    fit, run_attention, score_change, shift_factors, student, teacher, AttentionConfig,
    ScoreTarget, Student,
};

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

/// psd-qk is inside SingLoRA's family: with α/r = 1 and u = 1, SingLoRA on q and k with A_Q = U, A_K = V applies
/// W_Q0 + UUᵀ and W_K0 + VVᵀ, the teacher's maps exactly. So its outputs equal the teacher's up to round-off (the two
/// sum W₀x + U(Uᵀx) and (W₀ + UUᵀ)x in different orders: ε·(n + r) ≈ 4e-15 per product, over about ten products and
/// two layer norms; 1e-10 relative leaves a conditioning factor of 10⁴), and its score error is round-off too (the
/// merged weights differ by ε·r per entry: below 1e-12 relative). An implementation whose update were not A·Aᵀ, or
/// whose truncation or scaling were off, fails both.
#[test]
fn singlora_at_the_factors_is_the_in_family_teacher() {
    let cfg = small();
    let (teacher, data) = teacher(&cfg, ScoreTarget::PsdQK, 0).unwrap();
    let (mut net, _) = student(&cfg, SINGLORA, 0).unwrap();
    let (u, v) = shift_factors(&cfg, 0);
    {
        let mut params = net.params_mut();
        assert_eq!(params.len(), 2, "one SingLoRA A per adapted map (q, k)");
        params[0].assign(&u.into_dyn());
        params[1].assign(&v.into_dyn());
    }
    let (y_student, _) = net.forward(&data.x_train, 1.0);
    let (y_teacher, _) = teacher.forward(&data.x_train, 1.0);
    let diff = frobenius(&(&y_student - &y_teacher)) / frobenius(&y_teacher);
    assert!(diff < 1e-10, "outputs differ by {diff:e}");
    let (error, skew, target_skew) = score_change(&cfg, ScoreTarget::PsdQK, &net, 0);
    assert!(error < 1e-12, "score error {error:e}");
    assert!(
        (skew - target_skew).abs() < 1e-12 && skew > 0.3,
        "{skew} vs {target_skew}"
    );
}

/// Training moves toward the target: the unmoved student's score error is exactly 1 (test above), so any step
/// toward ΔM* lowers it, and Adam at this rate lowers the loss; a fit that moved away or diverged fails.
#[test]
fn a_fit_moves_the_scores_toward_the_in_family_target() {
    let r = fit(&small(), ScoreTarget::PsdQK, SINGLORA, 0).unwrap();
    assert!(r.diverged_at.is_none());
    assert!(r.final_loss < r.initial_loss, "{r:?}");
    assert!(r.score_error < 1.0, "{r:?}");
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

/// As a study of the engine (what `singlora verify` runs), the fits are `run_students`'s, one run file each, and a
/// second invocation on the same folder loads them all (none recomputed), also after one run file was deleted
/// (only that one is recomputed, to the same numbers).
#[test]
fn the_attention_study_resumes_without_recomputing() {
    use singlora::studies::attention::{run_students, AttentionStudy};
    use singlora::studies::engine::{run_study, RunOptions};
    let cfg = AttentionConfig {
        steps: 20,
        ..small()
    };
    let students = vec![FULL, SINGLORA];
    let direct = run_students(&cfg, &students).unwrap();
    let study = AttentionStudy {
        config: cfg,
        students,
    };
    let out = std::env::temp_dir().join(format!("singlora-attention-study-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let json = |f: &[singlora::studies::attention::ScoreFit]| serde_json::to_string(f).unwrap();
    let run = || run_study(&study, &out, &RunOptions::default()).unwrap();
    let first = run();
    assert_eq!(first.computed, direct.len(), "every fit computed once");
    let fits: Vec<_> = first.runs.into_iter().map(|r| r.run).collect();
    assert_eq!(
        json(&fits),
        json(&direct),
        "the engine's fits are run_students'"
    );
    assert_eq!(run().computed, 0, "a finished study recomputes nothing");
    let runs = out.join("runs");
    let one = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(one).unwrap();
    let resumed = run();
    assert_eq!(resumed.computed, 1, "only the deleted fit is recomputed");
    let fits: Vec<_> = resumed.runs.into_iter().map(|r| r.run).collect();
    assert_eq!(json(&fits), json(&direct));
    let _ = std::fs::remove_dir_all(&out);
}
