/*!
Reads a `searchRetrieve` answer: the count, the diagnostics and the MARC records inside it,
matched by namespace URI and local name, never by prefix. The same SRW namespace comes
unprefixed (DNB), as `zs:` (LoC, K10plus) and as `srw:` (BnF), and the SRW wrapper and the MARC
record inside it are both called `record`. BnF's records are marcxchange, with MARCXML's local
names in another namespace.

HTTP 200 proves nothing: [`Answer::reading`] says whether a body is records, a clean miss, or
a failure (any diagnostic, records announced but absent, not an SRU answer at all). A body
that declares a DTD or entities is refused before anything in it is read: nothing is
expanded, nothing fetched. Every text and list is bounded, so no answer can make the client
allocate what it asks.
*/

use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};

const SRW: &str = "http://www.loc.gov/zing/srw/";
const DIAGNOSTIC: &str = "http://www.loc.gov/zing/srw/diagnostic/";
const MARC21: &str = "http://www.loc.gov/MARC21/slim";
const MARCXCHANGE: &str = "info:lc/xmlns/marcxchange-v2";

/// The longest text kept from one element: longer ones are cut (a MARC field is at most
/// 9,999 bytes).
const MAX_TEXT: usize = 16 * 1024;
/// The most records read from one answer (a page asks for 100 at most).
const MAX_RECORDS: usize = 200;
/// The most fields read from one record.
const MAX_FIELDS: usize = 1_000;

/// One MARC record as the catalogue sent it (MARC 21 or UNIMARC alike).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarcRecord {
    pub leader: String,
    /// `(tag, value)` of each control field, in order.
    pub controls: Vec<(String, String)>,
    pub fields: Vec<DataField>,
    /// The record's own `id` attribute (BnF's ark), if any.
    pub id: Option<String>,
    /// When the catalogue last changed the record (BnF's `LastModificationDate`, `20200101`).
    pub modified: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataField {
    pub tag: String,
    pub ind1: String,
    pub ind2: String,
    /// `(code, value)` of each subfield, in order.
    pub subfields: Vec<(String, String)>,
}

impl DataField {
    /// A field of `tag` with blank indicators and `subfields` (code, value): for tests that
    /// build records by hand.
    #[cfg(test)]
    pub fn of(tag: &str, subfields: &[(&str, &str)]) -> DataField {
        DataField {
            tag: tag.into(),
            subfields: subfields
                .iter()
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect(),
            ..DataField::default()
        }
    }
}

impl MarcRecord {
    /// The value of control field `tag`.
    pub fn control(&self, tag: &str) -> Option<&str> {
        self.controls
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of subfield `code` in the fields tagged `tag`, in order.
    pub fn subfields<'a>(&'a self, tag: &'a str, code: &'a str) -> impl Iterator<Item = &'a str> {
        self.fields
            .iter()
            .filter(move |f| f.tag == tag)
            .flat_map(move |f| f.subfields.iter().filter(move |(c, _)| c == code))
            .map(|(_, v)| v.as_str())
    }
}

/// An SRU diagnostic: a failure reported inside an HTTP 200.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostic {
    pub uri: String,
    pub message: String,
    pub details: String,
}

/// What one answer holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// Every hit of the query, over all pages.
    pub number_of_records: u64,
    pub records: Vec<MarcRecord>,
    pub diagnostics: Vec<Diagnostic>,
}

/// What an answer means for the lookups asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// Records (`more`: hits past this page, to be paged for).
    Records { more: bool },
    /// A clean zero: no catalogue record for any ISBN asked.
    Miss,
    /// A diagnostic, or records announced but not sent: no verdict.
    Failure(String),
}

