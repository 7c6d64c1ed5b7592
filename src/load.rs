/*!
`load`: input readers feeding the job store.

Reading and parsing run on a blocking thread; batches of [`BATCH`] items cross a small channel
to the async side, which sorts each batch by ISBN (sorted keys insert into SQLite's B-trees
far faster than random ones), drops repeats inside it, and saves it in one transaction.
Memory holds at most a few batches, whatever the input's size.
*/

use crate::terminal::safe;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::input::{self, Detected, InputOptions, Item, Shape};
use crate::isbn::RejectReason;
use crate::store::{self, LoadBatch, LoadStore, NewJob, Reject};

/// Items per transaction.
pub const BATCH: usize = 125_000;
/// Example lines kept per reject reason, for the report.
const EXAMPLES: usize = 3;

/// What one source gave.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceReport {
    pub source: String,
    /// Content lines (rows, records) read: those that gave an ISBN or a rejection. Blank
    /// lines, comments, a header, and in `scan` mode lines without an ISBN are not counted.
    pub lines: u64,
    /// Valid ISBNs read (a row naming two books counts two).
    pub valid: u64,
    /// Valid ISBNs that were new jobs.
    pub queued: u64,
    pub rejected: BTreeMap<String, ReasonReport>,
    /// What the source was read as (`semicolon-separated, with a header, windows-1252; ...`).
    pub read_as: Option<String>,
    /// Why the source could not be read at all, if it could not.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReasonReport {
    pub count: u64,
    /// (line, raw text) of the first few.
    pub examples: Vec<(u64, String)>,
}

impl SourceReport {
    /// Valid ISBNs that were jobs already (from an earlier load, or earlier in this one).
    pub fn already_known(&self) -> u64 {
        self.valid - self.queued
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().map(|r| r.count).sum()
    }

    fn note_reject(&mut self, r: &Reject) {
        let entry = self
            .rejected
            .entry(r.reason.as_str().to_string())
            .or_default();
        entry.count += 1;
        if entry.examples.len() < EXAMPLES {
            entry.examples.push((r.line, r.raw.clone()));
        }
    }

    /// What the `loads` table keeps of it.
    pub fn record(&self) -> store::LoadRecord {
        store::LoadRecord {
            source: self.source.clone(),
            lines: self.lines,
            valid: self.valid,
            queued: self.queued,
            rejected: self.rejected_total(),
            read_as: self.read_as.clone(),
            problem: self.problem.clone(),
        }
    }

    /// The report as the user sees it.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{}: {} lines read: {} new ISBNs queued, {} already known, {} rejected\n",
            safe(&self.source),
            self.lines,
            self.queued,
            self.already_known(),
            self.rejected_total()
        );
        if let Some(read_as) = &self.read_as {
            out.push_str(&format!("  read as {}\n", safe(read_as)));
        }
        if let Some(problem) = &self.problem {
            out.push_str(&format!("  {}\n", safe(problem)));
        }
        for (reason, r) in &self.rejected {
            let examples: Vec<String> = r
                .examples
                .iter()
                .map(|(line, raw)| format!("line {line}: {}", shorten(raw, 60)))
                .collect();
            out.push_str(&format!(
                "  {reason:<20} {:>7}  {}\n",
                r.count,
                examples.join(" | ")
            ));
        }
        out
    }
}

/// A rejected line for the terminal: control characters escaped, then shortened.
fn shorten(s: &str, max: usize) -> String {
    crate::shorten(&safe(s), max)
}

/// The name a source is stored under: its path as given, or `<stdin>`.
pub fn source_name(file: &str) -> String {
    if file == "-" {
        "<stdin>".to_string()
    } else {
        file.to_string()
    }
}

fn open(file: &str) -> std::io::Result<Box<dyn BufRead + Send>> {
    if file == "-" {
        return Ok(Box::new(BufReader::with_capacity(
            64 * 1024,
            std::io::stdin(),
        )));
    }
    let f = std::fs::File::open(file)?;
    if f.metadata()?.is_dir() {
        return Err(std::io::Error::other("is a directory"));
    }
    Ok(Box::new(BufReader::with_capacity(64 * 1024, f)))
}

#[derive(Default)]
struct Batch {
    save: LoadBatch,
    /// Content lines that ended in this batch.
    lines: u64,
}

/// A reader that fails once `stop` is set.
struct Stoppable<R> {
    inner: R,
    stop: Arc<AtomicBool>,
}

impl<R: Read> Read for Stoppable<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("stopped: the database failed"));
        }
        self.inner.read(buf)
    }
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Batch {
    fn len(&self) -> usize {
        self.save.jobs.len() + self.save.rejects.len()
    }
}

