//! The SRU client against the fake's catalogues (each in its own envelope): found, missed,
//! paged and failed as the outcome table says. The client is not yet a crawl provider
//! (issue 27); these pin what it already does.

use std::time::Duration;

use isbn_crawler::fake_api::{FakeApi, FakeConfig, SruConfig};
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
