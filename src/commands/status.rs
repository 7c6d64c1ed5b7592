//! `status`: the job table at a glance, as text or JSON.

use super::*;

pub(super) async fn status(
    store: &AnyStore,
    cli: &Cli,
    args: &StatusArgs,
) -> anyhow::Result<ExitCode> {
    let db = &cli.db;
    let day = quota::quota_day(quota::now());
    let status = store.status(now_ms(), &day).await?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&status)?)?;
    } else {
        put!("{}", render_status(&status, db))?;
    }
    Ok(ExitCode::Success)
}

pub fn render_status(s: &Status, db: &dyn std::fmt::Display) -> String {
    let mut out = format!("{db}: {} jobs\n", s.total);
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
    let owner = registry::quota_owner();
    let _ = writeln!(
        out,
        "{owner} requests sent on quota day {} (Pacific): {}",
        s.quota_day, s.requests_today
    );
    if let Some(eta) = &s.eta {
        let _ = writeln!(
            out,
            "{owner}: {} lookups open; {:.2} books per request in the latest runs; at {} requests \
             a day{}: about {:.0} quota days left",
            eta.google_open,
            eta.books_per_request,
            eta.daily_budget,
            if eta.default_budget {
                format!(" ({owner}'s default; no --daily-budget was set)")
            } else {
                String::new()
            },
            eta.days.ceil()
        );
    }
    out
}
