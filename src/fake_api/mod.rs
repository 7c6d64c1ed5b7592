/*!
An in-process fake of the Google Books API and Open Library's Books API on 127.0.0.1, for the
tests, the benchmark and `demo`. The Open Library half is in `open_library.rs`.

It speaks the contract of `shared/docs/google-books-api.md`: the same JSON for volumes (cut
down to what a `fields` selector names, as Google's partial response does), gzip-compressed
when the request accepts gzip and its User-Agent says gzip (as Google does), the same error
bodies (daily quota in both forms, per-minute limit, bad key, unknownLocation, backend
errors), and the failures a real network has (resets, truncated bodies, stalls).
It is a small hand-written HTTP/1.1 server rather than a framework so that a test can make it
misbehave at the byte level: reset a connection with RST, cut a body short, or never answer.

Every knob lives in [`FakeConfig`]; counters in [`FakeApi`] let a test check what was asked.
Synthetic books are deterministic: the title of ISBN X is `title_for(X)`.
*/

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod open_library;
mod sru;

pub use open_library::{OpenLibraryConfig, OpenLibraryFault};
pub use sru::SruConfig;

/// One way to answer a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 503 backendFailed.
    Unavailable,
    /// 500 backendError.
    ServerError,
    /// Close the connection with a TCP reset before answering.
    Reset,
    /// A 200 whose JSON stops half-way.
    Truncated,
    /// Answer only after this long (longer than the client's timeout, to test it).
    Stall(Duration),
    /// 429 per-minute rate limit, with an optional Retry-After in seconds.
    RateLimited(Option<u64>),
    /// 429 RESOURCE_EXHAUSTED with quota_limit defaultPerDayPerProject.
    DailyQuota,
    /// 403 dailyLimitExceeded (the older form).
    DailyQuotaOld,
    /// 400 API_KEY_INVALID.
    BadKey,
    /// 403 accessNotConfigured.
    Forbidden,
    /// 403 unknownLocation.
    UnknownLocation,
    /// A volume whose identifiers are another ISBN's.
    WrongBook,
    /// `totalItems: 0`.
    NoMatch,
    /// Any status and body, as given (huge, nested, malformed: whatever a test needs).
    Raw(u16, std::sync::Arc<String>),
    /// 302 Found to this URL (a captive portal, a moved API).
    Redirect(String),
}

