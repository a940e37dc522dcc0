//! docs/CSV.md cannot rot: every CSV header the code writes (a string literal `"col,col,…\n"` anywhere in src/) is
//! documented there column by column in its order, and every enum spelling the tables print is defined there,
//! taken from the enums' own `Display`.

use std::path::Path;

use singlora::adapters::Method;
use singlora::probes::Quantity;
use singlora::studies::fit::{Agreement, Verdict as FitVerdict, INTERVAL_METHOD};
use singlora::studies::verify::{Outcome, Verdict};
use singlora::tasks::regression::ShiftKind;
use singlora::theory::Regime;

fn doc() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/CSV.md")).unwrap()
}

/// Every string literal of the form `"a,b,c\n"` (lower-case identifiers, at least three columns) in the .rs files
/// under `dir`.
fn headers(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            headers(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, _) in text.match_indices('"') {
                let rest = &text[i + 1..];
                let end = rest
                    .find(|c: char| {
                        !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ',')
                    })
                    .unwrap_or(0);
                let body = &rest[..end];
                if rest[end..].starts_with("\\n\"") && body.matches(',').count() >= 2 {
                    out.push(body.to_string());
                }
            }
        }
    }
}

/// The column lists of the doc's tables, per `## ` section: the first cell of every row `| \`col\` | …`.
fn documented(doc: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in doc.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            out.push((title.to_string(), Vec::new()));
        } else if let (Some(cell), Some(last)) = (line.strip_prefix("| `"), out.last_mut()) {
            let name = cell.split('`').next().unwrap();
            last.1.push(name.to_string());
        }
    }
    out
}

#[test]
fn every_header_the_code_writes_is_documented_column_by_column() {
    let mut found = Vec::new();
    headers(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    found.sort();
    found.dedup();
    // results, fits, five lr tables, three limit tables, synthetic, invariance, verdicts: the scan must see them.
    assert!(found.len() >= 13, "found only {found:?}");
    let sections = documented(&doc());
    for h in &found {
        let cols: Vec<String> = h.split(',').map(String::from).collect();
        assert!(
            sections.iter().any(|(_, c)| *c == cols),
            "docs/CSV.md documents no table with the columns {h}"
        );
    }
}

/// The backticked words of the doc's "Vocabulary" and "Quantities" sections and enum cells.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn section<'a>(doc: &'a str, title: &str) -> &'a str {
    let start = doc.find(&format!("## {title}")).unwrap();
    let rest = &doc[start + 3..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

#[test]
fn every_word_the_tables_print_is_defined() {
    let doc = doc();
    let vocab = backticked(section(&doc, "Vocabulary"));
    let words: Vec<String> = [
        FitVerdict::Grows,
        FitVerdict::Shrinks,
        FitVerdict::Flat,
        FitVerdict::Unclear,
        FitVerdict::NoInterval,
    ]
    .iter()
    .map(|v| v.to_string())
    .chain(
        [
            Agreement::Agree,
            Agreement::Near,
            Agreement::Disagree,
            Agreement::NotTestable,
        ]
        .iter()
        .map(|v| v.to_string()),
    )
    .chain(
        [Regime::Init, Regime::FirstStep, Regime::Balanced]
            .iter()
            .map(|r| r.name().to_string()),
    )
    .chain(
        [
            Verdict::Holds,
            Verdict::HoldsUnderConditions,
            Verdict::DoesNotHold,
            Verdict::Inconclusive,
        ]
        .iter()
        .map(|v| v.to_string()),
    )
    .chain(
        [
            Outcome::Pass,
            Outcome::Fail,
            Outcome::Unclear,
            Outcome::NotTestable,
        ]
        .iter()
        .map(|v| v.to_string()),
    )
    .chain([INTERVAL_METHOD.to_string(), "partial".to_string()])
    .collect();
    for w in &words {
        assert!(
            vocab.contains(&w.as_str()),
            "Vocabulary does not define `{w}`"
        );
    }
    let quantities = backticked(section(&doc, "Quantities"));
    for q in Quantity::all() {
        let s = q.to_string();
        let ok = match s.split_once('.') {
            Some((kind, tensor)) => {
                quantities.contains(&format!("{kind}.P").as_str()) && quantities.contains(&tensor)
            }
            None => quantities.contains(&s.as_str()),
        };
        assert!(ok, "Quantities does not list `{s}`");
    }
    let results = backticked(section(&doc, "results.csv"));
    for m in [
        Method::Full,
        Method::Lora,
        Method::Dora,
        Method::Singlora,
        Method::SingloraDora,
    ] {
        assert!(results.contains(&m.to_string().as_str()), "method `{m}`");
    }
    let synthetic = backticked(section(&doc, "synthetic.csv"));
    for t in [
        ShiftKind::Psd,
        ShiftKind::Nsd,
        ShiftKind::Asymmetric,
        ShiftKind::Random,
    ] {
        assert!(synthetic.contains(&t.name()), "target `{}`", t.name());
    }
}
