//! A small SVG line chart: bytes per node and minute against the number of
//! nodes, one line per class of traffic and one for the total, log-log.
//! Deliberately plain (no axes library, no interactivity): a picture that
//! docs/scale.md can show and a diff can review.

use std::fmt::Write as _;

use meshpost_proto::node::WireClass;

const W: f64 = 640.0;
const H: f64 = 400.0;
const M: f64 = 60.0;
const COLOURS: [&str; 8] = ["#888", "#bbb", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#000"];

pub fn svg(title: &str, points: &[(usize, [f64; 7])]) -> String {
    let series: Vec<(&str, Vec<(f64, f64)>)> = WireClass::ALL
        .iter()
        .map(|c| (c.name(), points.iter().map(|(n, b)| (*n as f64, b[*c as usize])).collect()))
        .chain([("total", points.iter().map(|(n, b)| (*n as f64, b.iter().sum())).collect())])
        .collect();
    let xs: Vec<f64> = points.iter().map(|(n, _)| *n as f64).collect();
    let (x0, x1) = (xs.iter().cloned().fold(f64::MAX, f64::min), xs.iter().cloned().fold(1.0, f64::max));
    let ymax = series.iter().flat_map(|(_, v)| v.iter().map(|p| p.1)).fold(10.0, f64::max);
    let (lx0, lx1) = (x0.max(1.0).log10(), (x1.max(x0 * 1.01)).log10());
    let (ly0, ly1) = (1.0f64, ymax.log10().ceil().max(2.0));
    let px = |x: f64| M + (x.max(1.0).log10() - lx0) / (lx1 - lx0) * (W - 2.0 * M);
    let py = |y: f64| H - M - (y.max(10.0).log10() - ly0) / (ly1 - ly0) * (H - 2.0 * M);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{M}" y="20" font-size="13">{title}</text>"#
    );
    for e in (ly0 as i32)..=(ly1 as i32) {
        let y = py(10f64.powi(e));
        let _ = writeln!(
            s,
            r##"<line x1="{M}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="5" y="{:.1}">1e{e} B</text>"##,
            W - M,
            y + 4.0
        );
    }
    for x in &xs {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{1}" y2="{2}" stroke="#eee"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"##,
            px(*x),
            M,
            H - M,
            H - M + 15.0,
            x
        );
    }
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">nodes</text>"#, W / 2.0, H - 15.0);
    for (k, (name, pts)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let path: Vec<String> = pts.iter().map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        let width = if *name == "total" { 2.5 } else { 1.5 };
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="{width}" points="{}"/>"#,
            path.join(" ")
        );
        let ly = 40.0 + k as f64 * 14.0;
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{}" width="10" height="3" fill="{colour}"/><text x="{}" y="{}">{name}</text>"#,
            W - M - 70.0,
            ly - 4.0,
            W - M - 55.0,
            ly
        );
    }
    s.push_str("</svg>\n");
    s
}
