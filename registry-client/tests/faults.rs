//! Fault injection between the client and a real registry.

mod common;

use common::faults::{Fault, FaultProxy};
use common::image::TestImage;
use common::{insecure_client, Registry};
use registry_client::{BlobSource, Error, PushOutcome, Reference, Repository};

struct Setup {
    _reg: Registry,
    proxy: FaultProxy,
    repo: Repository,
    img: TestImage,
}

const LAYER: usize = 2 * 1024 * 1024;

async fn setup() -> Setup {
    let reg = Registry::plain();
    let direct = Repository::new(reg.host(), "fault/app").unwrap();
    let img = TestImage::new("amd64", &[LAYER]);
    img.push(&insecure_client(), &direct, "v1").await;
    let proxy = FaultProxy::start(reg.port).await;
    let repo = Repository::new(proxy.host(), "fault/app").unwrap();
    Setup {
        _reg: reg,
        proxy,
        repo,
        img,
    }
}

fn blob_path(s: &Setup) -> String {
    format!("/blobs/{}", s.img.layers[0].digest)
}

async fn pull_layer(s: &Setup) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let l = &s.img.layers[0];
    insecure_client()
        .pull_blob(&s.repo, &l.digest, Some(l.data.len() as u64), &mut out)
        .await
        .map(|_| out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_500_and_429() {
    let s = setup().await;
    let path = blob_path(&s);
    s.proxy.add("GET", &path, Fault::Status(500), 2);
    s.proxy.add("GET", "/manifests/v1", Fault::Status(429), 1);
    s.proxy.add("GET", "/manifests/v1", Fault::Status(503), 1);
    let r: Reference = format!("{}/fault/app:v1", s.proxy.host()).parse().unwrap();
    let started = std::time::Instant::now();
    let m = insecure_client().get_manifest(&r).await.unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(m.digest, s.img.digest);
    assert_eq!(s.proxy.count("GET", "/manifests/v1"), 3);
    assert_eq!(pull_layer(&s).await.unwrap(), s.img.layers[0].data);
    assert_eq!(s.proxy.count("GET", &path), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_5xx_gives_up_with_status() {
    let s = setup().await;
    let path = blob_path(&s);
    s.proxy.add("GET", &path, Fault::Status(502), 100);
    let e = pull_layer(&s).await.unwrap_err();
    assert_eq!(e.status(), Some(502), "{e}");
    assert!(e.is_retryable());
    assert_eq!(s.proxy.count("GET", &path), 5, "max_attempts requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_download_resumes_with_range() {
    let s = setup().await;
    let path = blob_path(&s);
    s.proxy.add("GET", &path, Fault::CutAfter(700_000), 1);
    s.proxy.add("GET", &path, Fault::CutAfter(300_000), 1);
    let data = pull_layer(&s).await.unwrap();
    assert_eq!(data, s.img.layers[0].data);
    let heads = s.proxy.headers("GET", &path);
    assert_eq!(heads.len(), 3, "two resumes");
    assert!(!heads[0].contains("range:"));
    assert!(heads[1].contains("range: bytes=700000-"), "{}", heads[1]);
    assert!(heads[2].contains("range: bytes=1000000-"), "{}", heads[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_cuts_fail_clearly() {
    let s = setup().await;
    let path = blob_path(&s);
    s.proxy.add("GET", &path, Fault::CutAfter(1000), 100);
    let e = pull_layer(&s).await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&s.proxy.host()) && msg.contains("reading blob"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_is_a_digest_error() {
    let s = setup().await;
    let path = blob_path(&s);
    s.proxy.add("GET", &path, Fault::FlipByte(12345), 1);
    let e = pull_layer(&s).await.unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&s.img.layers[0].digest.to_string()),
        "{e}"
    );
    // In a resumed download too.
    s.proxy.add("GET", &path, Fault::CutAfter(50_000), 1);
    s.proxy.add("GET", &path, Fault::FlipByte(1_000_000), 1);
    let e2 = pull_layer(&s).await.unwrap_err();
    assert!(matches!(e2, Error::DigestMismatch { .. }), "{e2:?}");
    assert!(s.proxy.headers("GET", &path)[2].contains("range: bytes=50000-"));
    // And in a manifest fetched by tag (checked against Docker-Content-Digest).
    s.proxy.add("GET", "/manifests/v1", Fault::FlipByte(20), 1);
    let r: Reference = format!("{}/fault/app:v1", s.proxy.host()).parse().unwrap();
    let e = insecure_client().get_manifest(&r).await.unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_retries_whole_session() {
    let s = setup().await;
    let img = TestImage::new("amd64", &[LAYER]);
    let l = &img.layers[0];
    s.proxy
        .add("POST", "/blobs/uploads/", Fault::Status(500), 1);
    s.proxy.add("PUT", "/blobs/uploads/", Fault::Status(503), 1);
    let o = insecure_client()
        .push_blob(
            &s.repo,
            &l.digest,
            l.data.len() as u64,
            &BlobSource::Bytes(l.data.clone().into()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(o, PushOutcome::Uploaded);
    assert_eq!(s.proxy.count("POST", "/blobs/uploads/"), 3);
    assert_eq!(s.proxy.count("PUT", "/blobs/uploads/"), 2);
    let mut out = Vec::new();
    insecure_client()
        .pull_blob(&s.repo, &l.digest, None, &mut out)
        .await
        .unwrap();
    assert_eq!(out, l.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_copes_with_a_server_ignoring_range() {
    let s = setup().await;
    let path = blob_path(&s);
    s.proxy.add("GET", &path, Fault::CutAfter(600_000), 1);
    s.proxy.add("GET", &path, Fault::StripRange, 1);
    let data = pull_layer(&s).await.unwrap();
    assert_eq!(data, s.img.layers[0].data);
    let heads = s.proxy.headers("GET", &path);
    assert_eq!(heads.len(), 2);
    assert!(heads[1].contains("range: bytes=600000-"), "{}", heads[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_are_retried() {
    let s = setup().await;
    s.proxy.add("GET", "/manifests/v1", Fault::Reset, 2);
    s.proxy.add("HEAD", "/blobs/", Fault::Reset, 1);
    let r: Reference = format!("{}/fault/app:v1", s.proxy.host()).parse().unwrap();
    let client = insecure_client();
    assert_eq!(client.get_manifest(&r).await.unwrap().digest, s.img.digest);
    assert_eq!(s.proxy.count("GET", "/manifests/v1"), 3);
    let l = &s.img.layers[0];
    assert_eq!(
        client.blob_exists(&s.repo, &l.digest).await.unwrap(),
        Some(l.data.len() as u64)
    );
}