/// Random faults, each a probability in 0..=1, drawn from a seeded generator.
#[derive(Debug, Clone, Default)]
pub struct FaultRates {
    pub unavailable: f64,
    pub reset: f64,
    pub truncated: f64,
    pub stall: f64,
    pub stall_for: Duration,
    pub seed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct FakeConfig {
    /// Delay before every answer.
    pub latency: Duration,
    /// When set, a request with another key (or none) gets 400 API_KEY_INVALID.
    pub api_key: Option<String>,
    /// ISBN-13s the catalogue does not know (`totalItems: 0`).
    pub unknown: HashSet<String>,
    /// ISBN-13s for which a different book comes back.
    pub wrong_book: HashSet<String>,
    /// Faults served, in order, to the first requests for an ISBN-13; then it answers normally.
    pub scripted: HashMap<String, VecDeque<Fault>>,
    /// A fault served to every request (a permanent outage, a revoked key).
    pub always: Option<Fault>,
    /// Requests above this many per second (fixed one-second windows) get a 429.
    pub per_second_limit: Option<u32>,
    /// Requests a fake day allows before the daily-quota 429; [`FakeApi::new_day`] resets it.
    pub daily_quota: Option<u64>,
    /// When set, a fake quota day lasts this long, then the quota resets by itself.
    pub day_length: Option<Duration>,
    pub random: FaultRates,
    /// ISBN-13s an OR query never returns (they come back only when asked alone).
    pub batch_misses: HashSet<String>,
    /// A book every OR query returns although nobody asked for it.
    pub batch_extra: Option<String>,
    /// Like Google's relevance search: the share of known books an OR answer leaves out (each
    /// answer draws anew), and the share of OR answers that bring one unrequested book.
    pub or_leave_out: f64,
    pub or_extra_rate: f64,
    /// A Google that stopped honouring OR: an OR query is answered for its first term only.
    pub or_first_term_only: bool,
    /// Real books (ISBN-13 → title and authors) served instead of synthetic ones, by both
    /// halves (the demo's).
    pub catalogue: HashMap<String, (String, Vec<String>)>,
    /// The Open Library half.
    pub openlibrary: OpenLibraryConfig,
    /// The SRU half: the national libraries' catalogues.
    pub sru: SruConfig,
}

#[derive(Debug, Default)]
struct State {
    config: FakeConfig,
    /// SRU requests, every catalogue together.
    sru_requests: u64,
    /// Per catalogue: its requests, and every ISBN-13 asked of it (once per request).
    sru_by_catalogue: HashMap<String, (u64, Vec<String>)>,
    /// SRU requests in flight now and at most; each one's User-Agent and whether it asked gzip.
    sru_in_flight: u32,
    sru_max_in_flight: u32,
    sru_clients: Vec<(String, bool)>,
    /// Open Library: requests per ISBN-13 asked, and keys per request.
    ol_requests_per_isbn: HashMap<String, u32>,
    ol_requests: Vec<usize>,
    requests_per_isbn: HashMap<String, u32>,
    /// ISBNs asked per request, in arrival order.
    requests: Vec<usize>,
    /// When each ISBN was last asked for (wall clock, to compare with the database's times).
    last_request_at: HashMap<String, std::time::SystemTime>,
    /// When each request arrived, in order.
    arrivals: Vec<Instant>,
    window: (u64, u32),
    quota_used: u64,
    day_started: Option<Instant>,
    rng: u64,
    /// Google answers sent gzip-compressed.
    gzipped: u64,
}

/// A running fake; dropping it stops the server.
pub struct FakeApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    total: Arc<AtomicU64>,
    server: tokio::task::JoinHandle<()>,
    started: Instant,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeConfig {
    /// The `--fill missing` recipe's population over `list`: Open Library lacks two books in
    /// five, and Google half of those (every fifth). Returns the config with how many books
    /// Open Library lacks and how many of those Google lacks too.
    pub fn lacking_in_both(mut self, list: &[String]) -> (FakeConfig, usize, usize) {
        self.openlibrary.unknown = list
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 5 < 2)
            .map(|(_, isbn)| isbn.clone())
            .collect();
        self.unknown = list.iter().step_by(5).cloned().collect();
        let (misses, unknown) = (self.openlibrary.unknown.len(), self.unknown.len());
        (self, misses, unknown)
    }
}

/// The synthetic title of a book, with the characters exports must survive.
pub fn title_for(isbn13: &str) -> String {
    format!("Title of {isbn13}, \"quoted\" — été")
}

