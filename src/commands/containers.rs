//! `kiln ps`, `rm`, `logs`, `stop`, `kill`.

use anyhow::Result;

use super::{not_built, NotBuilt};
use crate::context::Ctx;
use crate::exit::Status;

pub type PsArgs = NotBuilt;
pub type RmArgs = NotBuilt;
pub type LogsArgs = NotBuilt;
pub type StopArgs = NotBuilt;
pub type KillArgs = NotBuilt;

pub fn ps(_ctx: &Ctx, _args: PsArgs) -> Result<Status> {
    not_built("ps")
}
pub fn rm(_ctx: &Ctx, _args: RmArgs) -> Result<Status> {
    not_built("rm")
}
pub fn logs(_ctx: &Ctx, _args: LogsArgs) -> Result<Status> {
    not_built("logs")
}
pub fn stop(_ctx: &Ctx, _args: StopArgs) -> Result<Status> {
    not_built("stop")
}
pub fn kill(_ctx: &Ctx, _args: KillArgs) -> Result<Status> {
    not_built("kill")
}
