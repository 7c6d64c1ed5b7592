/*!
`report`: one self-contained HTML page that shows a crawl at a glance.

The numbers come from [`ReadStore::overview`](crate::store::ReadStore::overview), aggregated in the
database; this module only lays them out. The page has inline CSS and inline SVG charts
(`svg.rs`), needs no script and no network, reads on a phone, follows the light or dark scheme
and prints. Every value from the database goes through maud, which escapes it: a book titled
`<script>` is text.

Headline numbers carry ids (`#loaded`, `#found`, ...) so tests and scripts can read them.
*/

pub mod svg;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::store::{Completeness, Overview};

/// What the page says about where it came from.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The database, as the user named it.
    pub database: String,
    /// When the report was made (RFC 3339).
    pub generated: String,
    /// Rewritten during a crawl: refresh every 30 s.
    pub live: bool,
}

const CSS: &str = r#"
:root { color-scheme: light dark; --fg: #1d2330; --bg: #ffffff; --muted: #5b6475; --line: #d9dde5;
  --accent: #2f6fdf; --card: #f4f6fa; --bad: #c0392b; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e9ef; --bg: #14171d; --muted: #9aa3b2; --line: #2c323d; --accent: #6ea1ff;
    --card: #1c2029; --bad: #ff7b6b; } }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); margin: 0 auto; max-width: 960px; padding: 16px; }
h1 { font-size: 1.5em; margin: 0 0 4px; } h2 { font-size: 1.15em; margin: 28px 0 8px;
  border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.meta, .note { color: var(--muted); font-size: 0.9em; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(130px, 1fr)); gap: 10px;
  margin-top: 14px; }
.card { background: var(--card); border-radius: 8px; padding: 10px 12px; }
.card .n { font-size: 1.6em; font-weight: 600; display: block; }
.card .l { color: var(--muted); font-size: 0.85em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 0.9em; }
svg.chart { width: 100%; height: auto; color: var(--fg); }
svg .bar { fill: var(--accent); } svg .axis { stroke: currentColor; stroke-width: 1; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .budget { stroke: var(--bad); stroke-width: 2; stroke-dasharray: 6 4; }
svg .tick { fill: currentColor; font-size: 11px; }
@media print { body { max-width: none; } .card { border: 1px solid #999; } h2 { break-after: avoid; }
  table, svg { break-inside: avoid; } }
"#;

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn share(part: i64, c: &Completeness) -> String {
    percent(part.max(0) as u64, c.records.max(0) as u64)
}

fn time(ms: i64) -> String {
    crate::export::rfc3339(ms)
}

fn duration(start: i64, end: Option<i64>) -> String {
    end.map_or_else(
        || "running or killed".into(),
        |e| {
            crate::progress::human_duration(std::time::Duration::from_millis(
                (e - start).max(0) as u64
            ))
        },
    )
}

/// The whole page.
pub fn render(o: &Overview, meta: &Meta) -> String {
    let s = &o.status;
    let n = |state: &str| s.jobs.get(state).copied().unwrap_or(0);
    let open = n("pending") + n("in_progress");
    let budget = o.status.eta.as_ref().map_or(1000, |e| e.daily_budget);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if meta.live { meta http-equiv="refresh" content="30"; }
                title { "isbn-crawler report: " (meta.database) }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "isbn-crawler report" }
                p.meta {
                    "Database " code { (meta.database) } " · made " (meta.generated)
                    " · isbn-crawler " (env!("CARGO_PKG_VERSION"))
                    @if meta.live { " · rewritten every 30 s while the crawl runs" }
                }
                div.cards {
                    (card("loaded", s.total, "ISBNs loaded"))
                    (card("found", n("done"), "found"))
                    (card("not-found", n("not_found"), "not found"))
                    (card("failed", n("failed"), "failed"))
                    (card("pending", open, "pending"))
                    div.card { span.n #coverage { (percent(n("done"), s.total)) } span.l { "coverage of the valid ISBNs" } }
                }
                (sources(o))
                (providers(o))
                (groups(o))
                (rejects(o))
                (failures(o))
                (quota(o, budget))
                (runs(o))
                (books(o))
            }
        }
    }
    .into_string()
}

fn card(id: &str, value: u64, label: &str) -> Markup {
    html! { div.card { span.n id=(id) { (value) } span.l { (label) } } }
}

