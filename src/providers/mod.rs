/*!
Providers: the sources of book metadata, side by side (`google.rs`, `open_library.rs`).

Each is one module behind one small interface, [`Provider`]: ask for a group of ISBNs and say,
item by item, what the answer means ([`Answer`], made of [`Outcome`]s). Classifying an HTTP
answer and mapping a record into a [`Book`] are each provider's own pure functions, tested
without a network. The crawl loop acts only on outcomes, so a third source (a national
library's API) is one new file and one [`ProviderId`].

Verification is every provider's duty: an item counts as ISBN X only if its own identifiers
carry X (or X's ISBN-10).
*/

pub mod google;
pub mod open_library;
pub mod registry;
pub mod sru;

use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::domain::Book;
pub use crate::domain::ProviderId;
use crate::isbn::Isbn13;

/// A source as the crawl and the command line see it: what it can do, never its name. Each
/// provider module exports one (`SPEC`; `sru` one per catalogue); [`registry`] lists them.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub id: ProviderId,
    /// The name people read (`Google Books`).
    pub title: &'static str,
    /// Whose quota, refusal or rules a message names (`Google`).
    pub owner: &'static str,
    /// The most ISBNs one request may carry.
    pub max_batch: usize,
    /// Requests spend a daily quota bound to an API key: the lane reserves budget, probes
    /// alone after a quota stop, and its figures make `status`'s ETA.
    pub daily_quota: bool,
    /// The `books` column that keeps this provider's record id (`volume_id`), if any.
    pub record_column: Option<&'static str>,
    /// The environment variable a key comes from, for a provider that needs one.
    pub key_variable: Option<&'static str>,
    /// The rate a lane may use, by the provider's own rules, or why not.
    pub allowed_rate: fn(&RateAsked) -> Result<Option<f64>, String>,
    /// The ISBN-13 prefixes it is asked about unless `--route` says otherwise; empty: every
    /// ISBN (a national library's are its country's registration groups).
    pub prefixes: &'static [&'static str],
    /// Transient failures in a row (503 pages, resets, timeouts, XML cut short) slow the lane
    /// down as a 429 does: a public catalogue failing again and again is often one overloaded.
    pub slow_on_fault: bool,
    /// The producer its licence asks reusers to name (BnF), if it asks.
    pub attribution: Option<&'static str>,
    /// The client of this spec's provider, from provider-neutral settings.
    pub build: fn(&'static Spec, &Settings) -> Built,
}

/// A provider's client, or why it cannot be built.
pub type Built = Result<std::sync::Arc<dyn Provider>, BuildError>;

/// What a lane asks of a provider's rate rules.
#[derive(Debug, Clone)]
pub struct RateAsked<'a> {
    /// Requests per second asked; `None` is unlimited.
    pub asked: Option<f64>,
    /// Whether the user named a contact (`ISBN_CRAWLER_CONTACT`).
    pub contact: bool,
    /// The base URL the lane will ask (a server on this machine is not the real service).
    pub url: &'a str,
}

/// `isbn-crawler/0.1.0 (+mailto:me@example.org)`: the tool, its version and who to ask, for
/// the free services that want to know who is asking.
pub fn user_agent(contact: Option<&str>) -> String {
    let version = concat!("isbn-crawler/", env!("CARGO_PKG_VERSION"));
    match contact.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) if c.contains('@') && !c.contains("://") => format!("{version} (+mailto:{c})"),
        Some(c) => format!("{version} (+{c})"),
        None => version.to_string(),
    }
}

/// Takes the rate as asked: a provider without rules of its own.
pub fn any_rate(r: &RateAsked) -> Result<Option<f64>, String> {
    Ok(r.asked)
}

/// Whether `url` names this machine (a test, a mirror): not the real service, not held to
/// its rules.
pub fn is_local(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]")
}

/// What building any provider's client takes.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub key: Option<secrecy::SecretString>,
    /// An e-mail or URL to name in the User-Agent.
    pub contact: Option<String>,
    /// The country a provider that localises its answers is asked for.
    pub country: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

/// A client that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The settings are wrong (exit 2): a URL that is not http(s).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Client(String),
}

