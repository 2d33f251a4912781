//! A detached container's log: what its monitor writes and `kiln logs`
//! reads back.
//!
//! The format is podman's `k8s-file` (the CRI log format kubelet writes):
//! one entry a line, `TIME STREAM TAG CONTENT`, TIME in RFC 3339 with
//! nanoseconds (UTC), STREAM `stdout` or `stderr`, TAG `F` for a full line
//! or `P` for a part of one (a line longer than [`MAX_ENTRY`], or output
//! that did not end in a newline). Chosen over docker's json-file because
//! the content is kept byte for byte (JSON would have to escape, and docker
//! replaces, bytes that are not UTF-8), an entry costs no encoding, and
//! the file stays readable with `grep`.
//!
//! The monitor reads the container's stdout and stderr from two pipes
//! ([`Pipes`]) and appends entries with blocking writes: when the disk is
//! slow the pipes fill and the container waits, nothing is dropped.

use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// The longest content of one entry; longer lines are split into `P`
/// entries (docker's json-file splits at 16 KiB too).
pub const MAX_ENTRY: usize = 16 << 10;

/// How much of one line `kiln logs` holds before printing it in parts.
const PRINT_CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The log file, shared by the threads that pump the two streams; each
/// batch of entries is one append.
#[derive(Debug)]
pub struct LogWriter {
    file: Mutex<fs::File>,
}

impl LogWriter {
    pub fn open(path: &Path) -> Result<Arc<LogWriter>> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(Error::io(path))?;
        Ok(Arc::new(LogWriter {
            file: Mutex::new(file),
        }))
    }

    fn append(&self, buf: &[u8]) {
        if buf.is_empty() {
            return;
        }
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // A full disk: the monitor's own output says so; the pipes keep
        // being drained so that the container is not wedged.
        if let Err(e) = f.write_all(buf) {
            eprintln!("kiln: writing the container log: {e}");
        }
    }

    /// One message of kiln's own (a failed restart) as `stream` lines.
    pub fn message(&self, stream: Stream, text: &str) {
        let mut out = Vec::new();
        let now = image_store::model::now();
        for line in text.lines() {
            entry(&mut out, &now, stream, false, line.as_bytes());
        }
        self.append(&out);
    }
}

fn entry(out: &mut Vec<u8>, time: &str, stream: Stream, partial: bool, content: &[u8]) {
    out.extend_from_slice(time.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.name().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// Copies `from` into the log as `stream` entries until end of file.
fn pump(mut from: fs::File, stream: Stream, log: Arc<LogWriter>) {
    let mut buf = vec![0u8; 64 << 10];
    let mut pending: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let now = image_store::model::now();
        let mut chunk = &buf[..n];
        while let Some(i) = chunk.iter().position(|&b| b == b'\n') {
            pending.extend_from_slice(&chunk[..i]);
            chunk = &chunk[i + 1..];
            let mut line = &pending[..];
            while line.len() > MAX_ENTRY {
                entry(&mut out, &now, stream, true, &line[..MAX_ENTRY]);
                line = &line[MAX_ENTRY..];
            }
            entry(&mut out, &now, stream, false, line);
            pending.clear();
        }
        pending.extend_from_slice(chunk);
        while pending.len() >= MAX_ENTRY {
            entry(&mut out, &now, stream, true, &pending[..MAX_ENTRY]);
            pending.drain(..MAX_ENTRY);
        }
        log.append(&out);
        out.clear();
    }
    if !pending.is_empty() {
        entry(&mut out, &image_store::model::now(), stream, true, &pending);
        log.append(&out);
    }
}

/// The two pipes a container's stdout and stderr go to.
pub struct Pipes {
    out: (OwnedFd, OwnedFd),
    err: (OwnedFd, OwnedFd),
}

/// The threads copying a run's output into the log.
pub struct Pumps(Vec<JoinHandle<()>>);

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::io("pipe")(std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Pipes {
    pub fn new() -> Result<Pipes> {
        Ok(Pipes {
            out: pipe()?,
            err: pipe()?,
        })
    }

    /// The write ends, for the container's 1 and 2.
    pub fn writers(&self) -> (i32, i32) {
        (self.out.1.as_raw_fd(), self.err.1.as_raw_fd())
    }

    /// Closes the write ends (the container has its copies) and starts
    /// copying: call after the container started, from the thread that
    /// waits for it, so that these threads inherit its blocked signals.
    pub fn start(self, log: &Arc<LogWriter>) -> Pumps {
        let Pipes { out, err } = self;
        drop(out.1);
        drop(err.1);
        let threads = [(out.0, Stream::Stdout), (err.0, Stream::Stderr)]
            .into_iter()
            .map(|(r, s)| {
                let log = Arc::clone(log);
                std::thread::spawn(move || pump(fs::File::from(r), s, log))
            })
            .collect();
        Pumps(threads)
    }
}

impl Pumps {
    /// Waits until both streams reached end of file and are in the log.
    pub fn join(self) {
        for t in self.0 {
            let _ = t.join();
        }
    }
}

/// What `kiln logs` shows.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    /// Lines logged at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Lines logged at or before this time.
    pub until: Option<DateTime<Utc>>,
    /// Prefix each line with its time (RFC 3339 with nanoseconds).
    pub timestamps: bool,
    /// Only the last N lines (before `since`/`until` apply, as docker).
    pub tail: Option<usize>,
    /// How often `follow` looks for more (default 100 ms; an attached
    /// client waiting for a short run's end wants less).
    pub poll: Option<Duration>,
}

impl LogOptions {
    /// Anything a log in the old format (raw output, no times) cannot do.
    pub fn needs_entries(&self) -> bool {
        self.since.is_some() || self.until.is_some() || self.timestamps || self.tail.is_some()
    }
}

/// One parsed entry: time, stream, partial, content (no newline).
fn parse_entry(line: &[u8]) -> Option<(&str, Stream, bool, &[u8])> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some((time, stream, partial, parts.next().unwrap_or(b"")))
}

