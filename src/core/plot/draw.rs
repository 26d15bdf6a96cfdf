//! Panels drawn with plotters, as SVG text or PNG bytes, in DejaVu Sans.
//!
//! The font is DejaVu Sans 2.37 (assets/fonts/DejaVuSans.ttf, from Debian's fonts-dejavu-core;
//! Bitstream Vera licence with public-domain DejaVu changes, assets/fonts/DejaVuSans.LICENSE),
//! compiled into the binary so that a PNG looks the same on every machine; SVG text names the
//! `DejaVu Sans, sans-serif` family and is laid out with the same metrics.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Panel, PlotError, tick_label};

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Width of the picture; each row of two panels is `PANEL_H` high below a title strip.
pub const WIDTH: u32 = 1200;
const PANEL_H: u32 = 380;
const TITLE_H: u32 = 50;

const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x17, 0xbe, 0xcf),
];

fn register_font() -> Result<(), PlotError> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(PlotError::Draw("the bundled font does not load".into()))
    }
}

/// The picture's size for `n` panels (two per row).
pub fn size(n: usize) -> (u32, u32) {
    let rows = n.div_ceil(2).max(1) as u32;
    (WIDTH, TITLE_H + rows * PANEL_H)
}

/// The panels as an SVG document.
pub fn svg(panels: &[Panel], title: &str) -> Result<String, PlotError> {
    register_font()?;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size(panels.len())).into_drawing_area();
        draw(&root, panels, title)?;
    }
    // name the real font first, with the generic family as the fallback
    Ok(out.replace(
        "font-family=\"sans-serif\"",
        "font-family=\"DejaVu Sans, sans-serif\"",
    ))
}

/// The panels as a PNG.
pub fn png(panels: &[Panel], title: &str) -> Result<Vec<u8>, PlotError> {
    register_font()?;
    let (w, h) = size(panels.len());
    let mut px = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut px, (w, h)).into_drawing_area();
        draw(&root, panels, title)?;
    }
    Ok(super::png::encode(w as usize, h as usize, &px))
}

fn err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[Panel],
    title: &str,
) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(err)?;
    let (top, body) = root.split_vertically(TITLE_H);
    top.titled(title, (FAMILY, 24)).map_err(err)?;
    let rows = panels.len().div_ceil(2).max(1);
    let areas = body.split_evenly((rows, 2));
    for (i, (area, panel)) in areas.iter().zip(panels).enumerate() {
        draw_panel(area, panel, COLORS[i % COLORS.len()])?;
    }
    root.present().map_err(err)
}

/// The data's extent with a margin; a single value gets a unit-wide range around it.
fn range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let d = if lo == 0.0 { 0.5 } else { lo.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    let m = (hi - lo) * pad;
    (lo - m, hi + m)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    first: RGBColor,
) -> Result<(), PlotError> {
    let xs = panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0));
    let (x0, x1) = range(xs, 0.0);
    let ys = panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .chain(panel.band.iter().flat_map(|b| [b.1, b.2]));
    let (y0, y1) = range(ys, 0.05);
    let (xspan, yspan) = (x1 - x0, y1 - y0);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FAMILY, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let xfmt = |v: &f64| tick_label(*v, xspan);
    let yfmt = |v: &f64| tick_label(*v, yspan);
    chart
        .configure_mesh()
        .x_desc("step")
        .x_labels(7)
        .y_labels(6)
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .light_line_style(RGBColor(0xf4, 0xf4, 0xf4))
        .draw()
        .map_err(err)?;
    if !panel.band.is_empty() {
        let mut poly: Vec<(f64, f64)> = panel.band.iter().map(|b| (b.0, b.2)).collect();
        poly.extend(panel.band.iter().rev().map(|b| (b.0, b.1)));
        let fill = first.mix(0.18).filled();
        chart
            .draw_series(std::iter::once(Polygon::new(poly, fill)))
            .map_err(err)?
            .label("± std")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], fill));
    }
    for (i, line) in panel.lines.iter().enumerate() {
        let color = if i == 0 {
            first
        } else {
            COLORS[(i + 1) % COLORS.len()]
        };
        let style = color.stroke_width(if i == 0 { 2 } else { 1 });
        chart
            .draw_series(LineSeries::new(line.points.iter().copied(), style))
            .map_err(err)?
            .label(line.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    if panel.lines.len() > 1 || !panel.band.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FAMILY, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xcc, 0xcc, 0xcc))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}
