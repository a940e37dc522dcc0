//! Width studies of transformer blocks (`model = "transformer"`): a small sweep reproduces the clear-cut first-step
//! exponent shift on a square map, is bitwise the same on one and two threads, and resumes an interrupted study to the
//! same tables; the default study file loads and validates.

use std::path::{Path, PathBuf};

use singlora::probes::Quantity;
use singlora::studies::config::StudyConfig;
use singlora::studies::engine::RunOptions;
use singlora::studies::report::{find_fit, fit_all, group, write_tables};
use singlora::studies::sweep::run_sweep;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("singlora-tsweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/transformer.toml")
}

/// The default transformer study shrunk to seconds: one block, SingLoRA on q and v only, widths 16 … 128 by heads of
/// 4, two seeds, a 5-step pre-trained base, and `sets` on top.
fn small(sets: &[&str]) -> StudyConfig {
    let mut all: Vec<String> = [
        "widths=[16,32,64,128]",
        "seeds=[0,1]",
        "steps=2",
        "transformer.blocks=1",
        "transformer.head_dim=4",
        "transformer.adapt=[\"q\",\"v\"]",
        "pretrain.steps=5",
        "task.examples=32",
        "task.test_examples=32",
        "arms=[{name=\"singlora\",method=\"singlora\"}]",
    ]
    .map(String::from)
    .to_vec();
    all.extend(sets.iter().map(|s| s.to_string()));
    StudyConfig::load(Some(&config()), &all).unwrap()
}

/// Writes the tables of `cfg`'s finished study in `out` and returns results.csv and fits.csv.
fn tables(cfg: &StudyConfig, out: &Path, opts: &RunOptions) -> (Vec<u8>, Vec<u8>) {
    let runs = run_sweep(cfg, out, opts).unwrap();
    let fits = fit_all(cfg, &group(cfg, &runs));
    write_tables(out, &runs, &fits).unwrap();
    let read = |f: &str| std::fs::read(out.join(f)).unwrap();
    (read("results.csv"), read("fits.csv"))
}

#[test]
fn the_default_transformer_study_loads_and_validates() {
    let cfg = StudyConfig::load(Some(&config()), &[]).unwrap();
    cfg.validate().unwrap();
    assert!(cfg.widths.len() >= 5 && cfg.seeds.len() >= 3);
    assert!(
        cfg.pretrain.is_some(),
        "the default study fine-tunes a pre-trained base"
    );
}

/// SingLoRA on the square map q of block 0 under Adam, step 1. The map's input LN(embedding) is frozen, and with no
/// ramp (u ≡ 1) the first output change is dz = (α/r)(A₀δAᵀ + δA A₀ᵀ + δA δAᵀ)x, where Adam's bias-corrected first
/// step is δA = −η·sign(g) entrywise (ε = 1e-12 ≪ |g|). So dz = η·L + η²·Q: log dz(c=1) − log dz(c=½) =
/// log(n^(−½)) + log((1 + η₁ ρ)/(1 + η½ ρ)) with ρ = ‖Qx‖/‖Lx‖ ~ 1/σ_A. Both η and the init scale σ_A of A scale as
/// n^(−½), so ηρ ≈ 0.02·(a width-independent constant of order 1): the second logarithm is below δ = 0.04 at every
/// width and nearly constant. The least-squares slope of values bounded by δ over four widths spaced by ln 2 is at
/// most δ·Σ|xᵢ − x̄|/Σ(xᵢ − x̄)² = δ·4h/(5h²) = 1.15·δ ≈ 0.046 (h = ln 2): |shift + ½| ≤ 0.05.
#[test]
fn first_step_shift_on_a_square_map_is_minus_one_half() {
    let cfg = small(&[]);
    let out = tmp("shift");
    let runs = run_sweep(&cfg, &out, &RunOptions::default()).unwrap();
    let fits = fit_all(&cfg, &group(&cfg, &runs));
    let slope = |series: &str| {
        find_fit(&fits, series, "block.0.q", Quantity::DzRms, 1)
            .unwrap_or_else(|| panic!("no dz_rms fit of {series} at block.0.q"))
            .fit
            .slope
    };
    let (half, one) = (slope("singlora@c=0.5"), slope("singlora@c=1"));
    assert!(
        (one - half + 0.5).abs() <= 0.05,
        "slope(c=1) − slope(c=½) = {one} − {half}"
    );
    // The block's own coordinate checks are recorded too, at every step.
    for q in [Quantity::AttnLogitsRms, Quantity::ResidOutRms] {
        assert!(
            find_fit(&fits, "singlora@c=0.5", "block.0", q, 1).is_some(),
            "no {q} fit at block.0"
        );
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn one_and_two_threads_give_identical_tables() {
    let cfg = small(&["lr_exponents=[0.5]"]);
    let (a, b) = (tmp("t1"), tmp("t2"));
    let on = |threads| RunOptions {
        threads: Some(threads),
        ..RunOptions::default()
    };
    assert_eq!(tables(&cfg, &a, &on(1)), tables(&cfg, &b, &on(2)));
    let _ = (std::fs::remove_dir_all(a), std::fs::remove_dir_all(b));
}

/// Half the run files removed (as if killed mid-study) and a torn temporary file left behind: the resumed study
/// recomputes only the missing runs and its tables equal the uninterrupted study's byte for byte.
#[test]
fn an_interrupted_transformer_study_resumes_to_identical_tables() {
    let cfg = small(&["lr_exponents=[0.5]", "widths=[16,32,64]"]);
    let (a, b) = (tmp("full"), tmp("resumed"));
    let full = tables(&cfg, &a, &RunOptions::default());
    run_sweep(&cfg, &b, &RunOptions::default()).unwrap();
    let runs = b.join("runs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files.iter().step_by(2) {
        std::fs::remove_file(f).unwrap();
    }
    std::fs::write(runs.join(".singlora__n16__s0.json.tmp7"), b"{torn").unwrap();
    let kept = &files[1];
    let before = std::fs::metadata(kept).unwrap().modified().unwrap();
    let resumed = tables(&cfg, &b, &RunOptions::default());
    assert_eq!(
        std::fs::metadata(kept).unwrap().modified().unwrap(),
        before,
        "a finished run was recomputed"
    );
    assert_eq!(full, resumed);
    let _ = (std::fs::remove_dir_all(a), std::fs::remove_dir_all(b));
}
