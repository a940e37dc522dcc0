//! C1: the symmetric update and what it can reach (THEORY §1.1, §1.3, §6.1).
//!
//! Measured on SingLoRA layers with a random width-aware $A$ (several shapes and seeds): the $k\times k$ top-left
//! block of $\Delta W$ ($k = \min(d_{in}, d_{out})$; the whole update on a square layer) — its asymmetry
//! $\lVert B - B^\top\rVert_F/\lVert B\rVert_F$ and smallest eigenvalue relative to the largest in magnitude — the
//! numerical rank of $\Delta W$, and the share of $\lVert\Delta W\rVert_F$ outside that block; the output at
//! $t = 0$ with a ramp against the base output; and, from the synthetic study (§6.1), how much of the base layer's
//! loss LoRA and SingLoRA remove on PSD, NSD and asymmetric targets; and on attention (`studies::attention`), whether
//! SingLoRA on q and k reaches an asymmetric change of the scores $W_Q^\top W_K$ inside its family and how near LoRA
//! it comes on one outside it ([`attention_checks`]).

use ndarray::{s, Array2};

use std::ops::Not;

use super::{Check, Claim, ClaimResult, Estimate, Number, Outcome};
use crate::adapters::{AdaptedLinear, AdapterConfig, Method, Ramp};
use crate::error::Result;
use crate::linalg::{frobenius, numerical_rank, symmetric_eigenvalues};
use crate::rng::{normal_matrix, SeedRng};
use crate::studies::attention::{AttentionConfig, ScoreFit, ScoreTarget, STUDENTS};
use crate::studies::lr::median;
use crate::studies::synthetic::SyntheticResult;

/// Round-off bound on the asymmetry and negative eigenvalues of a computed $AA^\top$: its entries are sums of r
/// products, each accurate to about r·ε ≈ 1e-15 relative in f64; 1e-12 leaves a margin of 1000.
pub const ROUND_OFF: f64 = 1e-12;

/// Singular values above this fraction of the largest count towards the rank.
pub const RANK_RTOL: f64 = 1e-10;

/// SingLoRA "fits" a target if its final loss is at most this fraction of the base layer's loss.
pub const FITS: f64 = 1e-3;

/// SingLoRA "cannot reach" an NSD target if it leaves at least this fraction of the base loss: the PSD update
/// nearest to $-CC^\top$ is 0, which leaves all of it (ratio 1 up to the sample covariance of the inputs).
pub const UNREACHED: f64 = 0.5;

/// One layer shape's measurements, worst case over seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeSymmetry {
    /// Input size.
    pub d_in: usize,
    /// Output size.
    pub d_out: usize,
    /// Largest asymmetry of the k×k block.
    pub asymmetry: f64,
    /// Smallest eigenvalue of the block's symmetric part over its largest |eigenvalue|.
    pub min_eigenvalue: f64,
    /// Largest numerical rank of ΔW.
    pub rank: usize,
    /// Largest share of ‖ΔW‖_F outside the block (0 for a square layer).
    pub outside_block: f64,
}

/// C1's measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct SymmetryMeasurements {
    /// The adapter's rank.
    pub rank: usize,
    /// Per shape.
    pub shapes: Vec<ShapeSymmetry>,
    /// max |output − base output| at t = 0 with a ramp (T = 10 steps).
    pub ramp_start: f64,
    /// The same without a ramp (the tool's default T = 0), relative to the base output's largest entry.
    pub no_ramp_start: f64,
    /// The synthetic fits at the target's rank.
    pub fits: Vec<SyntheticResult>,
}

