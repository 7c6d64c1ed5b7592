/*!
Small SVG charts for the report: vertical bars (a value per day or per decade, with an
optional reference line such as the daily budget) and horizontal bars (top-N lists).

Hand-written rather than a plotting crate: two chart kinds, each a few dozen lines, built with
maud so every label is escaped. Each chart has a `<title>` and `role="img"` with an
`aria-label`, axes with tick labels, and uses `currentColor`, so it follows the page's light or
dark scheme and prints.
*/

use maud::{Markup, html};

use crate::shorten;

const WIDTH: f64 = 640.0;
const BAR_HEIGHT: f64 = 22.0;

/// A round step for about five ticks up to `max`.
pub fn tick_step(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    step.max(1.0)
}

fn format_tick(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

/// Vertical bars, one per `(label, value)`, with a y axis and, if given, a dashed reference
/// line (`(value, name)`).
pub fn columns(title: &str, bars: &[(String, f64)], line: Option<(f64, &str)>) -> Markup {
    let (left, top, bottom, height) = (56.0, 16.0, 44.0, 220.0);
    let plot_h = height - top - bottom;
    let plot_w = WIDTH - left - 12.0;
    let max = bars
        .iter()
        .map(|b| b.1)
        .chain(line.map(|l| l.0))
        .fold(0.0, f64::max);
    let step = tick_step(max);
    let top_value = (max / step).ceil().max(1.0) * step;
    let y = |v: f64| top + plot_h - v / top_value * plot_h;
    let slot = plot_w / bars.len().max(1) as f64;
    let ticks: Vec<f64> = (0..=((top_value / step) as usize))
        .map(|i| i as f64 * step)
        .collect();
    // Label every bar when they fit, else about twelve of them.
    let every = bars.len().div_ceil(12).max(1);
    html! {
        svg class="chart" viewBox=(format!("0 0 {WIDTH} {height}")) role="img" aria-label=(title) {
            title { (title) }
            @for t in &ticks {
                line x1=(left) x2=(left + plot_w) y1=(y(*t)) y2=(y(*t)) class="grid" {}
                text x=(left - 6.0) y=(y(*t) + 4.0) text-anchor="end" class="tick" { (format_tick(*t)) }
            }
            line x1=(left) x2=(left) y1=(top) y2=(top + plot_h) class="axis" {}
            line x1=(left) x2=(left + plot_w) y1=(top + plot_h) y2=(top + plot_h) class="axis" {}
            @for (i, (label, value)) in bars.iter().enumerate() {
                @let x = left + i as f64 * slot + slot * 0.1;
                rect class="bar" x=(x) y=(y(*value)) width=(slot * 0.8) height=(y(0.0) - y(*value)) {
                    title { (label) ": " (value) }
                }
                @if i % every == 0 {
                    text x=(x + slot * 0.4) y=(top + plot_h + 16.0) text-anchor="middle" class="tick" { (label) }
                }
            }
            @if let Some((value, name)) = line {
                line x1=(left) x2=(left + plot_w) y1=(y(value)) y2=(y(value)) class="budget" {}
                text x=(left + plot_w) y=(y(value) - 4.0) text-anchor="end" class="tick" { (name) }
            }
        }
    }
}

/// Horizontal bars, one per `(label, value)`, largest first as given.
pub fn rows(title: &str, bars: &[(String, u64)]) -> Markup {
    let (label_w, top) = (200.0, 8.0);
    let plot_w = WIDTH - label_w - 60.0;
    let height = top * 2.0 + BAR_HEIGHT * bars.len() as f64;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    html! {
        svg class="chart" viewBox=(format!("0 0 {WIDTH} {height}")) role="img" aria-label=(title) {
            title { (title) }
            line x1=(label_w) x2=(label_w) y1=(top) y2=(height - top) class="axis" {}
            @for (i, (label, value)) in bars.iter().enumerate() {
                @let y = top + i as f64 * BAR_HEIGHT;
                @let w = *value as f64 / max * plot_w;
                text x=(label_w - 6.0) y=(y + BAR_HEIGHT * 0.68) text-anchor="end" class="tick" {
                    (shorten(label, 30))
                }
                rect class="bar" x=(label_w) y=(y + 3.0) width=(w) height=(BAR_HEIGHT - 6.0) {
                    title { (label) ": " (value) }
                }
                text x=(label_w + w + 6.0) y=(y + BAR_HEIGHT * 0.68) class="tick" { (value) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(1000.0), 200.0);
        assert_eq!(tick_step(7.0), 2.0);
        assert_eq!(tick_step(0.0), 1.0);
        assert_eq!(tick_step(12_345.0), 5000.0);
    }

    #[test]
    fn a_chart_has_its_title_a_bar_per_value_and_escaped_labels() {
        let bars = vec![
            ("2026-11-25".to_string(), 900.0),
            ("<b>x</b>".to_string(), 1000.0),
        ];
        let svg = columns("Requests per day", &bars, Some((1000.0, "budget"))).into_string();
        assert!(svg.contains("<title>Requests per day</title>"));
        assert_eq!(svg.matches("class=\"bar\"").count(), 2);
        assert!(svg.contains("class=\"budget\""));
        assert!(svg.contains("&lt;b&gt;x&lt;/b&gt;") && !svg.contains("<b>"));
        let svg = rows("Top", &[("a".into(), 3), ("b".into(), 1)]).into_string();
        assert_eq!(svg.matches("class=\"bar\"").count(), 2);
        assert!(svg.contains("aria-label=\"Top\""));
    }
}
