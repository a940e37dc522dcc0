//! Figures never fail on a study that is hard to draw: a single seed (no intervals), an arm whose runs diverge, a
//! limit study with one seed, and hand-made results full of NaN, ∞ and zeros. Every figure is written whole (no
//! temporary file left behind).

use std::path::{Path, PathBuf};
use std::process::Command;

use singlora::probes::Quantity;
use singlora::studies::config::StudyConfig;
use singlora::studies::report::{fit_all, FitKey, Grouped};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_singlora"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("singlora-plots-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Every `name` exists in `dir` as PNG and SVG, and no temporary file is left.
fn assert_figures(dir: &Path, names: &[&str]) {
    for name in names {
        for ext in ["png", "svg"] {
            let f = dir.join(format!("{name}.{ext}"));
            assert!(f.exists(), "{} missing", f.display());
        }
    }
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

const SWEEP_FIGURES: [&str; 4] = ["coord_dz_rms", "slopes_dz_rms", "steps_by_series", "loss"];

#[test]
fn a_single_seed_sweep_draws_every_figure() {
    let out = tmp("one-seed");
    let o = out.to_str().unwrap();
    let (code, _, stderr) = run(&[
        "sweep",
        "--set",
        "widths=[16,32,64]",
        "--set",
        "seeds=[0]",
        "--set",
        "steps=2",
        "--out",
        o,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let fits = std::fs::read_to_string(out.join("fits.csv")).unwrap();
    assert!(
        fits.contains("no_interval"),
        "a single seed gives no interval"
    );
    assert_figures(&out.join("figures"), &SWEEP_FIGURES);
}

#[test]
fn a_sweep_with_a_diverging_arm_draws_every_figure() {
    let out = tmp("diverging");
    let o = out.to_str().unwrap();
    let arms =
        r#"arms=[{name="lora",method="lora"},{name="boom",method="lora",loraplus_ratio=1e5}]"#;
    let (code, stdout, stderr) = run(&[
        "sweep",
        "--set",
        "widths=[16,32,64]",
        "--set",
        "seeds=[0,1]",
        "--set",
        "steps=4",
        "--set",
        "lr_exponents=[0]",
        "--set",
        "lr=0.5",
        "--set",
        arms,
        "--out",
        o,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("diverged runs"),
        "the boom arm diverges:\n{stdout}"
    );
    assert_figures(&out.join("figures"), &SWEEP_FIGURES);
}

#[test]
fn a_single_seed_limit_study_draws_every_figure() {
    let out = tmp("limit");
    let o = out.to_str().unwrap();
    let (code, _, stderr) = run(&[
        "limit",
        "--arm",
        "singlora-sign",
        "--set",
        "widths=[32,64]",
        "--set",
        "seeds=[0]",
        "--set",
        "steps=3",
        "--out",
        o,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_figures(
        &out.join("figures"),
        &["limit_convergence", "limit_singlora-sign"],
    );
}

/// Values `[width][seed]` for one key: `f(width index, seed index)`.
fn values(cfg: &StudyConfig, f: impl Fn(usize, usize) -> f64) -> Vec<Vec<f64>> {
    (0..cfg.widths.len())
        .map(|w| (0..cfg.seeds.len()).map(|s| f(w, s)).collect())
        .collect()
}

#[test]
fn results_full_of_nan_infinity_and_zeros_still_draw() {
    let cfg = StudyConfig::default();
    let mut grouped = Grouped::new();
    let key = |series: &str, layer: &str, quantity, step| FitKey {
        series: series.into(),
        layer: layer.into(),
        quantity,
        step,
    };
    for step in 0..=cfg.steps {
        let t = step as f64;
        // A healthy series, one that diverges after step 1 (NaN, then ∞ loss), one that is all zeros.
        grouped.insert(
            key("lora@c=0.5", "hidden.1", Quantity::DzRms, step),
            values(&cfg, |w, s| 1e-3 * (1.0 + w as f64 + s as f64)),
        );
        let diverged = |_, _| if step > 1 { f64::NAN } else { 1e-2 };
        grouped.insert(
            key("lora+@c=1", "hidden.1", Quantity::DzRms, step),
            values(&cfg, diverged),
        );
        grouped.insert(
            key("singlora@c=1", "hidden.1", Quantity::BottleneckRms, step),
            values(&cfg, |_, _| 0.0),
        );
        grouped.insert(
            key("lora@c=0.5", "model", Quantity::Loss, step),
            values(&cfg, |w, _| 1.0 / (1.0 + t + w as f64)),
        );
        let blown = |_, s| {
            if step > 1 && s == 0 {
                f64::INFINITY
            } else {
                0.5
            }
        };
        grouped.insert(
            key("lora+@c=1", "model", Quantity::Loss, step),
            values(&cfg, blown),
        );
        grouped.insert(
            key("lora+@c=1", "model", Quantity::TestLoss, step),
            values(&cfg, |_, _| f64::NAN),
        );
    }
    let fits = fit_all(&cfg, &grouped);
    let dir = tmp("handmade");
    let n =
        singlora::plots::draw_sweep(&cfg, &grouped, &fits, "hidden.1", &dir).expect("figures draw");
    assert!(n >= 8, "{n} files");
    assert_figures(&dir, &SWEEP_FIGURES);
}
