/*!
The four catalogues as data, and routing: which catalogue is asked about which ISBN.

A catalogue gets a lookup only for an ISBN inside its prefixes, so it never makes a job
`not_found` for a book it was never meant to hold (a French catalogue asked about a German
book). The defaults follow the registration groups: 978-3 is the German-speaking group, 978-2
and 979-10 the French, 978-0, 978-1 and 979-8 the English; K10plus, a union catalogue with books
in every language, is asked about all.
*/

use crate::isbn::Isbn13;

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
    /// Whether an ISBN missing from a batch answer is a verdict. Where it is not (LoC), the
    /// ISBN is asked alone before it is `not_found`.
    pub batch_miss_is_verdict: bool,
}

pub const DNB: Profile = Profile {
    name: "dnb",
    title: "Deutsche Nationalbibliothek",
    base_url: "https://services.dnb.de/sru/dnb",
    version: "1.1",
    index: "num",
    relation: Relation::Equals,
    record_schema: "MARC21-xml",
    format: RecordFormat::Marc21,
    extra: &[],
    prefixes: &["9783"],
    batch_miss_is_verdict: true,
};

pub const K10PLUS: Profile = Profile {
    name: "k10plus",
    title: "K10plus",
    base_url: "https://sru.k10plus.de/opac-de-627",
    version: "1.1",
    index: "pica.isb",
    relation: Relation::Equals,
    record_schema: "marcxml",
    format: RecordFormat::Marc21,
    extra: &[],
    prefixes: &[],
    batch_miss_is_verdict: true,
};

pub const LOC: Profile = Profile {
    name: "loc",
    title: "Library of Congress",
    // Plain HTTP on port 210 only: HTTPS answers 404.
    base_url: "http://lx2.loc.gov:210/LCDB",
    version: "1.1",
    index: "bath.isbn",
    relation: Relation::Equals,
    record_schema: "marcxml",
    format: RecordFormat::Marc21,
    extra: &[("startRecord", "1")],
    prefixes: &["9780", "9781", "9798"],
    batch_miss_is_verdict: false,
};

pub const BNF: Profile = Profile {
    name: "bnf",
    title: "Bibliothèque nationale de France",
    base_url: "https://catalogue.bnf.fr/api/SRU",
    version: "1.2",
    index: "bib.isbn",
    relation: Relation::Adjacent,
    record_schema: "unimarcxchange",
    format: RecordFormat::Unimarc,
    extra: &[("startRecord", "1")],
    prefixes: &["9782", "97910"],
    batch_miss_is_verdict: true,
};

/// Every catalogue, in the order `--providers national` does not change.
pub const ALL: [&Profile; 4] = [&DNB, &K10PLUS, &LOC, &BNF];

/// What `--providers national` means, in this order.
pub const NATIONAL: [&str; 3] = ["dnb", "bnf", "loc"];

/// The catalogue called `name`.
pub fn by_name(name: &str) -> Option<&'static Profile> {
    ALL.iter().copied().find(|p| p.name == name)
}

/// Which ISBNs a catalogue is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routes {
    All,
    /// ISBN-13 prefixes: digits, starting 978 or 979.
    Prefixes(Vec<String>),
}

impl Routes {
    /// A profile's default routes.
    pub fn of(profile: &Profile) -> Routes {
        if profile.prefixes.is_empty() {
            Routes::All
        } else {
            Routes::Prefixes(profile.prefixes.iter().map(|p| p.to_string()).collect())
        }
    }

    /// Whether `isbn` is asked of the catalogue.
    pub fn admit(&self, isbn: &Isbn13) -> bool {
        match self {
            Routes::All => true,
            Routes::Prefixes(prefixes) => prefixes.iter().any(|p| isbn.as_str().starts_with(p)),
        }
    }
}

