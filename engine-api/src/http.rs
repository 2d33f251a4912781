//! What every handler shares: the body type, JSON and error responses in
//! docker's shape (`{"message": …}` with its status codes), the query
//! string, reading a request body, streamed bodies fed from blocking code
//! through a bounded channel, docker's multiplexed stream framing, and
//! hijacked connections (attach, exec).

use std::io;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, BodyStream, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

pub type Body = UnsyncBoxBody<Bytes, io::Error>;
pub type Resp = Response<Body>;
pub type ApiResult<T = Resp> = Result<T, ApiError>;

/// The largest JSON request body read into memory (create, exec, network
/// and volume configs are small).
const MAX_JSON_BODY: usize = 4 << 20;

/// Chunks in flight per streamed body: a slow client makes the producer
/// wait, so memory stays bounded.
const STREAM_DEPTH: usize = 16;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn json(status: StatusCode, v: &impl Serialize) -> Resp {
    let data = serde_json::to_vec(v).expect("plain data serializes");
    let mut r = Response::new(full(data));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn ok_json(v: &impl Serialize) -> Resp {
    json(StatusCode::OK, v)
}

pub fn status(status: StatusCode) -> Resp {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    r
}

/// An error as the Engine API gives it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, m)
    }
    pub fn conflict(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, m)
    }
    pub fn internal(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }
    /// A part of the API kiln does not serve: said, never faked.
    pub fn not_implemented(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{what} is not implemented by kiln's Engine API"),
        )
    }
    pub fn response(&self) -> Resp {
        json(self.status, &serde_json::json!({ "message": self.message }))
    }
}

/// `a: b: c` from an error and its sources (repeats left out): the
/// containers crate's, so the API and the CLI word errors alike.
pub use containers::error::chain;

impl From<image_store::StoreError> for ApiError {
    fn from(e: image_store::StoreError) -> ApiError {
        use image_store::StoreError as S;
        match &e {
            S::NoSuchImage(n) => ApiError::not_found(format!("No such image: {n}")),
            S::InUse { .. } | S::MultipleRepositories { .. } => ApiError::conflict(e.to_string()),
            S::Reference(_) | S::Digest(_) | S::Ambiguous { .. } => {
                ApiError::bad_request(chain(&e))
            }
            _ => ApiError::internal(chain(&e)),
        }
    }
}

impl From<containers::Error> for ApiError {
    fn from(e: containers::Error) -> ApiError {
        use containers::Error as E;
        match e {
            E::Store(s) => s.into(),
            E::NoSuchContainer(n) => ApiError::not_found(format!("No such container: {n}")),
            E::NameInUse(n) => ApiError::conflict(format!(
                "Conflict. The container name \"/{n}\" is already in use"
            )),
            E::InvalidName(_) | E::Ambiguous { .. } => ApiError::bad_request(e.to_string()),
            // A commit's `changes` that are no Dockerfile instructions.
            E::Changes(_) => ApiError::bad_request(chain(&e)),
            E::Invalid(m) => {
                // Missing things are 404 and state conflicts 409 in
                // docker, other refusals 400.
                let conflict = [
                    "is not running",
                    "is running",
                    "is paused",
                    "restarting",
                    "in use",
                    "already exists",
                ]
                .iter()
                .any(|w| m.contains(w));
                if m.starts_with("no such ") || m.starts_with("could not find") {
                    ApiError::not_found(m)
                } else if conflict {
                    ApiError::conflict(m)
                } else {
                    ApiError::bad_request(m)
                }
            }
            e => ApiError::internal(chain(&e)),
        }
    }
}

impl From<transfer::Error> for ApiError {
    fn from(e: transfer::Error) -> ApiError {
        ApiError::internal(e.render())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::internal(format!("the request's worker failed: {e}"))
    }
}

/// Runs blocking library code off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await?
}

/// The query string, decoded.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
    /// Every value of a repeated key (`names=a&names=b`).
    pub fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
    /// docker's booleans: `1`, `true`, `True` (anything but `0`/`false`/empty).
    pub fn flag(&self, k: &str) -> bool {
        self.get(k)
            .is_some_and(|v| !matches!(v, "0" | "false" | "False" | "FALSE"))
    }
    pub fn int(&self, k: &str) -> ApiResult<Option<i64>> {
        self.get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}")))
            })
            .transpose()
    }
    /// `filters={"key":["v",…]}` (also the old `{"key":{"v":true}}`) as
    /// `key=v` pairs.
    pub fn filters(&self) -> ApiResult<Vec<(String, String)>> {
        let Some(raw) = self.get("filters") else {
            return Ok(Vec::new());
        };
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filters {raw:?}: {e}")))?;
        let mut out = Vec::new();
        let obj = v
            .as_object()
            .ok_or_else(|| ApiError::bad_request(format!("invalid filters {raw:?}")))?;
        for (k, vals) in obj {
            match vals {
                serde_json::Value::Array(a) => {
                    for x in a {
                        out.push((k.clone(), x.as_str().unwrap_or_default().to_string()));
                    }
                }
                serde_json::Value::Object(m) => {
                    for (x, on) in m {
                        if on.as_bool() != Some(false) {
                            out.push((k.clone(), x.clone()));
                        }
                    }
                }
                _ => return Err(ApiError::bad_request(format!("invalid filters {raw:?}"))),
            }
        }
        Ok(out)
    }
}

