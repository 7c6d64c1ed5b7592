/*!
Command glue: each subcommand opens what it needs, calls the module that does the work, and
prints what the user reads. Nothing here is reused by other modules.
*/

use std::fmt::Write as _;
use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::TryStreamExt;
use secrecy::SecretString;
use std::io::Write as _;

use crate::cli::{
    Cli, Command, CrawlArgs, DemoArgs, ExportArgs, LoadArgs, RejectsArgs, RejectsFormat,
    RequeueArgs, ShowArgs, StatusArgs,
};
use crate::crawl::{self, Control, CrawlOptions, StopReason, Summary, quota, retry::RetryPolicy};
use crate::exit::ExitCode;
use crate::export::Column;
use crate::fake_api::{FakeApi, FakeConfig, Fault};
use crate::google_books::{self, Client, ClientConfig};
use crate::input::InputOptions;
use crate::load::{self, SourceReport};
use crate::progress::{Reporter, human_duration};
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
            let key = require_key(&env)?;
            let store = open_db(&cli, true).await?;
            crawl_and_report(&store, args, key, &env, cli.quiet, "crawl").await
        }
        Command::Run(args) => {
            let key = require_key(&env)?;
            let store = open_db(&cli, true).await?;
            let loaded = load_files(&store, &args.load, cli.quiet).await?;
            if loaded == ExitCode::NoInput {
                return Ok(loaded);
            }
            crawl_and_report(&store, &args.crawl, key, &env, cli.quiet, "run").await
        }
        Command::Demo(args) => demo(args, &env, cli.quiet).await,
        Command::Show(args) => show(&cli, args).await,
        Command::Export(args) => export(&cli, args).await,
        Command::Rejects(args) => rejects(&cli, args).await,
        Command::Requeue(args) => requeue(&cli, args).await,
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
             environment or in .env (see .env.example), or try `isbn-crawler demo`, which needs \
             no key"
                .into(),
        )
        .into()
    })
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
    let rejected: u64 = s.rejected_lines.values().sum();
    let _ = writeln!(out, "rejected input lines: {rejected}");
    for (reason, n) in &s.rejected_lines {
        let _ = writeln!(out, "  {reason:<20} {n:>9}");
    }
    let _ = writeln!(
        out,
        "requests sent on quota day {} (Pacific): {}",
        s.quota_day, s.requests_today
    );
    out
}

fn crawl_options(args: &CrawlArgs, command: &str) -> CrawlOptions {
    CrawlOptions {
        rate: args.rate.0,
        concurrency: args.concurrency as usize,
        daily_budget: args.daily_budget,
        wait_for_quota: args.wait_for_quota,
        quota_probe_interval: args.quota_probe_interval,
        retry: RetryPolicy {
            max_attempts: args.max_attempts,
            base: args.backoff_base,
            max: args.backoff_max,
        },
        lease: args.lease,
        batch: args.batch as usize,
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
        google_books::Error::BadUrl(_) => UsageError(e.to_string()).into(),
        e => anyhow::Error::new(e),
    })
}

async fn crawl_and_report<S: Store>(
    store: &S,
    args: &CrawlArgs,
    key: SecretString,
    env: &Environment,
    quiet: bool,
    command: &str,
) -> anyhow::Result<ExitCode> {
    let client = client_for(args, Some(key))?;
    let summary = crawl_with(store, client, crawl_options(args, command), env, quiet).await?;
    Ok(report_summary(&summary, quiet))
}

async fn crawl_with<S: Store>(
    store: &S,
    client: Client,
    opts: CrawlOptions,
    env: &Environment,
    quiet: bool,
) -> anyhow::Result<Summary> {
    let control = env.control.clone();
    let signals = env
        .handle_signals
        .then(|| spawn_signal_handler(control.clone()));
    let reporter = Reporter::new(quiet, store.open_jobs().await?);
    let result = crawl::crawl(store.clone(), client, opts, control, &reporter).await;
    reporter.finish();
    if let Some(task) = signals {
        task.abort();
    }
    result.context("crawl stopped")
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
    if s.recovered > 0 && !quiet {
        println!("took back {} jobs from runs that were killed", s.recovered);
    }
    match &s.stop {
        StopReason::Finished if c.failed > 0 => {
            println!("some jobs failed; see their last_error in the jobs table");
            ExitCode::JobsFailed
        }
        StopReason::Finished => ExitCode::Success,
        StopReason::QuotaExhausted { .. } | StopReason::BudgetSpent => {
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
            println!(
                "stopped: Google refused the request ({message}); {}",
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
    // The fake answers like Google, with a few of its habits: a wrong book for one ISBN
    // (verification turns it into not_found), one unknown ISBN, one 503 that a retry fixes.
    let mut config = FakeConfig {
        latency: Duration::from_millis(40),
        ..FakeConfig::default()
    };
    config.wrong_book.insert("9780006178736".into());
    config.unknown.insert("9780006380832".into());
    config
        .scripted
        .insert("9780002238304".into(), [Fault::Unavailable].into());
    let fake = FakeApi::start(config)
        .await
        .context("cannot start the fake API on 127.0.0.1")?;
    println!(
        "demo: fake Google Books at {}, database {}",
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

    let args = CrawlArgs {
        rate: crate::cli::Rate(Some(20.0)),
        concurrency: 4,
        daily_budget: None,
        wait_for_quota: false,
        quota_probe_interval: Duration::from_secs(60),
        max_attempts: 6,
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        country: "US".into(),
        api_url: fake.url(),
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        lease: Duration::from_secs(60),
        batch: 1,
    };
    let client = client_for(&args, None)?;
    let summary = crawl_with(&store, client, crawl_options(&args, "demo"), env, quiet).await?;
    let code = report_summary(&summary, false);
    println!();
    println!(
        "{:<13}  {:<9}  {:<4}  title / why",
        "isbn13", "state", "year"
    );
    let mut records = store.records(&JobState::ALL);
    while let Some(r) = records.try_next().await? {
        let year = r.published_year.map(|y| y.to_string()).unwrap_or_default();
        let what = r.title.or(r.last_error).unwrap_or_default();
        println!("{:<13}  {:<9}  {:<4}  {what}", r.isbn13, r.state, year);
    }
    println!(
        "\nquery it: sqlite3 {} 'select isbn13, title, authors from books'",
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
        let temp = tempfile::Builder::new()
            .prefix(".isbn-crawler-")
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
    if args.json {
        let all = crate::export::to_json_object(&record, &Column::ALL);
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        print!("{}", render_record(&record, terminal_width()));
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
