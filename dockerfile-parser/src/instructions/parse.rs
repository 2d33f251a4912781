//! Syntax nodes to typed instructions (BuildKit's `instructions/parse.go`):
//! each instruction's declared flags, arity checks and argument shapes, the
//! ONBUILD rules and HEALTHCHECK options. Errors get the node's location
//! once, in [`from_parsed`].

use super::flags::{parse_flags, FlagType, FlagValues};
use super::{
    lint, mount, parse_go_duration, ArgDef, Command, Copy, Dockerfile, From, Healthcheck,
    Instruction, KeyValue, NetworkMode, OnBuild, Run, Security, ShellOrExec, Source,
};
use crate::ast::{Node, INSTRUCTIONS};
use crate::error::{suggest, ErrorKind, ParseError, ParseErrors};
use crate::lexer::Parsed;
use std::time::Duration;

/// Validates every node; all errors are collected and returned together.
pub fn from_parsed(parsed: Parsed) -> Result<Dockerfile, ParseErrors> {
    let mut commands = Vec::with_capacity(parsed.nodes.len());
    let mut errors = Vec::new();
    let mut warnings = parsed.warnings;
    let mut seen_from = false;
    for node in &parsed.nodes {
        match instruction_from_node(node) {
            Ok(instruction) => {
                lint::lint(node, &instruction, &mut warnings);
                match &instruction {
                    Instruction::From(_) => seen_from = true,
                    Instruction::Arg(_) => {}
                    _ if !seen_from => {
                        errors.push(node_error(
                            node,
                            ErrorKind::Invalid("no build stage in current context".into()),
                        ));
                        continue;
                    }
                    _ => {}
                }
                commands.push(Command {
                    instruction,
                    span: node.span,
                    source_text: node.source_text.clone(),
                    original: node.original.clone(),
                });
            }
            Err(kind) => errors.push(node_error(node, kind)),
        }
    }
    if !errors.is_empty() {
        return Err(ParseErrors(errors));
    }
    Ok(Dockerfile {
        commands,
        escape: parsed.escape,
        directives: parsed.directives,
        warnings,
        nodes: parsed.nodes,
    })
}

fn node_error(node: &Node, kind: ErrorKind) -> ParseError {
    // The node's text starts at the keyword; indent it back to its column
    // so the caret lines up.
    let indent = " ".repeat(node.span.start_col.saturating_sub(1));
    ParseError::new(kind, node.span, format!("{indent}{}", node.first_line()))
}

fn err(msg: impl Into<String>) -> ErrorKind {
    ErrorKind::Invalid(msg.into())
}

fn at_least_one(cmd: &str) -> ErrorKind {
    err(format!("{cmd} requires at least one argument"))
}

fn exactly_one(cmd: &str) -> ErrorKind {
    err(format!("{cmd} requires exactly one argument"))
}

fn cmdline(node: &Node) -> ShellOrExec {
    if node.json {
        ShellOrExec::Exec(node.args.clone())
    } else {
        ShellOrExec::Shell(node.args.join(" "))
    }
}

