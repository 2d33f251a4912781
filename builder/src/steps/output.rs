//! What a RUN step prints: passed on as it comes (or not at all with
//! `-q`), and its last lines kept in a bounded ring for the error message
//! when the step fails, as docker shows them. Memory stays bounded whatever
//! the step prints (no whole output, no unbounded line).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::Mutex;

use crate::stages::Stream;

/// Lines of output kept for the error message.
pub const TAIL_LINES: usize = 20;
/// A longer line is kept cut to this many bytes (plus `…`).
pub const MAX_LINE: usize = 2048;
/// A command longer than this is cut in error messages.
pub const MAX_COMMAND: usize = 200;

/// Takes a RUN step's output a line at a time, with its stream.
pub type LineSink<'a> = &'a (dyn Fn(Stream, &str) + Sync);

/// Where the output goes while the step runs.
#[derive(Clone, Copy)]
pub enum Show<'a> {
    Nothing,
    /// Raw to standard error (plain progress).
    Stderr,
    /// A line at a time to the progress display, with the stream it came
    /// from (standard output and error then come through pipes of their own).
    Lines(LineSink<'a>),
}

/// The last [`TAIL_LINES`] lines, each at most [`MAX_LINE`] bytes.
#[derive(Default)]
pub struct Tail {
    lines: VecDeque<String>,
    /// The unfinished line of standard output and of standard error.
    parts: [Part; 2],
}

#[derive(Default)]
struct Part {
    bytes: Vec<u8>,
    cut: bool,
}

fn slot(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

impl Tail {
    /// Adds bytes of one stream (a merged pipe counts as standard output);
    /// `each` gets every completed line.
    pub fn push(&mut self, stream: Stream, mut data: &[u8], each: &mut dyn FnMut(Stream, &str)) {
        while !data.is_empty() {
            let (part, rest, end) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &[][..], false),
            };
            let current = &mut self.parts[slot(stream)];
            let room = MAX_LINE.saturating_sub(current.bytes.len());
            if part.len() > room {
                current.cut = true;
            }
            current
                .bytes
                .extend_from_slice(&part[..part.len().min(room)]);
            if end {
                self.finish_line(stream, each);
            }
            data = rest;
        }
    }

    fn finish_line(&mut self, stream: Stream, each: &mut dyn FnMut(Stream, &str)) {
        let current = &mut self.parts[slot(stream)];
        let mut line = String::from_utf8_lossy(&current.bytes)
            .trim_end_matches('\r')
            .to_string();
        if current.cut {
            line.push('…');
        }
        current.bytes.clear();
        current.cut = false;
        each(stream, &line);
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The kept lines, unterminated last ones included.
    pub fn finish(mut self, each: &mut dyn FnMut(Stream, &str)) -> Vec<String> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let p = &self.parts[slot(stream)];
            if !p.bytes.is_empty() || p.cut {
                self.finish_line(stream, each);
            }
        }
        self.lines.into()
    }
}

/// Reads the step's output (both streams on one pipe) to its end, showing
/// it as `show` says; returns its last lines.
pub fn forward(mut r: impl Read, show: Show) -> Vec<String> {
    let mut tail = Tail::default();
    let mut each = |stream: Stream, line: &str| {
        if let Show::Lines(sink) = show {
            sink(stream, line)
        }
    };
    pump(&mut r, |data| {
        if let Show::Stderr = show {
            let _ = std::io::stderr().lock().write_all(data);
        }
        tail.push(Stream::Stdout, data, &mut each);
    });
    tail.finish(&mut each)
}

/// Reads standard output and error from pipes of their own (a thread
/// each), passing their lines to `sink` as they complete; returns the last
/// lines of both, in the order they completed.
pub fn forward_split(
    mut out: impl Read + Send,
    mut err: impl Read + Send,
    sink: LineSink,
) -> Vec<String> {
    let tail = Mutex::new(Tail::default());
    let read = |r: &mut dyn Read, stream: Stream| {
        pump(r, |data| {
            let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
            t.push(stream, data, &mut |s, l| sink(s, l));
        })
    };
    std::thread::scope(|scope| {
        scope.spawn(|| read(&mut err, Stream::Stderr));
        read(&mut out, Stream::Stdout);
    });
    tail.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .finish(&mut |s, l| sink(s, l))
}

/// Reads `r` to its end in bounded pieces.
fn pump(r: &mut dyn Read, mut each: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => each(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

/// A command for an error message: at most [`MAX_COMMAND`] characters.
pub fn truncate_command(cmd: &str) -> String {
    match cmd.char_indices().nth(MAX_COMMAND) {
        None => cmd.to_string(),
        Some((i, _)) => format!("{}…", &cmd[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_lines_each_bounded() {
        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&format!("line {i}\n"));
        }
        text.push_str(&"x".repeat(10 * MAX_LINE));
        text.push('\n');
        text.push_str("no newline at the end");
        let mut seen = 0;
        let lines = {
            let mut t = Tail::default();
            // In odd-sized pieces, as a pipe delivers them.
            for chunk in text.as_bytes().chunks(777) {
                t.push(Stream::Stdout, chunk, &mut |_, _| seen += 1);
            }
            t.finish(&mut |_, _| seen += 1)
        };
        assert_eq!(seen, 1002);
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines[0], "line 982");
        assert_eq!(lines[17], "line 999");
        assert_eq!(lines[18], format!("{}…", "x".repeat(MAX_LINE)));
        assert_eq!(lines[19], "no newline at the end");
    }

    #[test]
    fn split_streams_keep_their_own_partial_lines() {
        let seen = Mutex::new(Vec::new());
        let sink = |s: Stream, l: &str| seen.lock().unwrap().push((s, l.to_string()));
        let lines = forward_split(&b"out 1\nout 2"[..], &b"err 1\n"[..], &sink);
        let mut seen = seen.into_inner().unwrap();
        seen.sort_by_key(|(s, l)| (*s as u8, l.clone()));
        assert_eq!(
            seen,
            vec![
                (Stream::Stdout, "out 1".to_string()),
                (Stream::Stdout, "out 2".to_string()),
                (Stream::Stderr, "err 1".to_string()),
            ]
        );
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn long_commands_are_cut() {
        assert_eq!(truncate_command("echo hi"), "echo hi");
        let long = "é".repeat(5000);
        let cut = truncate_command(&long);
        assert_eq!(cut.chars().count(), MAX_COMMAND + 1);
        assert!(cut.ends_with('…'));
    }
}
