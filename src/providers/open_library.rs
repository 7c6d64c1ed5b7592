/*!
The Open Library client: `GET /api/books?bibkeys=ISBN:a,ISBN:b&format=json&jscmd=data`.

What the real service does (`shared/docs/open-library-api.md`): it echoes each key exactly as
sent, leaves unknown ISBNs out, answers `{}` when nothing matched, and also answers `{}` for
the whole batch when the server swallowed an error. So [`classify`] reads entries by the
exact key sent (`ISBN:` + the canonical ISBN-13), takes an absent key in a non-empty answer as
"not found", but takes a wholly empty answer to a multi-key batch as no verdict: the crawl
splits the batch and asks again before any of its ISBNs is called `not_found`.

An entry counts only if its `identifiers.isbn_13` or `isbn_10` carry the ISBN (either form):
Open Library returns an arbitrary edition when several carry one ISBN, and some entries keep
the ISBN only under `amazon`. An unverified entry is not stored as that book.

Politeness: the `User-Agent` names the tool, its version and a contact
(`ISBN_CRAWLER_CONTACT`); without one the rate is capped at 1/s (the crawl's options do that).
*/

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    Answer, Outcome, Provider, ProviderId, Rejection, lenient, lenient_objects, matches,
    published_year, read_body, send,
};
use crate::domain::Book;
use crate::isbn::Isbn13;

pub const DEFAULT_URL: &str = "https://openlibrary.org";
/// Keys per request: more makes a URL past what the proxy accepts (issue #11406 suggests 25).
pub const MAX_BATCH: usize = 50;
pub const DEFAULT_BATCH: usize = 25;
/// Requests per second allowed with a contact in the User-Agent, and without one.
pub const MAX_RATE: f64 = 3.0;
pub const ANONYMOUS_RATE: f64 = 1.0;
/// Open Library sends no `Retry-After` with a 429; its docs suggest backing off from ~10 s.
pub const RATE_LIMITED_DELAY: Duration = Duration::from_secs(10);

/// Open Library's name in the database and on the command line.
pub const ID: ProviderId = ProviderId::named("openlibrary");

/// Open Library: no key, no quota, batches of keys, at most 3 requests a second.
pub const SPEC: super::Spec = super::Spec {
    id: ID,
    title: "Open Library",
    owner: "Open Library",
    max_batch: MAX_BATCH,
    daily_quota: false,
    record_column: Some("openlibrary_key"),
    key_variable: None,
    allowed_rate,
    prefixes: &[],
    slow_on_fault: false,
    attribution: None,
    build,
};

fn build(_: &'static super::Spec, s: &super::Settings) -> super::Built {
    Client::new(ClientConfig {
        base_url: s.url.clone(),
        contact: s.contact.clone(),
        timeout: s.timeout,
        connect_timeout: s.connect_timeout,
    })
    .map(|c| std::sync::Arc::new(c) as std::sync::Arc<dyn Provider>)
    .map_err(|e| super::BuildError::Usage(e.to_string()))
}

/// Within what Open Library allows: 3/s for a client that names a contact, 1/s for one that
/// does not. A server on this machine (a test, a mirror) is not Open Library.
fn allowed_rate(r: &super::RateAsked) -> Result<Option<f64>, String> {
    if super::is_local(r.url) {
        return Ok(r.asked);
    }
    if r.asked.is_none_or(|rate| rate > MAX_RATE) {
        return Err(
            "--openlibrary-rate: Open Library allows at most 3 requests a second (1/s \
             without ISBN_CRAWLER_CONTACT); for bulk use see its dumps, \
             https://openlibrary.org/developers/dumps"
                .into(),
        );
    }
    if !r.contact {
        let capped = r.asked.map(|rate| rate.min(ANONYMOUS_RATE));
        if capped != r.asked {
            tracing::warn!(
                "--openlibrary-rate capped at 1/s: set ISBN_CRAWLER_CONTACT to identify this client"
            );
        }
        return Ok(capped);
    }
    Ok(r.asked)
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    /// An e-mail or URL for the User-Agent.
    pub contact: Option<String>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    #[error("--openlibrary-url {0:?} is not an http(s) URL")]
    BadUrl(String),
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `{base}/api/books?format=json&jscmd=data&bibkeys=`.
    url_prefix: String,
}