fn flags(node: &Node, declared: &[(&'static str, FlagType)]) -> Result<FlagValues, ErrorKind> {
    parse_flags(&node.flags, declared)
}

fn one_arg(node: &Node, cmd: &str) -> Result<String, ErrorKind> {
    if node.args.len() != 1 {
        return Err(exactly_one(cmd));
    }
    flags(node, &[])?;
    Ok(node.args[0].clone())
}

/// Converts one syntax node to a typed instruction.
pub fn instruction_from_node(node: &Node) -> Result<Instruction, ErrorKind> {
    use FlagType::*;
    let name = node.name.to_ascii_lowercase();
    Ok(match name.as_str() {
        "from" => {
            let f = flags(node, &[("platform", String)])?;
            let alias = match node.args.as_slice() {
                [_] => None,
                [_, as_kw, stage] if as_kw.eq_ignore_ascii_case("as") => {
                    let lower = stage.to_lowercase();
                    let mut cs = lower.chars();
                    let valid = cs.next().is_some_and(|c| c.is_ascii_lowercase())
                        && cs.all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)
                        });
                    if !valid {
                        return Err(err(format!(
                            "invalid name for build stage: {}, name can't start with a number or contain symbols",
                            crate::dump::go_quote(stage)
                        )));
                    }
                    Some(lower)
                }
                _ => return Err(err("FROM requires either one or three arguments")),
            };
            Instruction::From(From {
                image: node.args[0].clone(),
                platform: f.string("platform"),
                alias,
            })
        }
        "run" => {
            let f = flags(
                node,
                &[
                    ("mount", Strings),
                    ("network", String),
                    ("security", String),
                ],
            )?;
            // An empty shell form runs `/bin/sh -c ""`, as BuildKit does.
            if node.args.is_empty() && node.json {
                return Err(at_least_one("RUN"));
            }
            let network = match f.string("network").as_deref() {
                None | Some("default") => NetworkMode::Default,
                Some("none") => NetworkMode::None,
                Some("host") => NetworkMode::Host,
                Some(v) => {
                    return Err(err(format!(
                        "invalid network mode {}",
                        crate::dump::go_quote(v)
                    )))
                }
            };
            let security = match f.string("security").as_deref() {
                None | Some("sandbox") => Security::Sandbox,
                Some("insecure") => Security::Insecure,
                Some(v) => {
                    return Err(err(format!(
                        "security {} is not valid",
                        crate::dump::go_quote(v)
                    )))
                }
            };
            let mount_specs = f.strings("mount");
            let mounts = mount_specs
                .iter()
                .map(|s| mount::parse_mount_outline(s))
                .collect::<Result<Vec<_>, _>>()?;
            Instruction::Run(Run {
                cmd: cmdline(node),
                mounts,
                mount_specs,
                network,
                security,
                heredocs: node.heredocs.clone(),
            })
        }
        "cmd" => {
            flags(node, &[])?;
            Instruction::Cmd(cmdline(node))
        }
        "entrypoint" => {
            flags(node, &[])?;
            Instruction::Entrypoint(cmdline(node))
        }
        "env" | "label" => {
            flags(node, &[])?;
            let cmd = name.to_ascii_uppercase();
            let pairs = key_values(&node.args, &cmd)?;
            if name == "env" {
                Instruction::Env(pairs)
            } else {
                Instruction::Label(pairs)
            }
        }
        "maintainer" => Instruction::Maintainer(one_arg(node, "MAINTAINER")?),
        "expose" => {
            if node.args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            flags(node, &[])?;
            Instruction::Expose(node.args.clone())
        }
        "add" | "copy" => {
            let upper = name.to_ascii_uppercase();
            if node.args.len() < 2 {
                return Err(err(format!(
                    "{upper} requires at least two arguments, but only one was provided. Destination could not be determined"
                )));
            }
            let declared: &[(&'static str, FlagType)] = if name == "add" {
                &[
                    ("chown", String),
                    ("chmod", String),
                    ("link", Bool),
                    ("keep-git-dir", Bool),
                    ("checksum", String),
                    ("unpack", Bool),
                    ("exclude", Strings),
                ]
            } else {
                &[
                    ("chown", String),
                    ("from", String),
                    ("chmod", String),
                    ("link", Bool),
                    ("exclude", Strings),
                    ("parents", Bool),
                ]
            };
            let f = flags(node, declared)?;
            let (srcs, dest) = node.args.split_at(node.args.len() - 1);
            let dest = dest[0].clone();
            if crate::lexer::parse_heredoc(&dest).ok().flatten().is_some() {
                return Err(err(format!(
                    "{upper} cannot accept a heredoc as a destination"
                )));
            }
            let mut sources = Vec::with_capacity(srcs.len());
            for s in srcs {
                match crate::lexer::parse_heredoc(s).ok().flatten() {
                    Some(h) => {
                        let body = node.heredocs.iter().find(|d| d.name == h.name);
                        let mut content = body.map(|d| d.content.clone()).unwrap_or_default();
                        if h.chomp {
                            content = crate::ast::chomp_heredoc_content(&content);
                        }
                        sources.push(Source::Heredoc {
                            name: h.name,
                            content,
                            expand: h.expand,
                        });
                    }
                    None => sources.push(Source::Path(s.clone())),
                }
            }
            let c = Copy {
                sources,
                dest,
                from: f.string("from"),
                chown: f.string("chown"),
                chmod: f.string("chmod"),
                link: f.bool("link").unwrap_or(false),
                exclude: f.strings("exclude"),
                parents: f.bool("parents").unwrap_or(false),
                checksum: f.string("checksum"),
                keep_git_dir: f.bool("keep-git-dir"),
                unpack: f.bool("unpack"),
                json: node.json,
                heredocs: node.heredocs.clone(),
            };
            if name == "add" {
                Instruction::Add(c)
            } else {
                Instruction::Copy(c)
            }
        }
        "volume" => {
            if node.args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            flags(node, &[])?;
            let mut v = Vec::with_capacity(node.args.len());
            for a in &node.args {
                let t = a.trim();
                if t.is_empty() {
                    return Err(err("VOLUME specified can not be an empty string"));
                }
                v.push(t.to_string());
            }
            Instruction::Volume(v)
        }
        "user" => Instruction::User(one_arg(node, "USER")?),
        "workdir" => Instruction::Workdir(one_arg(node, "WORKDIR")?),
        "stopsignal" => Instruction::StopSignal(one_arg(node, "STOPSIGNAL")?),
        "arg" => {
            if node.args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            flags(node, &[])?;
            let mut defs = Vec::with_capacity(node.args.len());
            for a in &node.args {
                let def = match a.split_once('=') {
                    Some(("", _)) => return Err(err("ARG names can not be blank")),
                    Some((k, v)) => ArgDef {
                        name: k.to_string(),
                        default: Some(v.to_string()),
                    },
                    None => ArgDef {
                        name: a.clone(),
                        default: None,
                    },
                };
                defs.push(def);
            }
            Instruction::Arg(defs)
        }
        "onbuild" => {
            let Some(trigger) = &node.trigger else {
                return Err(at_least_one("ONBUILD"));
            };
            flags(node, &[])?;
            let tname = trigger.name.to_ascii_uppercase();
            match tname.as_str() {
                "ONBUILD" => {
                    return Err(err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"))
                }
                "MAINTAINER" | "FROM" => {
                    return Err(err(format!("{tname} isn't allowed as an ONBUILD trigger")))
                }
                _ => {}
            }
            let mut expression = strip_onbuild(&node.original).to_string();
            for h in &node.heredocs {
                expression.push('\n');
                expression.push_str(&h.content);
                expression.push_str(&h.name);
            }
            Instruction::OnBuild(OnBuild { expression })
        }
        "healthcheck" => healthcheck(node)?,
        "shell" => {
            flags(node, &[])?;
            if node.args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err(err("SHELL requires the arguments to be in JSON form"));
            }
            Instruction::Shell(node.args.clone())
        }
        _ => {
            return Err(ErrorKind::UnknownInstruction {
                name: node.name.clone(),
                suggestion: suggest(&node.name, INSTRUCTIONS).map(str::to_string),
            })
        }
    })
}

