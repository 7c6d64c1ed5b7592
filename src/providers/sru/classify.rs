/*!
The SRU outcome table: what a status and a body mean for each ISBN of a batch. Pure, like
Google's and Open Library's.

| answer | outcome |
|---|---|
| 200, records | each ISBN: `Found` (the record [`verify::choose`] keeps), else no verdict while pages are left, else `NotFound` (or, where a batch miss is no verdict, no verdict: asked alone) |
| 200, `numberOfRecords` 0 | `NotFound` for each ISBN (alone or where a batch miss is a verdict); else no verdict |
| 200, a temporary diagnostic (system error, temporarily unavailable, record position, a URI no standard names), or records announced but absent | `Transient`: retried with backoff |
| 200, an unsupported query, parameter, version, schema or operation | `Permanent`, with the diagnostic's text |
| 200, not an SRU answer (HTML, a gateway's page, cut short, a DTD) | `Transient` |
| 429 | `RateLimited` |
| 403 | `ApiRejected` (`CatalogueRefused`): that catalogue stops, the others go on |
| 408, 5xx | `Transient` |
| any other status | `Permanent` |
*/

use std::time::Duration;

use super::envelope::{self, Diagnostic, Reading};
use super::mapping;
use super::profile::Profile;
use super::verify;
use crate::isbn::Isbn13;
use crate::providers::{Answer, Outcome, Rejection};

/// How long a 429 without `Retry-After` holds the catalogue back.
const RATE_LIMITED_DELAY: Duration = Duration::from_secs(30);

/// What one page (from record `start`) answers for `isbns`: the verdicts, and whether more
/// pages must be read before the ISBNs without one are misses.
#[derive(Debug)]
pub struct Page {
    pub answer: Answer,
    pub more: bool,
    /// Records this page carried (where the next page starts).
    pub records: usize,
}

/// What a status other than 200 means (the table's lower rows); `None` for a 200.
fn by_status(profile: &Profile, status: u16, body: &[u8]) -> Option<Outcome> {
    // The title of an HTML error page says more than its status.
    let said = || {
        let b = String::from_utf8_lossy(&body[..body.len().min(200)]);
        let text = b
            .split("<title>")
            .nth(1)
            .and_then(|t| t.split("</title>").next());
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => format!("HTTP {status} from {}: {t}", profile.title),
            None => format!("HTTP {status} from {}", profile.title),
        }
    };
    Some(match status {
        200 => return None,
        429 => Outcome::RateLimited {
            retry_after: Some(RATE_LIMITED_DELAY),
        },
        403 => Outcome::ApiRejected {
            kind: Rejection::CatalogueRefused,
            message: said(),
        },
        408 | 500..=599 => Outcome::Transient {
            error: said(),
            retry_after: None,
        },
        _ => Outcome::Permanent { error: said() },
    })
}

/// The table above.
pub fn classify(profile: &Profile, status: u16, body: &[u8], isbns: &[Isbn13], start: u64) -> Page {
    let failed = |outcome| Page {
        answer: Answer::Failed(outcome),
        more: false,
        records: 0,
    };
    if let Some(outcome) = by_status(profile, status, body) {
        return failed(outcome);
    }
    let answer = match envelope::parse(body) {
        Ok(a) => a,
        Err(e) => {
            return failed(Outcome::Transient {
                error: format!("{}: {e}", profile.title),
                retry_after: None,
            });
        }
    };
    if let Some(d) = answer.diagnostics.first() {
        let error = format!("{}: {}", profile.title, describe(d));
        return failed(if permanent(&d.uri) {
            Outcome::Permanent { error }
        } else {
            Outcome::Transient {
                error,
                retry_after: None,
            }
        });
    }
    let more = match answer.reading(start) {
        Reading::Failure(why) => {
            return failed(Outcome::Transient {
                error: format!("{}: {why}", profile.title),
                retry_after: None,
            });
        }
        Reading::Miss => false,
        Reading::Records { more } => more,
    };
    // A miss in a batch is a verdict only where the catalogue's batches are reliable.
    let miss_is_verdict = !more && (isbns.len() == 1 || profile.batch_miss_is_verdict);
    let chosen = verify::choose(&answer.records, profile.format, isbns);
    let outcomes = isbns
        .iter()
        .zip(chosen)
        .map(|(isbn, chosen)| match chosen {
            Some(i) => Some(Outcome::Found(Box::new(mapping::chosen(
                profile,
                &answer.records,
                i,
                isbn,
            )))),
            None if miss_is_verdict => Some(Outcome::NotFound {
                items: answer.records.len(),
            }),
            None => None,
        })
        .collect();
    Page {
        answer: Answer::Items(outcomes),
        more,
        records: answer.records.len(),
    }
}