/// What an answer means for the job that asked, and for the crawl.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A verified item: store it.
    Found(Box<Book>),
    /// The API answered, but no item carries the ISBN.
    NotFound { items: usize },
    /// Worth another try later (5xx, timeout, reset, malformed or truncated body).
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Too many requests per minute: slow the crawl down; not the job's fault.
    RateLimited { retry_after: Option<Duration> },
    /// The day's quota is spent: stop until it resets.
    QuotaExhausted { message: String },
    /// The key, the project or the client is refused: no request will work until the user
    /// fixes it.
    ApiRejected { kind: Rejection, message: String },
    /// An answer no retry will change, for this job only.
    Permanent { error: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    BadKey,
    Forbidden,
    UnknownLocation,
    /// Open Library's proxy refuses this client (403): its User-Agent, or its address.
    Blocked,
    /// A library catalogue refuses this client (403).
    CatalogueRefused,
}

impl Rejection {
    /// What the user should do, in one line.
    pub fn advice(self) -> &'static str {
        match self {
            Rejection::BadKey => {
                "the API key is not valid: check GOOGLE_BOOKS_API_KEY (environment or .env)"
            }
            Rejection::Forbidden => {
                "the key is refused: enable the Books API for its project, or lift the key's \
                 IP/referrer restrictions"
            }
            Rejection::UnknownLocation => {
                "Google cannot tell where the request comes from: pass --country with a \
                 two-letter code"
            }
            Rejection::Blocked => {
                "Open Library's proxy refuses this client (403): set ISBN_CRAWLER_CONTACT to an \
                 e-mail or URL so the User-Agent identifies you, slow down, or use its dumps \
                 (https://openlibrary.org/developers/dumps)"
            }
            Rejection::CatalogueRefused => {
                "the catalogue refuses this client (403): set ISBN_CRAWLER_CONTACT so the \
                 User-Agent identifies you, slow it down, or leave it out of --providers"
            }
        }
    }
}

/// Whether any of `identifiers` names `isbn` (as its ISBN-13 or its ISBN-10).
pub fn matches<'a>(isbn: &Isbn13, identifiers: impl IntoIterator<Item = &'a str>) -> bool {
    let ten = isbn.isbn10();
    identifiers.into_iter().any(|id| {
        let id: String = id
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        id == isbn.as_str() || ten.as_deref() == Some(id.as_str())
    })
}

/// The year of a `publishedDate`, leniently: the first run of 3 or 4 digits.
pub fn published_year(date: &str) -> Option<i64> {
    let start = date.find(|c: char| c.is_ascii_digit())?;
    let digits: &str = &date[start..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    match end {
        3 | 4 => digits[..end].parse().ok(),
        _ => None,
    }
}

/// A body larger than this is not an answer to a lookup; reading stops there.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// Reads the body up to [`MAX_BODY`]; a larger one is refused for this job.
pub(crate) async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, Outcome> {
    let mut body =
        Vec::with_capacity(response.content_length().unwrap_or(4096).min(1 << 20) as usize);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(Outcome::Permanent {
                        error: format!("response larger than {} MiB", MAX_BODY >> 20),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(transient(&e)),
        }
    }
}

pub(crate) fn transient(e: &reqwest::Error) -> Outcome {
    Outcome::Transient {
        error: describe(e),
        retry_after: None,
    }
}

/// A reqwest error as one line with its causes, and never its URL (which holds the key).
pub fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else {
        "request failed"
    };
    let mut text = String::from(kind);
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let s = cause.to_string();
        if !text.ends_with(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = cause.source();
    }
    strip_urls(&text)
}

/// Belt and braces: no URL (and so no `key=` parameter) survives into a message.
pub(crate) fn strip_urls(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.contains("://") || word.contains("key=") {
                "<url>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The HTTP client every provider uses: rustls, the provider's User-Agent and timeouts, and
/// gzip where the provider wants it (`Accept-Encoding: gzip`, answers decoded).
pub fn http_client(
    user_agent: &str,
    gzip: bool,
    timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .gzip(gzip)
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        // A redirect is never followed: the URL carries the key, and another host's answer is
        // no verdict on a book. `send` turns a 3xx into a transient error naming its target.
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(60))
        .build()
        .map_err(|e| describe(&e.without_url()))
}

/// Sends `request`; a redirect (which the client never follows) is a transient error that
/// names where it pointed, without the query that could carry a key.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, Outcome> {
    let response = request.send().await.map_err(|e| transient(&e))?;
    let status = response.status();
    if !status.is_redirection() {
        return Ok(response);
    }
    let to = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| "nowhere (no Location)".to_string(), redirect_target);
    Err(Outcome::Transient {
        error: format!("HTTP {} redirect to {to}, not followed", status.as_u16()),
        retry_after: None,
    })
}

