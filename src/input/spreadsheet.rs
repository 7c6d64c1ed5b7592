/*!
Spreadsheets (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) through `calamine`.

A spreadsheet keeps a whole ISBN-13 as a number (unlike the CSV Goodreads writes, whose
scientific notation lost digits for good), so a numeric cell is written back as its integer
digits and parsed like text: 9780261103344.0 is the ISBN-13, and a 7-9 digit number an ISBN-10
that lost its leading zeros, under the usual rule. The file is read into memory (the formats
are zip or OLE containers, not streams) and checked against a budget first (`budget.rs`):
`.xlsx` and `.xlsb` sheets are then streamed a cell at a time, `.xls` and `.ods` read whole.
*/

use std::io::Cursor;

use calamine::{Data, Reader, Sheets};

use super::columns::{self, Choice};
use super::table::{self, Row, Table};
use super::{Error, InputOptions, Item, budget, raw_text};

/// The leading bytes of a zip (xlsx, ods) or an OLE2 compound file (xls).
pub fn looks_like(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(OLE)
}

/// Rows sampled to choose ISBN columns by content.
const SAMPLE_ROWS: usize = 200;

/// What was read, for the report.
pub struct Sheet {
    pub kind: &'static str,
    pub name: String,
    pub header: bool,
    pub choice: Choice,
}

/// A cell as text: integral numbers as their digits (no `.0`, no exponent).
fn cell_text(d: &Data) -> String {
    match d {
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::String(s) => s.clone(),
        Data::Empty | Data::Error(_) => String::new(),
        other => other.to_string(),
    }
}

struct SheetRow(Vec<String>);

impl Row for SheetRow {
    fn width(&self) -> usize {
        self.0.len()
    }
    fn cell(&self, i: usize) -> Option<Result<&str, ()>> {
        self.0.get(i).map(|s| Ok(s.as_str()))
    }
    fn raw(&self) -> String {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let _ = w.write_record(&self.0);
        let bytes = w.into_inner().unwrap_or_default();
        raw_text(bytes.strip_suffix(b"\n").unwrap_or(&bytes))
    }
}

pub fn read(
    bytes: Vec<u8>,
    opts: &InputOptions,
    emit: &mut dyn FnMut(Item),
) -> Result<Sheet, Error> {
    // The reader is a dependency fed hostile bytes: a panic in it (the fuzz tests found one,
    // now checked for first) is this file's error, not the end of the load.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_checked(bytes, opts, emit)
    }))
    .unwrap_or_else(|_| {
        Err(Error::Spreadsheet(
            "the spreadsheet reader failed on this file".into(),
        ))
    })
}

fn read_checked(
    bytes: Vec<u8>,
    opts: &InputOptions,
    emit: &mut dyn FnMut(Item),
) -> Result<Sheet, Error> {
    let checked = if bytes.starts_with(OLE) {
        budget::check_xls(&bytes)
    } else {
        budget::check_zip(&bytes).and_then(|()| budget::check_ods(&bytes))
    };
    checked?;
    let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(bytes))
        .map_err(|e| Error::Spreadsheet(e.to_string()))?;
    let kind = match book {
        Sheets::Xls(_) => "xls",
        Sheets::Xlsx(_) => "xlsx",
        Sheets::Xlsb(_) => "xlsb",
        Sheets::Ods(_) => "ods",
    };
    let names = book.sheet_names();
    let name = match &opts.sheet {
        Some(wanted) => names
            .iter()
            .find(|n| *n == wanted)
            .or_else(|| names.iter().find(|n| n.eq_ignore_ascii_case(wanted)))
            .cloned()
            .ok_or_else(|| Error::SheetNotFound {
                wanted: wanted.clone(),
                sheets: names.clone(),
            })?,
        None => names
            .first()
            .cloned()
            .ok_or_else(|| Error::Spreadsheet("the workbook has no sheet".into()))?,
    };
    let sheet_error =
        |e: &dyn std::fmt::Display| Error::Spreadsheet(format!("sheet {name:?}: {e}"));
    // xlsx and xlsb are streamed a cell at a time (only a row is held); xls and ods are read
    // whole, within the budget checked above.
    let (header, choice) = match &mut book {
        Sheets::Xlsx(x) => {
            let mut cells = x.worksheet_cells_reader(&name);
            let cells = cells.as_mut().map_err(|e| sheet_error(e))?;
            stream(|| cells.next_cell(), &sheet_error, opts, emit)?
        }
        Sheets::Xlsb(x) => {
            let mut cells = x.worksheet_cells_reader(&name);
            let cells = cells.as_mut().map_err(|e| sheet_error(e))?;
            stream(|| cells.next_cell(), &sheet_error, opts, emit)?
        }
        book => {
            let range = book.worksheet_range(&name).map_err(|e| sheet_error(&e))?;
            // Row numbers as the spreadsheet shows them (1-based, counting rows above the data).
            let first_row = range.start().map_or(0, |(r, _)| u64::from(r)) + 1;
            let rows = range
                .rows()
                .enumerate()
                .map(|(i, r)| (first_row + i as u64, r.iter().map(cell_text).collect()))
                .filter(|(_, cells): &(u64, Vec<String>)| !blank(cells))
                .map(Ok);
            table_rows(rows, opts, emit)?
        }
    };
    Ok(Sheet {
        kind,
        name,
        header,
        choice,
    })
}

