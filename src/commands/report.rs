//! `report` (and `crawl --report`): the HTML page, written atomically.

use super::*;
use crate::cli::ReportArgs;

/// `report [-o FILE]`: the page of the database, once.
pub(super) async fn report(
    store: &AnyStore,
    cli: &Cli,
    args: &ReportArgs,
) -> anyhow::Result<ExitCode> {
    let file = ReportFile {
        path: args.output.clone(),
        database: cli.db.to_string(),
        guard: Guard::new(cli),
    };
    write_report(store, &file, false).await?;
    if !cli.quiet {
        say!("report written to {}", args.output.display())?;
    }
    Ok(ExitCode::Success)
}

/// How often `crawl --report` rewrites the page.
pub(super) const REPORT_EVERY: Duration = Duration::from_secs(30);

/// Where a report goes, what it calls the database, and what it must not replace.
#[derive(Debug, Clone)]
pub(super) struct ReportFile {
    pub path: std::path::PathBuf,
    pub database: String,
    pub guard: Guard,
}

impl ReportFile {
    /// `--report FILE` of a crawl (or `run`, whose `inputs` it must not replace), checked
    /// before any work starts.
    pub(super) fn of_crawl(
        cli: &Cli,
        args: &CrawlArgs,
        inputs: &[String],
    ) -> anyhow::Result<Option<ReportFile>> {
        let Some(path) = &args.report else {
            return Ok(None);
        };
        let guard = Guard::new(cli).with_inputs(inputs);
        guard.check(path)?;
        Ok(Some(ReportFile {
            path: path.clone(),
            database: cli.db.to_string(),
            guard,
        }))
    }
}

/// Writes the HTML report of `store` to its file, atomically.
pub(super) async fn write_report<S: Store>(
    store: &S,
    file: &ReportFile,
    live: bool,
) -> anyhow::Result<()> {
    let (database, path) = (&file.database, &file.path);
    let now = now_ms();
    let overview = store.overview(now, &quota::quota_day(quota::now())).await?;
    let meta = crate::report::Meta {
        database: database.clone(),
        generated: crate::export::rfc3339(now),
        live,
    };
    let page = crate::report::render(&overview, &meta);
    let mut sink = Sink::open(Some(path), &file.guard)?;
    {
        let mut w = sink.writer();
        w.write_all(page.as_bytes())
            .and_then(|()| w.flush())
            .map_err(|e| cannot_write(path, e))?;
    }
    sink.finish()
}
