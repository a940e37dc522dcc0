//! C2: trainable parameters per model and layer set (THEORY §1.4), counted from the tensors the adapters allocate:
//! LoRA's $A \in \mathbb R^{r\times d_{in}}$ and $B \in \mathbb R^{d_{out}\times r}$, $r(d_{in} + d_{out})$ in all;
//! SingLoRA's $A \in \mathbb R^{\max(d_{in}, d_{out})\times r}$, $r\max(d_{in}, d_{out})$. The ratio is exactly 1/2
//! on a square layer and lies between 1/2 and 1 otherwise.

use ndarray::Array2;

use super::{Check, Claim, ClaimResult, Number, Outcome};
use crate::adapters::{AdaptedLinear, AdapterConfig, Method};
use crate::error::Result;
use crate::models::{MlpConfig, Model, TransformerConfig, WidthMode};

/// The paper's LLaMA-7B figures (C7's table, a secondary summary): 12M trainable parameters for SingLoRA against
/// 20M for LoRA, each rounded to the million, so the ratio they state lies in [11.5/20.5, 12.5/19.5].
pub const PAPER_RATIO: (f64, f64) = (11.5 / 20.5, 12.5 / 19.5);

/// LLaMA-7B's hidden size and MLP size.
const LLAMA: (usize, usize) = (4096, 11008);

/// One model and layer set, counted for both adapters.
#[derive(Clone, Debug, PartialEq)]
pub struct CountCase {
    /// The model.
    pub model: String,
    /// The adapted layers.
    pub layers: String,
    /// (d_in, d_out) of each adapted map.
    pub shapes: Vec<(usize, usize)>,
    /// LoRA's trainable parameters.
    pub lora: usize,
    /// SingLoRA's trainable parameters.
    pub singlora: usize,
    /// Whether the paper's LLaMA-7B figure is about this case (every projection of a LLaMA-7B block).
    pub paper_block: bool,
}

impl CountCase {
    /// SingLoRA / LoRA.
    pub fn ratio(&self) -> f64 {
        self.singlora as f64 / self.lora as f64
    }

    /// Whether every adapted map is square.
    pub fn square(&self) -> bool {
        self.shapes.iter().all(|(i, o)| i == o)
    }
}

/// C2's measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct Counts {
    /// The rank both adapters use.
    pub rank: usize,
    /// The cases.
    pub cases: Vec<CountCase>,
}

/// Trainable parameters of `method` at rank `r` on one d_out × d_in layer, from the tensors it allocates (the zero
/// base is never touched, so even LLaMA-sized layers cost no memory).
pub fn layer_count(method: Method, d_in: usize, d_out: usize, r: usize) -> Result<usize> {
    let cfg = AdapterConfig::new(method).rank_alpha(r, r as f64);
    Ok(AdaptedLinear::<f32>::new(Array2::zeros((d_out, d_in)), &cfg, 0)?.num_trainable())
}

fn shapes_case(
    model: &str,
    layers: &str,
    shapes: Vec<(usize, usize)>,
    r: usize,
) -> Result<CountCase> {
    let count =
        |m: Method| -> Result<usize> { shapes.iter().map(|&(i, o)| layer_count(m, i, o, r)).sum() };
    Ok(CountCase {
        model: model.into(),
        layers: layers.into(),
        lora: count(Method::Lora)?,
        singlora: count(Method::Singlora)?,
        paper_block: false,
        shapes,
    })
}

/// The MLP of the width studies at width n (16 → n → n → 1) with adapters on `adapt`, counted from the built model.
fn mlp_case(n: usize, adapt: &[&str], shapes: Vec<(usize, usize)>, r: usize) -> Result<CountCase> {
    let mlp = MlpConfig {
        adapt: adapt.iter().map(|s| s.to_string()).collect(),
        ..MlpConfig::new(n)
    };
    let count = |m: Method| -> Result<usize> {
        let adapter = AdapterConfig::new(m).rank_alpha(r, r as f64);
        Ok(mlp
            .build(mlp.base_weights::<f32>(0), &adapter, 0)?
            .num_trainable())
    };
    Ok(CountCase {
        model: format!("MLP 16→{n}→{n}→1"),
        layers: adapt.join(", "),
        lora: count(Method::Lora)?,
        singlora: count(Method::Singlora)?,
        paper_block: false,
        shapes,
    })
}

