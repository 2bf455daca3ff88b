//! Charts drawn on the server as SVG, for every area of the portal: a bar chart, a line
//! chart and a layered graph (a product's lineage).
//!
//! Design:
//! - **No script, no inline style.** The browser gets finished SVG markup inside the page;
//!   colours, strokes and fonts are SVG presentation attributes (`fill`, `stroke`,
//!   `font-size`), which the Content-Security-Policy allows (it forbids `style=`
//!   attributes and `<style>` without `unsafe-inline`), and the root carries the `chart`
//!   class so that the portal's stylesheet sizes it.
//! - **Accessible.** Every chart is `role="img"` labelled by its own `<title>` and
//!   `<desc>`; the description repeats every value as text, the axes are labelled, and
//!   each bar and point carries its value as visible text or a `<title>`. Series differ
//!   by dash pattern as well as colour, so colour is never the only signal.
//! - **Safe with any input.** All text goes through maud, which escapes it; NaN and
//!   infinite values count as 0; empty input draws a "no data" chart; the graph layout
//!   breaks cycles before layering, so no input makes it loop.
//! - **Layered graph.** Nodes are placed left to right by longest-path layering over the
//!   graph with its back edges (found by a depth-first search) left out, ordered within
//!   each layer by a barycentre sweep down and up, and joined by cubic curves with
//!   arrowheads; a back edge is still drawn, as a curve that loops back.
//!
//! The functions take no language: titles and labels come translated from the caller;
//! the only words of their own (the empty state) come from the catalog in both
//! languages.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use maud::{Markup, html};

use crate::portal::i18n::{Lang, t};

/// Width of the bar and line charts' drawing, in SVG user units.
const CHART_WIDTH: f64 = 640.0;
/// Height of one bar's row.
const BAR_ROW: f64 = 26.0;
/// Width kept for the bar labels on the left.
const BAR_LABEL_WIDTH: f64 = 200.0;
/// Width kept for the value text at the end of the longest bar.
const BAR_VALUE_WIDTH: f64 = 110.0;
/// Height of the title band at the top of every chart.
const TITLE_BAND: f64 = 32.0;
/// Longest label drawn in full (characters); longer ones are cut, with the whole label
/// in a tooltip and in the description.
const MAX_LABEL_CHARS: usize = 26;
/// The line chart's plot height.
const LINE_PLOT_HEIGHT: f64 = 240.0;
/// The line chart's left margin (the y tick labels).
const LINE_LEFT: f64 = 70.0;
/// Points listed per series in a line chart's description.
const DESC_POINTS: usize = 60;
/// Graph node size and gaps.
const NODE_WIDTH: f64 = 190.0;
const NODE_HEIGHT: f64 = 40.0;
const LAYER_GAP: f64 = 70.0;
const ROW_GAP: f64 = 18.0;
const GRAPH_MARGIN: f64 = 16.0;

/// Series colours (a colour-blind-safe palette) and dash patterns, used in turn.
const COLOURS: [&str; 6] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
];
const DASHES: [&str; 4] = ["none", "6 3", "2 3", "9 3 2 3"];
const BAR_FILL: &str = "#0072b2";
const TEXT_FILL: &str = "#1a1a1a";
const GRID_STROKE: &str = "#d0d0d0";
const AXIS_STROKE: &str = "#555555";

/// Numbers the charts of a process so that the ids inside each (title, description,
/// arrowhead) are unique on a page that shows several.
static CHART_SEQ: AtomicU64 = AtomicU64::new(0);

/// The ids of one chart's parts.
struct ChartIds {
    title: String,
    desc: String,
    arrow: String,
}

fn chart_ids() -> ChartIds {
    let n = CHART_SEQ.fetch_add(1, Ordering::Relaxed);
    ChartIds {
        title: format!("pdx-chart-{n}-title"),
        desc: format!("pdx-chart-{n}-desc"),
        arrow: format!("pdx-chart-{n}-arrow"),
    }
}

/// A finite value, or 0 for NaN and the infinities.
fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// A coordinate as SVG text (one decimal).
fn coord(x: f64) -> String {
    format!("{:.1}", finite(x))
}

