//! `kiln port CONTAINER [PORT[/PROTO]]`: the host addresses a container's
//! published ports are reachable at.

use anyhow::{bail, Result};
use containers::network::{self, ports, PortMapping};
use containers::Containers;

use crate::context::Ctx;
use crate::exit::{from_containers, Status};

#[derive(clap::Args, Debug)]
pub struct PortArgs {
    /// The container
    pub container: String,
    /// Only this container port: PORT[/tcp|udp]
    pub port: Option<String>,
}

pub fn run(ctx: &Ctx, args: PortArgs) -> Result<Status> {
    let store = ctx.store()?;
    let c = Containers::new(&store)
        .container(&args.container)
        .map_err(from_containers)?;
    let all: Vec<PortMapping> = network::published(&store, &c);
    match &args.port {
        None => {
            for m in &all {
                outln!("{}/{} -> {}", m.container_port, m.protocol, m.host_addr());
            }
        }
        Some(p) => {
            let want = ports::parse_expose(p)?;
            let [(port, proto)] = want.as_slice() else {
                bail!("invalid port {p:?}: give one port");
            };
            let hits: Vec<&PortMapping> = all
                .iter()
                .filter(|m| m.container_port == *port && m.protocol == *proto)
                .collect();
            if hits.is_empty() {
                bail!("no public port '{port}/{proto}' published for {}", c.name);
            }
            for m in hits {
                outln!("{}", m.host_addr());
            }
        }
    }
    Ok(Status::Success)
}
