//! `ps --filter KEY=VALUE` with docker's semantics: values of one key are
//! alternatives (any may match), different keys must all match; `label`
//! is the exception, as in docker, where every label filter must match.
//! `name` and `id` match as docker's do, exactly or as an unanchored
//! regular expression; a `status` filter lists stopped containers too.
//! `ancestor`, `before`, `since`, `volume` and `network` name other
//! objects, which [`Filters::resolve`] looks up once per listing.
//! [`NetworkFilters`] are `network ls`'s.

use std::collections::{BTreeMap, HashMap, HashSet};

use image_store::Store;
use regex::Regex;

use crate::error::{Error, Result};
use crate::network::NetworkDef;
use crate::records::{Container, Containers, State};

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
    /// Image names or IDs; resolved to the IDs and layer lists that
    /// [`Filters::resolve`] finds.
    ancestor: Vec<String>,
    ancestors: Vec<(String, Vec<String>)>,
    /// Container names or IDs; resolved to creation times.
    before: Option<String>,
    since: Option<String>,
    before_time: Option<String>,
    since_time: Option<String>,
    /// A volume name or a mount destination.
    volume: Vec<String>,
    /// A network name or ID; resolved to names.
    network: Vec<String>,
    /// What [`Filters::resolve`] learned: each container's network, and
    /// the layers of each image the containers run.
    networks: HashMap<String, String>,
    image_layers: HashMap<String, Vec<String>>,
}

/// docker's `label=KEY` / `label=KEY=VALUE`: all must match.
pub fn parse_label(v: &str) -> (String, Option<String>) {
    match v.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (v.to_string(), None),
    }
}

/// Do `labels` satisfy every `label=` filter?
pub fn labels_match(labels: &BTreeMap<String, String>, want: &[(String, Option<String>)]) -> bool {
    want.iter().all(|(k, v)| match (labels.get(k), v) {
        (Some(have), Some(want)) => have == want,
        (Some(_), None) => true,
        (None, _) => false,
    })
}

