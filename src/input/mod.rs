/*!
Input reading: turns any list people hold into a stream of valid ISBNs and rejected lines.

What a source is, is decided from its bytes, not its name (stdin has none, and files are
misnamed): a zip or OLE2 container is a spreadsheet (`spreadsheet.rs`), an ISO 2709 leader a
MARC file (`marc.rs`); everything else is text, whose encoding is detected (`encoding.rs`) and
turned into UTF-8, then MARCXML, a delimited table (`delimited.rs`, delimiter sniffed) or a
plain list, one value per line (`text.rs`). `--format` overrides the guess; `--format scan`
finds ISBNs in free text (`scan.rs`).

Every cell and list line goes through one tokenizer (`cell.rs`), so a cell naming several
books gives each; table columns are chosen in one place (`columns.rs`).

Readers are push-style (`emit` is called per item) and stream: memory stays flat however long
the file is (spreadsheets, which are containers, are read whole).
*/

mod budget;
mod cell;
mod columns;
mod delimited;
mod encoding;
mod label;
mod lines;
mod marc;
mod records;
mod scan;
mod spreadsheet;
mod table;
mod text;

use std::io::{self, BufRead, BufReader, Cursor, Read};

use crate::isbn::{Isbn13, RejectReason};
use crate::store::Reject;

pub use cell::isbns_in_cell;
pub use encoding::by_label as encoding_by_label;
pub use scan::isbns_in_text;

/// Lines longer than this are rejected (`line-too-long`) without being held in memory.
pub const MAX_LINE: usize = 64 * 1024;
/// How much of a rejected line is kept.
pub const MAX_RAW: usize = 1000;
/// What is looked at to decide what a source is.
const HEAD: usize = 64 * 1024;
/// A NUL byte in this many leading bytes (of a source that is not UTF-16) marks a binary file.
const SNIFF: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Decide from the content.
    #[default]
    Auto,
    /// One ISBN (or one cell of several) per line.
    Text,
    /// A table separated by commas, semicolons, tabs or pipes (the delimiter is sniffed).
    Csv,
    /// Tab-separated.
    Tsv,
    /// Semicolon-separated.
    Semicolon,
    /// Pipe-separated.
    Pipe,
    /// An .xlsx, .xlsm, .xlsb, .xls or .ods workbook.
    Spreadsheet,
    /// MARC 21 records, ISO 2709 (.mrc).
    Marc,
    /// MARC 21 records as MARCXML.
    Marcxml,
    /// Every ISBN anywhere in free text, found by shape and check digit.
    Scan,
}

#[derive(Debug, Clone, Default)]
pub struct InputOptions {
    pub format: Format,
    /// The table column holding ISBNs (a header name, or a number for a table without one).
    pub column: Option<String>,
    /// The spreadsheet sheet (default: the first).
    pub sheet: Option<String>,
    /// The text encoding (default: detected).
    pub encoding: Option<&'static encoding_rs::Encoding>,
}

/// One item of an input.
#[derive(Debug, Clone)]
pub enum Item {
    /// A valid ISBN at `line` (a row may give several). `reference` is the record's own
    /// identifier where it has one (a MARC control number).
    Valid {
        line: u64,
        isbn: Isbn13,
        reference: Option<String>,
    },
    Rejected(Reject),
}

/// A problem with a whole input, as opposed to one of its lines.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    #[error("no column named {wanted:?}; the header has: {}", .header.join(", "))]
    ColumnNotFound { wanted: String, header: Vec<String> },
    #[error(
        "no ISBN column: no header name is a known one (isbn13, ean, isbn, ...) and no column's \
         values are mostly ISBNs{}; name one with --column",
        if .header.is_empty() { String::new() } else { format!(" (the header has: {})", .header.join(", ")) }
    )]
    NoIsbnColumn { header: Vec<String> },
    #[error("CSV: {0}")]
    Csv(String),
    #[error("not a spreadsheet that can be read: {0}")]
    Spreadsheet(String),
    /// Past a documented limit of `budget.rs`.
    #[error("spreadsheet over its limits: {0}")]
    OverBudget(String),
    #[error("no sheet named {wanted:?}; the workbook has: {}", .sheets.join(", "))]
    SheetNotFound { wanted: String, sheets: Vec<String> },
    #[error("MARCXML: {0}")]
    Xml(String),
}

/// What a source turned out to be, for the user's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Empty,
    Binary,
    /// One value per line.
    List,
    Scan,
    Delimited {
        delimiter: u8,
        header: bool,
    },
    Spreadsheet {
        kind: &'static str,
        sheet: String,
        header: bool,
    },
    Marc,
    MarcXml,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub shape: Shape,
    /// The text encoding, for text sources.
    pub encoding: Option<&'static str>,
    /// Which table columns were read, and why.
    pub columns: Option<String>,
}

