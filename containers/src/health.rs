//! Health checks, as docker's: the image's HEALTHCHECK with the
//! `--health-*` flags over it ([`HealthFlags`], [`merge`]) is kept in the
//! container's record ([`Check`]); while the container runs, its kiln
//! process (the monitor of a detached one, `kiln run` in the foreground)
//! probes it every interval on a thread of its own ([`watch`]), each probe
//! an exec ([`crate::exec::captured`]). The state (docker's `State.Health`:
//! status, failing streak, the last five probes) lives in `health.json`
//! beside the record rather than in it, so the probing thread never races
//! the writers of the record; `kiln healthcheck run` probes once through
//! the same [`probe`].

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use image_store::model::Healthcheck;
use image_store::Store;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::records::{Container, Containers};

/// The container's health state (docker's `State.Health`).
pub const HEALTH_FILE: &str = "health.json";
const HEALTH_LOCK: &str = "health.lock";
/// docker keeps the last five probes (moby's `maxLogEntries`).
pub const LOG_KEPT: usize = 5;
/// docker keeps 4 KiB of a probe's output (moby's `maxOutputLen`).
pub const OUTPUT_LIMIT: usize = 4096;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: i64 = 3;
/// docker's shell for `CMD-SHELL` when the image sets no SHELL.
const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The health check of a container: docker's `Config.Healthcheck` and the
/// image's SHELL, which runs a `CMD-SHELL` test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub config: Healthcheck,
    #[serde(default)]
    pub shell: Vec<String>,
}

impl Check {
    /// The probe's command; None for `NONE` (`--no-healthcheck`) or no test.
    pub fn command(&self) -> Option<Vec<String>> {
        let test = self.config.test.as_deref()?;
        let (kind, rest) = test.split_first()?;
        match kind.as_str() {
            "CMD" if !rest.is_empty() => Some(rest.to_vec()),
            "CMD-SHELL" if !rest.is_empty() => {
                let mut cmd = match self.shell.is_empty() {
                    true => DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
                    false => self.shell.clone(),
                };
                cmd.extend(rest.iter().cloned());
                Some(cmd)
            }
            _ => None,
        }
    }

    fn interval(&self) -> Duration {
        nanos_or(self.config.interval, DEFAULT_INTERVAL)
    }

    fn timeout(&self) -> Duration {
        nanos_or(self.config.timeout, DEFAULT_TIMEOUT)
    }

    fn start_period(&self) -> Duration {
        nanos_or(self.config.start_period, Duration::ZERO)
    }

    fn retries(&self) -> i64 {
        match self.config.retries {
            0 => DEFAULT_RETRIES,
            n => n,
        }
    }
}

