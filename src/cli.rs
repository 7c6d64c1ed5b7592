/*!
The command line: clap types, defaults and environment variables. No behaviour lives here.
*/

use crate::store::Location;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::domain::{ProviderId, Routes};
use crate::input::Format;

#[derive(Debug, Parser)]
#[command(
    name = "isbn-crawler",
    version,
    // A later `--rate 2/s` wins over an earlier one (handy in scripts and aliases).
    args_override_self = true,
    about = "Turn lists of ISBNs into a SQLite database of Google Books and Open Library metadata.",
    long_about = "Turn lists of ISBNs into a SQLite database of Google Books and Open Library \
        metadata.\n\n\
        `load` queues ISBNs from lists, tables, spreadsheets, app exports and MARC records, \
        `crawl` asks each source under its rate limit (and Google's daily budget), and can be \
        stopped and resumed at any time; `report` draws the result. The Google API key comes \
        from GOOGLE_BOOKS_API_KEY (environment or .env), never from a flag."
)]
pub struct Cli {
    /// The database: a SQLite file (a path or `sqlite:PATH`), or PostgreSQL
    /// (`postgres://user[:password]@host:port/dbname`, the password also from PGPASSWORD).
    /// Created and migrated on first use.
    #[arg(
        long,
        global = true,
        env = "ISBN_CRAWLER_DB",
        hide_env_values = true,
        default_value = "data/books.db"
    )]
    pub db: Location,
    /// No progress output; only results and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// How long to wait for another process's write lock on the database before giving up.
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration)]
    pub busy_timeout: Duration,
    /// Let `-o`/`--report` write through a symbolic link: the file it points to is replaced,
    /// never the link.
    #[arg(long, global = true)]
    pub force: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read ISBN lists (text, any delimited table, spreadsheets, MARC, free text with
    /// --format scan, or - for stdin) and queue every valid ISBN as a job.
    Load(LoadArgs),
    /// Show the job table by state, what is due, and rejected lines by reason.
    Status(StatusArgs),
    /// Ask each provider for every pending lookup; resumes where any earlier run stopped.
    Crawl(CrawlArgs),
    /// `load` then `crawl`, with the options of both.
    Run(RunArgs),
    /// The whole flow offline: a built-in fake Google Books on 127.0.0.1, the bundled sample,
    /// and a database of its own (data/demo.db, made afresh). Needs no key.
    Demo(DemoArgs),
    /// One book and its job, by any form of its ISBN that `load` accepts.
    Show(ShowArgs),
    /// Jobs and their books as CSV, JSON Lines or JSON (streamed; written atomically).
    Export(ExportArgs),
    /// Rejected input lines, grouped by reason; `--format csv` lists every one for fixing.
    Rejects(RejectsArgs),
    /// Move jobs of some states back to `pending` with fresh attempts.
    Requeue(RequeueArgs),
    /// One self-contained HTML page showing the crawl at a glance (written atomically).
    Report(ReportArgs),
}

#[derive(Debug, Args, Clone)]
pub struct ReportArgs {
    /// Where the page goes.
    #[arg(long, short, value_name = "FILE", default_value = "data/report.html")]
    pub output: PathBuf,
}

