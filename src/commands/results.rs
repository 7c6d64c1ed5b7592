//! `export`, `rejects` and `requeue`: what people do with the results.

use super::*;

pub(super) async fn export(
    store: &AnyStore,
    cli: &Cli,
    args: &ExportArgs,
) -> anyhow::Result<ExitCode> {
    let quiet = cli.quiet;
    let columns = args
        .columns
        .as_ref()
        .map_or_else(Column::defaults, |c| c.0.clone());
    let mut sink = Sink::open(args.output.as_deref(), &Guard::new(cli))?;
    let rows = {
        let out = sink.writer();
        let cells = if args.raw_cells {
            crate::export::Cells::Raw
        } else {
            crate::export::Cells::Safe
        };
        crate::export::export(store, &args.state.0, &columns, args.format, cells, out).await?
    };
    sink.finish()?;
    if let (Some(path), false) = (&args.output, quiet) {
        eprintln!("exported {rows} rows to {}", path.display());
    }
    Ok(ExitCode::Success)
}

pub(super) async fn rejects(
    store: &AnyStore,
    cli: &Cli,
    args: &RejectsArgs,
) -> anyhow::Result<ExitCode> {
    let mut sink = Sink::open(args.output.as_deref(), &Guard::new(cli))?;
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
                            crate::terminal::safe(&e.source),
                            e.line,
                            crate::terminal::safe(&shorten(&e.raw, 70))
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
                let text = |s: &str| -> String {
                    if args.raw_cells {
                        s.to_string()
                    } else {
                        crate::export::spreadsheet_safe(s).into_owned()
                    }
                };
                w.write_record(["source", "line", "raw", "reason"])?;
                while let Some(l) = lines.try_next().await? {
                    w.write_record([text(&l.source), l.line.to_string(), text(&l.raw), l.reason])?;
                }
                w.flush()?;
            }
        }
    }
    sink.finish()?;
    Ok(ExitCode::Success)
}

pub(super) async fn requeue(store: &AnyStore, args: &RequeueArgs) -> anyhow::Result<ExitCode> {
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
    say!(
        "requeued {n} lookups ({}); `isbn-crawler crawl` fetches them",
        states.join(", ")
    )?;
    Ok(ExitCode::Success)
}