fn shape_symmetry(d_in: usize, d_out: usize, rank: usize, seeds: &[u64]) -> Result<ShapeSymmetry> {
    let k = d_in.min(d_out);
    let mut m = ShapeSymmetry {
        d_in,
        d_out,
        asymmetry: 0.0,
        min_eigenvalue: f64::INFINITY,
        rank: 0,
        outside_block: 0.0,
    };
    for &seed in seeds {
        let w0: Array2<f64> = normal_matrix(&mut SeedRng::new(seed, "verify.w0"), d_out, d_in, 1.0);
        let cfg = AdapterConfig::new(Method::Singlora).rank_alpha(rank, rank as f64);
        let dw = AdaptedLinear::new(w0, &cfg, seed)?.delta_w(1.0);
        let block = dw.slice(s![..k, ..k]).to_owned();
        let asym = frobenius(&(&block - &block.t())) / frobenius(&block);
        let sym = (&block + &block.t()) * 0.5;
        let eig = symmetric_eigenvalues(sym.view());
        let top = eig.iter().fold(0.0f64, |a, &e| a.max(e.abs()));
        let total = frobenius(&dw);
        let outside = (total.powi(2) - frobenius(&block).powi(2)).max(0.0).sqrt() / total;
        m.asymmetry = m.asymmetry.max(asym);
        m.min_eigenvalue = m.min_eigenvalue.min(eig[0] / top);
        m.rank = m.rank.max(numerical_rank(dw.view(), RANK_RTOL));
        m.outside_block = m.outside_block.max(outside);
    }
    Ok(m)
}

/// The largest |output − base output| of a SingLoRA layer before any step, with the ramp `ramp`.
fn start_difference(n: usize, rank: usize, ramp: Ramp) -> Result<f64> {
    let w0: Array2<f64> = normal_matrix(&mut SeedRng::new(0, "verify.w0"), n, n, 1.0);
    let x: Array2<f64> = normal_matrix(&mut SeedRng::new(0, "verify.x"), 8, n, 1.0);
    let mut cfg = AdapterConfig::new(Method::Singlora).rank_alpha(rank, rank as f64);
    cfg.ramp = ramp;
    let layer = AdaptedLinear::new(w0, &cfg, 0)?;
    let base = layer.base_forward(x.view());
    let out = layer.forward(x.view(), ramp.u(0));
    let scale = base.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let diff = (&out - &base).iter().fold(0.0f64, |a, v| a.max(v.abs()));
    Ok(if ramp.steps > 0 { diff } else { diff / scale })
}

/// Measures C1 on square (n × n), tall (n → 2n) and wide (2n → n) SingLoRA layers at `rank`, over `seeds`; `fits` are
/// the synthetic study's fits at the target's rank.
pub fn measure(
    n: usize,
    rank: usize,
    seeds: &[u64],
    fits: Vec<SyntheticResult>,
) -> Result<SymmetryMeasurements> {
    let shapes = [(n, n), (n, 2 * n), (2 * n, n)]
        .iter()
        .map(|&(i, o)| shape_symmetry(i, o, rank, seeds))
        .collect::<Result<Vec<_>>>()?;
    Ok(SymmetryMeasurements {
        rank,
        shapes,
        ramp_start: start_difference(
            n,
            rank,
            Ramp {
                steps: 10,
                u_min: 0.0,
            },
        )?,
        no_ramp_start: start_difference(n, rank, Ramp::default())?,
        fits,
    })
}

/// The median over seeds of final/base loss of `method` on `target`, if there are such fits.
pub fn median_ratio(fits: &[SyntheticResult], target: &str, method: &str) -> Option<f64> {
    let v: Vec<f64> = fits
        .iter()
        .filter(|f| f.target == target && f.method == method)
        .map(SyntheticResult::ratio_to_base)
        .collect();
    (!v.is_empty()).then(|| median(&v))
}

/// C1's verdict. Core: square updates are symmetric and PSD to round-off; rank ≤ r; with a ramp the layer starts at
/// the base exactly; training reaches the PSD target and not the NSD one; on non-square layers the paired k×k block is
/// symmetric PSD. Condition: the whole update is symmetric, i.e. nothing of a non-square update lies outside that
/// block (the truncation rule does not promise it: the measured share says how far it is from holding).
pub fn judge(m: &SymmetryMeasurements) -> ClaimResult {
    let worst = Worst::of(m);
    ClaimResult::new(
        Claim::C1,
        checks(m, &worst),
        numbers(m, &worst),
        setting(m.rank),
    )
}

/// The worst of C1's measurements: over the square shapes, and over the non-square ones (their paired block).
#[derive(Clone, Copy)]
struct Worst {
    /// Largest relative asymmetry of a square ΔW.
    asym: f64,
    /// Smallest λ_min/max|λ| of a square ΔW.
    min_eig: f64,
    /// Largest relative asymmetry of a non-square layer's paired block.
    block_asym: f64,
    /// Smallest λ_min/max|λ| of that block.
    block_min_eig: f64,
    /// Largest share of ‖ΔW‖_F outside the block.
    outside: f64,
    /// Largest numerical rank of any ΔW.
    max_rank: usize,
}

