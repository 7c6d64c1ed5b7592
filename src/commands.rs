/*!
Command glue: each subcommand opens what it needs, calls the module that does the work, and
prints what the user reads. Nothing here is reused by other modules.
*/

use std::fmt::Write as _;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::TryStreamExt;
use secrecy::SecretString;
use std::io::Write as _;

use crate::cli::{
    Cli, Command, CrawlArgs, DemoArgs, ExportArgs, Fill, LoadArgs, RejectsArgs, RejectsFormat,
    RequeueArgs, ShowArgs, StatusArgs,
};
use crate::crawl::{
    self, Control, CrawlOptions, Lane, StopReason, Summary, quota, retry::RetryPolicy,
};
use crate::exit::ExitCode;
use crate::export::Column;
use crate::fake_api::{FakeApi, FakeConfig, Fault};
use crate::input::InputOptions;
use crate::load::{self, SourceReport};
use crate::progress::{Reporter, human_duration};
use crate::providers::google::{self, Client, ClientConfig};
use crate::providers::{ProviderId, open_library};
use crate::store::{JobState, Record, RequeueFilter, SqliteStore, Status, Store};
use crate::{UsageError, now_ms};

/// The bundled sample, so `demo` works from any directory.
pub const SAMPLE: &str = include_str!("../data/sample-isbns.txt");

/// How long requests in flight may take to finish after Ctrl-C.
const GRACE: Duration = Duration::from_secs(5);

/// What the command line does not carry: the key (never a flag, argv is public) and whether
/// this process owns its signals.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub api_key: Option<SecretString>,
    /// An e-mail or URL for Open Library's User-Agent (ISBN_CRAWLER_CONTACT).
    pub contact: Option<String>,
    /// Install Ctrl-C/SIGTERM handlers (the binary does; tests driving `run` need not).
    pub handle_signals: bool,
    /// Signals from a caller that drives `run` itself.
    pub control: Control,
}

impl Environment {
    /// The key from GOOGLE_BOOKS_API_KEY (`main` has loaded `.env` into the environment).
    pub fn from_process() -> Environment {
        Environment {
            api_key: std::env::var("GOOGLE_BOOKS_API_KEY")
                .ok()
                .filter(|k| !k.trim().is_empty())
                .map(|k| SecretString::from(k.trim().to_string())),
            contact: std::env::var("ISBN_CRAWLER_CONTACT")
                .ok()
                .filter(|c| !c.trim().is_empty()),
            handle_signals: true,
            control: Control::default(),
        }
    }
}

pub async fn run(cli: Cli, env: Environment) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Load(args) => {
            let store = open_db(&cli, true).await?;
            load_files(&store, args, cli.quiet).await
        }
        Command::Status(args) => status(&cli, args).await,
        Command::Crawl(args) => {
            let lanes = lanes_for(args, &env)?;
            let store = open_db(&cli, true).await?;
            crawl_and_report(&store, args, lanes, &env, &cli, "crawl").await
        }
        Command::Run(args) => {
            let lanes = lanes_for(&args.crawl, &env)?;
            let store = open_db(&cli, true).await?;
            let loaded = load_files(&store, &args.load, cli.quiet).await?;
            if loaded == ExitCode::NoInput {
                return Ok(loaded);
            }
            crawl_and_report(&store, &args.crawl, lanes, &env, &cli, "run").await
        }
        Command::Demo(args) => demo(args, &env, cli.quiet).await,
        Command::Show(args) => show(&cli, args).await,
        Command::Export(args) => export(&cli, args).await,
        Command::Rejects(args) => rejects(&cli, args).await,
        Command::Requeue(args) => requeue(&cli, args).await,
        Command::Report(args) => {
            let store = open_db(&cli, false).await?;
            write_report(&store, &cli.db.display().to_string(), &args.output, false).await?;
            if !cli.quiet {
                println!("report written to {}", args.output.display());
            }
            Ok(ExitCode::Success)
        }
    }
}

/// The database of `--db`; `create` makes (and migrates) it when missing.
async fn open_db(cli: &Cli, create: bool) -> anyhow::Result<SqliteStore> {
    Ok(SqliteStore::open_with(&cli.db, create, cli.busy_timeout).await?)
}

