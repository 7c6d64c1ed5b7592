/*!
The Google Books client: builds the request, reads the answer, and says what it means.

[`classify`] is the one table that turns an HTTP answer into an [`Outcome`]; it is pure, so every
row of the table (see "Outcomes" in docs/guide.md) is tested without a network. The crawl loop
only acts on outcomes and never looks at status codes.

Verification lives here too: an item counts only if its `industryIdentifiers` hold the ISBN-13
that was asked for or its ISBN-10 ([`matches`](fn@matches)). Google's search sometimes returns another
book for `q=isbn:X`; storing it as X would be silent corruption.

The API key is a [`SecretString`]: it is added to the query at the last moment, and every
reqwest error is stripped of its URL (`without_url`) before it becomes a message.
*/

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    Answer, Outcome, Provider, ProviderId, Rejection, lenient, lenient_objects, matches,
    published_year, read_body, send, strip_urls,
};
use crate::domain::Book;
use crate::isbn::Isbn13;

/// The partial response asked for: each item's id and its whole `volumeInfo` (what `books`
/// stores, and all `raw_json` keeps), not the sale, access and search parts nor the envelope.
/// Short on purpose: each request's URL is parsed three times (its query by us, the whole by
/// reqwest twice), and naming the 18 `volumeInfo` fields one by one made those parses an eighth
/// of the crawler's instructions.
pub const FIELDS: &str = "items(id,volumeInfo)";

pub const DEFAULT_API_URL: &str = "https://www.googleapis.com";

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub api_url: String,
    pub key: Option<SecretString>,
    pub country: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    #[error("--api-url {0:?} is not an http(s) URL")]
    BadUrl(String),
}

/// A Google Books client; cheap to clone (one connection pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `{api}/books/v1/volumes`, parsed once: a request sets only its query instead of parsing
    /// the whole URL again (reqwest parses it twice more; see docs/performance.md).
    volumes: reqwest::Url,
    /// `country=..&maxResults=10&fields=..&q=isbn:` with everything but the ISBN encoded once;
    /// the key is appended per request and never stored in it.
    query_prefix: String,
    /// The same with `maxResults=40`, for batches.
    batch_prefix: String,
    /// `&key=` and the key, percent-encoded once (the query of every request ends with it).
    key: Option<SecretString>,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let volumes_url = super::endpoint(&config.api_url, "/books/v1/volumes")
            .ok_or_else(|| Error::BadUrl(config.api_url.clone()))?;
        let prefix = |max_results: &str| {
            let mut url = volumes_url.clone();
            url.query_pairs_mut()
                .append_pair("country", &config.country)
                .append_pair("maxResults", max_results);
            // The selector goes in as Google documents it, not percent-encoded (`(`, `)` and
            // `,` are allowed in a query).
            format!(
                "{}&fields={FIELDS}&q=isbn:",
                url.query().unwrap_or_default()
            )
        };
        let query_prefix = prefix("10");
        let batch_prefix = prefix("40");
        // Uncompressed: decoding a gzipped answer (setting up an inflater per request) cost a
        // large share of the crawler's own work an ISBN, to save about a kilobyte that the
        // daily quota makes irrelevant (docs/performance.md has the measurement).
        // (Google compresses when asked with `Accept-Encoding: gzip` and "gzip" in the
        // User-Agent; the fake does too.)
        let agent = concat!("isbn-crawler/", env!("CARGO_PKG_VERSION"));
        let http = super::http_client(agent, false, config.timeout, config.connect_timeout)
            .map_err(Error::Build)?;
        Ok(Client {
            http,
            volumes: volumes_url,
            query_prefix,
            batch_prefix,
            key: config.key.map(|key| {
                SecretString::from(format!("&key={}", encode_query_value(key.expose_secret())))
            }),
        })
    }

    async fn fetch(&self, isbns: &[Isbn13]) -> Result<(u16, Option<Duration>, Vec<u8>), Outcome> {
        // ISBNs are digits only: nothing to encode but the spaces around OR.
        let prefix = if isbns.len() > 1 {
            &self.batch_prefix
        } else {
            &self.query_prefix
        };
        let key = self.key.as_ref().map(ExposeSecret::expose_secret);
        let mut query = String::with_capacity(
            prefix.len()
                + isbns.len() * "%20OR%20isbn:9780000000000".len()
                + key.map_or(0, str::len),
        );
        query.push_str(prefix);
        for (i, isbn) in isbns.iter().enumerate() {
            if i > 0 {
                query.push_str("%20OR%20isbn:");
            }
            query.push_str(isbn.as_str());
        }
        if let Some(key) = key {
            query.push_str(key);
        }
        let mut url = self.volumes.clone();
        url.set_query(Some(&query));
        let response = send(self.http.get(url)).await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_body(response).await?;
        Ok((status, retry_after, body))
    }
}