#[derive(Debug, Args, Clone)]
pub struct ShowArgs {
    /// The ISBN, in any accepted form (978-0-439-02348-1, 0439023483, ISBN: ...).
    pub isbn: String,
    /// Print everything as JSON, including the raw item Google sent.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value_t = crate::export::Format::Csv)]
    pub format: crate::export::Format,
    /// Write here (atomically: a temporary file renamed at the end) instead of stdout (`-`).
    /// Never the database or an input; a symlink only with --force.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Job states to export, comma-separated.
    #[arg(long, default_value = "done", value_parser = parse_states)]
    pub state: States,
    /// Columns, comma-separated (default: all but raw_json).
    #[arg(long, value_parser = parse_columns)]
    pub columns: Option<Columns>,
    /// CSV: write text cells as stored, even one a spreadsheet would run as a formula (by
    /// default `=`, `+`, `-`, `@`, tab or CR at the start gets a leading `'`).
    #[arg(long)]
    pub raw_cells: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RejectsFormat {
    /// Counts per reason with the first examples.
    Table,
    /// Every rejected line: source, line, raw, reason.
    Csv,
}

#[derive(Debug, Args, Clone)]
pub struct RejectsArgs {
    #[arg(long, value_enum, default_value_t = RejectsFormat::Table)]
    pub format: RejectsFormat,
    /// Write here (atomically) instead of stdout (`-`); never the database.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// CSV: write lines as read, even one a spreadsheet would run as a formula.
    #[arg(long)]
    pub raw_cells: bool,
}

#[derive(Debug, Args, Clone)]
pub struct RequeueArgs {
    /// States to requeue, comma-separated: done, not_found, failed.
    #[arg(long, required = true, value_parser = parse_requeue_states)]
    pub state: States,
    /// Only jobs last changed longer ago than this (e.g. 30d).
    #[arg(long, value_parser = parse_duration)]
    pub older_than: Option<Duration>,
    /// Only jobs whose last error contains this text (e.g. 503).
    #[arg(long, value_name = "TEXT")]
    pub error: Option<String>,
    /// Only these providers' lookups, comma-separated (default: every provider).
    #[arg(long, value_parser = parse_providers)]
    pub provider: Option<Providers>,
}

/// A comma-separated list of job states.
#[derive(Debug, Clone, PartialEq)]
pub struct States(pub Vec<crate::store::JobState>);

/// A comma-separated list of export columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Columns(pub Vec<crate::export::Column>);

pub fn parse_states(s: &str) -> Result<States, String> {
    let states = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            crate::store::JobState::parse(p).ok_or_else(|| {
                format!("unknown state {p:?}; known: pending, in_progress, done, not_found, failed")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if states.is_empty() {
        return Err("no state named".into());
    }
    Ok(States(states))
}

fn parse_requeue_states(s: &str) -> Result<States, String> {
    use crate::store::JobState;
    let states = parse_states(s)?;
    match states
        .0
        .iter()
        .find(|st| matches!(st, JobState::Pending | JobState::InProgress))
    {
        Some(st) => Err(format!(
            "{} jobs cannot be requeued (only done, not_found, failed)",
            st.as_str()
        )),
        None => Ok(states),
    }
}

fn parse_columns(s: &str) -> Result<Columns, String> {
    crate::export::Column::parse_list(s).map(Columns)
}

#[derive(Debug, Args, Clone)]
pub struct LoadArgs {
    /// Files to read; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// The table column holding ISBNs: a header name, or a number (1 = first) for a table
    /// without a header (default: known ISBN header names, else the column of ISBN values).
    #[arg(long, value_name = "NAME")]
    pub column: Option<String>,
    /// Input format (default: decided from the content).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// The spreadsheet sheet to read (default: the first).
    #[arg(long, value_name = "NAME")]
    pub sheet: Option<String>,
    /// The text encoding, as any WHATWG label: utf-8, utf-16le, windows-1252, latin2, ...
    /// (default: detected; the load report says what).
    #[arg(long, value_name = "LABEL", value_parser = parse_encoding)]
    pub encoding: Option<&'static encoding_rs::Encoding>,
}

fn parse_encoding(label: &str) -> Result<&'static encoding_rs::Encoding, String> {
    crate::input::encoding_by_label(label).ok_or_else(|| {
        format!("unknown encoding {label:?}; try utf-8, utf-16le, utf-16be, windows-1252, latin2")
    })
}

#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    /// Print JSON (see the README for its shape).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct CrawlArgs {
    /// Requests allowed: N/s, N/min, or `unlimited`.
    #[arg(long, default_value = "1/s", value_parser = parse_rate)]
    pub rate: Rate,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Requests allowed per quota day (midnight to midnight Pacific), retries included,
    /// counted in the database across runs.
    #[arg(long, value_name = "N")]
    pub daily_budget: Option<u64>,
    /// When the quota is spent, sleep until it resets and go on instead of exiting.
    #[arg(long)]
    pub wait_for_quota: bool,
    /// While waiting for the quota, probe this often (e.g. 15m, 30s).
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub quota_probe_interval: Duration,
    /// Attempts per job before it is `failed` (transient errors only).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// First retry delay; it doubles per attempt, with full jitter.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub backoff_base: Duration,
    /// Longest retry delay.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub backoff_max: Duration,
    /// Two-letter country code sent with each request (Google refuses some requests without).
    #[arg(long, default_value = "US", value_parser = parse_country)]
    pub country: String,
    /// Base URL of the API (a test server, a proxy).
    #[arg(long, env = "GOOGLE_BOOKS_API_URL", hide_env_values = true, default_value = crate::providers::google::DEFAULT_API_URL)]
    pub api_url: String,
    /// Total time allowed for one request.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Time allowed to connect.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// ISBNs asked per Google request (`isbn:A OR isbn:B ...`): `auto` adapts between 1 and
    /// 40 to how complete the answers come back; a number fixes it (1 = one ISBN per request).
    /// Every returned item is verified; ISBNs a batch misses are asked again (in a batch of
    /// misses, then alone) before they can be `not_found`.
    #[arg(long, default_value = "auto", value_parser = parse_batch)]
    pub batch: Batch,
    /// How long a claimed job stays leased without a heartbeat before another run may take it.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub lease: Duration,
    /// Sources to ask, comma-separated, in order of precedence for merged fields: google,
    /// openlibrary, dnb, bnf, loc, k10plus; `national` is dnb,bnf,loc.
    #[arg(long, default_value = "google,openlibrary", value_parser = parse_providers)]
    pub providers: Providers,
    /// Which ISBNs a provider is asked about, by ISBN-13 prefix: `dnb=9783,97912`, or
    /// `k10plus=all` (repeatable; default: each catalogue its country's registration groups,
    /// google and openlibrary all).
    #[arg(long = "route", value_name = "NAME=PREFIXES", value_parser = parse_route)]
    pub routes: Vec<(ProviderId, Routes)>,
    /// ISBNs per national-library request (`index=A or index=B ...`), 1-25.
    #[arg(long, default_value_t = crate::providers::sru::DEFAULT_BATCH as u32,
          value_parser = clap::value_parser!(u32).range(1..=25))]
    pub sru_batch: u32,
    /// A national library's rate, `dnb=2/s` (repeatable; default 1/s each, at most 5/s).
    #[arg(long = "sru-rate", value_name = "NAME=RATE", value_parser = parse_sru_rate)]
    pub sru_rates: Vec<(ProviderId, Rate)>,
    /// A national library's base URL, `dnb=http://mirror/sru` (repeatable; env
    /// `ISBN_CRAWLER_SRU_URL_<NAME>`, e.g. `ISBN_CRAWLER_SRU_URL_DNB`).
    #[arg(long = "sru-url", value_name = "NAME=URL", value_parser = parse_sru_url)]
    pub sru_urls: Vec<(ProviderId, String)>,
    /// `all`: ask every provider for every ISBN; `missing`: ask a later provider only for the
    /// ISBNs every earlier one did not find (saves Google's quota).
    #[arg(long, value_enum, default_value_t = Fill::All)]
    pub fill: Fill,
    /// Base URL of Open Library (a mirror, a test server).
    #[arg(long, env = "OPEN_LIBRARY_API_URL", hide_env_values = true, default_value = crate::providers::open_library::DEFAULT_URL)]
    pub openlibrary_url: String,
    /// ISBNs per Open Library request (1-50).
    #[arg(long, default_value_t = crate::providers::open_library::DEFAULT_BATCH as u32,
          value_parser = clap::value_parser!(u32).range(1..=50))]
    pub openlibrary_batch: u32,
    /// Open Library requests allowed (at most 3/s, and 1/s without ISBN_CRAWLER_CONTACT).
    #[arg(long, default_value = "1/s", value_parser = parse_rate)]
    pub openlibrary_rate: Rate,
    /// Rewrite this HTML report every 30 s during the crawl and at its end (an open tab
    /// follows the crawl).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Open Library requests in flight at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub openlibrary_concurrency: u32,
}

