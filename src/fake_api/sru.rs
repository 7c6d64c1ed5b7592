//! The fake's SRU half: each catalogue of `providers::sru::profile` at `/sru/<name>`, answering
//! `searchRetrieve` in that catalogue's own envelope (DNB's unprefixed SRW namespace, `zs:` at
//! LoC and K10plus, `srw:` with marcxchange at BnF), with records that carry the ISBN asked in
//! their own ISBN field, paged by `startRecord` and `maximumRecords`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

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
    let config = &st.config.sru;
    if let Some(uri) = &config.diagnostic {
        return ok(envelope(profile, 1, &[], Some(uri)));
    }
    let asked = asked_isbns(params.get("query").map_or("", String::as_str));
    let seen = st.sru_by_catalogue.entry(name.to_string()).or_default();
    seen.0 += 1;
    seen.1.extend(asked.iter().cloned());
    let editions = config.editions.max(1);
    let records: Vec<String> = asked
        .iter()
        .filter(|i| !config.unknown.contains(*i))
        .flat_map(|i| (0..editions).map(move |e| record(profile, i, e)))
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
    ok(envelope(profile, records.len(), &page, None))
}

fn ok(body: String) -> Answer {
    Answer::Http {
        status: 200,
        body,
        retry_after: None,
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

/// One record of `isbn13` (edition `e`), in the profile's format.
fn record(profile: &Profile, isbn13: &str, e: usize) -> String {
    let title = xml_text(&title_for(isbn13));
    let year = 2000 + e;
    match profile.format {
        RecordFormat::Marc21 => format!(
            r#"<record xmlns="http://www.loc.gov/MARC21/slim" type="Bibliographic"><leader>00000nam a2200000 c 4500</leader><controlfield tag="001">{isbn13}-{e}</controlfield><datafield tag="020" ind1=" " ind2=" "><subfield code="a">{isbn13}</subfield></datafield><datafield tag="245" ind1="1" ind2="0"><subfield code="a">{title}</subfield></datafield><datafield tag="264" ind1=" " ind2="1"><subfield code="b">Fake Verlag</subfield><subfield code="c">{year}</subfield></datafield></record>"#
        ),
        RecordFormat::Unimarc => format!(
            r#"<mxc:record xmlns:mxc="info:lc/xmlns/marcxchange-v2" format="UNIMARC" id="ark:/12148/cb{isbn13}{e}" type="Bibliographic"><mxc:leader>     cam  22        450 </mxc:leader><mxc:controlfield tag="001">FRBNF{isbn13}{e}</mxc:controlfield><mxc:datafield tag="073" ind1=" " ind2=" "><mxc:subfield code="a">{isbn13}</mxc:subfield></mxc:datafield><mxc:datafield tag="200" ind1="1" ind2=" "><mxc:subfield code="a">{title}</mxc:subfield></mxc:datafield><mxc:datafield tag="214" ind1=" " ind2="0"><mxc:subfield code="c">Éditions fictives</mxc:subfield><mxc:subfield code="d">{year}</mxc:subfield></mxc:datafield></mxc:record>"#
        ),
    }
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
        for r in records {
            let _ = write!(
                out,
                "<{p}record><{p}recordSchema>{}</{p}recordSchema><{p}recordPacking>xml</{p}recordPacking><{p}recordData>{r}</{p}recordData></{p}record>",
                profile.record_schema
            );
        }
        let _ = write!(out, "</{p}records>");
    }
    let _ = write!(out, "</{p}searchRetrieveResponse>");
    out
}