const OLE: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

fn blank(cells: &[String]) -> bool {
    cells.iter().all(|c| c.trim().is_empty())
}

/// A sheet's non-blank rows to items: the first ones sampled for the header and the ISBN
/// columns, then every row in turn.
/// The rows of a sheet whose cells `next` gives one at a time.
fn stream<'a, E: std::fmt::Display>(
    mut next: impl FnMut() -> Result<Option<calamine::Cell<calamine::DataRef<'a>>>, E>,
    sheet_error: &dyn Fn(&dyn std::fmt::Display) -> Error,
    opts: &InputOptions,
    emit: &mut dyn FnMut(Item),
) -> Result<(bool, Choice), Error> {
    table_rows(
        Streamed::new(|| next().map_err(|e| sheet_error(&e))),
        opts,
        emit,
    )
}

fn table_rows(
    mut rows: impl Iterator<Item = Result<(u64, Vec<String>), Error>>,
    opts: &InputOptions,
    emit: &mut dyn FnMut(Item),
) -> Result<(bool, Choice), Error> {
    let mut sample = Vec::with_capacity(SAMPLE_ROWS + 1);
    for row in rows.by_ref() {
        sample.push(row?);
        if sample.len() > SAMPLE_ROWS {
            break;
        }
    }
    let header = sample
        .first()
        .is_some_and(|(_, first)| !table::holds_isbn(first));
    let header_cells = header.then(|| sample.remove(0).1);
    let cells: Vec<Vec<String>> = sample.iter().map(|(_, c)| c.clone()).collect();
    let choice = columns::choose(header_cells.as_deref(), &cells, opts.column.as_deref())?;
    let mut table = Table::new(choice.columns.clone(), None);
    for (line, cells) in sample {
        table.row(line, &SheetRow(cells), emit);
    }
    for row in rows {
        let (line, cells) = row?;
        table.row(line, &SheetRow(cells), emit);
    }
    Ok((header, choice))
}

/// The rows of a sheet read a cell at a time: cells of one row are gathered until the next
/// row's first, blank rows skipped.
struct Streamed<F> {
    next: F,
    pending: Option<(u32, u32, String)>,
    /// The reader said it has no more cells (asking again is an error).
    done: bool,
}

impl<'a, F, E> Streamed<F>
where
    F: FnMut() -> Result<Option<calamine::Cell<calamine::DataRef<'a>>>, E>,
{
    fn new(next: F) -> Streamed<F> {
        Streamed {
            next,
            pending: None,
            done: false,
        }
    }

    fn cell(&mut self) -> Result<Option<(u32, u32, String)>, E> {
        if self.done {
            return Ok(None);
        }
        let cell = (self.next)()?;
        self.done = cell.is_none();
        Ok(cell.map(|c| {
            let (row, col) = c.get_position();
            (row, col, cell_text(&Data::from(c.get_value().clone())))
        }))
    }
}

impl<'a, F> Iterator for Streamed<F>
where
    F: FnMut() -> Result<Option<calamine::Cell<calamine::DataRef<'a>>>, Error>,
{
    type Item = Result<(u64, Vec<String>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let first = match self
                .pending
                .take()
                .map(Ok)
                .or_else(|| self.cell().transpose())?
            {
                Ok(c) => c,
                Err(e) => return Some(Err(e)),
            };
            let row = first.0;
            let mut cells = Vec::new();
            let mut next = Some(first);
            while let Some((r, col, text)) = next {
                if r != row {
                    self.pending = Some((r, col, text));
                    break;
                }
                if col >= budget::MAX_COLUMNS {
                    return Some(Err(Error::OverBudget(format!(
                        "row {} has a cell past column {} (the limit)",
                        u64::from(row) + 1,
                        budget::MAX_COLUMNS
                    ))));
                }
                let col = col as usize;
                if cells.len() <= col {
                    cells.resize(col + 1, String::new());
                }
                cells[col] = text;
                next = match self.cell() {
                    Ok(c) => c,
                    Err(e) => return Some(Err(e)),
                };
            }
            if !blank(&cells) {
                return Some(Ok((u64::from(row) + 1, cells)));
            }
        }
    }
}