fn nanos_or(n: i64, default: Duration) -> Duration {
    match n {
        n if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

/// `--health-cmd`, `--health-interval`, `--health-timeout`,
/// `--health-start-period`, `--health-retries`, `--no-healthcheck`.
#[derive(Debug, Clone, Default)]
pub struct HealthFlags {
    pub cmd: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub retries: Option<i64>,
    pub none: bool,
}

impl HealthFlags {
    /// The `Config.Healthcheck` the flags give (None without any), checked
    /// as docker's CLI and daemon check it.
    pub fn config(&self) -> Result<Option<Healthcheck>> {
        let any = self.cmd.is_some()
            || self.interval.is_some()
            || self.timeout.is_some()
            || self.start_period.is_some()
            || self.retries.is_some();
        if self.none {
            if any {
                return Err(Error::Invalid(
                    "--no-healthcheck conflicts with --health-* options".into(),
                ));
            }
            return Ok(Some(Healthcheck {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }));
        }
        if !any {
            return Ok(None);
        }
        let duration = |flag: &str, v: &Option<String>| -> Result<i64> {
            let Some(v) = v else { return Ok(0) };
            let n = parse_go_duration(v).ok_or_else(|| {
                Error::Invalid(format!(
                    "invalid argument {v:?} for --{flag}: want a duration such as 30s, 1m30s or 500ms"
                ))
            })?;
            if n < 0 {
                return Err(Error::Invalid(format!("--{flag} cannot be negative")));
            }
            if n != 0 && n < 1_000_000 {
                return Err(Error::Invalid(format!("--{flag} cannot be less than 1ms")));
            }
            Ok(n)
        };
        let retries = self.retries.unwrap_or(0);
        if retries < 0 {
            return Err(Error::Invalid("--health-retries cannot be negative".into()));
        }
        Ok(Some(Healthcheck {
            test: self
                .cmd
                .as_ref()
                .map(|c| vec!["CMD-SHELL".to_string(), c.clone()]),
            interval: duration("health-interval", &self.interval)?,
            timeout: duration("health-timeout", &self.timeout)?,
            start_period: duration("health-start-period", &self.start_period)?,
            start_interval: 0,
            retries,
        }))
    }
}

/// The user's settings over the image's, field by field (moby's `merge`):
/// what the user left unset comes from the image.
pub fn merge(image: Option<&Healthcheck>, user: Option<Healthcheck>) -> Option<Healthcheck> {
    let Some(mut u) = user else {
        return image.cloned();
    };
    let Some(i) = image else { return Some(u) };
    if u.test.as_ref().is_none_or(|t| t.is_empty()) {
        u.test = i.test.clone();
    }
    let fill = |mine: &mut i64, theirs: i64| {
        if *mine == 0 {
            *mine = theirs;
        }
    };
    fill(&mut u.interval, i.interval);
    fill(&mut u.timeout, i.timeout);
    fill(&mut u.start_period, i.start_period);
    fill(&mut u.start_interval, i.start_interval);
    fill(&mut u.retries, i.retries);
    Some(u)
}

/// Go's `time.ParseDuration` (what docker's flags take): a sequence of
/// decimal numbers with units ns, us (µs), ms, s, m, h, optionally signed;
/// a bare `0` is zero. In nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += num * mult;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let n = total.round() as i64;
    Some(if neg { -n } else { n })
}

/// Go's `Duration.String` for the durations docker prints (`30s`,
/// `1m30s`, `500ms`).
fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        return match ns {
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}µs", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let secs = d.as_secs();
    let frac = d.subsec_nanos();
    let s = match frac {
        0 => format!("{}s", secs % 60),
        f => {
            let f = format!("{f:09}");
            format!("{}.{}s", secs % 60, f.trim_end_matches('0'))
        }
    };
    match (secs / 3600, secs / 60 % 60) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

/// docker's health statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Starting,
    Healthy,
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// One probe (moby's `HealthcheckResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProbeResult {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// docker's `State.Health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: Status,
    pub failing_streak: u32,
    pub log: Vec<ProbeResult>,
}

impl Health {
    /// What `ps` shows in parentheses after "Up …" (moby's
    /// `Health.String`).
    pub fn ps_text(&self) -> String {
        match self.status {
            Status::Starting => "health: starting".into(),
            s => s.as_str().into(),
        }
    }

    /// Counts one probe as moby's `handleProbeResult` does: success makes
    /// the container healthy; a failure adds to the streak (unless the
    /// container is still in its start period and has never been
    /// healthy), and `retries` failures in a row make it unhealthy.
    fn count(&mut self, r: ProbeResult, check: &Check, started: Option<&str>) {
        if r.exit_code == 0 {
            self.failing_streak = 0;
            self.status = Status::Healthy;
        } else {
            let in_start_period = self.status == Status::Starting
                && match (parse_time(started), parse_time(Some(&r.start))) {
                    (Some(s), Some(p)) => (p - s)
                        .to_std()
                        .map_or(true, |since| since < check.start_period()),
                    _ => false,
                };
            if !in_start_period {
                self.failing_streak += 1;
                if self.failing_streak as i64 >= check.retries() {
                    self.status = Status::Unhealthy;
                }
            }
        }
        self.log.push(r);
        if self.log.len() > LOG_KEPT {
            self.log.drain(..self.log.len() - LOG_KEPT);
        }
    }
}

