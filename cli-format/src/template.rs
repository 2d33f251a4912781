//! docker's `--format`: a Go template (the `gotmpl` crate, a port of Go's
//! `text/template`) with the functions docker adds, the `table` prefix
//! (a header row and columns aligned by [`crate::tabwriter`]) and `json`
//! (one JSON object per line). Rows are JSON objects with docker's field
//! names, so `{{.Repository}}` or `{{.Config.Env}}` read what docker's
//! would.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{MissingKey, Template, TemplateError, Value};
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
    /// The Go type docker's rows have (`*formatter.ContainerContext`) when
    /// the rows are docker's structs rather than maps: see
    /// [`Format::parse_rows`].
    row_type: Option<String>,
}

enum Kind {
    /// One object per line as compact JSON (`--format json`).
    Json,
    /// The template, each row followed by a newline; with `table`, a
    /// header first (rendered by `header`, which, as docker's header map,
    /// leaves fields it does not know empty) and the columns aligned.
    Template {
        template: Box<Template>,
        header: Box<Template>,
        table: bool,
    },
}

/// docker's row methods that take an argument: `{{.Label "com.x"}}` on
/// `ps`, `network ls` and `volume ls`. Go calls a method named at the
/// start of a command with the command's arguments; gotmpl calls only
/// functions, so a row carries such a method's table as an object under
/// its name, the row becomes a function value there, and
/// [`call_methods`] rewrites the command `.Label …` to `call .Label …` when
/// the template is parsed. JSON output leaves methods out, as docker's
/// rows marshal none that take arguments.
pub const METHODS: &[&str] = &["Label"];

impl Format {
    /// Parses `--format`: `None`, `""` and `table` mean `default` (the
    /// command's own `table …` template); `json`; `table TEMPLATE`; or a
    /// template. `\t` and `\n` written as two characters stand for a tab and
    /// a newline, as docker reads them.
    pub fn parse(format: Option<&str>, default: &str) -> Result<Format, FormatError> {
        Format::parse_with(format, default, None)
    }

    /// [`Format::parse`] for rows that are docker structs of type
    /// `row_type` (the list commands' rows): a field the row lacks is an
    /// error, as Go's `can't evaluate field X in type T`, where maps
    /// (`inspect`'s JSON) give `<no value>`; rows may carry methods
    /// ([`METHODS`]).
    pub fn parse_rows(
        format: Option<&str>,
        default: &str,
        row_type: &str,
    ) -> Result<Format, FormatError> {
        Format::parse_with(format, default, Some(row_type))
    }

    fn parse_with(
        format: Option<&str>,
        default: &str,
        row_type: Option<&str>,
    ) -> Result<Format, FormatError> {
        let row_type = row_type.map(str::to_string);
        let given = format.unwrap_or("").trim();
        let source = match given {
            "" | "table" => default.to_string(),
            f => f.to_string(),
        };
        if source == "json" {
            return Ok(Format {
                source,
                kind: Kind::Json,
                row_type,
            });
        }
        let (table, body) = match source.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, source.as_str()),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let body = call_methods(&body);
        let template = parse_template(&source, &body)?;
        let header = parse_template(&source, &body)?;
        let template = match row_type {
            Some(_) => template.missing_key(MissingKey::Error),
            None => template,
        };
        Ok(Format {
            source,
            kind: Kind::Template {
                template: Box::new(template),
                header: Box::new(header),
                table,
            },
            row_type,
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
                    let r = match self.row_type {
                        Some(_) => without_methods(r),
                        None => r.clone(),
                    };
                    out.push_str(&serde_json::to_string(&r).unwrap_or_default());
                    out.push('\n');
                }
            }
            Kind::Template {
                template,
                header,
                table,
            } => {
                if *table {
                    let mut head: BTreeMap<Arc<str>, Value> = headers
                        .iter()
                        .map(|(k, v)| (Arc::from(*k), Value::String(Arc::from(*v))))
                        .collect();
                    head.insert(Arc::from("Label"), Value::Function(Arc::new(label_header)));
                    let head = Value::Map(Arc::new(head));
                    out.push_str(&self.execute(header, &head)?);
                    out.push('\n');
                }
                for r in rows {
                    // Method tables only in docker's rows: inspect's JSON
                    // is data through and through.
                    let v = match self.row_type {
                        Some(_) => row_value(r),
                        None => to_value(r),
                    };
                    out.push_str(&self.execute(template, &v)?);
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
            why: match (&e, &self.row_type) {
                (TemplateError::MissingKey { key }, Some(ty)) => {
                    format!("can't evaluate field {key} in type {ty}")
                }
                _ => one_line(&e),
            },
        })
    }
}