/// `--batch`: `auto` (`None`) or a fixed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch(pub Option<u32>);

pub fn parse_batch(s: &str) -> Result<Batch, String> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(Batch(None));
    }
    match s.trim().parse::<u32>() {
        Ok(n @ 1..=40) => Ok(Batch(Some(n))),
        _ => Err(format!("{s:?}: expected auto or a number from 1 to 40")),
    }
}

/// One provider's lane as the command line sets it. Each provider's flags are declared above
/// (clap needs them at compile time); this is the one place that says whose they are.
#[derive(Debug, Clone)]
pub struct LaneArgs {
    pub url: String,
    /// Requests per second; `None` is unlimited.
    pub rate: Option<f64>,
    pub concurrency: usize,
    /// ISBNs per request; `None` adapts.
    pub batch: Option<usize>,
    pub daily_budget: Option<u64>,
}

impl CrawlArgs {
    /// `id`'s lane; `env_url` is where the environment points a catalogue
    /// (`ISBN_CRAWLER_SRU_URL_<NAME>`), which `--sru-url` overrides.
    pub fn lane_args(&self, id: ProviderId, env_url: Option<String>) -> LaneArgs {
        use crate::providers::{google, open_library, sru};
        if id == google::ID {
            return LaneArgs {
                url: self.api_url.clone(),
                rate: self.rate.0,
                concurrency: self.concurrency as usize,
                batch: self.batch.0.map(|n| n as usize),
                daily_budget: self.daily_budget,
            };
        }
        if id == open_library::ID {
            return LaneArgs {
                url: self.openlibrary_url.clone(),
                rate: self.openlibrary_rate.0,
                concurrency: self.openlibrary_concurrency as usize,
                batch: Some(self.openlibrary_batch as usize),
                daily_budget: None,
            };
        }
        let profile = sru::profile_of(id);
        let url = self.sru_urls.iter().rev().find(|(p, _)| *p == id);
        let rate = self.sru_rates.iter().rev().find(|(p, _)| *p == id);
        LaneArgs {
            url: url
                .map(|(_, u)| u.clone())
                .or(env_url)
                .or_else(|| profile.map(|p| p.base_url.to_string()))
                .unwrap_or_default(),
            rate: rate.map_or(profile.map(|p| p.rate), |(_, r)| r.0),
            // One request in flight per catalogue, as their notes ask.
            concurrency: 1,
            batch: Some(self.sru_batch as usize),
            daily_budget: None,
        }
    }

