//! `docker cp` (`/containers/{id}/archive`), export, changes.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::Request;

use crate::http::{ApiError, ApiResult, Query};
use crate::state::State;

pub async fn stat(_state: Arc<State>, _id: &str, _q: Query) -> ApiResult {
    Err(ApiError::not_implemented("archive"))
}
pub async fn get(_state: Arc<State>, _id: &str, _q: Query) -> ApiResult {
    Err(ApiError::not_implemented("archive"))
}
pub async fn put(_state: Arc<State>, _id: &str, _q: Query, _req: Request<Incoming>) -> ApiResult {
    Err(ApiError::not_implemented("archive"))
}
pub async fn export(_state: Arc<State>, _id: &str) -> ApiResult {
    Err(ApiError::not_implemented("export"))
}
pub async fn changes(_state: Arc<State>, _id: &str) -> ApiResult {
    Err(ApiError::not_implemented("changes"))
}
