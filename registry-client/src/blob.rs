//! Blobs: existence checks, verified streaming downloads with Range resume,
//! and streaming uploads with cross-repository mount.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Body, Method, StatusCode};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use crate::auth::{pull_scope, push_scope};
use crate::client::{status_error, Client, Host, Replay};
use crate::error::{is_retryable_transport, Error, Result};
use oci_model::digest::Hasher;
use oci_model::{Digest, Repository};

/// Large buffers keep syscalls and task hops few on multi-GB layers.
const IO_BUF: usize = 1 << 20;

/// Opens a fresh reader over a blob's bytes; called again on every retry.
pub type ReaderFactory = Arc<dyn Fn() -> std::io::Result<Box<dyn Read + Send>> + Send + Sync>;

/// The bytes of a blob to upload. Each variant can be re-read from the
/// start, which retries need.
#[derive(Clone)]
pub enum BlobSource {
    File(PathBuf),
    Bytes(Bytes),
    /// A blocking reader, pumped on a blocking thread.
    Reader(ReaderFactory),
}

impl std::fmt::Debug for BlobSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobSource::File(p) => f.debug_tuple("File").field(p).finish(),
            BlobSource::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            BlobSource::Reader(_) => f.write_str("Reader(..)"),
        }
    }
}

type ByteStream = futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>;

impl BlobSource {
    /// A fresh stream over the blob's bytes, in large chunks.
    async fn stream(&self) -> Result<ByteStream> {
        match self {
            BlobSource::Bytes(b) => Ok(futures_util::stream::iter([Ok(b.clone())]).boxed()),
            BlobSource::File(p) => {
                let f = tokio::fs::File::open(p)
                    .await
                    .map_err(|e| Error::io(format!("opening {}", p.display()), e))?;
                Ok(tokio_util::io::ReaderStream::with_capacity(f, IO_BUF).boxed())
            }
            BlobSource::Reader(open) => {
                let mut reader = open().map_err(|e| Error::io("opening blob source", e))?;
                let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
                tokio::task::spawn_blocking(move || loop {
                    let mut buf = vec![0u8; IO_BUF];
                    let item = match reader.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            buf.truncate(n);
                            Ok(Bytes::from(buf))
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => Err(e),
                    };
                    let stop = item.is_err();
                    if tx.blocking_send(item).is_err() || stop {
                        return;
                    }
                });
                Ok(futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                })
                .boxed())
            }
        }
    }

    async fn body(&self) -> Result<Body> {
        match self {
            BlobSource::Bytes(b) => Ok(Body::from(b.clone())),
            _ => Ok(Body::wrap_stream(self.stream().await?)),
        }
    }
}

/// Feeds exactly `len` bytes of `src` into `tx`, keeping any excess of the
/// last piece in `carry` for the next chunk.
async fn pump_chunk(
    src: &mut ByteStream,
    carry: &mut Option<Bytes>,
    len: u64,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) -> std::io::Result<()> {
    let mut sent = 0u64;
    while sent < len {
        let mut piece = match carry.take() {
            Some(b) => b,
            None => match src.next().await {
                Some(r) => r?,
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("blob source ended {} bytes short", len - sent),
                    ))
                }
            },
        };
        let room = (len - sent) as usize;
        if piece.len() > room {
            *carry = Some(piece.split_off(room));
        }
        sent += piece.len() as u64;
        if tx.send(Ok(piece)).await.is_err() {
            // The request ended early; its own error says why.
            return Ok(());
        }
    }
    Ok(())
}

/// What `push_blob` had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The repository already had it (HEAD said so).
    Existed,
    /// Mounted from another repository of the same registry.
    Mounted,
    Uploaded,
}

fn blob_path(repo: &Repository, digest: &Digest) -> String {
    format!("/v2/{}/blobs/{}", repo.name, digest)
}

/// Resolves an upload `Location` (absolute or relative) against the host.
fn resolve_location(host: &Host, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        loc.to_string()
    } else if loc.starts_with('/') {
        format!("{}{}", host.base, loc)
    } else {
        format!("{}/{}", host.base, loc)
    }
}

impl Client {
    /// The blob's size if `repo` has it, `None` if not.
    pub async fn blob_exists(&self, repo: &Repository, digest: &Digest) -> Result<Option<u64>> {
        self.blob_exists_scoped(repo, digest, &[pull_scope(&repo.name)])
            .await
    }

