//! `build --progress rawjson`: the build's [`Event`]s as BuildKit's
//! SolveStatus stream, one JSON object per line, as `docker buildx build
//! --progress rawjson` prints them: BuildKit's `client.SolveStatus` types
//! (client/graph.go) with their JSON names and `omitempty` rules, encoded
//! as Go's `json.Encoder` does (times in RFC3339Nano, `<`, `>` and `&`
//! escaped, byte slices as base64).
//!
//! - A vertex per step BuildKit makes one of (FROM an image, ADD, COPY,
//!   RUN, WORKDIR), named as BuildKit names it (the builder's
//!   [`EventKind::Step`] `vertex`): sent when it starts and again when it
//!   completes, `cached` when the step came from the cache, `error` when it
//!   failed. Its digest is the sha256 of the stage's previous vertex digest
//!   (its input) and its name: the same step of the same Dockerfile has the
//!   same digest in every build, as BuildKit's vertex digests (of the LLB
//!   op and its inputs) do.
//! - RUN output as `logs` of the step's vertex, stream 1 (standard output)
//!   or 2 (standard error), a line per entry.
//! - Warnings as `warnings` (level 1, no vertex); lines about the build as
//!   a whole (cache export) as vertices of their own.
//! - No `statuses`: kiln's steps report no byte or item counters while they
//!   run (the field is left out, as Go's omitempty does).

use std::collections::BTreeMap;
use std::io::{self, Write};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::stages::{Event, EventKind};

/// Writes the stream to `out`, a line per status update.
pub struct SolveStatusWriter<W: Write> {
    out: W,
    /// The vertex each stage is running, by stage number.
    open: BTreeMap<usize, Open>,
    /// Each stage's last completed vertex digest: the next one's input.
    last: BTreeMap<usize, String>,
}

struct Open {
    digest: String,
    inputs: Vec<String>,
    name: String,
    started: DateTime<Utc>,
    cached: bool,
}

/// `client.SolveStatus`.
#[derive(Serialize, Default)]
struct SolveStatus<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    vertexes: Vec<Vertex<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    logs: Vec<VertexLog<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<VertexWarning<'a>>,
}

/// `client.Vertex` (every field omitempty).
#[derive(Serialize)]
struct Vertex<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    digest: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    inputs: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    started: Option<GoTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed: Option<GoTime>,
    #[serde(skip_serializing_if = "is_false")]
    cached: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    error: &'a str,
}

/// `client.VertexLog`: `data` and `timestamp` are always there.
#[derive(Serialize)]
struct VertexLog<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    vertex: &'a str,
    stream: u8,
    data: Base64<'a>,
    timestamp: GoTime,
}

/// `client.VertexWarning`.
#[derive(Serialize)]
struct VertexWarning<'a> {
    level: u8,
    short: Base64<'a>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Go's `[]byte` in JSON: standard base64 with padding.
struct Base64<'a>(&'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

/// Go's `time.Time` in JSON: RFC3339 with the fraction's trailing zeros
/// dropped (RFC3339Nano), here always in UTC.
#[derive(Clone, Copy)]
struct GoTime(DateTime<Utc>);

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&go_rfc3339_nano(self.0))
    }
}