fn sources(o: &Overview) -> Markup {
    html! {
        @if !o.sources.is_empty() {
            h2 { "Input files" }
            div.scroll { table {
                tr { th { "file" } th.n { "lines read" } th.n { "queued" } th.n { "rejected" } th.n { "found" }
                     th.n { "not found" } th.n { "failed" } th.n { "open" } }
                @for f in &o.sources {
                    tr { td { (f.source) } td.n { (f.lines) } td.n { (f.queued) } td.n { (f.rejected) } td.n { (f.found) }
                         td.n { (f.not_found) } td.n { (f.failed) } td.n { (f.open) } }
                }
            } }
            p.note { "Lines read count every load of the file; each book counts for the file that first named it, so a file's queued books are those no earlier file named." }
        }
    }
}

fn providers(o: &Overview) -> Markup {
    let states = ["pending", "in_progress", "done", "not_found", "failed"];
    let completeness = |name: &str, c: &Completeness| {
        html! {
            tr { td { (name) } td.n { (c.records) } td.n { (share(c.description, c)) }
                 td.n { (share(c.page_count, c)) } td.n { (share(c.cover, c)) }
                 td.n { (share(c.authors, c)) } td.n { (share(c.publisher, c)) }
                 td.n { (share(c.year, c)) } }
        }
    };
    html! {
        @if !o.providers.is_empty() {
            h2 { "Sources" }
            div.scroll { table {
                tr { th { "provider" } @for st in states { th.n { (st.replace('_', " ")) } } th.n { "found only here" } }
                @for p in &o.providers {
                    tr { td { (p.provider) }
                         @for st in states { td.n { (p.lookups.get(st).copied().unwrap_or(0)) } }
                         td.n { (p.only_here) } }
                }
            } }
            h2 { "Field completeness" }
            div.scroll { table {
                tr { th { "records" } th.n { "books" } th.n { "description" } th.n { "pages" }
                     th.n { "cover" } th.n { "authors" } th.n { "publisher" } th.n { "year" } }
                @for p in &o.providers { (completeness(&p.provider, &p.completeness)) }
                (completeness("merged", &o.merged))
            } }
            @for (p, who) in attributions(o) {
                p.note { "Records from " (who) " (" (p) ") are reused under its licence: name the source and the record's date. Each such book's attribution column (export, books_flat, show) says both." }
            }
        }
    }
}

/// The providers with records whose licence asks to be named, and whom to name.
fn attributions(o: &Overview) -> Vec<(&str, &'static str)> {
    o.providers
        .iter()
        .filter(|p| p.completeness.records > 0)
        .filter_map(|p| {
            let spec = crate::providers::registry::parse(&p.provider)?;
            Some((
                p.provider.as_str(),
                crate::providers::registry::spec(spec).attribution?,
            ))
        })
        .collect()
}

/// Books per registration group and who found them: where a catalogue is missing.
fn groups(o: &Overview) -> Markup {
    let providers: Vec<&str> = o.providers.iter().map(|p| p.provider.as_str()).collect();
    html! {
        @if !o.groups.is_empty() {
            h2 id="groups" { "Registration groups" }
            div.scroll { table {
                tr { th { "group" } th { "area" } th.n { "books" } th.n { "found" }
                     @for p in &providers { th.n { (p) } } }
                @for g in o.groups.iter().take(20) {
                    tr { td { (g.group) } td { (g.name.unwrap_or("")) } td.n { (g.books) }
                         td.n { (percent(g.found, g.books)) }
                         @for p in &providers { td.n { (g.by_provider.get(*p).copied().unwrap_or(0)) } } }
                }
            } }
            p.note { "An ISBN's registration group names the agency that gave it out, most often a language area. A group with few books found is where a national catalogue (--providers, --route) would help most." }
        }
    }
}

fn rejects(o: &Overview) -> Markup {
    html! {
        @if !o.rejects.is_empty() {
            h2 { "Rejected lines" }
            div.scroll { table {
                tr { th { "reason" } th.n { "lines" } th { "examples" } }
                @for g in &o.rejects {
                    tr { td { (g.reason) } td.n { (g.count) }
                         td { @for e in &g.examples { div { (e.source) ":" (e.line) " " code { (e.raw) } } } } }
                }
            } }
            p.note { "Fix them in a spreadsheet: " code { "isbn-crawler rejects --format csv --output fix-me.csv" }
                     ", then load the fixed file." }
        }
    }
}

fn failures(o: &Overview) -> Markup {
    html! {
        @if !o.failures.is_empty() {
            h2 { "Why lookups were not found or failed" }
            div.scroll { table {
                tr { th { "provider" } th { "state" } th { "last error" } th.n { "lookups" } }
                @for f in &o.failures {
                    tr { td { (f.provider) } td { (f.state) } td { (f.error) } td.n { (f.count) } }
                }
            } }
        }
    }
}

