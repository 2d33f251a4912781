//! Published ports: docker's `-p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`
//! (ports may be ranges), `--expose` and the image's EXPOSE for `-P`, and
//! the host ports they end up on ([`PortMapping`], netavark's shape).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

fn proto(s: &str, whole: &str) -> Result<Proto> {
    match s {
        "" | "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        p => Err(Error::Invalid(format!(
            "invalid port {whole:?}: unknown protocol {p:?} (tcp or udp)"
        ))),
    }
}

/// `80` or `8000-8010`: first and last port.
fn range(s: &str, whole: &str, zero_ok: bool) -> Result<(u16, u16)> {
    let bad = || Error::Invalid(format!("invalid port {whole:?}: bad port number {s:?}"));
    let num = |p: &str| -> Result<u16> {
        let n: u16 = p.parse().map_err(|_| bad())?;
        if n == 0 && !zero_ok {
            return Err(bad());
        }
        Ok(n)
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(s)?;
            (n, n)
        }
    };
    if b < a {
        return Err(Error::Invalid(format!(
            "invalid port {whole:?}: the range {s} ends before it starts"
        )));
    }
    Ok((a, b))
}

/// One `-p` flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// None: all addresses.
    pub host_ip: Option<Ipv4Addr>,
    /// None (or 0): free ports picked by kiln.
    pub host: Option<(u16, u16)>,
    pub container: (u16, u16),
    pub proto: Proto,
}

impl PortSpec {
    /// `[IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]`.
    pub fn parse(s: &str) -> Result<PortSpec> {
        let (ports, p) = s.rsplit_once('/').unwrap_or((s, ""));
        let proto = proto(p, s)?;
        let parts: Vec<&str> = ports.split(':').collect();
        let (ip, host, ctr) = match parts.as_slice() {
            [c] => (None, None, *c),
            [h, c] => (None, Some(*h), *c),
            [ip, h, c] => (Some(*ip), Some(*h), *c),
            _ => {
                return Err(Error::Invalid(format!(
                "invalid port {s:?}: want [IP:][HOSTPORT:]CONTAINERPORT[/PROTO] (IPv6 host addresses are not supported)"
            )))
            }
        };
        let host_ip = match ip {
            None | Some("") => None,
            Some(ip) => Some(ip.parse::<Ipv4Addr>().map_err(|_| {
                Error::Invalid(format!("invalid port {s:?}: {ip:?} is not an IPv4 address"))
            })?),
        };
        let container = range(ctr, s, false)?;
        let host = match host {
            None | Some("") => None,
            Some(h) => match range(h, s, true)? {
                (0, 0) => None,
                (0, _) => {
                    return Err(Error::Invalid(format!(
                        "invalid port {s:?}: a host port range cannot start at 0"
                    )))
                }
                r => Some(r),
            },
        };
        if let Some((a, b)) = host {
            if b - a != container.1 - container.0 {
                return Err(Error::Invalid(format!(
                    "invalid port {s:?}: the host and container ranges differ in length"
                )));
            }
        }
        Ok(PortSpec {
            host_ip,
            host,
            container,
            proto,
        })
    }
}

/// `--expose PORT[-PORT][/PROTO]` and the image's `EXPOSE` keys (`80/tcp`).
pub fn parse_expose(s: &str) -> Result<Vec<(u16, Proto)>> {
    let (ports, p) = s.rsplit_once('/').unwrap_or((s, ""));
    let proto = proto(p, s)?;
    let (a, b) = range(ports, s, false)?;
    Ok((a..=b).map(|p| (p, proto)).collect())
}

/// A host port forwarded to the container, as netavark takes it (one port:
/// kiln expands ranges so each mapping says where it went).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Empty: all addresses.
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Proto,
    pub range: u16,
}

impl PortMapping {
    fn ip(&self) -> Ipv4Addr {
        self.host_ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// Whether both cannot be published at once.
    pub fn clashes(&self, other: &PortMapping) -> bool {
        let (a, b) = (self.ip(), other.ip());
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && (a == b || a.is_unspecified() || b.is_unspecified())
    }

    /// `0.0.0.0:8080` (docker's `port` output).
    pub fn host_addr(&self) -> String {
        format!("{}:{}", self.ip(), self.host_port)
    }
}

impl fmt::Display for PortMapping {
    /// docker's `ps` form: `127.0.0.1:8080->80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}->{}/{}",
            self.host_addr(),
            self.container_port,
            self.protocol
        )
    }
}

