/*!
Every provider, as data: the one list the crawl, the command line and the store consult.
Adding a source is its module (with its `SPEC`), one line here, its half of the fake and its
tests; nothing else names it.
*/

use super::Spec;
use super::{google, open_library};
use crate::domain::ProviderId;

/// Every provider's description, in the default order of precedence.
pub const ALL: [&Spec; 2] = [&google::SPEC, &open_library::SPEC];

/// The description of `id`.
pub fn spec(id: ProviderId) -> &'static Spec {
    match id {
        ProviderId::Google => &google::SPEC,
        ProviderId::OpenLibrary => &open_library::SPEC,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_has_its_own_spec_in_the_order_of_precedence() {
        assert_eq!(ALL.len(), ProviderId::ALL.len());
        for (spec, id) in ALL.iter().zip(ProviderId::ALL) {
            assert_eq!(spec.id, id);
            assert_eq!(self::spec(id).id, id);
        }
    }
}
