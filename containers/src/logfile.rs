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

/// `--log-opt max-size=SIZE` and `max-file=N` (docker's json-file
/// options): the log is rotated to `ctr.log.1` … `ctr.log.N-1` once it
/// would grow past `max_size`; with one file it starts over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    pub max_size: Option<u64>,
    /// Files kept, the current one included (at least 1).
    pub max_files: u32,
}

impl Rotation {
    /// From `--log-opt KEY=VALUE` items, checked as docker checks them.
    pub fn parse(opts: &std::collections::BTreeMap<String, String>) -> Result<Rotation> {
        let mut r = Rotation {
            max_size: None,
            max_files: 1,
        };
        for (k, v) in opts {
            let bad = |why: &str| Error::Invalid(format!("invalid --log-opt {k}={v}: {why}"));
            match k.as_str() {
                "max-size" => {
                    let n = crate::options::parse_bytes(v).map_err(|_| bad("not a size"))?;
                    r.max_size = Some(n as u64);
                }
                "max-file" => {
                    r.max_files = v
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad("want a number of files, at least 1"))?;
                }
                _ => return Err(bad("kiln's log takes max-size and max-file")),
            }
        }
        if r.max_files > 1 && r.max_size.is_none() {
            return Err(Error::Invalid(
                "--log-opt max-file needs max-size (nothing is rotated without it)".into(),
            ));
        }
        Ok(r)
    }
}

/// The rotated files beside the log at `path` (`ctr.log.1` is the newest),
/// oldest first.
fn rotated_files(path: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for i in 1.. {
        let p = numbered(path, i);
        if !p.exists() {
            break;
        }
        out.push(p);
    }
    out.reverse();
    out
}

fn numbered(path: &Path, i: u32) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    s.into()
}

/// The log file, shared by the threads that pump the two streams; each
/// batch of entries is one append.
#[derive(Debug)]
pub struct LogWriter {
    file: Mutex<(fs::File, u64)>,
    path: std::path::PathBuf,
    rotation: Rotation,
}

fn open_append(path: &Path) -> Result<(fs::File, u64)> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(Error::io(path))?;
    let len = file.metadata().map_err(Error::io(path))?.len();
    Ok((file, len))
}

/// Appends `buf` to the open log. A full disk: the monitor's own output
/// says so; the pipes keep being drained so that the container is not
/// wedged.
fn write_run(f: &mut (fs::File, u64), buf: &[u8]) {
    if buf.is_empty() {
        return;
    }
    match f.0.write_all(buf) {
        Ok(()) => f.1 += buf.len() as u64,
        Err(e) => eprintln!("kiln: writing the container log: {e}"),
    }
}

impl LogWriter {
    pub fn open(path: &Path) -> Result<Arc<LogWriter>> {
        LogWriter::open_rotated(path, Rotation::default())
    }

    pub fn open_rotated(path: &Path, rotation: Rotation) -> Result<Arc<LogWriter>> {
        Ok(Arc::new(LogWriter {
            file: Mutex::new(open_append(path)?),
            path: path.to_path_buf(),
            rotation,
        }))
    }

    fn append(&self, buf: &[u8]) {
        if buf.is_empty() {
            return;
        }
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let Some(max) = self.rotation.max_size else {
            return write_run(&mut f, buf);
        };
        // Entry by entry (a batch may hold many): the run of whole entries
        // that fits is written, then the log rotated.
        let mut rest = buf;
        while !rest.is_empty() {
            let mut run = 0;
            for line in rest.split_inclusive(|&b| b == b'\n') {
                if f.1 + (run + line.len()) as u64 > max && (f.1 > 0 || run > 0) {
                    break;
                }
                run += line.len();
            }
            write_run(&mut f, &rest[..run]);
            rest = &rest[run..];
            if !rest.is_empty() {
                match self.rotate() {
                    Ok(new) => *f = new,
                    Err(e) => {
                        eprintln!("kiln: rotating the container log: {e}");
                        return write_run(&mut f, rest);
                    }
                }
            }
        }
    }

