//! `singlora verify`: measured verdicts on the SingLoRA paper's claims C1–C9 (THEORY §0).
//!
//! Each claim has one module that declares what it measures and a pure `judge(measurements) -> ClaimResult`:
//! - [`counts`]: C2, trainable parameters per model and layer set (THEORY §1.4);
//! - [`symmetry`]: C1, the symmetric PSD update, its exact start with a ramp, and the cone it can reach (§1.1, §6.1);
//! - [`invariance`]: C9, trajectories from $A_0$ and $A_0U$ (§4.2), and LoRA's scale gauge that C3 reads;
//! - [`width`]: C3, C4 and C5 from width sweeps' fitted exponents (§5.2, §5.5, P1–P10);
//! - [`maps`]: the same claims on transformer blocks, judged map by map against each map's shape family;
//! - [`sensitivity`]: C6 from the learning-rate study (§6.2);
//! - [`budget`]: C7, SingLoRA at rank 2r against LoRA at rank r on every target symmetry (§6.1);
//! - [`compose`]: C8, SingLoRA+DoRA against DoRA and SingLoRA, and SingLoRA's LoRA+-style role split (THEORY O10)
//!   against SingLoRA, each at its own best rate.
//!
//! The studies behind them ([`plan`]) are ordinary `sweep`, `lr` and synthetic studies run by the study engine into
//! `OUT/<study>/`, so a second run resumes and claims that share a study share its runs. [`report`] writes the table,
//! `verdicts.csv` and `report.md`; [`shard`] splits the studies over processes (`--shard I/N`) and gathers them back.
//!
//! **How a verdict is computed.** A claim is judged by checks, each a stated rule on measured numbers with its
//! tolerance, whose outcome is `pass`, `fail` or `unclear` (the interval straddles the rule's threshold, or there is
//! no interval). Checks are *core* (what the claim says) or *conditions* (how far it extends). The verdict is
//! ([`verdict_of`]): `does not hold` if a core check fails; `inconclusive` if a core check is unclear; otherwise
//! `holds under conditions` if a condition fails; `inconclusive` if a condition is unclear; else `holds`. A check on
//! a fit whose predicted regime the study does not reach is `not testable here` and counts neither way. Nothing is
//! typed in: a measurement that falls the other way changes the verdict (`tests/verify.rs`).

pub mod budget;
pub mod compose;
pub mod counts;
pub mod invariance;
pub mod maps;
pub mod plan;
pub mod report;
pub mod sensitivity;
pub mod shard;
pub mod symmetry;
pub mod width;

use std::fmt;

use crate::names::named_enum;
use crate::studies::fit::{t_quantile, Slope};

/// A claim of the paper (THEORY §0.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Claim {
    /// The update is symmetric, ΔW = (α/r)·u(t)·AAᵀ, and starts at the pre-trained model.
    C1,
    /// About half of LoRA's parameters; about 60% on LLaMA-7B-shaped blocks.
    C2,
    /// One matrix removes the scale conflict between LoRA's factors.
    C3,
    /// Stable feature learning as width grows, with one learning rate.
    C4,
    /// The stability holds for SGD and Adam.
    C5,
    /// Lower learning-rate sensitivity.
    C6,
    /// Equal or better results with fewer parameters.
    C7,
    /// Composes with DoRA (and LoRA+).
    C8,
    /// Transformation invariance under A ↦ AU.
    C9,
}

impl Claim {
    /// Every claim, in order.
    pub const ALL: [Claim; 9] = [
        Claim::C1,
        Claim::C2,
        Claim::C3,
        Claim::C4,
        Claim::C5,
        Claim::C6,
        Claim::C7,
        Claim::C8,
        Claim::C9,
    ];

    /// The label (`C1` …).
    pub fn name(self) -> &'static str {
        match self {
            Claim::C1 => "C1",
            Claim::C2 => "C2",
            Claim::C3 => "C3",
            Claim::C4 => "C4",
            Claim::C5 => "C5",
            Claim::C6 => "C6",
            Claim::C7 => "C7",
            Claim::C8 => "C8",
            Claim::C9 => "C9",
        }
    }

    /// The claim in a few words (THEORY §0.1, paraphrased).
    pub fn statement(self) -> &'static str {
        match self {
            Claim::C1 => "the update is symmetric PSD, ΔW = (α/r)·u(t)·AAᵀ, and with the ramp the model starts at the pre-trained one",
            Claim::C2 => "about half of LoRA's trainable parameters (exactly half for square layers), about 60% on LLaMA-7B-shaped blocks",
            Claim::C3 => "one matrix removes the scale conflict between LoRA's two factors",
            Claim::C4 => "stable feature learning as width grows, with one learning rate and no tuned ratio",
            Claim::C5 => "that stability holds for standard optimisers, SGD and Adam",
            Claim::C6 => "lower sensitivity to the learning rate than LoRA",
            Claim::C7 => "equal or better results with the same or fewer parameters",
            Claim::C8 => "composes with DoRA",
            Claim::C9 => "transformation invariance: A₀ and A₀U (U orthogonal) follow the same dynamics",
        }
    }
}

