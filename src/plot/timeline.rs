//! `acceptbench plot timeline FILE`: the per-connection timeline of a kernel trace
//! (the CSV of `--trace kernel --trace-out`, `common::ktrace::timeline`) as one
//! horizontal line per connection, sorted by when its SYN went, with a mark for the
//! SYN, each SYN retransmit, the client's establishment, the server child's
//! establishment (it entered the accept queue), the accept and the close. Time is
//! relative to the first SYN. At most [`MAX_ROWS`] connections are drawn, evenly
//! sampled, and the title says so.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use common::ktrace::account::KernelConn;
use common::ktrace::timeline::{read_timeline_csv, Outcome};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::font;

/// The most connections one chart draws.
pub const MAX_ROWS: usize = 400;

const SIZE: (u32, u32) = (1200, 900);

/// What a chart drew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drawn {
    /// Connections drawn.
    pub shown: usize,
    /// Connections in the account.
    pub total: usize,
}

/// The command: reads `file`, draws it to `out` (default: `file` with `.svg`; a
/// `.png` name draws PNG), prints the path written.
pub fn run(file: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let f = std::fs::File::open(file).with_context(|| {
        format!(
            "cannot open {}: give the CSV written by --trace kernel --trace-out FILE",
            file.display()
        )
    })?;
    let conns = read_timeline_csv(std::io::BufReader::new(f))
        .with_context(|| format!("cannot read {}", file.display()))?;
    let out: PathBuf = out.map_or_else(|| file.with_extension("svg"), Path::to_path_buf);
    let name = file
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let drawn = draw(&conns, &out, &name)?;
    if drawn.shown < drawn.total {
        eprintln!(
            "acceptbench: note: {} of {} connections drawn (evenly sampled)",
            drawn.shown, drawn.total
        );
    }
    crate::stdout::println(out.display())?;
    Ok(ExitCode::SUCCESS)
}

/// When the connection began: its SYN, else its first record.
fn start_ns(c: &KernelConn) -> Option<u64> {
    c.syn_sent_ns
        .or_else(|| c.syn_retransmits_ns.first().copied())
        .or(c.client_established_ns)
        .or(c.child_created_ns)
}

/// Its last record.
fn end_ns(c: &KernelConn) -> Option<u64> {
    [
        c.client_closed_ns,
        c.child_closed_ns,
        c.accepted_ns,
        c.child_established_ns,
        c.client_established_ns,
        c.syn_retransmits_ns.last().copied(),
    ]
    .into_iter()
    .flatten()
    .max()
    .or_else(|| start_ns(c))
}

/// The connections to draw, sorted by start: all of them, or [`MAX_ROWS`] evenly
/// spaced through that order.
pub fn sample(conns: &[KernelConn]) -> Vec<&KernelConn> {
    let mut sorted: Vec<&KernelConn> = conns.iter().filter(|c| start_ns(c).is_some()).collect();
    sorted.sort_by_key(|c| start_ns(c));
    if sorted.len() <= MAX_ROWS {
        return sorted;
    }
    let n = sorted.len();
    (0..MAX_ROWS).map(|i| sorted[i * n / MAX_ROWS]).collect()
}

/// Draws `conns` to `path` (PNG when it ends in `.png`, SVG otherwise), `name` in the
/// title.
pub fn draw(conns: &[KernelConn], path: &Path, name: &str) -> anyhow::Result<Drawn> {
    let rows = sample(conns);
    let drawn = Drawn {
        shown: rows.len(),
        total: conns.len(),
    };
    let title = if drawn.shown < drawn.total {
        format!(
            "connections by the kernel's account — {name} ({} of {}, evenly sampled)",
            drawn.shown, drawn.total
        )
    } else {
        format!(
            "connections by the kernel's account — {name} ({})",
            drawn.total
        )
    };
    let png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let attempt = |text: bool| {
        if png {
            plot(
                BitMapBackend::new(path, SIZE).into_drawing_area(),
                &rows,
                &title,
                text,
            )
        } else {
            plot(
                SVGBackend::new(path, SIZE).into_drawing_area(),
                &rows,
                &title,
                text,
            )
        }
    };
    let with_text = font::ready();
    match attempt(with_text) {
        // Text is the only optional part: retry without it rather than lose the chart.
        Err(_) if with_text => attempt(false),
        other => other,
    }
    .with_context(|| format!("cannot draw {}", path.display()))?;
    Ok(drawn)
}

/// One kind of mark: its legend name, colour and the stamps of a connection it marks.
struct Mark {
    name: &'static str,
    color: RGBColor,
    /// A cross rather than a dot.
    cross: bool,
    stamps: fn(&KernelConn) -> Vec<u64>,
}