/// Turns entries back into lines on the two outputs.
struct Printer<'a> {
    opts: &'a LogOptions,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    /// Per stream: a line begun by `P` entries, with its first time and
    /// whether a part of it was printed already.
    pending: [Option<(String, Vec<u8>, bool)>; 2],
    /// Past `until`: nothing more is printed.
    done: bool,
}

impl Printer<'_> {
    fn feed(&mut self, time: &str, stream: Stream, partial: bool, content: &[u8]) -> Result<()> {
        let slot = &mut self.pending[stream as usize];
        let (first, mut line, begun) = slot
            .take()
            .unwrap_or_else(|| (time.to_string(), Vec::new(), false));
        line.extend_from_slice(content);
        if partial {
            // Memory stays bounded: a very long line goes out in parts.
            if line.len() >= PRINT_CHUNK {
                self.emit(&first, stream, &line, !begun)?;
                self.pending[stream as usize] = Some((first, Vec::new(), true));
            } else {
                self.pending[stream as usize] = Some((first, line, begun));
            }
            return Ok(());
        }
        line.push(b'\n');
        self.emit(&first, stream, &line, !begun)
    }

    /// Prints (a part of) a line that began at `time`, with the time in
    /// front when `prefix` and `--timestamps`.
    fn emit(&mut self, time: &str, stream: Stream, line: &[u8], prefix: bool) -> Result<()> {
        let t = DateTime::parse_from_rfc3339(time).ok().map(|t| t.to_utc());
        if let (Some(until), Some(t)) = (self.opts.until, t) {
            if t > until {
                self.done = true;
            }
        }
        if self.done {
            return Ok(());
        }
        if let (Some(since), Some(t)) = (self.opts.since, t) {
            if t < since {
                return Ok(());
            }
        }
        let w: &mut dyn Write = match stream {
            Stream::Stdout => &mut *self.out,
            Stream::Stderr => &mut *self.err,
        };
        if self.opts.timestamps && prefix {
            write!(w, "{time} ").map_err(Error::Output)?;
        }
        w.write_all(line).map_err(Error::Output)?;
        if self.opts.follow {
            w.flush().map_err(Error::Output)?;
        }
        Ok(())
    }

    /// Output that ended without a newline, at the end of the log.
    fn flush_partial(&mut self) -> Result<()> {
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if let Some((time, line, begun)) = self.pending[i].take() {
                self.emit(&time, stream, &line, !begun)?;
            }
        }
        self.out.flush().map_err(Error::Output)?;
        self.err.flush().map_err(Error::Output)
    }
}

