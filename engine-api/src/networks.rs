//! Networks.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::Request;

use crate::http::{ApiError, ApiResult, Query};
use crate::state::State;

pub async fn list(_state: Arc<State>, _q: Query) -> ApiResult {
    Err(ApiError::not_implemented("networks"))
}
pub async fn create(_state: Arc<State>, _req: Request<Incoming>) -> ApiResult {
    Err(ApiError::not_implemented("networks"))
}
pub async fn prune(_state: Arc<State>) -> ApiResult {
    Err(ApiError::not_implemented("networks"))
}
pub async fn inspect(_state: Arc<State>, _id: &str) -> ApiResult {
    Err(ApiError::not_implemented("networks"))
}
pub async fn remove(_state: Arc<State>, _id: &str) -> ApiResult {
    Err(ApiError::not_implemented("networks"))
}
