//! `report` (and `crawl --report`): the HTML page, written atomically.

use super::*;
use crate::cli::ReportArgs;

/// `report [-o FILE]`: the page of the database, once.
pub(super) async fn report(
    store: &AnyStore,
    cli: &Cli,
    args: &ReportArgs,
) -> anyhow::Result<ExitCode> {
    write_report(store, &cli.db.to_string(), &args.output, false).await?;
    if !cli.quiet {
        println!("report written to {}", args.output.display());
    }
    Ok(ExitCode::Success)
}

/// How often `crawl --report` rewrites the page.
pub(super) const REPORT_EVERY: Duration = Duration::from_secs(30);

/// Writes the HTML report of `store` to `path`, atomically.
pub(super) async fn write_report<S: Store>(
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
