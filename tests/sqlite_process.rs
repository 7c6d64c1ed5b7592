//! The process-wide SQLite setting `main` makes, in a test binary of its own: it must come
//! before any thread touches SQLite, which the parallel tests of the other binaries cannot
//! promise.

use isbn_crawler::store::sqlite::{self, SqliteStore};
use libsqlite3_sys as ffi;

/// SQLite's count of the memory it has in use, and its high-water mark.
fn memory_used() -> (i64, i64) {
    let (mut current, mut highest) = (0i64, 0i64);
    // SAFETY: two valid out-pointers; reading a status is thread-safe.
    let rc = unsafe {
        ffi::sqlite3_status64(
            ffi::SQLITE_STATUS_MEMORY_USED,
            &mut current,
            &mut highest,
            0,
        )
    };
    assert_eq!(rc, ffi::SQLITE_OK);
    (current, highest)
}

#[tokio::test]
async fn sqlite_counts_no_memory_once_statistics_are_off() {
    // SAFETY: the only test of this binary, before anything has touched SQLite.
    unsafe { sqlite::without_memory_statistics() };
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("t.db"), true)
        .await
        .expect("open and migrate");
    // Creating and migrating a database allocates plenty: with statistics on, both are > 0.
    assert_eq!(memory_used(), (0, 0), "SQLite still counts its memory");
    store.close().await;
}
