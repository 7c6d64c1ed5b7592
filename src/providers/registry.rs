/*!
Every provider, as data: the one list the crawl, the command line and the store consult.
Adding a source is its module (with its `SPEC` and `ID`), one line here, its half of the fake
and its tests; nothing else names it. A national library over SRU is less still: one profile
in `sru/profile.rs`, whose spec `sru::SPECS` makes and this list takes.
*/

use super::Spec;
use super::{google, open_library, sru};
use crate::domain::{ProviderId, Routes};

/// How many providers there are: Google, Open Library and every SRU catalogue.
const COUNT: usize = 2 + sru::SPECS.len();

/// Every provider's description, in the default order of precedence.
pub static ALL: [&Spec; COUNT] = {
    let mut all = [&google::SPEC; COUNT];
    all[1] = &open_library::SPEC;
    let mut i = 0;
    while i < sru::SPECS.len() {
        all[2 + i] = &sru::SPECS[i];
        i += 1;
    }
    all
};

/// Every provider's id, in the default order of precedence.
pub fn ids() -> impl Iterator<Item = ProviderId> {
    ALL.iter().map(|s| s.id)
}

/// The provider called `name` on the command line and in the tables.
pub fn parse(name: &str) -> Option<ProviderId> {
    ids().find(|p| p.as_str() == name)
}

/// `order` followed by every other provider: the precedence of merged fields.
pub fn precedence(order: &[ProviderId]) -> Vec<ProviderId> {
    let mut all = order.to_vec();
    all.extend(ids().filter(|p| !order.contains(p)));
    all
}

/// The provider whose requests spend a daily quota (the status line's, the estimate's, the
/// report's quota section), by its spec: `None` if none has one.
pub fn with_daily_quota() -> Option<&'static Spec> {
    ALL.iter().copied().find(|s| s.daily_quota)
}

/// Who owns the daily quota, as the user's text names it ("Google").
pub fn quota_owner() -> &'static str {
    with_daily_quota().map_or("the provider", |s| s.owner)
}

/// The description of `id`. Every id is made by a provider module and listed here (a test
/// checks), so a miss is a bug in this file, not in anything a user did.
pub fn spec(id: ProviderId) -> &'static Spec {
    ALL.iter()
        .copied()
        .find(|s| s.id == id)
        .expect("every ProviderId has its spec in registry::ALL")
}

/// The ISBNs `spec`'s provider is asked about by default.
pub fn default_routes(spec: &Spec) -> Routes {
    if spec.prefixes.is_empty() {
        Routes::All
    } else {
        Routes::Prefixes(spec.prefixes.iter().map(|p| p.to_string()).collect())
    }
}

/// A `--route NAME=PREFIX[,PREFIX...]` or `--route NAME=all` that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("--route wants NAME=PREFIX[,PREFIX...] or NAME=all, as in dnb=9783")]
    Form,
    #[error("--route names no provider called {0:?}; they are {names}", names = names())]
    Unknown(String),
    #[error(
        "--route prefix {0:?} is not the start of an ISBN-13: 4 to 12 digits beginning 978 or 979"
    )]
    Prefix(String),
}

/// Every provider's name, for messages: "google, openlibrary, dnb, ...".
pub fn names() -> String {
    ids().map(ProviderId::as_str).collect::<Vec<_>>().join(", ")
}

/// Reads one `--route` value.
pub fn parse_route(arg: &str) -> Result<(ProviderId, Routes), RouteError> {
    let (name, rest) = arg.split_once('=').ok_or(RouteError::Form)?;
    let id = parse(name.trim())
        .ok_or_else(|| RouteError::Unknown(crate::terminal::safe(name.trim()).into_owned()))?;
    let rest = rest.trim();
    if rest.eq_ignore_ascii_case("all") {
        return Ok((id, Routes::All));
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
        if !prefixes.contains(&p.to_string()) {
            prefixes.push(p.to_string());
        }
    }
    Ok((id, Routes::Prefixes(prefixes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_has_its_own_spec_and_name() {
        let ids: Vec<ProviderId> = ids().collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(spec(*id).id, *id);
            assert_eq!(parse(id.as_str()), Some(*id));
            assert!(!ids[..i].contains(id), "{id} listed twice");
        }
        assert_eq!(parse("nobody"), None);
    }

    /// The ISBN-13 of twelve digits and their check digit.
    fn of(twelve: &str) -> String {
        crate::isbn::with_check_digit(twelve)
            .expect("twelve digits")
            .as_str()
            .to_string()
    }

    #[test]
    fn each_isbn_goes_to_the_catalogue_of_its_registration_group() {
        let german = of("978340656844");
        let french = of("978270730275");
        let french_979 = of("979103230556");
        let english = of("978067403380");
        let us_979 = of("979888645174");
        let routes = |name| default_routes(spec(parse(name).expect("known")));
        let (dnb, bnf, loc) = (routes("dnb"), routes("bnf"), routes("loc"));
        assert!(dnb.admit(&german) && !dnb.admit(&french) && !dnb.admit(&english));
        assert!(bnf.admit(&french) && bnf.admit(&french_979) && !bnf.admit(&german));
        assert!(loc.admit(&english) && loc.admit(&us_979) && !loc.admit(&french_979));
        for all in [routes("k10plus"), routes("google"), routes("openlibrary")] {
            assert_eq!(all, Routes::All);
        }
    }

    #[test]
    fn a_route_overrides_the_default_and_bad_ones_say_why() {
        let (p, r) = parse_route("dnb=9783,97912,9783").expect("route");
        assert_eq!(p.as_str(), "dnb");
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
        assert!(err.contains("dnb, bnf, loc"), "{err}");
    }
}
