/*!
Input reading: turns a text, CSV or TSV list into a stream of valid ISBNs and rejected lines.

Readers are push-style (`emit` is called per item) and stream: memory stays flat however long
the file is, because nothing but the current line (capped at [`MAX_LINE`]) is held.

Format: `--format`, or sniffed from the first content line (a tab means TSV, a comma CSV,
otherwise one ISBN per line). CSV columns: `--column NAME`, or every column named like an
ISBN-13 (`isbn13`, `isbn_13`, `ean`) then like an ISBN-10 (`isbn`, `isbn10`), tried in that
order on each row; a row is rejected only when none of them holds a valid ISBN.
*/

use std::io::{self, BufRead};

use crate::isbn::{self, Isbn13, RejectReason};
use crate::store::Reject;

/// Lines longer than this are rejected (`line-too-long`) without being held in memory.
pub const MAX_LINE: usize = 64 * 1024;
/// How much of a rejected line is kept.
pub const MAX_RAW: usize = 1000;
/// A NUL byte in this many leading bytes marks a binary file.
const SNIFF: usize = 8 * 1024;

const ISBN13_NAMES: [&str; 4] = ["isbn13", "ean", "ean13", "isbn13ean"];
const ISBN10_NAMES: [&str; 3] = ["isbn", "isbn10", "isbns"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Sniff from the first content line.
    #[default]
    Auto,
    /// One ISBN per line.
    Text,
    /// Comma-separated with a header row.
    Csv,
    /// Tab-separated with a header row.
    Tsv,
}

#[derive(Debug, Clone, Default)]
pub struct InputOptions {
    pub format: Format,
    pub column: Option<String>,
}

/// One content line of an input.
#[derive(Debug, Clone)]
pub enum Item {
    Valid { line: u64, isbn: Isbn13 },
    Rejected(Reject),
}

/// A problem with a whole input, as opposed to one of its lines.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    #[error("no column named {wanted:?}; the header has: {}", .header.join(", "))]
    ColumnNotFound { wanted: String, header: Vec<String> },
    #[error("no ISBN column (isbn13, ean, isbn, isbn10) in the header: {}; name one with --column", .header.join(", "))]
    NoIsbnColumn { header: Vec<String> },
    #[error("CSV: {0}")]
    Csv(String),
}

/// What a source turned out to hold, for the user's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    Empty,
    Binary,
    Text,
    Delimited(u8),
}

/// Reads every item of `reader`, calling `emit` for each. Returns what kind of input it was.
pub fn read_items<R: BufRead>(
    mut reader: R,
    opts: &InputOptions,
    emit: &mut dyn FnMut(Item),
) -> Result<Detected, Error> {
    let head = fill(&mut reader)?;
    if head.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    let head = fill(&mut reader)?;
    if head.is_empty() {
        return Ok(Detected::Empty);
    }
    if head[..head.len().min(SNIFF)].contains(&0) {
        emit(Item::Rejected(Reject {
            line: 1,
            raw: raw_text(&head[..head.len().min(64)]),
            reason: RejectReason::BinaryFile,
        }));
        return Ok(Detected::Binary);
    }
    let format = match opts.format {
        Format::Auto => sniff(head),
        f => f,
    };
    match format {
        Format::Csv => read_delimited(reader, b',', opts, emit).map(|()| Detected::Delimited(b',')),
        Format::Tsv => {
            read_delimited(reader, b'\t', opts, emit).map(|()| Detected::Delimited(b'\t'))
        }
        Format::Text | Format::Auto => read_text(reader, emit).map(|()| Detected::Text),
    }
}

