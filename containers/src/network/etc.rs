//! The /etc/hosts lines and /etc/resolv.conf of a container on a network,
//! as docker writes them, with `--dns`, `--dns-search`, `--dns-option` and
//! `--add-host HOST:IP|host-gateway`.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `--dns*` and `--add-host`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRequest {
    pub servers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
    /// `(host, address)`; the address may be `host-gateway`.
    pub add_hosts: Vec<(String, String)>,
}

impl DnsRequest {
    pub fn is_empty(&self) -> bool {
        *self == DnsRequest::default()
    }
}

/// `--add-host HOST:IP` (or `HOST:host-gateway`; an IPv6 address may
/// follow the first colon).
pub fn parse_add_host(s: &str) -> Result<(String, String)> {
    let bad = |why: &str| Error::Invalid(format!("invalid --add-host {s:?}: {why}"));
    let (host, addr) = s
        .split_once(':')
        .ok_or_else(|| bad("want HOST:IP or HOST:host-gateway"))?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !host_ok {
        return Err(bad(
            "the host name may hold only letters, digits, '.', '-' and '_'",
        ));
    }
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    if addr != "host-gateway" && addr.parse::<IpAddr>().is_err() {
        return Err(bad("not an IP address or host-gateway"));
    }
    Ok((host.to_string(), addr.to_string()))
}

/// A network alias (`--network-alias`, `network connect --alias`): a DNS
/// name, since aardvark-dns's configuration lists them separated by
/// commas and spaces.
pub fn check_alias(flag: &str, a: &str) -> Result<()> {
    let ok = !a.is_empty()
        && a.len() <= 253
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    match ok {
        true => Ok(()),
        false => Err(Error::Invalid(format!(
            "invalid {flag} {a:?}: only letters, digits, '.', '-' and '_' are allowed"
        ))),
    }
}

/// `--dns-search`/`--dns-option` words become lines of resolv.conf: no
/// spaces or line breaks in them.
pub fn check_word(flag: &str, w: &str) -> Result<()> {
    if w.is_empty() || w.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Invalid(format!("invalid {flag} {w:?}")));
    }
    Ok(())
}

/// What netavark reported for the network's name resolution.
pub struct Resolver<'a> {
    /// aardvark-dns's addresses (a network with name resolution).
    pub servers: &'a [IpAddr],
    pub search: &'a [String],
}

/// The files for a container at `ip` named `hostname` on a network whose
/// gateway is `gateway`.
pub fn files(
    ip: Ipv4Addr,
    gateway: Ipv4Addr,
    hostname: &str,
    resolver: Resolver,
    req: &DnsRequest,
) -> (String, String) {
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host_lines = |key: &str| -> Vec<String> {
        host.lines()
            .filter(|l| l.split_whitespace().next() == Some(key))
            .map(str::to_string)
            .collect()
    };
    let mut resolv = String::new();
    let search = if !req.search.is_empty() {
        vec![format!("search {}", req.search.join(" "))]
    } else if !resolver.search.is_empty() {
        vec![format!("search {}", resolver.search.join(" "))]
    } else {
        host_lines("search")
    };
    for l in search {
        resolv.push_str(&l);
        resolv.push('\n');
    }
    // aardvark-dns answers for the network and forwards the rest (to the
    // `--dns` servers: netavark is given them); without it, the `--dns`
    // servers or the host's that the container can reach.
    let servers: Vec<String> = if !resolver.servers.is_empty() {
        resolver.servers.iter().map(|s| s.to_string()).collect()
    } else if !req.servers.is_empty() {
        req.servers.iter().map(|s| s.to_string()).collect()
    } else {
        let reachable: Vec<String> = host_lines("nameserver")
            .iter()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .filter(|ip| ip.parse::<IpAddr>().is_ok_and(|i| !i.is_loopback()))
            .collect();
        match reachable.is_empty() {
            // docker's fallback.
            true => vec!["8.8.8.8".into(), "8.8.4.4".into()],
            false => reachable,
        }
    };
    for s in servers {
        resolv.push_str(&format!("nameserver {s}\n"));
    }
    let options = match req.options.is_empty() {
        true => host_lines("options"),
        false => vec![format!("options {}", req.options.join(" "))],
    };
    for l in options {
        resolv.push_str(&l);
        resolv.push('\n');
    }
    let mut hosts = String::new();
    for (name, addr) in &req.add_hosts {
        let addr = match addr.as_str() {
            "host-gateway" => gateway.to_string(),
            a => a.to_string(),
        };
        hosts.push_str(&format!("{addr}\t{name}\n"));
    }
    hosts.push_str(&format!("{ip}\t{hostname}\n"));
    (hosts, resolv)
}