impl Answer {
    /// What this answer, the page that starts at record `start` (1-based), means.
    pub fn reading(&self, start: u64) -> Reading {
        if let Some(d) = self.diagnostics.first() {
            let text = [d.message.as_str(), d.details.as_str(), d.uri.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            return Reading::Failure(format!("SRU diagnostic: {text}"));
        }
        if self.number_of_records == 0 {
            return Reading::Miss;
        }
        if self.records.is_empty() {
            return Reading::Failure(format!(
                "{} records announced, none sent from record {start}",
                self.number_of_records
            ));
        }
        let seen = start.saturating_sub(1) + self.records.len() as u64;
        Reading::Records {
            more: seen < self.number_of_records,
        }
    }
}

/// Why a body is not an SRU answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the answer is not XML ({0})")]
    NotXml(String),
    #[error("the answer is XML but not an SRU searchRetrieveResponse")]
    NotSru,
    #[error("the answer declares a DTD or entities; refused unread")]
    Dtd,
    #[error("the answer ends inside an element (cut short?)")]
    CutShort,
}

/// Where the text being read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Count,
    DiagUri,
    DiagMessage,
    DiagDetails,
    Leader,
    Control,
    Subfield,
    Modified,
}

/// Reads `body`.
pub fn parse(body: &[u8]) -> Result<Answer, EnvelopeError> {
    let mut reader = quick_xml::NsReader::from_reader(body);
    let mut buf = Vec::new();
    let mut parser = Parser::default();
    loop {
        let (ns, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| EnvelopeError::NotXml(e.to_string()))?;
        let ns = match ns {
            ResolveResult::Bound(Namespace(ns)) => ns.to_string(),
            _ => String::new(),
        };
        match event {
            Event::DocType(_) => return Err(EnvelopeError::Dtd),
            Event::Start(e) => parser.start(&ns, &e)?,
            Event::Empty(e) => {
                parser.start(&ns, &e)?;
                parser.end(&ns, e.local_name().as_ref());
            }
            Event::End(e) => parser.end(&ns, e.local_name().as_ref()),
            Event::Text(t) => parser.text(&t.xml10_content()),
            Event::CData(t) => parser.text(&t.xml10_content()),
            // An entity no DTD may declare here: the body is not ours to read.
            Event::GeneralRef(r) => match crate::xml::resolve(&r) {
                Some(c) => parser.text(c.encode_utf8(&mut [0; 4])),
                None => return Err(EnvelopeError::Dtd),
            },
            Event::Eof if parser.depth > 0 => return Err(EnvelopeError::CutShort),
            Event::Eof if !parser.rooted => return Err(EnvelopeError::NotSru),
            Event::Eof => return Ok(parser.answer),
            _ => {}
        }
        buf.clear();
    }
}

#[derive(Default)]
struct Parser {
    answer: Answer,
    depth: usize,
    rooted: bool,
    record: Option<MarcRecord>,
    target: Option<(Target, String)>,
    /// The tag of the control field being read.
    tag: String,
}

impl Parser {
    fn start(&mut self, ns: &str, e: &quick_xml::events::BytesStart) -> Result<(), EnvelopeError> {
        self.depth += 1;
        let local = e.local_name();
        let local = local.as_ref();
        if self.depth == 1 {
            if ns != SRW || local != "searchRetrieveResponse" {
                return Err(EnvelopeError::NotSru);
            }
            self.rooted = true;
            return Ok(());
        }
        let attr = |name: &str| {
            e.try_get_attribute(name)
                .ok()
                .flatten()
                .map(|a| bounded(a.value.trim()))
                .unwrap_or_default()
        };
        let marc = ns == MARC21 || ns == MARCXCHANGE;
        let target = match (ns, local) {
            (SRW, "numberOfRecords") if self.record.is_none() => Some(Target::Count),
            (DIAGNOSTIC, "diagnostic") => {
                if self.answer.diagnostics.len() < MAX_RECORDS {
                    self.answer.diagnostics.push(Diagnostic::default());
                }
                None
            }
            (DIAGNOSTIC, "uri") => Some(Target::DiagUri),
            (DIAGNOSTIC, "message") => Some(Target::DiagMessage),
            (DIAGNOSTIC, "details") => Some(Target::DiagDetails),
            (_, "record") if marc => {
                let id = attr("id");
                self.record = Some(MarcRecord {
                    id: (!id.is_empty()).then_some(id),
                    ..MarcRecord::default()
                });
                None
            }
            (_, "leader") if marc => Some(Target::Leader),
            (_, "controlfield") if marc => {
                self.tag = attr("tag");
                Some(Target::Control)
            }
            (_, "datafield") if marc => {
                if let Some(r) = self.record.as_mut().filter(|r| r.fields.len() < MAX_FIELDS) {
                    r.fields.push(DataField {
                        tag: attr("tag"),
                        ind1: attr("ind1"),
                        ind2: attr("ind2"),
                        subfields: Vec::new(),
                    });
                }
                None
            }
            (_, "subfield") if marc => {
                self.tag = attr("code");
                Some(Target::Subfield)
            }
            // BnF's `extraRecordData`, after the record it describes.
            (_, "attr") if self.record.is_none() && attr("name") == "LastModificationDate" => {
                Some(Target::Modified)
            }
            _ => None,
        };
        if let Some(t) = target {
            self.target = Some((t, String::new()));
        }
        Ok(())
    }