/// A value for people: an integer without decimals, anything else with up to four,
/// trailing zeros dropped.
fn value_text(x: f64) -> String {
    let x = finite(x);
    // Also keeps -0 from showing as "-0".
    if x.abs() < 1e-12 {
        return "0".to_string();
    }
    if x.fract().abs() < 1e-9 && x.abs() < 1e15 {
        return format!("{x:.0}");
    }
    let text = if x.abs() < 0.01 {
        format!("{x:.6}")
    } else {
        format!("{x:.4}")
    };
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// A label cut to [`MAX_LABEL_CHARS`] characters, with an ellipsis if it was cut.
fn short_label(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL_CHARS {
        label.to_string()
    } else {
        let mut cut: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// "No data" in both languages: the charts do not know the reader's language.
fn no_data_text() -> String {
    let zh = t(Lang::Zh, "supervisor.svg.no_data");
    let en = t(Lang::En, "supervisor.svg.no_data");
    format!("{zh} · {en}")
}

/// A step of 1, 2 or 5 times a power of ten near `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw.is_nan() || raw <= 0.0 || raw.is_infinite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let normalised = raw / magnitude;
    let nice = if normalised <= 1.0 {
        1.0
    } else if normalised <= 2.0 {
        2.0
    } else if normalised <= 5.0 {
        5.0
    } else {
        10.0
    };
    let step = nice * magnitude;
    if step.is_finite() && step > 0.0 {
        step
    } else {
        1.0
    }
}

/// About five evenly spaced round ticks covering `min..=max` (a range of 1 if empty).
fn nice_ticks(min: f64, max: f64) -> Vec<f64> {
    let (min, max) = (finite(min), finite(max));
    let (min, max) = if max > min {
        (min, max)
    } else {
        (min, min + 1.0)
    };
    let step = nice_step((max - min) / 4.0);
    let start = (min / step).floor() * step;
    let end = (max / step).ceil() * step;
    let mut ticks = Vec::new();
    // Bounded whatever the floating point does: at most 12 ticks.
    for i in 0..12u32 {
        let v = start + step * f64::from(i);
        ticks.push(v);
        if v >= end - step * 1e-9 {
            break;
        }
    }
    if ticks.len() < 2 {
        ticks.push(start + step);
    }
    ticks
}

/// The root of every chart: an SVG image of `size` labelled by its title and
/// description, with the title written on top when `heading` is set.
fn frame(
    ids: &ChartIds,
    size: (f64, f64),
    title: &str,
    description: &str,
    heading: bool,
    content: Markup,
) -> Markup {
    let (width, height) = size;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img"
            width=(coord(width)) height=(coord(height))
            viewBox={ "0 0 " (coord(width)) " " (coord(height)) }
            aria-labelledby={ (ids.title) " " (ids.desc) } {
            title id=(ids.title) { (title) }
            desc id=(ids.desc) { (description) }
            @if heading {
                text x="8" y="22" font-size="15" font-weight="bold" fill=(TEXT_FILL) { (title) }
            }
            (content)
        }
    }
}

/// The empty chart: the title and "no data", so a page never shows a blank box.
fn empty_chart(title: &str) -> Markup {
    let ids = chart_ids();
    let message = no_data_text();
    let height = TITLE_BAND + 60.0;
    let content = html! {
        rect x="8" y=(coord(TITLE_BAND)) width=(coord(CHART_WIDTH - 16.0)) height="44"
            fill="none" stroke=(GRID_STROKE) stroke-dasharray="4 4" {}
        text x=(coord(CHART_WIDTH / 2.0)) y=(coord(TITLE_BAND + 27.0)) font-size="13"
            text-anchor="middle" fill=(AXIS_STROKE) { (message) }
    };
    frame(&ids, (CHART_WIDTH, height), title, &message, true, content)
}

/// One bar's geometry.
#[derive(Clone, Debug, PartialEq)]
struct BarGeometry {
    /// Its value (NaN and infinities as 0).
    value: f64,
    /// Its length in user units (0 for values at or below 0).
    length: f64,
}

/// Bar lengths proportional to the values, against a round scale maximum; returns the
/// bars and the axis ticks (the last tick is the scale maximum).
fn bar_geometry(bars: &[(String, f64)], plot_width: f64) -> (Vec<BarGeometry>, Vec<f64>) {
    let values: Vec<f64> = bars.iter().map(|(_, v)| finite(*v)).collect();
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let ticks = nice_ticks(0.0, if max > 0.0 { max } else { 1.0 });
    let scale_max = ticks.last().copied().filter(|m| *m > 0.0).unwrap_or(1.0);
    let geometry = values
        .into_iter()
        .map(|value| BarGeometry {
            value,
            length: if value > 0.0 {
                value / scale_max * plot_width
            } else {
                0.0
            },
        })
        .collect();
    (geometry, ticks)
}

/// A horizontal bar chart: one labelled bar per `(label, value)`, its value and `unit`
/// written at its end, with an x axis in `unit`. Bars start at 0; values at or below 0
/// draw no bar but keep their text.
pub fn bar_chart(title: &str, bars: &[(String, f64)], unit: &str) -> Markup {
    if bars.is_empty() {
        return empty_chart(title);
    }
    let ids = chart_ids();
    let plot_left = BAR_LABEL_WIDTH;
    let plot_width = CHART_WIDTH - BAR_LABEL_WIDTH - BAR_VALUE_WIDTH;
    let (geometry, ticks) = bar_geometry(bars, plot_width);
    let scale_max = ticks.last().copied().unwrap_or(1.0);
    let plot_top = TITLE_BAND + 8.0;
    let plot_bottom = plot_top + BAR_ROW * bars.len() as f64;
    let height = plot_bottom + 44.0;
    let with_unit = |v: f64| {
        if unit.is_empty() {
            value_text(v)
        } else {
            format!("{} {unit}", value_text(v))
        }
    };
    let description = bars
        .iter()
        .zip(&geometry)
        .map(|((label, _), bar)| format!("{label}: {}", with_unit(bar.value)))
        .collect::<Vec<_>>()
        .join("; ");
    let content = html! {
        // Grid lines and tick labels of the value axis.
        @for tick in &ticks {
            @let x = plot_left + tick / scale_max * plot_width;
            line x1=(coord(x)) y1=(coord(plot_top)) x2=(coord(x)) y2=(coord(plot_bottom))
                stroke=(GRID_STROKE) stroke-width="1" {}
            text x=(coord(x)) y=(coord(plot_bottom + 16.0)) font-size="11"
                text-anchor="middle" fill=(AXIS_STROKE) { (value_text(*tick)) }
        }
        line x1=(coord(plot_left)) y1=(coord(plot_top)) x2=(coord(plot_left))
            y2=(coord(plot_bottom)) stroke=(AXIS_STROKE) stroke-width="1" {}
        line x1=(coord(plot_left)) y1=(coord(plot_bottom)) x2=(coord(plot_left + plot_width))
            y2=(coord(plot_bottom)) stroke=(AXIS_STROKE) stroke-width="1" {}
        text x=(coord(plot_left + plot_width / 2.0)) y=(coord(plot_bottom + 36.0))
            font-size="12" text-anchor="middle" fill=(TEXT_FILL) { (unit) }
        @for (i, ((label, _), bar)) in bars.iter().zip(&geometry).enumerate() {
            @let y = plot_top + BAR_ROW * i as f64;
            g {
                text x=(coord(plot_left - 8.0)) y=(coord(y + BAR_ROW * 0.65)) font-size="12"
                    text-anchor="end" fill=(TEXT_FILL) {
                    title { (label) }
                    (short_label(label))
                }
                rect x=(coord(plot_left)) y=(coord(y + 4.0)) width=(coord(bar.length))
                    height=(coord(BAR_ROW - 8.0)) fill=(BAR_FILL) {
                    title { (label) ": " (with_unit(bar.value)) }
                }
                text x=(coord(plot_left + bar.length + 6.0)) y=(coord(y + BAR_ROW * 0.65))
                    font-size="12" fill=(TEXT_FILL) { (with_unit(bar.value)) }
            }
        }
    };
    frame(
        &ids,
        (CHART_WIDTH, height),
        title,
        &description,
        true,
        content,
    )
}

/// The points of the series with NaN and infinities as 0, and the ranges they span.
struct LineGeometry {
    series: Vec<(String, Vec<(f64, f64)>)>,
    x_ticks: Vec<f64>,
    y_ticks: Vec<f64>,
}

fn line_geometry(series: &[(String, Vec<(f64, f64)>)]) -> LineGeometry {
    let series: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, points)| {
            let points: Vec<(f64, f64)> = points
                .iter()
                .map(|(x, y)| (finite(*x), finite(*y)))
                .collect();
            (name.clone(), points)
        })
        .collect();
    let all = || series.iter().flat_map(|(_, p)| p.iter().copied());
    let x_min = all().map(|(x, _)| x).fold(f64::INFINITY, f64::min);
    let x_max = all().map(|(x, _)| x).fold(f64::NEG_INFINITY, f64::max);
    // The value axis always shows 0, so that the lines are read against it.
    let y_min = all().map(|(_, y)| y).fold(0.0_f64, f64::min);
    let y_max = all().map(|(_, y)| y).fold(0.0_f64, f64::max);
    LineGeometry {
        series,
        x_ticks: nice_ticks(x_min, x_max),
        y_ticks: nice_ticks(y_min, y_max),
    }
}

