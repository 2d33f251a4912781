//! Exec instances: `POST /containers/{id}/exec` records what to run,
//! `/exec/{id}/start` runs it (hijacked), `/exec/{id}/json` reports it.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::Request;

use crate::http::{ApiError, ApiResult};
use crate::state::State;

pub struct ExecInstance {}

pub async fn create(_state: Arc<State>, _id: &str, _req: Request<Incoming>) -> ApiResult {
    Err(ApiError::not_implemented("exec"))
}
pub async fn start(_state: Arc<State>, _id: &str, _req: Request<Incoming>) -> ApiResult {
    Err(ApiError::not_implemented("exec"))
}
pub async fn inspect(_state: Arc<State>, _id: &str) -> ApiResult {
    Err(ApiError::not_implemented("exec"))
}
pub async fn resize(_state: Arc<State>, _id: &str) -> ApiResult {
    Err(ApiError::not_implemented("exec"))
}
