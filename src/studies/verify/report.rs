//! What `singlora verify` prints and writes: the verdict table, `verdicts.csv` (one row per claim) and `report.md`
//! (the table, the figures, a paragraph per claim with the rules behind its verdict and their tolerances, the studies
//! with the commands that reproduce them, the crate version and git commit).

use std::fmt::Write as _;
use std::path::Path;

use super::plan::Measured;
use super::{Check, Claim, ClaimResult, Role};
use crate::error::Result;
use crate::io::write_atomic;
use crate::studies::engine::git_commit;
use crate::studies::report::loss::loss_summary;

/// How many of a claim's numbers the terminal table shows.
const SHOWN: usize = 3;

/// Parts of the verification this version does not measure, whatever the claims asked for.
pub const NOT_MEASURED: [&str; 2] = [
    "C3–C5 on transformer blocks under SGD and with the Kaiming-r init: the transformer sweep is Adam with the width-aware init only (SGD and Kaiming-r are measured on the MLP)",
    "the paper's LLaMA-7B, RoBERTa, GPT-2 and DreamBooth experiments (C6, C7): outside what a CPU laboratory can run; C6 and C7 are judged on their CPU analogues",
];

/// The verdict words, as the report defines them.
pub const VERDICT_WORDS: &str = "- **holds**: every check passes.\n- **holds under conditions**: every core check (what the claim says) passes and some condition (how far it extends) fails; the claim holds where the passing checks reach.\n- **does not hold**: a core check fails.\n- **inconclusive**: a check that would decide the verdict is unclear: its interval straddles the rule's threshold, or there is no interval.\n\nA check's outcome is pass, fail or unclear, or **not testable here** when it rests on a width exponent whose predicted regime the sweep does not reach (the leading terms of the theory's power count do not yet lead: their reach ratio, η₀·t·n^gap for one order, is below 10 at the smallest fitted width); such a check counts neither for nor against the claim. Intervals are 95% Student-t intervals over seeds (a seed fixes the data and every random draw of its runs). A width exponent is *consistent with* a value when the value lies in its interval widened by the study's flatness tolerance τ = 0.12 (`near` in `fits.csv`); *above* or *below* a threshold means the whole interval is. Every word the tables print (`flat`, `near`, `agree`, `not testable here`, `partial`, …) is defined in the tool's docs/CSV.md, section \"Vocabulary\".";

fn checks_text(checks: &[Check], sep: &str) -> String {
    checks
        .iter()
        .map(|c| {
            let role = match c.role {
                Role::Core => "core",
                Role::Condition => "condition",
            };
            format!("[{role}, {}] {}", c.outcome, c.rule)
        })
        .collect::<Vec<_>>()
        .join(sep)
}

