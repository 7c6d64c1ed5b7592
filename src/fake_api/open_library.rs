/*!
The Open Library half of the fake: `/api/books` and `/api/books.json`, as
`shared/docs/open-library-api.md` describes the real one.

Bibkeys are split on commas, trimmed, empties dropped; each entry is keyed by the key exactly
as sent; unknown keys are left out; nothing known is `{}`; empty fields are omitted; without
`format=json` the answer is `var _OLBookInfo = ...;`; JSON is written the way Python's
`json.dumps` writes it (`", "` and `": "`, non-ASCII as `\uXXXX`). Failures a test can script:
429 with its JSON body and no `Retry-After`, 403 nginx HTML, 502 offline page, 504 HTML, a
whole batch answered `{}`, 422, resets, truncated bodies and stalls.

Its coverage differs from the Google half on purpose: it does not know
[`OpenLibraryConfig::unknown`], knows books the Google half does not, stores only the ISBN-10 of
some editions, and never has a description or a language (as `jscmd=data` never does).
*/

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use super::{Answer, State, next_random, pick, title_for};
use crate::isbn::Isbn13;

#[derive(Debug, Clone, PartialEq)]
pub enum OpenLibraryFault {
    /// 429 `{"status": 429, "message": "Too Many Requests. ..."}`, no Retry-After.
    RateLimited,
    /// 403 nginx HTML (a blocked User-Agent).
    Blocked,
    /// 502 "Open Library is temporarily offline." HTML.
    Offline,
    /// 504 gateway time-out HTML.
    GatewayTimeout,
    /// 200 `{}` for the whole batch (a swallowed server error).
    EmptyBatch,
    /// 422 FastAPI validation error.
    Unprocessable,
    Reset,
    /// A 200 whose JSON stops half-way.
    Truncated,
    Stall(Duration),
    /// 302 Found to this URL.
    Redirect(String),
    /// Any status and body, as given (bytes, so a test can send invalid UTF-8).
    Raw(u16, std::sync::Arc<Vec<u8>>),
}

#[derive(Debug, Clone, Default)]
pub struct OpenLibraryConfig {
    /// ISBN-13s Open Library does not know.
    pub unknown: HashSet<String>,
    /// ISBN-13s whose entry is another edition (its identifiers carry another ISBN).
    pub wrong_edition: HashSet<String>,
    /// Faults served to the next requests, in order; then it answers normally.
    pub scripted: VecDeque<OpenLibraryFault>,
    /// A fault served to every request.
    pub always: Option<OpenLibraryFault>,
    /// Random faults: 503/504 HTML (`unavailable`), resets, truncated bodies, stalls.
    pub random: super::FaultRates,
    /// The share of multi-key requests answered `{}` whole.
    pub empty_batch_rate: f64,
}

const TOO_MANY: &str = r#"{"status": 429, "message": "Too Many Requests. Consider using https://openlibrary.org/developers/dumps."}"#;
const FORBIDDEN: &str = "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx/1.30.1</center>\r\n</body>\r\n</html>\r\n";
const OFFLINE: &str = "<!DOCTYPE html>\n<html><head><title>Hmm...</title></head><body><p>Open Library is temporarily offline.</p></body></html>\n";
const GATEWAY: &str = "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n";
const UNPROCESSABLE: &str = r#"{"detail": [{"type": "literal_error", "loc": ["query", "jscmd"], "msg": "Input should be 'viewapi', 'data' or 'details'", "input": "nope"}]}"#;

fn http(status: u16, body: &str) -> Answer {
    Answer::Http {
        status,
        body: body.to_string(),
        retry_after: None,
    }
}

fn fault(f: &OpenLibraryFault, keys: &[String], catalogue: &Catalogue) -> Answer {
    match f {
        OpenLibraryFault::RateLimited => http(429, TOO_MANY),
        OpenLibraryFault::Blocked => http(403, FORBIDDEN),
        OpenLibraryFault::Offline => http(502, OFFLINE),
        OpenLibraryFault::GatewayTimeout => http(504, GATEWAY),
        OpenLibraryFault::EmptyBatch => http(200, "{}"),
        OpenLibraryFault::Unprocessable => http(422, UNPROCESSABLE),
        OpenLibraryFault::Reset => Answer::Reset,
        OpenLibraryFault::Stall(d) => Answer::Stall(*d),
        OpenLibraryFault::Redirect(to) => Answer::Redirect(to.clone()),
        OpenLibraryFault::Raw(status, body) => Answer::Bytes(*status, body.clone()),
        OpenLibraryFault::Truncated => {
            let full = body(keys, catalogue);
            http(200, &full[..full.len() / 2])
        }
    }
}

