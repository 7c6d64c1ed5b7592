//! Memory stays flat whatever a file holds: each reader is given a generated source far larger
//! than its bounds (a 50 MB CSV row, a 200 MB MARCXML text node, 200 MB of junk after a MARC
//! record) and the most heap held at once while reading it is measured by a counting allocator.
//! One test function runs the cases in turn, so no other test's allocations are counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

use isbn_crawler::input::{Format, InputOptions, Item, read_items};

struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grown = new_size - layout.size();
                let now = HELD.fetch_add(grown, Ordering::Relaxed) + grown;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                HELD.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MB: usize = 1_000_000;
/// The bound on what reading may hold, whatever the file.
const FLAT: usize = 64 * 1024 * 1024;

/// The items read from `source` as `format`, and the most heap held above the start meanwhile.
fn read(source: impl Read, format: Format) -> (Vec<String>, Result<(), String>, usize) {
    let opts = InputOptions {
        format,
        ..InputOptions::default()
    };
    let mut items = Vec::new();
    let base = HELD.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let result = read_items(source, &opts, &mut |item| {
        items.push(match item {
            Item::Valid { isbn, .. } => isbn.to_string(),
            Item::Rejected(r) => format!("{}:{}", r.line, r.reason),
        })
    })
    .map(|_| ())
    .map_err(|e| e.to_string());
    let peak = PEAK.load(Ordering::Relaxed) - base;
    (items, result, peak)
}

/// `head`, then `n` bytes of `fill`, then `tail`, generated as read.
fn generated(head: &[u8], fill: u8, n: usize, tail: &[u8]) -> impl Read {
    std::io::Cursor::new(head.to_vec())
        .chain(std::io::repeat(fill).take(n as u64))
        .chain(std::io::Cursor::new(tail.to_vec()))
}

#[test]
fn reading_holds_little_whatever_the_file_holds() {
    // A CSV row of 50 MB (one quoted field) between two good rows.
    let (items, result, peak) = read(
        generated(
            b"title,isbn\n\"",
            b'x',
            50 * MB,
            b"\",0306406152\nB,0439023483\n",
        ),
        Format::Csv,
    );
    assert!(result.is_ok(), "{result:?}");
    assert!(items.contains(&"9780439023481".to_string()), "{items:?}");
    assert!(peak < FLAT, "a 50 MB CSV row held {} MB", peak / MB);

    // A MARCXML text node of 200 MB, after one whole record.
    let record = b"<collection><record><controlfield tag=\"001\">a</controlfield>\
<datafield tag=\"020\"><subfield code=\"a\">0306406152</subfield></datafield></record>\
<record><datafield tag=\"500\"><subfield code=\"a\">";
    let (items, result, peak) = read(
        generated(
            record,
            b'x',
            200 * MB,
            b"</subfield></datafield></record></collection>",
        ),
        Format::Marcxml,
    );
    assert_eq!(items, ["9780306406157"]);
    let error = result.expect_err("an over-long text is the file's error");
    assert!(error.contains("longer than 1 MiB"), "{error}");
    assert!(peak < FLAT, "a 200 MB MARCXML text held {} MB", peak / MB);

    // 200 MB of junk without a record terminator after a MARC record.
    let mut head = record_iso2709();
    head.extend_from_slice(b"00100");
    let (items, result, peak) = read(generated(&head, b'7', 200 * MB, b""), Format::Marc);
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(items.first().map(String::as_str), Some("9780306406157"));
    assert!(
        peak < FLAT,
        "junk after a MARC record held {} MB",
        peak / MB
    );

    // A plain list whose one line is 200 MB.
    let (items, result, peak) = read(
        generated(b"0306406152\n", b'9', 200 * MB, b"\n0439023483\n"),
        Format::Text,
    );
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(items, ["9780306406157", "2:line-too-long", "9780439023481"]);
    assert!(peak < FLAT, "a 200 MB line held {} MB", peak / MB);
}

/// One ISO 2709 record: 001 `a`, 020 $a 0306406152.
fn record_iso2709() -> Vec<u8> {
    let fields: [(&str, &[u8]); 2] = [("001", b"a\x1E"), ("020", b"  \x1Fa0306406152\x1E")];
    let (mut directory, mut data) = (Vec::new(), Vec::new());
    for (tag, f) in fields {
        directory.extend_from_slice(format!("{tag}{:04}{:05}", f.len(), data.len()).as_bytes());
        data.extend_from_slice(f);
    }
    directory.push(0x1E);
    let base = 24 + directory.len();
    let len = base + data.len() + 1;
    let mut out = format!("{len:05}nam a22{base:05}   4500").into_bytes();
    out.extend_from_slice(&directory);
    out.extend_from_slice(&data);
    out.push(0x1D);
    out
}
