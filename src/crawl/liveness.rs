/*!
Which runs are alive: this process's identity for the `runs` table, the heartbeat that keeps
its leases, and the probe that tells a run on this host whose process is gone.
*/

use std::sync::Arc;
use std::time::Duration;

use super::lane::Ctx;
use crate::clock::now_ms;
use crate::store::{self, CrawlStore, RunInfo};

/// Keeps this run's row fresh and its leases from running out while it works, and takes back
/// the lookups of runs that died meanwhile (another crawler on the database killed), waking the
/// lanes to claim them.
pub(super) async fn heartbeat<S: CrawlStore>(ctx: Arc<Ctx<S>>) {
    let every = (ctx.opts.lease / 3).max(Duration::from_millis(100));
    let lease_ms = ctx.opts.lease.as_millis() as i64;
    loop {
        tokio::time::sleep(every).await;
        let now = now_ms();
        if let Err(e) = ctx.store.heartbeat(ctx.run_id, now, now + lease_ms).await {
            tracing::warn!("heartbeat: {e}");
        }
        match recover(&ctx.store, ctx.run_id, &ctx.process).await {
            Ok(0) => {}
            Ok(_) => ctx.wake.notify_waiters(),
            Err(e) => tracing::warn!("taking back the leases of dead runs: {e}"),
        }
    }
}

/// Gives back the leases of runs that are gone (see [`is_alive`]) or ran out.
pub(super) async fn recover<S: CrawlStore>(
    store: &S,
    run_id: crate::store::RunId,
    me: &RunInfo,
) -> Result<u64, store::Error> {
    let recovered = store
        .recover_leases(run_id, now_ms(), &|other| is_alive(other, me))
        .await?;
    if recovered > 0 {
        tracing::info!(recovered, "took back the leases of runs that are gone");
    }
    Ok(recovered)
}

/// Who this process is, for the `runs` table.
pub fn this_process(command: &str, daily_budget: Option<u64>) -> RunInfo {
    let pid = std::process::id();
    RunInfo {
        command: command.to_string(),
        host: hostname(),
        host_id: host_id(),
        pid,
        pid_start: pid_start(pid),
        daily_budget,
    }
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Which kernel boot and PID namespace this process lives in. Two containers may share a host
/// name (and a machine id), but never both the boot and the PID namespace: runs alike in this
/// can see each other's processes, so one whose process is gone is known dead.
pub(super) fn host_id() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let pid_ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!("{}/{}", boot.trim(), pid_ns.display()))
}

/// The start time of a process (Linux: field 22 of /proc/PID/stat), so a reused pid is told
/// apart from the run that had it.
pub(super) fn pid_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_string)
}

/// Whether the run `other` may still be working. Only a run on this host whose process is
/// gone (or is another process now) is known dead; elsewhere, or where its process cannot be
/// read, its lease expiry decides.
pub(super) fn is_alive(other: &RunInfo, me: &RunInfo) -> bool {
    let same_host = match (&other.host_id, &me.host_id) {
        (Some(a), Some(b)) => a == b,
        // A run of an older version recorded only its host name.
        _ => other.host == me.host,
    };
    if !same_host || !std::path::Path::new("/proc/self/stat").exists() {
        return true;
    }
    still_its_process(look_at(other.pid), other.pid_start.as_deref())
}

/// What this host can tell of a process.
#[derive(Debug)]
pub(super) enum Seen {
    Gone,
    /// It exists, with its start time when `/proc/PID/stat` can be read (`hidepid=2` hides
    /// other users' processes there, though `kill` still finds them).
    Running(Option<String>),
}

pub(super) fn look_at(pid: u32) -> Seen {
    let Ok(signed) = libc::pid_t::try_from(pid) else {
        return Seen::Gone; // no process has such a pid
    };
    if signed == 0 {
        return Seen::Gone; // nor this one (0 would ask about our own process group)
    }
    // SAFETY: signal 0 is never delivered; kill only checks that the process exists (EPERM:
    // it does, under another user).
    let sent = unsafe { libc::kill(signed, 0) };
    if sent != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return Seen::Gone;
    }
    Seen::Running(pid_start(pid))
}

/// Whether what is seen is still the run's process: gone is dead, an unreadable start time is
/// taken as alive (its lease will say otherwise), another start time is a reused pid.
pub(super) fn still_its_process(seen: Seen, recorded_start: Option<&str>) -> bool {
    match seen {
        Seen::Gone => false,
        Seen::Running(None) => true,
        Seen::Running(Some(start)) => recorded_start.is_none_or(|s| s == start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(host: &str, host_id: Option<&str>, pid: u32) -> RunInfo {
        RunInfo {
            command: "crawl".into(),
            host: host.into(),
            host_id: host_id.map(str::to_string),
            pid,
            pid_start: None,
            daily_budget: None,
        }
    }

    #[test]
    fn a_run_is_known_dead_only_where_its_process_can_be_seen() {
        let me = this_process("crawl", None);
        let here = me.host_id.as_deref();
        assert!(here.is_some(), "Linux gives a boot id and a PID namespace");
        // No process has pid u32::MAX - 1.
        let gone = u32::MAX - 1;
        assert!(
            !is_alive(&run(&me.host, here, gone), &me),
            "same host_id, process gone"
        );
        assert!(
            is_alive(&run(&me.host, here, me.pid), &me),
            "same host_id, alive"
        );
        // Another container with the same host name: another PID namespace, so its pids mean
        // nothing here; only its lease can say it is gone.
        assert!(is_alive(
            &run(&me.host, Some("other-boot/pid:[1]"), gone),
            &me
        ));
        // A run of an older version recorded only its host name.
        assert!(!is_alive(&run(&me.host, None, gone), &me));
        assert!(is_alive(&run("elsewhere", None, gone), &me));
        // A reused pid: the process there started at another time.
        let reused = RunInfo {
            pid_start: Some("1".into()),
            ..run(&me.host, here, me.pid)
        };
        assert!(!is_alive(&reused, &me));
    }

    #[test]
    fn a_process_whose_start_cannot_be_read_is_alive_until_its_lease_expires() {
        // hidepid=2: kill finds the process, /proc/PID/stat does not.
        assert!(still_its_process(Seen::Running(None), Some("123")));
        assert!(still_its_process(
            Seen::Running(Some("123".into())),
            Some("123")
        ));
        assert!(!still_its_process(
            Seen::Running(Some("124".into())),
            Some("123")
        ));
        assert!(!still_its_process(Seen::Gone, Some("123")));
        // pid 1 exists on every Linux, whoever owns it (EPERM counts as existing).
        assert!(matches!(look_at(1), Seen::Running(_)));
        assert!(matches!(look_at(u32::MAX - 1), Seen::Gone));
    }
}