/// The most ISBNs one request may ask for (Google's `maxResults` limit).
pub const MAX_BATCH: usize = 40;

/// Google Books' name in the database and on the command line.
pub const ID: ProviderId = ProviderId::named("google");

/// Google Books: a key, a daily quota per key, OR batches of up to 40.
pub const SPEC: super::Spec = super::Spec {
    id: ID,
    title: "Google Books",
    owner: "Google",
    max_batch: MAX_BATCH,
    daily_quota: true,
    record_column: Some("volume_id"),
    key_variable: Some("GOOGLE_BOOKS_API_KEY"),
    allowed_rate: super::any_rate,
    prefixes: &[],
    slow_on_fault: false,
    attribution: None,
    build,
};

fn build(_: &'static super::Spec, s: &super::Settings) -> super::Built {
    let client = Client::new(ClientConfig {
        api_url: s.url.clone(),
        key: s.key.clone(),
        country: s.country.clone(),
        timeout: s.timeout,
        connect_timeout: s.connect_timeout,
    });
    match client {
        Ok(c) => Ok(std::sync::Arc::new(c)),
        Err(e @ Error::BadUrl(_)) => Err(super::BuildError::Usage(e.to_string())),
        Err(e) => Err(super::BuildError::Client(e.to_string())),
    }
}

impl Provider for Client {
    /// Google's OR search drops books it finds alone: an ISBN a batch missed is asked alone.
    fn regroup(&self, _unsure: usize) -> usize {
        1
    }

    fn rebatch_misses(&self) -> bool {
        true
    }

    /// One ISBN: `q=isbn:X`; several: `isbn:A OR isbn:B ...` (at most [`MAX_BATCH`]).
    fn lookup<'a>(&'a self, isbns: &'a [Isbn13]) -> futures_util::future::BoxFuture<'a, Answer> {
        Box::pin(async move {
            match self.fetch(isbns).await {
                Ok((status, retry_after, body)) => match isbns {
                    [isbn] => Answer::of_one(classify(status, retry_after, &body, isbn)),
                    _ => classify_batch(status, retry_after, &body, isbns),
                },
                Err(outcome) => Answer::Failed(outcome),
            }
        })
    }
}

/// [`classify`] for a batch: a 200 is matched item by item, and a miss is no verdict (Google's
/// OR search drops books it finds alone); anything else is the whole batch's fate.
pub fn classify_batch(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    isbns: &[Isbn13],
) -> Answer {
    match (status, isbns.first()) {
        (200, _) => match match_items(body, isbns) {
            Ok((found, _)) => {
                Answer::Items(found.into_iter().map(|b| b.map(Outcome::Found)).collect())
            }
            Err(error) => Answer::Failed(Outcome::Transient { error, retry_after }),
        },
        (_, Some(first)) => Answer::Failed(classify(status, retry_after, body, first)),
        (_, None) => Answer::Items(Vec::new()),
    }
}

/// Percent-encodes a query value (Google keys are URL-safe; this keeps odd ones intact).
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The response

