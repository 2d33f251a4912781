//! docker's `--format`: a Go template (the `gotmpl` crate, a port of Go's
//! `text/template`) with the functions docker adds, the `table` prefix
//! (a header row and columns aligned by [`crate::tabwriter`]) and `json`
//! (one JSON object per line). Rows are JSON objects with docker's field
//! names, so `{{.Repository}}` or `{{.Config.Env}}` read what docker's
//! would.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{Template, TemplateError, Value};
use serde_json::Value as Json;

use crate::tabwriter;

/// A `--format` value that could not be used: one line naming it.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("template parsing error in {format:?}: {why}")]
    Parse { format: String, why: String },
    #[error("template execution error in {format:?}: {why}")]
    Execute { format: String, why: String },
}

/// How a list command prints its rows.
pub struct Format {
    source: String,
    kind: Kind,
}

enum Kind {
    /// One object per line as compact JSON (`--format json`).
    Json,
    /// The template, each row followed by a newline; with `table`, a
    /// header first and the columns aligned.
    Template { template: Template, table: bool },
}

impl Format {
    /// Parses `--format`: `None`, `""` and `table` mean `default` (the
    /// command's own `table …` template); `json`; `table TEMPLATE`; or a
    /// template. `\t` and `\n` written as two characters stand for a tab and
    /// a newline, as docker reads them.
    pub fn parse(format: Option<&str>, default: &str) -> Result<Format, FormatError> {
        let given = format.unwrap_or("").trim();
        let source = match given {
            "" | "table" => default.to_string(),
            f => f.to_string(),
        };
        if source == "json" {
            return Ok(Format {
                source,
                kind: Kind::Json,
            });
        }
        let (table, body) = match source.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, source.as_str()),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let template = parse_template(&source, &body)?;
        Ok(Format {
            source,
            kind: Kind::Template { template, table },
        })
    }

    /// Is this a `table …` format (which has a header row)?
    pub fn is_table(&self) -> bool {
        matches!(self.kind, Kind::Template { table: true, .. })
    }

    /// Renders `rows`; `headers` maps field names to the column titles a
    /// `table` header shows (unknown fields get an empty title, as docker).
    pub fn render(&self, rows: &[Json], headers: &[(&str, &str)]) -> Result<String, FormatError> {
        let mut out = String::new();
        match &self.kind {
            Kind::Json => {
                for r in rows {
                    out.push_str(&serde_json::to_string(r).unwrap_or_default());
                    out.push('\n');
                }
            }
            Kind::Template { template, table } => {
                if *table {
                    let head: BTreeMap<Arc<str>, Value> = headers
                        .iter()
                        .map(|(k, v)| (Arc::from(*k), Value::String(Arc::from(*v))))
                        .collect();
                    let head = Value::Map(Arc::new(head));
                    out.push_str(&self.execute(template, &head)?);
                    out.push('\n');
                }
                for r in rows {
                    out.push_str(&self.execute(template, &to_value(r))?);
                    out.push('\n');
                }
                if *table {
                    out = tabwriter::align(&out);
                }
            }
        }
        Ok(out)
    }

    fn execute(&self, t: &Template, data: &Value) -> Result<String, FormatError> {
        t.execute_to_string(data).map_err(|e| FormatError::Execute {
            format: self.source.clone(),
            why: one_line(&e),
        })
    }
}

/// Renders one object with a plain template (`inspect -f`, `version -f`):
/// `json` prints it as JSON; no `table` here.
pub fn render_one(format: &str, value: &Json) -> Result<String, FormatError> {
    let f = Format::parse(Some(format), "")?;
    let mut s = f.render(std::slice::from_ref(value), &[])?;
    s.pop();
    Ok(s)
}

fn parse_template(source: &str, body: &str) -> Result<Template, FormatError> {
    check_blocks(body).map_err(|why| FormatError::Parse {
        format: source.to_string(),
        why,
    })?;
    let t = with_docker_funcs(Template::new(""))
        .parse(body)
        .map_err(|e| FormatError::Parse {
            format: source.to_string(),
            why: one_line(&e),
        })?;
    // Go's parser refuses a function it does not know; gotmpl finds out
    // when it gets there. A run on no data reaches the functions outside
    // untaken branches, so `{{nosuch .ID}}` fails even with no rows.
    if let Err(e @ TemplateError::UndefinedFunction(_)) = t.execute_to_string(&Value::Nil) {
        return Err(FormatError::Parse {
            format: source.to_string(),
            why: one_line(&e),
        });
    }
    Ok(t)
}

