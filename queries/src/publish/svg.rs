//! Inline SVG charts for the published page: no script, no external resource,
//! coordinates written with fixed precision so the bytes are stable.

use std::fmt::Write as _;

use super::numbers;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least `max`.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|v| *v >= max).unwrap_or(10.0 * p)
}

/// A grouped horizontal bar chart: one label per group, two series.
pub fn bars(title: &str, labels: &[String], a: (&str, &[f64]), b: (&str, &[f64])) -> String {
    let (left, width, row) = (150.0, 560.0, 34.0);
    let height = 50.0 + row * labels.len() as f64 + 30.0;
    let max = nice_max(a.1.iter().chain(b.1).copied().fold(0.0, f64::max));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0} {height:.0}" width="{w:.0}" height="{height:.0}" role="img" aria-label="{t}">"#,
        w = left + width + 90.0,
        t = esc(title)
    );
    let _ = write!(s, r#"<text x="0" y="18" class="ct">{}</text>"#, esc(title));
    for (i, label) in labels.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="cl" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + 17.0,
            esc(label)
        );
        for (k, (values, class)) in [(a.1, "s1"), (b.1, "s2")].iter().enumerate() {
            let v = values.get(i).copied().unwrap_or(0.0);
            let w = width * v / max;
            let yy = y + 4.0 + 13.0 * k as f64;
            let _ = write!(s, r#"<rect x="{left:.1}" y="{yy:.1}" width="{w:.1}" height="12" class="{class}"/>"#);
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" class="cv">{}</text>"#,
                left + w + 4.0,
                yy + 10.0,
                numbers::grouped(v)
            );
        }
    }
    let y = 40.0 + row * labels.len() as f64 + 8.0;
    let _ = write!(
        s,
        r#"<rect x="{left:.1}" y="{y:.1}" width="12" height="12" class="s1"/><text x="{:.1}" y="{:.1}" class="cl">{}</text>"#,
        left + 16.0,
        y + 10.0,
        esc(a.0)
    );
    let _ = write!(
        s,
        r#"<rect x="{:.1}" y="{y:.1}" width="12" height="12" class="s2"/><text x="{:.1}" y="{:.1}" class="cl">{}</text>"#,
        left + 260.0,
        left + 276.0,
        y + 10.0,
        esc(b.0)
    );
    s.push_str("</svg>");
    s
}

/// A line chart over the months 1–12 with two series; months without data are gaps.
pub fn monthly(
    title: &str,
    month_label: &dyn Fn(u8) -> String,
    a: (&str, &[(u8, f64)]),
    b: (&str, &[(u8, f64)]),
) -> String {
    let (left, top, width, height) = (70.0, 36.0, 600.0, 220.0);
    let max = nice_max(a.1.iter().chain(b.1).map(|(_, v)| *v).fold(0.0, f64::max));
    let x = |m: u8| left + width * (m as f64 - 1.0) / 11.0;
    let y = |v: f64| top + height - height * v / max;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0} {h:.0}" width="{w:.0}" height="{h:.0}" role="img" aria-label="{t}">"#,
        w = left + width + 30.0,
        h = top + height + 60.0,
        t = esc(title)
    );
    let _ = write!(s, r#"<text x="0" y="18" class="ct">{}</text>"#, esc(title));
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let _ = write!(
            s,
            r#"<line x1="{left:.1}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="cl" text-anchor="end">{}</text>"#,
            left + width,
            left - 6.0,
            y(v) + 4.0,
            numbers::grouped(v),
            yy = y(v)
        );
    }
    for m in 1..=12u8 {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="cl" text-anchor="middle">{}</text>"#,
            x(m),
            top + height + 18.0,
            esc(&month_label(m))
        );
    }
    for (points, class) in [(a.1, "l1"), (b.1, "l2")] {
        // Consecutive months form one polyline; a missing month breaks it.
        let mut runs: Vec<Vec<(u8, f64)>> = Vec::new();
        for &(m, v) in points {
            match runs.last_mut() {
                Some(r) if r.last().is_some_and(|(pm, _)| pm + 1 == m) => r.push((m, v)),
                _ => runs.push(vec![(m, v)]),
            }
        }
        for r in runs {
            let pts: Vec<String> = r.iter().map(|(m, v)| format!("{:.1},{:.1}", x(*m), y(*v))).collect();
            let _ = write!(s, r#"<polyline points="{}" class="{class}"/>"#, pts.join(" "));
            for (m, v) in r {
                let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3" class="{class}d"/>"#, x(m), y(v));
            }
        }
    }
    let ly = top + height + 42.0;
    let _ = write!(
        s,
        r#"<line x1="{left:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" class="l1"/><text x="{:.1}" y="{:.1}" class="cl">{}</text>"#,
        left + 24.0,
        left + 30.0,
        ly + 4.0,
        esc(a.0)
    );
    let _ = write!(
        s,
        r#"<line x1="{:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" class="l2"/><text x="{:.1}" y="{:.1}" class="cl">{}</text>"#,
        left + 280.0,
        left + 304.0,
        left + 310.0,
        ly + 4.0,
        esc(b.0)
    );
    s.push_str("</svg>");
    s
}
