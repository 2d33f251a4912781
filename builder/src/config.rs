//! Metadata instructions (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
//! USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK, SHELL, MAINTAINER) applied
//! to an image config, as docker's dispatchers do. Used by the build and by
//! `import`/`commit --change`.

use std::collections::BTreeMap;

use dockerfile_parser::instructions::{
    instruction_from_node, Healthcheck, Instruction, KeyValue, ShellOrExec,
};
use dockerfile_parser::shell::{Env, Lexer};
use image_store::model::{self, ContainerConfig};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Parse(String),
    #[error("{0} is not a valid change command")]
    NotAChange(String),
    #[error("{0}")]
    Expand(#[from] dockerfile_parser::shell::ShellError),
    #[error("invalid port {0:?}")]
    BadPort(String),
}

/// Docker's default shell for shell-form commands on Linux.
pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into()]
}

/// Per-stage facts the dispatchers need besides the config itself.
#[derive(Debug, Clone, Default)]
pub struct Dispatch {
    /// CMD was set in this stage (an ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

/// Applies one (already expanded) metadata instruction. Returns false for
/// instructions that are not metadata (FROM, RUN, COPY, ADD, ARG).
pub fn apply(
    config: &mut ContainerConfig,
    author: &mut Option<String>,
    state: &mut Dispatch,
    instr: &Instruction,
) -> Result<bool, ConfigError> {
    let shell = config.shell.clone().unwrap_or_else(default_shell);
    let command = |c: &ShellOrExec| match c {
        ShellOrExec::Exec(v) => v.clone(),
        ShellOrExec::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
    };
    match instr {
        Instruction::Cmd(c) => {
            config.cmd = Some(command(c));
            state.cmd_set = true;
        }
        Instruction::Entrypoint(c) => {
            config.entrypoint = match c {
                // `ENTRYPOINT []` clears it.
                ShellOrExec::Exec(v) if v.is_empty() => None,
                _ => Some(command(c)),
            };
            if !state.cmd_set {
                config.cmd = None;
            }
        }
        Instruction::Env(kvs) => {
            for KeyValue { key, value, .. } in kvs {
                config.set_env(key, value);
            }
        }
        Instruction::Label(kvs) => {
            let labels = config.labels.get_or_insert_with(BTreeMap::new);
            for KeyValue { key, value, .. } in kvs {
                labels.insert(key.clone(), value.clone());
            }
        }
        Instruction::Maintainer(m) => *author = Some(m.clone()),
        Instruction::Expose(ports) => {
            let exposed = config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in ports {
                for spec in port_specs(p)? {
                    exposed.insert(spec, Value::Object(Default::default()));
                }
            }
        }
        Instruction::Volume(vols) => {
            let v = config.volumes.get_or_insert_with(BTreeMap::new);
            for vol in vols {
                v.insert(vol.clone(), Value::Object(Default::default()));
            }
        }
        Instruction::User(u) => config.user = Some(u.clone()),
        Instruction::Workdir(w) => config.working_dir = Some(resolve_workdir(config, w)),
        Instruction::StopSignal(s) => config.stop_signal = Some(s.clone()),
        Instruction::Shell(s) => config.shell = Some(s.clone()),
        Instruction::OnBuild(o) => config
            .on_build
            .get_or_insert_with(Vec::new)
            .push(o.expression.clone()),
        Instruction::Healthcheck(h) => {
            config.healthcheck = Some(match h {
                Healthcheck::None => model::Healthcheck {
                    test: Some(vec!["NONE".into()]),
                    ..Default::default()
                },
                Healthcheck::Cmd {
                    test,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                } => {
                    let ns = |d: &Option<std::time::Duration>| {
                        d.map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64)
                    };
                    model::Healthcheck {
                        test: Some(test.clone()),
                        interval: ns(interval),
                        timeout: ns(timeout),
                        start_period: ns(start_period),
                        start_interval: ns(start_interval),
                        retries: retries.map_or(0, i64::from),
                    }
                }
            })
        }
        Instruction::From(_)
        | Instruction::Run(_)
        | Instruction::Add(_)
        | Instruction::Copy(_)
        | Instruction::Arg(_) => return Ok(false),
    }
    Ok(true)
}