/// A row for the template: its method tables (see [`METHODS`]), at any
/// depth (`df -v`'s lists hold rows), become functions, as Go methods
/// taking one argument.
fn row_value(j: &Json) -> Value {
    match j {
        Json::Array(a) => Value::List(a.iter().map(row_value).collect()),
        Json::Object(o) => Value::Map(Arc::new(
            o.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Json::Object(_) if METHODS.contains(&k.as_str()) => method(k, to_value(v)),
                        v => row_value(v),
                    };
                    (Arc::from(k.as_str()), v)
                })
                .collect(),
        )),
        j => to_value(j),
    }
}

/// A method taking one string, answered from `table` ("" for a key it
/// lacks, as docker's `Label`).
fn method(name: &str, table: Value) -> Value {
    let name = name.to_string();
    Value::Function(Arc::new(move |a: &[Value]| -> gotmpl::Result<Value> {
        let [Value::String(k)] = a else {
            return Err(TemplateError::Exec(format!(
                "wrong number of args for {name}: want 1 string, got {}",
                a.len()
            )));
        };
        Ok(table
            .field(k)
            .cloned()
            .unwrap_or_else(|| string(String::new())))
    }))
}

/// Drops method tables, at any depth: docker's JSON has no methods.
fn without_methods(j: &Json) -> Json {
    match j {
        Json::Array(a) => Json::Array(a.iter().map(without_methods).collect()),
        Json::Object(o) => Json::Object(
            o.iter()
                .filter(|(k, v)| !(v.is_object() && METHODS.contains(&k.as_str())))
                .map(|(k, v)| (k.clone(), without_methods(v)))
                .collect(),
        ),
        j => j.clone(),
    }
}

/// The `table` header of `.Label "com.example.my-label"`: the last dotted
/// part with `-` and `_` as spaces (`my label`, not upper-cased), as
/// docker's header context names the column.
fn label_header(a: &[Value]) -> gotmpl::Result<Value> {
    let name = a.first().map(text).unwrap_or_default();
    let last = name.rsplit('.').next().unwrap_or("");
    Ok(string(last.replace(['-', '_'], " ")))
}

/// Rewrites a [`METHODS`] name at the start of a command (after `{{`,
/// `(`, `|`, `:=`/`=`, or a keyword that takes a pipeline: `if`, `with`,
/// `range`, `else`) to a `call` of it, so `{{.Label "k"}}`,
/// `{{if eq (.Label "k") "v"}}` and `{{"k" | .Label}}` call the row's
/// method with the command's arguments, as Go does. String literals and
/// comments are left alone; text outside actions is not touched.
pub fn call_methods(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let action = &rest[start + 2..];
        let Some(end) = find_close(action) else {
            break;
        };
        out.push_str(&rest[..start + 2]);
        out.push_str(&call_methods_in(&action[..end]));
        out.push_str("}}");
        rest = &action[end + 2..];
    }
    out.push_str(rest);
    out
}

