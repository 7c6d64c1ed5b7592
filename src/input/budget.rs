/*!
Spreadsheets under a budget, checked before the spreadsheet reader sees them.

A workbook is a container of declarations the reader trusts: an `.xls` DIMENSIONS record or
one far cell makes it reserve rows × columns cells up front (hundreds of GiB for a 1.7 KB
file, and the process aborts), and a zip part can inflate a thousandfold. So, before
`calamine` opens a workbook:

- every zip part (`.xlsx`, `.xlsm`, `.xlsb`, `.ods`) is inflated into a counter, not memory,
  and refused past [`MAX_PART`] bytes, [`MAX_UNCOMPRESSED`] in all, or [`MAX_RATIO`] times its
  compressed size (a part over 1 MiB), and a container of more than [`MAX_ENTRIES`] parts;
- the sheets of the formats read whole (`.xls`, `.ods`) may span at most [`MAX_CELLS`] cells
  (the rectangle from the first to the last non-empty cell, as the reader allocates it; the
  `.xls` DIMENSIONS record counts too);
- `.xlsx` and `.xlsb` sheets are streamed a cell at a time, so only a row is held; a cell past
  column [`MAX_COLUMNS`] is refused.

Each refusal is that file's error, naming the limit; the files after it load.
*/

use std::io::{self, Cursor, Read};

/// The most bytes one zip part may inflate to.
pub const MAX_PART: u64 = 64 << 20;
/// The most bytes all parts together may inflate to.
pub const MAX_UNCOMPRESSED: u64 = 128 << 20;
/// The most a part over 1 MiB may inflate relative to its compressed size.
pub const MAX_RATIO: u64 = 100;
/// The most parts a container may hold.
pub const MAX_ENTRIES: usize = 10_000;
/// The most cells a sheet read whole may span.
pub const MAX_CELLS: u64 = 2_000_000;
/// Excel's own column limit (XFD); a streamed row is never wider.
pub const MAX_COLUMNS: u32 = 16_384;

use super::Error;

fn over(what: String) -> Error {
    Error::OverBudget(format!("{what}; save the sheet as CSV to load it"))
}

/// A container that cannot even be checked: not a spreadsheet that can be read.
fn broken(e: impl std::fmt::Display) -> Error {
    Error::Spreadsheet(e.to_string())
}

/// Checks a zip container's parts by inflating each into a counter.
pub fn check_zip(bytes: &[u8]) -> Result<(), Error> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(broken)?;
    if zip.len() > MAX_ENTRIES {
        return Err(over(format!(
            "the container holds {} parts (limit {MAX_ENTRIES})",
            zip.len()
        )));
    }
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut part = zip.by_index(i).map_err(broken)?;
        let name = part.name().map(|n| n.into_owned()).unwrap_or_default();
        let compressed = part.compressed_size().max(1);
        // Read one byte past the limit: the declared size may lie.
        let inflated = io::copy(&mut (&mut part).take(MAX_PART + 1), &mut io::sink())
            .map_err(|e| broken(format!("part {name:?}: {e}")))?;
        if inflated > MAX_PART {
            return Err(over(format!(
                "part {name:?} inflates past {} MiB (the limit)",
                MAX_PART >> 20
            )));
        }
        if inflated > 1 << 20 && inflated / compressed > MAX_RATIO {
            return Err(over(format!(
                "part {name:?} inflates {}-fold (limit {MAX_RATIO})",
                inflated / compressed
            )));
        }
        total += inflated;
        if total > MAX_UNCOMPRESSED {
            return Err(over(format!(
                "the parts inflate past {} MiB in all (the limit)",
                MAX_UNCOMPRESSED >> 20
            )));
        }
    }
    Ok(())
}

/// The rectangle a sheet's cells span, as the reader allocates it.
#[derive(Default)]
struct Extent {
    rows: Option<(u64, u64)>,
    cols: Option<(u64, u64)>,
}

impl Extent {
    fn add(&mut self, row: u64, col: u64) {
        let widen = |r: &mut Option<(u64, u64)>, v: u64| {
            *r = Some(r.map_or((v, v), |(a, b)| (a.min(v), b.max(v))));
        };
        widen(&mut self.rows, row);
        widen(&mut self.cols, col);
    }

    fn cells(&self) -> u64 {
        match (self.rows, self.cols) {
            (Some((r0, r1)), Some((c0, c1))) => (r1 - r0 + 1).saturating_mul(c1 - c0 + 1),
            _ => 0,
        }
    }
}

fn check_cells(sheet: &str, cells: u64) -> Result<(), Error> {
    if cells > MAX_CELLS {
        return Err(over(format!(
            "{sheet} spans {cells} cells (limit {MAX_CELLS})"
        )));
    }
    Ok(())
}

