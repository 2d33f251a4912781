//! IPv4 subnets (`10.77.0.0/16`): parsing, membership and the addresses a
//! network hands out. IPv6 networks are not built yet.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// The network address (host bits zero).
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    fn mask(self) -> u32 {
        match self.prefix {
            0 => 0,
            p => u32::MAX << (32 - p),
        }
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    pub fn overlaps(self, other: Subnet) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    /// The first usable address: docker's and podman's default gateway.
    pub fn first_host(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    /// The addresses containers may get: all but the network and
    /// broadcast addresses, in order.
    pub fn hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        let start = u32::from(self.addr) + 1;
        let end = u32::from(self.addr) | !self.mask();
        (start..end).map(Ipv4Addr::from)
    }
}

impl FromStr for Subnet {
    type Err = String;

    fn from_str(s: &str) -> Result<Subnet, String> {
        let bad = || format!("invalid subnet {s:?}: want an IPv4 CIDR such as 10.78.0.0/24");
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        // At least one address for the gateway and one for a container.
        if !(8..=30).contains(&prefix) {
            return Err(format!(
                "invalid subnet {s:?}: the prefix length must be between 8 and 30"
            ));
        }
        let net = Subnet { addr, prefix };
        if u32::from(addr) & !net.mask() != 0 {
            return Err(format!(
                "invalid subnet {s:?}: host bits are set (the network address is {}/{prefix})",
                Ipv4Addr::from(u32::from(addr) & net.mask())
            ));
        }
        Ok(net)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Subnet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Subnet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_membership() {
        let n: Subnet = "10.78.3.0/24".parse().unwrap();
        assert!(n.contains("10.78.3.9".parse().unwrap()));
        assert!(!n.contains("10.78.4.1".parse().unwrap()));
        assert_eq!(n.first_host().to_string(), "10.78.3.1");
        assert_eq!(n.hosts().count(), 254);
        assert!(n.overlaps("10.78.0.0/16".parse().unwrap()));
        assert!(!n.overlaps("10.78.4.0/24".parse().unwrap()));
        assert!("10.78.3.1/24".parse::<Subnet>().is_err());
        assert!("10.78.3.0".parse::<Subnet>().is_err());
        assert!("10.78.3.0/31".parse::<Subnet>().is_err());
    }
}