#[derive(Deserialize)]
struct Volumes<'a> {
    #[serde(borrow, default)]
    items: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Item {
    #[serde(default, deserialize_with = "lenient")]
    id: Option<String>,
    // Strict: a volumeInfo that is not an object makes the item unreadable, and so not a
    // match (lenient, it would read as absent, with no identifiers: not a match either).
    #[serde(default)]
    volume_info: Option<VolumeInfo>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct VolumeInfo {
    #[serde(default, deserialize_with = "lenient")]
    title: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    subtitle: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    authors: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient")]
    publisher: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    published_date: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    description: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    industry_identifiers: Option<Vec<Identifier>>,
    #[serde(default, deserialize_with = "lenient")]
    page_count: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    categories: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient")]
    average_rating: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    ratings_count: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    language: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    image_links: Option<ImageLinks>,
}

#[derive(Deserialize, Default)]
struct Identifier {
    #[serde(default, deserialize_with = "lenient")]
    identifier: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ImageLinks {
    #[serde(default, deserialize_with = "lenient")]
    thumbnail: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    small_thumbnail: Option<String>,
}

lenient_objects!(
    Identifier, ImageLinks, ApiError, ErrorItem, Detail, Metadata
);

/// Per requested ISBN (same order), its verified book if one came back.
pub type Matches = Vec<Option<Box<Book>>>;

/// For each requested ISBN, the first item of a 200 answer whose identifiers carry it.
/// Also returns how many items came back (for `not_found` notes).
fn match_items(body: &[u8], isbns: &[Isbn13]) -> Result<(Matches, usize), String> {
    let volumes: Volumes = serde_json::from_slice(body)
        .map_err(|e| format!("malformed JSON in a 200 answer ({} bytes): {e}", body.len()))?;
    let items = volumes.items.unwrap_or_default();
    let mut found: Matches = vec![None; isbns.len()];
    for raw in &items {
        if found.iter().all(Option::is_some) {
            break;
        }
        let Ok(item) = serde_json::from_str::<Item>(raw.get()) else {
            continue;
        };
        let info = item.volume_info.unwrap_or_default();
        let ids: Vec<&str> = info
            .industry_identifiers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i.identifier.as_deref())
            .collect();
        let Some(slot) = isbns
            .iter()
            .zip(found.iter())
            .position(|(isbn, f)| f.is_none() && matches(isbn, ids.iter().copied()))
        else {
            continue;
        };
        let isbn = &isbns[slot];
        let json_list =
            |v: &Option<Vec<String>>| v.as_ref().and_then(|v| serde_json::to_string(v).ok());
        let links = info.image_links.unwrap_or_default();
        found[slot] = Some(Box::new(Book {
            isbn13: isbn.as_str().to_string(),
            isbn10: isbn.isbn10(),
            volume_id: item.id,
            authors: json_list(&info.authors),
            categories: json_list(&info.categories),
            published_year: info.published_date.as_deref().and_then(published_year),
            title: info.title,
            subtitle: info.subtitle,
            publisher: info.publisher,
            published_date: info.published_date,
            description: info.description,
            page_count: info.page_count,
            language: info.language,
            average_rating: info.average_rating,
            ratings_count: info.ratings_count,
            thumbnail: links.thumbnail.or(links.small_thumbnail),
            raw_json: raw.get().to_string(),
            ..Book::default()
        }));
    }
    Ok((found, items.len()))
}

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default, deserialize_with = "lenient")]
    error: Option<ApiError>,
}

#[derive(Deserialize, Default)]
struct ApiError {
    #[serde(default, deserialize_with = "lenient")]
    message: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    errors: Option<Vec<ErrorItem>>,
    #[serde(default, deserialize_with = "lenient")]
    details: Option<Vec<Detail>>,
}

/// An entry of `details` (`google.rpc.ErrorInfo`): what the quota rules read of it.
#[derive(Deserialize, Default)]
struct Detail {
    #[serde(default, deserialize_with = "lenient")]
    reason: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    metadata: Option<Metadata>,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default, deserialize_with = "lenient")]
    quota_limit: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    quota_unit: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorItem {
    #[serde(default, deserialize_with = "lenient")]
    reason: Option<String>,
}

impl ApiError {
    fn reasons(&self) -> impl Iterator<Item = &str> {
        let legacy = self
            .errors
            .iter()
            .flatten()
            .filter_map(|e| e.reason.as_deref());
        let details = self
            .details
            .iter()
            .flatten()
            .filter_map(|d| d.reason.as_deref());
        legacy.chain(details)
    }

    fn has_reason(&self, wanted: &[&str]) -> bool {
        self.reasons().any(|r| wanted.contains(&r))
    }

    /// A per-day quota, by any of the three marks Google uses.
    fn is_daily_quota(&self) -> bool {
        let daily = |v: &Option<String>| {
            v.as_deref()
                .is_some_and(|v| v.contains("PerDay") || v.contains("/d/"))
        };
        let daily_metadata = self
            .details
            .iter()
            .flatten()
            .filter_map(|d| d.metadata.as_ref())
            .any(|m| daily(&m.quota_limit) || daily(&m.quota_unit));
        let message = self.message.as_deref().unwrap_or_default().to_lowercase();
        self.has_reason(&["dailyLimitExceeded"]) || daily_metadata || message.contains("per day")
    }

