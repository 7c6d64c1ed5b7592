//! The national libraries against the fake's catalogues (each in its own envelope): the SRU
//! client found, missed, paged and failed as the outcome table says, and crawls that route
//! each ISBN to the catalogue of its country.

use std::time::Duration;

use std::collections::HashSet;

use crate::common::{self, Scratch, start_fake};
use isbn_crawler::ExitCode;
use isbn_crawler::fake_api::{FakeApi, FakeConfig, OpenLibraryConfig, SruConfig};
use isbn_crawler::isbn::{Isbn13, parse};
use isbn_crawler::providers::sru::client::Client;
use isbn_crawler::providers::sru::profile::{self, Profile};
use isbn_crawler::providers::{Answer, Outcome, Provider};

fn isbns(list: &[&str]) -> Vec<Isbn13> {
    list.iter().map(|s| parse(s).expect("valid")).collect()
}

async fn ask(fake: &FakeApi, profile: &'static Profile, asked: &[Isbn13]) -> Answer {
    let base = format!("{}/sru/{}", fake.url(), profile.name);
    let client = Client::new(
        profile,
        &base,
        "isbn-crawler/test",
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .expect("client");
    client.lookup(asked).await
}

/// `found`, `not_found` or `none` per ISBN, with the found book's title.
fn verdicts(answer: &Answer) -> Vec<String> {
    let Answer::Items(items) = answer else {
        panic!("failed: {answer:?}");
    };
    items
        .iter()
        .map(|o| match o {
            Some(Outcome::Found(b)) => format!("found {}", b.isbn13),
            Some(Outcome::NotFound { .. }) => "not_found".into(),
            None => "none".into(),
            Some(other) => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn every_catalogue_answers_in_its_own_envelope_and_misses_are_misses() {
    let asked = isbns(&["9783406568442", "9780674033801", "2707302759"]);
    let fake = FakeApi::start(FakeConfig {
        sru: SruConfig {
            unknown: ["9780674033801".to_string()].into(),
            ..SruConfig::default()
        },
        ..FakeConfig::default()
    })
    .await
    .expect("fake");
    for p in [&profile::DNB, &profile::K10PLUS, &profile::BNF] {
        let answer = ask(&fake, p, &asked).await;
        assert_eq!(
            verdicts(&answer),
            ["found 9783406568442", "not_found", "found 9782707302755"],
            "{}",
            p.name
        );
    }
    // LoC's batch misses are no verdict; alone, the miss is one.
    let loc = ask(&fake, &profile::LOC, &asked).await;
    assert_eq!(
        verdicts(&loc),
        ["found 9783406568442", "none", "found 9782707302755"]
    );
    let alone = ask(&fake, &profile::LOC, &asked[1..2]).await;
    assert_eq!(verdicts(&alone), ["not_found"]);
    if let Answer::Items(items) = ask(&fake, &profile::DNB, &asked[..1]).await
        && let Some(Some(Outcome::Found(book))) = items.first()
    {
        assert_eq!(
            book.title.as_deref(),
            Some(isbn_crawler::fake_api::title_for("9783406568442").as_str())
        );
        assert_eq!(book.published_year, Some(2000));
    } else {
        panic!("DNB did not find the book");
    }
}

#[tokio::test]
async fn a_batch_with_more_records_than_a_page_is_paged_not_missed() {
    let asked = isbns(&["9783406568442", "9780674033801", "2707302759"]);
    let fake = FakeApi::start(FakeConfig {
        sru: SruConfig {
            editions: 2,
            page_size: Some(2),
            ..SruConfig::default()
        },
        ..FakeConfig::default()
    })
    .await
    .expect("fake");
    let answer = ask(&fake, &profile::DNB, &asked).await;
    assert_eq!(
        verdicts(&answer),
        [
            "found 9783406568442",
            "found 9780674033801",
            "found 9782707302755"
        ]
    );
    // Six records two a page: three requests, not one read as three misses.
    assert_eq!(fake.sru_requests(), 3);
    // Of two editions, the newer is kept.
    if let Answer::Items(items) = &answer
        && let Some(Some(Outcome::Found(book))) = items.first()
    {
        assert_eq!(book.published_year, Some(2001));
    }
}

#[tokio::test]
async fn a_diagnostic_in_a_200_is_no_verdict_for_any_isbn() {
    let asked = isbns(&["9783406568442"]);
    for (uri, permanent) in [
        ("info:srw/diagnostic/1/2", false),
        ("info:srw/diagnostic/1/10", true),
    ] {
        let fake = FakeApi::start(FakeConfig {
            sru: SruConfig {
                diagnostic: Some(uri.into()),
                ..SruConfig::default()
            },
            ..FakeConfig::default()
        })
        .await
        .expect("fake");
        match ask(&fake, &profile::DNB, &asked).await {
            Answer::Failed(Outcome::Permanent { error }) if permanent => {
                assert!(error.contains("fake diagnostic"), "{error}");
            }
            Answer::Failed(Outcome::Transient { .. }) if !permanent => {}
            other => panic!("{uri}: {other:?}"),
        }
    }
}

/// `n` valid ISBN-13s starting with `prefix`, the `from`-th and on.
fn run_of(prefix: &str, from: u64, n: u64) -> Vec<String> {
    (from..from + n)
        .map(|i| isbn_crawler::isbn::synthetic_in(prefix, i).to_string())
        .collect()
}

/// Crawls through the library with every source at the fake, fast; `extra` last.
async fn crawl(s: &Scratch, api: &FakeApi, extra: &[&str]) -> ExitCode {
    let sru = common::sru_args(api);
    let mut args: Vec<&str> = sru.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    common::crawl(s, api, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coverage_recipe_asks_each_catalogue_its_own_books_and_google_the_rest() {
    coverage_recipe(Scratch::new()).await;
}

/// The same on PostgreSQL (skipped where no server is at hand; see `common/pg.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coverage_recipe_on_postgresql() {
    if let Some(s) = Scratch::postgres().await {
        coverage_recipe(s).await;
    }
}

async fn coverage_recipe(s: Scratch) {
    let german = run_of("9783", 0, 12);
    let french = run_of("97910", 0, 6);
    let english = run_of("9780", 0, 8);
    let italian = run_of("97888", 0, 4);
    let all: Vec<String> = [&german, &french, &english, &italian]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    assert_eq!(s.load_lines(&all).await, ExitCode::Success);
    // Open Library knows half the English books and nothing else.
    let ol_unknown: HashSet<String> = all
        .iter()
        .filter(|i| !english[..4].contains(i))
        .cloned()
        .collect();
    let api = start_fake(FakeConfig {
        openlibrary: OpenLibraryConfig {
            unknown: ol_unknown,
            ..OpenLibraryConfig::default()
        },
        ..FakeConfig::default()
    })
    .await;
    let args = [
        "--providers",
        "openlibrary,national,google",
        "--fill",
        "missing",
    ];
    assert_eq!(crawl(&s, &api, &args).await, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 30)].into());
    let asked = |name| {
        api.sru_asked(name)
            .1
            .into_iter()
            .collect::<HashSet<String>>()
    };
    let set = |v: &[String]| v.iter().cloned().collect::<HashSet<String>>();
    assert_eq!(
        asked("dnb"),
        set(&german),
        "the DNB is asked the German books only"
    );
    assert_eq!(asked("bnf"), set(&french));
    assert_eq!(
        asked("loc"),
        set(&english[4..]),
        "LoC only what Open Library lacked"
    );
    assert!(asked("k10plus").is_empty(), "not named");
    // Google's quota went to the books no free catalogue is routed: the Italian ones.
    assert_eq!(
        set(&api.requests_per_isbn().into_keys().collect::<Vec<_>>()),
        set(&italian)
    );
    // Batched: twelve German books in a few requests, not twelve.
    assert!(api.sru_asked("dnb").0 <= 3, "{:?}", api.sru_asked("dnb"));
    let from = s
        .grouped("SELECT provider, count(*) FROM provider_books GROUP BY provider")
        .await;
    assert_eq!(from["dnb"], 12, "{from:?}");
    assert_eq!(from["bnf"], 6);
    assert_eq!(from["loc"], 4);
    assert_eq!(from["openlibrary"], 4);
    assert_eq!(from["google"], 4);
    // The report counts books per registration group and who found them.
    let report = s.dir.path().join("r.html").display().to_string();
    assert_eq!(s.run(&["report", "-o", &report]).await, ExitCode::Success);
    let html = std::fs::read_to_string(&report).expect("report");
    let groups = html
        .split("id=\"groups\"")
        .nth(1)
        .expect("a groups section");
    for expected in [
        "978-3", "German", "979-10", "France", "978-88", "Italy", "dnb", "bnf",
    ] {
        assert!(groups.contains(expected), "{expected} missing: {groups}");
    }
    assert!(
        html.contains("Bibliothèque nationale de France (bnf)"),
        "the licence's note"
    );
    // No catalogue has a lookup for a book outside its registration groups.
    assert_eq!(
        s.scalar("SELECT count(*) FROM lookups WHERE provider = 'dnb' AND isbn13 NOT LIKE '9783%'")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_catalogues_habits_are_cleaned_and_a_word_index_accident_is_never_stored() {
    let process = run_of("9783", 50, 1)[0].clone();
    let german = [process.clone(), run_of("9783", 1, 1)[0].clone()];
    let english = run_of("9780", 0, 3);
    let french = run_of("9782", 0, 2);
    let all: Vec<String> = [&german[..], &english, &french].concat();
    let s = Scratch::new();
    assert_eq!(s.load_lines(&all).await, ExitCode::Success);
    let api = start_fake(FakeConfig {
        catalogue: [(
            process.clone(),
            ("Der Proceß".to_string(), vec!["Franz Kafka".to_string()]),
        )]
        .into(),
        sru: SruConfig {
            false_positive: [german[1].clone(), french[1].clone()].into(),
            batch_misses: [english[2].clone()].into(),
            ..SruConfig::default()
        },
        ..FakeConfig::default()
    })
    .await;
    assert_eq!(
        crawl(&s, &api, &["--providers", "national"]).await,
        ExitCode::Success
    );
    // K10plus's accident is an e-book found by the print ISBN in its 776 $z: not the book.
    let k10 = ["--providers", "k10plus", "--route", "k10plus=9783"];
    assert_eq!(crawl(&s, &api, &k10).await, ExitCode::Success);
    assert_eq!(
        s.grouped("SELECT state, count(*) FROM lookups WHERE provider = 'k10plus' GROUP BY state")
            .await,
        [("done".to_string(), 1), ("not_found".to_string(), 1)].into()
    );
    let by_state = s
        .grouped("SELECT state, count(*) FROM jobs GROUP BY state")
        .await;
    assert_eq!(by_state["done"], 5, "{by_state:?}");
    assert_eq!(by_state["not_found"], 2, "the two accidents: {by_state:?}");
    // Nothing of the accidents was stored, by any catalogue.
    let stored = s
        .strings("SELECT isbn13 FROM provider_books ORDER BY isbn13")
        .await;
    assert!(
        !stored.contains(&german[1]) && !stored.contains(&french[1]),
        "{stored:?}"
    );
    // DNB: NFD and its non-sort markers gone, the article kept, the name in display order.
    let title = s
        .strings(&format!(
            "SELECT title FROM books WHERE isbn13 = '{process}'"
        ))
        .await;
    assert_eq!(title, ["Der Proceß"]);
    let authors = s
        .strings(&format!(
            "SELECT authors FROM books WHERE isbn13 = '{process}'"
        ))
        .await;
    assert_eq!(authors, [r#"["Franz Kafka"]"#]);
    // LoC: the qualifier in 020 $a, the padded LCCN, the segment mark; the batch miss asked
    // alone and found.
    let loc = s
        .strings(&format!(
            "SELECT lccn || '|' || ddc || '|' || lcc FROM books WHERE isbn13 = '{}'",
            english[0]
        ))
        .await;
    assert_eq!(loc, ["89007588|791.43658|PN1995.9 .A43 2000"]);
    assert!(stored.contains(&english[2]), "asked alone, found");
    // BnF: found through its hyphenated 010, the raw record is MARC-in-JSON sqlite3 can read.
    let leader = s
        .strings(&format!(
            "SELECT json_extract(raw_json, '$.leader') FROM provider_books
             WHERE provider = 'bnf' AND isbn13 = '{}'",
            french[0]
        ))
        .await;
    assert_eq!(leader.len(), 1, "{stored:?}");
    // Its licence asks for the source and the record's date: the book carries both.
    let attribution = s
        .strings(&format!(
            "SELECT attribution FROM books_flat WHERE isbn13 = '{}'",
            french[0]
        ))
        .await;
    assert_eq!(
        attribution,
        ["Source: Bibliothèque nationale de France, record of 2020-01-01"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_cost_nothing_and_a_refusing_catalogue_stops_alone() {
    let german = run_of("9783", 0, 30);
    let french = run_of("9782", 0, 10);
    let s = Scratch::new();
    assert_eq!(
        s.load_lines(&[&german[..], &french].concat()).await,
        ExitCode::Success
    );
    let api = start_fake(FakeConfig {
        sru: SruConfig {
            refused: ["bnf".to_string()].into(),
            random: isbn_crawler::fake_api::FaultRates {
                unavailable: 0.1,
                reset: 0.1,
                truncated: 0.1,
                seed: 7,
                ..Default::default()
            },
            temporary_rate: 0.1,
            ..SruConfig::default()
        },
        ..FakeConfig::default()
    })
    .await;
    let args = [
        "--providers",
        "dnb,bnf",
        "--sru-batch",
        "5",
        "--max-attempts",
        "20",
    ];
    assert_eq!(crawl(&s, &api, &args).await, ExitCode::ApiRejected);
    // Every German book found despite the faults; the French ones wait for the next crawl.
    assert_eq!(
        s.grouped("SELECT state, count(*) FROM lookups WHERE provider = 'dnb' GROUP BY state")
            .await,
        [("done".to_string(), 30)].into()
    );
    let bnf = s
        .grouped("SELECT state, count(*) FROM lookups WHERE provider = 'bnf' GROUP BY state")
        .await;
    assert_eq!(bnf, [("pending".to_string(), 10)].into(), "nothing lost");
    assert_eq!(
        s.scalar("SELECT count(*) FROM lookups WHERE provider = 'bnf' AND attempts > 0")
            .await,
        0,
        "a refusal costs no attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalogue_is_asked_one_request_at_a_time_gzipped_by_a_named_client() {
    let german = run_of("9783", 0, 40);
    let s = Scratch::new();
    assert_eq!(s.load_lines(&german).await, ExitCode::Success);
    let api = start_fake(FakeConfig {
        latency: Duration::from_millis(5),
        ..FakeConfig::default()
    })
    .await;
    let env = isbn_crawler::Environment {
        contact: Some("me@example.org".into()),
        ..common::env_with_key()
    };
    let url = format!("dnb={}/sru/dnb", api.url());
    let args = [
        "crawl",
        "--providers",
        "dnb",
        "--sru-url",
        &url,
        "--sru-rate",
        "dnb=unlimited",
        "--sru-batch",
        "4",
    ];
    assert_eq!(s.run_with(&args, env).await, ExitCode::Success);
    assert_eq!(s.states().await, [("done".to_string(), 40)].into());
    assert_eq!(api.sru_max_in_flight(), 1, "one request in flight");
    let clients = api.sru_clients();
    assert_eq!(clients.len(), 10, "40 books, 4 a request");
    for (agent, gzip) in clients {
        assert!(
            agent.starts_with("isbn-crawler/") && agent.contains("+mailto:me@example.org"),
            "{agent}"
        );
        assert!(gzip, "gzip asked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_points_a_catalogue_at_a_mirror_and_the_flag_wins() {
    let s = Scratch::new();
    assert_eq!(s.load_lines(&run_of("9783", 0, 3)).await, ExitCode::Success);
    let api = start_fake(FakeConfig::default()).await;
    let out = common::binary_async()
        .args([
            "--db",
            &s.db_str(),
            "--quiet",
            "crawl",
            "--providers",
            "dnb",
        ])
        .args(["--sru-rate", "dnb=unlimited"])
        .env("ISBN_CRAWLER_SRU_URL_DNB", format!("{}/sru/dnb", api.url()))
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(api.sru_asked("dnb").0, 1);
    // A --sru-url wins over the variable: here one where nothing listens, for two new books.
    assert_eq!(
        s.load_lines(&run_of("9783", 10, 2)).await,
        ExitCode::Success
    );
    let out = common::binary_async()
        .args([
            "--db",
            &s.db_str(),
            "--quiet",
            "crawl",
            "--providers",
            "dnb",
        ])
        .args(["--sru-rate", "dnb=unlimited", "--max-attempts", "1"])
        .args([
            "--sru-url",
            "dnb=http://127.0.0.1:9/sru/dnb",
            "--route",
            "dnb=all",
        ])
        .env("ISBN_CRAWLER_SRU_URL_DNB", format!("{}/sru/dnb", api.url()))
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(4), "the two failed there: {out:?}");
    assert_eq!(api.sru_asked("dnb").0, 1, "the mirror was not asked again");
}