fn fill<R: BufRead>(reader: &mut R) -> io::Result<&[u8]> {
    // Retry EINTR; the final call only returns what is already buffered.
    while let Err(e) = reader.fill_buf() {
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    reader.fill_buf()
}

/// The format of an input from its first content line (blank and `#` lines skipped).
fn sniff(head: &[u8]) -> Format {
    let first = head
        .split(|&b| b == b'\n')
        .map(|l| l.trim_ascii())
        .find(|l| !l.is_empty() && !l.starts_with(b"#"));
    match first {
        Some(l) if l.contains(&b'\t') => Format::Tsv,
        Some(l) if l.contains(&b',') => Format::Csv,
        _ => Format::Text,
    }
}

/// A header name reduced to what matters: `ISBN-13`, `isbn_13` and `Isbn13` are all `isbn13`.
fn normalise_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The text kept of a rejected line: lossy UTF-8, cut at [`MAX_RAW`] characters.
pub fn raw_text(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    match s.char_indices().nth(MAX_RAW) {
        Some((cut, _)) => s[..cut].to_string(),
        None => s.into_owned(),
    }
}

/// Reads one line into `buf` (without its terminator), keeping at most `max` bytes.
/// Returns the bytes consumed (0 at the end) and whether the line was cut.
fn read_line_bounded<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<(usize, bool)> {
    let (mut total, mut cut) = (0usize, false);
    loop {
        let available = fill(r)?;
        if available.is_empty() {
            break;
        }
        let (used, found) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        let take = used.min(max.saturating_sub(buf.len()));
        buf.extend_from_slice(&available[..take]);
        cut |= take < used && !(found && take + 1 == used);
        r.consume(used);
        total += used;
        if found {
            break;
        }
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok((total, cut))
}

fn read_text<R: BufRead>(mut reader: R, emit: &mut dyn FnMut(Item)) -> Result<(), Error> {
    let mut buf = Vec::with_capacity(256);
    let (mut line, mut seen_content) = (0u64, false);
    loop {
        buf.clear();
        let (n, cut) = read_line_bounded(&mut reader, &mut buf, MAX_LINE)?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        let reject = |reason| {
            Item::Rejected(Reject {
                line,
                raw: raw_text(&buf),
                reason,
            })
        };
        if cut {
            emit(reject(RejectReason::LineTooLong));
            continue;
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            emit(reject(RejectReason::NotUtf8));
            continue;
        };
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let first = !seen_content;
        seen_content = true;
        match isbn::parse(text) {
            Ok(isbn) => emit(Item::Valid { line, isbn }),
            // A one-column list often starts with its column name.
            Err(_) if first && is_isbn_column_name(text) => {}
            Err(reason) => emit(reject(reason)),
        }
    }
}

fn is_isbn_column_name(name: &str) -> bool {
    let n = normalise_name(name);
    ISBN13_NAMES.contains(&n.as_str()) || ISBN10_NAMES.contains(&n.as_str())
}

/// The columns to try on each row, best first.
fn candidate_columns(header: &[String], wanted: Option<&str>) -> Result<Vec<usize>, Error> {
    if let Some(wanted) = wanted {
        let exact = header.iter().position(|h| h.trim() == wanted);
        let loose = || {
            header
                .iter()
                .position(|h| normalise_name(h) == normalise_name(wanted))
        };
        return match exact.or_else(loose) {
            Some(i) => Ok(vec![i]),
            None => Err(Error::ColumnNotFound {
                wanted: wanted.to_string(),
                header: header.to_vec(),
            }),
        };
    }
    let names: Vec<String> = header.iter().map(|h| normalise_name(h)).collect();
    let mut columns = Vec::new();
    for group in [&ISBN13_NAMES[..], &ISBN10_NAMES[..]] {
        for wanted in group {
            columns.extend(names.iter().position(|n| n == wanted));
        }
    }
    if columns.is_empty() {
        if header.len() == 1 {
            return Ok(vec![0]);
        }
        return Err(Error::NoIsbnColumn {
            header: header.to_vec(),
        });
    }
    Ok(columns)
}

fn read_delimited<R: BufRead>(
    reader: R,
    delimiter: u8,
    opts: &InputOptions,
    emit: &mut dyn FnMut(Item),
) -> Result<(), Error> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .comment(Some(b'#'))
        .has_headers(true)
        .from_reader(reader);
    let header: Vec<String> = rdr
        .byte_headers()
        .map_err(csv_error)?
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    let columns = candidate_columns(&header, opts.column.as_deref())?;
    let mut record = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => return Err(csv_error(e)),
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != header.len() {
            if record.len() == 1 && record[0].trim_ascii().is_empty() {
                continue;
            }
            emit(Item::Rejected(Reject {
                line,
                raw: record_text(&record, delimiter),
                reason: RejectReason::RaggedRow,
            }));
            continue;
        }
        match row_isbn(&record, &columns) {
            Ok(isbn) => emit(Item::Valid { line, isbn }),
            Err(reason) => emit(Item::Rejected(Reject {
                line,
                raw: record_text(&record, delimiter),
                reason,
            })),
        }
    }
}

/// The first candidate column that holds a valid ISBN, or the most telling reason none does:
/// a later column's reason replaces one that says little (`empty`, `scientific-notation`).
fn row_isbn(record: &csv::ByteRecord, columns: &[usize]) -> Result<Isbn13, RejectReason> {
    let mut reason: Option<RejectReason> = None;
    for &c in columns {
        let field = record.get(c).unwrap_or_default();
        let this = match std::str::from_utf8(field) {
            Ok(text) => match isbn::parse(text) {
                Ok(isbn) => return Ok(isbn),
                Err(r) => r,
            },
            Err(_) => RejectReason::NotUtf8,
        };
        reason = match reason {
            Some(prev) if !prev.is_uninformative() || this.is_uninformative() => Some(prev),
            _ => Some(this),
        };
    }
    Err(reason.unwrap_or(RejectReason::Empty))
}

