//! What a RUN step prints: passed on as it comes (or not at all with
//! `-q`), and its last lines kept in a bounded ring for the error message
//! when the step fails, as docker shows them. Memory stays bounded whatever
//! the step prints (no whole output, no unbounded line).

use std::collections::VecDeque;
use std::io::{Read, Write};

/// Lines of output kept for the error message.
pub const TAIL_LINES: usize = 20;
/// A longer line is kept cut to this many bytes (plus `…`).
pub const MAX_LINE: usize = 2048;
/// A command longer than this is cut in error messages.
pub const MAX_COMMAND: usize = 200;

/// Where the output goes while the step runs.
#[derive(Clone, Copy)]
pub enum Show<'a> {
    Nothing,
    /// Raw to standard error (plain progress).
    Stderr,
    /// A line at a time to the progress display.
    Lines(&'a (dyn Fn(&str) + Sync)),
}

/// The last [`TAIL_LINES`] lines, each at most [`MAX_LINE`] bytes.
#[derive(Default)]
pub struct Tail {
    lines: VecDeque<String>,
    current: Vec<u8>,
    cut: bool,
}

impl Tail {
    /// Adds bytes; `each` gets every completed line.
    pub fn push(&mut self, mut data: &[u8], each: &mut dyn FnMut(&str)) {
        while !data.is_empty() {
            let (part, rest, end) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &[][..], false),
            };
            let room = MAX_LINE.saturating_sub(self.current.len());
            if part.len() > room {
                self.cut = true;
            }
            self.current
                .extend_from_slice(&part[..part.len().min(room)]);
            if end {
                self.finish_line(each);
            }
            data = rest;
        }
    }

    fn finish_line(&mut self, each: &mut dyn FnMut(&str)) {
        let mut line = String::from_utf8_lossy(&self.current)
            .trim_end_matches('\r')
            .to_string();
        if self.cut {
            line.push('…');
        }
        each(&line);
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
        self.current.clear();
        self.cut = false;
    }

    /// The kept lines, a last unterminated one included.
    pub fn finish(mut self, each: &mut dyn FnMut(&str)) -> Vec<String> {
        if !self.current.is_empty() || self.cut {
            self.finish_line(each);
        }
        self.lines.into()
    }
}

/// Reads the step's output to its end, showing it as `show` says; returns
/// its last lines.
pub fn forward(mut r: impl Read, show: Show) -> Vec<String> {
    let mut tail = Tail::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut each = |line: &str| {
        if let Show::Lines(sink) = show {
            sink(line)
        }
    };
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if let Show::Stderr = show {
            let _ = std::io::stderr().lock().write_all(&buf[..n]);
        }
        tail.push(&buf[..n], &mut each);
    }
    tail.finish(&mut each)
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
                t.push(chunk, &mut |_| seen += 1);
            }
            t.finish(&mut |_| seen += 1)
        };
        assert_eq!(seen, 1002);
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines[0], "line 982");
        assert_eq!(lines[17], "line 999");
        assert_eq!(lines[18], format!("{}…", "x".repeat(MAX_LINE)));
        assert_eq!(lines[19], "no newline at the end");
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
