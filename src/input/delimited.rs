/*!
Delimited text: comma, semicolon (Excel in most European locales), tab (Excel's "Unicode
Text", LibraryThing) and pipe.

The delimiter is sniffed from the first lines, respecting quotes: for each candidate, the
record reader (`records.rs`) splits the sample, and the candidate that gives every row the same number of
fields (at least two), the header row included, wins; among equals, the one giving more
fields. A first row in which no cell holds a valid ISBN is a header.
*/

use std::io::BufRead;

use super::columns::{self, Choice};
use super::records::{Next, Record, Records};
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

/// The complete lines of a sample (a cut last line would skew the counts).
fn complete_lines(head: &[u8], eof: bool) -> &[u8] {
    if eof {
        return head;
    }
    match head.iter().rposition(|&b| b == b'\n' || b == b'\r') {
        Some(i) => &head[..=i],
        None => head,
    }
}

/// The records of a sample, blank ones left out, as trimmed lossy text; rejects are skipped.
fn sample_rows(sample: &[u8], delimiter: u8, n: usize) -> Vec<Vec<String>> {
    let mut records = Records::new(sample, delimiter);
    let mut rec = Record::default();
    let mut rows = Vec::new();
    while rows.len() < n {
        match records.next(&mut rec) {
            Ok(Next::Record) if rec.is_blank() => {}
            Ok(Next::Record) => rows.push(
                rec.iter()
                    .map(|f| String::from_utf8_lossy(f).trim().to_string())
                    .collect(),
            ),
            Ok(Next::Rejected(_)) => {}
            Ok(Next::End) | Err(_) => break,
        }
    }
    rows
}

/// The delimiter of a table, or `None` for a list with one value per line.
pub fn sniff(head: &[u8], eof: bool) -> Option<u8> {
    let sample = complete_lines(head, eof);
    let mut best: Option<((bool, usize, usize), u8)> = None;
    for d in CANDIDATES {
        let counts: Vec<usize> = sample_rows(sample, d, SNIFF_ROWS)
            .iter()
            .map(Vec::len)
            .collect();
        let Some(&first) = counts.first() else {
            continue;
        };
        let mut tally = std::collections::BTreeMap::new();
        for &c in &counts {
            *tally.entry(c).or_insert(0usize) += 1;
        }
        let Some((&modal, &n)) = tally.iter().max_by_key(|&(&c, &n)| (n, c)) else {
            continue;
        };
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

struct CsvRow<'a>(&'a Record);

impl Row for CsvRow<'_> {
    fn width(&self) -> usize {
        self.0.len()
    }
    fn cell(&self, i: usize) -> Option<Result<&str, ()>> {
        self.0
            .get(i)
            .map(|b| std::str::from_utf8(b).map_err(|_| ()))
    }
    fn raw(&self) -> String {
        raw_text(self.0.raw())
    }
}

/// Reads a delimited table from `stream` (UTF-8, starting with `head`). Returns whether the
/// table has a header and how its ISBN columns were chosen.
pub fn read(
    head: &[u8],
    eof: bool,
    stream: impl BufRead,
    delimiter: u8,
    opts: &InputOptions,
    emit: &mut dyn FnMut(Item),
) -> Result<(bool, Choice), Error> {
    let mut sample = sample_rows(complete_lines(head, eof), delimiter, SAMPLE_ROWS + 1);
    let has_header = sample
        .first()
        .is_some_and(|first| !table::holds_isbn(first));
    let header = if has_header {
        Some(sample.remove(0))
    } else {
        None
    };
    let choice = columns::choose(header.as_deref(), &sample, opts.column.as_deref())?;
    let width = header.as_ref().map(Vec::len);
    let mut table = Table::new(choice.columns.clone(), width);

    let mut records = Records::new(stream, delimiter);
    records.set_width(width);
    let mut record = Record::default();
    let mut header_seen = !has_header;
    loop {
        match records.next(&mut record)? {
            Next::End => return Ok((has_header, choice)),
            Next::Rejected(reject) => emit(Item::Rejected(reject)),
            Next::Record if !header_seen => header_seen = !record.is_blank(),
            Next::Record => table.row(record.line, &CsvRow(&record), emit),
        }
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
