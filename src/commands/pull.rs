//! `kiln pull`.

use anyhow::Result;

use super::{not_built, NotBuilt};
use crate::context::Ctx;
use crate::exit::Status;

pub type PullArgs = NotBuilt;

pub fn run(_ctx: &Ctx, _args: PullArgs) -> Result<Status> {
    not_built("pull")
}