impl FakeApi {
    /// Starts the fake on 127.0.0.1 on a free port.
    pub async fn start(config: FakeConfig) -> std::io::Result<FakeApi> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let rng = config.random.seed.max(1);
        let state = Arc::new(Mutex::new(State {
            config,
            rng,
            ..State::default()
        }));
        let total = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let server = tokio::spawn({
            let state = state.clone();
            let total = total.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(stream, state.clone(), total.clone(), started));
                }
            }
        });
        Ok(FakeApi {
            addr,
            state,
            total,
            server,
            started,
        })
    }

    /// The base URL to pass as `--api-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests received so far (every one, whatever the answer).
    pub fn total_requests(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    /// Google answers sent gzip-compressed (those to requests that asked for it).
    pub fn gzipped_answers(&self) -> u64 {
        self.state().gzipped
    }

    /// Requests received for one ISBN-13.
    pub fn requests_for(&self, isbn13: &str) -> u32 {
        self.state()
            .requests_per_isbn
            .get(isbn13)
            .copied()
            .unwrap_or(0)
    }

    pub fn requests_per_isbn(&self) -> HashMap<String, u32> {
        self.state().requests_per_isbn.clone()
    }

    /// When each ISBN was last asked for, by the wall clock.
    pub fn last_request_at(&self) -> HashMap<String, std::time::SystemTime> {
        self.state().last_request_at.clone()
    }

    /// How many ISBNs each request asked for, in arrival order.
    pub fn isbns_per_request(&self) -> Vec<usize> {
        self.state().requests.clone()
    }

    /// When the fake started (arrivals are offsets from it).
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// Arrival times of all requests, as offsets from the fake's start.
    pub fn arrivals(&self) -> Vec<Duration> {
        self.state()
            .arrivals
            .iter()
            .map(|t| t.duration_since(self.started))
            .collect()
    }

    /// Open Library requests received, and how many keys each carried, in arrival order.
    pub fn openlibrary_requests(&self) -> Vec<usize> {
        self.state().ol_requests.clone()
    }

    /// SRU requests received, every catalogue together.
    pub fn sru_requests(&self) -> u64 {
        self.state().sru_requests
    }

    /// The most SRU requests in flight at once (every catalogue together).
    pub fn sru_max_in_flight(&self) -> u32 {
        self.state().sru_max_in_flight
    }

    /// Each SRU request's User-Agent (lower-cased) and whether it asked for gzip.
    pub fn sru_clients(&self) -> Vec<(String, bool)> {
        self.state().sru_clients.clone()
    }

    /// The requests catalogue `name` had, and the ISBN-13s they asked (once per request).
    pub fn sru_asked(&self, name: &str) -> (u64, Vec<String>) {
        self.state()
            .sru_by_catalogue
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Open Library requests that asked for one ISBN-13 (in either form).
    pub fn openlibrary_requests_for(&self, isbn13: &str) -> u32 {
        self.state()
            .ol_requests_per_isbn
            .get(isbn13)
            .copied()
            .unwrap_or(0)
    }

    pub fn openlibrary_requests_per_isbn(&self) -> HashMap<String, u32> {
        self.state().ol_requests_per_isbn.clone()
    }

    /// Google requests received (the Open Library half's are not counted here).
    pub fn google_requests(&self) -> usize {
        self.state().requests.len()
    }

    /// Starts a new fake quota day.
    pub fn new_day(&self) {
        self.state().quota_used = 0;
    }

    /// Changes the configuration of the running fake.
    pub fn configure(&self, f: impl FnOnce(&mut FakeConfig)) {
        f(&mut self.state().config);
    }
}

async fn serve(
    mut stream: TcpStream,
    state: Arc<Mutex<State>>,
    total: Arc<AtomicU64>,
    t0: Instant,
) {
    let mut buf = Vec::with_capacity(2048);
    loop {
        // Read one request head (GET has no body).
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 64 * 1024 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        total.fetch_add(1, Ordering::SeqCst);
        let target = head.split(' ').nth(1).unwrap_or("/").to_string();
        let wants_gzip = target.starts_with("/books/v1/") && asks_for_gzip(&head);
        // A catalogue's request is logged (who asked, gzip or not) and counted in flight
        // until its answer is written or dropped.
        let _in_flight = target
            .starts_with("/sru/")
            .then(|| SruInFlight::enter(&state, &head));
        let (answer, latency) = decide(&state, &target, t0);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let written = match answer {
            Answer::Reset => {
                // Linger 0 makes close() send RST at once (it cannot block with a zero time).
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                return;
            }
            Answer::Stall(d) => {
                tokio::time::sleep(d).await;
                return;
            }
            Answer::Redirect(to) => {
                let response =
                    format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n");
                stream.write_all(response.as_bytes()).await
            }
            Answer::Bytes(status, body) => {
                let head = response_head(status, body.len(), false, None, "text/plain");
                stream
                    .write_all(&[head.as_bytes(), &body[..]].concat())
                    .await
            }
            Answer::Http {
                status,
                body,
                retry_after,
            } => {
                let kind = if body.starts_with('<') {
                    "text/html"
                } else {
                    "application/json; charset=UTF-8"
                };
                let compressed = wants_gzip.then(|| gzipped(body.as_bytes())).flatten();
                let gzip = compressed.is_some();
                if gzip {
                    state.lock().unwrap_or_else(|p| p.into_inner()).gzipped += 1;
                }
                let body = compressed.unwrap_or_else(|| body.into_bytes());
                let head = response_head(status, body.len(), gzip, retry_after, kind);
                let mut bytes = head.into_bytes();
                bytes.extend_from_slice(&body);
                stream.write_all(&bytes).await
            }
        };
        if written.is_err() {
            return;
        }
    }
}

/// A response's status line and headers, through the blank line.
fn response_head(
    status: u16,
    length: usize,
    gzip: bool,
    retry_after: Option<u64>,
    kind: &str,
) -> String {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {kind}\r\nContent-Length: {length}\r\n",
        reason_phrase(status),
    );
    if gzip {
        head.push_str("Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
    }
    if let Some(s) = retry_after {
        head.push_str(&format!("Retry-After: {s}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// The value of header `name` in a request head (lower-cased).
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_ascii_lowercase())
    })
}

/// Google compresses only for a request that accepts gzip and whose User-Agent contains
/// "gzip" (`shared/docs/google-books-api.md`).
fn asks_for_gzip(head: &str) -> bool {
    header(head, "accept-encoding").is_some_and(|v| v.contains("gzip"))
        && header(head, "user-agent").is_some_and(|v| v.contains("gzip"))
}

/// An SRU request in flight: counted while it lives.
struct SruInFlight<'a>(&'a Mutex<State>);