/// Drawn in this order, so the rarer marks lie on top: closes under accepts under
/// establishments under SYNs under retransmits (crosses).
const MARKS: &[Mark] = &[
    Mark {
        name: "closed",
        color: RGBColor(150, 150, 150),
        cross: false,
        stamps: |c| {
            c.client_closed_ns
                .or(c.child_closed_ns)
                .into_iter()
                .collect()
        },
    },
    Mark {
        name: "accepted",
        color: RGBColor(0, 0, 0),
        cross: false,
        stamps: |c| c.accepted_ns.into_iter().collect(),
    },
    Mark {
        name: "child established (queued)",
        color: RGBColor(240, 150, 0),
        cross: false,
        stamps: |c| c.child_established_ns.into_iter().collect(),
    },
    Mark {
        name: "client established",
        color: RGBColor(20, 160, 60),
        cross: false,
        stamps: |c| c.client_established_ns.into_iter().collect(),
    },
    Mark {
        name: "SYN",
        color: RGBColor(30, 90, 200),
        cross: false,
        stamps: |c| c.syn_sent_ns.into_iter().collect(),
    },
    Mark {
        name: "SYN retransmit",
        color: RGBColor(220, 30, 30),
        cross: true,
        stamps: |c| c.syn_retransmits_ns.clone(),
    },
];

/// The line's colour: by outcome (client-only and never established stand out).
fn line_color(c: &KernelConn) -> RGBAColor {
    match Outcome::of(c) {
        Outcome::ClientOnly => RGBColor(220, 30, 30).mix(0.5),
        Outcome::NeverEstablished => RGBColor(120, 0, 160).mix(0.5),
        _ => RGBColor(120, 120, 120).mix(0.4),
    }
}

fn plot<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    rows: &[&KernelConn],
    title: &str,
    text: bool,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e:?}");
    root.fill(&WHITE).map_err(err)?;
    let t0 = rows.iter().filter_map(|c| start_ns(c)).min().unwrap_or(0);
    let s = |ns: u64| ns.saturating_sub(t0) as f64 * 1e-9;
    let x_end = rows
        .iter()
        .filter_map(|c| end_ns(c))
        .map(s)
        .fold(0.0, f64::max);
    let x_end = if x_end > 0.0 { x_end * 1.02 } else { 1.0 };
    let y_end = rows.len().max(1) as f64;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(16).margin_right(40);
    if text {
        builder
            .caption(title, (font::FAMILY, 20))
            .x_label_area_size(48)
            .y_label_area_size(70);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..x_end, 0.0..y_end)
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("s after the first SYN")
            .y_desc("connection, by SYN sent")
            .label_style((font::FAMILY, 14))
            .axis_desc_style((font::FAMILY, 15));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.disable_y_mesh()
        .light_line_style(WHITE)
        .draw()
        .map_err(err)?;
    draw_rows(&mut chart, rows, t0, text).map_err(err)?;
    if text {
        super::charts::draw_legend(&mut chart, SeriesLabelPosition::LowerRight).map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

type Timeline<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Each connection's line, then the marks of [`MARKS`] (labelled for the legend when
/// `text`); `t0` is the chart's zero.
fn draw_rows<DB: DrawingBackend>(
    chart: &mut Timeline<'_, DB>,
    rows: &[&KernelConn],
    t0: u64,
    text: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let s = |ns: u64| ns.saturating_sub(t0) as f64 * 1e-9;
    for (i, c) in rows.iter().enumerate() {
        let (Some(a), Some(b)) = (start_ns(c), end_ns(c)) else {
            continue;
        };
        let y = i as f64 + 0.5;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(s(a), y), (s(b), y)],
            line_color(c).stroke_width(1),
        )))?;
    }
    for m in MARKS {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .enumerate()
            .flat_map(|(i, c)| (m.stamps)(c).into_iter().map(move |t| (t, i)))
            .map(|(t, i)| (s(t), i as f64 + 0.5))
            .collect();
        let color = m.color;
        let anno = if m.cross {
            chart.draw_series(
                points
                    .into_iter()
                    .map(move |p| Cross::new(p, 4, color.stroke_width(2))),
            )
        } else {
            chart.draw_series(
                points
                    .into_iter()
                    .map(move |p| Circle::new(p, 2, color.filled())),
            )
        }?;
        if text {
            anno.label(m.name)
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(syn: u64) -> KernelConn {
        KernelConn {
            syn_sent_ns: Some(syn),
            syn_retransmits_ns: vec![syn + 1_000_000_000],
            client_established_ns: Some(syn + 1_000_100_000),
            client_closed_ns: Some(syn + 2_000_000_000),
            ..KernelConn::default()
        }
    }

    #[test]
    fn a_long_account_is_sampled_evenly_in_syn_order() {
        let conns: Vec<KernelConn> = (0..1000u64).rev().map(|i| conn(i * 1000)).collect();
        let rows = sample(&conns);
        assert_eq!(rows.len(), MAX_ROWS);
        assert_eq!(rows[0].syn_sent_ns, Some(0));
        // Every 2.5th: indices 0, 2, 5, 7, 10 …
        assert_eq!(rows[1].syn_sent_ns, Some(2000));
        assert_eq!(rows[2].syn_sent_ns, Some(5000));
        assert!(rows.windows(2).all(|w| w[0].syn_sent_ns < w[1].syn_sent_ns));
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("t.svg");
        let d = draw(&conns, &path, "t.csv").unwrap();
        assert_eq!(
            d,
            Drawn {
                shown: MAX_ROWS,
                total: 1000
            }
        );
        let svg = std::fs::read_to_string(&path).unwrap();
        // Each of the 400 connections' SYN, establishment and close as a dot (and
        // the legend's six), its retransmit as a cross.
        assert_eq!(svg.matches("<circle").count(), 3 * MAX_ROWS + MARKS.len());
    }
}