    fn text(&mut self, s: &str) {
        if let Some((_, text)) = self.target.as_mut() {
            text.push_str(prefix(s, MAX_TEXT.saturating_sub(text.len())));
        }
    }

    fn end(&mut self, ns: &str, local: &str) {
        self.depth = self.depth.saturating_sub(1);
        let marc = ns == MARC21 || ns == MARCXCHANGE;
        if marc && local == "record" {
            if let Some(r) = self.record.take()
                && self.answer.records.len() < MAX_RECORDS
            {
                self.answer.records.push(r);
            }
            return;
        }
        let Some((target, text)) = self.target.take() else {
            return;
        };
        let diagnostic = self.answer.diagnostics.last_mut();
        match (target, diagnostic, self.record.as_mut()) {
            (Target::Count, ..) => {
                self.answer.number_of_records = text.trim().parse().unwrap_or(0);
            }
            (Target::DiagUri, Some(d), _) => d.uri = text.trim().to_string(),
            (Target::DiagMessage, Some(d), _) => d.message = text.trim().to_string(),
            (Target::DiagDetails, Some(d), _) => d.details = text.trim().to_string(),
            (Target::Modified, _, None) => {
                if let Some(r) = self
                    .answer
                    .records
                    .last_mut()
                    .filter(|r| r.modified.is_none())
                {
                    r.modified = Some(text.trim().to_string());
                }
            }
            (Target::Leader, _, Some(r)) => r.leader = text,
            (Target::Control, _, Some(r)) if r.controls.len() < MAX_FIELDS => {
                r.controls.push((std::mem::take(&mut self.tag), text));
            }
            (Target::Subfield, _, Some(r)) => {
                if let Some(f) = r
                    .fields
                    .last_mut()
                    .filter(|f| f.subfields.len() < MAX_FIELDS)
                {
                    f.subfields.push((std::mem::take(&mut self.tag), text));
                }
            }
            _ => {}
        }
    }
}

/// `s`, cut to [`MAX_TEXT`] bytes at a character boundary.
fn bounded(s: &str) -> String {
    prefix(s, MAX_TEXT).to_string()
}