/// A redirect's `Location` as a message may show it: host and path, no scheme (so
/// [`strip_urls`] keeps it), no query or fragment, no user name or password.
fn redirect_target(location: &str) -> String {
    let shown = match reqwest::Url::parse(location) {
        Ok(url) => format!(
            "{}{}",
            url.host_str().unwrap_or(""),
            match url.port() {
                Some(p) => format!(":{p}{}", url.path()),
                None => url.path().to_string(),
            }
        ),
        Err(_) => location
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    shown
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

/// `{base}{path}` if `base` is an http(s) URL.
pub fn endpoint(base: &str, path: &str) -> Option<reqwest::Url> {
    reqwest::Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
}

/// What one request for a group of ISBNs brought.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Per requested ISBN (same order): its verdict (`Found` or `NotFound`), or `None` where
    /// this answer is no verdict and the ISBN must be asked again in a smaller request.
    Items(Vec<Option<Outcome>>),
    /// The request failed as a whole; the outcome applies to every ISBN in it.
    Failed(Outcome),
}

impl Answer {
    /// The answer to a request of one ISBN: a verdict, or the request's failure.
    pub fn of_one(outcome: Outcome) -> Answer {
        match outcome {
            o @ (Outcome::Found(_) | Outcome::NotFound { .. }) => Answer::Items(vec![Some(o)]),
            o => Answer::Failed(o),
        }
    }
}

/// A source of book metadata.
pub trait Provider: Send + Sync {
    /// The size of the smaller requests that ISBNs an answer was unsure of are asked again in.
    fn regroup(&self, unsure: usize) -> usize;

    /// Whether an unsure ISBN is rather pooled with other batches' and asked in a batch of
    /// those (a relevance search leaves different books out each time) before it is asked alone.
    fn rebatch_misses(&self) -> bool {
        false
    }

    /// Asks for `isbns` (1 to its [`Spec::max_batch`]) in one request. Never fails: a network
    /// error is an outcome.
    fn lookup<'a>(&'a self, isbns: &'a [Isbn13]) -> BoxFuture<'a, Answer>;
}

/// A field type [`lenient`] reads: the JSON shapes it keeps; every other value is skipped and
/// reads as absent.
pub(crate) trait Shape<'de>: Sized {
    fn from_str(_: &str) -> Option<Self> {
        None
    }
    fn from_int(_: i64) -> Option<Self> {
        None
    }
    fn from_uint(_: u64) -> Option<Self> {
        None
    }
    fn from_float(_: f64) -> Option<Self> {
        None
    }
    fn from_seq<A: serde::de::SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn from_map<A: serde::de::MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(None)
    }
}

/// `deserialize_with` for a [`Shape`]: a field of the wrong type reads as absent instead of
/// failing the whole item. Any JSON value is read once, as it streams by: borrowing a field's
/// text and parsing it again cost a second pass over every book, and a `serde_json::Value`
/// tree before that an allocation per string and array.
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Shape<'de>,
{
    d.deserialize_any(ShapeVisitor(std::marker::PhantomData))
}

struct ShapeVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Shape<'de>> serde::de::Visitor<'de> for ShapeVisitor<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(T::from_int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(T::from_uint(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(T::from_float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(T::from_str(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::from_seq(seq)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::from_map(map)
    }
}

impl Shape<'_> for String {
    fn from_str(v: &str) -> Option<Self> {
        Some(v.to_owned())
    }
}

impl Shape<'_> for i64 {
    fn from_int(v: i64) -> Option<Self> {
        Some(v)
    }
    fn from_uint(v: u64) -> Option<Self> {
        i64::try_from(v).ok()
    }
}

impl Shape<'_> for f64 {
    fn from_int(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_uint(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_float(v: f64) -> Option<Self> {
        Some(v)
    }
}

/// An array whose every element has `T`'s shape; one that does not makes the whole absent.
impl<'de, T: Shape<'de>> Shape<'de> for Vec<T> {
    fn from_seq<A: serde::de::SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        struct Element<T>(Option<T>);
        impl<'de, T: Shape<'de>> serde::Deserialize<'de> for Element<T> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                lenient(d).map(Element)
            }
        }
        let mut out = Some(Vec::new());
        while let Some(Element(e)) = seq.next_element::<Element<T>>()? {
            match (e, &mut out) {
                (Some(e), Some(v)) => v.push(e),
                _ => out = None,
            }
        }
        Ok(out)
    }
}