fn require_key(env: &Environment) -> anyhow::Result<SecretString> {
    env.api_key.clone().ok_or_else(|| {
        UsageError(
            "GOOGLE_BOOKS_API_KEY is not set: Google refuses keyless requests. Put it in the \
             environment or in .env (see .env.example), or leave Google out with \
             `--providers openlibrary` (Open Library needs no key); `isbn-crawler demo` needs \
             neither"
                .into(),
        )
        .into()
    })
}

/// One lane per provider named, in their order, with each provider's client and limits.
fn lanes_for(args: &CrawlArgs, env: &Environment) -> anyhow::Result<Vec<Lane>> {
    let mut lanes = Vec::new();
    for id in &args.providers.0 {
        lanes.push(match id {
            ProviderId::Google => Lane {
                provider: Arc::new(client_for(args, Some(require_key(env)?))?),
                rate: args.rate.0,
                concurrency: args.concurrency as usize,
                batch: args.batch.0.map(|n| n as usize),
                daily_budget: args.daily_budget,
            },
            ProviderId::OpenLibrary => {
                let client = open_library::Client::new(open_library::ClientConfig {
                    base_url: args.openlibrary_url.clone(),
                    contact: env.contact.clone(),
                    timeout: args.timeout,
                    connect_timeout: args.connect_timeout,
                    batch: args.openlibrary_batch as usize,
                })
                .map_err(|e| UsageError(e.to_string()))?;
                Lane {
                    provider: Arc::new(client),
                    rate: openlibrary_rate(args, env)?,
                    concurrency: args.openlibrary_concurrency as usize,
                    batch: Some(args.openlibrary_batch as usize),
                    daily_budget: None,
                }
            }
        });
    }
    Ok(lanes)
}

/// `--openlibrary-rate`, within what Open Library allows: 3/s for a client that names a contact,
/// 1/s for one that does not. A server on this machine (a test, a mirror) is not Open Library.
fn openlibrary_rate(args: &CrawlArgs, env: &Environment) -> anyhow::Result<Option<f64>> {
    let local = reqwest::Url::parse(&args.openlibrary_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]");
    let asked = args.openlibrary_rate.0;
    if local {
        return Ok(asked);
    }
    if asked.is_none_or(|r| r > open_library::MAX_RATE) {
        return Err(UsageError(
            "--openlibrary-rate: Open Library allows at most 3 requests a second (1/s without \
             ISBN_CRAWLER_CONTACT); for bulk use see its dumps, https://openlibrary.org/developers/dumps"
                .into(),
        )
        .into());
    }
    if env.contact.is_none() {
        let capped = asked.map(|r| r.min(open_library::ANONYMOUS_RATE));
        if capped != asked {
            tracing::warn!(
                "--openlibrary-rate capped at 1/s: set ISBN_CRAWLER_CONTACT to identify this client"
            );
        }
        return Ok(capped);
    }
    Ok(asked)
}

async fn load_files(store: &SqliteStore, args: &LoadArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let opts = InputOptions {
        format: args.format,
        column: args.column.clone(),
        sheet: args.sheet.clone(),
        encoding: args.encoding,
    };
    let mut reports = Vec::new();
    for file in &args.files {
        let report = load::load_file(store, file, &opts).await?;
        print!("{}", report.render());
        reports.push(report);
    }
    if !quiet {
        if reports.len() > 1 {
            let valid: u64 = reports.iter().map(|r| r.valid).sum();
            let queued: u64 = reports.iter().map(|r| r.queued).sum();
            let rejected: u64 = reports.iter().map(|r| r.rejected_total()).sum();
            println!(
                "total: {queued} new ISBNs queued, {} already known, {rejected} rejected",
                valid - queued
            );
        }
        println!(
            "jobs are in {}; `isbn-crawler crawl` fetches them",
            store.path().display()
        );
    }
    Ok(load_exit_code(&reports))
}