/// One transformer block of the transformer studies at width n (heads of 8, MLP ratio 4), counted from the built
/// model with adapters on `adapt`.
fn block_case(n: usize, adapt: &[&str], r: usize) -> Result<CountCase> {
    let mut t = TransformerConfig::at_width(n, WidthMode::Heads, 8)?;
    t.blocks = 1;
    t.adapt = adapt.iter().map(|s| s.to_string()).collect();
    let k = t.mlp_ratio * n;
    let shapes = adapt
        .iter()
        .map(|m| match *m {
            "up" => (n, k),
            "down" => (k, n),
            _ => (n, n),
        })
        .collect();
    let count = |m: Method| -> Result<usize> {
        let adapter = AdapterConfig::new(m).rank_alpha(r, r as f64);
        Ok(t.build(t.base_weights::<f32>(0), &adapter, 0)?
            .num_trainable())
    };
    Ok(CountCase {
        model: format!("transformer block, n = {n} (MLP {n}→{k}→{n})"),
        layers: adapt.join(", "),
        lora: count(Method::Lora)?,
        singlora: count(Method::Singlora)?,
        paper_block: false,
        shapes,
    })
}

/// Counts every case at rank `r`: a square layer, the MLP of the width studies, a transformer block, and a
/// LLaMA-7B-shaped block (q, k, v, o: 4096×4096; gate, up: 4096 → 11008; down: 11008 → 4096) with all seven
/// projections and with q and v only.
pub fn measure(r: usize) -> Result<Counts> {
    let (h, f) = LLAMA;
    let n = 256;
    let mut llama = shapes_case(
        "LLaMA-7B block",
        "q, k, v, o, gate, up, down",
        vec![(h, h), (h, h), (h, h), (h, h), (h, f), (h, f), (f, h)],
        r,
    )?;
    llama.paper_block = true;
    let cases = vec![
        shapes_case("one layer", "1024×1024", vec![(1024, 1024)], r)?,
        mlp_case(n, &["hidden.1"], vec![(n, n)], r)?,
        mlp_case(n, &["input", "hidden.1"], vec![(16, n), (n, n)], r)?,
        block_case(64, &["q", "v"], r)?,
        block_case(64, &["q", "k", "v", "o", "up", "down"], r)?,
        shapes_case("LLaMA-7B block", "q, v", vec![(h, h), (h, h)], r)?,
        llama,
    ];
    Ok(Counts { rank: r, cases })
}

/// C2's verdict. Core: on every case whose adapted maps are all square, SingLoRA's count is exactly half of LoRA's
/// (integer equality). Condition: on the LLaMA-7B block with all seven projections the ratio lies within the
/// interval the paper's rounded figures allow ([`PAPER_RATIO`]).
pub fn judge(m: &Counts) -> ClaimResult {
    let square: Vec<&CountCase> = m.cases.iter().filter(|c| c.square()).collect();
    let half = Outcome::of(!square.is_empty() && square.iter().all(|c| 2 * c.singlora == c.lora));
    let (lo, hi) = PAPER_RATIO;
    let paper = m
        .cases
        .iter()
        .find(|c| c.paper_block)
        .map_or(Outcome::Unclear, |c| {
            Outcome::of(c.ratio() >= lo && c.ratio() <= hi)
        });
    let checks = vec![
        Check::core(
            format!(
                "on every all-square layer set ({} of {} cases) SingLoRA's count is exactly half of LoRA's (2·SingLoRA = LoRA, integer equality)",
                square.len(),
                m.cases.len()
            ),
            half,
        ),
        Check::condition(
            format!(
                "on the LLaMA-7B block with all seven projections SingLoRA/LoRA lies in [{lo:.3}, {hi:.3}], the ratios the paper's 12M and 20M (each rounded to the million) allow"
            ),
            paper,
        ),
    ];
    let mut numbers: Vec<Number> = m
        .cases
        .iter()
        .rev()
        .map(|c| {
            Number::new(
                format!("{} [{}]", c.model, c.layers),
                format!("{:.1}% ({} vs {})", 100.0 * c.ratio(), c.singlora, c.lora),
            )
        })
        .collect();
    if let Some(c) = m.cases.iter().find(|c| c.paper_block) {
        numbers.push(Number::new(
            "32 LLaMA-7B blocks",
            format!(
                "SingLoRA {:.2}M vs LoRA {:.2}M",
                32.0 * c.singlora as f64 / 1e6,
                32.0 * c.lora as f64 / 1e6
            ),
        ));
    }
    let setting = format!(
        "Trainable parameters at rank r = {} from the tensors each adapter allocates (LoRA: A r×d_in and B d_out×r; SingLoRA: A max(d_in, d_out)×r), per model and adapted layer set; the MLP and the transformer block are built as the studies build them. On a non-square map SingLoRA costs r·max(d_in, d_out) against LoRA's r·(d_in + d_out), so the ratio lies between 1/2 and 1 and depends on the layer set.",
        m.rank
    );
    ClaimResult::new(Claim::C2, checks, numbers, setting)
}
