use clap::Parser;

use isbn_crawler::{Environment, ExitCode, cli::Cli};

fn main() -> std::process::ExitCode {
    // .env may hold GOOGLE_BOOKS_API_KEY (and other settings); the environment wins over it.
    let _ = dotenvy::dotenv();
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("isbn-crawler: cannot start the async runtime: {e}");
            return ExitCode::Error.into();
        }
    };
    match runtime.block_on(isbn_crawler::run(cli, Environment::from_process())) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("isbn-crawler: {e:#}");
            ExitCode::for_error(&e).into()
        }
    }
}