/// What the answer is made from: the config and the shared catalogue of real books.
struct Catalogue<'a> {
    config: &'a OpenLibraryConfig,
    real: &'a HashMap<String, (String, Vec<String>)>,
}

pub(super) fn decide(st: &mut State, target: &str, params: &HashMap<String, String>) -> Answer {
    let Some(bibkeys) = params.get("bibkeys") else {
        return http(
            422,
            r#"{"detail": [{"type": "missing", "loc": ["query", "bibkeys"], "msg": "Field required", "input": null}]}"#,
        );
    };
    if params
        .get("jscmd")
        .is_some_and(|j| !matches!(j.as_str(), "data" | "viewapi" | "details"))
    {
        return http(422, UNPROCESSABLE);
    }
    let keys: Vec<String> = bibkeys
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    let asked: Vec<String> = keys.iter().filter_map(|k| isbn_of(k)).collect();
    for isbn in &asked {
        *st.ol_requests_per_isbn.entry(isbn.clone()).or_default() += 1;
    }
    st.ol_requests.push(keys.len());

    // A scripted fault is used up only when no fault is served always; after taking it, the
    // config is only read (no copy per request).
    let scripted = match st.config.openlibrary.always {
        Some(_) => None,
        None => st.config.openlibrary.scripted.pop_front(),
    };
    let State { config, rng, .. } = st;
    let catalogue = Catalogue {
        config: &config.openlibrary,
        real: &config.catalogue,
    };
    if let Some(f) = &config.openlibrary.always {
        return fault(f, &keys, &catalogue);
    }
    if let Some(f) = scripted {
        return fault(&f, &keys, &catalogue);
    }
    let r = &config.openlibrary.random;
    let table = [
        (r.unavailable / 2.0, OpenLibraryFault::Offline),
        (r.unavailable / 2.0, OpenLibraryFault::GatewayTimeout),
        (r.reset, OpenLibraryFault::Reset),
        (r.truncated, OpenLibraryFault::Truncated),
        (r.stall, OpenLibraryFault::Stall(r.stall_for)),
    ];
    if let Some(f) = pick(rng, table) {
        return fault(&f, &keys, &catalogue);
    }
    let empty_rate = config.openlibrary.empty_batch_rate;
    if keys.len() > 1 && empty_rate > 0.0 && next_random(rng) < empty_rate {
        return http(200, "{}");
    }
    let json = body(&keys, &catalogue);
    let json_format = params.get("format").map(String::as_str) == Some("json")
        || target.starts_with("/api/books.json");
    if json_format {
        http(200, &json)
    } else {
        http(200, &format!("var _OLBookInfo = {json};"))
    }
}

/// The canonical ISBN-13 a bibkey names (`ISBN:...`, any case, hyphens dropped; bare ISBNs too).
fn isbn_of(key: &str) -> Option<String> {
    let value = match key.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("isbn:") => &key[5..],
        _ => key,
    };
    let digits: String = value.chars().filter(|c| *c != '-').collect();
    // Like the real index: an upper-case X only, no spaces.
    if digits.contains(' ') || digits.contains('x') {
        return None;
    }
    digits.parse::<Isbn13>().ok().map(|i| i.to_string())
}

/// The answer to `keys`: one entry per known key, keyed as sent.
fn body(keys: &[String], catalogue: &Catalogue) -> String {
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    for key in keys {
        let Some(isbn) = isbn_of(key) else { continue };
        if catalogue.config.unknown.contains(&isbn) || !seen.insert(key.clone()) {
            continue;
        }
        entries.push((key.clone(), entry(&isbn, catalogue)));
    }
    // Key order is not to be relied on: the real service does not keep it.
    entries.reverse();
    let object: serde_json::Map<String, serde_json::Value> = entries.into_iter().collect();
    python_json(&serde_json::Value::Object(object))
}