/// Loading succeeds unless a source could not be read at all, or nothing held a valid ISBN.
fn load_exit_code(reports: &[SourceReport]) -> ExitCode {
    let valid: u64 = reports.iter().map(|r| r.valid).sum();
    let unreadable = reports.iter().any(|r| r.problem.is_some() && r.valid == 0);
    if valid == 0 || unreadable {
        ExitCode::NoInput
    } else {
        ExitCode::Success
    }
}

async fn status(cli: &Cli, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let db = cli.db.as_path();
    let store = open_db(cli, false).await?;
    let day = quota::quota_day(quota::now());
    let status = store.status(now_ms(), &day).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render_status(&status, db));
    }
    Ok(ExitCode::Success)
}

pub fn render_status(s: &Status, db: &Path) -> String {
    let mut out = format!("{}: {} jobs\n", db.display(), s.total);
    for (state, n) in &s.jobs {
        let _ = write!(out, "  {state:<12} {n:>9}");
        if *state == "pending" {
            let _ = write!(out, "  ({} due now)", s.due_now);
        }
        out.push('\n');
    }
    if !s.lookups.is_empty() {
        let states = ["pending", "in_progress", "done", "not_found", "failed"];
        let _ = writeln!(
            out,
            "lookups per provider: {:>9} {:>11} {:>9} {:>9} {:>9}",
            states[0], states[1], states[2], states[3], states[4]
        );
        for (provider, per) in &s.lookups {
            let n = |st: &str| per.get(st).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "  {provider:<19} {:>9} {:>11} {:>9} {:>9} {:>9}",
                n(states[0]),
                n(states[1]),
                n(states[2]),
                n(states[3]),
                n(states[4])
            );
        }
    }
    let rejected: u64 = s.rejected_lines.values().sum();
    let _ = writeln!(out, "rejected input lines: {rejected}");
    for (reason, n) in &s.rejected_lines {
        let _ = writeln!(out, "  {reason:<20} {n:>9}");
    }
    let _ = writeln!(
        out,
        "Google requests sent on quota day {} (Pacific): {}",
        s.quota_day, s.requests_today
    );
    if let Some(eta) = &s.eta {
        let _ = writeln!(
            out,
            "Google: {} lookups open; {:.2} books per request in the latest runs; at {} requests a \
             day{}: about {:.0} quota days left",
            eta.google_open,
            eta.books_per_request,
            eta.daily_budget,
            if eta.default_budget {
                " (Google's default; no --daily-budget was set)"
            } else {
                ""
            },
            eta.days.ceil()
        );
    }
    out
}

fn crawl_options(args: &CrawlArgs, command: &str) -> CrawlOptions {
    CrawlOptions {
        fill_missing: args.fill == Fill::Missing,
        wait_for_quota: args.wait_for_quota,
        quota_probe_interval: args.quota_probe_interval,
        retry: RetryPolicy {
            max_attempts: args.max_attempts,
            base: args.backoff_base,
            max: args.backoff_max,
        },
        lease: args.lease,
        command: command.to_string(),
    }
}

fn client_for(args: &CrawlArgs, key: Option<SecretString>) -> anyhow::Result<Client> {
    Client::new(ClientConfig {
        api_url: args.api_url.clone(),
        key,
        country: args.country.clone(),
        timeout: args.timeout,
        connect_timeout: args.connect_timeout,
    })
    .map_err(|e| match e {
        google::Error::BadUrl(_) => UsageError(e.to_string()).into(),
        e => anyhow::Error::new(e),
    })
}

async fn crawl_and_report<S: Store>(
    store: &S,
    args: &CrawlArgs,
    lanes: Vec<Lane>,
    env: &Environment,
    cli: &Cli,
    command: &str,
) -> anyhow::Result<ExitCode> {
    let report = args
        .report
        .as_deref()
        .map(|p| (p, cli.db.display().to_string()));
    let opts = crawl_options(args, command);
    let summary = crawl_with(store, lanes, opts, env, cli.quiet, report).await?;
    Ok(report_summary(&summary, cli.quiet))
}

