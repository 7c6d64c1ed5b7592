/*!
Command glue: each subcommand opens what it needs, calls the module that does the work, and
prints what the user reads; one file per subcommand (`crawl.rs` also serves `run`), read top to
bottom. This file dispatches and holds what they share: the environment and the database.
Nothing here is reused by other modules.
*/

/// `println!` that hands a failed write back instead of panicking: a closed stdout
/// (`show --json | head`) ends the command quietly with 0 (`main`, ripgrep's rule).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` that hands a failed write back, like [`say!`].
macro_rules! put {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod crawl;
mod demo;
mod load;
mod report;
mod results;
mod show;
mod signals;
mod sink;
mod status;

use self::crawl::{crawl_and_report, crawl_options, crawl_with, lanes_for, report_summary};
use self::demo::demo;
use self::load::load_files;
use self::report::{REPORT_EVERY, ReportFile, report, write_report};
use self::results::{export, rejects, requeue};
use self::show::show;
use self::signals::spawn_signal_handler;
use self::sink::{Guard, Sink, cannot_write};
use self::status::status;

use std::fmt::Write as _;
use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::TryStreamExt;
use secrecy::{ExposeSecret, SecretString};
use std::io::Write as _;

use crate::cli::{
    Cli, Command, CrawlArgs, DemoArgs, ExportArgs, Fill, LoadArgs, RejectsArgs, RejectsFormat,
    RequeueArgs, ShowArgs, StatusArgs,
};
use crate::crawl::{Control, CrawlOptions, Lane, StopReason, Summary, quota, retry::RetryPolicy};
use crate::exit::ExitCode;
use crate::export::Column;
use crate::fake_api::{FakeApi, FakeConfig, Fault};
use crate::input::InputOptions;
use crate::load::SourceReport;
use crate::progress::{Reporter, human_duration};
use crate::providers::{BuildError, RateAsked, Settings, Spec, registry};
use crate::store::{
    AnyStore, JobState, LoadStore, Location, ReadStore, Record, RequeueFilter, SqliteStore, Status,
    Store,
};
use crate::{UsageError, now_ms, shorten};

/// The bundled sample, so `demo` works from any directory.
pub const SAMPLE: &str = include_str!("../../data/sample-isbns.txt");

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
    /// Catalogues the environment points elsewhere (`ISBN_CRAWLER_SRU_URL_<NAME>`): name, URL.
    pub sru_urls: Vec<(&'static str, String)>,
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
            sru_urls: crate::providers::sru::profile::ALL
                .iter()
                .filter_map(|p| {
                    let variable = format!("ISBN_CRAWLER_SRU_URL_{}", p.name.to_uppercase());
                    let url = std::env::var(variable).ok()?;
                    Some((p.name, url.trim().to_string())).filter(|(_, u)| !u.is_empty())
                })
                .collect(),
        }
    }

    /// Where the environment points the catalogue `id`, if it does.
    pub fn sru_url(&self, id: crate::domain::ProviderId) -> Option<String> {
        self.sru_urls
            .iter()
            .find(|(name, _)| *name == id.as_str())
            .map(|(_, url)| url.clone())
    }
}

pub async fn run(cli: Cli, env: Environment) -> anyhow::Result<ExitCode> {
    let cli = &cli;
    match &cli.command {
        Command::Load(args) => {
            on_db(cli, true, async |store| {
                load_files(store, &cli.db, args, cli.quiet).await
            })
            .await
        }
        Command::Status(args) => {
            on_db(cli, false, async |store| status(store, cli, args).await).await
        }
        Command::Crawl(args) => {
            let lanes = lanes_for(args, &env)?;
            let report = ReportFile::of_crawl(cli, args, &[])?;
            on_db(cli, true, async |store| {
                crawl_and_report(store, args, lanes, &env, cli, "crawl", report).await
            })
            .await
        }
        Command::Run(args) => {
            let lanes = lanes_for(&args.crawl, &env)?;
            let report = ReportFile::of_crawl(cli, &args.crawl, &args.load.files)?;
            on_db(cli, true, async |store| {
                let loaded = load_files(store, &cli.db, &args.load, cli.quiet).await?;
                if loaded == ExitCode::NoInput {
                    return Ok(loaded);
                }
                crawl_and_report(store, &args.crawl, lanes, &env, cli, "run", report).await
            })
            .await
        }
        Command::Demo(args) => demo(args, &env, cli.quiet).await,
        Command::Show(args) => {
            let isbn = show::isbn_of(args)?;
            on_db(cli, false, async |store| {
                show(store, cli, args, &isbn).await
            })
            .await
        }
        Command::Export(args) => {
            on_db(cli, false, async |store| export(store, cli, args).await).await
        }
        Command::Rejects(args) => {
            on_db(cli, false, async |store| rejects(store, cli, args).await).await
        }
        Command::Requeue(args) => on_db(cli, false, async |store| requeue(store, args).await).await,
        Command::Report(args) => {
            on_db(cli, false, async |store| report(store, cli, args).await).await
        }
    }
}

/// Runs `command` on the database of `--db` (see [`open_db`]) and closes it, whatever came of
/// the command.
async fn on_db(
    cli: &Cli,
    create: bool,
    command: impl AsyncFnOnce(&AnyStore) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    closing(open_db(cli, create).await?, command).await
}

/// Runs `command` on `store`, then closes it: on an error too, so that on SQLite the file alone
/// holds everything after any exit but a kill.
async fn closing(
    store: AnyStore,
    command: impl AsyncFnOnce(&AnyStore) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let result = command(&store).await;
    store.close().await;
    result
}

/// The database of `--db`, whichever backend it names; `create` makes (and migrates) it when
/// missing.
async fn open_db(cli: &Cli, create: bool) -> anyhow::Result<AnyStore> {
    Ok(AnyStore::open(&cli.db, create, cli.busy_timeout).await?)
}
