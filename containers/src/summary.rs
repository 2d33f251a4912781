//! How a container is shown in a list (`kiln ps`, the Engine API's
//! `/containers/json`): docker's status text and its human durations.

use chrono::{DateTime, Utc};
use image_store::Store;

use crate::records::{Container, State};

/// go-units' HumanDuration, as docker shows ages ("Up 5 minutes").
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    let minutes = d.num_minutes();
    let hours = ((d.num_milliseconds() as f64) / 3_600_000.0 + 0.5) as i64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", d.num_hours() / 24 / 365)
    }
}

/// An RFC 3339 time as kiln records them.
pub fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn since(t: Option<&str>) -> String {
    match parse_time(t) {
        Some(t) => human_duration(Utc::now() - t),
        None => "?".into(),
    }
}

/// docker's STATUS column (moby's `State.String`): "Up 5 seconds", then
/// "(Paused)" or the health, as "(healthy)" or "(health: starting)";
/// "Exited (0) 2 seconds ago".
pub fn status_text(store: &Store, c: &Container) -> String {
    if c.is_running() {
        let up = format!("Up {}", since(c.started.as_deref().or(Some(&c.created))));
        if crate::control::is_paused(store, c) {
            return format!("{up} (Paused)");
        }
        return match crate::health::current(store, c) {
            Some(h) => format!("{up} ({})", h.ps_text()),
            None => up,
        };
    }
    match c.state {
        State::Created => "Created".into(),
        State::Running => "Exited (unknown)".into(),
        State::Restarting => format!(
            "Restarting ({}) {} ago",
            c.exit_code.unwrap_or(-1),
            since(c.finished.as_deref())
        ),
        State::Exited => format!(
            "Exited ({}) {} ago",
            c.exit_code.unwrap_or(-1),
            since(c.finished.as_deref())
        ),
    }
}