async fn crawl_with<S: Store>(
    store: &S,
    lanes: Vec<Lane>,
    opts: CrawlOptions,
    env: &Environment,
    quiet: bool,
    report: Option<(&Path, String)>,
) -> anyhow::Result<Summary> {
    let control = env.control.clone();
    let signals = env
        .handle_signals
        .then(|| spawn_signal_handler(control.clone()));
    let reporter = Reporter::new(quiet, store.open_jobs().await?);
    // `--report FILE`: rewritten every 30 s while the crawl runs, and once more at its end.
    let live = report.as_ref().map(|(path, label)| {
        let (store, path, label) = (store.clone(), path.to_path_buf(), label.clone());
        tokio::spawn(async move {
            loop {
                if let Err(e) = write_report(&store, &label, &path, true).await {
                    tracing::warn!("report: {e:#}");
                }
                tokio::time::sleep(REPORT_EVERY).await;
            }
        })
    });
    let result = crawl::crawl(store.clone(), lanes, opts, control, &reporter).await;
    reporter.finish();
    if let Some(task) = signals {
        task.abort();
    }
    if let Some(task) = live {
        task.abort();
    }
    if let Some((path, label)) = &report {
        write_report(store, label, path, false).await?;
    }
    result.context("crawl stopped")
}

/// How often `crawl --report` rewrites the page.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// Writes the HTML report of `store` to `path`, atomically.
async fn write_report<S: Store>(
    store: &S,
    database: &str,
    path: &Path,
    live: bool,
) -> anyhow::Result<()> {
    let now = now_ms();
    let overview = store.overview(now, &quota::quota_day(quota::now())).await?;
    let meta = crate::report::Meta {
        database: database.to_string(),
        generated: crate::export::rfc3339(now),
        live,
    };
    let page = crate::report::render(&overview, &meta);
    let mut sink = Sink::open(Some(path))?;
    {
        let mut w = sink.writer();
        w.write_all(page.as_bytes())
            .and_then(|()| w.flush())
            .map_err(|e| cannot_write(path, e))?;
    }
    sink.finish()
}

/// Ctrl-C or SIGTERM: stop claiming; after [`GRACE`], cut requests in flight; a second signal
/// exits at once (the next run recovers whatever was leased).
fn spawn_signal_handler(control: Control) -> tokio::task::JoinHandle<()> {
    // Listen before returning: a signal that arrived before the task first ran, or between the
    // first and a second listener, would otherwise be lost (or kill the process outright).
    let mut signals = Signals::listen();
    tokio::spawn(async move {
        signals.next().await;
        eprintln!("stopping: finishing requests in flight (press Ctrl-C again to quit at once)");
        control.interrupt.cancel();
        tokio::select! {
            _ = tokio::time::sleep(GRACE) => control.abort.cancel(),
            _ = signals.next() => std::process::exit(i32::from(ExitCode::Interrupted.code())),
        }
        signals.next().await;
        std::process::exit(i32::from(ExitCode::Interrupted.code()));
    })
}

