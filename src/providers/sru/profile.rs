/*!
The four catalogues as data, and the prefixes that route an ISBN to them.

A catalogue gets a lookup only for an ISBN inside its prefixes (the crawl's routing, see
`registry::default_routes` and `--route`), so it never makes a job
`not_found` for a book it was never meant to hold (a French catalogue asked about a German
book). The defaults follow the registration groups: 978-3 is the German-speaking group, 978-2
and 979-10 the French, 978-0, 978-1 and 979-8 the English; K10plus, a union catalogue with books
in every language, is asked about all.
*/

/// How a catalogue's records are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// MARC 21 slim XML (DNB, K10plus, LoC).
    Marc21,
    /// UNIMARC in marcxchange (BnF).
    Unimarc,
}

/// How a CQL clause compares the ISBN index with a term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// `index=TERM` (DNB, K10plus, LoC).
    Equals,
    /// `index adj "TERM"` (BnF).
    Adjacent,
}

/// One SRU catalogue: everything the client needs to ask it and read its answer.
#[derive(Debug)]
pub struct Profile {
    /// Its name on the command line and in the tables (`--providers dnb`).
    pub name: &'static str,
    pub title: &'static str,
    /// Who a message says refused or slowed a request ("the DNB").
    pub owner: &'static str,
    pub base_url: &'static str,
    /// The SRU version to send: K10plus answers SRU 2.0, in another namespace, when none is.
    pub version: &'static str,
    /// The CQL index of ISBNs (a bare term would go to a word index).
    pub index: &'static str,
    pub relation: Relation,
    pub record_schema: &'static str,
    pub format: RecordFormat,
    /// Parameters the catalogue needs in practice (LoC returns no record without
    /// `startRecord=1`).
    pub extra: &'static [(&'static str, &'static str)],
    /// The ISBN-13 prefixes it is asked about by default; empty: every ISBN.
    pub prefixes: &'static [&'static str],
    /// Whom a record's reuse must name, where the licence asks (BnF's Licence Ouverte: the
    /// producer and the record's date); `None` for CC0 and public-domain catalogues.
    pub attribution: Option<&'static str>,
    /// Requests per second it is asked by default (`--sru-rate NAME=N/s`).
    pub rate: f64,
    /// Whether an ISBN missing from a batch answer is a verdict. Where it is not (LoC), the
    /// ISBN is asked alone before it is `not_found`.
    pub batch_miss_is_verdict: bool,
}

pub const DNB: Profile = Profile {
    name: "dnb",
    title: "Deutsche Nationalbibliothek",
    owner: "the DNB",
    base_url: "https://services.dnb.de/sru/dnb",
    version: "1.1",
    index: "num",
    relation: Relation::Equals,
    record_schema: "MARC21-xml",
    format: RecordFormat::Marc21,
    extra: &[],
    prefixes: &["9783"],
    attribution: None,
    rate: 1.0,
    batch_miss_is_verdict: true,
};

pub const K10PLUS: Profile = Profile {
    name: "k10plus",
    title: "K10plus",
    owner: "K10plus",
    base_url: "https://sru.k10plus.de/opac-de-627",
    version: "1.1",
    index: "pica.isb",
    relation: Relation::Equals,
    record_schema: "marcxml",
    format: RecordFormat::Marc21,
    extra: &[],
    prefixes: &[],
    attribution: None,
    rate: 1.0,
    batch_miss_is_verdict: true,
};

pub const LOC: Profile = Profile {
    name: "loc",
    title: "Library of Congress",
    owner: "the Library of Congress",
    // Plain HTTP on port 210 only: HTTPS answers 404.
    base_url: "http://lx2.loc.gov:210/LCDB",
    version: "1.1",
    index: "bath.isbn",
    relation: Relation::Equals,
    record_schema: "marcxml",
    format: RecordFormat::Marc21,
    extra: &[("startRecord", "1")],
    prefixes: &["9780", "9781", "9798"],
    attribution: None,
    rate: 1.0,
    batch_miss_is_verdict: false,
};

pub const BNF: Profile = Profile {
    name: "bnf",
    title: "Bibliothèque nationale de France",
    owner: "the BnF",
    base_url: "https://catalogue.bnf.fr/api/SRU",
    version: "1.2",
    index: "bib.isbn",
    relation: Relation::Adjacent,
    record_schema: "unimarcxchange",
    format: RecordFormat::Unimarc,
    extra: &[("startRecord", "1")],
    prefixes: &["9782", "97910"],
    attribution: Some("Bibliothèque nationale de France"),
    rate: 1.0,
    batch_miss_is_verdict: true,
};

/// Every catalogue, in their default order of precedence (after Google and Open Library): each
/// is a provider (`sru::SPECS`), with no other line to add.
pub const ALL: [&Profile; 4] = [&DNB, &BNF, &LOC, &K10PLUS];

/// What `--providers national` means, in this order.
pub const NATIONAL: [&str; 3] = ["dnb", "bnf", "loc"];

/// The catalogue called `name`.
pub fn by_name(name: &str) -> Option<&'static Profile> {
    ALL.iter().copied().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_is_three_known_catalogues() {
        assert!(NATIONAL.iter().all(|n| by_name(n).is_some()));
        let names: std::collections::HashSet<&str> = ALL.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), ALL.len(), "names are unique");
    }
}