/// A `--route NAME=PREFIX[,PREFIX...]` or `--route NAME=all` that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("--route wants NAME=PREFIX[,PREFIX...] or NAME=all, as in dnb=9783")]
    Form,
    #[error("--route names no catalogue called {0:?}; they are dnb, k10plus, loc and bnf")]
    Unknown(String),
    #[error(
        "--route prefix {0:?} is not the start of an ISBN-13: 4 to 12 digits beginning 978 or 979"
    )]
    Prefix(String),
}

/// Reads one `--route` value.
pub fn parse_route(arg: &str) -> Result<(&'static Profile, Routes), RouteError> {
    let (name, rest) = arg.split_once('=').ok_or(RouteError::Form)?;
    let profile = by_name(name.trim())
        .ok_or_else(|| RouteError::Unknown(crate::terminal::safe(name.trim()).into_owned()))?;
    let rest = rest.trim();
    if rest.eq_ignore_ascii_case("all") {
        return Ok((profile, Routes::All));
    }
    let mut prefixes = Vec::new();
    for p in rest.split(',').map(str::trim) {
        let digits = p.bytes().all(|b| b.is_ascii_digit());
        if !digits
            || !(4..=12).contains(&p.len())
            || !(p.starts_with("978") || p.starts_with("979"))
        {
            return Err(RouteError::Prefix(crate::terminal::safe(p).into_owned()));
        }
        prefixes.push(p.to_string());
    }
    Ok((profile, Routes::Prefixes(prefixes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isbn::parse;

    fn isbn(s: &str) -> Isbn13 {
        parse(s).expect("valid")
    }

    /// The ISBN-13 of twelve digits and their check digit.
    fn of(twelve: &str) -> Isbn13 {
        crate::isbn::with_check_digit(twelve).expect("twelve digits")
    }

    #[test]
    fn each_isbn_goes_to_the_catalogue_of_its_registration_group() {
        let german = isbn("9783406568442");
        let french = isbn("2707302759");
        let french_979 = of("979103230556");
        let english = isbn("9780674033801");
        let us_979 = of("979888645174");
        let dnb = Routes::of(&DNB);
        let bnf = Routes::of(&BNF);
        let loc = Routes::of(&LOC);
        assert!(dnb.admit(&german) && !dnb.admit(&french) && !dnb.admit(&english));
        assert!(bnf.admit(&french) && bnf.admit(&french_979) && !bnf.admit(&german));
        assert!(loc.admit(&english) && loc.admit(&us_979) && !loc.admit(&french_979));
        let k10 = Routes::of(&K10PLUS);
        assert!(
            [&german, &french, &english, &us_979]
                .iter()
                .all(|i| k10.admit(i))
        );
    }

    #[test]
    fn a_route_overrides_the_default_and_bad_ones_say_why() {
        let (p, r) = parse_route("dnb=9783,97912").expect("route");
        assert_eq!(p.name, "dnb");
        assert_eq!(r, Routes::Prefixes(vec!["9783".into(), "97912".into()]));
        assert!(r.admit(&of("979120000000")));
        assert_eq!(parse_route("bnf=all").expect("all").1, Routes::All);
        assert_eq!(parse_route("dnb").unwrap_err(), RouteError::Form);
        assert_eq!(
            parse_route("kb=9789").unwrap_err(),
            RouteError::Unknown("kb".into())
        );
        for bad in ["dnb=3", "dnb=9773", "dnb=97x3", "dnb=", "dnb=9783,"] {
            assert!(
                matches!(parse_route(bad), Err(RouteError::Prefix(_))),
                "{bad} accepted"
            );
        }
        // A name from outside is escaped before it reaches a terminal.
        let err = parse_route("\u{1b}[2J=9783").unwrap_err().to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
    }

    #[test]
    fn national_is_three_known_catalogues() {
        assert!(NATIONAL.iter().all(|n| by_name(n).is_some()));
        let names: std::collections::HashSet<&str> = ALL.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), ALL.len(), "names are unique");
    }
}