named_enum!(Claim, "--claims", all = Claim::ALL);

/// A claim's verdict, computed from its checks by [`verdict_of`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passes.
    Holds,
    /// The core checks pass and some condition fails: the claim holds only where the passing checks reach.
    HoldsUnderConditions,
    /// A core check fails.
    DoesNotHold,
    /// A check that decides the verdict is unclear.
    Inconclusive,
}

impl Verdict {
    /// The spelling in tables.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::HoldsUnderConditions => "holds under conditions",
            Verdict::DoesNotHold => "does not hold",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

named_enum!(
    Verdict,
    "verdict",
    [
        Verdict::Holds,
        Verdict::HoldsUnderConditions,
        Verdict::DoesNotHold,
        Verdict::Inconclusive
    ]
);

/// How much to measure: `quick` (CI, a few minutes on 2 cores) or `full` (the report, under 30 minutes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Small widths, few steps, the seeds a verdict needs.
    Quick,
    /// Wider ranges, more seeds and steps.
    Full,
}

impl Preset {
    /// The spelling on the command line and in folder names.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Quick => "quick",
            Preset::Full => "full",
        }
    }
}

named_enum!(Preset, "preset", [Preset::Quick, Preset::Full]);

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The rule is satisfied.
    Pass,
    /// The rule is violated.
    Fail,
    /// The measurement cannot decide (an interval straddles the threshold, or there is none).
    Unclear,
    /// The rule rests on a fit whose predicted regime the study does not reach (its reach ratio is below
    /// `theory::REACHED` at the smallest fitted width): the check counts neither for nor against the claim.
    NotTestable,
}

impl Outcome {
    /// The spelling in tables.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Unclear => "unclear",
            Outcome::NotTestable => "not testable here",
        }
    }

    /// Both rules: fail if either fails, else unclear if either is unclear, else pass; a rule that is not testable
    /// here drops out (the other decides; not testable if both are).
    pub fn and(self, other: Outcome) -> Outcome {
        match (self, other) {
            (Outcome::Fail, _) | (_, Outcome::Fail) => Outcome::Fail,
            (Outcome::Unclear, _) | (_, Outcome::Unclear) => Outcome::Unclear,
            (Outcome::NotTestable, Outcome::NotTestable) => Outcome::NotTestable,
            _ => Outcome::Pass,
        }
    }

    /// Either rule: pass if either passes, else unclear if either is unclear, else fail.
    pub fn or(self, other: Outcome) -> Outcome {
        !(!self).and(!other)
    }

    /// `Pass` if `ok`, else `Fail`.
    pub fn of(ok: bool) -> Outcome {
        if ok {
            Outcome::Pass
        } else {
            Outcome::Fail
        }
    }

    /// The outcome of a difference `d` between two trajectories that should agree: pass if `d ≤ same`, fail if
    /// `d ≥ different`, unclear in between (and for a non-finite `d`).
    pub fn of_difference(d: f64, same: f64, different: f64) -> Outcome {
        if d <= same {
            Outcome::Pass
        } else if d >= different {
            Outcome::Fail
        } else {
            Outcome::Unclear
        }
    }
}

impl std::ops::Not for Outcome {
    type Output = Outcome;

    /// Pass ↔ fail (unclear and not testable stay as they are): the outcome of the opposite rule.
    fn not(self) -> Outcome {
        match self {
            Outcome::Pass => Outcome::Fail,
            Outcome::Fail => Outcome::Pass,
            o => o,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a check is what the claim says (core) or how far it extends (a condition).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// What the claim says: failing it means the claim does not hold.
    Core,
    /// A condition: failing it limits the claim to where the other checks reach.
    Condition,
}

/// One stated rule applied to measured numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// The rule in words, with its tolerance and the numbers it was applied to.
    pub rule: String,
    /// Its outcome.
    pub outcome: Outcome,
    /// Core or condition.
    pub role: Role,
}

impl Check {
    /// A core check.
    pub fn core(rule: impl Into<String>, outcome: Outcome) -> Check {
        Check {
            rule: rule.into(),
            outcome,
            role: Role::Core,
        }
    }