impl Worst {
    fn of(m: &SymmetryMeasurements) -> Self {
        let (square, other): (Vec<&ShapeSymmetry>, Vec<&ShapeSymmetry>) =
            m.shapes.iter().partition(|s| s.d_in == s.d_out);
        let max = |v: &[&ShapeSymmetry], f: fn(&ShapeSymmetry) -> f64| {
            v.iter().map(|s| f(s)).fold(f64::NAN, f64::max)
        };
        let min = |v: &[&ShapeSymmetry], f: fn(&ShapeSymmetry) -> f64| {
            v.iter().map(|s| f(s)).fold(f64::NAN, f64::min)
        };
        Self {
            asym: max(&square, |s| s.asymmetry),
            min_eig: min(&square, |s| s.min_eigenvalue),
            block_asym: max(&other, |s| s.asymmetry),
            block_min_eig: min(&other, |s| s.min_eigenvalue),
            outside: max(&other, |s| s.outside_block),
            max_rank: m.shapes.iter().map(|s| s.rank).max().unwrap_or(0),
        }
    }
}

/// C1's checks (see [`judge`]).
fn checks(m: &SymmetryMeasurements, w: &Worst) -> Vec<Check> {
    let Worst {
        asym,
        min_eig,
        block_asym,
        block_min_eig,
        outside,
        max_rank,
    } = *w;
    let has_square = m.shapes.iter().any(|s| s.d_in == s.d_out);
    let has_other = m.shapes.iter().any(|s| s.d_in != s.d_out);
    let psd = median_ratio(&m.fits, "psd", "singlora");
    let nsd = median_ratio(&m.fits, "nsd", "singlora");
    let cone = match (psd, nsd) {
        (Some(p), Some(q)) => Outcome::of(p <= FITS && q >= UNREACHED),
        _ => Outcome::Unclear,
    };
    vec![
        Check::core(
            format!("square ΔW is symmetric and PSD to round-off: ‖ΔW − ΔWᵀ‖_F ≤ {ROUND_OFF:e}·‖ΔW‖_F (measured {asym:.1e}) and λ_min ≥ −{ROUND_OFF:e}·max|λ| (measured {min_eig:+.1e})"),
            Outcome::of(has_square && asym <= ROUND_OFF && min_eig >= -ROUND_OFF),
        ),
        Check::core(
            format!("rank ΔW ≤ r = {} (singular values above {RANK_RTOL:e}·σ_max; measured {max_rank})", m.rank),
            Outcome::of(!m.shapes.is_empty() && max_rank <= m.rank),
        ),
        Check::core(
            format!("with a ramp (T = 10) the layer's output at t = 0 equals the base output exactly (max |difference| = {:e})", m.ramp_start),
            Outcome::of(m.ramp_start == 0.0),
        ),
        Check::core(
            format!("training reaches the PSD cone and nothing outside it: SingLoRA's final/base loss ≤ {FITS:e} on the PSD target (median {}) and ≥ {UNREACHED} on the NSD one (median {})", fmt_opt(psd), fmt_opt(nsd)),
            cone,
        ),
        Check::core(
            format!("on non-square layers (n → 2n, 2n → n) the k×k block the truncation rule pairs is symmetric and PSD to round-off (asymmetry {block_asym:.1e}, λ_min/max|λ| {block_min_eig:+.1e})"),
            Outcome::of(has_other && block_asym <= ROUND_OFF && block_min_eig >= -ROUND_OFF),
        ),
        Check::condition(
            format!("the update is symmetric as a whole, which on a non-square layer needs nothing outside that block: share of ‖ΔW‖_F outside it ≤ {ROUND_OFF:e} (measured {outside:.2}; the truncation rule leaves the other rows free, THEORY §1.3, so this holds only for square layers)"),
            Outcome::of(has_other && outside <= ROUND_OFF),
        ),
    ]
}

