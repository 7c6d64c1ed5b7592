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

Built so far: the profiles, routing, the requests, the envelope reader, verification, the
mapping, the outcome table, the client and the fake's catalogues (`fake_api/sru.rs`). Making
the catalogues crawl providers (ids, specs, lanes, `--route`, routing in `ensure_lookups`),
the new columns and the demo come next (issue 27).
*/

pub mod classify;
pub mod client;
pub mod envelope;
pub mod mapping;
pub mod profile;
pub mod query;
pub mod verify;

pub use profile::{Profile, RecordFormat, Routes};
