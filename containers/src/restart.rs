//! Restart policies (`--restart no|on-failure[:N]|always|unless-stopped`),
//! carried out by the detached container's monitor ([`crate::run::monitor`]):
//! kiln has no daemon, so the one process that outlives each run of the
//! container decides, after each exit, whether to start it again.
//!
//! As docker: `on-failure` restarts on a non-zero exit, at most N times
//! (no limit without N); `always` and `unless-stopped` restart whatever the
//! exit; the delay before a restart starts at 100 ms and doubles up to a
//! minute, back to 100 ms after a run of 10 s or more. `stop` ends the
//! policy, and so does `kill` with a signal that stops the container
//! (SIGKILL, the image's STOPSIGNAL, or any signal when the image has
//! none), as docker's `ExitOnNext`; the next start clears it. Without a
//! daemon that restarts, `unless-stopped` behaves as `always`.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Written in the container's directory by `stop` and `kill` before they
/// signal: the monitor does not restart a container that has it.
pub const STOP_FILE: &str = "stopped-by-user";

/// How many past runs' exits a record keeps.
pub const RUNS_KEPT: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyName {
    #[default]
    No,
    OnFailure,
    Always,
    UnlessStopped,
}

/// docker's `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    pub name: PolicyName,
    /// `on-failure:N`'s N; 0 is no limit.
    #[serde(default)]
    pub maximum_retry_count: u32,
}

impl RestartPolicy {
    /// `no`, `always`, `unless-stopped`, `on-failure[:N]` (docker's words
    /// for what is wrong).
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        let bad = |why: &str| Error::Invalid(format!("invalid restart policy {s:?}: {why}"));
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let name = match name {
            "" | "no" => PolicyName::No,
            "always" => PolicyName::Always,
            "unless-stopped" => PolicyName::UnlessStopped,
            "on-failure" => PolicyName::OnFailure,
            _ => return Err(bad("want no, always, unless-stopped or on-failure[:N]")),
        };
        let maximum_retry_count = match count {
            None => 0,
            Some(_) if name != PolicyName::OnFailure => {
                return Err(bad("a maximum retry count goes only with on-failure"))
            }
            Some(c) => c
                .parse::<u32>()
                .map_err(|_| bad("the maximum retry count must be a number >= 0"))?,
        };
        Ok(RestartPolicy {
            name,
            maximum_retry_count,
        })
    }

    pub fn is_none(&self) -> bool {
        self.name == PolicyName::No
    }

    /// Should a run that ended with `code`, after `restarts` restarts,
    /// be followed by another (the user's stop aside)?
    pub fn should_restart(&self, code: i32, restarts: u32) -> bool {
        match self.name {
            PolicyName::No => false,
            PolicyName::Always | PolicyName::UnlessStopped => true,
            PolicyName::OnFailure => {
                code != 0 && (self.maximum_retry_count == 0 || restarts < self.maximum_retry_count)
            }
        }
    }
}

/// One run of a container, as its monitor saw it end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunExit {
    pub started_at: String,
    pub finished_at: String,
    pub exit_code: i32,
}

/// Appends `exit` to `runs`, keeping the last [`RUNS_KEPT`].
pub fn push_run(runs: &mut Vec<RunExit>, exit: RunExit) {
    runs.push(exit);
    if runs.len() > RUNS_KEPT {
        runs.drain(..runs.len() - RUNS_KEPT);
    }
}

/// docker's restart delay: 100 ms doubling to a minute, reset after a run
/// of 10 s or more.
#[derive(Debug, Default)]
pub struct Backoff {
    delay: Duration,
}

impl Backoff {
    pub fn next(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= Duration::from_secs(10) {
            self.delay = Duration::ZERO;
        }
        self.delay = if self.delay.is_zero() {
            Duration::from_millis(100)
        } else {
            (self.delay * 2).min(Duration::from_secs(60))
        };
        self.delay
    }
}

/// Has the user stopped the container in `dir` since its last start?
pub fn stop_requested(dir: &Path) -> bool {
    dir.join(STOP_FILE).exists()
}

/// Marks the container in `dir` as stopped by the user, so that its
/// monitor does not restart it.
pub fn request_stop(dir: &Path) -> Result<()> {
    let p = dir.join(STOP_FILE);
    fs::write(&p, b"").map_err(Error::io(p))
}

/// A start clears an earlier stop.
pub fn clear_stop(dir: &Path) {
    let _ = fs::remove_file(dir.join(STOP_FILE));
}

/// Sleeps `delay`, waking early (false) when the user stops or removes
/// the container in `dir`.
pub fn wait_before_restart(dir: &Path, delay: Duration) -> bool {
    let end = Instant::now() + delay;
    loop {
        if stop_requested(dir) || !dir.join("container.json").exists() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_as_docker() {
        let p = RestartPolicy::parse("on-failure:3").unwrap();
        assert_eq!((p.name, p.maximum_retry_count), (PolicyName::OnFailure, 3));
        assert_eq!(
            RestartPolicy::parse("no").unwrap(),
            RestartPolicy::default()
        );
        assert_eq!(
            RestartPolicy::parse("unless-stopped").unwrap().name,
            PolicyName::UnlessStopped
        );
        for bad in [
            "sometimes",
            "always:3",
            "on-failure:-1",
            "on-failure:x",
            "no:1",
        ] {
            assert!(RestartPolicy::parse(bad).is_err(), "{bad}");
        }
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"Name":"on-failure","MaximumRetryCount":3}"#);
    }

    #[test]
    fn on_failure_counts_and_ignores_success() {
        let p = RestartPolicy::parse("on-failure:2").unwrap();
        assert!(p.should_restart(1, 0) && p.should_restart(1, 1));
        assert!(!p.should_restart(1, 2) && !p.should_restart(0, 0));
        let unlimited = RestartPolicy::parse("on-failure").unwrap();
        assert!(unlimited.should_restart(3, 1000));
        assert!(RestartPolicy::parse("always")
            .unwrap()
            .should_restart(0, 99));
        assert!(!RestartPolicy::default().should_restart(1, 0));
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let short = Duration::from_millis(5);
        assert_eq!(b.next(short), Duration::from_millis(100));
        assert_eq!(b.next(short), Duration::from_millis(200));
        for _ in 0..20 {
            b.next(short);
        }
        assert_eq!(b.next(short), Duration::from_secs(60));
        assert_eq!(b.next(Duration::from_secs(10)), Duration::from_millis(100));
    }

    #[test]
    fn runs_are_bounded() {
        let mut runs = Vec::new();
        for i in 0..25 {
            push_run(
                &mut runs,
                RunExit {
                    started_at: String::new(),
                    finished_at: String::new(),
                    exit_code: i,
                },
            );
        }
        assert_eq!(runs.len(), RUNS_KEPT);
        assert_eq!(runs[0].exit_code, 15);
    }
}
