/*!
Export: jobs and their books as CSV, JSON Lines or a JSON array, or the found books in a
citation format (`citation.rs`), streamed row by row from the store (memory stays flat for any
number of books).

Each [`Column`] knows how to read its value from a [`Record`] as a typed [`Cell`]; the writers
only decide how a cell is spelt. CSV joins lists with `; ` (RFC 4180 quoting by the `csv`
crate); JSON keeps lists as arrays, numbers as numbers, and `raw_json` as an object.
*/

use std::io::Write;

use futures_util::TryStreamExt;
use serde_json::{Map, Value};

use crate::store::{self, JobState, ReadStore, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// One JSON array of objects.
    Json,
    /// CSL-JSON: an array of CSL items (type `book`), as Zotero and pandoc import them.
    #[value(name = "csl-json")]
    CslJson,
    /// RIS (`TY  - BOOK` ... `ER  - `), for EndNote, Zotero and other reference managers.
    Ris,
    /// BibTeX `@book` entries with stable, unique keys.
    Bibtex,
    /// MARC 21 slim XML, one bibliographic record per book (Koha, Evergreen, pymarc).
    Marcxml,
    /// MARC 21 in ISO 2709 (UTF-8), one record per book.
    Marc,
}

impl Format {
    /// Whether the format is one book per entry (the citation formats), not one row per job:
    /// only found books have anything to cite.
    pub fn cites(self) -> bool {
        matches!(
            self,
            Format::CslJson | Format::Ris | Format::Bibtex | Format::Marcxml | Format::Marc
        )
    }
}

/// One exportable column; its name is what `--columns` takes and the header shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Isbn13,
    Isbn10,
    State,
    Title,
    Subtitle,
    Authors,
    Publisher,
    PublishedDate,
    PublishedYear,
    PageCount,
    Categories,
    Language,
    AverageRating,
    RatingsCount,
    Description,
    Thumbnail,
    VolumeId,
    Attempts,
    LastError,
    Source,
    SourceLine,
    SourceRef,
    FetchedAt,
    OpenlibraryKey,
    Provenance,
    Ddc,
    Lcc,
    Lccn,
    Attribution,
    RawJson,
}

impl Column {
    pub const ALL: [Column; 30] = [
        Column::Isbn13,
        Column::Isbn10,
        Column::State,
        Column::Title,
        Column::Subtitle,
        Column::Authors,
        Column::Publisher,
        Column::PublishedDate,
        Column::PublishedYear,
        Column::PageCount,
        Column::Categories,
        Column::Language,
        Column::AverageRating,
        Column::RatingsCount,
        Column::Description,
        Column::Thumbnail,
        Column::VolumeId,
        Column::Attempts,
        Column::LastError,
        Column::Source,
        Column::SourceLine,
        Column::SourceRef,
        Column::FetchedAt,
        Column::OpenlibraryKey,
        Column::Provenance,
        Column::Ddc,
        Column::Lcc,
        Column::Lccn,
        Column::Attribution,
        Column::RawJson,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::Isbn13 => "isbn13",
            Column::Isbn10 => "isbn10",
            Column::State => "state",
            Column::Title => "title",
            Column::Subtitle => "subtitle",
            Column::Authors => "authors",
            Column::Publisher => "publisher",
            Column::PublishedDate => "published_date",
            Column::PublishedYear => "published_year",
            Column::PageCount => "page_count",
            Column::Categories => "categories",
            Column::Language => "language",
            Column::AverageRating => "average_rating",
            Column::RatingsCount => "ratings_count",
            Column::Description => "description",
            Column::Thumbnail => "thumbnail",
            Column::VolumeId => "volume_id",
            Column::Attempts => "attempts",
            Column::LastError => "last_error",
            Column::Source => "source",
            Column::SourceLine => "source_line",
            Column::SourceRef => "source_ref",
            Column::OpenlibraryKey => "openlibrary_key",
            Column::Provenance => "provenance",
            Column::Ddc => "ddc",
            Column::Lcc => "lcc",
            Column::Lccn => "lccn",
            Column::Attribution => "attribution",
            Column::FetchedAt => "fetched_at",
            Column::RawJson => "raw_json",
        }
    }

    /// Every column but `raw_json` (ask for it by name: it is large).
    pub fn defaults() -> Vec<Column> {
        Column::ALL
            .into_iter()
            .filter(|c| *c != Column::RawJson)
            .collect()
    }

    /// Parses `--columns a,b,c`; an unknown name is an error that lists the known ones.
    pub fn parse_list(list: &str) -> Result<Vec<Column>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|name| {
                Column::ALL
                    .into_iter()
                    .find(|c| c.name() == name)
                    .ok_or_else(|| {
                        let known: Vec<&str> = Column::ALL.iter().map(|c| c.name()).collect();
                        format!("unknown column {name:?}; known: {}", known.join(", "))
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|cols| {
                if cols.is_empty() {
                    Err("--columns names no column".to_string())
                } else {
                    Ok(cols)
                }
            })
    }

    pub fn cell(self, r: &Record) -> Cell<'_> {
        fn text(v: &Option<String>) -> Cell<'_> {
            v.as_deref().map_or(Cell::Null, Cell::Text)
        }
        let int = |v: Option<i64>| v.map_or(Cell::Null, Cell::Int);
        let list = |v: &Option<String>| {
            v.as_deref()
                .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
                .map_or(Cell::Null, Cell::List)
        };
        match self {
            Column::Isbn13 => Cell::Text(&r.isbn13),
            Column::Isbn10 => text(&r.isbn10),
            Column::State => Cell::Text(&r.state),
            Column::Title => text(&r.title),
            Column::Subtitle => text(&r.subtitle),
            Column::Authors => list(&r.authors),
            Column::Publisher => text(&r.publisher),
            Column::PublishedDate => text(&r.published_date),
            Column::PublishedYear => int(r.published_year),
            Column::PageCount => int(r.page_count),
            Column::Categories => list(&r.categories),
            Column::Language => text(&r.language),
            Column::AverageRating => r.average_rating.map_or(Cell::Null, Cell::Real),
            Column::RatingsCount => int(r.ratings_count),
            Column::Description => text(&r.description),
            Column::Thumbnail => text(&r.thumbnail),
            Column::VolumeId => text(&r.volume_id),
            Column::Attempts => Cell::Int(r.attempts),
            Column::LastError => text(&r.last_error),
            Column::Source => text(&r.source),
            Column::SourceLine => int(r.source_line),
            Column::SourceRef => text(&r.source_ref),
            Column::OpenlibraryKey => text(&r.openlibrary_key),
            Column::Provenance => r
                .provenance
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .map_or(Cell::Null, Cell::Json),
            Column::Ddc => text(&r.ddc),
            Column::Lcc => text(&r.lcc),
            Column::Lccn => text(&r.lccn),
            Column::Attribution => text(&r.attribution),
            Column::FetchedAt => r.fetched_at.map_or(Cell::Null, Cell::Time),
            Column::RawJson => r
                .raw_json
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .map_or(Cell::Null, Cell::Json),
        }
    }
}

