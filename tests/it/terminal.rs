//! What people read is safe for their terminal, and a closed stdout ends a command quietly.

use crate::common;

use std::process::Stdio;

use common::{Scratch, binary, crawl_binary, start_fake, text};
use isbn_crawler::ExitCode;
use isbn_crawler::fake_api::{FakeConfig, OpenLibraryConfig, OpenLibraryFault};

const HOSTILE: &str = "Evil\u{1b}[2J\u{1b}]52;c;aGVsbG8=\u{7}\u{9b}31m";

fn no_escapes(out: &[u8]) {
    assert!(
        !out.iter().any(|&b| b == 0x1b || b == 0x07),
        "raw control bytes reached the terminal: {}",
        String::from_utf8_lossy(out).escape_debug()
    );
    assert!(!String::from_utf8_lossy(out).contains('\u{9b}'), "C1 CSI");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_is_shown_escaped_and_kept_as_received() {
    let s = Scratch::new();
    let isbn = "9780306406157";
    let name = format!("list\n{HOSTILE}forged: 1000 new ISBNs queued.txt");
    let list = s.file(&name, format!("{isbn}\n{HOSTILE}\n").as_bytes());
    let db = s.db_str();
    let out = binary()
        .args(["--db", &db, "load", &list])
        .output()
        .expect("load runs");
    assert!(out.status.success(), "{:?}", text(&out));
    no_escapes(&out.stdout);
    let (stdout, _) = text(&out);
    assert!(
        !stdout
            .lines()
            .any(|l| l.starts_with(HOSTILE) || l.starts_with("\u{1b}")),
        "a file name forged a line: {stdout}"
    );
    assert!(stdout.contains("list\\u{a}Evil\\u{1b}[2J"), "{stdout}");

    let out = binary()
        .args(["--db", &db, "rejects"])
        .output()
        .expect("rejects runs");
    assert!(out.status.success());
    no_escapes(&out.stdout);
    // The CSV keeps the line as it came.
    let out = binary()
        .args(["--db", &db, "rejects", "--format", "csv"])
        .output()
        .expect("rejects runs");
    assert!(text(&out).0.contains(HOSTILE));

    let mut config = FakeConfig::default();
    config.catalogue.insert(
        isbn.to_string(),
        (HOSTILE.to_string(), vec![HOSTILE.to_string()]),
    );
    let api = start_fake(config).await;
    let out = crawl_binary(&s, &api, &[])
        .output()
        .await
        .expect("crawl runs");
    assert!(out.status.success(), "{:?}", text(&out));

    let out = binary()
        .args(["--db", &db, "show", isbn])
        .output()
        .expect("show runs");
    assert!(out.status.success(), "{:?}", text(&out));
    no_escapes(&out.stdout);
    assert!(text(&out).0.contains("Evil\\u{1b}[2J"), "{:?}", text(&out));
    let out = binary()
        .args(["--db", &db, "show", "--json", isbn])
        .output()
        .expect("show runs");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["title"], HOSTILE, "JSON keeps the text as received");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_page_title_in_a_stop_message_is_escaped() {
    let s = Scratch::new();
    assert_eq!(
        s.load_lines(&["9780306406157".into()]).await,
        ExitCode::Success
    );
    let page = format!("<html><head><title>{HOSTILE}</title></head></html>");
    let api = start_fake(FakeConfig {
        openlibrary: OpenLibraryConfig {
            always: Some(OpenLibraryFault::Raw(403, page.into_bytes().into())),
            ..OpenLibraryConfig::default()
        },
        ..FakeConfig::default()
    })
    .await;
    let out = crawl_binary(&s, &api, &["--providers", "openlibrary"])
        .output()
        .await
        .expect("crawl runs");
    assert_eq!(out.status.code(), Some(ExitCode::ApiRejected.code().into()));
    let (stdout, _) = text(&out);
    assert!(stdout.contains("Open Library refused"), "{stdout}");
    assert!(stdout.contains("Evil\\u{1b}[2J"), "{stdout}");
    no_escapes(&out.stdout);
    no_escapes(&out.stderr);
}

/// ripgrep's rule: a reader that stops reading (`| head`) is no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_every_command_quietly_with_0() {
    let s = Scratch::new();
    let lines: Vec<String> = common::isbns(3000);
    assert_eq!(s.load_lines(&lines).await, ExitCode::Success);
    let db = s.db_str();
    let list = s.file("more.txt", lines.join("\n").as_bytes());
    let isbn = lines[0].as_str();
    for args in [
        vec!["export", "--state", "pending"],
        vec!["export", "--state", "pending", "--format", "jsonl"],
        vec!["export", "--state", "pending", "--format", "json"],
        vec!["show", isbn],
        vec!["show", "--json", isbn],
        vec!["status"],
        vec!["status", "--json"],
        vec!["rejects"],
        vec!["load", &list],
    ] {
        let mut child = binary()
            .args(["--db", &db])
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // The reading end closes before the command has written anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}