/// Loads one file (or `-`).
pub async fn load_file<S: LoadStore>(
    store: &S,
    file: &str,
    opts: &InputOptions,
) -> Result<SourceReport, store::Error> {
    let name = file.to_string();
    load_with(store, source_name(file), move || open(&name), opts).await
}

/// Loads from any reader, under the source name `source`.
pub async fn load_reader<S: LoadStore>(
    store: &S,
    source: String,
    reader: Box<dyn BufRead + Send>,
    opts: &InputOptions,
) -> Result<SourceReport, store::Error> {
    load_with(store, source, move || Ok(reader), opts).await
}

async fn load_with<S: LoadStore>(
    store: &S,
    source: String,
    open: impl FnOnce() -> std::io::Result<Box<dyn BufRead + Send>> + Send + 'static,
    opts: &InputOptions,
) -> Result<SourceReport, store::Error> {
    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    let opts = opts.clone();
    // Set once the store has failed (the channel is closed): reading stops at the next read
    // instead of draining an endless pipe.
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let reader = tokio::task::spawn_blocking(move || -> Result<Detected, input::Error> {
        let reader = Stoppable {
            inner: open()?,
            stop: stopped.clone(),
        };
        let mut batch = Batch::default();
        let mut last_line = 0u64;
        let detected = input::read_items(reader, &opts, &mut |item| {
            let line = match item {
                Item::Valid {
                    line,
                    isbn,
                    reference,
                } => {
                    batch.save.jobs.push(NewJob { isbn, line });
                    if let Some(reference) = reference
                        && batch.save.references.last().is_none_or(|(l, _)| *l != line)
                    {
                        batch.save.references.push((line, reference));
                    }
                    line
                }
                Item::Rejected(r) => {
                    let line = r.line;
                    batch.save.rejects.push(r);
                    line
                }
            };
            // Items of one row arrive together: a new line number is a new row.
            if line != last_line {
                batch.lines += 1;
                last_line = line;
            }
            if batch.len() >= BATCH && tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                // The store failed; its error is reported from there.
                stopped.store(true, Ordering::Relaxed);
            }
        });
        if batch.len() > 0 {
            let _ = tx.blocking_send(batch);
        }
        detected
    });

    let mut report = SourceReport {
        source: source.clone(),
        ..SourceReport::default()
    };
    // However this ends (a store error returns early), the reader stops.
    let _stop_reading = StopOnDrop(stop);
    while let Some(Batch { mut save, lines }) = rx.recv().await {
        report.lines += lines;
        report.valid += save.jobs.len() as u64;
        for r in &save.rejects {
            report.note_reject(r);
        }
        save.jobs
            .sort_unstable_by(|a, b| a.isbn.cmp(&b.isbn).then(a.line.cmp(&b.line)));
        save.jobs.dedup_by(|later, first| later.isbn == first.isbn);
        report.queued += store
            .save_load_batch(&source, &save, crate::clock::now_ms())
            .await?;
    }
    let detected = reader.await.unwrap_or_else(|e| {
        Err(input::Error::Io(std::io::Error::other(format!(
            "reader thread failed: {e}"
        ))))
    });
    if let Ok(d) = &detected
        && !matches!(d.shape, Shape::Empty | Shape::Binary)
    {
        report.read_as = Some(d.describe());
    }
    report.problem = match detected.map(|d| d.shape) {
        Ok(Shape::Empty) => Some("the input is empty".to_string()),
        Ok(Shape::Binary) => Some(format!(
            "looks like a binary file (a NUL byte in the first 8 KiB), not an ISBN list; \
             skipped (rejected as {})",
            RejectReason::BinaryFile
        )),
        Ok(_) if report.valid == 0 => Some("no line holds a valid ISBN".to_string()),
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    store
        .record_load(&report.record(), crate::clock::now_ms())
        .await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_counts_reasons_and_examples() {
        let mut r = SourceReport {
            source: "list.txt".into(),
            lines: 5,
            valid: 3,
            queued: 2,
            ..SourceReport::default()
        };
        for line in [4, 5] {
            r.note_reject(&Reject {
                line,
                raw: "9.78044E+12".into(),
                reason: RejectReason::ScientificNotation,
            });
        }
        let text = r.render();
        assert!(
            text.starts_with(
                "list.txt: 5 lines read: 2 new ISBNs queued, 1 already known, 2 rejected"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "scientific-notation        2  line 4: 9.78044E+12 | line 5: 9.78044E+12"
            ),
            "{text}"
        );
    }
}
