//! Drawing one line chart to PNG and SVG. Logarithmic axes are drawn as linear
//! axes over log values (labels convert back), so every chart has one type.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::font;

/// How an axis maps values and labels its ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Axis {
    /// Linear, from zero.
    Linear,
    /// log2 (backlogs): ticks at powers of two.
    Log2,
    /// log10 of a latency in µs: ticks at 1 µs, 10 µs, … labelled with units.
    LogMicros,
    /// log10 of 1/(1-p): ticks at 0%, 90%, 99%, 99.9%, …
    Percentile,
}

impl Axis {
    /// Data value → axis position (None when it cannot be shown on this axis).
    pub fn map(self, v: f64) -> Option<f64> {
        let out = match self {
            Axis::Linear => v,
            Axis::Log2 if v > 0.0 => v.log2(),
            Axis::LogMicros | Axis::Percentile if v > 0.0 => v.log10(),
            _ => return None,
        };
        out.is_finite().then_some(out)
    }

    /// Axis position → tick label ("" between the ticks that mean something).
    fn label(self, pos: f64) -> String {
        let whole = (pos - pos.round()).abs() < 1e-6;
        match self {
            Axis::Linear => crate::compare::format::num(pos),
            Axis::Log2 if whole => format!("{}", 2f64.powf(pos.round()).round()),
            Axis::LogMicros if whole => {
                let us = 10f64.powf(pos.round());
                if us >= 1e6 {
                    format!("{}s", us / 1e6)
                } else if us >= 1e3 {
                    format!("{}ms", us / 1e3)
                } else {
                    format!("{us}µs")
                }
            }
            Axis::Percentile if whole => {
                let p = 100.0 * (1.0 - 10f64.powf(-pos.round()));
                let digits = pos.round().max(2.0) as usize - 2;
                format!("{p:.digits$}%")
            }
            _ => String::new(),
        }
    }

    /// Axis range over the positions, padded; `(range, tick count)`.
    fn range(self, lo: f64, hi: f64) -> (std::ops::Range<f64>, usize) {
        match self {
            Axis::Linear => {
                let top = if hi > 0.0 { hi * 1.1 } else { 1.0 };
                (0.0..top, 8)
            }
            _ => {
                let (a, b) = (lo.floor(), hi.ceil());
                let (a, b) = if b - a < 1.0 {
                    (a - 0.5, b + 0.5)
                } else {
                    (a, b)
                };
                let a = if self == Axis::Percentile { 0.0 } else { a };
                // One tick per whole number: the labels above only name those.
                (a..b, (b - a).round() as usize + 1)
            }
        }
    }
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Palette index (same engine → same colour).
    pub color: usize,
    /// Dashed (second and later runs; queue limits).
    pub dashed: bool,
    /// Data points in data units (not yet mapped).
    pub points: Vec<(f64, f64)>,
    /// Per point, where the value is a median over runs: its confidence interval, drawn
    /// as a whisker (empty for curves that are not medians).
    pub intervals: Vec<Interval>,
}

/// A median's confidence interval at one x (data units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// x of the point.
    pub x: f64,
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// The interval reaches 95% coverage (false: too few runs; drawn hollow).
    pub enough: bool,
}

/// A chart: title, axes and lines.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File name without extension.
    pub stem: String,
    /// Caption.
    pub title: String,
    /// X axis description.
    pub x_desc: String,
    /// Y axis description.
    pub y_desc: String,
    /// X mapping.
    pub x: Axis,
    /// Y mapping.
    pub y: Axis,
    /// The lines.
    pub series: Vec<Series>,
}

const SIZE: (u32, u32) = (960, 600);

impl Chart {
    /// Where the legend hides the fewest points.
    fn legend_position(&self) -> SeriesLabelPosition {
        match (self.x, self.y) {
            (Axis::Linear, Axis::Linear) => SeriesLabelPosition::UpperRight,
            (_, Axis::Linear) => SeriesLabelPosition::LowerRight,
            _ => SeriesLabelPosition::UpperLeft,
        }
    }

    /// Writes `<dir>/<stem>.svg` and, with `png`, `<dir>/<stem>.png`; returns the paths.
    pub fn write(&self, dir: &Path, png: bool) -> anyhow::Result<Vec<PathBuf>> {
        let mut files = Vec::with_capacity(2);
        if png {
            let path = dir.join(format!("{}.png", self.stem));
            self.draw_with_fallback(&path, |p| BitMapBackend::new(p, SIZE).into_drawing_area())?;
            files.push(path);
        }
        let svg = dir.join(format!("{}.svg", self.stem));
        self.draw_with_fallback(&svg, |p| SVGBackend::new(p, SIZE).into_drawing_area())?;
        files.push(svg);
        Ok(files)
    }

    /// Draws with text when a font is available; if text fails, draws again without it.
    fn draw_with_fallback<'a, DB: DrawingBackend + 'a>(
        &self,
        path: &'a Path,
        backend: impl Fn(&'a Path) -> DrawingArea<DB, Shift>,
    ) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        let with_text = font::ready();
        let first = self.draw(backend(path), with_text);
        match first {
            // Text is the only optional part: retry without it rather than lose the chart.
            Err(_) if with_text => self.draw(backend(path), false),
            other => other,
        }
        .with_context(|| format!("cannot draw {}", path.display()))
    }

