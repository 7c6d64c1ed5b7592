//! The fake's SRU half: each catalogue of `providers::sru::profile` at `/sru/<name>`, answering
//! `searchRetrieve` in that catalogue's own envelope (DNB's unprefixed SRW namespace, `zs:` at
//! LoC and K10plus, `srw:` with marcxchange at BnF), with records that carry the ISBN asked in
//! their own ISBN field, paged by `startRecord` and `maximumRecords`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use unicode_normalization::UnicodeNormalization;

use super::{Answer, State, title_for};
use crate::isbn;
use crate::providers::sru::profile::{self, Profile, RecordFormat};

/// What the catalogues know and how they misbehave.
#[derive(Debug, Clone, Default)]
pub struct SruConfig {
    /// ISBN-13s no catalogue holds.
    pub unknown: HashSet<String>,
    /// Records per known ISBN (editions); 0 means 1.
    pub editions: usize,
    /// At most this many records a page, whatever `maximumRecords` asks (to make pages).
    pub page_size: Option<usize>,
    /// A diagnostic URI served inside HTTP 200 to every request.
    pub diagnostic: Option<String>,
    /// Catalogues (by name) that refuse this client: 403 with an HTML page.
    pub refused: HashSet<String>,
    /// ISBN-13s a word index finds in another book's record (the ISBN only in its `020 $z`):
    /// the one record served for them, which is never that book.
    pub false_positive: HashSet<String>,
    /// ISBN-13s LoC leaves out of an `or` answer (its batch miss is no verdict): found only
    /// when asked alone.
    pub batch_misses: HashSet<String>,
    /// Random faults: 503 HTML (`unavailable`), resets, XML cut short, stalls.
    pub random: super::FaultRates,
    /// The share of answers that are a temporary diagnostic inside HTTP 200 (LoC's gateway
    /// that cannot reach its backend).
    pub temporary_rate: f64,
}

/// Apache's page for a backend that is down, as the catalogues' front ends send it.
const UNAVAILABLE: &str = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>503 Service Unavailable</title>\n</head><body>\n<h1>Service Unavailable</h1>\n<p>The server is temporarily unable to service your request.</p>\n</body></html>\n";
const FORBIDDEN: &str = "<html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1><p>You don't have permission to access this resource.</p></body></html>\n";

/// A random fault of the SRU half.
enum SruFault {
    Unavailable,
    Reset,
    Truncated,
    Stall(std::time::Duration),
    Temporary,
}

/// `GET /sru/<name>?...`.
pub(super) fn decide(st: &mut State, target: &str, params: &HashMap<String, String>) -> Answer {
    st.sru_requests += 1;
    let name = target
        .trim_start_matches("/sru/")
        .split(['?', '/'])
        .next()
        .unwrap_or("");
    let Some(profile) = profile::by_name(name) else {
        return super::error_answer(404, "no such catalogue");
    };
    let asked = asked_isbns(params.get("query").map_or("", String::as_str));
    let seen = st.sru_by_catalogue.entry(name.to_string()).or_default();
    seen.0 += 1;
    seen.1.extend(asked.iter().cloned());
    let config = &st.config.sru;
    if config.refused.contains(name) {
        return http(403, FORBIDDEN);
    }
    if let Some(uri) = &config.diagnostic {
        return http(200, &envelope(profile, 1, &[], Some(uri)));
    }
    let r = &config.random;
    let table = [
        (r.unavailable, SruFault::Unavailable),
        (r.reset, SruFault::Reset),
        (r.truncated, SruFault::Truncated),
        (r.stall, SruFault::Stall(r.stall_for)),
        (config.temporary_rate, SruFault::Temporary),
    ];
    let fault = super::pick(&mut st.rng, table);
    let config = &st.config.sru;
    // LoC without `startRecord`: a count of 1 and no record, as the real gateway answers.
    if profile.name == "loc" && !params.contains_key("startRecord") {
        let uri = "info:srw/diagnostic/1/61";
        return http(200, &envelope(profile, 1, &[], Some(uri)));
    }
    let alone = asked.len() == 1;
    let editions = config.editions.max(1);
    let records: Vec<String> = asked
        .iter()
        .filter(|i| !config.unknown.contains(*i))
        .filter(|i| alone || profile.name != "loc" || !config.batch_misses.contains(*i))
        .flat_map(|i| {
            let false_positive = config.false_positive.contains(i);
            let n = if false_positive { 1 } else { editions };
            (0..n).map(move |e| (i, e, false_positive))
        })
        .map(|(i, e, false_positive)| {
            let book = Book::of(i, &st.config.catalogue);
            if false_positive {
                record(profile, &another(i), &book, e, Some(i))
            } else {
                record(profile, i, &book, e, None)
            }
        })
        .collect();
    let start = params
        .get("startRecord")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let max = params
        .get("maximumRecords")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(10)
        .min(config.page_size.unwrap_or(usize::MAX));
    let page: Vec<String> = records.iter().skip(start - 1).take(max).cloned().collect();
    let body = envelope(profile, records.len(), &page, None);
    match fault {
        None => http(200, &body),
        Some(SruFault::Unavailable) => http(503, UNAVAILABLE),
        Some(SruFault::Reset) => Answer::Reset,
        Some(SruFault::Stall(d)) => Answer::Stall(d),
        Some(SruFault::Truncated) => http(200, &body[..body.len() / 2]),
        Some(SruFault::Temporary) => {
            let uri = "info:srw/diagnostic/1/1";
            http(200, &envelope(profile, 0, &[], Some(uri)))
        }
    }
}