    /// A condition.
    pub fn condition(rule: impl Into<String>, outcome: Outcome) -> Check {
        Check {
            rule: rule.into(),
            outcome,
            role: Role::Condition,
        }
    }
}

/// The verdict of a set of checks (see the module doc): a failing core check → `does not hold`; an unclear core
/// check → `inconclusive`; otherwise a failing condition → `holds under conditions`; an unclear condition →
/// `inconclusive`; else `holds`. A check that is `not testable here` is ignored.
pub fn verdict_of(checks: &[Check]) -> Verdict {
    let any = |role: Role, o: Outcome| checks.iter().any(|c| c.role == role && c.outcome == o);
    if any(Role::Core, Outcome::Fail) {
        Verdict::DoesNotHold
    } else if any(Role::Core, Outcome::Unclear) {
        Verdict::Inconclusive
    } else if any(Role::Condition, Outcome::Fail) {
        Verdict::HoldsUnderConditions
    } else if any(Role::Condition, Outcome::Unclear) {
        Verdict::Inconclusive
    } else {
        Verdict::Holds
    }
}

/// A measured value with its 95% interval: Student's t over `n` independent values (seeds), or none (`n` < 2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// The point estimate.
    pub value: f64,
    /// Lower end of the 95% interval (NaN without one).
    pub lo: f64,
    /// Upper end (NaN without one).
    pub hi: f64,
    /// How many independent values it rests on.
    pub n: usize,
    /// Whether a rule may judge it: false for a fit whose predicted regime the study does not reach (every rule on
    /// it is then `not testable here`).
    pub testable: bool,
}

impl Estimate {
    /// An estimate with a given interval.
    pub fn new(value: f64, lo: f64, hi: f64, n: usize) -> Estimate {
        Estimate {
            value,
            lo,
            hi,
            n,
            testable: true,
        }
    }

    /// The same estimate, marked not testable here when `testable` is false (never un-marks).
    pub fn testable_if(mut self, testable: bool) -> Estimate {
        self.testable &= testable;
        self
    }

    /// An exact value (no sampling error: a count, a round-off difference): its interval is the value itself.
    pub fn exact(value: f64) -> Estimate {
        Estimate::new(value, value, value, usize::MAX)
    }

    /// A fitted width exponent: the mean of the seeds' slopes with its Student-t interval (`studies::fit`).
    pub fn of_slope(s: &Slope) -> Estimate {
        Estimate::new(s.slope, s.lo, s.hi, s.n_seeds)
    }

    /// The mean of the finite `values` with the 95% Student-t interval $\bar x \pm t_{0.975, k-1}\,s/\sqrt k$
    /// (exact coverage for i.i.d. normal values); `None` without a finite value.
    pub fn mean_of(values: &[f64]) -> Option<Estimate> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let k = v.len() as f64;
        let mean = v.iter().sum::<f64>() / k;
        if v.len() < 2 {
            return Some(Estimate::new(mean, f64::NAN, f64::NAN, 1));
        }
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt();
        let half = t_quantile(v.len() - 1) * sd / k.sqrt();
        Some(Estimate::new(mean, mean - half, mean + half, v.len()))
    }

    /// Whether there is an interval.
    pub fn has_interval(&self) -> bool {
        self.n >= 2 && self.lo.is_finite() && self.hi.is_finite()
    }

    /// Whether `x` is consistent with the estimate: pass if `x` lies in the interval widened by `tol` on each side
    /// (the `agree` or `near` of `fits.csv`), fail otherwise, unclear without an interval (every rule here is `not
    /// testable here` on an estimate that is not testable).
    pub fn consistent_with(&self, x: f64, tol: f64) -> Outcome {
        if !self.testable {
            return Outcome::NotTestable;
        }
        if !self.has_interval() {
            return Outcome::Unclear;
        }
        Outcome::of(x >= self.lo - tol && x <= self.hi + tol)
    }

    /// Whether the value exceeds `t`: pass if the whole interval lies above `t`, fail if it lies at or below `t`,
    /// unclear if it straddles `t` or there is no interval.
    pub fn exceeds(&self, t: f64) -> Outcome {
        if !self.testable {
            Outcome::NotTestable
        } else if !self.has_interval() {
            Outcome::Unclear
        } else if self.lo > t {
            Outcome::Pass
        } else if self.hi <= t {
            Outcome::Fail
        } else {
            Outcome::Unclear
        }
    }

    /// Whether the value lies below `t`: pass if the whole interval does, fail if it lies at or above `t`, unclear
    /// if it straddles `t` or there is no interval.
    pub fn below(&self, t: f64) -> Outcome {
        if !self.testable {
            Outcome::NotTestable
        } else if !self.has_interval() {
            Outcome::Unclear
        } else if self.hi < t {
            Outcome::Pass
        } else if self.lo >= t {
            Outcome::Fail
        } else {
            Outcome::Unclear
        }
    }

    /// No measurement (a fit that is missing): every rule on it is unclear.
    pub fn missing() -> Estimate {
        Estimate::new(f64::NAN, f64::NAN, f64::NAN, 0)
    }

    /// Whether the value lies within ±`tol` (flat): pass if the whole interval does, fail if it lies entirely
    /// outside, unclear otherwise.
    pub fn within(&self, tol: f64) -> Outcome {
        if !self.testable {
            Outcome::NotTestable
        } else if !self.has_interval() {
            Outcome::Unclear
        } else if self.lo >= -tol && self.hi <= tol {
            Outcome::Pass
        } else if self.lo > tol || self.hi < -tol {
            Outcome::Fail
        } else {
            Outcome::Unclear
        }
    }

    /// `value [lo, hi]` in scientific notation with `digits` decimals (for values spanning many decades).
    pub fn sci(&self, digits: usize) -> String {
        if self.value.is_nan() {
            "not measured".into()
        } else if self.has_interval() && self.n != usize::MAX {
            format!(
                "{:+.*e} [{:+.*e}, {:+.*e}]",
                digits, self.value, digits, self.lo, digits, self.hi
            )
        } else {
            format!("{:+.*e}", digits, self.value)
        }
    }

    /// `value [lo, hi]` with signed values at `digits` decimals, `value (no interval)`, or `not measured`; followed by
    /// `(regime not reached: not testable here)` when it is not testable.
    pub fn text(&self, digits: usize) -> String {
        let text = self.plain_text(digits);
        if self.testable {
            text
        } else {
            format!("{text} (regime not reached: not testable here)")
        }
    }

    fn plain_text(&self, digits: usize) -> String {
        if self.value.is_nan() {
            "not measured".into()
        } else if self.n == usize::MAX {
            format!("{:+.*}", digits, self.value)
        } else if self.has_interval() {
            format!(
                "{:+.*} [{:+.*}, {:+.*}]",
                digits, self.value, digits, self.lo, digits, self.hi
            )
        } else {
            format!("{:+.*} (no interval)", digits, self.value)
        }
    }
}

