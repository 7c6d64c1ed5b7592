/*!
CSV records from physical lines: RFC 4180 quoting, read leniently, with one rule the `csv`
crate has no way to keep: a bad row costs that row.

A quoted field may hold line endings (a review in a Goodreads export), so a record can span
lines; but a quote that never closes (a title typed as `"unterminated`) would swallow every
row after it. So a record that is still open at the end of the file, or after
[`MAX_RECORD_LINES`] lines or [`MAX_RECORD`] bytes, or whose quotes close in a way no writer
produces (a closing quote followed by text, once it spans lines; a field count other than the
header's, once it spans lines or its quotes are off) is not a record: its first line is rejected as `unterminated-quote` and reading
resumes at the line after it, from lines already held (the look-ahead is bounded by the same
limits, so memory is too). A single line longer than [`MAX_RECORD`] is rejected as
`line-too-long` without being held.

Lenient like the `csv` crate otherwise: a quote inside an unquoted field is text, text after a
closing quote on the same line joins the field, a `#` line is a comment and empty lines are
skipped.
*/

use std::collections::VecDeque;
use std::io::{self, BufRead};

use super::lines::Lines;
use super::raw_text;
use crate::isbn::RejectReason;
use crate::store::Reject;

/// The most bytes one record (all its lines) may hold.
pub const MAX_RECORD: usize = 1024 * 1024;
/// The most lines one quoted field may span.
pub const MAX_RECORD_LINES: usize = 1000;

/// One record: its fields, the line it starts on and its text as read.
#[derive(Debug, Default)]
pub struct Record {
    pub line: u64,
    data: Vec<u8>,
    ends: Vec<usize>,
    raw: Vec<u8>,
}

impl Record {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.data[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The lines it was read from, joined by `\n`.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// One empty or white-space field: a blank line of a table.
    pub fn is_blank(&self) -> bool {
        self.len() == 1 && self.data.trim_ascii().is_empty()
    }

    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.raw.clear();
    }
}

/// What the next read gave.
#[derive(Debug)]
pub enum Next {
    Record,
    Rejected(Reject),
    End,
}

struct Held {
    number: u64,
    bytes: Vec<u8>,
    cut: bool,
}

pub struct Records<R> {
    lines: Lines<R>,
    delimiter: u8,
    /// Lines read ahead while a quote was open, not yet part of a record.
    held: VecDeque<Held>,
    spare: Vec<Vec<u8>>,
    /// The field count a record spanning lines must have (the header's), when known.
    width: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: closing, or the first of a doubled one.
    QuoteInQuoted,
}

impl<R: BufRead> Records<R> {
    pub fn new(reader: R, delimiter: u8) -> Records<R> {
        Records {
            lines: Lines::new(reader),
            delimiter,
            held: VecDeque::new(),
            spare: Vec::new(),
            width: None,
        }
    }

    pub fn set_width(&mut self, width: Option<usize>) {
        self.width = width;
    }

