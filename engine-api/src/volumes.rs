//! Volumes.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::Request;
use image_store::Store;
use serde_json::Value;

use crate::http::{ApiError, ApiResult, Query};
use crate::state::State;

pub fn describe(_store: &Store, _v: &containers::volumes::Volume) -> Value {
    Value::Null
}
pub async fn list(_state: Arc<State>, _q: Query) -> ApiResult {
    Err(ApiError::not_implemented("volumes"))
}
pub async fn create(_state: Arc<State>, _req: Request<Incoming>) -> ApiResult {
    Err(ApiError::not_implemented("volumes"))
}
pub async fn prune(_state: Arc<State>, _q: Query) -> ApiResult {
    Err(ApiError::not_implemented("volumes"))
}
pub async fn inspect(_state: Arc<State>, _id: &str) -> ApiResult {
    Err(ApiError::not_implemented("volumes"))
}
pub async fn remove(_state: Arc<State>, _id: &str, _q: Query) -> ApiResult {
    Err(ApiError::not_implemented("volumes"))
}