use super::user_agent;

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let url = super::endpoint(&config.base_url, "/api/books")
            .ok_or_else(|| Error::BadUrl(config.base_url.clone()))?;
        let agent = user_agent(config.contact.as_deref());
        // Compressed: a free service's bandwidth, and a batch of 25 books shares the inflater.
        let http = super::http_client(&agent, true, config.timeout, config.connect_timeout)
            .map_err(Error::Build)?;
        Ok(Client {
            http,
            url_prefix: format!("{url}?format=json&jscmd=data&bibkeys="),
        })
    }

    async fn fetch(&self, isbns: &[Isbn13]) -> Result<(u16, Vec<u8>), Outcome> {
        let mut url = self.url_prefix.clone();
        for (i, isbn) in isbns.iter().enumerate() {
            if i > 0 {
                url.push(',');
            }
            url.push_str("ISBN:");
            url.push_str(isbn.as_str());
        }
        let response = send(self.http.get(url)).await?;
        let status = response.status().as_u16();
        let body = read_body(response).await?;
        Ok((status, body))
    }
}

impl Provider for Client {
    /// A wholly empty answer is split in halves: a server error in one entry empties the whole
    /// batch, and halving finds the good keys in a few requests.
    fn regroup(&self, unsure: usize) -> usize {
        unsure.div_ceil(2).max(1)
    }

    fn lookup<'a>(&'a self, isbns: &'a [Isbn13]) -> BoxFuture<'a, Answer> {
        Box::pin(async move {
            match self.fetch(isbns).await {
                Ok((status, body)) => classify(status, &body, isbns),
                Err(outcome) => Answer::Failed(outcome),
            }
        })
    }
}

#[derive(Deserialize, Default)]
struct Entry {
    #[serde(default, deserialize_with = "lenient")]
    key: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    title: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    subtitle: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    authors: Option<Vec<Named>>,
    #[serde(default, deserialize_with = "lenient")]
    publishers: Option<Vec<Named>>,
    #[serde(default, deserialize_with = "lenient")]
    publish_date: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    number_of_pages: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    subjects: Option<Vec<Named>>,
    #[serde(default, deserialize_with = "lenient")]
    identifiers: Option<Identifiers>,
    #[serde(default, deserialize_with = "lenient")]
    cover: Option<Cover>,
    #[serde(default, deserialize_with = "lenient")]
    classifications: Option<Classifications>,
}

