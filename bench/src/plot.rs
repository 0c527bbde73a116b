//! The PNG the README shows: one bar per configuration (median, with the min-max range of the
//! rounds as an error bar) for the headline figures.
//!
//! Drawn with plotters' bitmap backend; text uses a TrueType font read from the system (DejaVu
//! Sans from Debian's fonts-dejavu-core), so no font stack is compiled in. Without the font the
//! plot is skipped with a warning and the JSON and the table are still written.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use crate::loadgen::Workload;
use crate::report::Row;
use crate::stats::Spread;

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Colors per configuration, in `Tracer::ALL` order.
const COLORS: [RGBColor; 8] = [
    RGBColor(140, 140, 140),
    RGBColor(190, 190, 190),
    RGBColor(31, 119, 180),
    RGBColor(214, 214, 214),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(197, 176, 213),
];

fn register_font() -> Result<(), String> {
    let path = FONT_PATHS
        .iter()
        .find(|p| Path::new(p).exists())
        .ok_or("no DejaVuSans.ttf found (Debian package fonts-dejavu-core)")?;
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    // plotters keeps a reference to the font for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("{path}: not a usable font"))
}

struct Panel {
    title: &'static str,
    unit: &'static str,
    bars: Vec<(String, usize, Spread)>,
}

fn panel(
    rows: &[Row],
    workload: Workload,
    title: &'static str,
    unit: &'static str,
    f: impl Fn(&Row) -> Option<Spread>,
) -> Panel {
    let bars = rows
        .iter()
        .filter(|r| r.workload == workload)
        .filter_map(|r| {
            let color = crate::envoy::Tracer::ALL
                .iter()
                .position(|t| *t == r.tracer)
                .unwrap_or(0);
            Some((r.tracer.name().to_owned(), color, f(r)?))
        })
        .collect();
    Panel { title, unit, bars }
}

/// Writes the plot; Err explains why it could not.
pub fn write_png(rows: &[Row], path: &Path) -> Result<(), String> {
    register_font()?;
    let point = |v: f64| Spread {
        median: v,
        min: v,
        max: v,
        runs: 1,
    };
    let panels = [
        panel(
            rows,
            Workload::Http1,
            "HTTP/1.1: Envoy CPU per request",
            "µs",
            |r| r.envoy_cpu_us_per_request.clone(),
        ),
        panel(
            rows,
            Workload::Http1,
            "HTTP/1.1: max throughput, 1 worker",
            "req/s",
            |r| r.throughput_rps.clone(),
        ),
        panel(
            rows,
            Workload::Http1,
            "HTTP/1.1: p99 latency at fixed rate",
            "µs",
            |r| r.latency_p99_us.clone(),
        ),
        panel(
            rows,
            Workload::Grpc,
            "gRPC: Envoy CPU per request",
            "µs",
            |r| r.envoy_cpu_us_per_request.clone(),
        ),
        panel(
            rows,
            Workload::Grpc,
            "gRPC: max throughput, 1 worker",
            "req/s",
            |r| r.throughput_rps.clone(),
        ),
        panel(
            rows,
            Workload::Http1,
            "Envoy RSS after the soak",
            "MiB",
            |r| (r.envoy_rss_after_mib > 0.0).then(|| point(r.envoy_rss_after_mib)),
        ),
    ];
    let root = BitMapBackend::new(path, (1500, 820)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    for (area, panel) in root.split_evenly((2, 3)).iter().zip(panels.iter()) {
        draw_panel(area, panel).map_err(|e| format!("{}: {e}", panel.title))?;
    }
    root.present().map_err(|e| e.to_string())
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = panel.bars.len().max(1);
    let mut highs: Vec<f64> = panel.bars.iter().map(|(_, _, s)| s.max).collect();
    highs.sort_by(|a, b| b.total_cmp(a));
    // One bar far above the rest (native Zipkin's latency) would flatten the others: the axis
    // then stops above the second highest and the outlier is drawn cut, its value printed.
    let top = match highs.as_slice() {
        [first, second, ..] if *first > 8.0 * second && *second > 0.0 => second * 1.6,
        [first, ..] if *first > 0.0 => first * 1.18,
        _ => 1.0,
    };
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(64)
        // A segmented range 0..k has k + 1 slots.
        .build_cartesian_2d((0..n.saturating_sub(1).max(1)).into_segmented(), 0.0..top)?;
    let names: Vec<String> = panel.bars.iter().map(|(name, _, _)| name.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(panel.unit)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 13))
        .draw()?;
    let cut = |v: f64| v.min(top * 0.97);
    chart.draw_series(panel.bars.iter().enumerate().map(|(i, (_, color, s))| {
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), cut(s.median)),
            ],
            COLORS[*color % COLORS.len()].filled(),
        );
        bar.set_margin(0, 0, 14, 14);
        bar
    }))?;
    chart.draw_series(
        panel
            .bars
            .iter()
            .enumerate()
            .filter(|(_, (_, _, s))| s.runs > 1 && s.max < top)
            .map(|(i, (_, _, s))| {
                ErrorBar::new_vertical(SegmentValue::CenterOf(i), s.min, s.median, s.max, BLACK, 8)
            }),
    )?;
    let label_style =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(panel.bars.iter().enumerate().map(|(i, (_, _, s))| {
        let value = if s.median >= 100.0 {
            format!("{:.0}", s.median)
        } else {
            format!("{:.1}", s.median)
        };
        let (label, y) = if s.max >= top {
            (format!("{value} (cut)"), top * 0.97)
        } else {
            (value, if s.runs > 1 { s.max } else { s.median })
        };
        Text::new(label, (SegmentValue::CenterOf(i), y), label_style.clone())
    }))?;
    Ok(())
}
