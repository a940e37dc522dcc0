//! `singlora theory`: the width exponents the theory engine derives for a study's series.

use std::path::PathBuf;

use clap::Args;

use crate::error::Result;
use crate::studies::config::StudyConfig;
use crate::studies::report::theory::theory_table;
use crate::theory::Shape;

#[derive(Args, Debug)]
pub struct TheoryArgs {
    /// Study file (TOML); default: the embedded configs/default.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override any field, as for sweep.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    sets: Vec<String>,
    /// Predict for one layer of this shape family instead of the MLP's square hidden layer: square, tall:K
    /// (d_out = K·n), wide:K (d_in = K·n), fixed_in:D (d_in = D), fixed_out:D (d_out = D).
    #[arg(long)]
    shape: Option<String>,
}

pub fn run(a: TheoryArgs) -> Result<()> {
    let cfg = StudyConfig::load(a.config.as_deref(), &a.sets)?;
    let shape: Option<Shape> = a.shape.as_deref().map(str::parse).transpose()?;
    print!("{}", theory_table(&cfg, shape));
    Ok(())
}
