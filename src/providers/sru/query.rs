/*!
The `searchRetrieve` request for a batch of ISBNs: one flat CQL `or` chain, both forms of each
978 ISBN (older records are indexed under the ten-digit form only: BnF's index, a 1989 record
at K10plus), no brackets (some SRU servers reject them), and the query percent-encoded as the
catalogues' own examples are (`%3D`, `%20`, `%22`: never `+` for a space).
*/

use super::profile::{Profile, Relation};
use crate::isbn::Isbn13;

/// The most ISBNs one request asks (`--sru-batch` is 1 to this): 25 ISBNs are 50 terms.
pub const MAX_BATCH: usize = 25;

/// The CQL query for `isbns` in `profile`'s index.
pub fn cql(profile: &Profile, isbns: &[Isbn13]) -> String {
    let mut terms: Vec<String> = Vec::with_capacity(isbns.len() * 2);
    for isbn in isbns {
        terms.push(clause(profile, isbn.as_str()));
        if let Some(ten) = isbn.isbn10() {
            terms.push(clause(profile, &ten));
        }
    }
    terms.join(" or ")
}

fn clause(profile: &Profile, term: &str) -> String {
    match profile.relation {
        Relation::Equals => format!("{}={term}", profile.index),
        Relation::Adjacent => format!("{} adj \"{term}\"", profile.index),
    }
}

/// The whole request URL: `base` (the profile's, or `--sru-url`'s), the SRU parameters, the
/// profile's extras, and the query. `start` is the first record wanted (1-based; paging).
pub fn url(profile: &Profile, base: &str, isbns: &[Isbn13], start: u32) -> String {
    // About three records an ISBN (K10plus sends five for one), never over the 100 a page may hold.
    let max = (isbns.len() * 3).clamp(10, 100);
    let mut url = format!(
        "{}?version={}&operation=searchRetrieve&recordSchema={}&maximumRecords={max}",
        base.trim_end_matches('/'),
        profile.version,
        encode(profile.record_schema),
    );
    let mut extra_start = false;
    for (k, v) in profile.extra {
        if *k == "startRecord" {
            extra_start = true;
            url.push_str(&format!("&startRecord={start}"));
        } else {
            url.push_str(&format!("&{}={}", encode(k), encode(v)));
        }
    }
    if !extra_start && start > 1 {
        url.push_str(&format!("&startRecord={start}"));
    }
    url.push_str("&query=");
    url.push_str(&encode(&cql(profile, isbns)));
    url
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::profile::{BNF, DNB, K10PLUS, LOC};
    use super::*;
    use crate::isbn::parse;

    fn isbns(list: &[&str]) -> Vec<Isbn13> {
        list.iter().map(|s| parse(s).expect("valid")).collect()
    }

    #[test]
    fn each_catalogue_is_asked_as_its_own_examples_are() {
        // The requests of docs/sru-catalogues.md, with both forms of the ISBN.
        let one = isbns(&["9783406568442"]);
        assert_eq!(
            url(&DNB, DNB.base_url, &one, 1),
            "https://services.dnb.de/sru/dnb?version=1.1&operation=searchRetrieve&recordSchema=MARC21-xml&maximumRecords=10&query=num%3D9783406568442%20or%20num%3D3406568440"
        );
        assert_eq!(
            url(&K10PLUS, K10PLUS.base_url, &one, 1),
            "https://sru.k10plus.de/opac-de-627?version=1.1&operation=searchRetrieve&recordSchema=marcxml&maximumRecords=10&query=pica.isb%3D9783406568442%20or%20pica.isb%3D3406568440"
        );
        let harris = isbns(&["9780674033801"]);
        assert_eq!(
            url(&LOC, LOC.base_url, &harris, 1),
            "http://lx2.loc.gov:210/LCDB?version=1.1&operation=searchRetrieve&recordSchema=marcxml&maximumRecords=10&startRecord=1&query=bath.isbn%3D9780674033801%20or%20bath.isbn%3D0674033809"
        );
        let french = isbns(&["2707302759"]);
        assert_eq!(
            url(&BNF, BNF.base_url, &french, 1),
            "https://catalogue.bnf.fr/api/SRU?version=1.2&operation=searchRetrieve&recordSchema=unimarcxchange&maximumRecords=10&startRecord=1&query=bib.isbn%20adj%20%229782707302755%22%20or%20bib.isbn%20adj%20%222707302759%22"
        );
    }

    #[test]
    fn a_batch_is_one_flat_or_chain_and_979_has_no_ten_digit_form() {
        let batch = isbns(&["9783406568442", "9791032305560", "9780674033801"]);
        let q = cql(&DNB, &batch);
        assert_eq!(
            q,
            "num=9783406568442 or num=3406568440 or num=9791032305560 or num=9780674033801 or num=0674033809"
        );
        assert!(!q.contains('(') && !q.contains(')'));
        // A page past the first asks from its record on; the size covers both forms.
        let page = url(&DNB, "http://127.0.0.1:9/sru/", &batch, 11);
        assert!(
            page.starts_with("http://127.0.0.1:9/sru?version=1.1&"),
            "{page}"
        );
        assert!(page.contains("&startRecord=11&"), "{page}");
        let big: Vec<Isbn13> = (0..MAX_BATCH as u64).map(crate::isbn::synthetic).collect();
        assert!(url(&LOC, LOC.base_url, &big, 1).contains("maximumRecords=75"));
    }
}