/// `resolv` with `servers` as nameservers too: after those in `known`
/// (other networks' aardvark-dns, which answer for every network of the
/// container and forward the rest) and before any other (the host's or
/// `--dns` ones, which know no container names). Ones present stay.
pub fn add_nameservers(resolv: &str, servers: &[IpAddr], known: &[IpAddr]) -> String {
    let mut new: Vec<String> = servers
        .iter()
        .filter(|s| !resolv.lines().any(|l| l == format!("nameserver {s}")))
        .map(|s| format!("nameserver {s}"))
        .collect();
    let mut out = String::new();
    for l in resolv.lines() {
        let server = l
            .strip_prefix("nameserver ")
            .and_then(|s| s.trim().parse::<IpAddr>().ok());
        if let Some(s) = server {
            if !known.contains(&s) {
                for n in new.drain(..) {
                    out.push_str(&n);
                    out.push('\n');
                }
            }
        }
        out.push_str(l);
        out.push('\n');
    }
    for n in new {
        out.push_str(&n);
        out.push('\n');
    }
    out
}

/// `resolv` without the nameserver lines of `servers`.
pub fn remove_nameservers(resolv: &str, servers: &[IpAddr]) -> String {
    resolv
        .lines()
        .filter(|l| {
            !l.strip_prefix("nameserver ")
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
                .is_some_and(|s| servers.contains(&s))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_networks_resolvers_go_before_the_hosts() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let r = "search x\nnameserver 10.78.0.1\nnameserver 192.0.2.53\noptions ndots:2\n";
        let added = add_nameservers(r, &[ip("10.78.1.1")], &[ip("10.78.0.1")]);
        assert_eq!(
            added,
            "search x\nnameserver 10.78.0.1\nnameserver 10.78.1.1\nnameserver 192.0.2.53\noptions ndots:2\n"
        );
        assert_eq!(add_nameservers(&added, &[ip("10.78.1.1")], &[]), added);
        assert_eq!(remove_nameservers(&added, &[ip("10.78.1.1")]), r);
        assert_eq!(
            add_nameservers("", &[ip("10.78.1.1")], &[]),
            "nameserver 10.78.1.1\n"
        );
    }

    #[test]
    fn add_host_syntax() {
        assert_eq!(
            parse_add_host("db:10.1.2.3").unwrap(),
            ("db".to_string(), "10.1.2.3".to_string())
        );
        assert_eq!(parse_add_host("gw:host-gateway").unwrap().1, "host-gateway");
        assert_eq!(parse_add_host("v6:[::1]").unwrap().1, "::1");
        for bad in [
            "db",
            ":1.2.3.4",
            "d b:1.2.3.4",
            "db:nothing",
            "a\nb:1.2.3.4",
        ] {
            assert!(parse_add_host(bad).is_err(), "{bad}");
        }
        assert!(check_word("--dns-search", "a b").is_err());
        assert!(check_word("--dns-option", "ndots:2").is_ok());
    }

    #[test]
    fn flags_replace_the_hosts_resolver_settings() {
        let req = DnsRequest {
            servers: vec!["192.0.2.53".parse().unwrap()],
            search: vec!["example.test".into()],
            options: vec!["ndots:2".into()],
            add_hosts: vec![("gw".into(), "host-gateway".into())],
        };
        let none = Resolver {
            servers: &[],
            search: &[],
        };
        let (hosts, resolv) = files(
            "10.77.0.2".parse().unwrap(),
            "10.77.0.1".parse().unwrap(),
            "box",
            none,
            &req,
        );
        assert_eq!(hosts, "10.77.0.1\tgw\n10.77.0.2\tbox\n");
        assert_eq!(
            resolv,
            "search example.test\nnameserver 192.0.2.53\noptions ndots:2\n"
        );
    }
}
