//! The tables of a small sweep and a small limit study, compared with reference copies in `tests/reference/`: a
//! refactoring or optimisation that changes a number, a row, a column or an order fails here.
//!
//! The references were written by this code on the machine of the session that produced them (identical bytes there:
//! `cmp` of the regenerated files). Another processor may round differently inside its SIMD products (faer picks
//! kernels at run time), so numbers are compared to a relative 1e-6 (with an absolute floor of 1e-12 for values that
//! are round-off themselves): a real change of the arithmetic (an added step, a different formula, another seed)
//! moves every value by far more, while two correct roundings of the same arithmetic differ by ~1e-16 relative per
//! operation, amplified at most a few hundred times over two or four training steps. Every non-numeric field must
//! match exactly. To regenerate after an intended change: run the two commands in `regenerate()` below and copy the
//! files, saying why in the commit.

use std::path::Path;

use singlora::studies::config::StudyConfig;
use singlora::studies::engine::RunOptions;
use singlora::studies::limit::{run_limit_study, LimitConfig};
use singlora::studies::report::{fit_all, group, write_tables};
use singlora::studies::sweep::run_sweep;

/// The sweep and limit study the references hold (as `singlora sweep --set 'widths=[16,32]' --set 'seeds=[0,1]'
/// --set steps=2` and `singlora limit --set 'widths=[32,64]' --set 'seeds=[0]' --set steps=4`).
fn regenerate(out: &Path) {
    let sets = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let cfg =
        StudyConfig::load(None, &sets(&["widths=[16,32]", "seeds=[0,1]", "steps=2"])).unwrap();
    let sweep = out.join("sweep");
    let runs = run_sweep(&cfg, &sweep, &RunOptions::default()).unwrap();
    let fits = fit_all(&cfg, &group(&cfg, &runs));
    write_tables(&sweep, &runs, &fits).unwrap();
    let limit =
        LimitConfig::load(None, &sets(&["widths=[32,64]", "seeds=[0]", "steps=4"])).unwrap();
    run_limit_study(&limit, &limit, &out.join("limit"), &RunOptions::default()).unwrap();
}

/// Compares two CSV texts field by field: equal strings, or numbers within the tolerance of the module doc.
fn same_table(name: &str, got: &str, want: &str) {
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    assert_eq!(
        g.len(),
        w.len(),
        "{name}: {} rows, reference {}",
        g.len(),
        w.len()
    );
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let (fa, fb): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
        assert_eq!(fa.len(), fb.len(), "{name} row {i}: {a} vs {b}");
        for (x, y) in fa.iter().zip(&fb) {
            if x == y {
                continue;
            }
            let (p, q): (f64, f64) = match (x.parse(), y.parse()) {
                (Ok(p), Ok(q)) => (p, q),
                _ => panic!("{name} row {i}: {x:?} vs {y:?}\n{a}\n{b}"),
            };
            let tol = 1e-6 * p.abs().max(q.abs()) + 1e-12;
            assert!((p - q).abs() <= tol, "{name} row {i}: {p} vs {q}\n{a}\n{b}");
        }
    }
}

#[test]
fn tables_match_their_references() {
    let out = std::env::temp_dir().join(format!("singlora-tables-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    regenerate(&out);
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference");
    for (file, made) in [
        ("sweep_results.csv", "sweep/results.csv"),
        ("sweep_fits.csv", "sweep/fits.csv"),
        ("limit_trajectories.csv", "limit/trajectories.csv"),
    ] {
        let got = std::fs::read_to_string(out.join(made)).unwrap();
        let want = std::fs::read_to_string(reference.join(file)).unwrap();
        same_table(file, &got, &want);
    }
    let _ = std::fs::remove_dir_all(&out);
}