/// C1's numbers: the worst measurements and the synthetic fits' median loss ratios.
fn numbers(m: &SymmetryMeasurements, w: &Worst) -> Vec<Number> {
    let Worst {
        asym,
        min_eig,
        outside,
        ..
    } = *w;
    let mut numbers = vec![
        Number::new("square asymmetry", format!("{asym:.1e}")),
        Number::new("square λ_min/max|λ|", format!("{min_eig:+.1e}")),
        Number::new(
            "non-square share outside the PSD block",
            format!("{outside:.2}"),
        ),
        Number::new(
            "start with ramp, max |Δ output|",
            format!("{:e}", m.ramp_start),
        ),
        Number::new(
            "start without ramp (T = 0), max |Δ output| / max |base|",
            format!("{:.2}", m.no_ramp_start),
        ),
    ];
    for target in ["psd", "nsd", "asymmetric"] {
        for method in ["lora", "singlora"] {
            if let Some(r) = median_ratio(&m.fits, target, method) {
                numbers.push(Number::new(
                    format!("{method} final/base loss, {target} target"),
                    format!("{r:.2e}"),
                ));
            }
        }
    }
    numbers
}

/// What C1 measured on.
fn setting(rank: usize) -> String {
    format!(
        "SingLoRA layers at rank {rank} with a random width-aware A: square, tall (n → 2n) and wide (2n → n), several seeds; the output before the first step with and without a ramp; and the synthetic experiment (THEORY §6.1): one square layer fitted by Adam to PSD (+CCᵀ), NSD (−CCᵀ) and asymmetric (CDᵀ) shifts of its base, loss reported relative to the base layer's (ΔW = 0)."
    )
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("none".into(), |x| format!("{x:.2e}"))
}

/// SingLoRA "reaches" a score change when its error on the centred subspace, $\|P(\Delta M - \Delta M^*)P\|_F /
/// \|P\Delta M^*P\|_F$, is below this: the achieved change is nearer the target than half the target's size (a student
/// whose scores did not move has error 1).
pub const SCORE_REACHED: f64 = 0.5;

/// A score change counts as asymmetric when its skew fraction $\|\mathrm{skew}(P\Delta MP)\|_F/\|P\Delta MP\|_F$ is
/// above this share of the target's: a symmetric change has 0, the targets about $1/\sqrt2$ (a generic matrix's).
pub const SKEW_SHARE: f64 = 0.5;

/// "Within LoRA's reach": final/initial losses at most this many decades apart (a factor 10).
pub const DECADES: f64 = 1.0;

/// C1's attention measurement (`studies::attention`): one head, q and k adapted, fitted to a teacher whose score
/// matrix $M = W_Q^\top W_K$ changes asymmetrically; the settings and every (target, student, seed) fit.
#[derive(Clone, Debug)]
pub struct AttentionMeasurements {
    /// The settings the fits ran at.
    pub config: AttentionConfig,
    /// Every fit.
    pub fits: Vec<ScoreFit>,
}

/// `f` of the fits of `student` on `target`, in seed order.
fn per_seed(
    a: &AttentionMeasurements,
    target: ScoreTarget,
    student: &str,
    f: fn(&ScoreFit) -> f64,
) -> Vec<f64> {
    let mut v: Vec<&ScoreFit> = a
        .fits
        .iter()
        .filter(|x| x.target == target && x.student == student)
        .collect();
    v.sort_by_key(|x| x.seed);
    v.into_iter().map(f).collect()
}

fn mean(v: &[f64]) -> Estimate {
    Estimate::mean_of(v).unwrap_or(Estimate::missing())
}

fn log_ratio(f: &ScoreFit) -> f64 {
    (f.final_loss / f.initial_loss).log10()
}

/// Per seed (same teacher, base and data) log₁₀ of `a`'s final/initial loss over `b`'s on `target`: mean and interval.
pub fn decades_apart(m: &AttentionMeasurements, target: ScoreTarget, a: &str, b: &str) -> Estimate {
    let (x, y) = (
        per_seed(m, target, a, log_ratio),
        per_seed(m, target, b, log_ratio),
    );
    let d: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p - q).collect();
    mean(&d)
}

