//! `kiln login` and `kiln logout`.

use anyhow::Result;

use super::{not_built, NotBuilt};
use crate::context::Ctx;
use crate::exit::Status;

pub type LoginArgs = NotBuilt;
pub type LogoutArgs = NotBuilt;

pub fn login(_ctx: &Ctx, _args: LoginArgs) -> Result<Status> {
    not_built("login")
}
pub fn logout(_ctx: &Ctx, _args: LogoutArgs) -> Result<Status> {
    not_built("logout")
}