fn describe(d: &Diagnostic) -> String {
    let parts: Vec<&str> = [d.message.as_str(), d.details.as_str(), d.uri.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    format!("SRU diagnostic: {}", parts.join("; "))
}

/// Whether a diagnostic says the request itself is wrong (no retry will change it): the
/// standard SRU diagnostics for unsupported operations, versions, parameters, queries and
/// schemas (`info:srw/diagnostic/1/4` to `1/59`, but for 1/1-1/3 and the record positions and
/// availability from 1/60 on). Any other URI, a non-standard one included, is retried.
fn permanent(uri: &str) -> bool {
    let Some(n) = uri
        .strip_prefix("info:srw/diagnostic/1/")
        .and_then(|n| n.trim().parse::<u32>().ok())
    else {
        return false;
    };
    (4..=59).contains(&n)
}

#[cfg(test)]
mod tests {
    use super::super::profile::{DNB, LOC};
    use super::*;

    fn isbns(list: &[&str]) -> Vec<Isbn13> {
        list.iter()
            .map(|s| crate::isbn::parse(s).expect("valid"))
            .collect()
    }

    const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/sru/loc-two-records.xml");

    fn envelope(count: u64, inner: &str) -> Vec<u8> {
        format!(
            r#"<zs:searchRetrieveResponse xmlns:zs="http://www.loc.gov/zing/srw/"><zs:numberOfRecords>{count}</zs:numberOfRecords>{inner}</zs:searchRetrieveResponse>"#
        )
        .into_bytes()
    }

    fn kinds(page: &Page) -> Vec<&'static str> {
        match &page.answer {
            Answer::Items(items) => items
                .iter()
                .map(|o| match o {
                    Some(Outcome::Found(_)) => "found",
                    Some(Outcome::NotFound { .. }) => "not_found",
                    None => "no verdict",
                    Some(_) => "other",
                })
                .collect(),
            Answer::Failed(Outcome::Transient { .. }) => vec!["transient"],
            Answer::Failed(Outcome::Permanent { .. }) => vec!["permanent"],
            Answer::Failed(Outcome::RateLimited { .. }) => vec!["rate limited"],
            Answer::Failed(Outcome::ApiRejected { .. }) => vec!["rejected"],
            Answer::Failed(_) => vec!["other failure"],
        }
    }

    #[test]
    fn a_batch_answer_gives_each_isbn_its_verdict() {
        let asked = isbns(&["9780674033801", "9783406568442"]);
        let page = classify(&DNB, 200, FIXTURE, &asked, 1);
        assert_eq!(kinds(&page), ["found", "not_found"]);
        // LoC's batch misses are no verdict: the second ISBN is asked alone.
        let page = classify(&LOC, 200, FIXTURE, &asked, 1);
        assert_eq!(kinds(&page), ["found", "no verdict"]);
        let alone = classify(&LOC, 200, FIXTURE, &asked[1..], 1);
        assert_eq!(kinds(&alone), ["not_found"]);
        let miss = classify(&DNB, 200, &envelope(0, ""), &asked, 1);
        assert_eq!(kinds(&miss), ["not_found", "not_found"]);
    }

    #[test]
    fn more_pages_mean_no_miss_yet() {
        let body = String::from_utf8_lossy(FIXTURE).replace(
            "<zs:numberOfRecords>2</zs:numberOfRecords>",
            "<zs:numberOfRecords>7</zs:numberOfRecords>",
        );
        let asked = isbns(&["9780674033801", "9783406568442"]);
        let page = classify(&DNB, 200, body.as_bytes(), &asked, 1);
        assert!(page.more);
        assert_eq!(kinds(&page), ["found", "no verdict"]);
    }

    #[test]
    fn diagnostics_in_a_200_are_failures_temporary_or_not() {
        let diag = |uri: &str| {
            envelope(
                1,
                &format!(
                    r#"<zs:diagnostics xmlns:d="http://www.loc.gov/zing/srw/diagnostic/"><d:diagnostic><d:uri>{uri}</d:uri><d:message>m</d:message></d:diagnostic></zs:diagnostics>"#
                ),
            )
        };
        let asked = isbns(&["9780674033801"]);
        for (uri, kind) in [
            ("info:srw/diagnostic/1/2", "transient"),
            ("info:srw/diagnostic/1/61", "transient"),
            ("200812", "transient"),
            ("info:srw/diagnostic/1/8", "permanent"),
            ("info:srw/diagnostic/1/10", "permanent"),
            ("info:srw/diagnostic/1/48", "permanent"),
        ] {
            assert_eq!(
                kinds(&classify(&LOC, 200, &diag(uri), &asked, 1)),
                [kind],
                "{uri}"
            );
        }
        let announced = envelope(3, "");
        assert_eq!(
            kinds(&classify(&LOC, 200, &announced, &asked, 1)),
            ["transient"]
        );
    }

    #[test]
    fn statuses_and_bodies_that_are_not_answers() {
        let asked = isbns(&["9780674033801"]);
        let html = b"<html><head><title>503 Service Unavailable</title></head></html>";
        let page = classify(&LOC, 503, html, &asked, 1);
        assert_eq!(kinds(&page), ["transient"]);
        if let Answer::Failed(Outcome::Transient { error, .. }) = &page.answer {
            assert!(
                error.contains("Library of Congress") && error.contains("503 Service Unavailable")
            );
        }
        assert_eq!(kinds(&classify(&LOC, 200, html, &asked, 1)), ["transient"]);
        assert_eq!(
            kinds(&classify(&LOC, 429, b"", &asked, 1)),
            ["rate limited"]
        );
        assert_eq!(kinds(&classify(&LOC, 403, b"", &asked, 1)), ["rejected"]);
        assert_eq!(kinds(&classify(&LOC, 404, b"", &asked, 1)), ["permanent"]);
        let xhtml = br#"<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "x"><html/>"#;
        assert_eq!(kinds(&classify(&LOC, 200, xhtml, &asked, 1)), ["transient"]);
    }
}
