//! `kiln commit`.

use anyhow::Result;

use super::{not_built, NotBuilt};
use crate::context::Ctx;
use crate::exit::Status;

pub type CommitArgs = NotBuilt;

pub fn run(_ctx: &Ctx, _args: CommitArgs) -> Result<Status> {
    not_built("commit")
}