/// A `true`/`false` filter value, as docker reads them.
pub fn parse_bool(item: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::Invalid(format!(
            "invalid filter {item:?}: the value must be true or false"
        ))),
    }
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
    /// Parses `KEY=VALUE` items (name, id, label, status, health, exited,
    /// ancestor, before, since, volume, network).
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
                "label" => f.label.push(parse_label(v)),
                "health" => {
                    if !HEALTH.contains(&v) {
                        return Err(bad(&format!(
                            "the health must be one of {}",
                            HEALTH.join(", ")
                        )));
                    }
                    f.health.push(v.to_string());
                }
                "ancestor" => f.ancestor.push(v.to_string()),
                "before" => f.before = Some(v.to_string()),
                "since" => f.since = Some(v.to_string()),
                "volume" => f.volume.push(v.to_string()),
                "network" => f.network.push(v.to_string()),
                "exited" => f.exited.push(
                    v.parse()
                        .map_err(|_| bad("the exit code must be a number"))?,
                ),
                _ => {
                    return Err(bad(
                        "kiln filters containers by id, name, label, status, health, \
                         exited, ancestor, before, since, volume and network",
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

    /// Looks up what the filters name: the `before`/`since` containers (in
    /// `all`, every container of the store), the `ancestor` images, and the
    /// networks the containers are on. An unknown container or image is an
    /// error, as docker's; an unknown network matches nothing.
    pub fn resolve(&mut self, store: &Store, all: &[Container]) -> Result<()> {
        let created = |name: &str| -> Result<String> {
            all.iter()
                .find(|c| c.name == name || c.id == name)
                .or_else(|| {
                    let m: Vec<_> = all.iter().filter(|c| c.id.starts_with(name)).collect();
                    (m.len() == 1).then(|| m[0])
                })
                .map(|c| c.created.clone())
                .ok_or_else(|| Error::NoSuchContainer(name.to_string()))
        };
        if let Some(b) = &self.before {
            self.before_time = Some(created(b)?);
        }
        if let Some(s) = &self.since {
            self.since_time = Some(created(s)?);
        }
        if !self.ancestor.is_empty() {
            for name in &self.ancestor {
                let img = store.resolve(name).map_err(|_| {
                    Error::Invalid(format!("invalid filter 'ancestor={name}': no such image"))
                })?;
                self.ancestors.push((img.id().to_string(), diff_ids(&img)));
            }
            let ids: HashSet<String> = all.iter().map(|c| c.image_id.to_string()).collect();
            for id in ids {
                if let Ok(img) = store.resolve(&id) {
                    self.image_layers.insert(id, diff_ids(&img));
                }
            }
        }
        if !self.network.is_empty() {
            let dirs = Containers::new(store);
            for c in all {
                if let Some(a) = crate::network::attachment(&dirs.container_dir(&c.id)) {
                    self.networks.insert(c.id.clone(), a.network);
                }
            }
            let lock = crate::network::Networks::new(store).lock()?;
            let nets = crate::network::Networks::new(store);
            // A network ID (or its prefix) stands for its name.
            self.network = self
                .network
                .iter()
                .map(|n| {
                    nets.get(&lock, n)
                        .map(|d| d.name)
                        .unwrap_or_else(|_| n.clone())
                })
                .collect();
        }
        Ok(())
    }
}

fn diff_ids(img: &image_store::Image) -> Vec<String> {
    img.config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.to_string())
        .collect()
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
        let labels_ok = labels_match(&c.labels, &self.label);
        let exited_ok = self.exited.is_empty()
            || (c.state == State::Exited
                && c.started.is_some()
                && self.exited.iter().any(|e| Some(*e) == c.exit_code));
        let status_ok = self.status.is_empty() || self.status.iter().any(|s| s == status(store, c));
        let health_ok = self.health.is_empty() || {
            let h = health(store, c);
            self.health.iter().any(|s| s == h)
        };
        name_ok
            && any(&self.id, &c.id)
            && labels_ok
            && exited_ok
            && status_ok
            && health_ok
            && self.ancestor_ok(c)
            && self.before_time.as_ref().is_none_or(|t| c.created < *t)
            && self.since_time.as_ref().is_none_or(|t| c.created > *t)
            && (self.volume.is_empty()
                || c.mounts.iter().any(|m| {
                    self.volume
                        .iter()
                        .any(|v| m.name.as_ref() == Some(v) || m.destination == *v)
                }))
            && (self.network.is_empty()
                || self
                    .networks
                    .get(&c.id)
                    .is_some_and(|n| self.network.contains(n)))
    }

    /// docker's `ancestor`: the container runs the image, or an image built
    /// on it (its layers start with the image's layers).
    fn ancestor_ok(&self, c: &Container) -> bool {
        if self.ancestor.is_empty() {
            return true;
        }
        let id = c.image_id.to_string();
        let layers = self.image_layers.get(&id);
        self.ancestors.iter().any(|(aid, alayers)| {
            *aid == id || layers.is_some_and(|l| !alayers.is_empty() && l.starts_with(alayers))
        })
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

/// `network ls --filter`: driver, id, label, name, scope, type, dangling.
#[derive(Debug, Default)]
pub struct NetworkFilters {
    driver: Vec<String>,
    id: Vec<String>,
    label: Vec<(String, Option<String>)>,
    name: Vec<String>,
    scope: Vec<String>,
    custom: Option<bool>,
    dangling: Option<bool>,
}

impl NetworkFilters {
    pub fn parse(items: &[String]) -> Result<NetworkFilters> {
        let mut f = NetworkFilters::default();
        for item in items {
            let bad = |why: &str| Error::Invalid(format!("invalid filter {item:?}: {why}"));
            let (k, v) = item.split_once('=').ok_or_else(|| bad("want KEY=VALUE"))?;
            match k {
                "driver" => f.driver.push(v.to_string()),
                "id" => f.id.push(v.to_string()),
                "label" => f.label.push(parse_label(v)),
                "name" => f.name.push(v.to_string()),
                "scope" => f.scope.push(v.to_string()),
                "type" => {
                    f.custom = Some(match v {
                        "custom" => true,
                        "builtin" => false,
                        _ => return Err(bad("the type is custom or builtin")),
                    })
                }
                "dangling" => f.dangling = Some(parse_bool(item, v)?),
                _ => return Err(bad(
                    "kiln filters networks by driver, id, label, name, scope, type and dangling",
                )),
            }
        }
        Ok(f)
    }

    /// Does `n` pass? `in_use` (asked only for `dangling`) says whether a
    /// container is attached to it. `name` and `id` match substrings and
    /// prefixes, as docker's.
    pub fn accepts(&self, n: &NetworkDef, in_use: impl FnOnce() -> bool) -> bool {
        let builtin = n.name == crate::network::DEFAULT_NETWORK;
        (self.driver.is_empty() || self.driver.contains(&n.driver))
            && (self.id.is_empty() || self.id.iter().any(|i| n.id.starts_with(i.as_str())))
            && labels_match(&n.labels, &self.label)
            && (self.name.is_empty() || self.name.iter().any(|s| n.name.contains(s.as_str())))
            && (self.scope.is_empty() || self.scope.iter().any(|s| s == "local"))
            && self.custom.is_none_or(|c| c != builtin)
            // docker never counts its predefined networks as dangling.
            && self.dangling.is_none_or(|d| d == (!builtin && !in_use()))
    }
}

/// `volume ls --filter`: dangling, name, label, driver.
#[derive(Debug, Default)]
pub struct VolumeFilters {
    dangling: Option<bool>,
    name: Vec<String>,
    label: Vec<(String, Option<String>)>,
    driver: Vec<String>,
}

impl VolumeFilters {
    pub fn parse(items: &[String]) -> Result<VolumeFilters> {
        let mut f = VolumeFilters::default();
        for item in items {
            let bad = |why: &str| Error::Invalid(format!("invalid filter {item:?}: {why}"));
            let (k, v) = item.split_once('=').ok_or_else(|| bad("want KEY=VALUE"))?;
            match k {
                "dangling" => f.dangling = Some(parse_bool(item, v)?),
                "name" => f.name.push(v.to_string()),
                "label" => f.label.push(parse_label(v)),
                "driver" => f.driver.push(v.to_string()),
                _ => {
                    return Err(bad(
                        "kiln filters volumes by dangling, name, label and driver",
                    ))
                }
            }
        }
        Ok(f)
    }

    /// Does `v` pass? `in_use` (asked only for `dangling`) says whether a
    /// container uses it.
    pub fn accepts(&self, v: &crate::volumes::Volume, in_use: impl FnOnce() -> bool) -> bool {
        (self.name.is_empty() || self.name.iter().any(|n| v.name.contains(n.as_str())))
            && labels_match(&v.labels, &self.label)
            && (self.driver.is_empty() || self.driver.iter().any(|d| d == "local"))
            && self.dangling.is_none_or(|d| d != in_use())
    }
}