impl<'a> SruInFlight<'a> {
    fn enter(state: &'a Mutex<State>, head: &str) -> SruInFlight<'a> {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        st.sru_in_flight += 1;
        st.sru_max_in_flight = st.sru_max_in_flight.max(st.sru_in_flight);
        let agent = header(head, "user-agent").unwrap_or_default();
        let gzip = header(head, "accept-encoding").is_some_and(|v| v.contains("gzip"));
        st.sru_clients.push((agent, gzip));
        SruInFlight(state)
    }
}

impl Drop for SruInFlight<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        st.sru_in_flight = st.sru_in_flight.saturating_sub(1);
    }
}

/// `body` gzip-compressed (`None` only if the encoder fails, which writing to memory does not).
fn gzipped(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        _ => "Service Unavailable",
    }
}

pub(crate) enum Answer {
    Http {
        status: u16,
        body: String,
        retry_after: Option<u64>,
    },
    /// A redirect (302) to `location`.
    Redirect(String),
    /// A status and a body of any bytes (invalid UTF-8 included).
    Bytes(u16, std::sync::Arc<Vec<u8>>),
    Reset,
    Stall(Duration),
}

/// Splits a query string into decoded pairs.
fn query_pairs(target: &str) -> HashMap<String, String> {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One of `table`'s faults with its probability, or none (the rest of the unit interval).
pub(crate) fn pick<F, const N: usize>(rng: &mut u64, table: [(f64, F); N]) -> Option<F> {
    if table.iter().all(|(p, _)| *p <= 0.0) {
        return None;
    }
    let x = next_random(rng);
    let mut edge = 0.0;
    for (p, fault) in table {
        edge += p;
        if x < edge {
            return Some(fault);
        }
    }
    None
}

pub(crate) fn next_random(rng: &mut u64) -> f64 {
    // xorshift64*: deterministic per seed, good enough to pick faults.
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

fn decide(state: &Mutex<State>, target: &str, t0: Instant) -> (Answer, Duration) {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    st.arrivals.push(now);
    let latency = st.config.latency;
    let params = query_pairs(target);
    if target.starts_with("/api/books") {
        return (open_library::decide(&mut st, target, &params), latency);
    }
    if target.starts_with("/sru/") {
        return (sru::decide(&mut st, target, &params), latency);
    }
    if !target.starts_with("/books/v1/volumes") {
        return (error_answer(404, NOT_FOUND_BODY), latency);
    }
    match volumes(&mut st, &params, now, t0) {
        (answer, true) => (partial_response(answer, params.get("fields")), latency),
        (verbatim, false) => (verbatim, latency),
    }
}

/// `GET /books/v1/volumes`: faults first (key, location, limits, scripted, random), then the
/// catalogue's answer; and whether the fake made it (a `Fault::Raw` body goes out verbatim,
/// not cut down by the partial response).
fn volumes(
    st: &mut State,
    params: &HashMap<String, String>,
    now: Instant,
    t0: Instant,
) -> (Answer, bool) {
    if let Some(expected) = &st.config.api_key
        && params.get("key") != Some(expected)
    {
        return (fault_answer(&Fault::BadKey, ""), true);
    }
    if !params.contains_key("country") {
        return (fault_answer(&Fault::UnknownLocation, ""), true);
    }
    // `isbn:A` or `isbn:A OR isbn:B ...`: every ISBN asked counts as asked.
    let asked: Vec<String> = params
        .get("q")
        .map(|q| {
            q.split(" OR ")
                .map(|term| term.trim().trim_start_matches("isbn:").to_string())
                .collect()
        })
        .unwrap_or_default();
    let wall = std::time::SystemTime::now();
    for one in &asked {
        *st.requests_per_isbn.entry(one.clone()).or_default() += 1;
        st.last_request_at.insert(one.clone(), wall);
    }
    st.requests.push(asked.len());
    // Faults (scripted ones included) belong to the request, keyed by its first ISBN.
    let isbn = asked.first().cloned().unwrap_or_default();

    if let Some(limit) = st.config.per_second_limit {
        let second = now.duration_since(t0).as_secs();
        if st.window.0 != second {
            st.window = (second, 0);
        }
        st.window.1 += 1;
        if st.window.1 > limit {
            return (fault_answer(&Fault::RateLimited(None), &isbn), true);
        }
    }
    if let Some(length) = st.config.day_length {
        let started = *st.day_started.get_or_insert(now);
        if now.duration_since(started) >= length {
            st.day_started = Some(now);
            st.quota_used = 0;
        }
    }
    if let Some(quota) = st.config.daily_quota {
        if st.quota_used >= quota {
            return (fault_answer(&Fault::DailyQuota, &isbn), true);
        }
        st.quota_used += 1;
    }
    if let Some(fault) = st.config.always.clone() {
        let made = !matches!(fault, Fault::Raw(..));
        return (fault_answer(&fault, &isbn), made);
    }
    if let Some(fault) = st
        .config
        .scripted
        .get_mut(&isbn)
        .and_then(|faults| faults.pop_front())
    {
        let made = !matches!(fault, Fault::Raw(..));
        return (fault_answer(&fault, &isbn), made);
    }
    let r = st.config.random.clone();
    let table = [
        (r.unavailable, Fault::Unavailable),
        (r.reset, Fault::Reset),
        (r.truncated, Fault::Truncated),
        (r.stall, Fault::Stall(r.stall_for)),
    ];
    if let Some(fault) = pick(&mut st.rng, table) {
        return (fault_answer(&fault, &isbn), true);
    }
    if asked.len() > 1 {
        if st.config.or_first_term_only {
            let first = std::slice::from_ref(&asked[0]);
            return (batch_answer(&st.config, first, &[], None), true);
        }
        let (leave_out, extra_rate) = (st.config.or_leave_out, st.config.or_extra_rate);
        let left_out: Vec<bool> = asked
            .iter()
            .map(|_| leave_out > 0.0 && next_random(&mut st.rng) < leave_out)
            .collect();
        let extra = (extra_rate > 0.0 && next_random(&mut st.rng) < extra_rate)
            .then(|| crate::isbn::synthetic_in("97899", (next_random(&mut st.rng) * 1e8) as u64))
            .map(|i| i.to_string());
        return (batch_answer(&st.config, &asked, &left_out, extra), true);
    }
    let catalogue = &st.config.catalogue;
    let fault = if st.config.unknown.contains(&isbn) {
        Fault::NoMatch
    } else if st.config.wrong_book.contains(&isbn) {
        Fault::WrongBook
    } else {
        return (
            Answer::Http {
                status: 200,
                body: volumes_body(&[volume_json_from(catalogue, &isbn, &isbn)]),
                retry_after: None,
            },
            true,
        );
    };
    (fault_answer(&fault, &isbn), true)
}

/// Google's partial response: with `fields`, a 200 answer keeps only the fields the selector
/// names (`a,b(c,d/e)`: `b`'s objects, or each object of `b`'s array, keep `c` and `d`'s `e`).
/// Errors are sent whole. A selector the fake cannot read leaves the answer whole.
fn partial_response(answer: Answer, fields: Option<&String>) -> Answer {
    let (
        Some(selector),
        Answer::Http {
            status: 200,
            body,
            retry_after,
        },
    ) = (fields, &answer)
    else {
        return answer;
    };
    let (Some(tree), Ok(mut value)) = (
        Selector::parse(selector),
        serde_json::from_str::<serde_json::Value>(body),
    ) else {
        return answer;
    };
    tree.apply(&mut value);
    Answer::Http {
        status: 200,
        body: value.to_string(),
        retry_after: *retry_after,
    }
}

/// A parsed `fields` selector: each kept name with what to keep inside it (empty: all of it).
#[derive(Debug, Default, PartialEq)]
struct Selector(Vec<(String, Selector)>);

impl Selector {
    fn parse(text: &str) -> Option<Selector> {
        let (tree, rest) = Selector::list(text.as_bytes())?;
        rest.is_empty().then_some(tree)
    }

    /// `item (',' item)*`, up to a `)` or the end.
    fn list(mut s: &[u8]) -> Option<(Selector, &[u8])> {
        let mut items = Vec::new();
        loop {
            let end = s
                .iter()
                .position(|b| matches!(b, b',' | b'(' | b')'))
                .unwrap_or(s.len());
            let path = std::str::from_utf8(&s[..end]).ok()?;
            s = &s[end..];
            let mut inner = Selector::default();
            if let [b'(', rest @ ..] = s {
                let (sub, rest) = Selector::list(rest)?;
                let [b')', rest @ ..] = rest else {
                    return None;
                };
                (inner, s) = (sub, rest);
            }
            // `a/b(c)` is `a(b(c))`.
            let mut names = path.rsplit('/');
            let last = names.next().filter(|n| !n.is_empty())?;
            let mut node = (last.to_string(), inner);
            for name in names {
                (!name.is_empty()).then_some(())?;
                node = (name.to_string(), Selector(vec![node]));
            }
            items.push(node);
            match s {
                [b',', rest @ ..] => s = rest,
                _ => return Some((Selector(items), s)),
            }
        }
    }

    fn apply(&self, value: &mut serde_json::Value) {
        if self.0.is_empty() {
            return;
        }
        match value {
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.apply(v)),
            serde_json::Value::Object(map) => {
                map.retain(|k, _| self.0.iter().any(|(name, _)| name == k));
                for (name, inner) in &self.0 {
                    if let Some(v) = map.get_mut(name) {
                        inner.apply(v);
                    }
                }
            }
            _ => {}
        }
    }
}

/// An OR query answered like Google's relevance search: known books come back except those in
/// `batch_misses` (found only when asked alone) and those `left_out` this time, and
/// `batch_extra` (and `extra`) come back unasked.
fn batch_answer(
    config: &FakeConfig,
    asked: &[String],
    left_out: &[bool],
    extra: Option<String>,
) -> Answer {
    let mut items: Vec<String> = asked
        .iter()
        .enumerate()
        .filter(|(n, _)| !left_out.get(*n).copied().unwrap_or(false))
        .map(|(_, i)| i)
        .filter(|i| !config.unknown.contains(*i) && !config.batch_misses.contains(*i))
        .map(|i| {
            if config.wrong_book.contains(i) {
                volume_json("9780306406157", i)
            } else {
                volume_json_from(&config.catalogue, i, i)
            }
        })
        .collect();
    for extra in config.batch_extra.iter().chain(extra.iter()) {
        items.insert(0, volume_json(extra, extra));
    }
    let body = if items.is_empty() {
        r#"{"kind":"books#volumes","totalItems":0}"#.to_string()
    } else {
        volumes_body(&items)
    };
    error_answer(200, &body)
}

fn error_answer(status: u16, body: &str) -> Answer {
    Answer::Http {
        status,
        body: body.to_string(),
        retry_after: None,
    }
}

fn fault_answer(fault: &Fault, isbn: &str) -> Answer {
    match fault {
        Fault::Unavailable => error_answer(503, BACKEND_FAILED_BODY),
        Fault::ServerError => error_answer(500, BACKEND_ERROR_BODY),
        Fault::Reset => Answer::Reset,
        Fault::Stall(d) => Answer::Stall(*d),
        Fault::Truncated => {
            let full = volumes_body(&[volume_json(isbn, isbn)]);
            error_answer(200, &full[..full.len() / 2])
        }
        Fault::RateLimited(retry_after) => Answer::Http {
            status: 429,
            body: RATE_LIMIT_BODY.to_string(),
            retry_after: *retry_after,
        },
        Fault::DailyQuota => error_answer(429, DAILY_QUOTA_BODY),
        Fault::DailyQuotaOld => error_answer(403, DAILY_LIMIT_OLD_BODY),
        Fault::BadKey => error_answer(400, BAD_KEY_BODY),
        Fault::Forbidden => error_answer(403, ACCESS_NOT_CONFIGURED_BODY),
        Fault::UnknownLocation => error_answer(403, UNKNOWN_LOCATION_BODY),
        Fault::WrongBook => {
            let other = if isbn == "9780306406157" {
                "9780439023481"
            } else {
                "9780306406157"
            };
            error_answer(200, &volumes_body(&[volume_json(other, other)]))
        }
        Fault::NoMatch => error_answer(200, r#"{"kind":"books#volumes","totalItems":0}"#),
        Fault::Raw(status, body) => error_answer(*status, body),
        Fault::Redirect(to) => Answer::Redirect(to.clone()),
    }
}

fn volumes_body(items: &[String]) -> String {
    format!(
        r#"{{"kind":"books#volumes","totalItems":{},"items":[{}]}}"#,
        items.len(),
        items.join(",")
    )
}

fn volume_json(isbn13: &str, id_seed: &str) -> String {
    volume_json_from(&HashMap::new(), isbn13, id_seed)
}

/// A `books#volume` for `isbn13` as the real API sends it (list form), with the catalogue's
/// title and authors when it has the book.
fn volume_json_from(
    catalogue: &HashMap<String, (String, Vec<String>)>,
    isbn13: &str,
    id_seed: &str,
) -> String {
    let isbn10 = isbn13
        .parse::<crate::isbn::Isbn13>()
        .ok()
        .and_then(|i| i.isbn10());
    let mut ids = vec![serde_json::json!({"type": "ISBN_13", "identifier": isbn13})];
    if let Some(ten) = isbn10 {
        ids.push(serde_json::json!({"type": "ISBN_10", "identifier": ten}));
    }
    let digits: u64 = isbn13.parse().unwrap_or(0);
    // Real Google volumes often lack a page count and a cover: some of the catalogue's do.
    let sparse = catalogue.contains_key(isbn13) && digits % 2 == 1;
    let mut volume = serde_json::json!({
        "kind": "books#volume",
        "id": format!("fake{}", &id_seed[id_seed.len().saturating_sub(8)..]),
        "etag": "etag",
        "selfLink": format!("https://www.googleapis.com/books/v1/volumes/fake{isbn13}"),
        "volumeInfo": {
            "title": catalogue.get(isbn13).map_or_else(|| title_for(isbn13), |c| c.0.clone()),
            "subtitle": (!catalogue.contains_key(isbn13)).then_some("A synthetic book"),
            "authors": catalogue.get(isbn13).map_or_else(
                || vec![format!("Author {}", digits % 97), "Second, Author".to_string()],
                |c| c.1.clone()),
            "publisher": format!("Publisher {}", digits % 13),
            "publishedDate": format!("{}-0{}-1{}", 1950 + digits % 70, 1 + digits % 9, digits % 10),
            "description": "<p>A line,\nanother \"quoted\" line, and ünïcödé.</p>",
            "industryIdentifiers": ids,
            "readingModes": {"text": false, "image": false},
            "pageCount": 100 + digits % 500,
            "printType": "BOOK",
            "categories": ["Fiction"],
            "averageRating": 4.5,
            "ratingsCount": 12,
            "maturityRating": "NOT_MATURE",
            "language": "en",
            "imageLinks": {
                "smallThumbnail": "http://books.google.com/books/content?id=x&zoom=5",
                "thumbnail": "http://books.google.com/books/content?id=x&zoom=1"
            },
            "previewLink": "http://books.google.com/books?id=x",
            "infoLink": "http://books.google.com/books?id=x",
            "canonicalVolumeLink": "https://books.google.com/books/about/x.html"
        },
        "saleInfo": {"country": "US", "saleability": "NOT_FOR_SALE", "isEbook": false},
        "accessInfo": {"country": "US", "viewability": "NO_PAGES"},
        "searchInfo": {"textSnippet": "A snippet"}
    });
    if sparse && let Some(info) = volume["volumeInfo"].as_object_mut() {
        info.remove("pageCount");
        info.remove("imageLinks");
    }
    volume.to_string()
}

const NOT_FOUND_BODY: &str = r#"{"error":{"code":404,"message":"Not Found","errors":[{"message":"Not Found","domain":"global","reason":"notFound"}]}}"#;
const BACKEND_FAILED_BODY: &str = r#"{"error":{"code":503,"message":"Service is unavailable.","errors":[{"message":"Service is unavailable.","domain":"global","reason":"backendFailed"}],"status":"UNAVAILABLE"}}"#;
const BACKEND_ERROR_BODY: &str = r#"{"error":{"code":500,"message":"Backend Error","errors":[{"message":"Backend Error","domain":"global","reason":"backendError"}],"status":"INTERNAL"}}"#;
const RATE_LIMIT_BODY: &str = r#"{"error":{"code":429,"message":"Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'books.googleapis.com' for consumer 'project_number:000000000000'.","errors":[{"message":"Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'books.googleapis.com' for consumer 'project_number:000000000000'.","domain":"global","reason":"rateLimitExceeded"}],"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com","metadata":{"quota_limit":"defaultPerMinutePerUser","quota_metric":"books.googleapis.com/default","quota_unit":"1/min/{project}/{user}","service":"books.googleapis.com","consumer":"projects/000000000000","quota_limit_value":"100"}}]}}"#;
const DAILY_QUOTA_BODY: &str = r#"{"error":{"code":429,"message":"Quota exceeded for quota metric 'Queries' and limit 'Queries per day' of service 'books.googleapis.com' for consumer 'project_number:000000000000'.","errors":[{"message":"Quota exceeded for quota metric 'Queries' and limit 'Queries per day' of service 'books.googleapis.com' for consumer 'project_number:000000000000'.","domain":"global","reason":"rateLimitExceeded"}],"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com","metadata":{"quota_limit":"defaultPerDayPerProject","quota_metric":"books.googleapis.com/default","quota_unit":"1/d/{project}","service":"books.googleapis.com","consumer":"projects/000000000000","quota_limit_value":"1000"}}]}}"#;
const DAILY_LIMIT_OLD_BODY: &str = r#"{"error":{"code":403,"message":"Daily Limit Exceeded. The quota will be reset at midnight Pacific Time (PT).","errors":[{"message":"Daily Limit Exceeded. The quota will be reset at midnight Pacific Time (PT).","domain":"usageLimits","reason":"dailyLimitExceeded"}]}}"#;
const BAD_KEY_BODY: &str = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","errors":[{"message":"API key not valid. Please pass a valid API key.","domain":"global","reason":"badRequest"}],"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"books.googleapis.com"}}]}}"#;
const ACCESS_NOT_CONFIGURED_BODY: &str = r#"{"error":{"code":403,"message":"Books API has not been used in project 000000000000 before or it is disabled. Enable it by visiting the API console then retry.","errors":[{"message":"Books API has not been used in project 000000000000 before or it is disabled.","domain":"usageLimits","reason":"accessNotConfigured"}],"status":"PERMISSION_DENIED"}}"#;
const UNKNOWN_LOCATION_BODY: &str = r#"{"error":{"code":403,"message":"Cannot determine user location for geographically restricted operation.","errors":[{"message":"Cannot determine user location for geographically restricted operation.","domain":"global","reason":"unknownLocation"}]}}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_only_for_a_request_that_accepts_it_and_says_so_in_its_user_agent() {
        let head = |lines: &str| format!("GET /books/v1/volumes HTTP/1.1\r\n{lines}\r\n");
        assert!(asks_for_gzip(&head(
            "accept-encoding: gzip, br\r\nUser-Agent: app/1 (gzip)\r\n"
        )));
        assert!(!asks_for_gzip(&head(
            "Accept-Encoding: gzip\r\nUser-Agent: app/1\r\n"
        )));
        assert!(!asks_for_gzip(&head("User-Agent: app/1 (gzip)\r\n")));
        let body = br#"{"items":[]}"#;
        let mut plain = Vec::new();
        let compressed = gzipped(body).expect("compresses");
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&compressed[..]),
            &mut plain,
        )
        .expect("a gzip stream");
        assert_eq!(plain, body);
    }

    #[test]
    fn a_fields_selector_keeps_what_it_names() {
        let selector = Selector::parse("kind,items(id,volumeInfo(title,imageLinks/thumbnail))")
            .expect("parses");
        let mut v = serde_json::json!({
            "kind": "books#volumes", "totalItems": 2,
            "items": [
                {"id": "a", "etag": "e", "saleInfo": {},
                 "volumeInfo": {"title": "T", "pageCount": 3,
                                "imageLinks": {"thumbnail": "t", "smallThumbnail": "s"}}},
                {"id": "b", "volumeInfo": {"subtitle": "S"}}
            ]
        });
        selector.apply(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "kind": "books#volumes",
                "items": [
                    {"id": "a", "volumeInfo": {"title": "T", "imageLinks": {"thumbnail": "t"}}},
                    {"id": "b", "volumeInfo": {}}
                ]
            })
        );
        for bad in ["", "a(", "a)", "a(b))", "a,,b", "/a", "a/"] {
            assert_eq!(Selector::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn errors_are_sent_whole_whatever_the_fields() {
        let fields = "items(id)".to_string();
        let answer = partial_response(error_answer(503, BACKEND_FAILED_BODY), Some(&fields));
        assert!(
            matches!(answer, Answer::Http { status: 503, body, .. } if body == BACKEND_FAILED_BODY)
        );
    }
}