    /// The ISBNs `id` is asked about: the last `--route` naming it, else its spec's default.
    pub fn routes_of(&self, id: ProviderId) -> Routes {
        match self.routes.iter().rev().find(|(p, _)| *p == id) {
            Some((_, r)) => r.clone(),
            None => {
                crate::providers::registry::default_routes(crate::providers::registry::spec(id))
            }
        }
    }
}

fn parse_route(s: &str) -> Result<(ProviderId, Routes), String> {
    crate::providers::registry::parse_route(s).map_err(|e| e.to_string())
}

/// `NAME=VALUE` where NAME is a national library.
fn catalogue_pair<'a>(s: &'a str, flag: &str) -> Result<(ProviderId, &'a str), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{flag} wants NAME=VALUE, as in dnb=..."))?;
    let id = crate::providers::registry::parse(name.trim())
        .filter(|id| crate::providers::sru::profile_of(*id).is_some())
        .ok_or_else(|| {
            format!(
                "{flag}: {:?} is not a national library; they are dnb, bnf, loc, k10plus",
                crate::terminal::safe(name.trim())
            )
        })?;
    Ok((id, value.trim()))
}

fn parse_sru_rate(s: &str) -> Result<(ProviderId, Rate), String> {
    let (id, rate) = catalogue_pair(s, "--sru-rate")?;
    Ok((id, parse_rate(rate)?))
}

fn parse_sru_url(s: &str) -> Result<(ProviderId, String), String> {
    let (id, url) = catalogue_pair(s, "--sru-url")?;
    Ok((id, url.to_string()))
}

/// Whether later providers are asked for every ISBN or only for the ones not yet found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fill {
    All,
    Missing,
}

/// A comma-separated list of providers, in order of precedence.
#[derive(Debug, Clone, PartialEq)]
pub struct Providers(pub Vec<ProviderId>);

pub fn parse_providers(s: &str) -> Result<Providers, String> {
    use crate::providers::{registry, sru};
    let mut list = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ids: Vec<ProviderId> = if p == "national" {
            sru::profile::NATIONAL
                .iter()
                .filter_map(|n| registry::parse(n))
                .collect()
        } else {
            let id = registry::parse(p).ok_or_else(|| {
                format!(
                    "unknown provider {:?}; known: {}, and national (dnb,bnf,loc)",
                    crate::terminal::safe(p),
                    registry::names()
                )
            })?;
            vec![id]
        };
        for id in ids {
            if !list.contains(&id) {
                list.push(id);
            }
        }
    }
    if list.is_empty() {
        return Err("no provider named".into());
    }
    Ok(Providers(list))
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub crawl: CrawlArgs,
}

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Where the demo database goes (made afresh each time).
    #[arg(long, default_value = "data/demo.db")]
    pub demo_db: PathBuf,
}