/// SIGINT and SIGTERM, listened to once for the whole run.
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn listen() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = signal(SignalKind::interrupt())
                .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
                .ok();
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((int, term)) = &mut self.streams {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Prints the end-of-crawl summary and picks the exit code.
fn report_summary(s: &Summary, quiet: bool) -> ExitCode {
    let c = &s.counts;
    let rate = c.requests as f64 / s.elapsed.as_secs_f64().max(0.001);
    if !quiet || s.stop != StopReason::Finished {
        let per_request = if c.requests > 0 {
            c.done as f64 / c.requests as f64
        } else {
            0.0
        };
        println!(
            "crawl {}: {} requests in {} ({rate:.1}/s): {} done, {} not found, {} failed, {} retried, {} given back; {per_request:.2} books per request; {} jobs still open",
            s.run_id,
            c.requests,
            human_duration(s.elapsed),
            c.done,
            c.not_found,
            c.failed,
            c.retried,
            c.given_back,
            s.open_jobs
        );
    }
    if !quiet {
        for l in &s.lanes {
            let c = &l.counts;
            println!(
                "  {:<12} {} requests: {} found, {} not found, {} failed, {} retried, {} given back; {} ISBNs per request at the end ({})",
                l.provider.title(),
                c.requests,
                c.done,
                c.not_found,
                c.failed,
                c.retried,
                c.given_back,
                l.batch,
                l.stop.code()
            );
        }
    }
    if s.recovered > 0 && !quiet {
        println!(
            "took back {} lookups from runs that were killed",
            s.recovered
        );
    }
    match &s.stop {
        StopReason::Finished if c.failed > 0 => {
            println!("some jobs failed; see their last_error in the jobs table");
            ExitCode::JobsFailed
        }
        StopReason::Finished => ExitCode::Success,
        StopReason::QuotaExhausted { .. } | StopReason::BudgetSpent => {
            let others: Vec<&str> = s
                .lanes
                .iter()
                .filter(|l| l.provider != ProviderId::Google && l.stop == StopReason::Finished)
                .map(|l| l.provider.title())
                .collect();
            if !others.is_empty() {
                println!(
                    "{} finished its lookups; Google's part resumes after the quota resets.",
                    others.join(", ")
                );
            }
            let what = if s.stop == StopReason::BudgetSpent {
                "the --daily-budget"
            } else {
                "Google's daily quota"
            };
            let when = s.quota_resets_at.map_or_else(String::new, |t| {
                format!(
                    " It resets at midnight Pacific ({} UTC).",
                    t.format("%Y-%m-%d %H:%M")
                )
            });
            println!(
                "stopped: {what} is spent; no job lost an attempt.{when} Resume with \
                 `isbn-crawler crawl` after that, or add --wait-for-quota to sleep through it."
            );
            ExitCode::QuotaExhausted
        }
        StopReason::ApiRejected { kind, message } => {
            let who = if *kind == crate::providers::Rejection::Blocked {
                "Open Library"
            } else {
                "Google"
            };
            println!(
                "stopped: {who} refused the request ({message}); {}",
                kind.advice()
            );
            ExitCode::ApiRejected
        }
        StopReason::Interrupted => {
            println!("interrupted; `isbn-crawler crawl` resumes where this stopped");
            ExitCode::Interrupted
        }
        StopReason::StoreFailed => ExitCode::Storage,
    }
}

/// The demo's fake: real books (as the goodreads export names them), known to one source or
/// both, with a wrong book, a 503 that a retry fixes, and fields only one source has.
fn demo_fake() -> FakeConfig {
    let mut config = FakeConfig {
        latency: Duration::from_millis(40),
        ..FakeConfig::default()
    };
    let books = [
        ("9780002005883", "Gilead", "Marilynne Robinson"),
        ("9780002261982", "Spider's Web", "Agatha Christie"),
        ("9780006163831", "The One Tree", "Stephen R. Donaldson"),
        ("9780006178736", "Rage of Angels", "Sidney Sheldon"),
        ("9780006280897", "The Four Loves", "C.S. Lewis"),
        ("9780006280934", "The Problem of Pain", "C.S. Lewis"),
        (
            "9780006380832",
            "Empires of the Monsoon: A History of the Indian Ocean and Its Invaders",
            "Richard Seymour Hall",
        ),
    ];
    for (isbn, title, author) in books {
        config
            .catalogue
            .insert(isbn.into(), (title.into(), vec![author.into()]));
    }
    // Neither source knows the three the goodreads export does not name either.
    for isbn in ["9780002238304", "9780006353287", "9780006470229"] {
        config.unknown.insert(isbn.into());
        config.openlibrary.unknown.insert(isbn.into());
    }
    // Open Library alone knows one; Google alone another; Google sends a wrong book for a third.
    config.unknown.insert("9780006380832".into());
    config.openlibrary.unknown.insert("9780002005883".into());
    config.wrong_book.insert("9780006178736".into());
    config
        .scripted
        .insert("9780002238304".into(), [Fault::Unavailable].into());
    config
}

/// `{"title":"google","page_count":"openlibrary"}` as `google: title, ... · openlibrary: ...`.
fn provenance_summary(provenance: Option<&str>) -> String {
    let Some(map) = provenance
        .and_then(|p| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(p).ok())
    else {
        return String::new();
    };
    let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (field, provider) in map {
        by.entry(provider.as_str().unwrap_or_default().to_string())
            .or_default()
            .push(field);
    }
    by.into_iter()
        .map(|(p, fields)| match fields.len() {
            n if n <= 3 => format!("{p}: {}", fields.join(", ")),
            n => format!("{p}: {n} fields"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The whole flow offline, against the fake API, in a database of its own.
async fn demo(args: &DemoArgs, env: &Environment, quiet: bool) -> anyhow::Result<ExitCode> {
    let db = &args.demo_db;
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot replace {}", db.display()));
            }
        }
    }
    let store = SqliteStore::open(db, true).await?;
    let fake = FakeApi::start(demo_fake())
        .await
        .context("cannot start the fake API on 127.0.0.1")?;
    println!(
        "demo: fake Google Books and Open Library at {}, database {}",
        fake.url(),
        db.display()
    );
    let report = load::load_reader(
        &store,
        "data/sample-isbns.txt".into(),
        Box::new(Cursor::new(SAMPLE.as_bytes())),
        &InputOptions::default(),
    )
    .await?;
    print!("{}", report.render());

    // The options a user would type, against the fake.
    #[derive(clap::Parser)]
    struct DemoCrawl {
        #[command(flatten)]
        crawl: CrawlArgs,
    }
    let url = fake.url();
    let args = <DemoCrawl as clap::Parser>::try_parse_from([
        "demo",
        "--rate=20/s",
        "--openlibrary-rate=20/s",
        "--backoff-base=200ms",
        "--backoff-max=2s",
        "--timeout=10s",
        "--api-url",
        &url,
        "--openlibrary-url",
        &url,
    ])?
    .crawl;
    let demo_env = Environment {
        api_key: Some(SecretString::from("demo-key".to_string())),
        ..env.clone()
    };
    let lanes = lanes_for(&args, &demo_env)?;
    let report = db.with_file_name("demo-report.html");
    let label = db.display().to_string();
    let opts = crawl_options(&args, "demo");
    let summary = crawl_with(&store, lanes, opts, env, quiet, Some((&report, label))).await?;
    let code = report_summary(&summary, false);
    println!();
    println!(
        "{:<13}  {:<9}  {:<34}  {:<22}  where the fields came from",
        "isbn13", "state", "title / why", "authors"
    );
    let mut records = store.records(&JobState::ALL);
    while let Some(r) = records.try_next().await? {
        let authors = Column::Authors.cell(&r).to_text();
        let from = provenance_summary(r.provenance.as_deref());
        let what = r.title.or(r.last_error).unwrap_or_default();
        println!(
            "{:<13}  {:<9}  {:<34}  {:<22}  {from}",
            r.isbn13,
            r.state,
            shorten(&what, 34),
            shorten(&authors, 22)
        );
    }
    println!("\nreport: {} (open it in a browser)", report.display());
    println!(
        "query it: sqlite3 {} 'select isbn13, title, authors from books'",
        db.display()
    );
    Ok(code)
}

/// Where a command's output goes: stdout, or a file written atomically (a temporary file in
/// the same directory, renamed over the target only when everything was written).
enum Sink {
    Stdout,
    File {
        temp: tempfile::NamedTempFile,
        path: std::path::PathBuf,
    },
}

impl Sink {
    fn open(path: Option<&Path>) -> anyhow::Result<Sink> {
        let Some(path) = path else {
            return Ok(Sink::Stdout);
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut builder = tempfile::Builder::new();
        builder.prefix(".isbn-crawler-");
        // A result file, readable like any other the user makes (not the 0600 of a temp file).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let temp = builder
            .tempfile_in(dir)
            .map_err(|e| cannot_write(path, e))?;
        Ok(Sink::File {
            temp,
            path: path.to_path_buf(),
        })
    }

    fn writer(&mut self) -> std::io::BufWriter<Box<dyn std::io::Write + '_>> {
        let inner: Box<dyn std::io::Write + '_> = match self {
            Sink::Stdout => Box::new(std::io::stdout().lock()),
            Sink::File { temp, .. } => Box::new(temp.as_file_mut()),
        };
        std::io::BufWriter::with_capacity(64 * 1024, inner)
    }

    /// Puts the file in place; dropping a `Sink` without this leaves no file behind.
    fn finish(self) -> anyhow::Result<()> {
        if let Sink::File { temp, path } = self {
            temp.persist(&path)
                .map_err(|e| cannot_write(&path, e.error))?;
        }
        Ok(())
    }
}

/// "cannot write PATH: why", without the temporary file's name that tempfile adds.
fn cannot_write(path: &Path, e: std::io::Error) -> anyhow::Error {
    // tempfile appends its own file's name (`... at path "/dir/.isbn-crawler-x"`): drop it.
    let text = e.to_string();
    let why = text.split(" at path ").next().unwrap_or(&text);
    anyhow::anyhow!("cannot write {}: {why}", path.display())
}

async fn show(cli: &Cli, args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let db = cli.db.as_path();
    let isbn = crate::isbn::parse(&args.isbn)
        .map_err(|reason| UsageError(format!("{:?} is not a valid ISBN ({reason})", args.isbn)))?;
    let store = open_db(cli, false).await?;
    let Some(record) = store.record(isbn.as_str()).await? else {
        eprintln!(
            "isbn-crawler: {isbn} was never loaded into {}; `isbn-crawler load` it first",
            db.display()
        );
        return Ok(ExitCode::NotLoaded);
    };
    let providers = store.provider_records(isbn.as_str()).await?;
    if args.json {
        let mut all = crate::export::to_json_object(&record, &Column::ALL);
        let records: Vec<serde_json::Value> = providers
            .iter()
            .map(|p| {
                let mut v = serde_json::to_value(p).unwrap_or_default();
                if let Some(raw) = p
                    .raw_json
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r).ok())
                {
                    v["raw_json"] = raw;
                }
                v
            })
            .collect();
        all.insert("providers".into(), records.into());
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        print!("{}", render_record(&record, terminal_width()));
        print!("{}", render_providers(&record, &providers));
    }
    Ok(ExitCode::Success)
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&w: &usize| w >= 40)
        .unwrap_or(100)
}

