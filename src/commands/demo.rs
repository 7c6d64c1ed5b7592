//! `demo`: the whole flow offline, against the fake API, in a database of its own.

use super::*;

/// The demo's fake: real books (as the goodreads export names them), known to one source or
/// both, with a wrong book, a 503 that a retry fixes, fields only one source has, and a French
/// book only the BnF's catalogue holds.
pub(super) fn demo_fake() -> FakeConfig {
    let mut config = FakeConfig {
        latency: Duration::from_millis(40),
        ..FakeConfig::default()
    };
    let books = [
        ("9780002005883", "Gilead", "Marilynne Robinson"),
        ("9780002261982", "Spider's Web", "Agatha Christie"),
        ("9780006163831", "The One Tree", "Stephen R. Donaldson"),
        ("9780006178736", "Rage of Angels", "Sidney Sheldon"),
        ("9780006280897", "The Four Loves", "C.S. Lewis"),
        ("9780006280934", "The Problem of Pain", "C.S. Lewis"),
        (
            "9780006380832",
            "Empires of the Monsoon: A History of the Indian Ocean and Its Invaders",
            "Richard Seymour Hall",
        ),
    ];
    // Marguerite Duras, L'Amant de la Chine du Nord (Gallimard, Folio), as goodreads names it.
    let bnf_only = "9782070388097";
    config.catalogue.insert(
        bnf_only.into(),
        (
            "L'Amant de la Chine du Nord".into(),
            vec!["Marguerite Duras".into()],
        ),
    );
    config.unknown.insert(bnf_only.into());
    config.openlibrary.unknown.insert(bnf_only.into());
    for (isbn, title, author) in books {
        config
            .catalogue
            .insert(isbn.into(), (title.into(), vec![author.into()]));
    }
    // Neither source knows the three the goodreads export does not name either.
    for isbn in ["9780002238304", "9780006353287", "9780006470229"] {
        config.unknown.insert(isbn.into());
        config.openlibrary.unknown.insert(isbn.into());
    }
    // Open Library alone knows one; Google alone another; Google sends a wrong book for a third.
    config.unknown.insert("9780006380832".into());
    config.openlibrary.unknown.insert("9780002005883".into());
    config.wrong_book.insert("9780006178736".into());
    config
        .scripted
        .insert("9780002238304".into(), [Fault::Unavailable].into());
    config
}

/// The whole flow offline, against the fake API, in a database of its own.
pub(super) async fn demo(
    args: &DemoArgs,
    env: &Environment,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let db = &args.demo_db;
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot replace {}", db.display()));
            }
        }
    }
    let store = AnyStore::Sqlite(SqliteStore::open(db, true).await?);
    closing(store, async |store| demo_in(store, db, env, quiet).await).await
}

/// Every job: its state, its title (or why it has none), its authors, and where the fields
/// came from.
async fn say_table(store: &AnyStore) -> anyhow::Result<()> {
    say!()?;
    say!(
        "{:<13}  {:<9}  {:<34}  {:<22}  where the fields came from",
        "isbn13",
        "state",
        "title / why",
        "authors"
    )?;
    let mut records = store.records(&JobState::ALL);
    while let Some(r) = records.try_next().await? {
        let authors = Column::Authors.cell(&r).to_text();
        let from = crate::report::provenance_summary(r.provenance.as_deref());
        let what = r.title.or(r.last_error).unwrap_or_default();
        say!(
            "{:<13}  {:<9}  {:<34}  {:<22}  {from}",
            r.isbn13,
            r.state,
            shorten(&what, 34),
            shorten(&authors, 22)
        )?;
    }
    Ok(())
}

/// The demo's load, crawl and table, on its fresh database `db`.
async fn demo_in(
    store: &AnyStore,
    db: &Path,
    env: &Environment,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let fake = FakeApi::start(demo_fake())
        .await
        .context("cannot start the fake API on 127.0.0.1")?;
    say!(
        "demo: fake Google Books, Open Library and BnF catalogue at {}, database {}",
        fake.url(),
        db.display()
    )?;
    let report = crate::load::load_reader(
        store,
        "data/sample-isbns.txt".into(),
        Box::new(Cursor::new(SAMPLE.as_bytes())),
        &InputOptions::default(),
    )
    .await?;
    put!("{}", report.render())?;

    // The options a user would type, against the fake.
    #[derive(clap::Parser)]
    struct DemoCrawl {
        #[command(flatten)]
        crawl: CrawlArgs,
    }
    let url = fake.url();
    let bnf = format!("bnf={url}/sru/bnf");
    let args = <DemoCrawl as clap::Parser>::try_parse_from([
        "demo",
        "--providers=google,openlibrary,bnf",
        "--sru-url",
        &bnf,
        "--sru-rate=bnf=20/s",
        "--rate=20/s",
        "--openlibrary-rate=20/s",
        "--backoff-base=200ms",
        "--backoff-max=2s",
        "--timeout=10s",
        "--api-url",
        &url,
        "--openlibrary-url",
        &url,
    ])?
    .crawl;
    let demo_env = Environment {
        api_key: Some(SecretString::from("demo-key".to_string())),
        ..env.clone()
    };
    let lanes = lanes_for(&args, &demo_env)?;
    let report_path = db.with_file_name("demo-report.html");
    let report = ReportFile {
        path: report_path.clone(),
        database: db.display().to_string(),
        guard: Guard::default(),
    };
    let opts = crawl_options(&args, "demo");
    let summary = crawl_with(store, lanes, opts, env, quiet, Some(report)).await?;
    let code = report_summary(&summary, false)?;
    say_table(store).await?;
    say!("\nreport: {} (open it in a browser)", report_path.display())?;
    say!(
        "query it: sqlite3 {} 'select isbn13, title, authors from books'",
        db.display()
    )?;
    Ok(code)
}