/// Checks that `{{if}}`, `{{range}}`, `{{with}}`, `{{define}}` and
/// `{{block}}` each have their `{{end}}`, and `{{else}}`/`{{end}}` an open
/// block, as Go's parser does: gotmpl 0.6 stops at a stray `{{end}}`
/// (dropping the rest) and accepts a block left open.
fn check_blocks(body: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let action = &rest[start + 2..];
        let Some(end) = find_close(action) else {
            return Ok(()); // the engine reports the unclosed action
        };
        let inner = action[..end]
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        let word = inner
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or("");
        match word {
            "if" | "range" | "with" | "define" | "block" => depth += 1,
            "end" if depth == 0 => return Err("unexpected {{end}}".into()),
            "end" => depth -= 1,
            "else" if depth == 0 => return Err("unexpected {{else}}".into()),
            _ => {}
        }
        rest = &action[end + 2..];
    }
    match depth {
        0 => Ok(()),
        _ => Err("unexpected EOF: a block has no {{end}}".into()),
    }
}

/// Where the action's `}}` is, skipping string literals and comments.
fn find_close(action: &str) -> Option<usize> {
    let b = action.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn one_line(e: &TemplateError) -> String {
    e.to_string().lines().collect::<Vec<_>>().join(" ")
}

/// The functions docker's templates add to Go's builtins
/// (docker/cli `templates/templates.go`).
fn with_docker_funcs(t: Template) -> Template {
    // Go's `index` gives a missing map key the element's zero value, and
    // docker's maps (`.Config.Labels`) hold strings: `""`, where the
    // engine's own would print `<no value>`.
    t.func("index", |a| {
        let mut v = arg(a, 0)?.clone();
        for key in &a[1..] {
            v = match (&v, key) {
                (Value::Map(m), Value::String(k)) => {
                    m.get(k).cloned().unwrap_or_else(|| string(String::new()))
                }
                (Value::Nil, _) => return Err(TemplateError::Exec("index of untyped nil".into())),
                _ => v.index(key)?,
            };
        }
        Ok(v)
    })
    .func("json", |a| {
        let v = arg(a, 0)?;
        Ok(string(
            serde_json::to_string(&to_json(v)).unwrap_or_default(),
        ))
    })
    .func("join", |a| {
        let sep = text(arg(a, 1)?);
        let items: Vec<String> = match arg(a, 0)? {
            Value::List(l) => l.iter().map(text).collect(),
            v => return Err(type_error("join", "a list", v)),
        };
        Ok(string(items.join(&sep)))
    })
    .func("split", |a| {
        let s = text(arg(a, 0)?);
        let sep = text(arg(a, 1)?);
        let parts: Vec<Value> = if sep.is_empty() {
            s.chars().map(|c| string(c.to_string())).collect()
        } else {
            s.split(sep.as_str())
                .map(|p| string(p.to_string()))
                .collect()
        };
        Ok(Value::List(parts.into()))
    })
    .func("lower", |a| Ok(string(text(arg(a, 0)?).to_lowercase())))
    .func("upper", |a| Ok(string(text(arg(a, 0)?).to_uppercase())))
    .func("title", |a| Ok(string(title(&text(arg(a, 0)?)))))
    .func("pad", |a| {
        let s = text(arg(a, 0)?);
        if s.is_empty() {
            return Ok(string(s));
        }
        let n = |i| count(a, i, "pad");
        Ok(string(format!(
            "{}{s}{}",
            " ".repeat(n(1)?),
            " ".repeat(n(2)?)
        )))
    })
    .func("truncate", |a| {
        let s = text(arg(a, 0)?);
        let n = count(a, 1, "truncate")?;
        Ok(string(s.chars().take(n).collect()))
    })
    .func("println", |a| {
        // Go's fmt.Sprintln: operands separated by spaces, then a newline.
        let mut s = a.iter().map(text).collect::<Vec<_>>().join(" ");
        s.push('\n');
        Ok(string(s))
    })
}

fn arg(a: &[Value], i: usize) -> gotmpl::Result<&Value> {
    a.get(i).ok_or_else(|| {
        TemplateError::Exec(format!(
            "wrong number of arguments: want at least {}",
            i + 1
        ))
    })
}

fn count(a: &[Value], i: usize, f: &str) -> gotmpl::Result<usize> {
    let v = arg(a, i)?;
    v.as_int()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| type_error(f, "a non-negative number", v))
}

