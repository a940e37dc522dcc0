//! The engine's cost estimates beside a finished study's measured wall seconds, share group by share group
//! (`src/studies/cost.rs`): how far the time limits `singlora slurm` prints are from what runs take on this machine.
//!
//! ```sh
//! cargo run --release --example costs -- sweep DIR          # DIR holds a finished `singlora sweep` (config.toml)
//! cargo run --release --example costs -- lr DIR
//! ```
//!
//! A group's measured time is the sum of its runs' `wall_seconds` in DIR/manifest.json (the engine charges the
//! shared set-up to the group's first run). Measured with `--threads 1` the two columns compare like for like.

use std::collections::BTreeMap;
use std::path::PathBuf;

use singlora::studies::engine::Study;
use singlora::studies::lr::LrStudy;
use singlora::studies::sweep::Sweep;

fn table<S: Study>(study: &S, wall: &BTreeMap<String, f64>) {
    // share key → (Σ own, shared, Σ measured)
    let mut groups: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    for job in study.jobs() {
        let key = study.key(&job);
        let Some(&measured) = wall.get(&key) else {
            continue;
        };
        let cost = study.job_cost(&job);
        let group = study.share_key(&job).unwrap_or(key);
        let e = groups.entry(group).or_default();
        (e.0, e.1, e.2) = (e.0 + cost.own, cost.shared, e.2 + measured);
    }
    let (mut est, mut meas) = (0.0, 0.0);
    println!(
        "{:>10} {:>10} {:>10}  group",
        "estimated", "measured", "ratio"
    );
    for (g, (own, shared, m)) in &groups {
        let e = own + shared;
        (est, meas) = (est + e, meas + m);
        let short: String = g.chars().take(60).collect();
        println!("{e:>10.4} {m:>10.4} {:>10.2}  {short}", e / m);
    }
    println!("{est:>10.3} {meas:>10.3} {:>10.2}  whole study", est / meas);
}

/// A one-line error and exit code 2.
fn fail(what: &str, value: &dyn std::fmt::Display, expected: &str) -> ! {
    eprintln!("costs: {what} = {value}: expected {expected}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, dir] = args.as_slice() else {
        fail("arguments", &args.join(" "), "KIND DIR (KIND: sweep or lr)");
    };
    if kind != "sweep" && kind != "lr" {
        fail("KIND", kind, "sweep or lr");
    }
    let dir = PathBuf::from(dir);
    let path = dir.join("manifest.json");
    let manifest: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| {
            fail(
                "DIR",
                &dir.display(),
                "a finished study's folder (with manifest.json)",
            )
        });
    let wall: BTreeMap<String, f64> = serde_json::from_value(manifest["wall_seconds"].clone())
        .unwrap_or_else(|_| fail("manifest.json", &path.display(), "a wall_seconds table"));
    let config = dir.join("config.toml");
    let bad =
        |e: singlora::Error| -> ! { fail("DIR/config.toml", &config.display(), &e.to_string()) };
    if kind == "sweep" {
        let cfg = singlora::studies::config::StudyConfig::load(Some(&config), &[])
            .unwrap_or_else(|e| bad(e));
        table(&Sweep(&cfg), &wall);
    } else {
        let cfg = singlora::studies::lr::load(Some(&config), &[]).unwrap_or_else(|e| bad(e));
        table(&LrStudy(&cfg), &wall);
    }
}
