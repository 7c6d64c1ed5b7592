/*!
Progress output: a bar on a terminal, a plain line every few seconds elsewhere, nothing with
`--quiet`. The bar is an `Option`, so quiet and non-terminal runs need no special cases in the
crawl: it reports its counters here and this module decides what to show.

The unit of the bar is the lookup (one book asked of one provider): its length is the lookups
open when the crawl starts, grown by each one `--fill missing` chains to the next provider, and
its position the lookups that reached a final state. Jobs would be the same unit only with one
provider.
*/

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What the progress line shows, read from the crawl at each redraw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub requests: u64,
    pub done: u64,
    pub not_found: u64,
    pub failed: u64,
    pub retried: u64,
    /// Misses `--fill missing` handed to the next provider (a lookup each).
    pub chained: u64,
    /// ISBNs per request of the lane that batches (0 when none does, or before it asked).
    pub batch: u64,
}

/// The crawl as the progress display sees it: this module needs no more of it.
pub trait Source: Send + Sync + 'static {
    fn tally(&self) -> Tally;
}

/// How often a non-terminal gets a progress line.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Reporter {
    bar: Option<ProgressBar>,
    plain: bool,
    total: std::sync::atomic::AtomicU64,
    budget: Mutex<(u64, Option<u64>)>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Reporter {
    pub fn new(quiet: bool) -> Reporter {
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} lookups {msg} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Reporter {
            bar,
            plain: !quiet && !terminal,
            total: Default::default(),
            budget: Mutex::new((0, None)),
            task: Mutex::new(None),
        }
    }

    /// A reporter that shows nothing.
    pub fn quiet() -> Reporter {
        Reporter::new(true)
    }

    /// The lookups open as the crawl starts (of the providers it asks).
    pub fn set_total(&self, lookups: u64) {
        self.total
            .store(lookups, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn attach_budget(&self, used_before: u64, limit: Option<u64>) {
        *self.budget.lock().unwrap_or_else(|p| p.into_inner()) = (used_before, limit);
    }

    /// Starts showing what `source` counts.
    pub fn attach(&self, source: Arc<dyn Source>) {
        if self.bar.is_none() && !self.plain {
            return;
        }
        let bar = self.bar.clone();
        let plain = self.plain;
        let total = self.total.load(std::sync::atomic::Ordering::Relaxed);
        let budget = *self.budget.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let every = if plain {
                PLAIN_EVERY
            } else {
                Duration::from_millis(200)
            };
            loop {
                tokio::time::sleep(every).await;
                let tally = source.tally();
                let line = status_line(&tally, budget, started.elapsed());
                let (position, total) = position(&tally, total);
                match &bar {
                    Some(bar) => {
                        bar.set_length(total);
                        bar.set_position(position);
                        bar.set_message(line);
                    }
                    None => eprintln!("progress: {position}/{total} lookups {line}"),
                }
            }
        });
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// A line above the bar (or on stderr), unless quiet.
    pub fn message(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None if self.plain => eprintln!("{text}"),
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Lookups ended, and lookups in all: those open at the start and those chained since (never
/// fewer than have ended: another machine's leases expire into this crawl's hands).
fn position(c: &Tally, open_at_start: u64) -> (u64, u64) {
    let ended = c.done + c.not_found + c.failed;
    (ended, (open_at_start + c.chained).max(ended))
}

fn status_line(c: &Tally, budget: (u64, Option<u64>), elapsed: Duration) -> String {
    let rate = c.requests as f64 / elapsed.as_secs_f64().max(0.001);
    let today = budget.0 + c.requests;
    let budget = match budget.1 {
        Some(limit) => format!("{today}/{limit} today"),
        None => format!("{today} today"),
    };
    let batch = match c.batch {
        0 => String::new(),
        n => format!(
            " · {n} ISBNs per {} request",
            crate::providers::registry::quota_owner()
        ),
    };
    format!(
        "done {} · not found {} · failed {} · retrying {} · {rate:.1} req/s · {budget}{batch}",
        c.done, c.not_found, c.failed, c.retried
    )
}

/// `3h 12m`, `45s`, `250ms`: a wait as people read it.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else if s >= 1 {
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_and_total_count_the_same_lookups() {
        // 10 open at the start (5 books asked of 2 providers), 6 ended, 1 chained on.
        let mut c = Tally {
            done: 4,
            not_found: 2,
            chained: 1,
            retried: 9,
            ..Tally::default()
        };
        assert_eq!(position(&c, 10), (6, 11));
        c.done = 20;
        assert_eq!(
            position(&c, 10),
            (22, 22),
            "the position never passes the total"
        );
    }
}