/// Where the last `n` lines start: one pass, keeping `n` offsets.
fn tail_offset(path: &Path, n: usize) -> Result<u64> {
    if n == 0 {
        return fs::metadata(path).map(|m| m.len()).map_err(Error::io(path));
    }
    let mut r = BufReader::new(fs::File::open(path).map_err(Error::io(path))?);
    let mut starts: VecDeque<u64> = VecDeque::new();
    let mut in_line = [false; 2];
    let mut pos = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let len = r.read_until(b'\n', &mut buf).map_err(Error::io(path))?;
        if len == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        if let Some((_, stream, partial, _)) = parse_entry(&buf[..len - 1]) {
            if !in_line[stream as usize] {
                starts.push_back(pos);
                if starts.len() > n {
                    starts.pop_front();
                }
            }
            in_line[stream as usize] = partial;
        }
        pos += len as u64;
    }
    Ok(if starts.len() < n {
        0
    } else {
        starts.front().copied().unwrap_or(0)
    })
}

/// Prints the log at `path` as `opts` says; `live` tells whether the
/// container may still write (for `follow`).
pub fn print(
    path: &Path,
    opts: &LogOptions,
    live: &mut dyn FnMut() -> bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let start = match opts.tail {
        Some(n) => tail_offset(path, n)?,
        None => 0,
    };
    let f = fs::File::open(path).map_err(Error::io(path))?;
    print_file(f, path, start, opts, live, out, err)
}

/// [`print`] from an open log file (one that may have been removed
/// since, with its `--rm` container), from offset `start`.
pub fn print_file(
    mut f: fs::File,
    path: &Path,
    start: u64,
    opts: &LogOptions,
    live: &mut dyn FnMut() -> bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    f.seek(SeekFrom::Start(start)).map_err(Error::io(path))?;
    let mut r = BufReader::new(f);
    let mut p = Printer {
        opts,
        out,
        err,
        pending: [None, None],
        done: false,
    };
    let mut buf = Vec::new();
    let mut pos = start;
    loop {
        // Asked before reading: what was written before it ended is read.
        let still = opts.follow && live();
        loop {
            buf.clear();
            let len = r.read_until(b'\n', &mut buf).map_err(Error::io(path))?;
            if len == 0 {
                break;
            }
            if buf.last() != Some(&b'\n') {
                // An entry being written: read it whole next time.
                r.seek(SeekFrom::Start(pos)).map_err(Error::io(path))?;
                break;
            }
            pos += len as u64;
            if let Some((time, stream, partial, content)) = parse_entry(&buf[..len - 1]) {
                p.feed(time, stream, partial, content)?;
            }
            if p.done {
                break;
            }
        }
        let past_until = opts.until.is_some_and(|u| Utc::now() > u);
        if !still || p.done || past_until {
            break;
        }
        std::thread::sleep(opts.poll.unwrap_or(Duration::from_millis(100)));
    }
    p.flush_partial()
}

/// docker's `--since`/`--until` values: a duration back from `now`
/// (`10m`, `1h30m`, `1.5s`), Unix seconds (`1700000000.5`), or an RFC 3339
/// date or time (`2006-01-02`, `2006-01-02T15:04:05`, with or without
/// fraction and zone; no zone is local time).
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let bad = || {
        Error::Invalid(format!(
            "invalid time {s:?}: want a duration (10m), Unix seconds or an RFC 3339 time"
        ))
    };
    if let Some(d) = go_duration(s) {
        return Ok(now - d);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        let nanos: u32 = match frac {
            "" => 0,
            f if f.len() <= 9 => format!("{f:0<9}").parse().map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        return DateTime::from_timestamp(secs, nanos).ok_or_else(bad);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    use chrono::TimeZone as _;
    let local = |naive: chrono::NaiveDateTime| {
        chrono::Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.to_utc())
    };
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return local(n).ok_or_else(bad);
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return local(d.and_hms_opt(0, 0, 0).expect("midnight exists")).ok_or_else(bad);
    }
    Err(bad())
}

