/*!
Line-oriented text: a plain list (one ISBN, or one cell of several, per line) and free text
scanned for ISBNs (`--format scan`).

Lines end at LF, CRLF or a CR alone and are read with a bound ([`MAX_LINE`]), so one enormous
line cannot take the memory.
*/

use std::io::BufRead;

use super::cell::isbns_in_cell;
use super::columns::is_isbn_column_name;
use super::lines::{Line, Lines};
use super::scan::isbns_in_text;
use super::{Error, Item, MAX_LINE, raw_text};
use crate::isbn::{Isbn13, RejectReason};
use crate::store::Reject;

/// Free text may have long lines (a paragraph extracted from a PDF); they are scanned whole
/// up to this size.
const MAX_SCAN_LINE: usize = 1024 * 1024;

/// What is done with each line's text: `(line number, text, emit)`.
type EachLine<'a> = dyn FnMut(u64, &str, &mut dyn FnMut(Item)) + 'a;

/// Calls `each(line number, text)` for every line; over-long and non-UTF-8 lines are rejected.
fn lines<R: BufRead>(
    reader: R,
    max: usize,
    emit: &mut dyn FnMut(Item),
    each: &mut EachLine<'_>,
) -> Result<(), Error> {
    let mut buf = Vec::with_capacity(256);
    let mut lines = Lines::new(reader);
    loop {
        buf.clear();
        let Some(Line { number: line, cut }) = lines.next_line(&mut buf, max)? else {
            return Ok(());
        };
        let reason = match std::str::from_utf8(&buf) {
            _ if cut => RejectReason::LineTooLong,
            Ok(text) => {
                each(line, text, emit);
                continue;
            }
            Err(_) => RejectReason::NotUtf8,
        };
        emit(Item::Rejected(Reject {
            line,
            raw: raw_text(&buf),
            reason,
        }));
    }
}

/// One value per line; blank lines and `#` comments are skipped, and so is a first line that
/// is just an ISBN column name. A line naming several ISBNs gives each.
pub fn read_list<R: BufRead>(reader: R, emit: &mut dyn FnMut(Item)) -> Result<(), Error> {
    let mut seen_content = false;
    let mut found: Vec<Isbn13> = Vec::with_capacity(2);
    lines(reader, MAX_LINE, emit, &mut |line, text, emit| {
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            return;
        }
        let first = !seen_content;
        seen_content = true;
        found.clear();
        match isbns_in_cell(text, &mut found) {
            Ok(()) => found.iter().for_each(|&isbn| {
                emit(Item::Valid {
                    line,
                    isbn,
                    reference: None,
                })
            }),
            // A one-column list often starts with its column name.
            Err(_) if first && is_isbn_column_name(text) => {}
            Err(reason) => emit(Item::Rejected(Reject {
                line,
                raw: raw_text(text.as_bytes()),
                reason,
            })),
        }
    })
}

/// Every ISBN in free text; lines without one are not rejects, just prose.
pub fn read_scan<R: BufRead>(reader: R, emit: &mut dyn FnMut(Item)) -> Result<(), Error> {
    let mut found: Vec<Isbn13> = Vec::new();
    lines(reader, MAX_SCAN_LINE, emit, &mut |line, text, emit| {
        found.clear();
        isbns_in_text(text, &mut found);
        for &isbn in &found {
            emit(Item::Valid {
                line,
                isbn,
                reference: None,
            });
        }
    })
}