/// A `jscmd=data` entry for `isbn13`, with only the fields it has.
fn entry(isbn13: &str, catalogue: &Catalogue) -> serde_json::Value {
    let stored = if catalogue.config.wrong_edition.contains(isbn13) {
        "9780306406157".to_string()
    } else {
        isbn13.to_string()
    };
    let parsed: Option<Isbn13> = stored.parse().ok();
    let ten = parsed.and_then(|i| i.isbn10());
    let digits: u64 = isbn13.parse().unwrap_or(0);
    let mut identifiers = serde_json::Map::new();
    identifiers.insert(
        "openlibrary".into(),
        serde_json::json!([format!("OL{}M", digits % 1_000_000)]),
    );
    // Some older editions store only their ISBN-10.
    let only_ten = digits.is_multiple_of(3) && ten.is_some();
    if !only_ten {
        identifiers.insert("isbn_13".into(), serde_json::json!([stored]));
    }
    if let Some(t) = &ten {
        identifiers.insert("isbn_10".into(), serde_json::json!([t]));
    }
    identifiers.insert(
        "goodreads".into(),
        serde_json::json!([format!("{}", digits % 9_999_999)]),
    );
    let (title, authors) = match catalogue.real.get(isbn13) {
        Some((t, a)) => (t.clone(), a.clone()),
        None => (
            format!("{} (Open Library)", title_for(isbn13)),
            vec![format!("Author {}", digits % 97)],
        ),
    };
    let key = format!("/books/OL{}M", digits % 1_000_000);
    let mut e = serde_json::json!({
        "url": format!("https://openlibrary.org{key}/slug"),
        "key": key,
        "title": title,
        "authors": authors.iter().map(|a| serde_json::json!({"url": "https://openlibrary.org/authors/OL1A/x", "name": a})).collect::<Vec<_>>(),
        "number_of_pages": 90 + digits % 400,
        "identifiers": identifiers,
        "publishers": [{"name": format!("Press {}", digits % 11)}],
        "publish_date": format!("{}", 1940 + digits % 80),
        "subjects": [{"name": "Fiction", "url": "https://openlibrary.org/subjects/fiction"}, {"name": "Protected DAISY", "url": "https://openlibrary.org/subjects/protected_daisy"}],
    });
    if digits.is_multiple_of(2) {
        e["cover"] = serde_json::json!({
            "small": format!("https://covers.openlibrary.org/b/id/{}-S.jpg", digits % 100_000),
            "medium": format!("https://covers.openlibrary.org/b/id/{}-M.jpg", digits % 100_000),
            "large": format!("https://covers.openlibrary.org/b/id/{}-L.jpg", digits % 100_000),
        });
    }
    e
}

/// JSON as Python's `json.dumps` writes it: `", "` and `": "` between items, `\uXXXX` for
/// everything outside ASCII.
fn python_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", python_string(k), python_json(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        serde_json::Value::Array(list) => {
            let items: Vec<String> = list.iter().map(python_json).collect();
            format!("[{}]", items.join(", "))
        }
        serde_json::Value::String(s) => python_string(s),
        other => other.to_string(),
    }
}

fn python_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_spacing_and_escapes() {
        let v = serde_json::json!({"a": ["Cien años", 1], "b": {"c": "x\"y"}});
        assert_eq!(
            python_json(&v),
            r#"{"a": ["Cien a\u00f1os", 1], "b": {"c": "x\"y"}}"#
        );
    }

    #[test]
    fn keys_come_back_as_sent_and_unknown_ones_are_left_out() {
        let config = OpenLibraryConfig {
            unknown: ["9780306406157".to_string()].into(),
            ..OpenLibraryConfig::default()
        };
        let real = HashMap::new();
        let c = Catalogue {
            config: &config,
            real: &real,
        };
        let keys = vec![
            "ISBN:978-0-439-02348-1".to_string(),
            "ISBN:9780306406157".to_string(),
            "isbn:0441013597".to_string(),
        ];
        let parsed: serde_json::Value = serde_json::from_str(&body(&keys, &c)).expect("json");
        let obj = parsed.as_object().expect("object");
        assert_eq!(obj.len(), 2);
        assert!(obj.contains_key("ISBN:978-0-439-02348-1"));
        assert!(obj.contains_key("isbn:0441013597"));
        assert_eq!(body(&["ISBN:9780306406157".to_string()], &c), "{}");
    }
}