/// Each provider's lookup and record, and where each merged field came from.
fn render_providers(r: &Record, providers: &[crate::store::ProviderRecord]) -> String {
    let mut out = String::new();
    if providers.is_empty() {
        return out;
    }
    out.push_str("providers:\n");
    for p in providers {
        let mut line = format!(
            "  {:<12} {} after {} attempt(s)",
            p.provider, p.state, p.attempts
        );
        if let Some(id) = &p.record_id {
            let _ = write!(line, ", record {id}");
        }
        if let Some(t) = &p.title {
            let _ = write!(line, ": {}", shorten(t, 50));
        }
        if let Some(e) = p.last_error.as_ref().filter(|_| p.state != "done") {
            let _ = write!(line, " ({})", shorten(e, 60));
        }
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(map) = r
        .provenance
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(p).ok())
    {
        let fields: Vec<String> = map
            .iter()
            .map(|(f, p)| format!("{f} ({})", p.as_str().unwrap_or_default()))
            .collect();
        let _ = writeln!(out, "fields from: {}", fields.join(", "));
    }
    out
}

/// A book and its job, for people.
pub fn render_record(r: &Record, width: usize) -> String {
    let cell = |c: Column| c.cell(r).to_text();
    let title = match (cell(Column::Title), cell(Column::Subtitle)) {
        (t, s) if s.is_empty() => t,
        (t, s) => format!("{t}: {s}"),
    };
    let rating = r.average_rating.map_or_else(String::new, |x| {
        format!("{x} ({} ratings)", r.ratings_count.unwrap_or(0))
    });
    let description = plain_text(r.description.as_deref().unwrap_or_default());
    let loaded_from = r.source.as_ref().map_or_else(String::new, |s| {
        let line = r.source_line.unwrap_or(0);
        match &r.source_ref {
            Some(id) => format!("{s} record {line} (control number {id})"),
            None => format!("{s} line {line}"),
        }
    });
    let fields = [
        ("isbn13", r.isbn13.clone()),
        ("isbn10", cell(Column::Isbn10)),
        ("title", title),
        ("authors", cell(Column::Authors)),
        ("publisher", cell(Column::Publisher)),
        ("published", cell(Column::PublishedDate)),
        ("pages", cell(Column::PageCount)),
        ("categories", cell(Column::Categories)),
        ("language", cell(Column::Language)),
        ("rating", rating),
        (
            "description",
            shorten(&description, width.saturating_sub(13) * 3),
        ),
        ("volume id", cell(Column::VolumeId)),
        (
            "job",
            format!("{} after {} attempt(s)", r.state, r.attempts),
        ),
        ("last error", cell(Column::LastError)),
        ("loaded from", loaded_from),
        ("loaded at", crate::export::rfc3339(r.created_at)),
        ("updated at", crate::export::rfc3339(r.updated_at)),
        ("fetched at", cell(Column::FetchedAt)),
    ];
    let mut out = String::new();
    for (name, value) in fields.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = writeln!(out, "{name:<12} {value}");
    }
    out
}

