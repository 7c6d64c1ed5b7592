//! `report`: the page's numbers agree with `status --json`, values from the database render as
//! text, and a real browser (headless Chromium) shows it. Outside CI, without Chromium, the
//! browser test says it was skipped; under `CI=true` it fails instead.

use crate::common;

use std::path::Path;

use common::{Scratch, binary, crawl, loaded, start_fake, text};
use isbn_crawler::ExitCode;
use isbn_crawler::fake_api::FakeConfig;

const XSS: &str = "<script>alert(1)</script>";

/// A crawled database with a hostile title and a hostile file name; returns the report path.
async fn crawled_with_hostile_values() -> (Scratch, String) {
    // Few enough that every book is among "the latest books" the page lists.
    let (s, list) = loaded(8).await;
    let hostile_file = s.file("my \"books\" <list>.txt", b"9780306406157\nnot an isbn\n");
    assert_eq!(s.run(&["load", &hostile_file]).await, ExitCode::Success);
    let mut config = FakeConfig::default();
    config.catalogue.insert(
        list[0].clone(),
        (XSS.to_string(), vec!["<b>Bold</b>".into()]),
    );
    config.unknown.insert(list[1].clone());
    config.openlibrary.unknown.insert(list[1].clone());
    let api = start_fake(config).await;
    let both = ["--providers", "google,openlibrary"];
    assert_eq!(crawl(&s, &api, &both).await, ExitCode::Success);
    let report = s.dir.path().join("report.html").display().to_string();
    let out = binary()
        .args(["--db", &s.db_str(), "report", "-o", &report])
        .output()
        .expect("report");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    (s, report)
}

fn number(doc: &scraper::Html, id: &str) -> u64 {
    let sel = scraper::Selector::parse(&format!("#{id}")).expect("selector");
    doc.select(&sel)
        .next()
        .unwrap_or_else(|| panic!("#{id} in the page"))
        .text()
        .collect::<String>()
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_numbers_agree_with_status_and_values_are_text() {
    let (s, report) = crawled_with_hostile_values().await;
    let html = std::fs::read_to_string(&report).expect("read report");
    let doc = scraper::Html::parse_document(&html);
    let out = binary()
        .args(["--db", &s.db_str(), "status", "--json"])
        .output()
        .expect("status");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let jobs = |k: &str| status["jobs"][k].as_u64().expect("count");
    assert_eq!(
        number(&doc, "loaded"),
        status["total"].as_u64().expect("total")
    );
    assert_eq!(number(&doc, "found"), jobs("done"));
    assert_eq!(number(&doc, "not-found"), jobs("not_found"));
    assert_eq!(number(&doc, "failed"), jobs("failed"));
    assert_eq!(
        number(&doc, "pending"),
        jobs("pending") + jobs("in_progress")
    );
    assert_eq!(jobs("done"), 8);
    assert_eq!(jobs("not_found"), 1);

    // The hostile title and file name are shown, as text, never as markup.
    assert!(!html.contains(XSS), "raw markup in the page");
    assert!(!html.contains("<b>Bold</b>"));
    let body_text: String = doc.root_element().text().collect();
    assert!(body_text.contains(XSS), "the title is shown as text");
    assert!(
        body_text.contains("my \"books\" <list>.txt"),
        "the file name is shown"
    );
    // Its row: 2 lines read, 1 queued, 1 rejected.
    let rows = scraper::Selector::parse("tr").expect("selector");
    let cells = scraper::Selector::parse("td").expect("selector");
    let row: Vec<String> = doc
        .select(&rows)
        .map(|r| {
            r.select(&cells)
                .map(|c| c.text().collect())
                .collect::<Vec<String>>()
        })
        .find(|r| {
            r.first()
                .is_some_and(|f| f.ends_with("my \"books\" <list>.txt"))
        })
        .expect("a row for the hostile file");
    assert_eq!(&row[1..4], ["2", "1", "1"], "lines read, queued, rejected");
    let scripts = scraper::Selector::parse("script").expect("selector");
    assert_eq!(doc.select(&scripts).count(), 0, "no script at all");
    // Self-contained: nothing is fetched when it is opened.
    for attr in ["src=", "href=\"http", "@import", "url("] {
        assert!(!html.contains(attr), "{attr} in the page");
    }
    // Every chart has an accessible title.
    let charts = scraper::Selector::parse("svg").expect("selector");
    let titles = scraper::Selector::parse("svg > title").expect("selector");
    assert!(doc.select(&charts).count() >= 3);
    assert_eq!(doc.select(&charts).count(), doc.select(&titles).count());
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn headless(browser: &str, profile: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_shows_the_headline_and_draws_the_page() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but no Chromium: .ci/run installs it (apt-get install chromium)"
        );
        eprintln!("skipped: no Chromium on this machine (apt-get install chromium)");
        return;
    };
    let (s, report) = crawled_with_hostile_values().await;
    let url = format!("file://{report}");
    let profile = tempfile::tempdir().expect("profile");
    let out = headless(browser, profile.path())
        .args(["--dump-dom", &url])
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    let doc = scraper::Html::parse_document(&dom);
    assert_eq!(number(&doc, "loaded"), 9, "{dom}");
    assert_eq!(number(&doc, "found"), 8);
    assert!(
        !dom.contains(XSS),
        "the browser made no element of the title"
    );

    let png = s.dir.path().join("report.png");
    let out = headless(browser, profile.path())
        .arg(format!("--screenshot={}", png.display()))
        .args(["--window-size=1000,1600", &url])
        .output()
        .expect("chromium runs");
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png).expect("open png"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    let pixels = &pixels[..info.buffer_size()];
    let distinct: std::collections::HashSet<&[u8]> = pixels
        .chunks(info.color_type.samples())
        .take(1000 * 1600)
        .collect();
    assert!(
        distinct.len() > 50,
        "the screenshot is blank ({} colours)",
        distinct.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_writes_its_report_as_it_goes_and_at_the_end() {
    let (s, _) = loaded(12).await;
    let api = start_fake(FakeConfig::default()).await;
    let page = s.dir.path().join("live.html").display().to_string();
    assert_eq!(
        crawl(&s, &api, &["--report", &page]).await,
        ExitCode::Success
    );
    let html = std::fs::read_to_string(&page).expect("the report was written");
    let doc = scraper::Html::parse_document(&html);
    assert_eq!(number(&doc, "found"), 12);
    // The last one is final: no refresh.
    assert!(!html.contains("http-equiv=\"refresh\""));
    let mode = std::fs::metadata(&page).expect("meta");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            mode.permissions().mode() & 0o777,
            0o644,
            "readable like any file"
        );
    }
}
