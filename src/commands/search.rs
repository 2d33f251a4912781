//! `kiln search [--limit N] [--filter …] [--list-tags] [--format F]
//! [--no-trunc] [REGISTRY/]TERM`: flags into registry-client's search.

use anyhow::{anyhow, bail, Result};
use cli_format::rows::search;
use cli_format::Format;
use registry_client::catalog::HubResult;

use crate::context::Ctx;
use crate::exit::Status;
use crate::transfer::opts::RegistryOpts;

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// Show at most N results (with --list-tags, N tags)
    #[arg(long, default_value_t = 25, value_name = "N")]
    pub limit: usize,
    /// Filter: is-official=true|false, is-automated=true|false, stars=N (at least N)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// List the tags of the repository TERM names
    #[arg(long)]
    pub list_tags: bool,
    /// Format the output: `table`, `table TEMPLATE`, `json` or a Go template
    /// (fields .Name .Description .StarCount .IsOfficial .IsAutomated; .Name .Tag with --list-tags)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Don't truncate the descriptions
    #[arg(long)]
    pub no_trunc: bool,
    #[command(flatten)]
    pub registry: RegistryOpts,
    /// [REGISTRY/]TERM: a registry host (with a dot, a port or `localhost`) and the text
    /// repository names must contain; without a host, Docker Hub
    #[arg(value_name = "TERM")]
    pub term: String,
}

/// `--filter`s, docker's search filters.
#[derive(Default)]
struct Filters {
    official: Option<bool>,
    automated: Option<bool>,
    stars: u64,
}

impl Filters {
    fn parse(items: &[String]) -> Result<Filters> {
        let mut f = Filters::default();
        for item in items {
            let bad = || {
                anyhow!(
                    "invalid filter {item:?}: want is-official=BOOL, is-automated=BOOL or stars=N"
                )
            };
            let (k, v) = item.split_once('=').ok_or_else(bad)?;
            let boolean = || match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(bad()),
            };
            match k {
                "is-official" => f.official = Some(boolean()?),
                "is-automated" => f.automated = Some(boolean()?),
                "stars" => f.stars = v.parse().map_err(|_| bad())?,
                _ => return Err(bad()),
            }
        }
        Ok(f)
    }

    fn keep(&self, r: &HubResult) -> bool {
        self.official.is_none_or(|o| o == r.is_official)
            && self.automated.is_none_or(|a| a == r.is_automated)
            && r.star_count >= self.stars
    }
}

/// `localhost:5000/busy` → (`localhost:5000`, `busy`); `busybox` → Docker Hub.
fn split_term(term: &str) -> (String, String) {
    match term.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            (registry_client::normalize_registry(host), rest.to_string())
        }
        _ => (registry_client::DOCKER_HUB.to_string(), term.to_string()),
    }
}

pub fn run(_ctx: &Ctx, args: SearchArgs) -> Result<Status> {
    if !(1..=100).contains(&args.limit) {
        bail!(
            "invalid --limit {}: it must be between 1 and 100",
            args.limit
        );
    }
    let filters = Filters::parse(&args.filter)?;
    let (registry, term) = split_term(&args.term);
    let client = args.registry.client()?;
    let rt = transfer::runtime()?;
    if args.list_tags {
        let format = Format::parse_rows(
            args.format.as_deref(),
            search::TAGS_DEFAULT,
            search::ROW_TYPE,
        )?;
        if term.is_empty() {
            bail!("--list-tags needs a repository: REGISTRY/NAME");
        }
        let mut tags = rt.block_on(client.tags(&registry, &term, 100))?;
        tags.truncate(args.limit);
        let name = format!("{registry}/{term}");
        let rows: Vec<_> = tags.iter().map(|t| search::tag_row(&name, t)).collect();
        out!("{}", format.render(&rows, search::HEADERS)?);
        return Ok(Status::Success);
    }
    let format = Format::parse_rows(args.format.as_deref(), search::DEFAULT, search::ROW_TYPE)?;
    let found = rt.block_on(client.search(&registry, &term, args.limit, |r| filters.keep(r)))?;
    let rows: Vec<_> = found
        .iter()
        .map(|r| search::row(r, args.no_trunc))
        .collect();
    out!("{}", format.render(&rows, search::HEADERS)?);
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::split_term;

    #[test]
    fn terms_name_their_registry() {
        let s = |t| split_term(t);
        assert_eq!(
            s("localhost:5000/busy"),
            ("localhost:5000".into(), "busy".into())
        );
        assert_eq!(s("reg.example/a/b"), ("reg.example".into(), "a/b".into()));
        assert_eq!(s("busybox"), ("docker.io".into(), "busybox".into()));
        assert_eq!(
            s("library/busybox"),
            ("docker.io".into(), "library/busybox".into())
        );
    }
}
