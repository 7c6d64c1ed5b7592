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

/// The provider whose requests spend a daily quota (the status line's, the estimate's, the
/// report's quota section), by its spec: `None` if none has one.
pub fn with_daily_quota() -> Option<&'static Spec> {
    ALL.iter().copied().find(|s| s.daily_quota)
}

/// Who owns the daily quota, as the user's text names it ("Google").
pub fn quota_owner() -> &'static str {
    with_daily_quota().map_or("the provider", |s| s.owner)
}

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