/// A typed value of one column of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Text(&'a str),
    Int(i64),
    Real(f64),
    /// Unix ms; written as RFC 3339 UTC.
    Time(i64),
    List(Vec<String>),
    Json(Value),
}

impl Cell<'_> {
    /// The CSV spelling: lists joined with `; `, nothing for null.
    pub fn to_text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Text(s) => (*s).to_string(),
            Cell::Int(n) => n.to_string(),
            Cell::Real(x) => x.to_string(),
            Cell::Time(ms) => rfc3339(*ms),
            Cell::List(items) => items.join("; "),
            Cell::Json(v) => v.to_string(),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Text(s) => Value::String((*s).to_string()),
            Cell::Int(n) => Value::from(*n),
            Cell::Real(x) => Value::from(*x),
            Cell::Time(ms) => Value::String(rfc3339(*ms)),
            Cell::List(items) => Value::from(items.clone()),
            Cell::Json(v) => v.clone(),
        }
    }
}

/// A text cell as a spreadsheet must show it: one starting with `=`, `+`, `-`, `@`, a tab or
/// a carriage return would be read as a formula (`=HYPERLINK(...)` from a hostile title), so
/// it gets a leading `'`, the OWASP rule. Numbers and ISBNs never start so; JSON, MARC and
/// citation formats are never altered.
pub fn spreadsheet_safe(text: &str) -> std::borrow::Cow<'_, str> {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

/// How a CSV export writes text cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cells {
    /// Formula-like text made inert ([`spreadsheet_safe`]): the default.
    #[default]
    Safe,
    /// Every cell as stored (`--raw-cells`).
    Raw,
}