/// Description HTML as one line of text.
fn plain_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

async fn export(cli: &Cli, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let quiet = cli.quiet;
    let store = open_db(cli, false).await?;
    let columns = args
        .columns
        .as_ref()
        .map_or_else(Column::defaults, |c| c.0.clone());
    let mut sink = Sink::open(args.output.as_deref())?;
    let rows = {
        let out = sink.writer();
        crate::export::export(&store, &args.state.0, &columns, args.format, out).await?
    };
    sink.finish()?;
    if let (Some(path), false) = (&args.output, quiet) {
        eprintln!("exported {rows} rows to {}", path.display());
    }
    Ok(ExitCode::Success)
}

async fn rejects(cli: &Cli, args: &RejectsArgs) -> anyhow::Result<ExitCode> {
    let store = open_db(cli, false).await?;
    let mut sink = Sink::open(args.output.as_deref())?;
    {
        let mut out = sink.writer();
        match args.format {
            RejectsFormat::Table => {
                let groups = store.reject_groups(3).await?;
                let total: u64 = groups.iter().map(|g| g.count).sum();
                writeln!(out, "rejected input lines: {total}")?;
                for g in groups {
                    writeln!(out, "  {:<20} {:>9}", g.reason, g.count)?;
                    for e in g.examples {
                        writeln!(
                            out,
                            "      {}:{}  {}",
                            e.source,
                            e.line,
                            shorten(&e.raw, 70)
                        )?;
                    }
                }
                if total > 0 {
                    writeln!(
                        out,
                        "`isbn-crawler rejects --format csv --output fix-me.csv` lists them all"
                    )?;
                }
                out.flush()?;
            }
            RejectsFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                let mut lines = store.rejected_lines();
                while let Some(l) = lines.try_next().await? {
                    w.serialize(&l)?;
                }
                w.flush()?;
            }
        }
    }
    sink.finish()?;
    Ok(ExitCode::Success)
}

