//! `RUN --mount=type=…,key=value,…` (BuildKit's `commands_runmount.go`).

use crate::error::{suggest, ErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One `--mount` after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountType,
    pub from: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub readonly: bool,
    /// Cache id, or secret/ssh id.
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    pub required: bool,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Secret exposed as this environment variable.
    pub env: Option<String>,
}

fn invalid(msg: String) -> ErrorKind {
    ErrorKind::Invalid(msg)
}

/// Splits one CSV record (Go `encoding/csv` rules: `"` quotes a field,
/// `""` inside quotes is a quote).
fn csv_fields(s: &str) -> Result<Vec<String>, ErrorKind> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    loop {
        let mut field = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(invalid(
                            "failed to parse csv mounts: extraneous or missing \" in quoted-field"
                                .into(),
                        ))
                    }
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        field.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        field.push(c);
                        i += 1;
                    }
                }
            }
            if !matches!(chars.get(i), None | Some(',')) {
                return Err(invalid(
                    "failed to parse csv mounts: extraneous or missing \" in quoted-field".into(),
                ));
            }
        } else {
            while let Some(&c) = chars.get(i) {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(invalid(
                        "failed to parse csv mounts: bare \" in non-quoted-field".into(),
                    ));
                }
                field.push(c);
                i += 1;
            }
        }
        out.push(field);
        if chars.get(i) == Some(&',') {
            i += 1;
        } else {
            return Ok(out);
        }
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ErrorKind> {
    // Go's strconv.ParseBool.
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(invalid(format!("invalid value for {key}: {v}"))),
    }
}

/// Docker's `units.RAMInBytes`: `^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$`,
/// all suffixes being powers of 1024.
fn ram_in_bytes(v: &str) -> Option<u64> {
    let num_len = v
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
        .map_or(v.len(), |(i, _)| i);
    let num: f64 = v[..num_len].parse().ok()?;
    let mut rest = v[num_len..]
        .strip_prefix(' ')
        .unwrap_or(&v[num_len..])
        .chars()
        .peekable();
    let mut mult: u64 = 1;
    if let Some(c) = rest.peek().map(|c| c.to_ascii_lowercase()) {
        let shift = match c {
            'k' => 10,
            'm' => 20,
            'g' => 30,
            't' => 40,
            'p' => 50,
            _ => 0,
        };
        if shift > 0 {
            mult = 1 << shift;
            rest.next();
        }
    }
    if rest.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'i')) {
        rest.next();
    }
    if rest.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'b')) {
        rest.next();
    }
    if rest.next().is_some() {
        return None;
    }
    let bytes = num * mult as f64;
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
}

const ALL_KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// Parses and validates one `--mount` value. Values are taken literally;
/// the builder expands variables first (see `Run::expand_mounts`).
pub fn parse_mount(spec: &str) -> Result<Mount, ErrorKind> {
    parse_fields(csv_fields(spec)?)
}

/// What is known of a `--mount` value before the stage's variables are:
/// BuildKit validates a mount only once its values are expanded (so
/// `uid=$UID` is fine here), except `from`, which names a stage and must
/// not use a variable (it is refused now, as BuildKit does). The result
/// is the literal parse when that succeeds, else a bind mount carrying
/// only `from` (enough to order the stages).
pub fn parse_mount_outline(spec: &str) -> Result<Mount, ErrorKind> {
    let fields = csv_fields(spec)?;
    let mut from = None;
    for f in &fields {
        if let Some((k, v)) = f.split_once('=') {
            if k.eq_ignore_ascii_case("from") {
                if v.find('$').is_some_and(|i| i + 1 != v.len()) {
                    return Err(invalid(
                        "'from' doesn't support variable expansion, define alias stage instead"
                            .into(),
                    ));
                }
                from = Some(v.to_string());
            }
        }
    }
    Ok(parse_fields(fields.clone()).unwrap_or(Mount {
        from,
        readonly: true,
        ..Mount::bind()
    }))
}

/// Expands every value of a `--mount` spec (all but `from`, refused
/// earlier if it held a variable) with `expand`, then validates it.
pub fn expand_mount(
    spec: &str,
    expand: &mut dyn FnMut(&str) -> Result<String, ErrorKind>,
) -> Result<Mount, ErrorKind> {
    let fields = csv_fields(spec)?
        .into_iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) if !k.eq_ignore_ascii_case("from") => Ok(format!("{k}={}", expand(v)?)),
            _ => Ok(f),
        })
        .collect::<Result<Vec<_>, ErrorKind>>()?;
    parse_fields(fields)
}