/// Checks an `.xls` workbook: every sheet's DIMENSIONS record and the cells it holds.
pub fn check_xls(bytes: &[u8]) -> Result<(), Error> {
    let mut cfb = cfb::CompoundFile::open(Cursor::new(bytes)).map_err(broken)?;
    let name = ["/Workbook", "/Book"]
        .into_iter()
        .find(|n| cfb.is_stream(n))
        .ok_or_else(|| broken("no Workbook stream"))?;
    let mut stream = Vec::new();
    cfb.open_stream(name)
        .and_then(|mut s| s.read_to_end(&mut stream))
        .map_err(broken)?;
    let (mut at, mut sheet, mut extent) = (0usize, 0usize, Extent::default());
    while at + 4 <= stream.len() {
        let typ = u16::from_le_bytes([stream[at], stream[at + 1]]);
        let len = usize::from(u16::from_le_bytes([stream[at + 2], stream[at + 3]]));
        let data = &stream[at + 4..(at + 4 + len).min(stream.len())];
        at += 4 + len;
        let u16_at = |i: usize| {
            data.get(i..i + 2)
                .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])))
        };
        let u32_at = |i: usize| {
            data.get(i..i + 4)
                .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        };
        match typ {
            // BOF: a new substream (the workbook globals, then each sheet).
            0x0809 => {
                check_cells(&format!("sheet {sheet}"), extent.cells())?;
                extent = Extent::default();
                sheet += 1;
            }
            // DIMENSIONS: the reader reserves rows × columns from it.
            0x0200 => {
                let (rf, rl, cf, cl) = match len {
                    10 => (u16_at(0), u16_at(2), u16_at(4), u16_at(6)),
                    14 | 16 => (u32_at(0), u32_at(4), u16_at(8), u16_at(10)),
                    _ => continue, // the reader refuses it
                };
                let (Some(rf), Some(rl), Some(cf), Some(cl)) = (rf, rl, cf, cl) else {
                    continue;
                };
                // As the reader reads it (a first column past 255, or after the last, is 0).
                let cf = if cf > 0xff || cl < cf { 0 } else { cf };
                if rl >= 1 && cl >= 1 {
                    if rl - 1 < rf {
                        return Err(broken(format!(
                            "sheet {sheet}'s DIMENSIONS record ends before it starts"
                        )));
                    }
                    let cells = (rl - rf).saturating_mul(cl - cf);
                    check_cells(&format!("sheet {sheet}'s declared size"), cells)?;
                }
            }
            // Cells: NUMBER, LABEL, RSTRING, BOOLERR, RK, LABELSST, FORMULA.
            0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD | 0x0006 => {
                if let (Some(row), Some(col)) = (u16_at(0), u16_at(2)) {
                    extent.add(row, col);
                }
            }
            // MULRK: a row, its first column, and its last in the last two bytes.
            0x00BD => {
                if let (Some(row), Some(first), Some(last)) =
                    (u16_at(0), u16_at(2), u16_at(len.saturating_sub(2)))
                {
                    extent.add(row, first);
                    extent.add(row, last);
                }
            }
            _ => {}
        }
    }
    check_cells(&format!("sheet {sheet}"), extent.cells())
}

/// Checks an `.ods` workbook (any zip holding a `content.xml`): the rectangle each table's non-empty cells span, repeats
/// counted as the reader expands them.
pub fn check_ods(bytes: &[u8]) -> Result<(), Error> {
    use quick_xml::events::Event;
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(broken)?;
    // Not an OpenDocument file: nothing to check here.
    let Ok(content) = zip.by_name("content.xml") else {
        return Ok(());
    };
    let mut xml = quick_xml::Reader::from_reader(io::BufReader::new(content));
    let mut buf = Vec::new();
    let repeat = |e: &quick_xml::events::BytesStart, name: &str| -> u64 {
        e.try_get_attribute(name)
            .ok()
            .flatten()
            .and_then(|a| a.value.trim().parse().ok())
            .unwrap_or(1)
    };
    let (mut table, mut extent) = (0usize, Extent::default());
    let (mut row, mut row_repeat, mut col) = (0u64, 1u64, 0u64);
    loop {
        let event = xml.read_event_into(&mut buf).map_err(broken)?;
        match &event {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                "table:table" => {
                    check_cells(&format!("table {table}"), extent.cells())?;
                    (extent, row, table) = (Extent::default(), 0, table + 1);
                }
                "table:table-row" => {
                    (row_repeat, col) = (repeat(e, "table:number-rows-repeated"), 0);
                    if matches!(event, Event::Empty(_)) {
                        row = row.saturating_add(row_repeat);
                    }
                }
                "table:table-cell" | "table:covered-table-cell" => {
                    let n = repeat(e, "table:number-columns-repeated");
                    let valued = matches!(event, Event::Start(_))
                        || e.attributes()
                            .flatten()
                            .any(|a| a.key.as_ref() == "office:value-type");
                    if valued {
                        extent.add(row, col);
                        extent.add(
                            row.saturating_add(row_repeat.saturating_sub(1)),
                            col.saturating_add(n.saturating_sub(1)),
                        );
                    }
                    col = col.saturating_add(n);
                }
                _ => {}
            },
            Event::End(e) if e.name().as_ref() == "table:table-row" => {
                row = row.saturating_add(row_repeat);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    check_cells(&format!("table {table}"), extent.cells())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_count_the_rectangle() {
        let mut e = Extent::default();
        assert_eq!(e.cells(), 0);
        e.add(0, 0);
        assert_eq!(e.cells(), 1);
        e.add(1_048_575, 16_383);
        assert_eq!(e.cells(), 1_048_576 * 16_384);
        assert!(check_cells("s", e.cells()).is_err());
    }
}