impl Detected {
    fn new(shape: Shape) -> Detected {
        Detected {
            shape,
            encoding: None,
            columns: None,
        }
    }

    /// One line for the load report: `semicolon-separated with a header, windows-1252; ISBNs
    /// from "EAN" (header names)`.
    pub fn describe(&self) -> String {
        let mut out = match &self.shape {
            Shape::Empty => "empty".to_string(),
            Shape::Binary => "binary".to_string(),
            Shape::List => "a list, one value per line".to_string(),
            Shape::Scan => "free text, scanned for ISBNs".to_string(),
            Shape::Delimited { delimiter, header } => format!(
                "{}, {}",
                delimited::delimiter_name(*delimiter),
                if *header {
                    "with a header"
                } else {
                    "no header"
                }
            ),
            Shape::Spreadsheet {
                kind,
                sheet,
                header,
            } => format!(
                "{kind} spreadsheet, sheet {sheet:?}{}, {}",
                if matches!(*kind, "xls" | "ods") {
                    " (read whole)"
                } else {
                    ""
                },
                if *header {
                    "with a header"
                } else {
                    "no header"
                }
            ),
            Shape::Marc => "MARC 21 records (ISO 2709)".to_string(),
            Shape::MarcXml => "MARCXML records".to_string(),
        };
        if let Some(e) = self.encoding {
            out.push_str(", ");
            out.push_str(e);
        }
        if let Some(c) = &self.columns {
            out.push_str("; ");
            out.push_str(c);
        }
        out
    }
}