impl Cells {
    /// `cell`'s CSV text under this rule: only text (and lists, which are text) is touched.
    pub fn csv_text(self, cell: &Cell<'_>) -> String {
        let text = cell.to_text();
        match (self, cell) {
            (Cells::Safe, Cell::Text(_) | Cell::List(_)) => spreadsheet_safe(&text).into_owned(),
            _ => text,
        }
    }
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// A record as a JSON object of `columns`.
pub fn to_json_object(r: &Record, columns: &[Column]) -> Map<String, Value> {
    columns
        .iter()
        .map(|c| (c.name().to_string(), c.cell(r).to_json()))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    // The cause is the error's source, not part of its text: `{:#}` prints it once.
    #[error("writing the export")]
    Io(#[from] std::io::Error),
    #[error("writing the export")]
    Csv(#[from] csv::Error),
    #[error("writing the export")]
    Json(#[from] serde_json::Error),
}

/// Writes every record of `states` to `out`; returns how many rows were written.
pub async fn export<S: ReadStore, W: Write>(
    store: &S,
    states: &[JobState],
    columns: &[Column],
    format: Format,
    cells: Cells,
    out: W,
) -> Result<u64, Error> {
    let mut rows = store.records(states);
    let mut n = 0u64;
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(columns.iter().map(|c| c.name()))?;
            while let Some(r) = rows.try_next().await? {
                w.write_record(columns.iter().map(|c| cells.csv_text(&c.cell(&r))))?;
                n += 1;
            }
            w.flush()?;
        }
        Format::Jsonl | Format::Json => {
            let mut out = out;
            let array = format == Format::Json;
            if array {
                out.write_all(b"[")?;
            }
            while let Some(r) = rows.try_next().await? {
                if array && n > 0 {
                    out.write_all(b",")?;
                }
                if array {
                    out.write_all(b"\n")?;
                }
                serde_json::to_writer(&mut out, &to_json_object(&r, columns))?;
                if !array {
                    out.write_all(b"\n")?;
                }
                n += 1;
            }
            if array {
                out.write_all(b"\n]\n")?;
            }
            out.flush()?;
        }
        _ => n = entries(&mut rows, format, out).await?,
    }
    Ok(n)
}

/// The found books of `rows` in a citation or library format, one entry each; returns how
/// many.
async fn entries<W: Write>(
    rows: &mut futures_util::stream::BoxStream<'_, Result<Record, store::Error>>,
    format: Format,
    mut out: W,
) -> Result<u64, Error> {
    use crate::{citation, marc_out};
    let now = crate::clock::now_ms();
    match format {
        Format::CslJson => out.write_all(b"[")?,
        Format::Marcxml => out.write_all(marc_out::XML_HEAD.as_bytes())?,
        _ => {}
    }
    let mut n = 0u64;
    while let Some(r) = rows.try_next().await? {
        if r.state != JobState::Done.as_str() {
            continue;
        }
        match format {
            Format::CslJson => {
                out.write_all(if n > 0 { b",\n" } else { b"\n" })?;
                serde_json::to_writer(&mut out, &citation::csl_item(&r))?;
            }
            Format::Ris => citation::write_ris(&mut out, &r)?,
            Format::Bibtex => citation::write_bibtex(&mut out, &r)?,
            Format::Marcxml => marc_out::write_xml(&mut out, &marc_out::record(&r, now))?,
            _ => marc_out::write_iso2709(&mut out, &marc_out::record(&r, now))?,
        }
        n += 1;
    }
    match format {
        Format::CslJson => out.write_all(b"\n]\n")?,
        Format::Marcxml => out.write_all(marc_out::XML_TAIL.as_bytes())?,
        _ => {}
    }
    out.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_lists_parse_and_unknown_names_are_refused() {
        assert_eq!(
            Column::parse_list("isbn13, title,published_year"),
            Ok(vec![Column::Isbn13, Column::Title, Column::PublishedYear])
        );
        let err = Column::parse_list("isbn13,colour").expect_err("unknown");
        assert!(
            err.contains("\"colour\"") && err.contains("published_year"),
            "{err}"
        );
        assert!(Column::parse_list(" , ").is_err());
        assert!(!Column::defaults().contains(&Column::RawJson));
    }

    #[test]
    fn cells_spell_lists_numbers_and_nulls() {
        let r = Record {
            isbn13: "9780306406157".into(),
            authors: Some(r#"["A, B","C"]"#.into()),
            page_count: Some(12),
            average_rating: Some(4.5),
            fetched_at: Some(0),
            raw_json: Some(r#"{"id":"x"}"#.into()),
            ..Record::default()
        };
        assert_eq!(Column::Authors.cell(&r).to_text(), "A, B; C");
        assert_eq!(
            Column::Authors.cell(&r).to_json(),
            serde_json::json!(["A, B", "C"])
        );
        assert_eq!(Column::PageCount.cell(&r).to_json(), serde_json::json!(12));
        assert_eq!(Column::AverageRating.cell(&r).to_text(), "4.5");
        assert_eq!(Column::Title.cell(&r), Cell::Null);
        assert_eq!(Column::FetchedAt.cell(&r).to_text(), "1970-01-01T00:00:00Z");
        assert_eq!(Column::RawJson.cell(&r).to_json()["id"], "x");
    }

    #[test]
    fn formula_like_text_is_made_inert_and_nothing_else_is_touched() {
        for hostile in [
            "=HYPERLINK(\"http://evil.example\",\"open\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(spreadsheet_safe(hostile), format!("'{hostile}"));
        }
        for plain in ["Gilead", "9780002005883", "", "a=b", "'quoted"] {
            assert_eq!(spreadsheet_safe(plain), plain);
        }
        let list = Cell::List(vec!["@a".into(), "b".into()]);
        assert_eq!(Cells::Safe.csv_text(&list), "'@a; b");
        assert_eq!(Cells::Raw.csv_text(&list), "@a; b");
        assert_eq!(
            Cells::Safe.csv_text(&Cell::Int(-5)),
            "-5",
            "a number is a number"
        );
        assert_eq!(Cells::Safe.csv_text(&Cell::Real(-0.5)), "-0.5");
    }
}