/// The longest start of `s` of at most `max` bytes that ends at a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MARC 21 record in the slim namespace, unprefixed, as DNB, K10plus and LoC send it.
    const MARC: &str = r#"<record xmlns="http://www.loc.gov/MARC21/slim" type="Bibliographic">
        <leader>00000nam a2200000 c 4500</leader>
        <controlfield tag="001">1234567890</controlfield>
        <datafield tag="020" ind1=" " ind2=" "><subfield code="a">978-3-406-56844-2 Pp. : EUR 9.90</subfield></datafield>
        <datafield tag="245" ind1="1" ind2="0"><subfield code="a">Kultur &amp; Gedächtnis</subfield><subfield code="b">eine Studie</subfield></datafield>
    </record>"#;

    #[test]
    fn dnbs_unprefixed_envelope() {
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
            <searchRetrieveResponse xmlns="http://www.loc.gov/zing/srw/">
              <version>1.1</version><numberOfRecords>1</numberOfRecords>
              <records><record><recordSchema>MARC21-xml</recordSchema><recordPacking>xml</recordPacking>
                <recordData>{MARC}</recordData><recordPosition>1</recordPosition></record></records>
              <nextRecordPosition>2</nextRecordPosition>
              <echoedSearchRetrieveRequest><xQuery xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/></echoedSearchRetrieveRequest>
            </searchRetrieveResponse>"#
        );
        let a = parse(body.as_bytes()).expect("parse");
        assert_eq!(a.number_of_records, 1);
        assert_eq!(a.records.len(), 1, "the SRW wrapper is not a second record");
        let r = &a.records[0];
        assert_eq!(r.control("001"), Some("1234567890"));
        assert_eq!(
            r.subfields("020", "a").collect::<Vec<_>>(),
            ["978-3-406-56844-2 Pp. : EUR 9.90"]
        );
        assert_eq!(
            r.subfields("245", "a").collect::<Vec<_>>(),
            ["Kultur & Gedächtnis"]
        );
        assert_eq!(r.fields[1].ind1, "1");
        // `nextRecordPosition` 2 of 1 is not a page to fetch.
        assert_eq!(a.reading(1), Reading::Records { more: false });
    }

    #[test]
    fn locs_prefixed_envelope_a_miss_and_more_pages() {
        let body = format!(
            r#"<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/">
              <zs:version>1.1</zs:version><zs:numberOfRecords>5</zs:numberOfRecords>
              <zs:records><zs:record><zs:recordData>{MARC}</zs:recordData></zs:record>
              <zs:record><zs:recordData>{MARC}</zs:recordData></zs:record></zs:records>
            </zs:searchRetrieveResponse>"#
        );
        let a = parse(body.as_bytes()).expect("parse");
        assert_eq!((a.number_of_records, a.records.len()), (5, 2));
        assert_eq!(a.reading(1), Reading::Records { more: true });
        assert_eq!(a.reading(4), Reading::Records { more: false });
        let miss = r#"<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/">
            <zs:version>1.1</zs:version><zs:numberOfRecords>0</zs:numberOfRecords>
            </zs:searchRetrieveResponse>"#;
        assert_eq!(
            parse(miss.as_bytes()).expect("parse").reading(1),
            Reading::Miss
        );
    }

    #[test]
    fn bnfs_marcxchange_in_its_own_default_namespace() {
        let body = r#"<srw:searchRetrieveResponse xmlns:srw="http://www.loc.gov/zing/srw/"
            xmlns="http://catalogue.bnf.fr/namespaces/InterXMarc" xmlns:ixm="http://catalogue.bnf.fr/namespaces/InterXMarc">
          <srw:version>1.2</srw:version><srw:numberOfRecords>1</srw:numberOfRecords>
          <srw:records><srw:record><srw:recordData>
            <mxc:record xmlns:mxc="info:lc/xmlns/marcxchange-v2" format="UNIMARC" id="ark:/12148/cb123" type="Bibliographic">
              <mxc:leader>     cam  22        450 </mxc:leader>
              <mxc:controlfield tag="001">FRBNF12345678</mxc:controlfield>
              <mxc:datafield tag="010" ind1=" " ind2=" "><mxc:subfield code="a">2-7073-0275-9</mxc:subfield></mxc:datafield>
            </mxc:record></srw:recordData>
            <srw:extraRecordData><ixm:attr name="LastModificationDate">20200101</ixm:attr></srw:extraRecordData>
          </srw:record></srw:records>
        </srw:searchRetrieveResponse>"#;
        let a = parse(body.as_bytes()).expect("parse");
        assert_eq!(a.records.len(), 1);
        assert_eq!(a.records[0].id.as_deref(), Some("ark:/12148/cb123"));
        assert_eq!(
            a.records[0].subfields("010", "a").collect::<Vec<_>>(),
            ["2-7073-0275-9"]
        );
    }

    #[test]
    fn a_diagnostic_in_a_200_or_records_announced_but_absent_are_failures() {
        let body = r#"<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/">
            <zs:numberOfRecords>1</zs:numberOfRecords>
            <zs:diagnostics xmlns:diag="http://www.loc.gov/zing/srw/diagnostic/">
              <diag:diagnostic><diag:uri>info:srw/diagnostic/1/61</diag:uri><diag:details></diag:details>
                <diag:message>First record position out of range</diag:message></diag:diagnostic>
            </zs:diagnostics></zs:searchRetrieveResponse>"#;
        let a = parse(body.as_bytes()).expect("parse");
        assert_eq!(
            a.reading(1),
            Reading::Failure(
                "SRU diagnostic: First record position out of range; info:srw/diagnostic/1/61"
                    .into()
            )
        );
        let absent = r#"<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/">
            <zs:numberOfRecords>3</zs:numberOfRecords></zs:searchRetrieveResponse>"#;
        assert!(matches!(
            parse(absent.as_bytes()).expect("parse").reading(1),
            Reading::Failure(_)
        ));
    }

    #[test]
    fn what_is_not_an_sru_answer_is_said_so() {
        assert_eq!(
            parse(b"<html><body>503 Service Unavailable</body></html>"),
            Err(EnvelopeError::NotSru)
        );
        // The SRU 2.0 namespace K10plus answers in when no version is sent is not 1.1's.
        let v2 = br#"<searchRetrieveResponse xmlns="http://docs.oasis-open.org/ns/search-ws/sruResponse"/>"#;
        assert_eq!(parse(v2), Err(EnvelopeError::NotSru));
        let cut =
            br#"<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/"><zs:records>"#;
        assert_eq!(parse(cut), Err(EnvelopeError::CutShort));
        assert!(parse(b"\x00\x01junk<<").is_err());
        assert_eq!(parse(b""), Err(EnvelopeError::NotSru));
    }

    #[test]
    fn a_dtd_or_an_entity_is_refused_unread() {
        let bomb = br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>
            <zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/"><zs:numberOfRecords>&b;</zs:numberOfRecords></zs:searchRetrieveResponse>"#;
        assert_eq!(parse(bomb), Err(EnvelopeError::Dtd));
        let undeclared = br#"<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/"><zs:numberOfRecords>&x;</zs:numberOfRecords></zs:searchRetrieveResponse>"#;
        assert_eq!(parse(undeclared), Err(EnvelopeError::Dtd));
    }

    #[test]
    fn the_fixture_reads_whole_cancelled_isbns_and_all() {
        let a = parse(include_bytes!(
            "../../../tests/fixtures/sru/loc-two-records.xml"
        ))
        .expect("parse");
        assert_eq!((a.number_of_records, a.records.len()), (2, 2));
        let r = &a.records[0];
        assert_eq!(
            r.subfields("020", "a").collect::<Vec<_>>(),
            ["9780674033801 (alk. paper)"]
        );
        assert_eq!(r.subfields("020", "z").collect::<Vec<_>>(), ["0674033809"]);
        assert_eq!(
            r.subfields("245", "b").collect::<Vec<_>>(),
            ["with a subtitle & more /"]
        );
        assert_eq!(r.control("008").map(str::len), Some(40));
        assert_eq!(a.records[1].control("001"), Some("99123"));
    }

    #[test]
    fn texts_and_lists_are_bounded() {
        let long = "x".repeat(10 * MAX_TEXT);
        let record = format!(
            r#"<record xmlns="http://www.loc.gov/MARC21/slim"><datafield tag="245"><subfield code="a">{long}</subfield></datafield></record>"#
        );
        let body = format!(
            r#"<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/"><zs:numberOfRecords>999</zs:numberOfRecords><zs:records>{}</zs:records></zs:searchRetrieveResponse>"#,
            record.repeat(MAX_RECORDS + 5)
        );
        let a = parse(body.as_bytes()).expect("parse");
        assert_eq!(a.records.len(), MAX_RECORDS);
        assert_eq!(
            a.records[0].fields[0].subfields[0].1.len(),
            MAX_TEXT,
            "a text too long is cut, not dropped"
        );
        assert_eq!(prefix("aé", 2), "a", "never inside a character");
    }
}