    fn summary(&self, status: u16) -> String {
        let reasons: Vec<&str> = self.reasons().collect();
        let message = self.message.as_deref().unwrap_or("no message");
        if reasons.is_empty() {
            format!("HTTP {status}: {message}")
        } else {
            format!("HTTP {status} ({}): {message}", reasons.join(", "))
        }
    }
}

/// The outcome table: what an HTTP status and body mean. Pure, so each row has a test.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8], isbn: &Isbn13) -> Outcome {
    if status == 200 {
        return match match_items(body, std::slice::from_ref(isbn)) {
            Ok((mut found, items)) => match found.pop().flatten() {
                Some(book) => Outcome::Found(book),
                None => Outcome::NotFound { items },
            },
            Err(error) => Outcome::Transient { error, retry_after },
        };
    }
    let api = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_default();
    let message = strip_urls(&api.summary(status));
    let rejected = |kind| Outcome::ApiRejected {
        kind,
        message: message.clone(),
    };
    match status {
        429 if api.is_daily_quota() => Outcome::QuotaExhausted { message },
        429 => Outcome::RateLimited { retry_after },
        403 if api.is_daily_quota() => Outcome::QuotaExhausted { message },
        403 if api.has_reason(&["rateLimitExceeded", "userRateLimitExceeded"]) => {
            Outcome::RateLimited { retry_after }
        }
        403 if api.has_reason(&["unknownLocation"]) => rejected(Rejection::UnknownLocation),
        403 => rejected(Rejection::Forbidden),
        401 => rejected(Rejection::BadKey),
        400 if api.has_reason(&["API_KEY_INVALID", "keyInvalid"])
            || message.contains("API key not valid") =>
        {
            rejected(Rejection::BadKey)
        }
        408 | 500..=599 => Outcome::Transient {
            error: message,
            retry_after,
        },
        _ => Outcome::Permanent { error: message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isbn() -> Isbn13 {
        "9780439023481".parse().expect("valid")
    }

    #[test]
    fn a_matching_item_is_found_and_kept_whole() {
        let body = br#"{"kind":"books#volumes","totalItems":2,"items":[
            {"id":"other","volumeInfo":{"title":"Wrong","industryIdentifiers":[{"type":"ISBN_13","identifier":"9780306406157"}]}},
            {"id":"3Mx4QgAACAAJ","volumeInfo":{"title":"The Hunger Games","authors":["Suzanne Collins"],
             "publishedDate":"2008-09-14","pageCount":"374","categories":["Juvenile Fiction"],
             "industryIdentifiers":[{"type":"ISBN_10","identifier":"0439023483"},{"type":"OTHER","identifier":"GENT:1"}],
             "imageLinks":{"smallThumbnail":"s","thumbnail":"t"},"unknownField":{"x":1}}}]}"#;
        let Outcome::Found(book) = classify(200, None, body, &isbn()) else {
            panic!("not found")
        };
        assert_eq!(book.volume_id.as_deref(), Some("3Mx4QgAACAAJ"));
        assert_eq!(book.title.as_deref(), Some("The Hunger Games"));
        assert_eq!(book.authors.as_deref(), Some(r#"["Suzanne Collins"]"#));
        assert_eq!(book.published_year, Some(2008));
        assert_eq!(book.page_count, None, "a string pageCount reads as absent");
        assert_eq!(book.thumbnail.as_deref(), Some("t"));
        assert!(book.raw_json.contains("unknownField"));
        assert_eq!(book.isbn13, "9780439023481");
    }

    #[test]
    fn wrong_books_and_empty_answers_are_not_found() {
        let wrong = br#"{"kind":"books#volumes","totalItems":1,"items":[{"id":"x","volumeInfo":{"title":"Other","industryIdentifiers":[{"type":"ISBN_13","identifier":"9780306406157"}]}}]}"#;
        assert_eq!(
            classify(200, None, wrong, &isbn()),
            Outcome::NotFound { items: 1 }
        );
        let none = br#"{"kind":"books#volumes","totalItems":0}"#;
        assert_eq!(
            classify(200, None, none, &isbn()),
            Outcome::NotFound { items: 0 }
        );
        let no_ids = br#"{"items":[{"volumeInfo":{"title":"No ids"}}, 7, null]}"#;
        assert_eq!(
            classify(200, None, no_ids, &isbn()),
            Outcome::NotFound { items: 3 }
        );
    }

    #[test]
    fn truncated_json_is_transient() {
        let body = br#"{"kind":"books#volumes","totalItems":1,"items":[{"id":"3Mx"#;
        assert!(matches!(
            classify(200, None, body, &isbn()),
            Outcome::Transient { .. }
        ));
    }

    const DAILY_429: &str = r#"{"error":{"code":429,"message":"Quota exceeded for quota metric 'Queries' and limit 'Queries per day' of service 'books.googleapis.com' for consumer 'project_number:1'.","errors":[{"message":"Quota exceeded","domain":"global","reason":"rateLimitExceeded"}],"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com","metadata":{"quota_limit":"defaultPerDayPerProject","quota_metric":"books.googleapis.com/default","quota_unit":"1/d/{project}","service":"books.googleapis.com"}}]}}"#;
    const MINUTE_429: &str = r#"{"error":{"code":429,"message":"Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'books.googleapis.com'.","errors":[{"message":"Quota exceeded","domain":"global","reason":"rateLimitExceeded"}],"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","metadata":{"quota_limit":"defaultPerMinutePerUser","quota_unit":"1/min/{project}/{user}"}}]}}"#;

    #[test]
    fn the_outcome_table() {
        let i = isbn();
        let quota = |o: &Outcome| matches!(o, Outcome::QuotaExhausted { .. });
        assert!(quota(&classify(429, None, DAILY_429.as_bytes(), &i)));
        let old = r#"{"error":{"code":403,"message":"Daily Limit Exceeded","errors":[{"domain":"usageLimits","reason":"dailyLimitExceeded"}]}}"#;
        assert!(quota(&classify(403, None, old.as_bytes(), &i)));
        assert_eq!(
            classify(429, Some(Duration::from_secs(7)), MINUTE_429.as_bytes(), &i),
            Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        let user = r#"{"error":{"code":403,"message":"User Rate Limit Exceeded","errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded"}]}}"#;
        assert!(matches!(
            classify(403, None, user.as_bytes(), &i),
            Outcome::RateLimited { .. }
        ));
        let bad_key = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","errors":[{"message":"API key not valid. Please pass a valid API key.","domain":"global","reason":"badRequest"}],"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        assert!(matches!(
            classify(400, None, bad_key.as_bytes(), &i),
            Outcome::ApiRejected {
                kind: Rejection::BadKey,
                ..
            }
        ));
        let location = r#"{"error":{"code":403,"message":"Cannot determine user location for geographically restricted operation.","errors":[{"message":"Cannot determine user location for geographically restricted operation.","domain":"global","reason":"unknownLocation"}]}}"#;
        assert!(matches!(
            classify(403, None, location.as_bytes(), &i),
            Outcome::ApiRejected {
                kind: Rejection::UnknownLocation,
                ..
            }
        ));
        let not_enabled = r#"{"error":{"code":403,"message":"Books API has not been used in project 1 before or it is disabled.","errors":[{"domain":"usageLimits","reason":"accessNotConfigured"}],"status":"PERMISSION_DENIED"}}"#;
        assert!(matches!(
            classify(403, None, not_enabled.as_bytes(), &i),
            Outcome::ApiRejected {
                kind: Rejection::Forbidden,
                ..
            }
        ));
        let backend = r#"{"error":{"code":503,"message":"Service unavailable","errors":[{"domain":"global","reason":"backendFailed"}],"status":"UNAVAILABLE"}}"#;
        for status in [500, 502, 503, 504] {
            assert!(matches!(
                classify(status, None, backend.as_bytes(), &i),
                Outcome::Transient { .. }
            ));
        }
        assert!(matches!(
            classify(503, None, b"<html>", &i),
            Outcome::Transient { .. }
        ));
        assert!(matches!(
            classify(404, None, b"", &i),
            Outcome::Permanent { .. }
        ));
    }

    #[test]
    fn matching_uses_both_forms_and_ignores_hyphens() {
        let i = isbn();
        assert!(matches(&i, ["9780439023481"]));
        assert!(matches(&i, ["0-439-02348-3"]));
        assert!(!matches(&i, ["GENT:900000054512", "9780306406157"]));
        let x: Isbn13 = "080442957X".parse().expect("valid");
        assert!(matches(&x, ["080442957x"]));
    }

    #[test]
    fn years_are_derived_leniently() {
        for (date, year) in [
            ("2008", Some(2008)),
            ("2008-09", Some(2008)),
            ("2016-09-15T00:00:00+02:00", Some(2016)),
            ("18??", None),
            ("c1999", Some(1999)),
            ("", None),
            ("999", Some(999)),
        ] {
            assert_eq!(published_year(date), year, "{date:?}");
        }
    }

    #[test]
    fn a_batch_answer_is_matched_item_by_item() {
        let a: Isbn13 = "9780439023481".parse().expect("valid");
        let b: Isbn13 = "9780306406157".parse().expect("valid");
        let c: Isbn13 = "080442957X".parse().expect("valid");
        // An unrequested book first, then b, then a (by its ISBN-10); c is missing.
        let body = br#"{"items":[
            {"id":"intruder","volumeInfo":{"industryIdentifiers":[{"type":"ISBN_13","identifier":"9781234567897"}]}},
            {"id":"b","volumeInfo":{"industryIdentifiers":[{"type":"ISBN_13","identifier":"9780306406157"}]}},
            {"id":"a","volumeInfo":{"industryIdentifiers":[{"type":"ISBN_10","identifier":"0439023483"}]}}]}"#;
        let Answer::Items(found) = classify_batch(200, None, body, &[a, b, c]) else {
            panic!("a 200 is items")
        };
        let book = |o: &Option<Outcome>| match o {
            Some(Outcome::Found(book)) => Some(book.clone()),
            _ => None,
        };
        let ids: Vec<Option<String>> = found
            .iter()
            .map(|f| book(f).and_then(|b| b.volume_id))
            .collect();
        assert_eq!(ids, [Some("a".into()), Some("b".into()), None]);
        assert_eq!(
            book(&found[0]).map(|b| b.isbn13),
            Some("9780439023481".into())
        );
        assert!(matches!(
            classify_batch(503, None, b"", &[a, b]),
            Answer::Failed(Outcome::Transient { .. })
        ));
        assert!(matches!(
            classify_batch(429, None, DAILY_429.as_bytes(), &[a, b]),
            Answer::Failed(Outcome::QuotaExhausted { .. })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        #[test]
        fn classify_never_panics_on_arbitrary_bodies(
            status in proptest::prelude::prop_oneof![
                proptest::prelude::Just(200u16), 100u16..600
            ],
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        ) {
            let _ = classify(status, None, &body, &isbn());
            let _ = classify_batch(status, None, &body, &[isbn(), isbn()]);
        }

        #[test]
        fn classify_never_panics_on_json_shaped_noise(
            body in r#"\{("(items|error|volumeInfo|industryIdentifiers|identifier)":)?[\[\]\{\}",:0-9a-z ]{0,200}"#,
        ) {
            let _ = classify(200, None, body.as_bytes(), &isbn());
            let _ = classify(429, None, body.as_bytes(), &isbn());
        }
    }

    #[test]
    fn hostile_bodies_are_errors_not_crashes() {
        // Nesting past serde_json's recursion limit, at the top and inside an item.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(!matches!(
            classify(200, None, deep.as_bytes(), &isbn()),
            Outcome::Found(_)
        ));
        let inside = format!(
            r#"{{"items":[{{"volumeInfo":{{"industryIdentifiers":[{{"identifier":"9780439023481"}}],"x":{}{}}}}}]}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        // Unknown fields are skipped without recursing into them: the item still matches.
        let outcome = classify(200, None, inside.as_bytes(), &isbn());
        assert!(matches!(outcome, Outcome::Found(_)), "not found");
        let ids: Vec<String> = (0..10_000)
            .map(|i| format!(r#"{{"type":"OTHER","identifier":"X{i}"}}"#))
            .chain([r#"{"type":"ISBN_13","identifier":"9780439023481"}"#.to_string()])
            .collect();
        let many = format!(
            r#"{{"items":[{{"id":"m","volumeInfo":{{"industryIdentifiers":[{}]}}}}]}}"#,
            ids.join(",")
        );
        assert!(matches!(
            classify(200, None, many.as_bytes(), &isbn()),
            Outcome::Found(_)
        ));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("AIza-_.~9"), "AIza-_.~9");
        assert_eq!(encode_query_value("a b&c=d"), "a%20b%26c%3Dd");
    }

    #[test]
    fn messages_never_carry_urls() {
        let s = strip_urls("error sending request for url (http://x/books?key=SECRET&q=1): boom");
        assert!(!s.contains("SECRET"), "{s}");
    }
}
