/*!
Delimited text: comma, semicolon (Excel in most European locales), tab (Excel's "Unicode
Text", LibraryThing) and pipe.

The delimiter is sniffed from the first lines, respecting quotes: for each candidate, the
`csv` crate splits the sample, and the candidate that gives every row the same number of
fields (at least two), the header row included, wins; among equals, the one giving more
fields. A first row in which no cell holds a valid ISBN is a header.
*/

use std::io::Read;

use super::columns::{self, Choice};
use super::table::{self, Row, Table};
use super::{Error, InputOptions, Item, raw_text};

const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
/// Rows sampled to sniff the delimiter.
const SNIFF_ROWS: usize = 50;
/// Data rows sampled to choose ISBN columns by content.
const SAMPLE_ROWS: usize = 200;

pub fn delimiter_name(d: u8) -> &'static str {
    match d {
        b',' => "comma-separated",
        b';' => "semicolon-separated",
        b'\t' => "tab-separated",
        b'|' => "pipe-separated",
        _ => "delimited",
    }
}

fn reader_builder(delimiter: u8) -> csv::ReaderBuilder {
    let mut b = csv::ReaderBuilder::new();
    // Records end at `\n` alone: with its CRLF terminator the csv crate counts a CRLF file's
    // lines wrong, and line numbers are what people fix rejected rows by.
    b.delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .flexible(true)
        .comment(Some(b'#'))
        .has_headers(false);
    b
}

/// The complete lines of a sample (a cut last line would skew the counts).
fn complete_lines(head: &[u8], eof: bool) -> &[u8] {
    if eof {
        return head;
    }
    match head.iter().rposition(|&b| b == b'\n') {
        Some(i) => &head[..=i],
        None => head,
    }
}

/// The delimiter of a table, or `None` for a list with one value per line.
pub fn sniff(head: &[u8], eof: bool) -> Option<u8> {
    let sample = complete_lines(head, eof);
    let mut best: Option<((bool, usize, usize), u8)> = None;
    for d in CANDIDATES {
        let counts: Vec<usize> = reader_builder(d)
            .from_reader(sample)
            .byte_records()
            .map_while(Result::ok)
            .filter(|r| !(r.len() == 1 && r[0].trim_ascii().is_empty()))
            .take(SNIFF_ROWS)
            .map(|r| r.len())
            .collect();
        let Some(&first) = counts.first() else {
            continue;
        };
        let mut tally = std::collections::BTreeMap::new();
        for &c in &counts {
            *tally.entry(c).or_insert(0usize) += 1;
        }
        let (&modal, &n) = tally
            .iter()
            .max_by_key(|&(&c, &n)| (n, c))
            .expect("counts is not empty");
        // Consistent: nine rows in ten have the modal count (in a short sample, all but one).
        if modal < 2 || counts.len() - n > (counts.len() / 10).max(1) {
            continue;
        }
        let score = (first == modal, modal, n);
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, d));
        }
    }
    best.map(|(_, d)| d)
}

struct CsvRow<'a> {
    record: &'a csv::ByteRecord,
    delimiter: u8,
}

impl Row for CsvRow<'_> {
    fn width(&self) -> usize {
        self.record.len()
    }
    fn cell(&self, i: usize) -> Option<Result<&str, ()>> {
        // A CRLF line leaves its `\r` on the last field; it is cut here, without a copy.
        self.record.get(i).map(|b| {
            let b = if i + 1 == self.record.len() {
                b.strip_suffix(b"\r").unwrap_or(b)
            } else {
                b
            };
            std::str::from_utf8(b).map_err(|_| ())
        })
    }
    fn raw(&self) -> String {
        let mut record = self.record.clone();
        strip_cr(&mut record);
        record_text(&record, self.delimiter)
    }
}

fn lossy(mut record: csv::ByteRecord) -> Vec<String> {
    strip_cr(&mut record);
    record
        .iter()
        .map(|f| String::from_utf8_lossy(f).trim().to_string())
        .collect()
}

