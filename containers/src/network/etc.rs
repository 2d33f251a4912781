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

#[cfg(test)]
mod tests {
    use super::*;

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