fn parse_time(t: Option<&str>) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(t?)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The container's health state, if it has a health check and has run.
pub fn read(dir: &Path) -> Option<Health> {
    let data = fs::read(dir.join(HEALTH_FILE)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// The health state of container `c` if it has a health check (`ps`,
/// `inspect`, `--filter health=`).
/// A running one not probed yet is `starting`, as docker's is from its
/// start (docker-compose's `service_healthy` refuses a container without
/// a status).
pub fn current(store: &Store, c: &Container) -> Option<Health> {
    c.healthcheck.as_ref()?.command()?;
    read(&Containers::new(store).container_dir(&c.id)).or_else(|| {
        c.is_running().then(|| Health {
            status: Status::Starting,
            failing_streak: 0,
            log: Vec::new(),
        })
    })
}

/// Changes the health state under its lock (the watching thread and
/// `kiln healthcheck run` may probe at once) and returns the new state.
fn update(dir: &Path, f: impl FnOnce(&mut Health)) -> Result<Health> {
    let lock_path = dir.join(HEALTH_LOCK);
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(Error::io(&lock_path))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io(&lock_path)(e.into()))?;
    let mut h = read(dir).unwrap_or(Health {
        status: Status::Starting,
        failing_streak: 0,
        log: Vec::new(),
    });
    f(&mut h);
    let p = dir.join(HEALTH_FILE);
    let tmp = dir.join(".health.json.tmp");
    let data = serde_json::to_vec_pretty(&h).expect("plain data serializes");
    fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&data))
        .and_then(|()| fs::rename(&tmp, &p))
        .map_err(Error::io(&p))?;
    Ok(h)
}

/// Probes container `c` once and counts the result (`kiln healthcheck
/// run`, and each interval of [`watch`]). Fails, counting nothing, when
/// the container has no health check or is not running.
pub fn probe(store: &Store, c: &Container) -> Result<Health> {
    let check = c.healthcheck.as_ref();
    let Some((check, cmd)) = check.and_then(|k| Some((k, k.command()?))) else {
        return Err(Error::Invalid(format!(
            "container {} has no defined healthcheck",
            c.name
        )));
    };
    let start = image_store::model::now();
    let timeout = check.timeout();
    let (exit_code, output) =
        match crate::exec::captured(store, &c.id, cmd, timeout, OUTPUT_LIMIT + 1) {
            Ok(r) => match r.code {
                Some(code) => {
                    let mut out =
                        String::from_utf8_lossy(&r.output[..r.output.len().min(OUTPUT_LIMIT)])
                            .into_owned();
                    if r.output.len() > OUTPUT_LIMIT {
                        out.push_str("...");
                    }
                    (code, out)
                }
                None => (
                    -1,
                    format!("Health check exceeded timeout ({})", go_duration(timeout)),
                ),
            },
            // The probe could not be started (its program is missing, not
            // executable): a failed probe, as with docker.
            Err(Error::Run(e)) => (e.exit_code() as i32, e.to_string()),
            Err(e) => return Err(e),
        };
    let result = ProbeResult {
        start,
        end: image_store::model::now(),
        exit_code,
        output,
    };
    let dir = Containers::new(store).container_dir(&c.id);
    update(&dir, |h| h.count(result, check, c.started.as_deref()))
}

/// The thread that probes a running container every interval; [`Watch::end`]
/// stops it when the container's run ends.
pub struct Watch {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
    dir: std::path::PathBuf,
}

