//! Ctrl-C and SIGTERM: stop claiming, then cut requests in flight, then exit.

use super::*;

/// Ctrl-C or SIGTERM: stop claiming; after [`GRACE`], cut requests in flight; a second signal
/// exits at once (the next run recovers whatever was leased).
pub(super) fn spawn_signal_handler(control: Control) -> tokio::task::JoinHandle<()> {
    // Listen before returning: a signal that arrived before the task first ran, or between the
    // first and a second listener, would otherwise be lost (or kill the process outright).
    let mut signals = Signals::listen();
    tokio::spawn(async move {
        signals.next().await;
        eprintln!("stopping: finishing requests in flight (press Ctrl-C again to quit at once)");
        control.interrupt.cancel();
        tokio::select! {
            _ = tokio::time::sleep(GRACE) => control.abort.cancel(),
            _ = signals.next() => std::process::exit(i32::from(ExitCode::Interrupted.code())),
        }
        signals.next().await;
        std::process::exit(i32::from(ExitCode::Interrupted.code()));
    })
}

/// SIGINT and SIGTERM, listened to once for the whole run.
pub(super) struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn listen() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = signal(SignalKind::interrupt())
                .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
                .ok();
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((int, term)) = &mut self.streams {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