    /// Shifts `ctr.log.N` to `.N+1` (the oldest dropped), the log to
    /// `.1`, and opens a new log.
    fn rotate(&self) -> Result<(fs::File, u64)> {
        let keep = self.rotation.max_files.saturating_sub(1);
        if keep == 0 {
            fs::remove_file(&self.path).map_err(Error::io(&self.path))?;
        } else {
            for i in (1..keep).rev() {
                let from = numbered(&self.path, i);
                if from.exists() {
                    let to = numbered(&self.path, i + 1);
                    fs::rename(&from, &to).map_err(Error::io(&from))?;
                }
            }
            let to = numbered(&self.path, 1);
            fs::rename(&self.path, &to).map_err(Error::io(&self.path))?;
        }
        open_append(&self.path)
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
/// With `parts`, output not ended by a newline is logged as a `P` entry
/// as soon as it is read (a terminal's prompt), not held for its line's end.
fn pump(mut from: fs::File, stream: Stream, log: Arc<LogWriter>, parts: bool) {
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
        if parts && !pending.is_empty() {
            entry(&mut out, &now, stream, true, &pending);
            pending.clear();
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

/// The threads copying a run's output into the log (and, in terminal
/// mode, the stdout pipe's write end the runner writes to).
pub struct Pumps(Vec<JoinHandle<()>>, Option<OwnedFd>);

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
    ///
    /// With `terminal`, the runner itself copies the container's pty to
    /// the stdout pipe while it waits, so that write end stays open (in
    /// the returned [`Pumps`]) until [`Pumps::join`], and output is logged
    /// as it comes, partial lines too.
    pub fn start(self, log: &Arc<LogWriter>, terminal: bool) -> Pumps {
        let Pipes { out, err } = self;
        let kept = terminal.then_some(out.1);
        drop(err.1);
        let threads = [(out.0, Stream::Stdout), (err.0, Stream::Stderr)]
            .into_iter()
            .map(|(r, s)| {
                let log = Arc::clone(log);
                std::thread::spawn(move || pump(fs::File::from(r), s, log, terminal))
            })
            .collect();
        Pumps(threads, kept)
    }
}

impl Pumps {
    /// Waits until both streams reached end of file and are in the log.
    pub fn join(self) {
        // The runner has stopped writing: the stdout pump may now end.
        drop(self.1);
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
    /// Print parts of lines as they are read (a terminal's prompt), not
    /// once the line is whole (`attach`).
    pub parts: bool,
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
            if line.len() >= PRINT_CHUNK || self.opts.parts {
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

/// Where the last `n` lines start, and how many lines there are from
/// there (fewer than `n`: all of them, from 0): one pass, keeping `n`
/// offsets.
fn tail_offset(path: &Path, n: usize) -> Result<(u64, usize)> {
    if n == 0 {
        let len = fs::metadata(path)
            .map(|m| m.len())
            .map_err(Error::io(path))?;
        return Ok((len, 0));
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
        (0, starts.len())
    } else {
        (starts.front().copied().unwrap_or(0), n)
    })
}

/// Where the last `n` lines of `files` (oldest first) start: the index
/// of the file and the offset in it.
fn tail_start(files: &[std::path::PathBuf], n: usize) -> Result<(usize, u64)> {
    let mut left = n;
    for (i, f) in files.iter().enumerate().rev() {
        let (off, found) = tail_offset(f, left)?;
        if found >= left || i == 0 {
            return Ok((i, off));
        }
        left -= found;
    }
    Ok((0, 0))
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
    // Rotated files first (oldest first), then the log itself.
    let mut files = rotated_files(path);
    files.push(path.to_path_buf());
    let (first, start) = match opts.tail {
        Some(n) => tail_start(&files, n)?,
        None => (0, 0),
    };
    let mut p = Printer {
        opts,
        out,
        err,
        pending: [None, None],
        done: false,
    };
    let last = files.len() - 1;
    for (i, f) in files.iter().enumerate().take(last).skip(first) {
        // A file rotated away meanwhile is skipped.
        let Ok(file) = fs::File::open(f) else {
            continue;
        };
        let mut r = BufReader::new(file);
        if i == first {
            r.seek(SeekFrom::Start(start)).map_err(Error::io(f))?;
        }
        let mut buf = Vec::new();
        while !p.done {
            buf.clear();
            let len = r.read_until(b'\n', &mut buf).map_err(Error::io(f))?;
            if len == 0 || buf.last() != Some(&b'\n') {
                break;
            }
            if let Some((time, stream, partial, content)) = parse_entry(&buf[..len - 1]) {
                p.feed(time, stream, partial, content)?;
            }
        }
    }
    let start = if first == last { start } else { 0 };
    let f = fs::File::open(path).map_err(Error::io(path))?;
    follow_file(&mut p, f, path, start, opts, live)
}

/// [`print`] from an open log file (one that may have been removed
/// since, with its `--rm` container), from offset `start`.
pub fn print_file(
    f: fs::File,
    path: &Path,
    start: u64,
    opts: &LogOptions,
    live: &mut dyn FnMut() -> bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let mut p = Printer {
        opts,
        out,
        err,
        pending: [None, None],
        done: false,
    };
    follow_file(&mut p, f, path, start, opts, live)
}

/// The log file from `start`, and with `follow` what is added to it (the
/// next file once it is rotated) while `live` says the container writes.
fn follow_file(
    p: &mut Printer,
    mut f: fs::File,
    path: &Path,
    start: u64,
    opts: &LogOptions,
    live: &mut dyn FnMut() -> bool,
) -> Result<()> {
    f.seek(SeekFrom::Start(start)).map_err(Error::io(path))?;
    let mut r = BufReader::new(f);
    let mut buf = Vec::new();
    let mut pos = start;
    loop {
        // Asked before reading: what was written before it ended is read.
        let still = opts.follow && live();
        // Rotated before this pass: the old file is read to its end, then
        // the new one from its start.
        let rotated = opts.follow && replaced(r.get_ref(), path);
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
        if rotated && !p.done && !past_until {
            if let Ok(f) = fs::File::open(path) {
                r = BufReader::new(f);
                pos = 0;
                continue;
            }
        }
        if !still || p.done || past_until {
            break;
        }
        std::thread::sleep(opts.poll.unwrap_or(Duration::from_millis(100)));
    }
    p.flush_partial()
}

/// Is the file at `path` now another than `open` (the log was rotated)?
fn replaced(open: &fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (open.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) != (b.dev(), b.ino()),
        _ => false,
    }
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

    /// A `Write` the test can look into while `print` writes to it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rotation_keeps_the_end_and_follow_crosses_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let rotation = Rotation {
            max_size: Some(100),
            max_files: 50,
        };
        let log = LogWriter::open_rotated(&path, rotation).unwrap();
        let out = Shared::default();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let follower = {
            let (path, mut out, done) = (path.clone(), out.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                let opts = LogOptions {
                    follow: true,
                    ..Default::default()
                };
                let mut live = || !done.load(std::sync::atomic::Ordering::SeqCst);
                print(&path, &opts, &mut live, &mut out, &mut std::io::sink()).unwrap();
            })
        };
        let mut want = String::new();
        for i in 0..8 {
            log.message(Stream::Stdout, &format!("message-{i}"));
            want.push_str(&format!("message-{i}\n"));
            // Each is seen before the next: a rotation at a time.
            let end = std::time::Instant::now() + Duration::from_secs(30);
            while !String::from_utf8_lossy(&out.0.lock().unwrap()).ends_with(&want) {
                assert!(std::time::Instant::now() < end, "not followed: {want}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        follower.join().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.0.lock().unwrap()), want);
        assert!(rotated_files(&path).len() >= 3, "the log was rotated");
        // Read again: every file, oldest first; --tail across them.
        let mut again = Vec::new();
        let opts = LogOptions::default();
        print(
            &path,
            &opts,
            &mut || false,
            &mut again,
            &mut std::io::sink(),
        )
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&again), want);
        let mut tail = Vec::new();
        let opts = LogOptions {
            tail: Some(3),
            ..Default::default()
        };
        print(&path, &opts, &mut || false, &mut tail, &mut std::io::sink()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&tail),
            "message-5\nmessage-6\nmessage-7\n"
        );
    }

    fn pumped(input: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let log = LogWriter::open(&p).unwrap();
        let (r, w) = pipe().unwrap();
        let t = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || pump(fs::File::from(r), Stream::Stderr, log, false))
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
