/*!
Rows of a table (a CSV/TSV file or a spreadsheet sheet) to items: every distinct ISBN the
chosen columns name, or one rejected line saying why none does.
*/

use super::Item;
use super::cell::isbns_in_cell;
use crate::isbn::{Isbn13, RejectReason};
use crate::store::Reject;

/// What reading a row needs: its width, its cells, and its text for the rejects table.
pub trait Row {
    fn width(&self) -> usize;
    /// The text of cell `i`; `None` past the end, `Some(Err(()))` when it is not UTF-8.
    fn cell(&self, i: usize) -> Option<Result<&str, ()>>;
    /// The row written back as one line (CSV-quoted), so it can be fixed and loaded again.
    fn raw(&self) -> String;
    fn is_blank(&self) -> bool {
        (0..self.width()).all(|i| {
            self.cell(i)
                .is_some_and(|c| c.is_ok_and(|t| t.trim().is_empty()))
        })
    }
}

/// The columns to read, and the width every row must have (when the table has a header).
pub struct Table {
    pub columns: Vec<usize>,
    pub width: Option<usize>,
    found: Vec<Isbn13>,
}

impl Table {
    pub fn new(columns: Vec<usize>, width: Option<usize>) -> Table {
        Table {
            columns,
            width,
            found: Vec::with_capacity(4),
        }
    }

    /// Emits the items of one row; a blank row is skipped.
    pub fn row(&mut self, line: u64, row: &impl Row, emit: &mut dyn FnMut(Item)) {
        let reject = |reason| {
            Item::Rejected(Reject {
                line,
                raw: row.raw(),
                reason,
            })
        };
        if self.width.is_some_and(|w| w != row.width()) {
            if !row.is_blank() {
                emit(reject(RejectReason::RaggedRow));
            }
            return;
        }
        self.found.clear();
        let mut reason: Option<RejectReason> = None;
        let mut seen_text = false;
        for &c in &self.columns {
            let this = match row.cell(c) {
                Some(Ok(text)) => {
                    seen_text |= !text.trim().is_empty();
                    match isbns_in_cell(text, &mut self.found) {
                        Ok(()) => continue,
                        Err(r) => r,
                    }
                }
                Some(Err(())) => RejectReason::NotUtf8,
                None => RejectReason::Empty,
            };
            reason = Some(reason.map_or(this, |prev| prev.or_better(this)));
        }
        if self.found.is_empty() {
            if !seen_text && self.width.is_none() && row.is_blank() {
                return;
            }
            emit(reject(reason.unwrap_or(RejectReason::Empty)));
        } else {
            for &isbn in &self.found {
                emit(Item::Valid {
                    line,
                    isbn,
                    reference: None,
                });
            }
        }
    }
}

/// `true` when some cell of the row holds a valid ISBN: then it is data, not a header.
pub fn holds_isbn(cells: &[String]) -> bool {
    cells
        .iter()
        .any(|c| isbns_in_cell(c, &mut Vec::new()).is_ok())
}