fn http(status: u16, body: &str) -> Answer {
    Answer::Http {
        status,
        body: body.to_string(),
        retry_after: None,
    }
}

/// Another valid ISBN-13 near `isbn13` (the book a word-index accident finds).
fn another(isbn13: &str) -> String {
    let twelve: u64 = isbn13.get(..12).and_then(|d| d.parse().ok()).unwrap_or(0);
    let prefix = &isbn13[..isbn13.len().min(4)];
    isbn::synthetic_in(prefix, (twelve + 7) % 100_000_000).to_string()
}

/// What a record says of its book: the demo's real data where there is some, else the
/// synthetic title every half of the fake gives.
struct Book {
    title: String,
    authors: Vec<String>,
}

impl Book {
    fn of(isbn13: &str, real: &HashMap<String, (String, Vec<String>)>) -> Book {
        match real.get(isbn13) {
            Some((title, authors)) => Book {
                title: title.clone(),
                authors: authors.clone(),
            },
            None => Book {
                title: title_for(isbn13),
                authors: vec!["Fake Author".into()],
            },
        }
    }
}

/// The ISBN-13s of a CQL `or` chain, in order, once each (both forms of one ISBN are one).
fn asked_isbns(cql: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for clause in cql.split(" or ") {
        let term = clause
            .rsplit(['=', ' '])
            .next()
            .unwrap_or("")
            .trim_matches('"');
        if let Ok(i) = isbn::parse(term) {
            let s = i.to_string();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// One record of the book `isbn13` (edition `e`), in the profile's format and with each
/// catalogue's habits: DNB's NFD text and non-sort markers, LoC's qualifier in `020 $a` and
/// padded 010, BnF's hyphenated 010; a cancelled ISBN in `020 $z` everywhere (`cancelled`, for
/// a word-index accident, is the ISBN asked).
fn record(
    profile: &Profile,
    isbn13: &str,
    book: &Book,
    e: usize,
    cancelled: Option<&str>,
) -> String {
    let year = 2000 + e;
    let z = cancelled.map_or_else(|| another(isbn13), str::to_string);
    let authors =
        |f: &dyn Fn(&str) -> String| book.authors.iter().map(|a| f(a)).collect::<String>();
    match profile.format {
        RecordFormat::Marc21 => {
            let (title, isbn_a, lccn) = match profile.name {
                // NFD, and the article between U+0098 and U+009C, as DNB sends it.
                "dnb" => (
                    dnb_title(&xml_text(&book.title)),
                    isbn13.to_string(),
                    String::new(),
                ),
                "loc" => (
                    format!("{} /", xml_text(&book.title)),
                    format!("{isbn13} (pbk.)"),
                    format!(
                        r#"<datafield tag="010" ind1=" " ind2=" "><subfield code="a">   {:08} </subfield></datafield><datafield tag="050" ind1="0" ind2="0"><subfield code="a">PN1995.9</subfield><subfield code="b">.A43 {year}</subfield></datafield><datafield tag="082" ind1="0" ind2="0"><subfield code="a">791.43/658</subfield></datafield>"#,
                        e + 89_007_588
                    ),
                ),
                _ => (xml_text(&book.title), isbn13.to_string(), String::new()),
            };
            // K10plus finds an e-book by the print ISBN in its 776 $z; elsewhere a $z of 020.
            let cancelled_field = if profile.name == "k10plus" && cancelled.is_some() {
                format!(
                    r#"<datafield tag="776" ind1="0" ind2="8"><subfield code="i">Erscheint auch als</subfield><subfield code="z">{z}</subfield></datafield>"#
                )
            } else {
                format!(
                    r#"<datafield tag="020" ind1=" " ind2=" "><subfield code="z">{z}</subfield></datafield>"#
                )
            };
            let leader = if profile.name == "loc" {
                "00000cam a2200000 a 4500"
            } else {
                "00000nam a2200000 c 4500"
            };
            let names = authors(&|a| {
                let display = a.rsplit_once(' ').map_or(a.to_string(), |(given, family)| {
                    format!("{family}, {given}")
                });
                format!(
                    r#"<datafield tag="700" ind1="1" ind2=" "><subfield code="a">{},</subfield><subfield code="e">author.</subfield></datafield>"#,
                    xml_text(&display)
                )
            });
            format!(
                r#"<record xmlns="http://www.loc.gov/MARC21/slim" type="Bibliographic"><leader>{leader}</leader><controlfield tag="001">{isbn13}-{e}</controlfield>{lccn}<datafield tag="020" ind1=" " ind2=" "><subfield code="a">{isbn_a}</subfield></datafield>{cancelled_field}<datafield tag="245" ind1="1" ind2="0"><subfield code="a">{title}</subfield></datafield><datafield tag="264" ind1=" " ind2="1"><subfield code="b">Fake Verlag</subfield><subfield code="c">{year}</subfield></datafield>{names}</record>"#
            )
        }
        RecordFormat::Unimarc => {
            let hyphenated = format!("{}-{}", &isbn13[..3], &isbn13[3..]);
            let title = xml_text(&book.title);
            let names = authors(&|a| {
                let (given, family) = a.rsplit_once(' ').unwrap_or(("", a));
                format!(
                    r#"<mxc:datafield tag="700" ind1=" " ind2="|"><mxc:subfield code="a">{}</mxc:subfield><mxc:subfield code="b">{}</mxc:subfield><mxc:subfield code="4">070</mxc:subfield></mxc:datafield>"#,
                    xml_text(family),
                    xml_text(given)
                )
            });
            format!(
                r#"<mxc:record xmlns:mxc="info:lc/xmlns/marcxchange-v2" format="UNIMARC" id="ark:/12148/cb{isbn13}{e}" type="Bibliographic"><mxc:leader>     cam  22        450 </mxc:leader><mxc:controlfield tag="001">FRBNF{isbn13}{e}</mxc:controlfield><mxc:datafield tag="010" ind1=" " ind2=" "><mxc:subfield code="a">{hyphenated}</mxc:subfield><mxc:subfield code="z">{z}</mxc:subfield></mxc:datafield><mxc:datafield tag="200" ind1="1" ind2=" "><mxc:subfield code="a">{title}</mxc:subfield><mxc:subfield code="b">Texte imprimé</mxc:subfield></mxc:datafield><mxc:datafield tag="214" ind1=" " ind2="0"><mxc:subfield code="c">Éditions fictives</mxc:subfield><mxc:subfield code="d">DL {year}</mxc:subfield></mxc:datafield><mxc:datafield tag="676" ind1=" " ind2=" "><mxc:subfield code="a">843.914</mxc:subfield><mxc:subfield code="v">23</mxc:subfield></mxc:datafield>{names}</mxc:record>"#
            )
        }
    }
}

/// A title as DNB writes it: NFD, a leading article between U+0098 and U+009C (`&#152;Der
/// &#156;Process`).
fn dnb_title(title: &str) -> String {
    let nfd: String = title.nfd().collect();
    for article in ["Der ", "Die ", "Das ", "The ", "Ein ", "Eine "] {
        if let Some(rest) = nfd.strip_prefix(article) {
            return format!("&#152;{article}&#156;{rest}");
        }
    }
    nfd
}

fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The profile's envelope around `records`, with `count` hits, or a diagnostic.
fn envelope(
    profile: &Profile,
    count: usize,
    records: &[String],
    diagnostic: Option<&str>,
) -> String {
    // DNB: the SRW namespace as the default; LoC and K10plus `zs:`; BnF `srw:`.
    let (open, p) = match profile.name {
        "dnb" => (
            r#"<searchRetrieveResponse xmlns="http://www.loc.gov/zing/srw/">"#.to_string(),
            "",
        ),
        "bnf" => (
            r#"<srw:searchRetrieveResponse xmlns:srw="http://www.loc.gov/zing/srw/" xmlns="http://catalogue.bnf.fr/namespaces/InterXMarc">"#.to_string(),
            "srw:",
        ),
        _ => (
            r#"<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/">"#.to_string(),
            "zs:",
        ),
    };
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>{open}<{p}version>{v}</{p}version><{p}numberOfRecords>{count}</{p}numberOfRecords>",
        v = profile.version
    );
    if let Some(uri) = diagnostic {
        let _ = write!(
            out,
            r#"<{p}diagnostics xmlns:diag="http://www.loc.gov/zing/srw/diagnostic/"><diag:diagnostic><diag:uri>{uri}</diag:uri><diag:message>fake diagnostic</diag:message></diag:diagnostic></{p}diagnostics>"#
        );
    } else if !records.is_empty() {
        let _ = write!(out, "<{p}records>");
        // BnF says when it last changed each record, which its licence asks reusers to name.
        let extra = if profile.name == "bnf" {
            r#"<srw:extraRecordData><ixm:attr xmlns:ixm="http://catalogue.bnf.fr/namespaces/InterXMarc" name="LastModificationDate">20200101</ixm:attr></srw:extraRecordData>"#
        } else {
            ""
        };
        for r in records {
            let _ = write!(
                out,
                "<{p}record><{p}recordSchema>{}</{p}recordSchema><{p}recordPacking>xml</{p}recordPacking><{p}recordData>{r}</{p}recordData>{extra}</{p}record>",
                profile.record_schema
            );
        }
        let _ = write!(out, "</{p}records>");
    }
    let _ = write!(out, "</{p}searchRetrieveResponse>");
    out
}
