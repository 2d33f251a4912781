//! `kiln pause` / `unpause` (the container's freezer cgroup) and `top`
//! (the processes of its cgroup): operations on a running container's
//! processes as a group, through kiln's runner.

use image_store::Store;

use crate::error::{Error, Result};
use crate::records::{Container, Containers};

/// The running container `name` and its init as seen from the host.
fn running(store: &Store, name: &str) -> Result<(Container, i32)> {
    let c = Containers::new(store).container(name)?;
    let not_running = || Error::Invalid(format!("container {} is not running", c.name));
    if !c.is_running() {
        return Err(not_running());
    }
    let pid = crate::control::init_pid(store, &c).ok_or_else(not_running)?;
    Ok((c, pid))
}

/// `kiln pause` (`frozen`) / `kiln unpause`.
pub fn freeze(store: &Store, name: &str, frozen: bool) -> Result<()> {
    let (c, pid) = running(store, name)?;
    runner::freeze(pid, frozen).map_err(|e| {
        Error::Invalid(format!(
            "{} container {}: {}",
            if frozen { "pausing" } else { "unpausing" },
            c.name,
            crate::error::chain(&e)
        ))
    })
}

/// `kiln top`: the host pids of the container's processes.
pub fn pids(store: &Store, name: &str) -> Result<Vec<i32>> {
    let (c, pid) = running(store, name)?;
    runner::container_pids(pid).map_err(|e| {
        Error::Invalid(format!(
            "listing the processes of container {}: {}",
            c.name,
            crate::error::chain(&e)
        ))
    })
}
