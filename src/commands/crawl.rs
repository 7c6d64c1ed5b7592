//! `crawl` and `run`: the lanes the options ask for, the crawl, and its summary and exit code.

use super::*;

/// The key `spec` needs, or a usage error that says how to give it or leave the provider out.
pub(super) fn require_key(env: &Environment, spec: &Spec) -> anyhow::Result<SecretString> {
    let variable = spec.key_variable.unwrap_or("the API key");
    env.api_key.clone().ok_or_else(|| {
        let keyless: Vec<&Spec> = registry::ALL
            .iter()
            .copied()
            .filter(|s| s.key_variable.is_none())
            .collect();
        let ids: Vec<&str> = keyless.iter().map(|s| s.id.as_str()).collect();
        let titles: Vec<&str> = keyless.iter().map(|s| s.title).collect();
        UsageError(format!(
            "{variable} is not set: {} refuses keyless requests. Put it in the environment or \
             in .env (see .env.example), or leave {} out with `--providers {}` ({} needs no \
             key); `isbn-crawler demo` needs neither",
            spec.owner,
            spec.owner,
            ids.join(","),
            titles.join(", ")
        ))
        .into()
    })
}

/// One lane per provider named, in their order, each built from its spec: its client, its
/// key where it needs one, its rate by its own rules.
pub(super) fn lanes_for(args: &CrawlArgs, env: &Environment) -> anyhow::Result<Vec<Lane>> {
    let mut lanes = Vec::new();
    for id in &args.providers.0 {
        let spec = registry::spec(*id);
        let own = args.lane_args(*id, env.sru_url(*id));
        let key = match spec.key_variable {
            Some(_) => Some(require_key(env, spec)?),
            None => None,
        };
        let quota_key = key
            .as_ref()
            .filter(|_| spec.daily_quota)
            .map(|k| quota::key_id(k.expose_secret()));
        let rate = (spec.allowed_rate)(&RateAsked {
            asked: own.rate,
            contact: env.contact.is_some(),
            url: &own.url,
        })
        .map_err(UsageError)?;
        let provider = (spec.build)(
            spec,
            &Settings {
                url: own.url,
                key,
                contact: env.contact.clone(),
                country: args.country.clone(),
                timeout: args.timeout,
                connect_timeout: args.connect_timeout,
            },
        )
        .map_err(|e| match e {
            BuildError::Usage(m) => anyhow::Error::new(UsageError(m)),
            e => anyhow::Error::new(e),
        })?;
        lanes.push(Lane {
            spec,
            provider,
            routes: args.routes_of(*id),
            rate,
            concurrency: own.concurrency,
            batch: own.batch,
            daily_budget: own.daily_budget.filter(|_| spec.daily_quota),
            quota_key,
        });
    }
    Ok(lanes)
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
                registry::spec(l.provider).title,
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
    say_stop(s)
}

/// Why the crawl stopped and what to do next, as its exit code.
fn say_stop(s: &Summary) -> std::io::Result<ExitCode> {
    let c = &s.counts;
    Ok(match &s.stop {
        StopReason::Finished if c.failed > 0 => {
            say!("some jobs failed; see their last_error in the jobs table")?;
            ExitCode::JobsFailed
        }
        StopReason::Finished => ExitCode::Success,
        StopReason::QuotaExhausted { .. } | StopReason::BudgetSpent => {
            say_quota_stop(s)?;
            ExitCode::QuotaExhausted
        }
        StopReason::ApiRejected {
            provider,
            kind,
            message,
        } => {
            let who = registry::spec(*provider).owner;
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

/// A quota or budget stop: whose, when it resets, and which other lanes finished meanwhile.
fn say_quota_stop(s: &Summary) -> std::io::Result<()> {
    let spent = s
        .lanes
        .iter()
        .find(|l| l.stop == s.stop)
        .map_or("the provider", |l| registry::spec(l.provider).owner);
    let others: Vec<&str> = s
        .lanes
        .iter()
        .filter(|l| l.stop == StopReason::Finished)
        .map(|l| registry::spec(l.provider).title)
        .collect();
    if !others.is_empty() {
        say!(
            "{} finished its lookups; {spent}'s part resumes after the quota resets.",
            others.join(", ")
        )?;
    }
    let what = if s.stop == StopReason::BudgetSpent {
        "the --daily-budget".to_string()
    } else {
        format!("{spent}'s daily quota")
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
    Ok(())
}