/// Reads every item of `reader`, calling `emit` for each. Returns what the input was.
pub fn read_items<R: Read>(
    mut reader: R,
    opts: &InputOptions,
    emit: &mut dyn FnMut(Item),
) -> Result<Detected, Error> {
    let mut head = Vec::with_capacity(HEAD);
    (&mut reader).take(HEAD as u64).read_to_end(&mut head)?;
    let eof = head.len() < HEAD;
    if head.is_empty() {
        return Ok(Detected::new(Shape::Empty));
    }
    let auto = opts.format == Format::Auto;
    if opts.format == Format::Spreadsheet || (auto && spreadsheet::looks_like(&head)) {
        reader.read_to_end(&mut head)?;
        let sheet = spreadsheet::read(head, opts, emit)?;
        return Ok(Detected {
            columns: Some(sheet.choice.why),
            ..Detected::new(Shape::Spreadsheet {
                kind: sheet.kind,
                sheet: sheet.name,
                header: sheet.header,
            })
        });
    }
    if opts.format == Format::Marc || (auto && marc::looks_like_iso2709(&head)) {
        let stream = BufReader::with_capacity(HEAD, Cursor::new(head).chain(reader));
        marc::read_iso2709(stream, emit)?;
        return Ok(Detected::new(Shape::Marc));
    }

    let text = match opts.encoding {
        Some(forced) => encoding::TextEncoding {
            encoding: forced,
            bom: match encoding_rs::Encoding::for_bom(&head) {
                Some((e, len)) if e == forced => len,
                _ => 0,
            },
        },
        None => encoding::detect(&head),
    };
    let utf16 = text.encoding.output_encoding() != text.encoding;
    if !utf16 && head[..head.len().min(SNIFF)].contains(&0) {
        emit(Item::Rejected(Reject {
            line: 1,
            raw: raw_text(&head[..head.len().min(64)]),
            reason: RejectReason::BinaryFile,
        }));
        return Ok(Detected::new(Shape::Binary));
    }
    let mut decoded = text.reader(head, reader);
    let mut head = Vec::with_capacity(HEAD);
    (&mut decoded).take(HEAD as u64).read_to_end(&mut head)?;
    let eof = eof && head.len() < HEAD;
    let shown = Detected {
        encoding: Some(text.name()),
        ..Detected::new(Shape::List)
    };

    let is_xml = opts.format == Format::Marcxml || (auto && marc::looks_like_xml(&head));
    let delimiter = match opts.format {
        Format::Csv => delimited::sniff(&head, eof).or(Some(b',')),
        Format::Tsv => Some(b'\t'),
        Format::Semicolon => Some(b';'),
        Format::Pipe => Some(b'|'),
        Format::Auto if !is_xml => delimited::sniff(&head, eof),
        _ => None,
    };
    if let Some(delimiter) = delimiter {
        let (header, choice) = delimited::read(
            &head,
            eof,
            BufReader::with_capacity(HEAD, Cursor::new(&head).chain(decoded)),
            delimiter,
            opts,
            emit,
        )?;
        return Ok(Detected {
            shape: Shape::Delimited { delimiter, header },
            columns: Some(choice.why),
            ..shown
        });
    }
    let stream = BufReader::with_capacity(HEAD, Cursor::new(head).chain(decoded));
    let shape = if is_xml {
        marc::read_xml(stream, emit)?;
        Shape::MarcXml
    } else if opts.format == Format::Scan {
        text::read_scan(stream, emit)?;
        Shape::Scan
    } else {
        text::read_list(stream, emit)?;
        Shape::List
    };
    Ok(Detected { shape, ..shown })
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

/// The text kept of a rejected line: lossy UTF-8, cut at [`MAX_RAW`] characters.
pub fn raw_text(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    match s.char_indices().nth(MAX_RAW) {
        Some((cut, _)) => s[..cut].to_string(),
        None => s.into_owned(),
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
                Item::Valid { line, isbn, .. } => format!("{line}:{isbn}"),
                Item::Rejected(r) => format!("{}:{}:{}", r.line, r.reason, r.raw),
            })
            .collect()
    }

    fn shape(r: Result<Detected, Error>) -> Shape {
        r.expect("reads").shape
    }

    #[test]
    fn text_with_bom_crlf_comments_blank_lines_and_a_header() {
        let input = b"\xEF\xBB\xBFisbn\r\n# a comment\r\n\r\n0-306-40615-2\r\n  \r\nnot an isbn\r\n9780439023481";
        let (r, items) = read(input, &InputOptions::default());
        assert_eq!(shape(r), Shape::List);
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
    fn csv_reads_isbn13_and_isbn_in_the_same_row() {
        let input = "title,isbn,isbn13\n\
                     \"Hunger, Games\",439023483,9.78044E+12\n\
                     B,439023484,9.78044E+12\n\
                     C,,9780306406157\n\
                     D,,\n";
        let (r, items) = read(input.as_bytes(), &InputOptions::default());
        let detected = r.expect("reads");
        assert_eq!(
            detected.describe(),
            "comma-separated, with a header, UTF-8; ISBNs from \"isbn13\", \"isbn\" (header names)"
        );
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
        let mut input = b"name\tisbn\nA\t0306406152\nB\t0306406152\textra\n".to_vec();
        // Past the sniffed head, a stray byte is a not-utf8 line, not a change of encoding.
        while input.len() <= HEAD {
            input.extend_from_slice(b"x\t0306406152\n");
        }
        input.extend_from_slice(b"C\t\xff\xfe\n");
        let big = input;
        let (r, items) = read(&big, &InputOptions::default());
        assert_eq!(
            shape(r),
            Shape::Delimited {
                delimiter: b'\t',
                header: true
            }
        );
        let s = summary(&items);
        assert_eq!(s[0], "2:9780306406157");
        assert!(
            s[1].starts_with("3:ragged-row:B\t0306406152\textra"),
            "{s:?}"
        );
        assert!(
            s.last().is_some_and(|l| l.contains(":not-utf8:C\t")),
            "{:?}",
            s.last()
        );
    }

    #[test]
    fn named_column_is_used_alone_and_an_unknown_one_is_an_error() {
        let input = b"a,b\nx,y\n0306406152,9780439023481\n";
        let opts = InputOptions {
            column: Some("b".into()),
            ..InputOptions::default()
        };
        let (_, items) = read(input, &opts);
        assert_eq!(summary(&items), ["2:bad-characters:x,y", "3:9780439023481"]);
        let opts = InputOptions {
            column: Some("nope".into()),
            ..InputOptions::default()
        };
        let (r, _) = read(input, &opts);
        assert!(matches!(r, Err(Error::ColumnNotFound { .. })));
        let (r, _) = read(b"a,b\nx,y\nz,w\n", &InputOptions::default());
        assert!(matches!(r, Err(Error::NoIsbnColumn { .. })));
    }

    #[test]
    fn binary_empty_and_over_long_lines() {
        let (r, items) = read(b"\x00\x01\x02ELF", &InputOptions::default());
        assert_eq!(shape(r), Shape::Binary);
        assert_eq!(items.len(), 1);
        let (r, items) = read(b"", &InputOptions::default());
        assert_eq!(shape(r), Shape::Empty);
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

    #[test]
    fn european_excel_csv_in_windows_1252() {
        let text = "Titel;Autor;EAN;Preis\n\
                    \"Der Herr der Ringe\";Tolkien, J.R.R.;9783608938289;12,50\n\
                    Caf\u{e9} M\u{fc}ller;Meyer;978-0-306-40615-8;9,99\n";
        let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(text);
        let (r, items) = read(&bytes, &InputOptions::default());
        assert_eq!(
            r.expect("reads").describe(),
            "semicolon-separated, with a header, windows-1252; ISBNs from \"EAN\" (header names)"
        );
        assert_eq!(
            summary(&items),
            [
                "2:9783608938289",
                "3:bad-check-digit:Caf\u{e9} M\u{fc}ller;Meyer;978-0-306-40615-8;9,99"
            ]
        );
    }

    #[test]
    fn crlf_rows_keep_their_line_numbers_and_lose_their_cr() {
        let (_, items) = read(
            b"a;isbn\r\nx;0306406152\r\n\r\ny;bad\r\n",
            &InputOptions::default(),
        );
        assert_eq!(
            summary(&items),
            ["2:9780306406157", "4:bad-characters:y;bad"]
        );
    }

    fn isbn(n: u64) -> String {
        crate::isbn::synthetic(n).to_string()
    }

    /// Classic Mac OS line endings, and a mix of all three, in lists and tables.
    #[test]
    fn every_line_ending_gives_every_line_with_its_number() {
        for ending in ["\r", "\n", "\r\n"] {
            let list: String = (0..10_000).map(|i| isbn(i) + ending).collect();
            let (r, items) = read(list.as_bytes(), &InputOptions::default());
            assert_eq!(shape(r), Shape::List, "{ending:?}");
            assert_eq!(items.len(), 10_000, "{ending:?}");
            assert!(
                matches!(&items[9_999], Item::Valid { line: 10_000, .. }),
                "{:?}",
                items[9_999]
            );
            let csv: String = std::iter::once(format!("title,isbn{ending}"))
                .chain((0..3_000).map(|i| format!("\"T, {i}\",{}{ending}", isbn(i))))
                .collect();
            let (r, items) = read(csv.as_bytes(), &InputOptions::default());
            assert!(matches!(
                shape(r),
                Shape::Delimited {
                    delimiter: b',',
                    header: true
                }
            ));
            assert_eq!(items.len(), 3_000, "{ending:?}");
            assert!(matches!(&items[2_999], Item::Valid { line: 3_001, .. }));
        }
        let mixed = format!("isbn\r{}\n{}\r\n\r{}", isbn(1), isbn(2), isbn(3));
        let (_, items) = read(mixed.as_bytes(), &InputOptions::default());
        assert_eq!(
            summary(&items),
            [
                format!("2:{}", isbn(1)),
                format!("3:{}", isbn(2)),
                format!("5:{}", isbn(3))
            ]
        );
    }

    /// A title typed with an opening quote only: that row is rejected, every other one loads,
    /// and a Goodreads review spanning lines still does.
    #[test]
    fn an_unterminated_quote_costs_only_its_row() {
        let mut csv = String::from("Title,ISBN13,My Review\n\"unterminated,=\"9780306406157\",\n");
        csv.push_str("Dune,=\"9780441013593\",\"Long.\n\nGood.\"\n");
        for i in 0..1_000 {
            csv.push_str(&format!("\"Book, {i}\",=\"{}\",\n", isbn(i)));
        }
        let (r, items) = read(csv.as_bytes(), &InputOptions::default());
        r.expect("reads");
        let s = summary(&items);
        assert_eq!(
            s[0],
            "2:unterminated-quote:\"unterminated,=\"9780306406157\","
        );
        assert_eq!(s[1], "3:9780441013593");
        assert_eq!(s.len(), 1_002, "{:?}", &s[..5]);
        assert_eq!(s[1_001], format!("1005:{}", isbn(999)));
        // Unterminated at the very end: the row is rejected, the rest kept.
        let (_, items) = read(
            b"t,isbn\nA,0306406152\n\"B,0441013597\n",
            &InputOptions::default(),
        );
        assert_eq!(
            summary(&items),
            ["2:9780306406157", "3:unterminated-quote:\"B,0441013597"]
        );
    }

    #[test]
    fn a_table_without_a_header_is_read_by_its_content() {
        let input = "Dune;0441013597;9,99\nThe Hobbit;0261103342;8,50\nA pamphlet;;1,00\n";
        let (r, items) = read(input.as_bytes(), &InputOptions::default());
        let d = r.expect("reads");
        assert_eq!(
            d.shape,
            Shape::Delimited {
                delimiter: b';',
                header: false
            }
        );
        assert!(
            d.describe().contains("column 2 (no header"),
            "{}",
            d.describe()
        );
        assert_eq!(
            summary(&items),
            [
                "1:9780441013593",
                "2:9780261103344",
                "3:empty:A pamphlet;;1,00"
            ]
        );
    }
}
