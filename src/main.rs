use clap::Parser;

use isbn_crawler::{Environment, ExitCode, cli::Cli};

fn main() -> std::process::ExitCode {
    // SAFETY: no other thread exists yet, so none can be calling SQLite.
    unsafe { isbn_crawler::store::sqlite::without_memory_statistics() };
    // .env may hold GOOGLE_BOOKS_API_KEY (and other settings); the environment wins over it.
    if let Err(e) = isbn_crawler::dotenv::load() {
        eprintln!("isbn-crawler: {}", isbn_crawler::terminal::safe(&e));
        return ExitCode::Usage.into();
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // sqlx's pool warns of every dead connection it drops after a server restart;
                // the error that stops the command says it once.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,sqlx_core::pool=error")
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    // One thread runs every task: a crawl's work is waiting on sockets, and its parsing is
    // small beside the wake-ups that handing tasks between worker threads costs (measured in
    // docs/performance.md). SQLite statements run on sqlx's own
    // thread, and `load` reads files on a thread of its own, so the two cores stay in use.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("isbn-crawler: cannot start the async runtime: {e}");
            return ExitCode::Error.into();
        }
    };
    match runtime.block_on(isbn_crawler::run(cli, Environment::from_process())) {
        Ok(code) => code.into(),
        Err(e) if isbn_crawler::exit::is_broken_pipe(&e) => ExitCode::Success.into(),
        Err(e) => {
            // File names, header names and answers from servers are in errors: shown escaped.
            eprintln!(
                "isbn-crawler: {}",
                isbn_crawler::terminal::safe(&format!("{e:#}"))
            );
            ExitCode::for_error(&e).into()
        }
    }
}
