//! `singlora verify`: runs the studies behind the paper's claims (resuming), prints the verdict table and writes
//! `verdicts.csv`, `report.md` and the figures.

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::split_list;
use crate::error::Result;
use crate::studies::verify::{self, report, Claim, Preset, VerifyOptions};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The quick preset (the default): small widths and few steps, a few minutes on 2 cores (what CI runs).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// The full preset: wider ranges, more seeds and steps, under 30 minutes on 2 cores.
    #[arg(long)]
    full: bool,
    /// The claims to judge, comma-separated (default: all of C1, …, C9).
    #[arg(long, value_name = "C1,C4,…")]
    claims: Option<String>,
    /// Output folder (default results/verify-PRESET).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads per study (default: all cores). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
}

fn claims(list: Option<&str>) -> Result<Vec<Claim>> {
    let Some(list) = list else {
        return Ok(Claim::ALL.to_vec());
    };
    let mut out: Vec<Claim> = Vec::new();
    for name in split_list(list) {
        let c: Claim = name.to_uppercase().parse()?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

pub fn run(a: VerifyArgs) -> Result<()> {
    let preset = if a.full { Preset::Full } else { Preset::Quick };
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| Path::new("results").join(format!("verify-{preset}")));
    let opts = VerifyOptions {
        preset,
        claims: claims(a.claims.as_deref())?,
        out: out.clone(),
        threads: a.threads,
        progress: true,
    };
    let measured = verify::run(&opts)?;
    let figures = crate::plots::verify::draw_verify(&measured, &out)?;
    report::write(&measured, &out)?;
    print!("{}", report::table(&measured));
    println!(
        "wrote {0}/verdicts.csv, {0}/report.md and {figures} figure files",
        out.display()
    );
    Ok(())
}