fn numbers_text(r: &ClaimResult, k: usize) -> String {
    r.numbers
        .iter()
        .take(k)
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The terminal table: claim, verdict, the first numbers behind it, the first figure; then, per claim, the checks
/// that did not pass.
pub fn table(m: &Measured) -> String {
    let mut s = format!(
        "singlora verify ({} preset): {} claim(s); verdicts from stated rules on the measurements (report.md has every rule)\n",
        m.preset,
        m.results.len()
    );
    let _ = writeln!(
        s,
        "{:<5} {:<23} {:<40}  figure",
        "claim", "verdict", "the numbers behind it"
    );
    for r in &m.results {
        let fig = r.figures.first().map_or("—", |f| f.as_str());
        let _ = writeln!(
            s,
            "{:<5} {:<23} {}  {fig}",
            r.claim.name(),
            r.verdict.name(),
            numbers_text(r, SHOWN)
        );
    }
    for r in &m.results {
        let open: Vec<&Check> = r
            .checks
            .iter()
            .filter(|c| c.outcome != super::Outcome::Pass)
            .collect();
        if !open.is_empty() {
            let owned: Vec<Check> = open.into_iter().cloned().collect();
            let _ = writeln!(
                s,
                "{} {}: {}",
                r.claim,
                r.verdict,
                checks_text(&owned, "; ")
            );
        }
    }
    s
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn field(v: &str) -> String {
    if v.contains([',', '"', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// `verdicts.csv`: `claim,verdict,statement,numbers,checks,figures`, one row per claim (numbers and checks joined
/// by ` | `).
pub fn verdicts_csv(m: &Measured) -> String {
    let mut s = String::from("claim,verdict,statement,numbers,checks,figures\n");
    for r in &m.results {
        let numbers: Vec<String> = r.numbers.iter().map(|n| n.to_string()).collect();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{}",
            r.claim,
            r.verdict,
            field(r.claim.statement()),
            field(&numbers.join(" | ")),
            field(&checks_text(&r.checks, " | ")),
            field(&r.figures.join(" | "))
        );
    }
    s
}

fn claim_section(s: &mut String, r: &ClaimResult, out: &Path) {
    let _ = writeln!(s, "\n## {}: {}\n", r.claim, r.claim.statement());
    let _ = writeln!(s, "Verdict: **{}**.\n\n{}\n", r.verdict, r.setting);
    let _ = writeln!(s, "Rules:\n");
    for c in &r.checks {
        let role = match c.role {
            Role::Core => "core",
            Role::Condition => "condition",
        };
        let _ = writeln!(s, "- {role}, **{}**: {}", c.outcome, c.rule);
    }
    let _ = writeln!(s, "\nNumbers:\n");
    for n in &r.numbers {
        let _ = writeln!(s, "- {}: {}", n.label, n.text);
    }
    for f in &r.figures {
        if out.join(f).exists() {
            let _ = writeln!(s, "\n![{}]({f})", r.claim);
        } else {
            let _ = writeln!(s, "\n(figure {f} not drawn)");
        }
    }
}

/// Per sweep, the final loss against width (`report::loss`).
fn loss_section(s: &mut String, m: &Measured) {
    if m.sweeps.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Final loss against width\n");
    let _ = writeln!(s, "The width exponent of each series' final training and held-out loss (`loss`, `test_loss` in the sweep's `fits.csv`; 0: the same loss at every width), with the loss at the smallest and largest width. No verdict rests on it; it says whether training itself is width-invariant.");
    for sw in &m.sweeps {
        let table = loss_summary(&sw.cfg, &sw.grouped, &sw.fits);
        if !table.is_empty() {
            let _ = writeln!(s, "\n### {}\n\n```\n{}```", sw.plan.folder, table);
        }
    }
}

fn studies_section(s: &mut String, m: &Measured) {
    let _ = writeln!(s, "\n## Studies\n");
    let _ = writeln!(s, "Each study's full configuration is in `<study>/config.toml`, its runs in `<study>/runs/`, its tables and `manifest.json` beside them; running `singlora verify` again resumes every study, and the command shown runs the same study on its own.\n");
    let _ = writeln!(
        s,
        "| study | runs | computed now | seconds | command |\n|---|---|---|---|---|"
    );
    for st in &m.studies {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {} |",
            st.folder,
            st.runs,
            st.computed,
            st.seconds,
            st.command
                .as_deref()
                .map_or("—".into(), |c| format!("`{c}`"))
        );
    }
}

/// `report.md` (see the module doc).
pub fn report_md(m: &Measured, out: &Path) -> String {
    let mut s = format!("# singlora verify: {} preset\n\n", m.preset);
    let _ = writeln!(
        s,
        "singlora {}, git commit {}. Every verdict below is computed by the stated rules from this run's measurements; nothing is typed in. The verdicts are about the settings measured here (CPU-sized MLPs and single layers, described per claim), not about the paper's own experiments.\n",
        env!("CARGO_PKG_VERSION"),
        git_commit().unwrap_or_else(|| "unknown".into())
    );
    let _ = writeln!(
        s,
        "| claim | verdict | the numbers behind it | figure |\n|---|---|---|---|"
    );
    for r in &m.results {
        let fig = r
            .figures
            .first()
            .map_or("—".to_string(), |f| format!("[{f}]({f})"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {fig} |",
            r.claim,
            r.verdict,
            numbers_text(r, SHOWN)
        );
    }
    let _ = writeln!(s, "\n## How verdicts are computed\n\n{VERDICT_WORDS}");
    for r in &m.results {
        claim_section(&mut s, r, out);
    }
    let _ = writeln!(s, "\n## Not measured by this version\n");
    for n in NOT_MEASURED {
        let _ = writeln!(s, "- {n}");
    }
    let asked: Vec<Claim> = m.results.iter().map(|r| r.claim).collect();
    let skipped: Vec<&str> = Claim::ALL
        .iter()
        .filter(|c| !asked.contains(c))
        .map(|c| c.name())
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(
            s,
            "- not run in this invocation (`--claims`): {}",
            skipped.join(", ")
        );
    }
    loss_section(&mut s, m);
    studies_section(&mut s, m);
    s
}

/// Writes `verdicts.csv` and `report.md` into `out`.
pub fn write(m: &Measured, out: &Path) -> Result<()> {
    write_atomic(&out.join("verdicts.csv"), verdicts_csv(m).as_bytes())?;
    write_atomic(&out.join("report.md"), report_md(m, out).as_bytes())
}