/// Go's `time.ParseDuration` (positive only): `300ms`, `1h30m`, `1.5s`.
fn go_duration(s: &str) -> Option<chrono::Duration> {
    if s.is_empty() || !s.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += num * nanos;
    }
    Some(chrono::Duration::nanoseconds(total as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pumped(input: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let log = LogWriter::open(&p).unwrap();
        let (r, w) = pipe().unwrap();
        let t = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || pump(fs::File::from(r), Stream::Stderr, log))
        };
        fs::File::from(w).write_all(input).unwrap();
        t.join().unwrap();
        let text = fs::read_to_string(&p).unwrap();
        // Times vary: keep stream, tag and content.
        text.lines()
            .map(|l| l.split_once(' ').unwrap().1)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn lines_partials_and_long_lines() {
        assert_eq!(pumped(b"a\nb\n"), "stderr F a\nstderr F b");
        assert_eq!(pumped(b"a\nno newline"), "stderr F a\nstderr P no newline");
        assert_eq!(pumped(b"\n"), "stderr F ");
        let long = vec![b'x'; MAX_ENTRY + 3];
        let mut input = long.clone();
        input.push(b'\n');
        let want = format!("stderr P {}\nstderr F xxx", "x".repeat(MAX_ENTRY));
        assert_eq!(pumped(&input), want);
    }

    fn printed(log: &str, opts: &LogOptions) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        fs::write(&p, log).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        print(&p, opts, &mut || false, &mut out, &mut err).unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    const LOG: &str = "\
2026-01-01T00:00:01.000000000Z stdout F one
2026-01-01T00:00:02.000000000Z stderr P tw
2026-01-01T00:00:03.000000000Z stdout F three
2026-01-01T00:00:04.000000000Z stderr F o
2026-01-01T00:00:05.000000000Z stdout P four
";

    #[test]
    fn streams_tail_times() {
        let all = LogOptions::default();
        assert_eq!(
            printed(LOG, &all),
            ("one\nthree\nfour".into(), "two\n".into())
        );
        let tail = LogOptions {
            tail: Some(2),
            ..Default::default()
        };
        // The last two lines to start: "three" and "four" (stderr's "two"
        // began before them).
        assert_eq!(printed(LOG, &tail).0, "three\nfour");
        let ts = LogOptions {
            timestamps: true,
            since: Some(parse_time("2026-01-01T00:00:02Z", Utc::now()).unwrap()),
            until: Some(parse_time("1767225603", Utc::now()).unwrap()),
            ..Default::default()
        };
        assert_eq!(
            printed(LOG, &ts),
            (
                "2026-01-01T00:00:03.000000000Z three\n".into(),
                "2026-01-01T00:00:02.000000000Z two\n".into()
            )
        );
    }

    #[test]
    fn long_lines_print_in_parts_with_one_time() {
        let part = "x".repeat(MAX_ENTRY);
        let mut log = String::new();
        let n = PRINT_CHUNK / MAX_ENTRY + 2;
        for i in 0..n {
            let tag = if i + 1 == n { "F" } else { "P" };
            log.push_str(&format!(
                "2026-01-01T00:00:01.000000000Z stdout {tag} {part}\n"
            ));
        }
        let opts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        let (out, _) = printed(&log, &opts);
        assert_eq!(
            out,
            format!("2026-01-01T00:00:01.000000000Z {}\n", part.repeat(n))
        );
    }

    #[test]
    fn times_as_docker() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T01:00:00Z")
            .unwrap()
            .to_utc();
        let t = |s| parse_time(s, now).unwrap().to_rfc3339();
        assert_eq!(t("1h30m"), "2025-12-31T23:30:00+00:00");
        assert_eq!(t("1.5s"), "2026-01-01T00:59:58.500+00:00");
        assert_eq!(t("1767229200"), "2026-01-01T01:00:00+00:00");
        assert_eq!(
            t("2026-01-01T00:00:00.5+01:00"),
            "2025-12-31T23:00:00.500+00:00"
        );
        for bad in ["", "yesterday", "10x", "-5m"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }
}