/// WORKDIR: relative paths resolve against the previous one; the result is
/// cleaned like Go's `filepath.Clean`.
pub fn resolve_workdir(config: &ContainerConfig, w: &str) -> String {
    let base = config.working_dir.as_deref().unwrap_or("/");
    let joined = if w.starts_with('/') {
        w.to_string()
    } else {
        format!("{base}/{w}")
    };
    clean_abs(&joined)
}

/// Cleans an absolute path (one definition, shared with `-v`/`--tmpfs`).
pub use containers::options::clean_abs;

/// `80`, `80/udp`, `8000-8002/tcp` → docker's `PORT/PROTO` keys.
fn port_specs(p: &str) -> Result<Vec<String>, ConfigError> {
    let bad = || ConfigError::BadPort(p.to_string());
    let (ports, proto) = match p.split_once('/') {
        Some((a, b)) => (a, b.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a, b),
        None => (ports, ports),
    };
    let lo: u16 = lo.parse().map_err(|_| bad())?;
    let hi: u16 = hi.parse().map_err(|_| bad())?;
    if hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|n| format!("{n}/{proto}")).collect())
}

/// The env of a config as lookup pairs, for word expansion.
pub fn env_pairs(config: &ContainerConfig) -> Vec<(String, String)> {
    dockerfile_parser::shell::env_from_pairs(config.env.iter().flatten())
}

/// `import`/`commit --change`: each string is one Dockerfile instruction
/// (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR,
/// plus STOPSIGNAL, HEALTHCHECK, SHELL and MAINTAINER), applied in order.
pub fn apply_changes(
    config: &mut ContainerConfig,
    author: &mut Option<String>,
    changes: &[String],
) -> Result<(), ConfigError> {
    let mut state = Dispatch::default();
    for change in changes {
        let parsed = dockerfile_parser::parse(change)
            .map_err(|e| ConfigError::Parse(format!("--change {change:?}: {e}")))?;
        for node in &parsed.nodes {
            let mut instr = instruction_from_node(node)
                .map_err(|e| ConfigError::Parse(format!("--change {change:?}: {e}")))?;
            if matches!(
                instr,
                Instruction::From(_)
                    | Instruction::Run(_)
                    | Instruction::Add(_)
                    | Instruction::Copy(_)
                    | Instruction::Arg(_)
            ) {
                return Err(ConfigError::NotAChange(node.name.to_ascii_uppercase()));
            }
            let env = env_pairs(config);
            instr.expand(&Lexer::new(parsed.escape), &env as &dyn Env)?;
            apply(config, author, &mut state, &instr)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_like_docker() {
        let mut c = ContainerConfig::default();
        let mut author = None;
        let changes: Vec<String> = [
            "ENV A=1 B=two",
            "ENV C=${A}-x",
            "CMD echo hi",
            "ENTRYPOINT [\"/bin/app\"]",
            "EXPOSE 80 53/udp",
            "LABEL k=v",
            "USER nobody",
            "WORKDIR /srv",
            "WORKDIR sub/../data",
            "VOLUME /data",
            "ONBUILD RUN echo triggered",
            "HEALTHCHECK --interval=30s --retries=3 CMD true",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        apply_changes(&mut c, &mut author, &changes).unwrap();
        assert_eq!(c.get_env("C"), Some("1-x"));
        // ENTRYPOINT after CMD in the same stage keeps the CMD.
        assert_eq!(c.cmd.as_deref().unwrap(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.entrypoint.as_deref().unwrap(), ["/bin/app"]);
        let ports: Vec<&String> = c.exposed_ports.as_ref().unwrap().keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        assert_eq!(c.working_dir.as_deref(), Some("/srv/data"));
        assert_eq!(c.on_build.as_deref().unwrap(), ["RUN echo triggered"]);
        let h = c.healthcheck.unwrap();
        assert_eq!(h.interval, 30_000_000_000);
        assert_eq!(h.retries, 3);
        assert!(apply_changes(
            &mut ContainerConfig::default(),
            &mut None,
            &["RUN x".into()]
        )
        .is_err());
        assert!(apply_changes(
            &mut ContainerConfig::default(),
            &mut None,
            &["BOGUS x".into()]
        )
        .is_err());
    }
}