    /// Maps the data to axis units and chooses the plot ranges that hold it.
    fn layout(&self) -> Layout {
        let points: Vec<Vec<(f64, f64)>> = self
            .series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .filter_map(|&(x, y)| Some((self.x.map(x)?, self.y.map(y)?)))
                    .collect()
            })
            .collect();
        let whiskers: Vec<Vec<Interval>> = self
            .series
            .iter()
            .map(|s| {
                s.intervals
                    .iter()
                    .filter_map(|i| {
                        Some(Interval {
                            x: self.x.map(i.x)?,
                            lo: self.y.map(i.lo)?,
                            hi: self.y.map(i.hi)?,
                            enough: i.enough,
                        })
                    })
                    .collect()
            })
            .collect();
        // Whisker ends widen the y range like points do.
        let ends = whiskers
            .iter()
            .flatten()
            .flat_map(|w| [(w.x, w.lo), (w.x, w.hi)]);
        let all: Vec<(f64, f64)> = points.iter().flatten().copied().chain(ends).collect();
        let (xlo, xhi) = extent(all.iter().map(|p| p.0));
        let (ylo, yhi) = extent(all.iter().map(|p| p.1));
        // Room at both ends for the nudged whiskers (see `draw`).
        let with_whiskers = whiskers.iter().filter(|w| !w.is_empty()).count();
        let nudge_step = (xhi - xlo).max(1.0) * 0.012;
        let pad = (with_whiskers as f64 / 2.0 + 0.5) * nudge_step;
        let (x, x_labels) = self.x.range(xlo, xhi);
        let x = if with_whiskers > 0 {
            (x.start - pad)..(x.end + pad)
        } else {
            x
        };
        let (y, y_labels) = self.y.range(ylo, yhi);
        Layout {
            points,
            whiskers,
            x,
            x_labels,
            y,
            y_labels,
            nudge_step,
            with_whiskers,
        }
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
        text: bool,
    ) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e:?}");
        root.fill(&WHITE).map_err(err)?;
        let layout = self.layout();
        let mut builder = ChartBuilder::on(&root);
        builder.margin(16).margin_right(40);
        if text {
            builder
                .caption(&self.title, (font::FAMILY, 22))
                .x_label_area_size(48)
                .y_label_area_size(80);
        } else {
            builder.x_label_area_size(8).y_label_area_size(8);
        }
        let mut chart = builder
            .build_cartesian_2d(layout.x.clone(), layout.y.clone())
            .map_err(err)?;
        let (xa, ya) = (self.x, self.y);
        let x_fmt = move |v: &f64| xa.label(*v);
        let y_fmt = move |v: &f64| ya.label(*v);
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_labels(layout.x_labels)
                .y_labels(layout.y_labels)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt)
                .x_desc(self.x_desc.as_str())
                .y_desc(self.y_desc.as_str())
                .label_style((font::FAMILY, 14))
                .axis_desc_style((font::FAMILY, 15));
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(err)?;

        // Series with whiskers are nudged apart along x so their intervals do not hide
        // each other at the same backlog.
        let mut nth = 0usize;
        for ((s, pts), w) in self.series.iter().zip(&layout.points).zip(&layout.whiskers) {
            let color = Palette99::pick(s.color).to_rgba();
            let style = color.stroke_width(2);
            let nudge = if w.is_empty() {
                0.0
            } else {
                nth += 1;
                let centre = (layout.with_whiskers as f64 - 1.0) / 2.0;
                (nth as f64 - 1.0 - centre) * layout.nudge_step
            };
            let pts: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| (x + nudge, y)).collect();
            draw_whiskers(&mut chart, w, &pts, nudge, layout.nudge_step * 0.35, color)
                .map_err(err)?;
            let anno = if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(pts.iter().copied(), 8, 5, style))
                    .map_err(err)?
            } else {
                // Markers only where points are few enough to read (not percentile curves).
                let marker = if pts.len() <= 24 { 3 } else { 0 };
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), style).point_size(marker))
                    .map_err(err)?
            };
            if text {
                anno.label(s.label.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
        }
        if text && !self.series.is_empty() {
            draw_legend(&mut chart, self.legend_position()).map_err(err)?;
        }
        root.present().map_err(err)?;
        Ok(())
    }
}

/// The legend every chart draws: its series' labels in a boxed, nearly opaque panel at
/// `at`.
pub(super) fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    at: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((font::FAMILY, 13))
        .draw()
}

/// A chart's data in axis units and the ranges it is drawn over.
struct Layout {
    /// Per series, its points.
    points: Vec<Vec<(f64, f64)>>,
    /// Per series, its intervals.
    whiskers: Vec<Vec<Interval>>,
    x: std::ops::Range<f64>,
    x_labels: usize,
    y: std::ops::Range<f64>,
    y_labels: usize,
    /// How far apart along x the whiskers of different series are drawn.
    nudge_step: f64,
    /// How many series have whiskers.
    with_whiskers: usize,
}

/// Smallest and largest value, or 0..1 when there is none.
fn extent(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

type Plane<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One series' intervals as capped vertical whiskers, shifted by `nudge`; a hollow ring
/// at the median where the interval does not reach 95% (too few runs).
fn draw_whiskers<DB: DrawingBackend>(
    chart: &mut Plane<'_, DB>,
    whiskers: &[Interval],
    points: &[(f64, f64)],
    nudge: f64,
    cap: f64,
    color: RGBAColor,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let line = |a: (f64, f64), b: (f64, f64)| PathElement::new(vec![a, b], color.stroke_width(1));
    for w in whiskers {
        let x = w.x + nudge;
        chart.draw_series([
            line((x, w.lo), (x, w.hi)),
            line((x - cap, w.lo), (x + cap, w.lo)),
            line((x - cap, w.hi), (x + cap, w.hi)),
        ])?;
        if !w.enough {
            if let Some(&(px, py)) = points.iter().find(|p| (p.0 - x).abs() < 1e-9) {
                chart.draw_series(std::iter::once(Circle::new(
                    (px, py),
                    6,
                    color.stroke_width(2),
                )))?;
            }
        }
    }
    Ok(())
}