/// C1's attention checks. Core: on psd-qk (W_Q, W_K changed by rank-r PSD matrices, so the score change is
/// asymmetric yet inside SingLoRA's family exactly, at A_Q = U, A_K = V) SingLoRA at rank r reaches the target's score
/// change (error below [`SCORE_REACHED`]) and that change is asymmetric (skew above [`SKEW_SHARE`] of the target's).
/// It is core because the claim's update, s·AAᵀ on each map, contains this target, so the claim predicts it is
/// reached, as the core check on the synthetic PSD target does for one layer; and it is the measured answer to what
/// the per-map symmetry means for attention. Condition: at LoRA's parameter count (SingLoRA 2r against LoRA r) it fits
/// lowrank-q (W_Q + UVᵀ, outside its family) within [`DECADES`] of LoRA's final/initial loss. It is a condition because
/// C1 promises a symmetric update, not LoRA's reach: the check says how far the symmetric family extends on attention.
pub fn attention_checks(m: &AttentionMeasurements) -> Vec<Check> {
    let psd = ScoreTarget::PsdQK;
    let error = mean(&per_seed(m, psd, "singlora", |f| f.score_error));
    let skew = mean(&per_seed(m, psd, "singlora", |f| f.skew / f.target_skew));
    let apart = decades_apart(m, ScoreTarget::LowRankQ, "singlora-2r", "lora");
    vec![
        Check::core(
            format!("attention: SingLoRA on q and k reaches an asymmetric score change inside its family: on psd-qk its score error ‖P(ΔM − ΔM*)P‖_F/‖PΔM*P‖_F = {} lies below {SCORE_REACHED} (an unmoved student has 1) and its skew fraction over the target's, {}, lies above {SKEW_SHARE} (a symmetric change has 0)", error.text(3), skew.text(3)),
            error.below(SCORE_REACHED).and(skew.exceeds(SKEW_SHARE)),
        ),
        Check::condition(
            format!("attention, outside its family: at LoRA's parameter count SingLoRA (rank 2r) fits lowrank-q (W_Q + UVᵀ, a change LoRA on q expresses) within a factor 10 of LoRA (rank r): per seed log₁₀(SingLoRA's final/initial loss ÷ LoRA's) = {} not above {DECADES}", apart.text(2)),
            apart.exceeds(DECADES).not(),
        ),
    ]
}

/// A ratio from the estimate of its log₁₀: the geometric mean over seeds `10^m [10^lo, 10^hi]`.
fn geometric(e: &Estimate) -> String {
    let p = |x: f64| 10f64.powf(x);
    if e.has_interval() {
        format!("{:.1e} [{:.1e}, {:.1e}]", p(e.value), p(e.lo), p(e.hi))
    } else {
        format!("{:.1e}", p(e.value))
    }
}

/// One number per (target, student): final/initial loss (geometric mean over seeds, the interval on its log), score
/// error, skew fraction against the target's.
pub fn attention_numbers(m: &AttentionMeasurements) -> Vec<Number> {
    let mut out = Vec::new();
    for target in ScoreTarget::ALL {
        for student in STUDENTS.map(|s| s.to_string()) {
            let loss = per_seed(m, target, &student, log_ratio);
            if loss.is_empty() {
                continue;
            }
            let error = mean(&per_seed(m, target, &student, |f| f.score_error));
            let skew = mean(&per_seed(m, target, &student, |f| f.skew));
            let target_skew = mean(&per_seed(m, target, &student, |f| f.target_skew));
            out.push(Number::new(
                format!("attention {target} {student}"),
                format!(
                    "final/initial loss {}; score error {}; skew {} (target {:.3})",
                    geometric(&mean(&loss)),
                    error.text(3),
                    skew.text(3),
                    target_skew.value
                ),
            ));
        }
    }
    out
}

/// `r` (C1's result) with the attention checks and numbers and its verdict recomputed.
pub fn with_attention(r: ClaimResult, m: &AttentionMeasurements) -> ClaimResult {
    let c = &m.config;
    let setting = format!(
        "{} Attention (`singlora attention`): one pre-LayerNorm block with one head of size n = {} (vocabulary n, T = {}), whose teacher changes W_Q by UVᵀ (lowrank-q) or W_Q, W_K by UUᵀ, VVᵀ (psd-qk; U, V of rank {}); students adapt q and k only and fit the teacher's outputs by MSE ({} sequences, Adam at {}, {} steps, seeds {:?}); score error and skew are measured on the centred subspace P = I − 11ᵀ/n that LayerNorm's outputs span.",
        r.setting, c.width, c.seq_len, c.rank, c.examples, c.lr, c.steps, c.seeds
    );
    r.with_more(
        attention_checks(m),
        attention_numbers(m),
        setting,
        Vec::new(),
    )
}
