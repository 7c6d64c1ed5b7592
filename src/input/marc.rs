/*!
Library records: MARC 21 as ISO 2709 (`.mrc`) and as MARCXML.

Each record gives the ISBNs of its 020 $a subfields, which carry qualifiers
(`9780261103344 (pbk.)`) and are read as cells are. 020 $z (a cancelled or invalid ISBN) is
not an ISBN of the book and is ignored. A record's line is its position in the file (the first
record is 1), and its control number (001) is kept with the job. A record with no usable
020 $a is rejected with its control number, so it can be found in the catalogue.

Both readers stream one record at a time: memory stays flat for any catalogue size.
*/

use std::io::BufRead;

use quick_xml::events::Event;

use super::cell::isbns_in_cell;
use super::{Error, Item, raw_text};
use crate::isbn::{Isbn13, RejectReason};
use crate::store::Reject;

const RECORD_END: u8 = 0x1D;
const FIELD_END: u8 = 0x1E;
const SUBFIELD: u8 = 0x1F;
/// A record's length is five digits in its leader.
const MAX_RECORD: usize = 99_999;

/// An ISO 2709 leader: a five-digit length, and `4500` (the entry map) at bytes 20-23.
pub fn looks_like_iso2709(head: &[u8]) -> bool {
    head.len() >= 24 && head[..5].iter().all(u8::is_ascii_digit) && &head[20..24] == b"4500"
}

/// MARCXML: an XML document whose records have MARC's fields.
pub fn looks_like_xml(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&head[..head.len().min(4096)]);
    text.trim_start().starts_with('<')
        && (text.contains("MARC21/slim")
            || text.contains("datafield")
            || text.contains("controlfield"))
}

/// One record's identifiers.
#[derive(Default)]
struct Record {
    control: Option<String>,
    isbn_fields: Vec<String>,
}

impl Record {
    fn emit(&self, number: u64, found: &mut Vec<Isbn13>, emit: &mut dyn FnMut(Item)) {
        found.clear();
        let mut reason: Option<RejectReason> = None;
        for value in &self.isbn_fields {
            if let Err(r) = isbns_in_cell(value, found) {
                reason = Some(reason.map_or(r, |prev| prev.or_better(r)));
            }
        }
        let reference = self.control.clone();
        if found.is_empty() {
            let values = if self.isbn_fields.is_empty() {
                "no 020 $a".to_string()
            } else {
                format!("020 $a {}", self.isbn_fields.join(" | "))
            };
            emit(Item::Rejected(Reject {
                line: number,
                raw: raw_text(
                    format!("001 {}: {values}", self.control.as_deref().unwrap_or("-")).as_bytes(),
                ),
                reason: reason.unwrap_or(RejectReason::Empty),
            }));
        }
        for &isbn in found.iter() {
            emit(Item::Valid {
                line: number,
                isbn,
                reference: reference.clone(),
            });
        }
    }
}

/// Reads ISO 2709 records (each ends with 0x1D). A record whose leader or directory cannot be
/// read is rejected as `bad-record`, and reading goes on with the next one.
pub fn read_iso2709<R: BufRead>(mut reader: R, emit: &mut dyn FnMut(Item)) -> Result<(), Error> {
    let mut buf = Vec::with_capacity(4096);
    let mut found = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        let n = std::io::Read::take(&mut reader, MAX_RECORD as u64 + 1)
            .read_until(RECORD_END, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        // Line ends between records (some tools write them) are not records.
        let data = buf.strip_suffix(&[RECORD_END]).unwrap_or(&buf).trim_ascii();
        if data.is_empty() {
            continue;
        }
        number += 1;
        match parse_iso2709(data) {
            Some(record) => record.emit(number, &mut found, emit),
            None => emit(Item::Rejected(Reject {
                line: number,
                raw: raw_text(&data[..data.len().min(200)]),
                reason: RejectReason::BadRecord,
            })),
        }
        if buf.last() != Some(&RECORD_END) && n > MAX_RECORD {
            // An over-long "record" (or junk): skip to the next terminator without holding it.
            skip_past(&mut reader, RECORD_END)?;
        }
    }
}