/// Starts probing container `c` (just started: its health starts over, its
/// probe log is kept, as docker's), if it has a health check. Call it on
/// the thread that waits for the container, after the container started:
/// the probing thread inherits that thread's blocked signals, which are
/// the container's to receive.
pub fn watch(store: &Store, c: &Container) -> Option<Watch> {
    let check = c.healthcheck.clone()?;
    check.command()?;
    let dir = Containers::new(store).container_dir(&c.id);
    update(&dir, |h| {
        h.status = Status::Starting;
        h.failing_streak = 0;
    })
    .ok()?;
    let (stop, rx) = mpsc::channel();
    let store = store.clone();
    let id = c.id.clone();
    let thread = std::thread::spawn(move || loop {
        match rx.recv_timeout(check.interval()) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let Ok(c) = Containers::new(&store).load(&id) else {
            return;
        };
        // A paused container is not probed (its exec would freeze).
        if c.is_running() && !crate::control::is_paused(&store, &c) {
            // One that stopped meanwhile, or any other failure to probe,
            // counts nothing; the next interval tries again.
            let _ = probe(&store, &c);
        }
    });
    Some(Watch { stop, thread, dir })
}

impl Watch {
    /// Stops probing; the container is unhealthy once it stopped (moby
    /// sets this "for compatibility reasons" when its monitor stops).
    pub fn end(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
        let _ = update(&self.dir, |h| h.status = Status::Unhealthy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Some(1_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_go_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("-2s"), Some(-2_000_000_000));
        for bad in ["", "5", "1x", "s", "1s2"] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    fn check(test: &[&str], retries: i64) -> Check {
        Check {
            config: Healthcheck {
                test: Some(test.iter().map(|s| s.to_string()).collect()),
                retries,
                ..Default::default()
            },
            shell: Vec::new(),
        }
    }

    #[test]
    fn commands_and_merging() {
        assert_eq!(
            check(&["CMD-SHELL", "test -f /x"], 0).command().unwrap(),
            ["/bin/sh", "-c", "test -f /x"]
        );
        assert_eq!(check(&["CMD", "true"], 0).command().unwrap(), ["true"]);
        assert_eq!(check(&["NONE"], 0).command(), None);
        let image = Healthcheck {
            test: Some(vec!["CMD".into(), "true".into()]),
            interval: 5,
            retries: 2,
            ..Default::default()
        };
        let user = HealthFlags {
            interval: Some("1s".into()),
            ..Default::default()
        };
        let m = merge(Some(&image), user.config().unwrap()).unwrap();
        assert_eq!(m.test, image.test);
        assert_eq!((m.interval, m.retries), (1_000_000_000, 2));
        let none = HealthFlags {
            none: true,
            ..Default::default()
        };
        let m = merge(Some(&image), none.config().unwrap()).unwrap();
        assert_eq!(m.test.unwrap(), ["NONE"]);
        let both = HealthFlags {
            none: true,
            retries: Some(1),
            ..Default::default()
        };
        assert!(both.config().is_err());
    }

    #[test]
    fn failures_in_a_row_make_it_unhealthy() {
        let c = check(&["CMD", "false"], 2);
        let mut h = Health {
            status: Status::Starting,
            failing_streak: 0,
            log: Vec::new(),
        };
        let at = |code| ProbeResult {
            start: "2026-01-01T00:00:10Z".into(),
            end: "2026-01-01T00:00:10Z".into(),
            exit_code: code,
            output: String::new(),
        };
        let started = Some("2026-01-01T00:00:00Z");
        h.count(at(1), &c, started);
        assert_eq!((h.status, h.failing_streak), (Status::Starting, 1));
        h.count(at(0), &c, started);
        assert_eq!((h.status, h.failing_streak), (Status::Healthy, 0));
        h.count(at(1), &c, started);
        h.count(at(1), &c, started);
        assert_eq!((h.status, h.failing_streak), (Status::Unhealthy, 2));
        for _ in 0..5 {
            h.count(at(1), &c, started);
        }
        assert_eq!(h.log.len(), LOG_KEPT);
        // Within the start period, failures before the first success do not count.
        let mut grace = check(&["CMD", "false"], 1);
        grace.config.start_period = 60_000_000_000;
        let mut h = Health {
            status: Status::Starting,
            failing_streak: 0,
            log: Vec::new(),
        };
        h.count(at(1), &grace, started);
        assert_eq!((h.status, h.failing_streak), (Status::Starting, 0));
    }
}
