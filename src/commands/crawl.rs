//! `crawl` and `run`: the lanes the options ask for, the crawl, and its summary and exit code.

use super::*;

pub(super) fn require_key(env: &Environment) -> anyhow::Result<SecretString> {
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
pub(super) fn lanes_for(args: &CrawlArgs, env: &Environment) -> anyhow::Result<Vec<Lane>> {
    let mut lanes = Vec::new();
    for id in &args.providers.0 {
        lanes.push(match id {
            ProviderId::Google => {
                let key = require_key(env)?;
                let quota_key = quota::key_id(key.expose_secret());
                Lane {
                    provider: Arc::new(client_for(args, Some(key))?),
                    rate: args.rate.0,
                    concurrency: args.concurrency as usize,
                    batch: args.batch.0.map(|n| n as usize),
                    daily_budget: args.daily_budget,
                    quota_key: Some(quota_key),
                }
            }
            ProviderId::OpenLibrary => {
                let client = open_library::Client::new(open_library::ClientConfig {
                    base_url: args.openlibrary_url.clone(),
                    contact: env.contact.clone(),
                    timeout: args.timeout,
                    connect_timeout: args.connect_timeout,
                })
                .map_err(|e| UsageError(e.to_string()))?;
                Lane {
                    provider: Arc::new(client),
                    rate: openlibrary_rate(args, env)?,
                    concurrency: args.openlibrary_concurrency as usize,
                    batch: Some(args.openlibrary_batch as usize),
                    daily_budget: None,
                    quota_key: None,
                }
            }
        });
    }
    Ok(lanes)
}

/// `--openlibrary-rate`, within what Open Library allows: 3/s for a client that names a contact,
/// 1/s for one that does not. A server on this machine (a test, a mirror) is not Open Library.
pub(super) fn openlibrary_rate(args: &CrawlArgs, env: &Environment) -> anyhow::Result<Option<f64>> {
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

pub(super) fn crawl_options(args: &CrawlArgs, command: &str) -> CrawlOptions {
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

pub(super) fn client_for(args: &CrawlArgs, key: Option<SecretString>) -> anyhow::Result<Client> {
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

pub(super) async fn crawl_and_report<S: Store>(
    store: &S,
    args: &CrawlArgs,
    lanes: Vec<Lane>,
    env: &Environment,
    cli: &Cli,
    command: &str,
    report: Option<ReportFile>,
) -> anyhow::Result<ExitCode> {
    let opts = crawl_options(args, command);
    let summary = crawl_with(store, lanes, opts, env, cli.quiet, report).await?;
    Ok(report_summary(&summary, cli.quiet)?)
}

pub(super) async fn crawl_with<S: Store>(
    store: &S,
    lanes: Vec<Lane>,
    opts: CrawlOptions,
    env: &Environment,
    quiet: bool,
    report: Option<ReportFile>,
) -> anyhow::Result<Summary> {
    let control = env.control.clone();
    let signals = env
        .handle_signals
        .then(|| spawn_signal_handler(control.clone()));
    let reporter = Reporter::new(quiet);
    // `--report FILE`: rewritten every 30 s while the crawl runs, and once more at its end.
    let live = report.as_ref().map(|file| {
        let (store, file) = (store.clone(), file.clone());
        tokio::spawn(async move {
            loop {
                if let Err(e) = write_report(&store, &file, true).await {
                    tracing::warn!("report: {e:#}");
                }
                tokio::time::sleep(REPORT_EVERY).await;
            }
        })
    });
    let result = crate::crawl::crawl(store.clone(), lanes, opts, control, &reporter).await;
    reporter.finish();
    if let Some(task) = signals {
        task.abort();
    }
    if let Some(task) = live {
        task.abort();
    }
    if let Some(file) = &report {
        write_report(store, file, false).await?;
    }
    result.context("crawl stopped")
}

/// Prints the end-of-crawl summary and picks the exit code.
pub(super) fn report_summary(s: &Summary, quiet: bool) -> std::io::Result<ExitCode> {
    let c = &s.counts;
    let rate = c.requests as f64 / s.elapsed.as_secs_f64().max(0.001);
    if !quiet || s.stop != StopReason::Finished {
        let per_request = if c.requests > 0 {
            c.done as f64 / c.requests as f64
        } else {
            0.0
        };
        say!(
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
        )?;
    }
    if !quiet {
        for l in &s.lanes {
            let c = &l.counts;
            say!(
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
            )?;
        }
    }
    if s.recovered > 0 && !quiet {
        say!(
            "took back {} lookups from runs that were killed",
            s.recovered
        )?;
    }
    Ok(match &s.stop {
        StopReason::Finished if c.failed > 0 => {
            say!("some jobs failed; see their last_error in the jobs table")?;
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
                say!(
                    "{} finished its lookups; Google's part resumes after the quota resets.",
                    others.join(", ")
                )?;
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
            say!(
                "stopped: {what} is spent; no job lost an attempt.{when} Resume with \
                 `isbn-crawler crawl` after that, or add --wait-for-quota to sleep through it."
            )?;
            ExitCode::QuotaExhausted
        }
        StopReason::ApiRejected { kind, message } => {
            let who = if *kind == crate::providers::Rejection::Blocked {
                "Open Library"
            } else {
                "Google"
            };
            say!(
                "stopped: {who} refused the request ({}); {}",
                crate::terminal::safe(message),
                kind.advice()
            )?;
            ExitCode::ApiRejected
        }
        StopReason::Interrupted => {
            say!("interrupted; `isbn-crawler crawl` resumes where this stopped")?;
            ExitCode::Interrupted
        }
        StopReason::StoreFailed => ExitCode::Storage,
    })
}
