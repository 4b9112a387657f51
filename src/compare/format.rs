//! Output formats of a [`Comparison`]: aligned text, Markdown, CSV (long form).

use super::{Cell, Comparison, Verdict};
use crate::report::table::{Align, Table};

/// A number with 4 significant figures and a k/M suffix for large values.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e7 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The value cell: median, and `[lo–hi]` (its interval) when there are repetitions.
fn value_text(c: &Cell) -> String {
    match c {
        Cell::Missing => "—".into(),
        Cell::Skipped(_) => "skipped".into(),
        Cell::NoValue => "—".into(),
        Cell::Value { stats, .. } if stats.n > 1 => {
            format!(
                "{} [{}–{}]",
                num(stats.median),
                num(stats.lo),
                num(stats.hi)
            )
        }
        Cell::Value { stats, .. } => num(stats.median),
    }
}

/// The ratio cell: `×0.93 real`, `×0.93 ~` (not shown to differ) or `×0.93 n?`
/// (too few repetitions to tell).
fn ratio_text(c: &Cell) -> String {
    match c {
        Cell::Value {
            ratio: Some(r),
            verdict,
            ..
        } => format!(
            "×{r:.2} {}",
            match verdict {
                Some(Verdict::Real) => "real",
                Some(Verdict::NotShown) => "~",
                Some(Verdict::TooFewValues) | None => "n?",
            }
        ),
        _ => String::new(),
    }
}

/// Header and body as strings, shared by text and Markdown.
fn table(cmp: &Comparison) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header: Vec<String> = ["engine", "backlog", "mode", "metric"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (i, r) in cmp.runs.iter().enumerate() {
        header.push(r.label.clone());
        if i > 0 {
            header.push("ratio".into());
        }
    }
    let body = cmp
        .lines
        .iter()
        .map(|l| {
            let mut row = vec![
                l.key.engine.clone(),
                l.key.backlog.to_string(),
                l.key.mode.clone(),
                l.metric.clone(),
            ];
            for (i, c) in l.cells.iter().enumerate() {
                row.push(value_text(c));
                if i > 0 {
                    row.push(ratio_text(c));
                }
            }
            row
        })
        .collect();
    (header, body)
}

fn legend(cmp: &Comparison, bullet: &str) -> String {
    let mut s = String::new();
    for (i, r) in cmp.runs.iter().enumerate() {
        s.push_str(&format!(
            "{bullet}{}: {} (virtualised {}, {} CPUs{}){}\n",
            r.label,
            r.dir,
            r.virtualised,
            r.cpus,
            if r.incomplete { ", incomplete" } else { "" },
            if i == 0 {
                " — the reference for ratios"
            } else {
                ""
            }
        ));
    }
    s.push_str(&format!(
        "{bullet}values are medians over the ok repetitions (failed, interrupted and skipped runs \
         left out), [lo–hi] their confidence interval (order statistics, ≥95% from 6 repetitions, \
         [min–max] below); ratio = run / reference; real = an exact two-sided Mann–Whitney rank \
         test says the repetitions differ (p < 0.05), ~ = no difference shown, n? = too few \
         repetitions for the test to ever show one (e.g. 3 against 3)\n"
    ));
    s
}

/// Aligned text for a terminal.
pub fn text(cmp: &Comparison) -> String {
    let (header, body) = table(cmp);
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            std::iter::once(&header)
                .chain(&body)
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                let pad = w.saturating_sub(c.chars().count());
                // Text columns left-aligned, numbers right-aligned.
                if i == 0 || i == 2 || i == 3 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut s = legend(cmp, "");
    s.push_str(&cmp.machines.text(""));
    s.push('\n');
    s.push_str(&line(&header));
    for row in &body {
        s.push_str(&line(row));
    }
    s
}

/// A Markdown table, with the legend as a list above it.
pub fn markdown(cmp: &Comparison) -> String {
    let (header, body) = table(cmp);
    let mut s = legend(cmp, "- ");
    s.push_str(&cmp.machines.text("- "));
    s.push('\n');
    let head = header
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let align = if matches!(i, 0 | 2 | 3) {
                Align::Left
            } else {
                Align::Right
            };
            (h, align)
        })
        .collect();
    let mut t = Table::with_head(head);
    for row in body {
        t.row(row);
    }
    s.push_str(&t.render());
    s
}

/// CSV, one row per (engine, backlog, mode, metric, run): easy to load in scripts.
pub fn csv(cmp: &Comparison) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "engine", "backlog", "mode", "metric", "run", "run_dir", "status", "n", "median", "lo",
        "hi", "ci_level", "ratio", "verdict",
    ])?;
    for l in &cmp.lines {
        for (c, r) in l.cells.iter().zip(&cmp.runs) {
            let mut rec = vec![
                l.key.engine.clone(),
                l.key.backlog.to_string(),
                l.key.mode.clone(),
                l.metric.clone(),
                r.label.clone(),
                r.dir.clone(),
            ];
            match c {
                Cell::Value {
                    stats,
                    ratio,
                    verdict,
                    ..
                } => rec.extend([
                    "ok".to_string(),
                    stats.n.to_string(),
                    stats.median.to_string(),
                    stats.lo.to_string(),
                    stats.hi.to_string(),
                    stats.level.to_string(),
                    ratio.map(|x| x.to_string()).unwrap_or_default(),
                    match verdict {
                        Some(Verdict::Real) => "real",
                        Some(Verdict::NotShown) => "not_shown",
                        Some(Verdict::TooFewValues) => "n_too_small",
                        None => "",
                    }
                    .to_string(),
                ]),
                other => {
                    let status = match other {
                        Cell::Skipped(_) => "skipped",
                        Cell::NoValue => "no_value",
                        _ => "missing",
                    };
                    rec.push(status.to_string());
                    rec.extend(std::iter::repeat_n(String::new(), 7));
                }
            }
            w.write_record(&rec)?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write the CSV: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