/// A JSON request body (bounded); an empty body is `T::default()`.
pub async fn read_json<T: serde::de::DeserializeOwned + Default>(body: Incoming) -> ApiResult<T> {
    let limited = http_body_util::Limited::new(body, MAX_JSON_BODY);
    let data = limited
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?
        .to_bytes();
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&data)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))
}

/// A request body as a blocking reader (build contexts, image archives),
/// streamed: for use inside [`blocking`] or a thread.
pub fn body_reader(body: Incoming) -> impl io::Read + Send + 'static {
    let stream = BodyStream::new(body).filter_map(|f| async move {
        match f {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(io::Error::other(e))),
        }
    });
    let reader = tokio_util::io::StreamReader::new(Box::pin(stream));
    tokio_util::io::SyncIoBridge::new(reader)
}

/// The producing end of a streamed response body; blocking writes (from
/// library code in [`blocking`]) wait while the client is slow, and fail
/// with `BrokenPipe` once it went away, which ends the operation.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<Bytes>,
}

impl Sink {
    pub fn send_blocking(&self, b: Bytes) -> io::Result<()> {
        self.tx
            .blocking_send(b)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
    pub async fn send(&self, b: Bytes) -> io::Result<()> {
        self.tx
            .send(b)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
    /// One JSON object and a newline (docker's progress and event streams).
    pub fn json_line(&self, v: &serde_json::Value) -> io::Result<()> {
        let mut data = serde_json::to_vec(v).expect("plain data serializes");
        data.push(b'\n');
        self.send_blocking(data.into())
    }
    pub fn closed(&self) -> bool {
        self.tx.is_closed()
    }
    /// Resolves when the client has gone away.
    pub async fn tx_closed(&self) {
        self.tx.closed().await
    }
}

impl io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !buf.is_empty() {
            self.send_blocking(Bytes::copy_from_slice(buf))?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A streamed body and the [`Sink`] that feeds it.
pub fn channel() -> (Sink, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_DEPTH);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, io::Error>(Frame::data(b)), rx))
    });
    (Sink { tx }, StreamBody::new(stream).boxed_unsync())
}

/// A streamed 200 response of `content_type`.
pub fn streamed(content_type: &'static str) -> (Sink, Resp) {
    let (sink, body) = channel();
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    (sink, r)
}

/// docker's stream framing (`stdcopy`): each write goes out as one frame
/// of `[stream, 0, 0, 0, len (u32 BE)]` and the bytes, stream 1 stdout, 2
/// stderr; `stream == 0` writes the bytes raw (a tty's one stream).
pub struct Mux<W> {
    pub out: W,
    pub stream: u8,
}

impl<W: io::Write> io::Write for Mux<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.stream == 0 {
            self.out.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut frame = Vec::with_capacity(8 + buf.len());
        frame.extend_from_slice(&[self.stream, 0, 0, 0]);
        frame.extend_from_slice(&(buf.len() as u32).to_be_bytes());
        frame.extend_from_slice(buf);
        self.out.write_all(&frame)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The connection to take over after the response, when the client asked
/// to upgrade it (`Upgrade: tcp`); taken before the body is read.
pub fn upgrade_of(req: &mut Request<Incoming>) -> Option<OnUpgrade> {
    req.headers()
        .contains_key(UPGRADE)
        .then(|| hyper::upgrade::on(req))
}

/// The client's bytes on a hijacked connection (none without an upgrade).
pub type Input = Box<dyn AsyncRead + Send + Unpin>;

/// Answers a request for a raw stream: when the client asked to upgrade
/// (`Upgrade: tcp`, as the docker CLI and SDKs do), `101 UPGRADED` and the
/// connection itself; otherwise a streamed 200 body (and no input). `run`
/// gets the client's input and a [`Sink`] to the connection once the
/// response is out; the connection is closed when every clone of the sink
/// is dropped.
pub fn hijack<F, Fut>(upgrade: Option<OnUpgrade>, content_type: &'static str, run: F) -> Resp
where
    F: FnOnce(Input, Sink) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(on) = upgrade else {
        let (sink, resp) = streamed(content_type);
        tokio::spawn(run(Box::new(tokio::io::empty()), sink));
        return resp;
    };
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        let Ok(up) = on.await else { return };
        let io = hyper_util::rt::TokioIo::new(up);
        let (r, mut w) = tokio::io::split(io);
        let (tx, mut rx) = mpsc::channel::<Bytes>(STREAM_DEPTH);
        tokio::spawn(run(Box::new(r), Sink { tx }));
        while let Some(b) = rx.recv().await {
            if w.write_all(&b).await.is_err() || w.flush().await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    });
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
