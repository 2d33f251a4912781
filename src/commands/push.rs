//! `kiln push`.

use anyhow::Result;

use super::{not_built, NotBuilt};
use crate::context::Ctx;
use crate::exit::Status;

pub type PushArgs = NotBuilt;

pub fn run(_ctx: &Ctx, _args: PushArgs) -> Result<Status> {
    not_built("push")
}
