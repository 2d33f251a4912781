//! `ps --filter KEY=VALUE` with docker's semantics: values of one key are
//! alternatives (any may match), different keys must all match; `label`
//! is the exception, as in docker, where every label filter must match.
//! `name` and `id` match as docker's do, exactly or as an unanchored
//! regular expression; a `status` filter lists stopped containers too.

use image_store::Store;
use regex::Regex;

use crate::error::{Error, Result};
use crate::records::{Container, State};

const HEALTH: [&str; 4] = ["starting", "healthy", "unhealthy", "none"];

const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

#[derive(Debug, Default)]
pub struct Filters {
    status: Vec<String>,
    name: Vec<(String, Regex)>,
    id: Vec<(String, Regex)>,
    /// KEY, or KEY and VALUE.
    label: Vec<(String, Option<String>)>,
    exited: Vec<i32>,
    health: Vec<String>,
}

fn pattern(key: &str, v: &str) -> Result<(String, Regex)> {
    let re = Regex::new(v).map_err(|e| {
        // The regex crate's message spans lines; its last says what is wrong.
        let text = e.to_string();
        let why = text
            .lines()
            .last()
            .unwrap_or("")
            .trim_start_matches("error: ");
        Error::Invalid(format!("invalid filter '{key}={v}': {why}"))
    })?;
    Ok((v.to_string(), re))
}

impl Filters {
    /// Parses `KEY=VALUE` items (name, id, label, status, health, exited).
    pub fn parse(items: &[String]) -> Result<Filters> {
        let mut f = Filters::default();
        for item in items {
            let bad = |why: &str| Error::Invalid(format!("invalid filter {item:?}: {why}"));
            let (k, v) = item.split_once('=').ok_or_else(|| bad("want KEY=VALUE"))?;
            match k {
                "status" => {
                    if !STATUSES.contains(&v) {
                        return Err(bad(&format!(
                            "the status must be one of {}",
                            STATUSES.join(", ")
                        )));
                    }
                    f.status.push(v.to_string());
                }
                "name" => f.name.push(pattern(k, v)?),
                "id" => f.id.push(pattern(k, v)?),
                "label" => f.label.push(match v.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (v.to_string(), None),
                }),
                "health" => {
                    if !HEALTH.contains(&v) {
                        return Err(bad(&format!(
                            "the health must be one of {}",
                            HEALTH.join(", ")
                        )));
                    }
                    f.health.push(v.to_string());
                }
                "exited" => f.exited.push(
                    v.parse()
                        .map_err(|_| bad("the exit code must be a number"))?,
                ),
                _ => {
                    return Err(bad(
                        "kiln filters containers by id, name, label, status, health and exited",
                    ))
                }
            }
        }
        Ok(f)
    }

    /// A status filter lists stopped containers without `-a`, as docker.
    pub fn implies_all(&self) -> bool {
        !self.status.is_empty()
    }
}

impl Filters {
    /// Does `c` (of `store`) pass every filter?
    pub fn accepts(&self, store: &Store, c: &Container) -> bool {
        let any = |pats: &[(String, Regex)], s: &str| {
            pats.is_empty() || pats.iter().any(|(p, re)| p == s || re.is_match(s))
        };
        let slash_name = format!("/{}", c.name);
        let name_ok =
            self.name.is_empty() || any(&self.name, &c.name) || any(&self.name, &slash_name);
        let labels_ok = self.label.iter().all(|(k, v)| match (c.labels.get(k), v) {
            (Some(have), Some(want)) => have == want,
            (Some(_), None) => true,
            (None, _) => false,
        });
        let exited_ok = self.exited.is_empty()
            || (c.state == State::Exited
                && c.started.is_some()
                && self.exited.iter().any(|e| Some(*e) == c.exit_code));
        let status_ok = self.status.is_empty() || self.status.iter().any(|s| s == status(store, c));
        let health_ok = self.health.is_empty() || {
            let h = health(store, c);
            self.health.iter().any(|s| s == h)
        };
        name_ok && any(&self.id, &c.id) && labels_ok && exited_ok && status_ok && health_ok
    }
}

/// docker's health status of a container (`none` without a health
/// check or before its first run).
pub fn health(store: &Store, c: &Container) -> &'static str {
    crate::health::current(store, c).map_or("none", |h| h.status.as_str())
}

/// docker's `State.Status` of a container.
pub fn status(store: &Store, c: &Container) -> &'static str {
    if crate::control::is_paused(store, c) {
        "paused"
    } else if c.is_running() {
        "running"
    } else if c.is_restarting() {
        "restarting"
    } else if c.state == State::Created && !c.orphaned() {
        "created"
    } else {
        "exited"
    }
}