impl Mount {
    /// A bind mount with nothing set: what a spec starts from.
    fn bind() -> Mount {
        Mount {
            kind: MountType::Bind,
            from: None,
            source: None,
            target: None,
            readonly: false,
            id: None,
            sharing: None,
            required: false,
            size: None,
            mode: None,
            uid: None,
            gid: None,
            env: None,
        }
    }
}

fn parse_fields(fields: Vec<String>) -> Result<Mount, ErrorKind> {
    let mut m = Mount::bind();
    let mut ro_auto = true;
    for field in fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    ro_auto = false;
                }
                "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                    m.required = true
                }
                "required" => {
                    return Err(invalid(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.as_str()
                    )))
                }
                _ => {
                    return Err(invalid(format!(
                        "invalid field '{field}' must be a key=value pair"
                    )))
                }
            }
            continue;
        };
        let wrong_type = |m: &Mount| {
            invalid(format!(
                "unexpected key '{key}' for mount type '{}'",
                m.kind.as_str()
            ))
        };
        match key.as_str() {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        let hint = suggest(&value, &["bind", "cache", "tmpfs", "secret", "ssh"])
                            .map(|s| format!(" (did you mean {s}?)"))
                            .unwrap_or_default();
                        return Err(invalid(format!(
                            "unsupported mount type {}{hint}",
                            crate::dump::go_quote(&value)
                        )));
                    }
                }
            }
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.readonly = parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "required" => {
                if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(wrong_type(&m));
                }
                m.required = parse_bool(&key, &value)?;
            }
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(wrong_type(&m));
                }
                m.size = Some(
                    ram_in_bytes(&value)
                        .ok_or_else(|| invalid(format!("invalid value for {key}: {value}")))?,
                );
            }
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        return Err(invalid(format!(
                            "unsupported sharing value {}",
                            crate::dump::go_quote(&value)
                        )))
                    }
                })
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| invalid(format!("invalid value {value} for mode")))?,
                )
            }
            "uid" => {
                m.uid = Some(
                    value
                        .parse()
                        .map_err(|_| invalid(format!("invalid value {value} for uid")))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    value
                        .parse()
                        .map_err(|_| invalid(format!("invalid value {value} for gid")))?,
                )
            }
            "env" => m.env = Some(value),
            _ => {
                let hint = suggest(&key, ALL_KEYS)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(invalid(format!(
                    "unexpected key '{key}' in '{field}'{hint}"
                )));
            }
        }
    }
    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        for (set, what) in [
            (m.mode.is_some(), "mode"),
            (m.uid.is_some(), "uid"),
            (m.gid.is_some(), "gid"),
        ] {
            if set {
                return Err(invalid(format!(
                    "{what} not allowed for {} type mounts",
                    crate::dump::go_quote(m.kind.as_str())
                )));
            }
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err(invalid("secret mount should not have a from".into()));
        }
        if m.sharing.is_some() {
            return Err(invalid("secret mount should not define sharing".into()));
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err(invalid(
                "invalid secret mount. one of source, target required".into(),
            ));
        }
        if m.source.is_some() && m.id.is_some() {
            return Err(invalid("both source and id can't be set".into()));
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(invalid(format!(
            "invalid cache sharing set for {} mount",
            m.kind.as_str()
        )));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_and_secret() {
        let m = parse_mount("type=cache,target=/root/.cache,sharing=locked,mode=0755").unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert_eq!(m.mode, Some(0o755));
        assert!(!m.readonly);
        let m = parse_mount("type=secret,id=tok,required").unwrap();
        assert!(m.required && m.readonly);
        assert!(parse_mount("type=secret").is_err());
        assert!(parse_mount("type=bind,mode=0700").is_err());
        assert!(parse_mount("type=nfs")
            .unwrap_err()
            .to_string()
            .contains("unsupported mount type"));
        let m = parse_mount("type=tmpfs,size=64m,target=/t").unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = parse_mount("\"source=a,b\",target=/x").unwrap();
        assert_eq!(m.source.as_deref(), Some("a,b"));
    }
}
