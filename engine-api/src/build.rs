//! `POST /build`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::Request;

use crate::http::{ApiError, ApiResult, Query};
use crate::state::State;

pub async fn build(_state: Arc<State>, _q: Query, _req: Request<Incoming>) -> ApiResult {
    Err(ApiError::not_implemented("build"))
}
pub async fn prune(_state: Arc<State>, _q: Query) -> ApiResult {
    Err(ApiError::not_implemented("build prune"))
}