fn call_methods_in(action: &str) -> String {
    if action
        .trim_start_matches('-')
        .trim_start()
        .starts_with("/*")
    {
        return action.to_string();
    }
    let b = action.as_bytes();
    let mut out = String::with_capacity(action.len() + 8);
    let mut i = 0;
    let mut command_start = true;
    // A leading trim marker (`{{- `).
    if b.first() == Some(&b'-') && b.get(1).is_some_and(|c| c.is_ascii_whitespace()) {
        out.push('-');
        i = 1;
    }
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.push(c as char);
                i += 1;
            }
            b'(' | b'|' => {
                out.push(c as char);
                i += 1;
                command_start = true;
            }
            b'"' | b'`' | b'\'' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != c {
                    j += if c != b'`' && b[j] == b'\\' { 2 } else { 1 };
                }
                let j = (j + 1).min(b.len());
                out.push_str(&action[i..j]);
                i = j;
                command_start = false;
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                out.push_str(":=");
                i += 2;
                command_start = true;
            }
            b'=' => {
                out.push('=');
                i += 1;
                command_start = true;
            }
            b'.' if command_start => {
                let word_end = action[i + 1..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .map_or(b.len(), |n| i + 1 + n);
                let word = &action[i + 1..word_end];
                let chained = b.get(word_end) == Some(&b'.');
                if METHODS.contains(&word) && !chained {
                    out.push_str("call ");
                }
                out.push_str(&action[i..word_end]);
                i = word_end;
                command_start = false;
            }
            _ => {
                let first = action[i..].chars().next().map_or(1, char::len_utf8);
                let word_end = action[i..]
                    .find(|c: char| c.is_whitespace() || "()|\"`'".contains(c))
                    .map_or(b.len(), |n| i + n)
                    .max(i + first);
                let word = &action[i..word_end];
                out.push_str(word);
                i = word_end;
                command_start = command_start && matches!(word, "if" | "with" | "range" | "else");
            }
        }
    }
    out
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
        // Methods (function values) are no data: docker's JSON has none.
        Value::Map(m) => Json::Object(
            m.iter()
                .filter(|(_, v)| !v.is_function())
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        ),
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
    fn label_method_calls_rewrite_to_call() {
        for (given, want) in [
            (r#"{{.Label "k"}}"#, r#"{{call .Label "k"}}"#),
            (r#"{{- .Label "k" -}}"#, r#"{{- call .Label "k" -}}"#),
            (
                r#"{{if eq (.Label "k") "v"}}y{{end}}"#,
                r#"{{if eq (call .Label "k") "v"}}y{{end}}"#,
            ),
            (r#"{{"k" | .Label}}"#, r#"{{"k" | call .Label}}"#),
            (
                r#"{{$v := .Label "k"}}{{$v}}"#,
                r#"{{$v := call .Label "k"}}{{$v}}"#,
            ),
            (
                r#"{{with .Label "k"}}{{.}}{{end}}"#,
                r#"{{with call .Label "k"}}{{.}}{{end}}"#,
            ),
            // Not a command's start, a field of something else, a string,
            // a comment, or text: left alone.
            (
                r#"{{.Labels}} .Label {{".Label"}}"#,
                r#"{{.Labels}} .Label {{".Label"}}"#,
            ),
            (
                r#"{{.Config.Label}}{{/* .Label */}}"#,
                r#"{{.Config.Label}}{{/* .Label */}}"#,
            ),
            (r#"{{.Label.x}}"#, r#"{{.Label.x}}"#),
        ] {
            assert_eq!(call_methods(given), want, "{given}");
        }
    }

    #[test]
    fn rows_answer_label_and_hide_it_from_json() {
        let row = json!({"Names": "web", "Labels": "a.b=1,c=2", "Label": {"a.b": "1", "c": "2"}});
        let f = Format::parse_rows(
            Some(r#"{{.Names}} {{.Label "a.b"}}|{{.Label "nope"}}|"#),
            "",
            "T",
        )
        .unwrap();
        assert_eq!(
            f.render(std::slice::from_ref(&row), &[]).unwrap(),
            "web 1||\n"
        );
        let f =
            Format::parse_rows(Some(r#"{{if eq (.Label "c") "2"}}two{{end}}"#), "", "T").unwrap();
        assert_eq!(f.render(std::slice::from_ref(&row), &[]).unwrap(), "two\n");
        // JSON has no methods, as docker's.
        let f = Format::parse_rows(Some("{{json .}}"), "", "T").unwrap();
        let out = f.render(std::slice::from_ref(&row), &[]).unwrap();
        assert!(!out.contains("\"Label\""), "{out}");
        let f = Format::parse_rows(Some("json"), "", "T").unwrap();
        let out = f.render(std::slice::from_ref(&row), &[]).unwrap();
        assert!(!out.contains("\"Label\""), "{out}");
        // A table names the column after the label's last part.
        let f = Format::parse_rows(
            Some(r#"table {{.Names}}\t{{.Label "com.x.my-label"}}"#),
            "",
            "T",
        )
        .unwrap();
        let out = f
            .render(std::slice::from_ref(&row), &[("Names", "NAMES")])
            .unwrap();
        assert!(out.starts_with("NAMES     my label\n"), "{out:?}");
        // Without an argument, as Go's call of a method with one.
        let f = Format::parse_rows(Some("{{.Label}}"), "", "T").unwrap();
        assert!(f.render(std::slice::from_ref(&row), &[]).is_err());
    }

    #[test]
    fn a_field_rows_lack_is_an_error_where_maps_give_no_value() {
        let row = json!({"ID": "abc"});
        let f = Format::parse_rows(Some("{{.ID}} {{.Nope}}"), "", "*formatter.ContainerContext")
            .unwrap();
        let e = f
            .render(std::slice::from_ref(&row), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("can't evaluate field Nope in type *formatter.ContainerContext"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
        // No rows, no error (docker runs the template on each row).
        assert_eq!(f.render(&[], &[]).unwrap(), "");
        // A table's header leaves a field it does not know empty.
        let f = Format::parse_rows(Some(r"table {{.ID}}\t{{.Nope}}"), "", "T").unwrap();
        assert!(f
            .render(&[], &[("ID", "CONTAINER ID")])
            .unwrap()
            .starts_with("CONTAINER ID"));
        // inspect's JSON is maps: <no value>, as docker's.
        assert_eq!(render_one("{{.Nope}}", &row).unwrap(), "<no value>");
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