/// A record written back as one CSV line, so a rejected row can be fixed and re-loaded.
fn record_text(record: &csv::ByteRecord, delimiter: u8) -> String {
    let mut out = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    if out.write_byte_record(record).is_err() {
        return raw_text(record.as_slice());
    }
    let mut bytes = out.into_inner().unwrap_or_default();
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    raw_text(&bytes)
}

fn csv_error(e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::Io(io),
        other => Error::Csv(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8], opts: &InputOptions) -> (Result<Detected, Error>, Vec<Item>) {
        let mut items = Vec::new();
        let r = read_items(input, opts, &mut |i| items.push(i));
        (r, items)
    }

    fn summary(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Valid { line, isbn } => format!("{line}:{isbn}"),
                Item::Rejected(r) => format!("{}:{}:{}", r.line, r.reason, r.raw),
            })
            .collect()
    }

    #[test]
    fn text_with_bom_crlf_comments_blank_lines_and_a_header() {
        let input = b"\xEF\xBB\xBFisbn\r\n# a comment\r\n\r\n0-306-40615-2\r\n  \r\nnot an isbn\r\n9780439023481";
        let (r, items) = read(input, &InputOptions::default());
        assert_eq!(r.expect("reads"), Detected::Text);
        assert_eq!(
            summary(&items),
            [
                "4:9780306406157",
                "6:bad-characters:not an isbn",
                "7:9780439023481"
            ]
        );
    }

    #[test]
    fn csv_prefers_isbn13_and_falls_back_to_isbn_in_the_same_row() {
        let input = "title,isbn,isbn13\n\
                     \"Hunger, Games\",439023483,9.78044E+12\n\
                     B,439023484,9.78044E+12\n\
                     C,,9780306406157\n\
                     D,,\n";
        let (r, items) = read(input.as_bytes(), &InputOptions::default());
        assert_eq!(r.expect("reads"), Detected::Delimited(b','));
        assert_eq!(
            summary(&items),
            [
                "2:9780439023481",
                "3:bad-check-digit:B,439023484,9.78044E+12",
                "4:9780306406157",
                "5:empty:D,,",
            ]
        );
    }

    #[test]
    fn ragged_rows_and_non_utf8_fields_are_rejected_lines() {
        let mut input = b"name\tisbn\nA\t0306406152\nB\t0306406152\textra\nC\t".to_vec();
        input.extend_from_slice(b"\xff\xfe\n");
        let (r, items) = read(&input, &InputOptions::default());
        assert_eq!(r.expect("reads"), Detected::Delimited(b'\t'));
        let s = summary(&items);
        assert_eq!(s[0], "2:9780306406157");
        assert!(
            s[1].starts_with("3:ragged-row:B\t0306406152\textra"),
            "{s:?}"
        );
        assert!(s[2].starts_with("4:not-utf8:C\t"), "{s:?}");
    }

    #[test]
    fn named_column_is_used_alone_and_an_unknown_one_is_an_error() {
        let input = b"a,b\n0306406152,9780439023481\n";
        let opts = InputOptions {
            column: Some("b".into()),
            ..InputOptions::default()
        };
        let (_, items) = read(input, &opts);
        assert_eq!(summary(&items), ["2:9780439023481"]);
        let opts = InputOptions {
            column: Some("nope".into()),
            ..InputOptions::default()
        };
        let (r, _) = read(input, &opts);
        assert!(matches!(r, Err(Error::ColumnNotFound { .. })));
        let (r, _) = read(input, &InputOptions::default());
        assert!(matches!(r, Err(Error::NoIsbnColumn { .. })));
    }

    #[test]
    fn binary_empty_and_over_long_lines() {
        let (r, items) = read(b"\x00\x01\x02ELF", &InputOptions::default());
        assert_eq!(r.expect("reads"), Detected::Binary);
        assert_eq!(items.len(), 1);
        let (r, items) = read(b"", &InputOptions::default());
        assert_eq!(r.expect("reads"), Detected::Empty);
        assert!(items.is_empty());
        let mut long = vec![b'9'; MAX_LINE * 3];
        long.extend_from_slice(b"\n0306406152\n");
        let (_, items) = read(&long, &InputOptions::default());
        let s = summary(&items);
        assert_eq!(s.len(), 2);
        assert!(s[0].starts_with("1:line-too-long:999"));
        assert_eq!(s[0].len(), "1:line-too-long:".len() + MAX_RAW);
        assert_eq!(s[1], "2:9780306406157");
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_not_cut() {
        let mut line = vec![b' '; MAX_LINE - 10];
        line.extend_from_slice(b"0306406152\n");
        let (_, items) = read(&line, &InputOptions::default());
        assert_eq!(summary(&items), ["1:9780306406157"]);
    }
}
