/*!
Spreadsheets (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) through `calamine`.

A spreadsheet keeps a whole ISBN-13 as a number (unlike the CSV Goodreads writes, whose
scientific notation lost digits for good), so a numeric cell is written back as its integer
digits and parsed like text: 9780261103344.0 is the ISBN-13, and a 7-9 digit number an ISBN-10
that lost its leading zeros, under the usual rule. The workbook is read whole into memory
(the formats are zip or OLE containers, not streams).
*/

use std::io::Cursor;

use calamine::{Data, Reader, Sheets};

use super::columns::{self, Choice};
use super::table::{self, Row, Table};
use super::{Error, InputOptions, Item, raw_text};

/// The leading bytes of a zip (xlsx, ods) or an OLE2 compound file (xls).
pub fn looks_like(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1")
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
    let range = book
        .worksheet_range(&name)
        .map_err(|e| Error::Spreadsheet(format!("sheet {name:?}: {e}")))?;
    // Row numbers as the spreadsheet shows them (1-based, counting rows above the data).
    let first_row = range.start().map_or(0, |(r, _)| u64::from(r)) + 1;
    let rows = || {
        range
            .rows()
            .enumerate()
            .map(move |(i, r)| {
                (
                    first_row + i as u64,
                    r.iter().map(cell_text).collect::<Vec<_>>(),
                )
            })
            .filter(|(_, cells)| cells.iter().any(|c| !c.trim().is_empty()))
    };
    let mut sample: Vec<Vec<String>> = rows().take(SAMPLE_ROWS + 1).map(|(_, r)| r).collect();
    let header = sample
        .first()
        .is_some_and(|first| !table::holds_isbn(first));
    let header_cells = if header { Some(sample.remove(0)) } else { None };
    let choice = columns::choose(header_cells.as_deref(), &sample, opts.column.as_deref())?;
    let mut table = Table::new(choice.columns.clone(), None);
    for (line, cells) in rows().skip(usize::from(header)) {
        table.row(line, &SheetRow(cells), emit);
    }
    Ok(Sheet {
        kind,
        name,
        header,
        choice,
    })
}