/// Reads a delimited table from `stream` (UTF-8, starting with `head`). Returns whether the
/// table has a header and how its ISBN columns were chosen.
pub fn read(
    head: &[u8],
    eof: bool,
    stream: impl Read,
    delimiter: u8,
    opts: &InputOptions,
    emit: &mut dyn FnMut(Item),
) -> Result<(bool, Choice), Error> {
    let mut sample: Vec<Vec<String>> = reader_builder(delimiter)
        .from_reader(complete_lines(head, eof))
        .byte_records()
        .map_while(Result::ok)
        .filter(|r| !(r.len() == 1 && r[0].trim_ascii().is_empty()))
        .take(SAMPLE_ROWS + 1)
        .map(lossy)
        .collect();
    let has_header = sample
        .first()
        .is_some_and(|first| !table::holds_isbn(first));
    let header = if has_header {
        Some(sample.remove(0))
    } else {
        None
    };
    let choice = columns::choose(header.as_deref(), &sample, opts.column.as_deref())?;
    let mut table = Table::new(choice.columns.clone(), header.as_ref().map(Vec::len));

    let mut rdr = reader_builder(delimiter).from_reader(stream);
    let mut record = csv::ByteRecord::new();
    let mut header_seen = !has_header;
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok((has_header, choice)),
            Err(e) => return Err(csv_error(e)),
        }
        if !header_seen {
            header_seen = !(record.len() == 1 && record[0].trim_ascii().is_empty());
            continue;
        }
        let line = record.position().map_or(0, |p| p.line());
        table.row(
            line,
            &CsvRow {
                record: &record,
                delimiter,
            },
            emit,
        );
    }
}

/// Removes the `\r` a CRLF line leaves on its last field.
fn strip_cr(record: &mut csv::ByteRecord) {
    let n = record.len();
    if let Some(last) = record.get(n.wrapping_sub(1))
        && let Some(kept) = last.strip_suffix(b"\r")
    {
        let kept = kept.to_vec();
        record.truncate(n - 1);
        record.push_field(&kept);
    }
}

/// A record written back as one CSV line, so a rejected row can be fixed and re-loaded.
pub fn record_text(record: &csv::ByteRecord, delimiter: u8) -> String {
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
    use proptest::prelude::*;

    #[test]
    fn the_delimiters_people_use() {
        let cases: [(&str, Option<u8>); 7] = [
            ("title,isbn\n\"Smith; J\",0306406152\n", Some(b',')),
            (
                "Titel;Autor;ISBN;Preis\nDer Hobbit;Tolkien, J.R.R.;9780261103344;12,50\n\
                 Dune;Herbert, F.;0441013597;9,99\n",
                Some(b';'),
            ),
            ("a\tb\n1\t0306406152\n", Some(b'\t')),
            ("isbn|title\n0306406152|A, B; C\n", Some(b'|')),
            ("0306406152\n9780261103344\n", None),
            ("isbn\n978-0-306-40615-7\n", None),
            // Commas only inside quotes: still one value per line.
            ("\"a, b\"\n\"c, d\"\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(sniff(text.as_bytes(), true), want, "{text:?}");
        }
    }

    /// A field; `~` stands for the delimiter (so the writer must quote it).
    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9 .]{0,12}",
            "[A-Za-z ~\"]{1,12}",
            Just("978-0-306-40615-7".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn sniffing_finds_the_delimiter_a_writer_used(
            d in prop::sample::select(CANDIDATES.to_vec()),
            width in 2usize..6,
            rows in proptest::collection::vec(proptest::collection::vec(field(), 6), 1..20),
        ) {
            let mut w = csv::WriterBuilder::new().delimiter(d).from_writer(Vec::new());
            let delimiter = char::from(d).to_string();
            for row in &rows {
                let row: Vec<String> = row[..width].iter().map(|f| f.replace('~', &delimiter)).collect();
                w.write_record(&row).expect("write");
            }
            let bytes = w.into_inner().expect("flush");
            prop_assert_eq!(sniff(&bytes, true), Some(d), "{}", String::from_utf8_lossy(&bytes));
        }
    }
}