async fn requeue(cli: &Cli, args: &RequeueArgs) -> anyhow::Result<ExitCode> {
    let store = open_db(cli, false).await?;
    let now = now_ms();
    let filter = RequeueFilter {
        states: args.state.0.clone(),
        providers: args
            .provider
            .as_ref()
            .map(|p| p.0.clone())
            .unwrap_or_default(),
        updated_before_ms: args
            .older_than
            .map(|d| now.saturating_sub(d.as_millis() as i64)),
        error_contains: args.error.clone(),
    };
    let n = store.requeue(&filter, now).await?;
    let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
    println!(
        "requeued {n} jobs ({}); `isbn-crawler crawl` fetches them",
        states.join(", ")
    );
    Ok(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_exit_codes() {
        let ok = SourceReport {
            valid: 3,
            queued: 1,
            ..SourceReport::default()
        };
        let empty = SourceReport {
            problem: Some("the input is empty".into()),
            ..SourceReport::default()
        };
        assert_eq!(load_exit_code(std::slice::from_ref(&ok)), ExitCode::Success);
        assert_eq!(
            load_exit_code(std::slice::from_ref(&empty)),
            ExitCode::NoInput
        );
        assert_eq!(load_exit_code(&[ok, empty]), ExitCode::NoInput);
    }
}
