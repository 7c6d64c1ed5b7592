/*!
The one clock: every timestamp the tool stores or compares comes from here, so a test or a
future fake clock has one place to stand in.
*/

use chrono::{DateTime, Utc};

/// Now, as a UTC time.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Now, in Unix milliseconds (the unit of every timestamp in the database).
pub fn now_ms() -> i64 {
    now().timestamp_millis()
}