/// Consumes `reader` through the next `end` byte (or to its end), holding nothing.
fn skip_past<R: BufRead>(reader: &mut R, end: u8) -> std::io::Result<()> {
    loop {
        let available = super::fill(reader)?;
        if available.is_empty() {
            return Ok(());
        }
        match memchr::memchr(end, available) {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

/// The most bytes of one XML tag or text run (between `<` and `>`): quick-xml holds a whole
/// event, and a 200 MB text node must not be 200 MB of memory.
const MAX_XML_RUN: usize = 1024 * 1024;
/// The most text kept of one field (an ISBN with its qualifier is short).
const MAX_FIELD: usize = 4096;

/// A reader that fails once a run of bytes without `<` or `>` passes [`MAX_XML_RUN`].
struct BoundedRuns<R> {
    inner: R,
    run: usize,
}

impl<R: BufRead> std::io::Read for BoundedRuns<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for BoundedRuns<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.run > MAX_XML_RUN {
            return Err(std::io::Error::other(format!(
                "a tag or text longer than {} MiB",
                MAX_XML_RUN >> 20
            )));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        if let Ok(available) = self.inner.fill_buf() {
            let taken = &available[..n.min(available.len())];
            self.run = match memchr::memrchr2(b'<', b'>', taken) {
                Some(i) => taken.len() - i - 1,
                None => self.run + taken.len(),
            };
        }
        self.inner.consume(n);
    }
}

/// "1 whole record", "2 whole records": what was read before a break.
fn whole(n: u64) -> String {
    format!("{n} whole record{}", if n == 1 { "" } else { "s" })
}

fn digits(b: &[u8]) -> Option<usize> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn parse_iso2709(record: &[u8]) -> Option<Record> {
    if record.len() < 25 {
        return None;
    }
    let base = digits(&record[12..17])?;
    let directory = record.get(24..base.checked_sub(1)?)?;
    if directory.len() % 12 != 0 {
        return None;
    }
    let mut out = Record::default();
    for entry in directory.chunks(12) {
        let tag = &entry[..3];
        let (len, start) = (digits(&entry[3..7])?, digits(&entry[7..12])?);
        let field = record.get(base + start..base + start + len)?;
        let field = field.strip_suffix(&[FIELD_END]).unwrap_or(field);
        match tag {
            b"001" => out.control = Some(String::from_utf8_lossy(field).trim().to_string()),
            b"020" => {
                // Two indicators, then subfields: 0x1F, a code, the data.
                for sub in field.split(|&b| b == SUBFIELD).skip(1) {
                    if let Some((b'a', value)) = sub.split_first() {
                        out.isbn_fields
                            .push(String::from_utf8_lossy(value).trim().to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Some(out)
}

/// Reads MARCXML (`<record>`s with `<controlfield tag="001">` and `<datafield tag="020">`,
/// with or without a namespace prefix).
pub fn read_xml<R: BufRead>(reader: R, emit: &mut dyn FnMut(Item)) -> Result<(), Error> {
    let mut xml = quick_xml::Reader::from_reader(BoundedRuns {
        inner: reader,
        run: 0,
    });
    // Elements open: a document that ends with some still open was cut short.
    let mut depth = 0usize;
    let mut buf = Vec::new();
    let mut found = Vec::new();
    let (mut number, mut record) = (0u64, Record::default());
    // Where text goes: the 001 control field or a 020 $a subfield.
    let (mut in_020, mut target): (bool, Option<String>) = (false, None);
    let mut in_control = false;
    loop {
        let event = xml.read_event_into(&mut buf).map_err(|e| {
            let at = xml.error_position();
            Error::Xml(format!("{e} (at byte {at}, after {})", whole(number)))
        })?;
        match event {
            Event::Start(e) => {
                depth += 1;
                // `tag` and `code` values are plain ASCII: no entities to resolve.
                let attr = |name: &str| {
                    e.try_get_attribute(name)
                        .ok()
                        .flatten()
                        .map(|a| a.value.trim().to_string())
                };
                match e.local_name().as_ref() {
                    "record" => record = Record::default(),
                    "controlfield" => in_control = attr("tag").as_deref() == Some("001"),
                    "datafield" => in_020 = attr("tag").as_deref() == Some("020"),
                    "subfield" if in_020 && attr("code").as_deref() == Some("a") => {
                        target = Some(String::new());
                    }
                    _ => {}
                }
                if in_control {
                    target = Some(String::new());
                }
            }
            Event::Text(t) => {
                if let Some(s) = target.as_mut().filter(|s| s.len() < MAX_FIELD) {
                    s.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(s) = target.as_mut().filter(|s| s.len() < MAX_FIELD) {
                    s.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(s) = target.as_mut().filter(|s| s.len() < MAX_FIELD) {
                    s.extend(crate::xml::resolve(&r));
                }
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                match e.local_name().as_ref() {
                    "controlfield" => {
                        if in_control {
                            record.control = target.take().map(|s| s.trim().to_string());
                        }
                        in_control = false;
                    }
                    "subfield" => {
                        if let Some(value) = target.take().filter(|_| in_020) {
                            record.isbn_fields.push(value.trim().to_string());
                        }
                    }
                    "datafield" => in_020 = false,
                    "record" => {
                        number += 1;
                        std::mem::take(&mut record).emit(number, &mut found, emit);
                    }
                    _ => {}
                }
            }
            Event::Eof if depth > 0 => {
                return Err(Error::Xml(format!(
                    "the file ends inside an element, after {} (cut short?)",
                    whole(number)
                )));
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ISO 2709 record with the given control number and 020 $a values.
    pub fn iso2709(control: &str, isbns: &[&str]) -> Vec<u8> {
        let mut fields: Vec<(&str, Vec<u8>)> = vec![("001", control.as_bytes().to_vec())];
        for isbn in isbns {
            let mut f = b"  \x1Fa".to_vec();
            f.extend_from_slice(isbn.as_bytes());
            fields.push(("020", f));
        }
        fields.push(("245", b"10\x1FaA title".to_vec()));
        let (mut directory, mut data) = (Vec::new(), Vec::new());
        for (tag, mut f) in fields {
            f.push(FIELD_END);
            directory.extend_from_slice(format!("{tag}{:04}{:05}", f.len(), data.len()).as_bytes());
            data.extend_from_slice(&f);
        }
        directory.push(FIELD_END);
        let base = 24 + directory.len();
        let len = base + data.len() + 1;
        let mut out = format!("{len:05}nam a22{base:05}   4500").into_bytes();
        out.extend_from_slice(&directory);
        out.extend_from_slice(&data);
        out.push(RECORD_END);
        out
    }

    fn items(read: impl FnOnce(&mut dyn FnMut(Item)) -> Result<(), Error>) -> Vec<String> {
        let mut out = Vec::new();
        read(&mut |i| {
            out.push(match i {
                Item::Valid {
                    line,
                    isbn,
                    reference,
                } => format!("{line}:{isbn}:{}", reference.unwrap_or_default()),
                Item::Rejected(r) => format!("{}:{}:{}", r.line, r.reason, r.raw),
            })
        })
        .expect("reads");
        out
    }

    #[test]
    fn iso2709_records_give_their_020a_and_control_number() {
        let mut file = iso2709("ocm0001", &["9780261103344 (pbk.)", "0261103342"]);
        assert!(looks_like_iso2709(&file));
        file.extend(iso2709("ocm0002", &[]));
        file.extend(b"garbage\x1D");
        file.extend(iso2709("ocm0003", &["0306406153"]));
        file.extend(iso2709("  2001012345 ", &["978-0-306-40615-7"]));
        assert_eq!(
            items(|emit| read_iso2709(&file[..], emit)),
            [
                "1:9780261103344:ocm0001",
                "2:empty:001 ocm0002: no 020 $a",
                "3:bad-record:garbage",
                "4:bad-check-digit:001 ocm0003: 020 $a 0306406153",
                "5:9780306406157:2001012345",
            ]
        );
    }

    #[test]
    fn marcxml_with_and_without_a_namespace_prefix() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<marc:collection xmlns:marc="http://www.loc.gov/MARC21/slim">
 <marc:record>
  <marc:leader>00000nam a2200000 a 4500</marc:leader>
  <marc:controlfield tag="001">ocm0001</marc:controlfield>
  <marc:datafield tag="020" ind1=" " ind2=" ">
   <marc:subfield code="a">9780261103344 (pbk. &amp; cd)</marc:subfield>
   <marc:subfield code="z">9780306406157</marc:subfield>
  </marc:datafield>
 </marc:record>
 <marc:record><marc:controlfield tag="001">ocm0002</marc:controlfield></marc:record>
</marc:collection>"#;
        assert!(looks_like_xml(xml.as_bytes()));
        assert_eq!(
            items(|emit| read_xml(xml.as_bytes(), emit)),
            ["1:9780261103344:ocm0001", "2:empty:001 ocm0002: no 020 $a"]
        );
        let plain = xml.replace("marc:", "");
        assert_eq!(
            items(|emit| read_xml(plain.as_bytes(), emit)),
            ["1:9780261103344:ocm0001", "2:empty:001 ocm0002: no 020 $a"]
        );
        let second = plain.find("<record><controlfield").expect("second record");
        let broken = &plain[..second + 12];
        let mut n = 0;
        let r = read_xml(broken.as_bytes(), &mut |_| n += 1);
        assert!(
            matches!(&r, Err(Error::Xml(m)) if m.contains("after 1 whole record)")),
            "{r:?}"
        );
        assert_eq!(n, 1, "the record before the break is kept");
        // Cut between two records: still inside <collection>, still cut short.
        let between = &plain[..second];
        let r = read_xml(between.as_bytes(), &mut |_| ());
        assert!(matches!(r, Err(Error::Xml(_))), "{r:?}");
    }
}