/// Makes each struct named (its fields all [`lenient`]) a [`Shape`] read from a JSON object.
macro_rules! lenient_objects {
    ($($t:ty),* $(,)?) => {
        $(impl<'de> $crate::providers::Shape<'de> for $t {
            fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
                $crate::providers::object(map)
            }
        })*
    };
}
pub(crate) use lenient_objects;

/// [`Shape::from_map`] for a struct whose fields are all lenient (so reading it cannot fail on
/// a value's type); what [`lenient_objects!`] expands to.
pub(crate) fn object<'de, T, A>(map: A) -> Result<Option<T>, A::Error>
where
    T: serde::Deserialize<'de>,
    A: serde::de::MapAccess<'de>,
{
    T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
}

#[cfg(test)]
mod lenient_tests {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "super::lenient")]
        s: Option<String>,
        #[serde(default, deserialize_with = "super::lenient")]
        n: Option<i64>,
    }

    #[test]
    fn fields_of_the_wrong_type_read_as_absent() {
        let read = |json: &str| -> (Option<String>, Option<i64>) {
            let t: T = serde_json::from_str(json).expect("the item still reads");
            (t.s, t.n)
        };
        assert_eq!(
            read(r#"{"s":"a \"q\" \u00e9","n":3}"#),
            (Some("a \"q\" é".into()), Some(3))
        );
        for odd in [
            "1",
            "2.5",
            "true",
            "null",
            "[\"x\",[1]]",
            "{\"a\":{\"b\":[]}}",
        ] {
            let json = format!(r#"{{"s":{odd},"n":"4","after":"kept"}}"#);
            assert_eq!(read(&json), (None, None), "{odd}");
        }
        assert_eq!(read("{}"), (None, None));
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Numbers {
        #[serde(default, deserialize_with = "super::lenient")]
        int: Option<i64>,
        #[serde(default, deserialize_with = "super::lenient")]
        float: Option<f64>,
        #[serde(default, deserialize_with = "super::lenient")]
        strings: Option<Vec<String>>,
    }

    #[test]
    fn numbers_and_lists_keep_only_their_own_shape() {
        let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        for (value, int, float, list) in [
            ("3", Some(3), Some(3.0), None),
            ("-3", Some(-3), Some(-3.0), None),
            (
                "18446744073709551615",
                None,
                Some(18446744073709551615.0),
                None,
            ),
            ("2.5", None, Some(2.5), None),
            ("1e3", None, Some(1000.0), None),
            ("\"4\"", None, None, None),
            ("true", None, None, None),
            ("null", None, None, None),
            ("[]", None, None, strings(&[])),
            ("[\"a\",\"b \\u00e9\"]", None, None, strings(&["a", "b é"])),
            ("[\"a\",1]", None, None, None),
            ("[\"a\",[\"b\"]]", None, None, None),
            ("{\"a\":{\"b\":[]}}", None, None, None),
        ] {
            let json =
                format!(r#"{{"int":{value},"float":{value},"strings":{value},"after":"kept"}}"#);
            let n: Numbers = serde_json::from_str(&json).expect("the item still reads");
            assert_eq!((n.int, n.float, n.strings), (int, float, list), "{value}");
        }
    }

    #[derive(serde::Deserialize, Debug, PartialEq, Default)]
    struct Link {
        #[serde(default, deserialize_with = "super::lenient")]
        href: Option<String>,
    }

    super::lenient_objects!(Link);

    #[test]
    fn objects_read_only_as_objects() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "super::lenient")]
            link: Option<Link>,
            #[serde(default, deserialize_with = "super::lenient")]
            links: Option<Vec<Link>>,
        }
        let read = |json: &str| -> (Option<Link>, Option<Vec<Link>>) {
            let t: T = serde_json::from_str(json).expect("the item still reads");
            (t.link, t.links)
        };
        let link = |h: Option<&str>| Link {
            href: h.map(str::to_string),
        };
        assert_eq!(
            read(r#"{"link":{"href":"a","x":[1]},"links":[{"href":"b"},{"href":2}]}"#),
            (
                Some(link(Some("a"))),
                Some(vec![link(Some("b")), link(None)])
            )
        );
        assert_eq!(
            read(r#"{"link":["a"],"links":[{"href":"b"},"c"],"after":1}"#),
            (None, None)
        );
        assert_eq!(read(r#"{"link":"a","links":{"href":"b"}}"#), (None, None));
    }
}
