//! Listing what a registry holds: `/v2/_catalog` and `/v2/<name>/tags/list`,
//! paged with `n` and `last` and followed through `Link: <…>; rel="next"`
//! (distribution's pagination), one page in memory at a time; and Docker
//! Hub's search API (`/v1/search`), which distribution registries lack.

use reqwest::header::LINK;
use reqwest::Method;
use serde::Deserialize;

use crate::auth::pull_scope;
use crate::client::{status_error, Client, Replay};
use crate::error::{Error, Result};

/// A page of a listing is a small JSON document; more is not one.
const MAX_PAGE_BYTES: usize = 8 << 20;

/// The registry's name for the catalog scope (distribution's token auth).
const CATALOG_SCOPE: &str = "registry:catalog:*";

#[derive(Deserialize)]
struct CatalogPage {
    #[serde(default)]
    repositories: Vec<String>,
}

#[derive(Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// One Docker Hub search result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HubResult {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: u64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

#[derive(Deserialize)]
struct HubPage {
    #[serde(default)]
    results: Vec<HubResult>,
}

/// Parses a `/v1/search` response body.
pub fn parse_hub_search(body: &[u8]) -> Result<Vec<HubResult>> {
    serde_json::from_slice::<HubPage>(body)
        .map(|p| p.results)
        .map_err(|e| Error::Protocol {
            registry: crate::DOCKER_HUB.to_string(),
            message: format!("search response: {e}"),
        })
}

/// The path of the next page from a `Link` header, kept on the same
/// registry: a full URL is cut to its path and query.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        if !is_next {
            return None;
        }
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let path = match target.find("://") {
            Some(i) => &target[i + 3 + target[i + 3..].find('/')?..],
            None => target,
        };
        path.starts_with("/v2/").then(|| path.to_string())
    })
}

impl Client {
    /// GETs one page of a listing: its body and the next page's path.
    async fn page(
        &self,
        registry: &str,
        path: &str,
        scope: Option<&str>,
    ) -> Result<(Vec<u8>, Option<String>)> {
        let scopes: Vec<String> = scope.map(str::to_string).into_iter().collect();
        let host = self.host(registry).await?;
        let mut resp = self
            .send(&host, Method::GET, path, &scopes, Replay::Yes, |r| r)
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(registry, "GET", path, resp).await);
        }
        let next = resp
            .headers()
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let mut body = Vec::new();
        while let Some(c) = resp.chunk().await.map_err(|source| Error::Transport {
            registry: registry.to_string(),
            context: format!("reading {path}"),
            source: source.without_url(),
        })? {
            body.extend_from_slice(&c);
            if body.len() > MAX_PAGE_BYTES {
                return Err(Error::Protocol {
                    registry: registry.to_string(),
                    message: format!("{path}: a page larger than {MAX_PAGE_BYTES} bytes"),
                });
            }
        }
        Ok((body, next))
    }

    /// Walks `/v2/_catalog` in pages of `page_size`, handing each
    /// repository name to `each` until it returns false or the catalog ends.
    pub async fn catalog(
        &self,
        registry: &str,
        page_size: usize,
        mut each: impl FnMut(&str) -> bool,
    ) -> Result<()> {
        let mut path = Some(format!("/v2/_catalog?n={page_size}"));
        while let Some(p) = path.take() {
            let (body, next) = self.page(registry, &p, Some(CATALOG_SCOPE)).await?;
            let page: CatalogPage = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                registry: registry.to_string(),
                message: format!("{p}: {e}"),
            })?;
            for r in &page.repositories {
                if !each(r) {
                    return Ok(());
                }
            }
            path = next;
        }
        Ok(())
    }

    /// The tags of repository `name` on `registry`, every page of them.
    pub async fn tags(&self, registry: &str, name: &str, page_size: usize) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut path = Some(format!("/v2/{name}/tags/list?n={page_size}"));
        while let Some(p) = path.take() {
            let (body, next) = self.page(registry, &p, Some(&pull_scope(name))).await?;
            let page: TagsPage = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                registry: registry.to_string(),
                message: format!("{p}: {e}"),
            })?;
            out.extend(page.tags.unwrap_or_default());
            path = next;
        }
        Ok(out)
    }

    /// Docker Hub's search (`index.docker.io/v1/search`): up to `limit`
    /// results for `term`.
    pub async fn hub_search(&self, term: &str, limit: usize) -> Result<Vec<HubResult>> {
        let url = reqwest::Url::parse_with_params(
            "https://index.docker.io/v1/search",
            &[("q", term), ("n", &limit.to_string())],
        )
        .map_err(|e| Error::Protocol {
            registry: crate::DOCKER_HUB.to_string(),
            message: e.to_string(),
        })?;
        let (body, _) = self.page(crate::DOCKER_HUB, url.as_str(), None).await?;
        let mut results = parse_hub_search(&body)?;
        results.truncate(limit);
        Ok(results)
    }

    /// `search TERM` on `registry`: Docker Hub's search API for docker.io;
    /// elsewhere the catalog's repositories whose name contains `term`
    /// (all of them for an empty term), named `registry/repo`, as many as
    /// `limit` of those `keep` accepts.
    pub async fn search(
        &self,
        registry: &str,
        term: &str,
        limit: usize,
        keep: impl Fn(&HubResult) -> bool,
    ) -> Result<Vec<HubResult>> {
        if registry == crate::DOCKER_HUB {
            let mut r = self.hub_search(term, limit).await?;
            r.retain(|x| keep(x));
            return Ok(r);
        }
        let mut out = Vec::new();
        self.catalog(registry, 100, |name| {
            if name.contains(term) {
                let r = HubResult {
                    name: format!("{registry}/{name}"),
                    description: String::new(),
                    star_count: 0,
                    is_official: false,
                    is_automated: false,
                };
                if keep(&r) {
                    out.push(r);
                }
            }
            out.len() < limit
        })
        .await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_as_distribution_sends_them() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=r099&n=100>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=r099&n=100")
        );
        assert_eq!(
            next_link(r#"<https://reg.example:5000/v2/x/tags/list?last=b&n=2>; rel="next""#)
                .as_deref(),
            Some("/v2/x/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"</v2/_catalog?last=a>; rel="prev""#), None);
        // Somewhere else than the registry's API: not followed.
        assert_eq!(
            next_link(r#"<https://evil.example/steal>; rel="next""#),
            None
        );
    }

    /// A response saved from Docker Hub's `/v1/search?q=busybox&n=3`.
    const HUB: &str = r#"{"num_pages":86,"num_results":2565,"results":[
        {"star_count":3398,"is_official":true,"name":"busybox","is_automated":false,"description":"Busybox base image."},
        {"star_count":47,"is_official":false,"name":"radial/busyboxplus","is_automated":true,"description":"Full-chain, Internet enabled, busybox made from scratch. Comes in git and cURL flavors."},
        {"star_count":0,"is_official":false,"name":"someone/busy","is_automated":false,"description":""}
    ],"page_size":3,"query":"busybox"}"#;

    #[test]
    fn hub_search_parses() {
        let r = parse_hub_search(HUB.as_bytes()).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            HubResult {
                name: "busybox".into(),
                description: "Busybox base image.".into(),
                star_count: 3398,
                is_official: true,
                is_automated: false,
            }
        );
        assert!(r[1].is_automated && !r[1].is_official);
        assert_eq!(r[2].description, "");
        assert!(parse_hub_search(b"<html>").is_err());
        assert_eq!(parse_hub_search(b"{}").unwrap(), vec![]);
    }
}