/// Requests per second; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(pub Option<f64>);

pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("unlimited") {
        return Ok(Rate(None));
    }
    let (n, unit) = s.split_once('/').unwrap_or((s, "s"));
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: expected N/s, N/min or unlimited"))?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        other => return Err(format!("{s:?}: unknown unit {other:?} (use s, min or h)")),
    };
    if n == 0.0 {
        // Zero could mean "none" or "no limit"; neither is guessed.
        return Err(format!(
            "{s:?}: a rate of 0 asks nothing; write a positive rate, or unlimited for no limit"
        ));
    }
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("{s:?}: the rate must be positive"));
    }
    Ok(Rate(Some(n / per)))
}

/// `250ms`, `2s`, `5m`, `1h`, `30d`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 500ms, 2s, 5m, 1h or 30d"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        other => return Err(format!("{s:?}: unknown unit {other:?}")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_country(s: &str) -> Result<String, String> {
    if s.len() == 2 && s.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(s.to_ascii_uppercase())
    } else {
        Err(format!(
            "{s:?}: expected a two-letter country code like US or GB"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations() {
        assert_eq!(parse_rate("2/s"), Ok(Rate(Some(2.0))));
        assert_eq!(parse_rate("120/min"), Ok(Rate(Some(2.0))));
        assert_eq!(parse_rate("5"), Ok(Rate(Some(5.0))));
        assert_eq!(parse_rate("unlimited"), Ok(Rate(None)));
        assert!(parse_rate("-1/s").is_err());
        for zero in ["0", "0/s", "0.0/min"] {
            let e = parse_rate(zero).expect_err("zero is refused");
            assert!(e.contains("unlimited for no limit"), "{e}");
        }
        assert!(parse_rate("1/fortnight").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn national_libraries_on_the_command_line() {
        let names = |s: &str| -> Vec<&str> {
            parse_providers(s)
                .expect("providers")
                .0
                .iter()
                .map(|p| p.as_str())
                .collect()
        };
        assert_eq!(names("national"), ["dnb", "bnf", "loc"]);
        assert_eq!(
            names("openlibrary,national,google,dnb"),
            ["openlibrary", "dnb", "bnf", "loc", "google"]
        );
        let e = parse_providers("kb").expect_err("unknown");
        assert!(e.contains("k10plus") && e.contains("national"), "{e}");
        let cli = Cli::try_parse_from([
            "isbn-crawler",
            "crawl",
            "--providers",
            "dnb,bnf",
            "--sru-rate",
            "dnb=2/s",
            "--sru-url",
            "bnf=http://mirror/sru",
            "--route",
            "dnb=9783,97912",
            "--route",
            "dnb=all",
            "--sru-batch",
            "25",
        ])
        .expect("parses");
        let Command::Crawl(args) = cli.command else {
            panic!("crawl")
        };
        let (dnb, bnf) = (args.providers.0[0], args.providers.0[1]);
        let lane = args.lane_args(dnb, Some("http://env/sru".into()));
        assert_eq!(
            (lane.rate, lane.concurrency, lane.batch),
            (Some(2.0), 1, Some(25))
        );
        assert_eq!(
            lane.url, "http://env/sru",
            "the environment, where no flag names it"
        );
        let lane = args.lane_args(bnf, Some("http://env/sru".into()));
        assert_eq!(
            (lane.url.as_str(), lane.rate),
            ("http://mirror/sru", Some(1.0))
        );
        assert_eq!(args.routes_of(dnb), Routes::All, "the last --route wins");
        assert_eq!(
            args.routes_of(bnf),
            Routes::Prefixes(vec!["9782".into(), "97910".into()])
        );
        for bad in [
            &["--sru-batch", "26"][..],
            &["--sru-rate", "google=1/s"],
            &["--sru-url", "dnb"],
            &["--route", "dnb=3"],
        ] {
            let mut argv = vec!["isbn-crawler", "crawl"];
            argv.extend_from_slice(bad);
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?} accepted");
        }
    }
}
