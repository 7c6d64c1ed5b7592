/*!
National libraries over SRU (`searchRetrieve`), one client for every catalogue: what differs
between the Deutsche Nationalbibliothek, K10plus, the Library of Congress and the BnF is data,
a [`Profile`] each (`profile.rs`), not code. A profile names the ISBN-13 prefixes its
catalogue is asked about by default, so an ISBN is routed to the catalogue of its country
(`--route` overrides it), and how its CQL names the ISBN index (`query.rs`). One reader
takes every catalogue's answer apart (`envelope.rs`), one rule says which record is the
book asked for (`verify.rs`), one mapping makes it a book (`mapping.rs`), one table says what an answer means
(`classify.rs`), and one client asks, paging while there are more hits (`client.rs`).

What each catalogue really sends (and the basis of every rule here) is in
`../shared/docs/sru-catalogues.md`.

Each profile becomes a crawl provider's [`Spec`] here ([`SPECS`]): no key, no quota, batches
of up to [`MAX_BATCH`], politeness by [`polite_rate`].
*/

pub mod classify;
pub mod client;
pub mod envelope;
pub mod mapping;
pub mod profile;
pub mod query;
pub mod verify;

pub use profile::{Profile, RecordFormat};

use std::sync::Arc;

use super::{BuildError, Built, Provider, RateAsked, Settings, Spec};
use crate::domain::ProviderId;

/// The most ISBNs one request carries (`--sru-batch`): the catalogues answer a 25-term `or`
/// chain in one page of 50 records or fewer.
pub const MAX_BATCH: usize = 25;
/// ISBNs per request unless `--sru-batch` says otherwise.
pub const DEFAULT_BATCH: usize = 10;
/// The fastest a catalogue is asked, whatever `--sru-rate` says: these are public services
/// that ask for restraint.
pub const MAX_RATE: f64 = 5.0;

/// A catalogue's spec, from its profile.
const fn spec(p: &'static Profile) -> Spec {
    Spec {
        id: ProviderId::named(p.name),
        title: p.title,
        owner: p.owner,
        max_batch: MAX_BATCH,
        daily_quota: false,
        record_column: None,
        key_variable: None,
        allowed_rate: polite_rate,
        prefixes: p.prefixes,
        slow_on_fault: true,
        attribution: p.attribution,
        build,
    }
}

/// Every catalogue's spec, one per profile, in `profile::ALL`'s order: a new profile there is a
/// new provider, with nothing else to write.
pub static SPECS: [Spec; profile::ALL.len()] = {
    let mut out = [spec(profile::ALL[0]); profile::ALL.len()];
    let mut i = 1;
    while i < profile::ALL.len() {
        out[i] = spec(profile::ALL[i]);
        i += 1;
    }
    out
};

/// The profile of the catalogue `id` names, if it is one.
pub fn profile_of(id: ProviderId) -> Option<&'static Profile> {
    profile::by_name(id.as_str())
}

/// At most [`MAX_RATE`] requests a second, and never unlimited, except on this machine (a
/// test, a mirror).
pub fn polite_rate(r: &RateAsked) -> Result<Option<f64>, String> {
    if super::is_local(r.url) {
        return Ok(r.asked);
    }
    match r.asked {
        Some(rate) if rate <= MAX_RATE => Ok(Some(rate)),
        _ => Err(format!(
            "--sru-rate: a national library is asked at most {MAX_RATE} requests a second \
             (1/s by default)"
        )),
    }
}

fn build(spec: &'static Spec, s: &Settings) -> Built {
    let profile = profile_of(spec.id)
        .ok_or_else(|| BuildError::Client(format!("{} is not an SRU catalogue", spec.id)))?;
    if reqwest::Url::parse(&s.url)
        .ok()
        .is_none_or(|u| !matches!(u.scheme(), "http" | "https"))
    {
        return Err(BuildError::Usage(format!(
            "--sru-url {}={}: not an http(s) URL",
            profile.name,
            crate::terminal::safe(&s.url)
        )));
    }
    let agent = super::user_agent(s.contact.as_deref());
    client::Client::new(profile, &s.url, &agent, s.timeout, s.connect_timeout)
        .map(|c| Arc::new(c) as Arc<dyn Provider>)
        .map_err(BuildError::Client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(rate: Option<f64>, url: &str) -> Result<Option<f64>, String> {
        polite_rate(&RateAsked {
            asked: rate,
            contact: false,
            url,
        })
    }

    #[test]
    fn a_catalogue_is_asked_at_most_five_a_second_unless_it_is_on_this_machine() {
        let real = profile::DNB.base_url;
        assert_eq!(asked(Some(1.0), real), Ok(Some(1.0)));
        assert_eq!(asked(Some(5.0), real), Ok(Some(5.0)));
        assert!(asked(Some(5.5), real).is_err());
        assert!(asked(None, real).is_err(), "never unlimited");
        assert_eq!(asked(None, "http://127.0.0.1:8080/sru/dnb"), Ok(None));
    }

    #[test]
    fn every_profile_is_a_provider_with_its_own_routes() {
        for p in profile::ALL {
            let spec = crate::providers::registry::spec(ProviderId::named(p.name));
            assert_eq!(spec.title, p.title);
            assert_eq!(spec.prefixes, p.prefixes);
            assert_eq!(profile_of(spec.id).map(|q| q.name), Some(p.name));
        }
    }
}