fn quota(o: &Overview, budget: u64) -> Markup {
    let days: Vec<(String, f64)> = o
        .quota_days
        .iter()
        .map(|(d, n)| (d.clone(), *n as f64))
        .collect();
    let eta = o.status.eta.as_ref();
    let owner = crate::providers::registry::quota_owner();
    html! {
        @if !days.is_empty() || eta.is_some() {
            h2 { (owner) "'s quota" }
            @if !days.is_empty() {
                (svg::columns(&format!("{owner} requests per quota day (Pacific), with the daily budget"),
                    &days, Some((budget as f64, "daily budget"))))
            }
            @if let Some(e) = eta {
                p #estimate {
                    (e.google_open) " " (owner) " lookups still open; "
                    (format!("{:.2}", e.books_per_request)) " books per request in the latest runs; daily budget "
                    (e.daily_budget)
                    @if e.default_budget { " (" (owner) "'s default; none was set)" }
                    ": about " (format!("{:.0}", e.days.ceil())) " more quota days at this budget."
                }
            }
        }
    }
}

fn runs(o: &Overview) -> Markup {
    html! {
        @if !o.runs.is_empty() {
            h2 { "Runs" }
            div.scroll { table {
                tr { th.n { "run" } th { "command" } th { "started" } th { "took" } th { "stop" }
                     th.n { "requests" } th.n { "found" } th.n { "books per request" } }
                @for r in &o.runs {
                    tr { td.n { (r.id) } td { (r.command) } td { (time(r.started_at)) }
                         td { (duration(r.started_at, r.ended_at)) }
                         td { (r.stop_reason.as_deref().unwrap_or("–")) } td.n { (r.requests) }
                         td.n { (r.done) }
                         td.n { (r.books_per_request.map_or("–".to_string(), |b| format!("{b:.2}"))) } }
                }
            } }
        }
    }
}

fn books(o: &Overview) -> Markup {
    let decades: Vec<(String, f64)> = o
        .decades
        .iter()
        .map(|(d, n)| (format!("{d}s"), *n as f64))
        .collect();
    html! {
        @if !decades.is_empty() {
            h2 { "Published" }
            (svg::columns("Books per decade of publication", &decades, None))
        }
        @if !o.recent.is_empty() {
            h2 { "The latest books" }
            div.scroll { table #recent {
                tr { th { "isbn13" } th { "title" } th { "authors" } th.n { "year" } th { "fields from" } }
                @for b in &o.recent {
                    tr { td { code { (b.isbn13) } } td { (b.title.as_deref().unwrap_or("")) }
                         td { (b.authors.as_deref().unwrap_or("")) }
                         td.n { (b.published_year.map(|y| y.to_string()).unwrap_or_default()) }
                         td { (provenance_summary(b.provenance.as_deref())) } }
                }
            } }
        }
        @if !o.languages.is_empty() { h2 { "Languages" } (svg::rows("Top languages", &o.languages)) }
        @if !o.publishers.is_empty() { h2 { "Publishers" } (svg::rows("Top publishers", &o.publishers)) }
        @if !o.categories.is_empty() { h2 { "Categories" } (svg::rows("Top categories and subjects", &o.categories)) }
    }
}

/// `{"title":"google","page_count":"openlibrary"}` as `google: title; openlibrary:
/// page_count` (a provider's fields named when three or fewer, else counted), for the page's
/// latest books and the demo's table.
pub fn provenance_summary(provenance: Option<&str>) -> String {
    let Some(map) = provenance
        .and_then(|p| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(p).ok())
    else {
        return String::new();
    };
    let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (field, provider) in map {
        by.entry(provider.as_str().unwrap_or_default().to_string())
            .or_default()
            .push(field);
    }
    by.into_iter()
        .map(|(p, fields)| match fields.len() {
            n if n <= 3 => format!("{p}: {}", fields.join(", ")),
            n => format!("{p}: {n} fields"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_database_renders_with_its_headline_only() {
        let meta = Meta {
            database: "<db \"x\">".into(),
            generated: "2026-11-26T00:00:00Z".into(),
            live: true,
        };
        let page = render(&Overview::default(), &meta);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("http-equiv=\"refresh\""));
        assert!(page.contains("&lt;db &quot;x&quot;&gt;"), "escaped");
        assert!(!page.contains("<h2>Runs</h2>"));
    }
}