/// A number behind a verdict, as the table and `verdicts.csv` show it.
#[derive(Clone, Debug, PartialEq)]
pub struct Number {
    /// What it is.
    pub label: String,
    /// Its value and interval, formatted.
    pub text: String,
}

impl Number {
    /// A number from a label and its formatted value.
    pub fn new(label: impl Into<String>, text: impl Into<String>) -> Number {
        Number {
            label: label.into(),
            text: text.into(),
        }
    }

    /// An estimate at two decimals.
    pub fn estimate(label: impl Into<String>, e: &Estimate) -> Number {
        Number::new(label, e.text(2))
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.label, self.text)
    }
}

/// One number per name of `rows` (name, width, value): `n=64: v, n=128: v, …` with values at `digits` decimals,
/// labelled `name what`.
pub fn per_width(rows: &[(String, usize, f64)], what: &str, digits: usize) -> Vec<Number> {
    let mut names: Vec<&String> = rows.iter().map(|r| &r.0).collect();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let text: Vec<String> = rows
                .iter()
                .filter(|r| &r.0 == name)
                .map(|(_, n, v)| format!("n={n}: {v:.digits$}"))
                .collect();
            Number::new(format!("{name} {what}"), text.join(", "))
        })
        .collect()
}

/// What a claim's judge returns.
#[derive(Clone, Debug)]
pub struct ClaimResult {
    /// The claim.
    pub claim: Claim,
    /// The verdict, from [`verdict_of`] on `checks`.
    pub verdict: Verdict,
    /// The checks with their outcomes.
    pub checks: Vec<Check>,
    /// The numbers behind the verdict (values with intervals), the first few of which the table shows.
    pub numbers: Vec<Number>,
    /// What was measured, in which setting (one paragraph of the report).
    pub setting: String,
    /// Figures, as paths relative to the output folder.
    pub figures: Vec<String>,
}

impl ClaimResult {
    /// A result whose verdict is computed from `checks`.
    pub fn new(claim: Claim, checks: Vec<Check>, numbers: Vec<Number>, setting: String) -> Self {
        ClaimResult {
            claim,
            verdict: verdict_of(&checks),
            checks,
            numbers,
            setting,
            figures: Vec::new(),
        }
    }

    /// The same result with figures.
    pub fn with_figures(mut self, figures: &[&str]) -> Self {
        self.figures = figures.iter().map(|f| f.to_string()).collect();
        self
    }

    /// The same result with more checks, numbers and figures (a second study's part of the claim), `setting` in place
    /// of its setting, and its verdict recomputed from every check.
    pub fn with_more(
        mut self,
        checks: Vec<Check>,
        numbers: Vec<Number>,
        setting: String,
        figures: Vec<String>,
    ) -> Self {
        self.checks.extend(checks);
        self.numbers.extend(numbers);
        self.figures.extend(figures);
        self.setting = setting;
        self.verdict = verdict_of(&self.checks);
        self
    }
}

pub use plan::{run, Measured, VerifyOptions};
