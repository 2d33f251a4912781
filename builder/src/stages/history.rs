//! History `created_by` in BuildKit's wording (dockerfile2llb's
//! `commitToHistory` callers), written from the expanded instruction:
//! `RUN |1 GREETING=hi /bin/sh -c … # buildkit`, `ENV K=V`, `WORKDIR /abs`,
//! `CMD ["a" "b"]`, `VOLUME [/a /b]`… Tools that show history (`docker
//! history`, dive, scanners) read these.

use dockerfile_parser::dump::go_quote;
use dockerfile_parser::instructions::{Healthcheck, Instruction, KeyValue, ShellOrExec, Source};

use super::State;
use crate::steps::run;

pub fn created_by(instr: &Instruction, state: &State) -> String {
    // Borrowed, not cloned: this runs for every instruction.
    let no_config = image_store::ContainerConfig::default();
    let cfg = state.config.config.as_ref().unwrap_or(&no_config);
    let shell_form = |c: &ShellOrExec| match c {
        ShellOrExec::Exec(v) => v.clone(),
        ShellOrExec::Shell(s) => cfg
            .shell
            .clone()
            .unwrap_or_else(crate::config::default_shell)
            .into_iter()
            .chain([s.clone()])
            .collect(),
    };
    let quoted = |v: &[String]| {
        let q: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
        format!("[{}]", q.join(" "))
    };
    let list = |v: &[String]| format!("[{}]", v.join(" "));
    let pairs = |kvs: &[KeyValue]| {
        kvs.iter()
            .map(|kv| format!(" {}={}", kv.key, kv.value))
            .collect::<String>()
    };
    match instr {
        Instruction::Run(r) => {
            let argv = run::argv(cfg, &r.cmd, &r.heredocs);
            let mut words: Vec<String> = Vec::new();
            if !state.declared.is_empty() {
                words.push(format!("|{}", state.declared.len()));
                for name in &state.declared {
                    let v = cfg
                        .get_env(name)
                        .or_else(|| {
                            state
                                .args
                                .iter()
                                .rev()
                                .find(|(k, _)| k == name)
                                .map(|(_, v)| v.as_str())
                        })
                        .unwrap_or("");
                    words.push(format!("{name}={v}"));
                }
            }
            words.extend(argv);
            format!("RUN {} # buildkit", words.join(" "))
        }
        Instruction::Copy(c) | Instruction::Add(c) => {
            let mut s = String::from(if matches!(instr, Instruction::Add(_)) {
                "ADD"
            } else {
                "COPY"
            });
            if c.parents {
                s.push_str(" --parents");
            }
            if let Some(o) = &c.chown {
                s.push_str(&format!(" --chown={o}"));
            }
            if let Some(m) = &c.chmod {
                s.push_str(&format!(" --chmod={m}"));
            }
            for src in &c.sources {
                if let Source::Path(p) = src {
                    s.push_str(&format!(" {p}"));
                }
            }
            for src in &c.sources {
                if let Source::Heredoc { name, .. } = src {
                    s.push_str(&format!(" <<{name}"));
                }
            }
            format!("{s} {} # buildkit", c.dest)
        }
        Instruction::Env(kvs) => format!("ENV{}", pairs(kvs)),
        Instruction::Label(kvs) => format!("LABEL{}", pairs(kvs)),
        Instruction::Workdir(_) => {
            format!("WORKDIR {}", cfg.working_dir.as_deref().unwrap_or("/"))
        }
        Instruction::Cmd(c) => format!("CMD {}", quoted(&shell_form(c))),
        Instruction::Entrypoint(c) => format!("ENTRYPOINT {}", quoted(&shell_form(c))),
        Instruction::User(u) => format!("USER {u}"),
        Instruction::Volume(v) => format!("VOLUME {}", list(v)),
        Instruction::StopSignal(s) => format!("STOPSIGNAL {s}"),
        Instruction::Shell(v) => format!("SHELL {}", list(v)),
        Instruction::Maintainer(m) => format!("MAINTAINER {m}"),
        Instruction::Expose(_) => {
            let ports: Vec<String> = cfg
                .exposed_ports
                .as_ref()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            format!("EXPOSE {}", list(&ports))
        }
        Instruction::Healthcheck(h) => match h {
            Healthcheck::None => "HEALTHCHECK {Test:[NONE] Interval:0s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}".into(),
            Healthcheck::Cmd {
                test,
                interval,
                timeout,
                start_period,
                start_interval,
                retries,
            } => {
                let d = |x: &Option<std::time::Duration>| go_duration(x.map_or(0, |d| d.as_nanos()));
                format!(
                    "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                    list(test),
                    d(interval),
                    d(timeout),
                    d(start_period),
                    d(start_interval),
                    retries.unwrap_or(0)
                )
            }
        },
        Instruction::OnBuild(o) => format!("ONBUILD {}", o.expression),
        Instruction::Arg(_) | Instruction::From(_) => String::new(),
    }
}

/// A duration as Go's `time.Duration.String` writes it (`1m30s`, `500ms`).
pub fn go_duration(ns: u128) -> String {
    fn frac(v: u128, unit: u128, digits: usize) -> String {
        let (int, rem) = (v / unit, v % unit);
        if rem == 0 {
            return int.to_string();
        }
        let f = format!("{rem:0digits$}");
        format!("{int}.{}", f.trim_end_matches('0'))
    }
    const S: u128 = 1_000_000_000;
    match ns {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}µs", frac(n, 1_000, 3)),
        n if n < S => format!("{}ms", frac(n, 1_000_000, 6)),
        n => {
            let (h, m) = (n / (3600 * S), n / (60 * S) % 60);
            let mut out = String::new();
            if h > 0 {
                out.push_str(&format!("{h}h"));
            }
            if h > 0 || m > 0 {
                out.push_str(&format!("{m}m"));
            }
            out.push_str(&format!("{}s", frac(n % (60 * S), S, 9)));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    #[test]
    fn durations_read_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
    }
}
