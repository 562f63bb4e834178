//! CPU time of processes (Linux `/proc`), sampled around a phase's measured window.

use std::process::{Command, Stdio};
use std::time::Duration;

/// User plus system CPU time process `pid` has used, all threads together (`/proc/<pid>/stat`);
/// `None` when the process is gone or the file cannot be read.
pub fn process_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_cpu_ticks(&stat)?;
    let per_second = clock_ticks_per_second();
    Some(
        Duration::from_secs(ticks / per_second)
            + Duration::from_secs_f64((ticks % per_second) as f64 / per_second as f64),
    )
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK`, read once; 100 (Linux's usual value) if it cannot be run.
fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(100)
    })
}

/// CPU time the processes `pids` used together; `None` when none of them could be read.
pub(crate) fn cpu_time_of(pids: &[u32]) -> Option<Duration> {
    pids.iter()
        .filter_map(|&pid| process_cpu_time(pid))
        .reduce(|a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_from_proc_stat() {
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(281));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
        let own = std::process::id();
        assert!(process_cpu_time(own).is_some());
        assert_eq!(process_cpu_time(u32::MAX), None);
        assert_eq!(cpu_time_of(&[u32::MAX]), None);
        assert!(cpu_time_of(&[own, u32::MAX]).is_some());
    }
}
