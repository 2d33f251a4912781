//! docker's image filters: `images --filter dangling|label|reference|
//! before|since` and `image prune --filter until|label`. Different keys
//! must all match; several `reference` values are alternatives, several
//! `label` values must all match, as in docker.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::error::{Result, StoreError};
use crate::images::{repo_of, Image, ImageList};

#[derive(Debug, Default)]
pub struct ImageFilters {
    dangling: Option<bool>,
    label: Vec<(String, Option<String>)>,
    /// `label!=KEY[=VALUE]` (prune): images without it.
    not_label: Vec<(String, Option<String>)>,
    reference: Vec<String>,
    before: Option<DateTime<Utc>>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

/// Which filter keys a command takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// `images`: dangling, label, reference, before, since.
    List,
    /// `image prune`: until, label, label!.
    Prune,
}

impl ImageFilters {
    /// Parses `KEY=VALUE` items; `images` (the store's images) resolves
    /// `before`/`since`, which name an image.
    pub fn parse(items: &[String], keys: Keys, images: &ImageList) -> Result<ImageFilters> {
        let now = Utc::now();
        let mut f = ImageFilters::default();
        for item in items {
            let bad = |why: &str| StoreError::InvalidFilter {
                item: item.clone(),
                why: why.to_string(),
            };
            let (k, v) = item.split_once('=').ok_or_else(|| bad("want KEY=VALUE"))?;
            let created_of = |name: &str| {
                images
                    .find(name)
                    .ok()
                    .and_then(|i| created(&i))
                    .ok_or_else(|| bad("no such image (or it has no creation time)"))
            };
            match (keys, k) {
                (Keys::List, "dangling") => {
                    f.dangling = Some(match v {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(bad("the value must be true or false")),
                    })
                }
                (_, "label") => f.label.push(label(v)),
                (Keys::Prune, "label!") => f.not_label.push(label(v)),
                (Keys::List, "reference") => f.reference.push(v.to_string()),
                (Keys::List, "before") => f.before = Some(created_of(v)?),
                (Keys::List, "since") => f.since = Some(created_of(v)?),
                (Keys::Prune, "until") => {
                    f.until = Some(parse_time(v, now).ok_or_else(|| {
                        bad("want a timestamp (RFC 3339, a date or Unix seconds) or a duration (10m, 24h)")
                    })?)
                }
                (Keys::List, _) => {
                    return Err(bad(
                        "kiln filters images by dangling, label, reference, before and since",
                    ))
                }
                (Keys::Prune, _) => {
                    return Err(bad("kiln prunes images by until, label and label!"))
                }
            }
        }
        Ok(f)
    }

    /// Does the image pass the filters that concern whole images?
    pub fn accepts(&self, img: &Image) -> bool {
        let labels = img
            .config
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let t = created(img);
        self.dangling.is_none_or(|d| d == img.names.is_empty())
            && labels_match(&labels, &self.label)
            && self
                .not_label
                .iter()
                .all(|l| !labels_match(&labels, std::slice::from_ref(l)))
            && self.before.is_none_or(|b| t.is_some_and(|t| t < b))
            && self.since.is_none_or(|s| t.is_some_and(|t| t > s))
            && self.until.is_none_or(|u| t.is_some_and(|t| t < u))
    }

    /// Does a row of the image, named `name` (`None`: untagged), pass the
    /// `reference` filters?
    pub fn accepts_name(&self, name: Option<&str>) -> bool {
        if self.reference.is_empty() {
            return true;
        }
        let Some(name) = name else { return false };
        self.reference
            .iter()
            .any(|p| familiar_forms(name).iter().any(|n| glob(p, n)))
    }
}

fn created(img: &Image) -> Option<DateTime<Utc>> {
    img.config
        .created
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn label(v: &str) -> (String, Option<String>) {
    match v.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (v.to_string(), None),
    }
}

fn labels_match(labels: &BTreeMap<String, String>, want: &[(String, Option<String>)]) -> bool {
    want.iter().all(|(k, v)| match (labels.get(k), v) {
        (Some(have), Some(want)) => have == want,
        (Some(_), None) => true,
        (None, _) => false,
    })
}

/// The names a `reference` pattern is matched against: the stored name
/// (`localhost/busybox:latest`), its repository, and both without the
/// `localhost/` or `docker.io/library/` that kiln adds (docker's familiar
/// form, which scripts write).
fn familiar_forms(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for n in [name, repo_of(name)] {
        out.push(n.to_string());
        for prefix in ["localhost/", "docker.io/library/", "docker.io/"] {
            if let Some(short) = n.strip_prefix(prefix) {
                out.push(short.to_string());
            }
        }
    }
    out
}

/// Go's `path.Match` for `*` (any run without `/`), `?` (one character
/// but `/`) and `[…]` classes: docker matches references with it.
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n)
}

fn glob_at(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len())
            .take_while(|&i| i == 0 || n[i - 1] != '/')
            .any(|i| glob_at(&p[1..], &n[i..])),
        Some('?') => n.first().is_some_and(|&c| c != '/') && glob_at(&p[1..], &n[1..]),
        Some('[') => {
            let Some(end) = p.iter().position(|&c| c == ']') else {
                return false;
            };
            let Some(&c) = n.first() else { return false };
            let (negate, class) = match p.get(1) {
                Some('^') => (true, &p[2..end]),
                _ => (false, &p[1..end]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob_at(&p[end + 1..], &n[1..])
        }
        Some(&c) => n.first() == Some(&c) && glob_at(&p[1..], &n[1..]),
    }
}

/// docker's filter times: RFC 3339, a date, Unix seconds, or a duration
/// back from `now` (`10m`, `24h`, `1h30m`).
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return DateTime::from_timestamp(secs as i64, 0);
    }
    go_duration(s).map(|d| now - d)
}

/// Go's `time.ParseDuration` (h, m, s, ms, us, ns; fractions allowed).
pub fn go_duration(s: &str) -> Option<chrono::Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * secs;
        rest = &rest[u..];
    }
    Some(chrono::Duration::milliseconds((total * 1000.0) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_as_go_path_match() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("busybox:*", "busybox:latest"));
        assert!(!glob("*", "localhost/busybox"));
        assert!(glob("*/busybox", "localhost/busybox"));
        assert!(glob("b?sybox", "busybox"));
        assert!(glob("[a-c]usybox", "busybox"));
        assert!(!glob("[^b]usybox", "busybox"));
        assert!(!glob("alpine", "busybox"));
    }

    #[test]
    fn references_match_familiar_names() {
        let f = ImageFilters {
            reference: vec!["busybox".into()],
            ..Default::default()
        };
        assert!(f.accepts_name(Some("localhost/busybox:latest")));
        assert!(f.accepts_name(Some("docker.io/library/busybox:1.36")));
        assert!(!f.accepts_name(Some("localhost/alpine:latest")));
        assert!(!f.accepts_name(None));
    }

    #[test]
    fn filter_times() {
        let now = DateTime::parse_from_rfc3339("2024-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t = |s| parse_time(s, now).map(|t| t.to_rfc3339());
        assert_eq!(t("1h30m").unwrap(), "2024-01-01T22:30:00+00:00");
        assert_eq!(t("24h").unwrap(), "2024-01-01T00:00:00+00:00");
        assert_eq!(t("2023-12-31").unwrap(), "2023-12-31T00:00:00+00:00");
        assert_eq!(t("0").unwrap(), "1970-01-01T00:00:00+00:00");
        assert!(t("soon").is_none());
        assert!(t("3d").is_none());
    }
}