    async fn blob_exists_scoped(
        &self,
        repo: &Repository,
        digest: &Digest,
        scopes: &[String],
    ) -> Result<Option<u64>> {
        let host = self.host(&repo.registry).await?;
        let path = blob_path(repo, digest);
        let resp = self
            .send(&host, Method::HEAD, &path, scopes, Replay::Yes, |r| r)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error(&repo.registry, "HEAD", &path, resp).await),
        }
    }

    /// Streams a blob into `out`, hashing as it goes, and returns its size.
    ///
    /// A connection that breaks mid-blob is resumed with `Range: bytes=N-`,
    /// continuing the same hash. On `Err` (a digest or size mismatch
    /// included) `out` may already hold bytes that must be discarded: write
    /// to a temporary file and rename it into place only on `Ok`.
    pub async fn pull_blob<W>(
        &self,
        repo: &Repository,
        digest: &Digest,
        expected_size: Option<u64>,
        out: &mut W,
    ) -> Result<u64>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let host = self.host(&repo.registry).await?;
        let path = blob_path(repo, digest);
        let what = format!("blob {digest}");
        let scopes = [pull_scope(&repo.name)];
        let mut out = tokio::io::BufWriter::with_capacity(IO_BUF, out);
        let mut hasher = Hasher::new();
        let mut written: u64 = 0;
        let mut resumes = 0u32;
        let policy = self.inner.opts.retry.clone();
        'fetch: loop {
            let offset = written;
            let resp = self
                .send(&host, Method::GET, &path, &scopes, Replay::Yes, |r| {
                    if offset > 0 {
                        r.header(RANGE, format!("bytes={offset}-"))
                    } else {
                        r
                    }
                })
                .await?;
            // Bytes of this response to drop because we already have them
            // (a server that ignores Range answers 200 from the start).
            let mut skip = match resp.status() {
                StatusCode::OK => offset,
                StatusCode::PARTIAL_CONTENT if offset > 0 => {
                    let start = resp
                        .headers()
                        .get(CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("bytes "))
                        .and_then(|v| v.split('-').next())
                        .and_then(|v| v.parse::<u64>().ok());
                    if start != Some(offset) {
                        return Err(Error::Protocol {
                            registry: repo.registry.clone(),
                            message: format!("{path}: asked for bytes from {offset}, got Content-Range {start:?}"),
                        });
                    }
                    0
                }
                _ => return Err(status_error(&repo.registry, "GET", &path, resp).await),
            };
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let mut chunk = match chunk {
                    Ok(c) => c,
                    // Everything arrived; only the connection's end was untidy.
                    Err(_) if expected_size == Some(written) && written > 0 => break,
                    Err(e) if is_retryable_transport(&e) && resumes + 1 < policy.max_attempts => {
                        tracing::debug!(%digest, written, error = %e, "blob download broke, resuming");
                        tokio::time::sleep(policy.backoff(resumes)).await;
                        resumes += 1;
                        continue 'fetch;
                    }
                    Err(source) => {
                        return Err(Error::Transport {
                            registry: repo.registry.clone(),
                            context: format!("reading {what} at byte {written}"),
                            source: source.without_url(),
                        })
                    }
                };
                if skip > 0 {
                    let n = skip.min(chunk.len() as u64) as usize;
                    let _ = chunk.split_to(n);
                    skip -= n as u64;
                    if chunk.is_empty() {
                        continue;
                    }
                }
                written += chunk.len() as u64;
                if let Some(max) = expected_size {
                    if written > max {
                        return Err(Error::SizeMismatch {
                            what,
                            expected: max,
                            actual: written,
                        });
                    }
                }
                hasher.update(&chunk);
                out.write_all(&chunk)
                    .await
                    .map_err(|e| Error::io(format!("writing {what}"), e))?;
            }
            break;
        }
        out.flush()
            .await
            .map_err(|e| Error::io(format!("writing {what}"), e))?;
        if let Some(size) = expected_size {
            if written != size {
                return Err(Error::SizeMismatch {
                    what,
                    expected: size,
                    actual: written,
                });
            }
        }
        Error::check_digest(&what, digest, &hasher.finish().0)?;
        Ok(written)
    }

    /// Makes sure `repo` has the blob: HEAD first, then a cross-repository
    /// mount from `mount_from` (same registry) if given, else an upload of
    /// `source` (POST, then one streaming PUT). Whole sessions are retried,
    /// re-opening `source` each time.
    pub async fn push_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        source: &BlobSource,
        mount_from: Option<&Repository>,
    ) -> Result<PushOutcome> {
        let mut scopes = vec![push_scope(&repo.name)];
        if self
            .blob_exists_scoped(repo, digest, &scopes)
            .await?
            .is_some()
        {
            return Ok(PushOutcome::Existed);
        }
        let host = self.host(&repo.registry).await?;
        let mount_from = mount_from.filter(|m| m.registry == repo.registry && m.name != repo.name);
        if let Some(m) = mount_from {
            scopes.push(pull_scope(&m.name));
        }
        let policy = self.inner.opts.retry.clone();
        let mut attempt = 0;
        loop {
            match self
                .upload_once(&host, repo, digest, size, source, mount_from, &scopes)
                .await
            {
                Err(e) if e.is_retryable() && attempt + 1 < policy.max_attempts => {
                    tracing::debug!(%digest, error = %e, "blob upload failed, retrying");
                    tokio::time::sleep(policy.backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_once(
        &self,
        host: &Host,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        source: &BlobSource,
        mount_from: Option<&Repository>,
        scopes: &[String],
    ) -> Result<PushOutcome> {
        let mut start = format!("/v2/{}/blobs/uploads/", repo.name);
        if let Some(m) = mount_from {
            start.push_str(&format!("?mount={digest}&from={}", m.name));
        }
        let resp = self
            .send(host, Method::POST, &start, scopes, Replay::Yes, |r| {
                r.header(CONTENT_LENGTH, "0")
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::CREATED && mount_from.is_some() {
            return Ok(PushOutcome::Mounted);
        }
        if status != StatusCode::ACCEPTED {
            return Err(status_error(&repo.registry, "POST", &start, resp).await);
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| resolve_location(host, l))
            .ok_or_else(|| Error::Protocol {
                registry: repo.registry.clone(),
                message: format!("POST {start}: 202 without Location"),
            })?;
        let (location, body) = match self.inner.opts.upload_chunk_size {
            Some(chunk) if chunk > 0 => {
                let loc = self
                    .upload_chunks(host, repo, location, size, chunk, source, scopes)
                    .await?;
                (loc, Body::from(Bytes::new()))
            }
            _ => (location, source.body().await?),
        };
        let put_size = if self.inner.opts.upload_chunk_size.unwrap_or(0) > 0 {
            0
        } else {
            size
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{sep}digest={digest}");
        let body = std::sync::Mutex::new(Some(body));
        let resp = self
            .send(host, Method::PUT, &put_url, scopes, Replay::No, |r| {
                let r = r
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, put_size.to_string());
                match body.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    Some(b) => r.body(b),
                    None => r,
                }
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(
                &repo.registry,
                "PUT",
                &format!("/v2/{}/blobs/uploads/", repo.name),
                resp,
            )
            .await);
        }
        Ok(PushOutcome::Uploaded)
    }

    /// Sends the blob as `PATCH` requests of `chunk` bytes each, every one
    /// streamed, and returns the Location for the closing `PUT`.
    #[allow(clippy::too_many_arguments)]
    async fn upload_chunks(
        &self,
        host: &Host,
        repo: &Repository,
        mut location: String,
        size: u64,
        chunk: u64,
        source: &BlobSource,
        scopes: &[String],
    ) -> Result<String> {
        let mut src = source.stream().await?;
        let mut carry = None;
        let mut offset = 0u64;
        let what = format!("/v2/{}/blobs/uploads/", repo.name);
        while offset < size {
            let len = chunk.min(size - offset);
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            let body = std::sync::Mutex::new(Some(Body::wrap_stream(stream)));
            let request = self.send(host, Method::PATCH, &location, scopes, Replay::No, |r| {
                let r = r
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, len.to_string())
                    .header(CONTENT_RANGE, format!("{}-{}", offset, offset + len - 1));
                match body.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    Some(b) => r.body(b),
                    None => r,
                }
            });
            let (pumped, resp) = tokio::join!(pump_chunk(&mut src, &mut carry, len, tx), request);
            pumped.map_err(|e| Error::io("reading blob source", e))?;
            let resp = resp?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(status_error(&repo.registry, "PATCH", &what, resp).await);
            }
            location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| resolve_location(host, l))
                .ok_or_else(|| Error::Protocol {
                    registry: repo.registry.clone(),
                    message: format!("PATCH {what}: 202 without Location"),
                })?;
            offset += len;
        }
        Ok(location)
    }
}

/// Adapts a blocking `std::io::Write` (e.g. a store's temp-file writer) to
/// the `AsyncWrite` that [`Client::pull_blob`] takes. Each write runs inline
/// on the async worker: fine for local files (page-cache writes, and
/// `pull_blob` hands over 1 MiB at a time), not for slow sinks.
pub struct BlockingWrite<W>(pub W);

impl<W: std::io::Write + Unpin> AsyncWrite for BlockingWrite<W> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(self.get_mut().0.write(buf))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(self.get_mut().0.flush())
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}