/// A line chart of one or more `(name, points)` series against labelled x and y axes,
/// with a legend; each series has its own colour and dash pattern, and each point its
/// value in a tooltip and in the description.
pub fn line_chart(
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_label: &str,
    y_label: &str,
) -> Markup {
    if series.iter().all(|(_, points)| points.is_empty()) {
        return empty_chart(title);
    }
    let ids = chart_ids();
    let geometry = line_geometry(series);
    let plot_left = LINE_LEFT;
    let plot_right = CHART_WIDTH - 16.0;
    let plot_top = TITLE_BAND + 10.0;
    let plot_bottom = plot_top + LINE_PLOT_HEIGHT;
    let legend_top = plot_bottom + 48.0;
    let height = legend_top + 18.0 * geometry.series.len() as f64 + 8.0;
    let (x0, x1) = span(&geometry.x_ticks);
    let (y0, y1) = span(&geometry.y_ticks);
    let px = |x: f64| plot_left + (x - x0) / (x1 - x0) * (plot_right - plot_left);
    let py = |y: f64| plot_bottom - (y - y0) / (y1 - y0) * (plot_bottom - plot_top);
    let description = geometry
        .series
        .iter()
        .map(|(name, points)| {
            let mut listed: Vec<String> = points
                .iter()
                .take(DESC_POINTS)
                .map(|(x, y)| format!("({}, {})", value_text(*x), value_text(*y)))
                .collect();
            if points.len() > DESC_POINTS {
                listed.push("…".to_string());
            }
            format!("{name}: {}", listed.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    let content = html! {
        @for tick in &geometry.y_ticks {
            line x1=(coord(plot_left)) y1=(coord(py(*tick))) x2=(coord(plot_right))
                y2=(coord(py(*tick))) stroke=(GRID_STROKE) stroke-width="1" {}
            text x=(coord(plot_left - 6.0)) y=(coord(py(*tick) + 4.0)) font-size="11"
                text-anchor="end" fill=(AXIS_STROKE) { (value_text(*tick)) }
        }
        @for tick in &geometry.x_ticks {
            line x1=(coord(px(*tick))) y1=(coord(plot_bottom)) x2=(coord(px(*tick)))
                y2=(coord(plot_bottom + 4.0)) stroke=(AXIS_STROKE) stroke-width="1" {}
            text x=(coord(px(*tick))) y=(coord(plot_bottom + 16.0)) font-size="11"
                text-anchor="middle" fill=(AXIS_STROKE) { (value_text(*tick)) }
        }
        line x1=(coord(plot_left)) y1=(coord(plot_top)) x2=(coord(plot_left))
            y2=(coord(plot_bottom)) stroke=(AXIS_STROKE) stroke-width="1" {}
        line x1=(coord(plot_left)) y1=(coord(plot_bottom)) x2=(coord(plot_right))
            y2=(coord(plot_bottom)) stroke=(AXIS_STROKE) stroke-width="1" {}
        text x=(coord((plot_left + plot_right) / 2.0)) y=(coord(plot_bottom + 34.0))
            font-size="12" text-anchor="middle" fill=(TEXT_FILL) { (x_label) }
        text x="14" y=(coord((plot_top + plot_bottom) / 2.0)) font-size="12"
            text-anchor="middle" fill=(TEXT_FILL)
            transform={ "rotate(-90 14 " (coord((plot_top + plot_bottom) / 2.0)) ")" } {
            (y_label)
        }
        @for (i, (name, points)) in geometry.series.iter().enumerate() {
            @let colour = COLOURS[i % COLOURS.len()];
            @let dash = DASHES[i % DASHES.len()];
            @let path = points
                .iter()
                .map(|(x, y)| format!("{},{}", coord(px(*x)), coord(py(*y))))
                .collect::<Vec<_>>()
                .join(" ");
            g {
                polyline points=(path) fill="none" stroke=(colour) stroke-width="2"
                    stroke-dasharray=(dash) {}
                @for (x, y) in points {
                    circle cx=(coord(px(*x))) cy=(coord(py(*y))) r="3" fill=(colour) {
                        title { (name) ": (" (value_text(*x)) ", " (value_text(*y)) ")" }
                    }
                }
            }
        }
        @for (i, (name, _)) in geometry.series.iter().enumerate() {
            @let y = legend_top + 18.0 * i as f64;
            line x1=(coord(plot_left)) y1=(coord(y)) x2=(coord(plot_left + 28.0)) y2=(coord(y))
                stroke=(COLOURS[i % COLOURS.len()]) stroke-width="2"
                stroke-dasharray=(DASHES[i % DASHES.len()]) {}
            text x=(coord(plot_left + 36.0)) y=(coord(y + 4.0)) font-size="12"
                fill=(TEXT_FILL) { (name) }
        }
    };
    frame(
        &ids,
        (CHART_WIDTH, height),
        title,
        &description,
        true,
        content,
    )
}

/// The first and last tick, never equal.
fn span(ticks: &[f64]) -> (f64, f64) {
    let first = ticks.first().copied().unwrap_or(0.0);
    let last = ticks.last().copied().unwrap_or(1.0);
    if last > first {
        (first, last)
    } else {
        (first, first + 1.0)
    }
}

/// Where each node of a graph goes: its layer and its rank within the layer; and which
/// edges point back (they closed a cycle and were left out of the layering).
#[derive(Debug)]
struct DagLayout {
    /// Node index → layer (0 is the leftmost).
    layer: Vec<usize>,
    /// Layer → node indices, top to bottom.
    rows: Vec<Vec<usize>>,
    /// Distinct edges between distinct known nodes: (from, to, is a back edge).
    edges: Vec<(usize, usize, bool)>,
}

/// Lays a graph out in layers (module documentation). Duplicate node ids keep the
/// first; edges naming unknown nodes and self-loops are left out.
fn dag_layout(nodes: &[(String, String)], edges: &[(String, String)]) -> DagLayout {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, (id, _)) in nodes.iter().enumerate() {
        index.entry(id.as_str()).or_insert(i);
    }
    let n = nodes.len();
    let mut seen = HashSet::new();
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for (from, to) in edges {
        let (Some(&a), Some(&b)) = (index.get(from.as_str()), index.get(to.as_str())) else {
            continue;
        };
        if a != b && seen.insert((a, b)) {
            pairs.push((a, b));
        }
    }
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in &pairs {
        successors[a].push(b);
    }
    let back = back_edges(n, &successors);
    let forward: Vec<(usize, usize)> = pairs
        .iter()
        .copied()
        .filter(|e| !back.contains(e))
        .collect();
    let layer = longest_path_layers(n, &forward);
    let layers = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    // Only the first node of a duplicated id is drawn.
    for (i, (id, _)) in nodes.iter().enumerate() {
        if index.get(id.as_str()) == Some(&i) {
            rows[layer[i]].push(i);
        }
    }
    order_by_barycentre(&mut rows, &forward, n);
    let edges = pairs
        .into_iter()
        .map(|e| (e.0, e.1, back.contains(&e)))
        .collect();
    DagLayout { layer, rows, edges }
}

/// The edges that close a cycle: those a depth-first search (iterative, so deep graphs
/// cannot overflow the stack) finds pointing to a node still on its path.
fn back_edges(n: usize, successors: &[Vec<usize>]) -> HashSet<(usize, usize)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    let mut back = HashSet::new();
    for root in 0..n {
        if mark[root] != Mark::New {
            continue;
        }
        // (node, next successor to look at)
        let mut stack = vec![(root, 0usize)];
        mark[root] = Mark::OnPath;
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            if let Some(&succ) = successors[node].get(next) {
                top.1 += 1;
                match mark[succ] {
                    Mark::New => {
                        mark[succ] = Mark::OnPath;
                        stack.push((succ, 0));
                    }
                    Mark::OnPath => {
                        back.insert((node, succ));
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    back
}

/// Longest-path layers over acyclic edges (Kahn's order): a node sits one layer right of
/// its rightmost predecessor. A node never released (only if the edges were cyclic after
/// all) stays in layer 0, so this always ends.
fn longest_path_layers(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut indegree = vec![0usize; n];
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        indegree[b] += 1;
        successors[a].push(b);
    }
    let mut layer = vec![0usize; n];
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    while let Some(node) = ready.pop_front() {
        for &succ in &successors[node] {
            layer[succ] = layer[succ].max(layer[node] + 1);
            indegree[succ] -= 1;
            if indegree[succ] == 0 {
                ready.push_back(succ);
            }
        }
    }
    layer
}

/// Orders each layer by the mean rank of its nodes' neighbours: predecessors going
/// down, then successors going up (a node without any keeps its rank).
fn order_by_barycentre(rows: &mut [Vec<usize>], edges: &[(usize, usize)], n: usize) {
    let mut rank = vec![0.0_f64; n];
    for row in rows.iter() {
        for (r, &node) in row.iter().enumerate() {
            rank[node] = r as f64;
        }
    }
    let mut predecessors: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        predecessors[b].push(a);
        successors[a].push(b);
    }
    let sweep = |row: &mut Vec<usize>, neighbours: &[Vec<usize>], rank: &mut [f64]| {
        let key = |node: usize| {
            let near = &neighbours[node];
            if near.is_empty() {
                rank[node]
            } else {
                near.iter().map(|&m| rank[m]).sum::<f64>() / near.len() as f64
            }
        };
        let mut keyed: Vec<(f64, usize)> = row.iter().map(|&node| (key(node), node)).collect();
        // A stable sort: ties keep their order.
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        *row = keyed.into_iter().map(|(_, node)| node).collect();
        for (r, &node) in row.iter().enumerate() {
            rank[node] = r as f64;
        }
    };
    for row in rows.iter_mut().skip(1) {
        sweep(row, predecessors.as_slice(), rank.as_mut_slice());
    }
    for row in rows.iter_mut().rev().skip(1) {
        sweep(row, successors.as_slice(), rank.as_mut_slice());
    }
}

/// A layered graph, left to right: `nodes` are `(id, label)`, `edges` `(from id, to
/// id)`. Each node is a labelled box (`data-node` carries its id); each edge a curve
/// with an arrowhead. The title names the graph's end nodes (those nothing leaves), the
/// description lists every edge as text.
pub fn dag(nodes: &[(String, String)], edges: &[(String, String)]) -> Markup {
    if nodes.is_empty() {
        return empty_chart(&no_data_text());
    }
    let layout = dag_layout(nodes, edges);
    let ids = chart_ids();
    let tallest = layout.rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let column_height = |count: usize| count as f64 * (NODE_HEIGHT + ROW_GAP) - ROW_GAP;
    let height = 2.0 * GRAPH_MARGIN + column_height(tallest);
    let width =
        2.0 * GRAPH_MARGIN + layout.rows.len() as f64 * (NODE_WIDTH + LAYER_GAP) - LAYER_GAP;
    // Top-left corner of each drawn node; each layer is centred vertically.
    let mut corner: HashMap<usize, (f64, f64)> = HashMap::new();
    for (l, row) in layout.rows.iter().enumerate() {
        let top = GRAPH_MARGIN + (column_height(tallest) - column_height(row.len())) / 2.0;
        for (r, &node) in row.iter().enumerate() {
            let x = GRAPH_MARGIN + l as f64 * (NODE_WIDTH + LAYER_GAP);
            let y = top + r as f64 * (NODE_HEIGHT + ROW_GAP);
            corner.insert(node, (x, y));
        }
    }
    let has_out: HashSet<usize> = layout.edges.iter().map(|(a, _, _)| *a).collect();
    let ends: Vec<&str> = layout
        .rows
        .iter()
        .flatten()
        .filter(|i| !has_out.contains(*i))
        .map(|&i| nodes[i].1.as_str())
        .collect();
    let description = layout
        .edges
        .iter()
        .map(|(a, b, _)| format!("{} → {}", nodes[*a].1, nodes[*b].1))
        .collect::<Vec<_>>()
        .join("; ");
    let description = if description.is_empty() {
        layout
            .rows
            .iter()
            .flatten()
            .map(|&i| nodes[i].1.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        description
    };
    // The graph's end nodes name it; a graph that is all cycle is named by its edges.
    let title = if ends.is_empty() {
        description.clone()
    } else {
        ends.join(", ")
    };
    let curves: Vec<String> = layout
        .edges
        .iter()
        .filter_map(|(a, b, is_back)| {
            let (ax, ay) = corner.get(a)?;
            let (bx, by) = corner.get(b)?;
            let (sx, sy) = (ax + NODE_WIDTH, ay + NODE_HEIGHT / 2.0);
            let (tx, ty) = (*bx, by + NODE_HEIGHT / 2.0);
            // Forward edges bend halfway; a back edge (or one within a layer) swings
            // out to the right and comes back in from the left.
            let pull = if *is_back || tx <= sx {
                LAYER_GAP
            } else {
                (tx - sx) / 2.0
            };
            Some(format!(
                "M {} {} C {} {}, {} {}, {} {}",
                coord(sx),
                coord(sy),
                coord(sx + pull),
                coord(sy),
                coord(tx - pull),
                coord(ty),
                coord(tx - 2.0),
                coord(ty)
            ))
        })
        .collect();
    let arrow_ref = format!("url(#{})", ids.arrow);
    let content = html! {
        defs {
            marker id=(ids.arrow) viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"
                markerHeight="7" orient="auto-start-reverse" {
                path d="M 0 0 L 10 5 L 0 10 z" fill=(AXIS_STROKE) {}
            }
        }
        @for d in &curves {
            path d=(d) fill="none" stroke=(AXIS_STROKE) stroke-width="1.5"
                marker-end=(arrow_ref) {}
        }
        @for row in &layout.rows {
            @for &node in row {
                @if let Some((x, y)) = corner.get(&node) {
                    @let (id, label) = &nodes[node];
                    g data-node=(id) data-layer=(layout.layer[node]) {
                        title { (label) }
                        rect x=(coord(*x)) y=(coord(*y)) width=(coord(NODE_WIDTH))
                            height=(coord(NODE_HEIGHT)) rx="6" fill="#eef4fa"
                            stroke=(BAR_FILL) stroke-width="1.5" {}
                        text x=(coord(x + NODE_WIDTH / 2.0)) y=(coord(y + NODE_HEIGHT / 2.0 + 4.0))
                            font-size="12" text-anchor="middle" fill=(TEXT_FILL) {
                            (short_label(label))
                        }
                    }
                }
            }
        }
    };
    frame(&ids, (width, height), &title, &description, false, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(l, v)| (l.to_string(), *v)).collect()
    }

    fn graph(ids: &[&str]) -> Vec<(String, String)> {
        ids.iter()
            .map(|id| (id.to_string(), format!("label {id}")))
            .collect()
    }

    fn edges(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn bar_lengths_are_proportional_to_the_values() {
        let bars = named(&[("a", 1.0), ("b", 2.5), ("c", 5.0), ("d", 0.0)]);
        let (geometry, ticks) = bar_geometry(&bars, 300.0);
        let scale_max = *ticks.last().unwrap();
        assert!(scale_max >= 5.0, "{ticks:?}");
        for g in &geometry {
            assert!(
                (g.length - g.value / scale_max * 300.0).abs() < 1e-9,
                "{g:?}"
            );
        }
        assert!((geometry[2].length / geometry[0].length - 5.0).abs() < 1e-9);
        assert!((geometry[1].length * 2.0 - geometry[2].length).abs() < 1e-9);
        assert!(geometry[3].length.abs() < 1e-12);
        assert!(geometry.iter().all(|g| g.length <= 300.0));
    }

    #[test]
    fn nan_and_infinite_values_count_as_zero_and_negatives_draw_no_bar() {
        let bars = named(&[
            ("p", f64::NAN),
            ("q", f64::INFINITY),
            ("r", -3.0),
            ("s", 1.0),
        ]);
        let (geometry, _) = bar_geometry(&bars, 100.0);
        assert!(geometry[0].value.abs() < 1e-12);
        assert!(geometry[1].value.abs() < 1e-12);
        assert!(geometry[2].length.abs() < 1e-12);
        assert!(geometry[3].length > 0.0);
        let svg = bar_chart("t", &bars, "ε").into_string();
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn charts_are_labelled_images_with_escaped_text() {
        let bars = named(&[("<script>alert(1)</script>", 2.0)]);
        let svg = bar_chart("\"><img onerror=x>", &bars, "ε").into_string();
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("<title id="));
        assert!(svg.contains("<desc id="));
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(!svg.contains("<img"), "{svg}");
        assert!(svg.contains("2 ε"), "the value is text too: {svg}");
        assert!(!svg.contains("style="), "{svg}");
    }

    #[test]
    fn empty_input_draws_a_no_data_chart() {
        for svg in [
            bar_chart("title", &[], "ε"),
            line_chart("title", &[], "x", "y"),
            line_chart("title", &[("s".into(), Vec::new())], "x", "y"),
            dag(&[], &[]),
        ] {
            let svg = svg.into_string();
            assert!(svg.starts_with("<svg"), "{svg}");
            assert!(svg.contains("role=\"img\""), "{svg}");
        }
    }

    #[test]
    fn line_charts_draw_every_series_with_axes_and_legend() {
        let series = vec![
            (
                "a".to_string(),
                vec![(0.0, 1.0), (1.0, 3.0), (2.0, f64::NAN)],
            ),
            ("b".to_string(), vec![(0.0, 2.0)]),
        ];
        let svg = line_chart("growth", &series, "day", "count").into_string();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains(">day<") && svg.contains(">count<"), "{svg}");
        assert!(!svg.contains("NaN"), "{svg}");
        // A single point or a flat series still has a non-empty range.
        let flat = line_chart("flat", &[("c".into(), vec![(5.0, 5.0)])], "x", "y").into_string();
        assert!(!flat.contains("NaN") && !flat.contains("inf"), "{flat}");
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let ticks = nice_ticks(0.0, 7.3);
        assert_eq!(ticks.first().copied(), Some(0.0));
        assert!(*ticks.last().unwrap() >= 7.3);
        assert!(ticks.len() <= 12);
        let ticks = nice_ticks(0.0, 1e-12);
        assert!(*ticks.last().unwrap() >= 1e-12);
        let ticks = nice_ticks(f64::NAN, f64::INFINITY);
        assert!(ticks.len() >= 2);
    }

    #[test]
    fn dag_layers_respect_edges() {
        let nodes = graph(&[
            "product", "release", "job", "model", "version", "dataset", "grant",
        ]);
        let e = edges(&[
            ("dataset", "version"),
            ("version", "job"),
            ("grant", "job"),
            ("model", "job"),
            ("job", "release"),
            ("release", "product"),
            ("dataset", "product"),
        ]);
        let layout = dag_layout(&nodes, &e);
        let at = |id: &str| nodes.iter().position(|(n, _)| n == id).unwrap();
        for (a, b) in &e {
            assert!(
                layout.layer[at(a)] < layout.layer[at(b)],
                "{a} → {b}: {:?}",
                layout.layer
            );
        }
        // Longest path: dataset → version → job → release → product.
        assert_eq!(layout.layer[at("dataset")], 0);
        assert_eq!(layout.layer[at("product")], 4);
        assert!(layout.edges.iter().all(|(_, _, back)| !back));
        // Every node is drawn exactly once.
        let mut drawn: Vec<usize> = layout.rows.iter().flatten().copied().collect();
        drawn.sort_unstable();
        assert_eq!(drawn, (0..nodes.len()).collect::<Vec<_>>());
        let svg = dag(&nodes, &e).into_string();
        assert_eq!(svg.matches("data-node=").count(), nodes.len());
        assert_eq!(svg.matches("marker-end=").count(), e.len());
    }

    #[test]
    fn barycentre_order_puts_neighbours_side_by_side() {
        // Two chains a→c and b→d, listed crosswise in the second layer.
        let nodes = graph(&["a", "b", "d", "c"]);
        let e = edges(&[("a", "c"), ("b", "d")]);
        let layout = dag_layout(&nodes, &e);
        let at = |id: &str| nodes.iter().position(|(n, _)| n == id).unwrap();
        let rank = |id: &str| {
            let node = at(id);
            layout.rows[layout.layer[node]]
                .iter()
                .position(|&m| m == node)
                .unwrap()
        };
        assert_eq!(rank("a") < rank("b"), rank("c") < rank("d"));
    }

    #[test]
    fn a_cycle_terminates_and_is_drawn() {
        let nodes = graph(&["a", "b", "c", "d"]);
        let e = edges(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "d")]);
        let layout = dag_layout(&nodes, &e);
        let backs = layout.edges.iter().filter(|(_, _, back)| *back).count();
        assert_eq!(backs, 1, "{:?}", layout.edges);
        for (a, b, back) in &layout.edges {
            if !back {
                assert!(layout.layer[*a] < layout.layer[*b]);
            }
        }
        // The self-loop is left out; the other four edges are drawn.
        assert_eq!(layout.edges.len(), 4);
        let svg = dag(&nodes, &e).into_string();
        assert_eq!(svg.matches("data-node=").count(), 4);
        // Unknown ids and duplicates are ignored, not fatal.
        let mut dup = nodes.clone();
        dup.push(("a".into(), "again".into()));
        let svg = dag(&dup, &edges(&[("a", "zz"), ("a", "b")])).into_string();
        assert_eq!(svg.matches("data-node=").count(), 4);
    }
}
