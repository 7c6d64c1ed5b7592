/*!
The exit codes, one per thing a script may want to react to. Documented in the README; the
numbers are part of the interface and never change meaning.
*/

/// What the process tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything asked was done (a crawl: every job reached a final state, none `failed`).
    Success = 0,
    /// An unexpected error; the message says what and where.
    Error = 1,
    /// Bad usage or configuration: an unknown option, a bad value, no API key.
    Usage = 2,
    /// An input could not be read (at all, or only part-way), or none of it held a valid ISBN.
    NoInput = 3,
    /// The crawl finished, but some jobs ended `failed` (see `last_error`).
    JobsFailed = 4,
    /// The daily quota (Google's, or `--daily-budget`) is spent; run again after it resets.
    QuotaExhausted = 5,
    /// Google refused the key or the project (bad key, API not enabled, unknown location).
    ApiRejected = 6,
    /// The database is locked, full, read-only, not ours, or from a newer version.
    Storage = 7,
    /// `show`: the ISBN is valid but was never loaded.
    NotLoaded = 8,
    /// Stopped by Ctrl-C or SIGTERM; run again to resume.
    Interrupted = 130,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The code for an error that ended a command: storage problems have their own.
    pub fn for_error(err: &anyhow::Error) -> ExitCode {
        for cause in err.chain() {
            if let Some(e) = cause.downcast_ref::<crate::store::Error>() {
                return match e {
                    crate::store::Error::Missing { .. } | crate::store::Error::BadUrl => {
                        ExitCode::Usage
                    }
                    crate::store::Error::Other { .. } => ExitCode::Error,
                    _ => ExitCode::Storage,
                };
            }
            if cause.downcast_ref::<crate::UsageError>().is_some() {
                return ExitCode::Usage;
            }
        }
        ExitCode::Error
    }
}

/// Whether `err` is a write to a closed pipe (`export | head`): the reader has what it wanted,
/// so the command ends quietly with 0, as ripgrep does.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == BrokenPipe)
            || cause.downcast_ref::<csv::Error>().is_some_and(
                |e| matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == BrokenPipe),
            )
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(BrokenPipe))
    })
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}