fn type_error(f: &str, want: &str, got: &Value) -> TemplateError {
    TemplateError::Exec(format!("{f}: want {want}, got {}", got.type_name()))
}

fn string(s: String) -> Value {
    Value::String(Arc::from(s))
}

/// A value as Go's `%v` prints it (strings without quotes).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        v => v.to_string(),
    }
}

/// Go's `strings.Title`: the first letter of each word in upper case.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_');
    }
    out
}

/// JSON into the template engine's values.
pub fn to_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::Uint(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => Value::String(Arc::from(s.as_str())),
        Json::Array(a) => Value::List(a.iter().map(to_value).collect()),
        Json::Object(o) => Value::Map(Arc::new(
            o.iter()
                .map(|(k, v)| (Arc::from(k.as_str()), to_value(v)))
                .collect(),
        )),
    }
}

/// The template engine's values back into JSON (`{{json .}}`). Objects come
/// out with sorted keys: the engine keeps maps sorted, as Go's maps print.
fn to_json(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Uint(u) => Json::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.to_string()),
        Value::List(l) => Json::Array(l.iter().map(to_json).collect()),
        Value::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
        Value::Function(_) => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(t: &str, v: Json) -> String {
        render_one(t, &v).unwrap()
    }

    #[test]
    fn docker_functions() {
        let v = json!({"A": ["x", "y"], "S": "a,b", "N": "hello world", "E": ""});
        assert_eq!(one(r#"{{join .A ","}}"#, v.clone()), "x,y");
        assert_eq!(one(r#"{{split .S ","}}"#, v.clone()), "[a b]");
        assert_eq!(one("{{upper .N}}", v.clone()), "HELLO WORLD");
        assert_eq!(one("{{title .N}}", v.clone()), "Hello World");
        assert_eq!(one("{{lower (upper .N)}}", v.clone()), "hello world");
        assert_eq!(one("{{pad .N 1 2}}|", v.clone()), " hello world  |");
        assert_eq!(one("{{pad .E 1 2}}|", v.clone()), "|");
        assert_eq!(one("{{truncate .N 5}}", v.clone()), "hello");
        assert_eq!(one("{{println .N}}", v.clone()), "hello world\n");
        assert_eq!(one("{{json .A}}", v.clone()), r#"["x","y"]"#);
        assert_eq!(one("json", json!({"b": 1})), r#"{"b":1}"#);
        let l = json!({"L": {"k": "v"}, "A": [[1, 2]]});
        assert_eq!(
            one(r#"{{index .L "k"}}|{{index .L "no"}}|"#, l.clone()),
            "v||"
        );
        assert_eq!(one("{{index .A 0 1}}", l), "2");
    }

    #[test]
    fn table_has_a_header_and_columns() {
        let f = Format::parse(Some(r"table {{.A}}\t{{.B}}"), "").unwrap();
        let rows = [json!({"A": "one", "B": 2}), json!({"A": "three", "B": 4})];
        let out = f.render(&rows, &[("A", "AAA"), ("B", "BEE")]).unwrap();
        assert_eq!(out, "AAA       BEE\none       2\nthree     4\n");
    }

    #[test]
    fn bad_templates_are_named() {
        let e = Format::parse(Some("{{.A"), "").err().unwrap().to_string();
        assert!(e.contains("\"{{.A\""), "{e}");
        assert_eq!(e.lines().count(), 1);
        let e = render_one("{{join .A 1 2 3 | nosuch}}", &json!({}));
        assert!(e.is_err());
        for bad in [
            "{{end}}",
            "x{{end}}y",
            "{{if .A}}",
            "{{else}}",
            "{{range .A}}{{if .}}{{end}}",
        ] {
            assert!(Format::parse(Some(bad), "").is_err(), "{bad}");
        }
        let ok = r#"{{if .A}}{{"}}{{end}}"}}{{else}}{{/* {{end}} */}}{{end}}"#;
        assert_eq!(render_one(ok, &json!({"A": 1})).unwrap(), "}}{{end}}");
    }
}