/// `{"dewey_decimal_class": ["813/.4"], "lc_classifications": ["PS1306 .A1 1997"]}`.
#[derive(Deserialize, Default)]
struct Classifications {
    #[serde(default, deserialize_with = "lenient")]
    dewey_decimal_class: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient")]
    lc_classifications: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
struct Named {
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
}

#[derive(Deserialize, Default)]
struct Identifiers {
    #[serde(default, deserialize_with = "lenient")]
    isbn_13: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient")]
    isbn_10: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient")]
    lccn: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
struct Cover {
    #[serde(default, deserialize_with = "lenient")]
    small: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    medium: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    large: Option<String>,
}

lenient_objects!(Named, Identifiers, Cover, Classifications);

/// The first non-blank value of a list, trimmed.
fn first(list: Option<Vec<String>>) -> Option<String> {
    list.unwrap_or_default()
        .into_iter()
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

fn names(list: Option<Vec<Named>>) -> Vec<String> {
    list.unwrap_or_default()
        .into_iter()
        .filter_map(|n| n.name.filter(|s| !s.trim().is_empty()))
        .collect()
}

/// The entry as ISBN `isbn`'s book, if its identifiers carry that ISBN.
fn verified_book(isbn: &Isbn13, raw: &RawValue) -> Option<Box<Book>> {
    let entry: Entry = serde_json::from_str(raw.get()).ok()?;
    let ids = entry.identifiers.unwrap_or_default();
    let all = ids.isbn_13.iter().chain(ids.isbn_10.iter()).flatten();
    let classes = entry.classifications.unwrap_or_default();
    if !matches(isbn, all.map(String::as_str)) {
        return None;
    }
    let list = |v: Vec<String>| {
        (!v.is_empty())
            .then(|| serde_json::to_string(&v).ok())
            .flatten()
    };
    let cover = entry.cover.unwrap_or_default();
    Some(Box::new(Book {
        isbn13: isbn.as_str().to_string(),
        isbn10: isbn.isbn10(),
        volume_id: entry.key,
        title: entry.title,
        subtitle: entry.subtitle,
        authors: list(names(entry.authors)),
        publisher: names(entry.publishers).into_iter().next(),
        published_year: entry.publish_date.as_deref().and_then(published_year),
        published_date: entry.publish_date,
        description: None,
        page_count: entry.number_of_pages,
        categories: list(names(entry.subjects)),
        language: None,
        average_rating: None,
        ratings_count: None,
        thumbnail: cover.medium.or(cover.large).or(cover.small),
        // LoC's segment marks (`813/.4`) dropped, as the catalogues' own 082 is read.
        ddc: first(classes.dewey_decimal_class).map(|d| d.replace('/', "")),
        lcc: first(classes.lc_classifications),
        lccn: first(ids.lccn),
        attribution: None,
        raw_json: raw.get().to_string(),
    }))
}

/// The outcome table: what a status and body mean for each ISBN asked. Pure.
pub fn classify(status: u16, body: &[u8], isbns: &[Isbn13]) -> Answer {
    let text = || {
        let b = String::from_utf8_lossy(&body[..body.len().min(200)]);
        let title = b
            .split("<title>")
            .nth(1)
            .and_then(|t| t.split("</title>").next())
            .map(str::trim)
            .filter(|t| !t.is_empty());
        match title {
            Some(t) => format!("HTTP {status} from Open Library: {t}"),
            None => format!("HTTP {status} from Open Library"),
        }
    };
    match status {
        200 => {}
        429 => {
            return Answer::Failed(Outcome::RateLimited {
                retry_after: Some(RATE_LIMITED_DELAY),
            });
        }
        403 => {
            return Answer::Failed(Outcome::ApiRejected {
                kind: Rejection::Blocked,
                message: text(),
            });
        }
        408 | 500..=599 => {
            return Answer::Failed(Outcome::Transient {
                error: text(),
                retry_after: None,
            });
        }
        422 => {
            let detail = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Answer::Failed(Outcome::Permanent {
                error: format!("HTTP 422 from Open Library (bad parameters): {detail}"),
            });
        }
        _ => return Answer::Failed(Outcome::Permanent { error: text() }),
    }
    // One entry's invalid UTF-8 (a bad byte in an old record's title) must not cost the other
    // entries of the batch: such a body is read lossily, the bad bytes as U+FFFD.
    let lossy;
    let body = match std::str::from_utf8(body) {
        Ok(_) => body,
        Err(_) => {
            lossy = String::from_utf8_lossy(body).into_owned();
            lossy.as_bytes()
        }
    };
    let entries: HashMap<&str, &RawValue> = match serde_json::from_slice(body) {
        Ok(e) => e,
        Err(e) => {
            return Answer::Failed(Outcome::Transient {
                error: format!(
                    "malformed JSON in a 200 answer from Open Library ({} bytes): {e}",
                    body.len()
                ),
                retry_after: None,
            });
        }
    };
    // `{}` for several keys may be a swallowed server error: no verdict for any of them.
    if entries.is_empty() && isbns.len() > 1 {
        return Answer::Items(vec![None; isbns.len()]);
    }
    Answer::Items(
        isbns
            .iter()
            .map(|isbn| {
                let key = format!("ISBN:{isbn}");
                Some(match entries.get(key.as_str()) {
                    Some(raw) => match verified_book(isbn, raw) {
                        Some(book) => Outcome::Found(book),
                        None => Outcome::NotFound { items: 1 },
                    },
                    None => Outcome::NotFound { items: 0 },
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isbns(list: &[&str]) -> Vec<Isbn13> {
        list.iter().map(|s| s.parse().expect("valid")).collect()
    }

    /// The real capture of the facts sheet: an ISBN-13 key, an edition storing only the ISBN-10.
    const CIEN: &str = r#"{"ISBN:9788437604947": {"publishers": [{"name": "C\u00e1tedra"}], "pagination": "550 p. :", "identifiers": {"openlibrary": ["OL20654427M"], "isbn_10": ["843760494X"], "librarything": ["5864"], "goodreads": ["789385"]}, "title": "Cien a\u00f1os de soledad", "url": "https://openlibrary.org/books/OL20654427M/Cien_a\u00f1os_de_soledad", "number_of_pages": 550, "subjects": [{"url": "https://openlibrary.org/subjects/fiction", "name": "Fiction"}], "key": "/books/OL20654427M", "authors": [{"url": "https://openlibrary.org/authors/OL4586796A/Gabriel_Garcia_Marquez", "name": "Gabriel Garcia Marquez"}], "publish_date": "2004", "cover": {"small": "s.jpg", "medium": "m.jpg", "large": "l.jpg"}}}"#;

    fn found(answer: &Answer) -> Vec<&str> {
        let Answer::Items(items) = answer else {
            return vec!["failed"];
        };
        items
            .iter()
            .map(|i| match i {
                Some(Outcome::Found(_)) => "found",
                Some(Outcome::NotFound { items: 0 }) => "absent",
                Some(Outcome::NotFound { .. }) => "unverified",
                Some(_) => "other",
                None => "unsure",
            })
            .collect()
    }

    #[test]
    fn invalid_utf8_in_one_entry_costs_no_other_entry() {
        let asked = isbns(&["9788437604947", "9780306406157"]);
        let mut body = CIEN
            .strip_suffix('}')
            .expect("an object")
            .as_bytes()
            .to_vec();
        body.extend_from_slice(br#", "ISBN:9780306406157": {"title": "T"#);
        body.push(0xff);
        body.extend_from_slice(br#"", "identifiers": {"isbn_13": ["9780306406157"]}}}"#);
        assert!(std::str::from_utf8(&body).is_err());
        let answer = classify(200, &body, &asked);
        assert_eq!(found(&answer), ["found", "found"]);
        let Answer::Items(items) = answer else {
            unreachable!()
        };
        let Some(Outcome::Found(book)) = &items[1] else {
            unreachable!()
        };
        assert_eq!(book.title.as_deref(), Some("T\u{fffd}"));
    }

    #[test]
    fn entries_are_read_by_the_key_sent_and_verified() {
        let asked = isbns(&["9788437604947", "9780306406157"]);
        let answer = classify(200, CIEN.as_bytes(), &asked);
        assert_eq!(found(&answer), ["found", "absent"]);
        let Answer::Items(items) = answer else {
            panic!()
        };
        let Some(Outcome::Found(book)) = &items[0] else {
            panic!()
        };
        assert_eq!(book.title.as_deref(), Some("Cien años de soledad"));
        assert_eq!(
            book.authors.as_deref(),
            Some(r#"["Gabriel Garcia Marquez"]"#)
        );
        assert_eq!(book.publisher.as_deref(), Some("Cátedra"));
        assert_eq!(book.published_year, Some(2004));
        assert_eq!(book.page_count, Some(550));
        assert_eq!(book.categories.as_deref(), Some(r#"["Fiction"]"#));
        assert_eq!(book.thumbnail.as_deref(), Some("m.jpg"));
        assert_eq!(book.volume_id.as_deref(), Some("/books/OL20654427M"));
        assert!(book.raw_json.contains("librarything"));
    }

    #[test]
    fn classifications_fill_ddc_lcc_and_lccn() {
        // Tom Sawyer's entry, as Open Library writes the lists (OL1017798M).
        let body = CIEN.replace(
            r#""goodreads": ["789385"]}"#,
            r#""goodreads": ["789385"], "lccn": ["96008561"]}, "classifications": {"dewey_decimal_class": ["813/.4"], "lc_classifications": ["PS1306 .A1 1997", ""]}"#,
        );
        let raw: Box<RawValue> =
            serde_json::from_str(&body["{\"ISBN:9788437604947\": ".len()..body.len() - 1])
                .expect("entry");
        let book = verified_book(&isbns(&["9788437604947"])[0], &raw).expect("verified");
        assert_eq!(book.ddc.as_deref(), Some("813.4"));
        assert_eq!(book.lcc.as_deref(), Some("PS1306 .A1 1997"));
        assert_eq!(book.lccn.as_deref(), Some("96008561"));
    }

    #[test]
    fn an_entry_without_the_isbn_is_not_that_book() {
        let body = CIEN.replace("843760494X", "0306406152");
        let asked = isbns(&["9788437604947"]);
        assert_eq!(
            found(&classify(200, body.as_bytes(), &asked)),
            ["unverified"]
        );
        // A key we did not send is never read.
        let other = CIEN.replace("ISBN:9788437604947", "ISBN:843760494X");
        assert_eq!(found(&classify(200, other.as_bytes(), &asked)), ["absent"]);
    }

    #[test]
    fn an_empty_answer_is_a_verdict_only_for_one_key() {
        assert_eq!(
            found(&classify(200, b"{}", &isbns(&["9780306406157"]))),
            ["absent"]
        );
        let two = isbns(&["9780306406157", "9788437604947"]);
        assert_eq!(found(&classify(200, b"{}", &two)), ["unsure", "unsure"]);
    }

    #[test]
    fn the_outcome_table() {
        let one = isbns(&["9780306406157"]);
        let failed = |status: u16, body: &str| match classify(status, body.as_bytes(), &one) {
            Answer::Failed(o) => o,
            other => panic!("{status}: {other:?}"),
        };
        let too_many = r#"{"status": 429, "message": "Too Many Requests. Consider using https://openlibrary.org/developers/dumps."}"#;
        assert_eq!(
            failed(429, too_many),
            Outcome::RateLimited {
                retry_after: Some(RATE_LIMITED_DELAY)
            }
        );
        let html403 = "<html><head><title>403 Forbidden</title></head><body><center>nginx/1.30.1</center></body></html>";
        assert!(matches!(
            failed(403, html403),
            Outcome::ApiRejected { kind: Rejection::Blocked, message } if message.contains("403 Forbidden")
        ));
        for status in [500, 502, 503, 504, 408] {
            assert!(
                matches!(
                    failed(status, "<html><title>Hmm...</title></html>"),
                    Outcome::Transient { .. }
                ),
                "{status}"
            );
        }
        let detail = r#"{"detail": [{"type": "missing", "loc": ["query", "bibkeys"], "msg": "Field required"}]}"#;
        assert!(
            matches!(failed(422, detail), Outcome::Permanent { error } if error.contains("Field required"))
        );
        assert!(matches!(failed(414, "too long"), Outcome::Permanent { .. }));
        // Truncated JSON, and the JavaScript answer of a request without format=json.
        assert!(matches!(
            failed(200, r#"{"ISBN:97803064"#),
            Outcome::Transient { .. }
        ));
        assert!(matches!(
            failed(200, "var _OLBookInfo = {};"),
            Outcome::Transient { .. }
        ));
    }

    #[test]
    fn the_user_agent_names_a_contact_when_there_is_one() {
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(user_agent(None), format!("isbn-crawler/{v}"));
        assert_eq!(
            user_agent(Some("me@example.org")),
            format!("isbn-crawler/{v} (+mailto:me@example.org)")
        );
        assert_eq!(
            user_agent(Some("https://example.org/me")),
            format!("isbn-crawler/{v} (+https://example.org/me)")
        );
    }
}
