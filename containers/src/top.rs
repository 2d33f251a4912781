//! `kiln top` (and the Engine API's `/containers/{id}/top`): the host's
//! `ps` rows of the processes in the container's cgroup.

use std::collections::BTreeSet;

use image_store::Store;

use crate::error::{Error, Result};

/// `ps`'s header line and the rows of the container's processes.
#[derive(Debug, Clone)]
pub struct Top {
    pub header: String,
    pub rows: Vec<String>,
}

impl Top {
    /// docker's shape: the header's titles, and each row cut into as many
    /// fields (the last one, the command, keeps its spaces).
    pub fn table(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let titles: Vec<String> = self.header.split_whitespace().map(str::to_string).collect();
        let n = titles.len().max(1);
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let mut fields: Vec<String> = Vec::with_capacity(n);
                let mut rest = r.trim_start();
                while fields.len() + 1 < n {
                    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                    fields.push(rest[..end].to_string());
                    rest = rest[end..].trim_start();
                }
                fields.push(rest.to_string());
                fields
            })
            .collect();
        (titles, rows)
    }
}

/// Runs `ps OPTIONS` (default `-ef`) and keeps the rows whose PID is in
/// container `name`'s cgroup.
pub fn top(store: &Store, name: &str, ps_options: &[String]) -> Result<Top> {
    let pids: BTreeSet<i32> = crate::freeze::pids(store, name)?.into_iter().collect();
    let opts: Vec<String> = if ps_options.is_empty() {
        vec!["-ef".to_string()]
    } else {
        ps_options.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&opts)
        .output()
        .map_err(|e| Error::Invalid(format!("running ps: {e}")))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "ps {} failed: {}",
            opts.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("").to_string();
    let Some(col) = header.split_whitespace().position(|h| h == "PID") else {
        return Err(Error::Invalid(format!(
            "ps {} printed no PID column",
            opts.join(" ")
        )));
    };
    let rows = lines
        .filter(|l| {
            l.split_whitespace()
                .nth(col)
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|p| pids.contains(&p))
        })
        .map(str::to_string)
        .collect();
    Ok(Top { header, rows })
}