pub fn go_rfc3339_nano(t: DateTime<Utc>) -> String {
    let mut text = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos() % 1_000_000_000;
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        text.push('.');
        text.push_str(frac.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// Go's `json.Encoder` escapes `<`, `>`, `&`, U+2028 and U+2029 in
/// strings (HTML-safe output); serde_json's default formatter does not.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

fn vertex_digest(inputs: &[String], name: &str) -> String {
    let mut h = Sha256::new();
    for i in inputs {
        h.update(i.as_bytes());
        h.update([0]);
    }
    h.update(name.as_bytes());
    format!("sha256:{}", hex::encode(h.finalize()))
}

impl<W: Write> SolveStatusWriter<W> {
    /// Starts the stream with the vertex of reading the Dockerfile
    /// (already done when the build starts), as BuildKit's first one.
    pub fn new(out: W, dockerfile_name: &str) -> SolveStatusWriter<W> {
        let mut w = SolveStatusWriter {
            out,
            open: BTreeMap::new(),
            last: BTreeMap::new(),
        };
        let name = format!("[internal] load build definition from {dockerfile_name}");
        w.instant_vertex(&name);
        w
    }

    pub fn event(&mut self, e: &Event) {
        let now = Utc::now();
        match &e.kind {
            EventKind::Step {
                vertex: Some(name), ..
            } => {
                let inputs: Vec<String> = self.last.get(&e.stage).cloned().into_iter().collect();
                let open = Open {
                    digest: vertex_digest(&inputs, name),
                    inputs,
                    name: name.to_string(),
                    started: now,
                    cached: false,
                };
                self.write_vertex(&open, None, "");
                self.open.insert(e.stage, open);
            }
            EventKind::CacheHit => {
                if let Some(o) = self.open.get_mut(&e.stage) {
                    o.cached = true;
                }
            }
            EventKind::StepDone { .. } => {
                if let Some(o) = self.open.remove(&e.stage) {
                    self.write_vertex(&o, Some(now), "");
                    self.last.insert(e.stage, o.digest);
                }
            }
            EventKind::Failed(error) => {
                if let Some(o) = self.open.remove(&e.stage) {
                    self.write_vertex(&o, Some(now), error);
                }
            }
            EventKind::Output(stream, line) => {
                let Some(digest) = self.open.get(&e.stage).map(|o| o.digest.clone()) else {
                    return;
                };
                let data = format!("{line}\n");
                let status = SolveStatus {
                    logs: vec![VertexLog {
                        vertex: &digest,
                        stream: *stream as u8,
                        data: Base64(data.as_bytes()),
                        timestamp: GoTime(now),
                    }],
                    ..Default::default()
                };
                self.write(&status);
            }
            EventKind::Warning(w) => {
                let status = SolveStatus {
                    warnings: vec![VertexWarning {
                        level: 1,
                        short: Base64(w.as_bytes()),
                    }],
                    ..Default::default()
                };
                self.write(&status);
            }
            EventKind::Info(line) => self.instant_vertex(line),
            EventKind::Step { vertex: None, .. }
            | EventKind::CacheMiss { .. }
            | EventKind::StageDone => {}
        }
    }

    /// A vertex for work already done: started and completed now.
    fn instant_vertex(&mut self, name: &str) {
        let now = Utc::now();
        let open = Open {
            digest: vertex_digest(&[], name),
            inputs: Vec::new(),
            name: name.to_string(),
            started: now,
            cached: false,
        };
        self.write_vertex(&open, Some(now), "");
    }

    fn write_vertex(&mut self, o: &Open, completed: Option<DateTime<Utc>>, error: &str) {
        let status = SolveStatus {
            vertexes: vec![Vertex {
                digest: &o.digest,
                inputs: &o.inputs,
                name: &o.name,
                started: Some(GoTime(o.started)),
                completed: completed.map(GoTime),
                cached: o.cached,
                error,
            }],
            ..Default::default()
        };
        self.write(&status);
    }

    /// One line, written at once (other threads print to the same stream).
    fn write(&mut self, status: &SolveStatus) {
        let mut line = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut line, GoFormatter);
        if status.serialize(&mut ser).is_ok() {
            line.push(b'\n');
            let _ = self.out.write_all(&line);
            let _ = self.out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::Stream;

    fn ev(stage: usize, kind: EventKind) -> Event {
        Event {
            stage,
            stages: 1,
            kind,
        }
    }

    #[test]
    fn go_times_drop_trailing_zeros() {
        let t = DateTime::parse_from_rfc3339("2024-05-06T07:08:09.120000000Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(go_rfc3339_nano(t), "2024-05-06T07:08:09.12Z");
        let t = DateTime::parse_from_rfc3339("2024-05-06T07:08:09Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(go_rfc3339_nano(t), "2024-05-06T07:08:09Z");
    }

    #[test]
    fn steps_become_vertexes_with_logs_in_go_json() {
        let mut out = Vec::new();
        {
            let mut w = SolveStatusWriter::new(&mut out, "Dockerfile");
            w.event(&ev(
                1,
                EventKind::Step {
                    number: 1,
                    total: 2,
                    text: "RUN echo '<a&b>'",
                    vertex: Some("[1/1] RUN echo '<a&b>'"),
                },
            ));
            w.event(&ev(1, EventKind::Output(Stream::Stderr, "<a&b>")));
            w.event(&ev(1, EventKind::StepDone { secs: 0.1 }));
            w.event(&ev(
                1,
                EventKind::Step {
                    number: 2,
                    total: 2,
                    text: "ENV A=1",
                    vertex: None,
                },
            ));
            w.event(&ev(1, EventKind::StepDone { secs: 0.1 }));
        }
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with(r#"{"vertexes":[{"digest":"sha256:"#));
        assert!(lines[0].contains(r#""name":"[internal] load build definition from Dockerfile""#));
        // Go's encoder escapes HTML characters.
        assert!(lines[1].contains(r#""name":"[1/1] RUN echo '\u003ca\u0026b\u003e'""#));
        assert!(!lines[1].contains("completed"));
        let log: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(log["logs"][0]["stream"], 2);
        assert_eq!(log["logs"][0]["data"], "PGEmYj4K");
        let done: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
        assert!(done["vertexes"][0]["completed"].is_string());
        assert!(done["vertexes"][0].get("cached").is_none());
        assert!(done["vertexes"][0].get("inputs").is_none());
    }
}