    /// Reads one more line into `held`; false at the end of the stream.
    fn hold_one(&mut self) -> io::Result<bool> {
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        match self.lines.next_line(&mut bytes, MAX_RECORD)? {
            Some(line) => {
                self.held.push_back(Held {
                    number: line.number,
                    bytes,
                    cut: line.cut,
                });
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn release(&mut self, n: usize) {
        for held in self.held.drain(..n) {
            self.spare.push(held.bytes);
        }
    }

    /// Reads the next record into `rec`, or the reject that stands for a line.
    pub fn next(&mut self, rec: &mut Record) -> io::Result<Next> {
        loop {
            if self.held.is_empty() && !self.hold_one()? {
                return Ok(Next::End);
            }
            let first = &self.held[0];
            if first.cut {
                let reject = Reject {
                    line: first.number,
                    raw: raw_text(&first.bytes),
                    reason: RejectReason::LineTooLong,
                };
                self.release(1);
                return Ok(Next::Rejected(reject));
            }
            if first.bytes.is_empty() || first.bytes[0] == b'#' {
                self.release(1);
                continue;
            }
            rec.clear();
            rec.line = first.number;
            match self.parse(rec)? {
                Some(lines) => {
                    for (i, held) in self.held.iter().take(lines).enumerate() {
                        if i > 0 {
                            rec.raw.push(b'\n');
                        }
                        rec.raw.extend_from_slice(&held.bytes);
                    }
                    self.release(lines);
                    return Ok(Next::Record);
                }
                None => {
                    let first = &self.held[0];
                    let reject = Reject {
                        line: first.number,
                        raw: raw_text(&first.bytes),
                        reason: RejectReason::UnterminatedQuote,
                    };
                    self.release(1);
                    return Ok(Next::Rejected(reject));
                }
            }
        }
    }

    /// Parses the record starting at the first held line; how many lines it took, or `None`
    /// when its quote does not close as a record's would.
    fn parse(&mut self, rec: &mut Record) -> io::Result<Option<usize>> {
        let d = self.delimiter;
        let mut state = State::FieldStart;
        let mut malformed = false;
        let (mut lines, mut bytes) = (0usize, 0usize);
        loop {
            if lines == self.held.len() && !self.hold_one()? {
                return Ok(None); // the end of the file inside a quote
            }
            let held = &self.held[lines];
            if lines > 0 && held.cut {
                return Ok(None);
            }
            for &b in &held.bytes {
                state = match state {
                    State::FieldStart if b == b'"' => State::Quoted,
                    State::FieldStart | State::Unquoted if b == d => {
                        rec.ends.push(rec.data.len());
                        State::FieldStart
                    }
                    State::FieldStart | State::Unquoted => {
                        rec.data.push(b);
                        State::Unquoted
                    }
                    State::Quoted if b == b'"' => State::QuoteInQuoted,
                    State::Quoted => {
                        rec.data.push(b);
                        State::Quoted
                    }
                    State::QuoteInQuoted if b == b'"' => {
                        rec.data.push(b'"');
                        State::Quoted
                    }
                    State::QuoteInQuoted if b == d => {
                        rec.ends.push(rec.data.len());
                        State::FieldStart
                    }
                    State::QuoteInQuoted => {
                        malformed = true;
                        rec.data.push(b);
                        State::Unquoted
                    }
                };
            }
            lines += 1;
            bytes += held.bytes.len() + 1;
            if state != State::Quoted {
                rec.ends.push(rec.data.len());
                break;
            }
            if lines >= MAX_RECORD_LINES || bytes > MAX_RECORD {
                return Ok(None);
            }
            rec.data.push(b'\n');
        }
        // One line whose quotes are off but whose width is right is read leniently; off in
        // both ways, its quote is the reason it is not a row.
        let spans = lines > 1;
        let off_width = self.width.is_some_and(|w| w != rec.len());
        if (spans && malformed) || ((spans || malformed) && off_width) {
            return Ok(None);
        }
        Ok(Some(lines))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each record as its fields joined by `|`, each reject as `line:reason:raw`.
    fn read(input: &str, width: Option<usize>) -> Vec<String> {
        let mut r = Records::new(io::BufReader::with_capacity(7, input.as_bytes()), b',');
        r.set_width(width);
        let mut rec = Record::default();
        let mut out = Vec::new();
        loop {
            match r.next(&mut rec).expect("reads") {
                Next::Record => out.push(format!(
                    "{}:{}",
                    rec.line,
                    rec.iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect::<Vec<_>>()
                        .join("|")
                )),
                Next::Rejected(j) => out.push(format!("{}:{}:{}", j.line, j.reason, j.raw)),
                Next::End => return out,
            }
        }
    }

    #[test]
    fn quoted_fields_with_line_endings_load() {
        let csv = "title,isbn,review\n\"Dune, a novel\",0441013597,\"Great.\n\nRead \"\"it\"\".\"\nB,0306406152,\n";
        assert_eq!(
            read(csv, Some(3)),
            [
                "1:title|isbn|review",
                "2:Dune, a novel|0441013597|Great.\n\nRead \"it\".",
                "5:B|0306406152|"
            ]
        );
    }

    #[test]
    fn an_unterminated_quote_costs_its_row_only() {
        let mut csv = String::from("title,isbn\n\"unterminated,0306406152\n");
        for i in 0..20 {
            csv.push_str(&format!("t{i},0441013597\n"));
        }
        let got = read(&csv, Some(2));
        assert_eq!(got[1], "2:unterminated-quote:\"unterminated,0306406152");
        assert_eq!(got.len(), 22, "{got:?}");
        assert_eq!(got[2], "3:t0|0441013597");
        assert_eq!(got[21], "22:t19|0441013597");
    }

    #[test]
    fn a_quote_closed_by_a_later_rows_quote_is_no_record() {
        // Row 2 opens a quote; row 4's quoted title would close it, followed by text.
        let csv = "title,isbn\n\"open,0306406152\nplain,0441013597\n\"Hunger, Games\",0439023483\n";
        assert_eq!(
            read(csv, Some(2)),
            [
                "1:title|isbn",
                "2:unterminated-quote:\"open,0306406152",
                "3:plain|0441013597",
                "4:Hunger, Games|0439023483"
            ]
        );
        // Closed properly but with the wrong width once it spans lines: swallowed rows.
        let csv = "a,b\n\"x,1\ny\",2,3\n";
        assert_eq!(
            read(csv, Some(2)),
            ["1:a|b", "2:unterminated-quote:\"x,1", "3:y\"|2|3"]
        );
    }

    #[test]
    fn cr_only_and_mixed_endings_give_the_right_lines() {
        assert_eq!(
            read("a,b\r1,2\r\n3,4\n\r5,6", None),
            ["1:a|b", "2:1|2", "3:3|4", "5:5|6"]
        );
    }

    #[test]
    fn bounds_hold() {
        // A quote open for more lines than the bound.
        let mut csv = String::from("\"x,1\n");
        for _ in 0..MAX_RECORD_LINES + 5 {
            csv.push_str("y\n");
        }
        csv.push_str("end\",2\n");
        let got = read(&csv, None);
        assert_eq!(got[0], "1:unterminated-quote:\"x,1");
        assert_eq!(got[1], "2:y");
        // A line longer than a record may be.
        let long = format!("a,{}\nb,c\n", "9".repeat(MAX_RECORD + 10));
        let got = read(&long, None);
        assert!(
            got[0].starts_with("1:line-too-long:a,999"),
            "{}",
            &got[0][..40]
        );
        assert_eq!(got[1], "2:b|c");
    }

    #[test]
    fn comments_and_empty_lines_are_skipped_and_lenient_quotes_read() {
        assert_eq!(
            read("# note\n\na 5\" disk,1\n\"x\"y,2\n", None),
            ["3:a 5\" disk|1", "4:xy|2"]
        );
    }
}
