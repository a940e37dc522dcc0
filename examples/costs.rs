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
    // (width-free group key) → (estimated, measured)
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, dir] = args.as_slice() else {
        eprintln!("usage: costs sweep|lr DIR");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("manifest.json")).expect("DIR/manifest.json"),
    )
    .expect("a manifest");
    let wall: BTreeMap<String, f64> =
        serde_json::from_value(manifest["wall_seconds"].clone()).expect("wall_seconds");
    let config = dir.join("config.toml");
    match kind.as_str() {
        "sweep" => {
            let cfg = singlora::studies::config::StudyConfig::load(Some(&config), &[])
                .expect("a sweep config");
            table(&Sweep(&cfg), &wall);
        }
        "lr" => {
            let cfg = singlora::studies::lr::load(Some(&config), &[]).expect("an lr config");
            table(&LrStudy(&cfg), &wall);
        }
        other => {
            eprintln!("costs: KIND {other}: expected sweep or lr");
            std::process::exit(2);
        }
    }
}