/// `(?i)^\s*ONBUILD\s*` removed from the original line.
fn strip_onbuild(original: &str) -> &str {
    let t = original.trim_start();
    match t.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => t[7..].trim_start(),
        _ => t,
    }
}

fn key_values(args: &[String], cmd: &str) -> Result<Vec<KeyValue>, ErrorKind> {
    if args.is_empty() {
        return Err(at_least_one(cmd));
    }
    if !args.len().is_multiple_of(3) {
        return Err(err(format!("Bad input to {cmd}, too many arguments")));
    }
    args.chunks(3)
        .map(|c| {
            if c[0].is_empty() {
                return Err(err(format!("{cmd} names can not be blank")));
            }
            Ok(KeyValue {
                key: c[0].clone(),
                value: c[1].clone(),
                legacy: c[2].is_empty(),
            })
        })
        .collect()
}

fn healthcheck(node: &Node) -> Result<Instruction, ErrorKind> {
    use FlagType::String;
    let Some(typ) = node.args.first() else {
        return Err(at_least_one("HEALTHCHECK"));
    };
    let typ = typ.to_ascii_uppercase();
    let rest = &node.args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err(err("HEALTHCHECK NONE takes no arguments"));
        }
        return Ok(Instruction::Healthcheck(Healthcheck::None));
    }
    let f = flags(
        node,
        &[
            ("interval", String),
            ("timeout", String),
            ("start-period", String),
            ("start-interval", String),
            ("retries", String),
        ],
    )?;
    if typ != "CMD" {
        return Err(err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            crate::dump::go_quote(&typ)
        )));
    }
    if rest.is_empty() {
        return Err(err("Missing command after HEALTHCHECK CMD"));
    }
    let test = if node.json {
        std::iter::once("CMD".to_string())
            .chain(rest.iter().cloned())
            .collect()
    } else {
        vec!["CMD-SHELL".to_string(), rest.join(" ")]
    };
    let interval = |flag: &str| -> Result<Option<Duration>, ErrorKind> {
        let Some(s) = f.string(flag).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let d = parse_go_duration(&s).map_err(ErrorKind::Invalid)?;
        if d.value.is_zero() {
            return Ok(None);
        }
        if d.negative || d.value < Duration::from_millis(1) {
            return Err(err(format!(
                "Interval {} cannot be less than 1ms",
                crate::dump::go_quote(flag)
            )));
        }
        Ok(Some(d.value))
    };
    let retries = match f.string("retries").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let n: i64 = s.parse().map_err(|_| {
                err(format!(
                    "strconv.ParseInt: parsing {}: invalid syntax",
                    crate::dump::go_quote(&s)
                ))
            })?;
            if n < 0 {
                return Err(err(format!("--retries cannot be negative ({n})")));
            }
            Some(u32::try_from(n).map_err(|_| err(format!("--retries value out of range ({n})")))?)
        }
    };
    Ok(Instruction::Healthcheck(Healthcheck::Cmd {
        test,
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    }))
}