/// Whether a host socket holds `m`'s address: binding it fails.
fn in_use_on_host(ip: Ipv4Addr, port: u16, proto: Proto) -> bool {
    let addr = SocketAddrV4::new(ip, port);
    let res = match proto {
        Proto::Tcp => TcpListener::bind(addr).map(drop),
        Proto::Udp => UdpSocket::bind(addr).map(drop),
    };
    matches!(res, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
}

/// A port the kernel calls free on `ip`.
fn free_port(ip: Ipv4Addr, proto: Proto) -> Result<u16> {
    let addr = SocketAddrV4::new(ip, 0);
    let port = match proto {
        Proto::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
        Proto::Udp => UdpSocket::bind(addr).and_then(|l| l.local_addr()),
    }
    .map_err(|e| Error::Invalid(format!("finding a free {proto} port on {ip}: {e}")))?;
    Ok(port.port())
}

/// The host ports for `specs` and, with `publish_all`, for every port of
/// `exposed` no spec publishes. `taken` are the mappings of the store's
/// other containers (`(container name, mapping)`): a clash with one of
/// those, or a port a host socket holds, is refused naming the port.
pub fn resolve(
    specs: &[PortSpec],
    exposed: &[(u16, Proto)],
    publish_all: bool,
    taken: &[(String, PortMapping)],
) -> Result<Vec<PortMapping>> {
    let mut out: Vec<PortMapping> = Vec::new();
    let mut wanted: Vec<(Option<Ipv4Addr>, Option<u16>, u16, Proto)> = Vec::new();
    for s in specs {
        for i in 0..=(s.container.1 - s.container.0) {
            let host = s.host.map(|(a, _)| a + i);
            wanted.push((s.host_ip, host, s.container.0 + i, s.proto));
        }
    }
    if publish_all {
        for &(port, proto) in exposed {
            if !wanted.iter().any(|w| w.2 == port && w.3 == proto) {
                wanted.push((None, None, port, proto));
            }
        }
    }
    for (ip, host, container_port, protocol) in wanted {
        let ip_or_any = ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mapping = |host_port| PortMapping {
            host_ip: ip.map(|i| i.to_string()).unwrap_or_default(),
            host_port,
            container_port,
            protocol,
            range: 1,
        };
        let clash = |m: &PortMapping| {
            taken
                .iter()
                .find(|(_, t)| t.clashes(m))
                .map(|(n, _)| n.clone())
                .or_else(|| out.iter().any(|o| o.clashes(m)).then(|| "this one".into()))
        };
        let m = match host {
            Some(p) => {
                let m = mapping(p);
                if let Some(by) = clash(&m) {
                    return Err(Error::Invalid(format!(
                        "host port {}/{protocol} is already published by container {by}",
                        m.host_addr()
                    )));
                }
                if in_use_on_host(ip_or_any, p, protocol) {
                    return Err(Error::Invalid(format!(
                        "host port {}/{protocol} is already in use",
                        m.host_addr()
                    )));
                }
                m
            }
            None => {
                let mut tries = 0;
                loop {
                    let m = mapping(free_port(ip_or_any, protocol)?);
                    if clash(&m).is_none() {
                        break m;
                    }
                    tries += 1;
                    if tries > 100 {
                        return Err(Error::Invalid(format!(
                            "no free {protocol} host port found on {ip_or_any}"
                        )));
                    }
                }
            }
        };
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_port_syntax() {
        let p = PortSpec::parse("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(p.host, Some((8080, 8080)));
        assert_eq!((p.container, p.proto), ((80, 80), Proto::Udp));
        let p = PortSpec::parse("127.0.0.1::80").unwrap();
        assert_eq!((p.host, p.container), (None, (80, 80)));
        assert_eq!(PortSpec::parse("127.0.0.1:0:80").unwrap().host, None);
        let p = PortSpec::parse("9000-9002:80-82").unwrap();
        assert_eq!((p.host, p.container), (Some((9000, 9002)), (80, 82)));
        assert_eq!(PortSpec::parse("80").unwrap().host, None);
        for bad in [
            "",
            "x",
            "80/sctp",
            "1:2:3:4",
            "9000-9001:80",
            "0",
            "localhost:1:2",
            "5-4",
        ] {
            assert!(PortSpec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_expose("80-81/udp").unwrap(),
            [(80, Proto::Udp), (81, Proto::Udp)]
        );
    }

    #[test]
    fn clashes_count_wildcards() {
        let m = |ip: &str, port| PortMapping {
            host_ip: ip.into(),
            host_port: port,
            container_port: 80,
            protocol: Proto::Tcp,
            range: 1,
        };
        assert!(m("", 80).clashes(&m("127.0.0.1", 80)));
        assert!(m("127.0.0.1", 80).clashes(&m("127.0.0.1", 80)));
        assert!(!m("127.0.0.1", 80).clashes(&m("127.0.0.2", 80)));
        assert!(!m("127.0.0.1", 80).clashes(&m("127.0.0.1", 81)));
        let taken = vec![("web".to_string(), m("", 8080))];
        let spec = PortSpec::parse("127.0.0.1:8080:80").unwrap();
        let e = resolve(&[spec], &[], false, &taken)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "host port 127.0.0.1:8080/tcp is already published by container web"
        );
    }

    #[test]
    fn a_host_socket_makes_the_port_taken() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let spec = PortSpec::parse(&format!("127.0.0.1:{port}:80")).unwrap();
        let e = resolve(std::slice::from_ref(&spec), &[], false, &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("host port 127.0.0.1:{port}/tcp is already in use")
        );
        drop(l);
        assert_eq!(
            resolve(&[spec], &[], false, &[]).unwrap()[0].host_port,
            port
        );
        let all = resolve(&[], &[(80, Proto::Tcp), (53, Proto::Udp)], true, &[]).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|m| m.host_port != 0 && m.host_ip.is_empty()));
    }
}
