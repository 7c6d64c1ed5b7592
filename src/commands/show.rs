//! `show`: one book, its job, and each provider's record, for people or as JSON.

use super::*;

/// The ISBN `show` was given, checked before the database is opened.
pub(super) fn isbn_of(args: &ShowArgs) -> anyhow::Result<crate::isbn::Isbn13> {
    Ok(crate::isbn::parse(&args.isbn)
        .map_err(|reason| UsageError(format!("{:?} is not a valid ISBN ({reason})", args.isbn)))?)
}

pub(super) async fn show(
    store: &AnyStore,
    cli: &Cli,
    args: &ShowArgs,
    isbn: &crate::isbn::Isbn13,
) -> anyhow::Result<ExitCode> {
    let db = &cli.db;
    let Some(record) = store.record(isbn.as_str()).await? else {
        eprintln!(
            "isbn-crawler: {isbn} was never loaded into {}; `isbn-crawler load` it first",
            db
        );
        return Ok(ExitCode::NotLoaded);
    };
    let providers = store.provider_records(isbn.as_str()).await?;
    if args.json {
        let mut all = crate::export::to_json_object(&record, &Column::ALL);
        let records: Vec<serde_json::Value> = providers
            .iter()
            .map(|p| {
                let mut v = serde_json::to_value(p).unwrap_or_default();
                if let Some(raw) = p
                    .raw_json
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r).ok())
                {
                    v["raw_json"] = raw;
                }
                v
            })
            .collect();
        all.insert("providers".into(), records.into());
        say!("{}", serde_json::to_string_pretty(&all)?)?;
    } else {
        put!("{}", render_record(&record, terminal_width()))?;
        put!("{}", render_providers(&record, &providers))?;
    }
    Ok(ExitCode::Success)
}

pub(super) fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&w: &usize| w >= 40)
        .unwrap_or(100)
}

/// Each provider's lookup and record, and where each merged field came from.
pub(super) fn render_providers(r: &Record, providers: &[crate::store::ProviderRecord]) -> String {
    let mut out = String::new();
    if providers.is_empty() {
        return out;
    }
    out.push_str("providers:\n");
    for p in providers {
        let mut line = format!(
            "  {:<12} {} after {} attempt(s)",
            p.provider, p.state, p.attempts
        );
        if let Some(id) = &p.record_id {
            let _ = write!(line, ", record {id}");
        }
        if let Some(t) = &p.title {
            let _ = write!(line, ": {}", shorten(t, 50));
        }
        if let Some(e) = p.last_error.as_ref().filter(|_| p.state != "done") {
            let _ = write!(line, " ({})", shorten(e, 60));
        }
        out.push_str(&crate::terminal::safe(&line));
        out.push('\n');
    }
    if let Some(map) = r
        .provenance
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(p).ok())
    {
        let fields: Vec<String> = map
            .iter()
            .map(|(f, p)| format!("{f} ({})", p.as_str().unwrap_or_default()))
            .collect();
        let _ = writeln!(
            out,
            "fields from: {}",
            crate::terminal::safe(&fields.join(", "))
        );
    }
    out
}

/// A book and its job, for people.
pub fn render_record(r: &Record, width: usize) -> String {
    let cell = |c: Column| c.cell(r).to_text();
    let title = match (cell(Column::Title), cell(Column::Subtitle)) {
        (t, s) if s.is_empty() => t,
        (t, s) => format!("{t}: {s}"),
    };
    let rating = r.average_rating.map_or_else(String::new, |x| {
        format!("{x} ({} ratings)", r.ratings_count.unwrap_or(0))
    });
    let description = crate::domain::plain_text(r.description.as_deref().unwrap_or_default());
    let loaded_from = r.source.as_ref().map_or_else(String::new, |s| {
        let line = r.source_line.unwrap_or(0);
        match &r.source_ref {
            Some(id) => format!("{s} record {line} (control number {id})"),
            None => format!("{s} line {line}"),
        }
    });
    let fields = [
        ("isbn13", r.isbn13.clone()),
        ("isbn10", cell(Column::Isbn10)),
        ("title", title),
        ("authors", cell(Column::Authors)),
        ("publisher", cell(Column::Publisher)),
        ("published", cell(Column::PublishedDate)),
        ("pages", cell(Column::PageCount)),
        ("categories", cell(Column::Categories)),
        ("language", cell(Column::Language)),
        ("ddc", cell(Column::Ddc)),
        ("lcc", cell(Column::Lcc)),
        ("lccn", cell(Column::Lccn)),
        ("attribution", cell(Column::Attribution)),
        ("rating", rating),
        (
            "description",
            shorten(&description, width.saturating_sub(13) * 3),
        ),
        ("volume id", cell(Column::VolumeId)),
        (
            "job",
            format!("{} after {} attempt(s)", r.state, r.attempts),
        ),
        ("last error", cell(Column::LastError)),
        ("loaded from", loaded_from),
        ("loaded at", crate::export::rfc3339(r.created_at)),
        ("updated at", crate::export::rfc3339(r.updated_at)),
        ("fetched at", cell(Column::FetchedAt)),
    ];
    let mut out = String::new();
    for (name, value) in fields.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = writeln!(out, "{name:<12} {}", crate::terminal::safe(value));
    }
    out
}
