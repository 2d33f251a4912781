//! Push and pull against a real plain-HTTP `docker-registry`.

mod common;

use std::process::Command;

use common::faults::FaultProxy;
use common::image::{index_of, random_bytes, Blob, TestImage};
use common::{insecure_client, Registry};
use registry_client::manifest::{is_index, OCI_INDEX, OCI_MANIFEST};
use registry_client::{
    select_platform, BlobSource, Error, Platform, PushOutcome, Reference, Repository,
};

fn reference(host: &str, repo: &str, tag: &str) -> Reference {
    format!("{host}/{repo}:{tag}").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_verifies_every_digest() {
    let reg = Registry::plain();
    let client = insecure_client();
    let repo = Repository::new(reg.host(), "kiln/app").unwrap();
    let img = TestImage::new("amd64", &[300_000, 5_000, 1]);
    let outcomes = img.push(&client, &repo, "v1").await;
    assert!(
        outcomes.iter().all(|o| *o == PushOutcome::Uploaded),
        "{outcomes:?}"
    );

    let m = client
        .get_manifest(&reference(&reg.host(), "kiln/app", "v1"))
        .await
        .unwrap();
    assert_eq!(m.media_type, OCI_MANIFEST);
    assert_eq!(m.digest, img.digest);
    assert_eq!(m.bytes, img.manifest);

    // Fetch the blobs the manifest names, several at once on clones of one client.
    let doc: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    let mut descs = vec![doc["config"].clone()];
    descs.extend(doc["layers"].as_array().unwrap().iter().cloned());
    let tasks: Vec<_> = descs
        .into_iter()
        .map(|d| {
            let client = client.clone();
            let repo = repo.clone();
            tokio::spawn(async move {
                let digest = d["digest"].as_str().unwrap().parse().unwrap();
                let mut out: Vec<u8> = Vec::new();
                let n = client
                    .pull_blob(&repo, &digest, d["size"].as_u64(), &mut out)
                    .await
                    .unwrap();
                assert_eq!(n as usize, out.len());
                (digest, out)
            })
        })
        .collect();
    for t in tasks {
        let (digest, data) = t.await.unwrap();
        let expected = img.blobs().find(|b| b.digest == digest).unwrap();
        assert_eq!(data, expected.data);
    }

    // By digest too.
    let by_digest: Reference = format!("{}/kiln/app@{}", reg.host(), img.digest)
        .parse()
        .unwrap();
    assert_eq!(
        client.get_manifest(&by_digest).await.unwrap().bytes,
        img.manifest
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_reads_what_we_pushed() {
    let reg = Registry::plain();
    let client = insecure_client();
    let repo = Repository::new(reg.host(), "skopeo/check").unwrap();
    let img = TestImage::new("amd64", &[10_000, 20_000]);
    img.push(&client, &repo, "latest").await;
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}/skopeo/check:latest", reg.host()))
        .output()
        .expect("cannot run skopeo: apt-get install skopeo");
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], img.digest.to_string());
    let layers: Vec<String> = img.layers.iter().map(|l| l.digest.to_string()).collect();
    assert_eq!(v["Layers"], serde_json::json!(layers));
    assert_eq!(v["Architecture"], "amd64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_skips_existing_blobs_and_mount_crosses_repositories() {
    let reg = Registry::plain();
    let proxy = FaultProxy::start(reg.port).await;
    let client = insecure_client();
    let repo = Repository::new(proxy.host(), "one/app").unwrap();
    let img = TestImage::new("amd64", &[4096, 8192]);
    img.push(&client, &repo, "v1").await;
    let uploads = proxy.count("PUT", "/blobs/uploads/");
    assert_eq!(uploads, 3);

    let again = img.push(&client, &repo, "v2").await;
    assert!(
        again.iter().all(|o| *o == PushOutcome::Existed),
        "{again:?}"
    );
    assert_eq!(
        proxy.count("PUT", "/blobs/uploads/"),
        uploads,
        "no new uploads"
    );
    assert_eq!(proxy.count("POST", "/blobs/uploads/"), 3);

    let other = Repository::new(proxy.host(), "two/app").unwrap();
    let layer = &img.layers[0];
    assert_eq!(
        client.blob_exists(&other, &layer.digest).await.unwrap(),
        None
    );
    let o = client
        .push_blob(
            &other,
            &layer.digest,
            layer.data.len() as u64,
            &BlobSource::Bytes(layer.data.clone().into()),
            Some(&repo),
        )
        .await
        .unwrap();
    assert_eq!(o, PushOutcome::Mounted);
    assert_eq!(proxy.count("POST", "mount="), 1);
    assert_eq!(
        proxy.count("PUT", "/blobs/uploads/"),
        uploads,
        "mount uploads nothing"
    );
    assert_eq!(
        client.blob_exists(&other, &layer.digest).await.unwrap(),
        Some(layer.data.len() as u64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_from_file_and_reader_sources() {
    let reg = Registry::plain();
    let client = insecure_client();
    let repo = Repository::new(reg.host(), "src/kinds").unwrap();
    let dir = tempfile::tempdir().unwrap();

    let a = Blob::new(random_bytes(3 * 1024 * 1024 + 17), "x");
    let path = dir.path().join("a");
    std::fs::write(&path, &a.data).unwrap();
    let o = client
        .push_blob(
            &repo,
            &a.digest,
            a.data.len() as u64,
            &BlobSource::File(path),
            None,
        )
        .await
        .unwrap();
    assert_eq!(o, PushOutcome::Uploaded);

    let b = Blob::new(random_bytes(2 * 1024 * 1024 + 5), "x");
    let data = std::sync::Arc::new(b.data.clone());
    let factory: registry_client::ReaderFactory = std::sync::Arc::new(move || {
        Ok(Box::new(std::io::Cursor::new(data.as_ref().clone())) as Box<dyn std::io::Read + Send>)
    });
    let o = client
        .push_blob(
            &repo,
            &b.digest,
            b.data.len() as u64,
            &BlobSource::Reader(factory),
            None,
        )
        .await
        .unwrap();
    assert_eq!(o, PushOutcome::Uploaded);

    for blob in [&a, &b] {
        let out_path = dir.path().join("out");
        let mut f = tokio::fs::File::create(&out_path).await.unwrap();
        client
            .pull_blob(&repo, &blob.digest, None, &mut f)
            .await
            .unwrap();
        drop(f);
        assert_eq!(std::fs::read(&out_path).unwrap(), blob.data);
    }

    // A digest the content does not hash to is refused by the registry.
    let wrong = Blob::new(b"other".to_vec(), "x");
    let e = client
        .push_blob(
            &repo,
            &wrong.digest,
            3,
            &BlobSource::Bytes(b"abc"[..].into()),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert!(e.registry_codes().contains(&"DIGEST_INVALID"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_list_chooses_the_platform() {
    let reg = Registry::plain();
    let client = insecure_client();
    let repo = Repository::new(reg.host(), "multi/arch").unwrap();
    let amd = TestImage::new("amd64", &[1000]);
    let arm = TestImage::new("arm64", &[2000]);
    amd.push(&client, &repo, "amd").await;
    arm.push(&client, &repo, "arm").await;
    let index = index_of(&[(&amd, "amd64", None), (&arm, "arm64", Some("v8"))]);
    client
        .put_manifest(&repo, "multi", OCI_INDEX, &index)
        .await
        .unwrap();

    let m = client
        .get_manifest(&reference(&reg.host(), "multi/arch", "multi"))
        .await
        .unwrap();
    assert!(is_index(&m.media_type), "{}", m.media_type);
    let want: Platform = "linux/arm64".parse().unwrap();
    let d = select_platform(&m.bytes, &want).unwrap();
    assert_eq!(d.digest.to_string(), arm.digest.to_string());
    let d = select_platform(&m.bytes, &"linux/x86_64".parse().unwrap()).unwrap();
    assert_eq!(d.digest.to_string(), amd.digest.to_string());
    let chosen: Reference = format!("{}/multi/arch@{}", reg.host(), arm.digest)
        .parse()
        .unwrap();
    let single = client.get_manifest(&chosen).await.unwrap();
    assert_eq!(single.bytes, arm.manifest);
    let e = select_platform(&m.bytes, &"linux/s390x".parse().unwrap()).unwrap_err();
    assert!(matches!(e, Error::PlatformNotFound { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_things_are_clear_errors() {
    let reg = Registry::plain();
    let client = insecure_client();
    let repo = Repository::new(reg.host(), "nothing/here").unwrap();
    let d = Blob::new(b"nope".to_vec(), "x").digest;
    let mut out = Vec::new();
    let e = client
        .pull_blob(&repo, &d, None, &mut out)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert!(!e.is_retryable());
    assert!(e.to_string().contains(&reg.host()), "{e}");
    let e = client
        .get_manifest(&reference(&reg.host(), "nothing/here", "v9"))
        .await
        .unwrap_err();
    assert!(e.registry_codes().contains(&"MANIFEST_UNKNOWN"), "{e}");
    // Nothing listens here: a transport error naming the registry.
    let dead = common::free_port();
    let r: Reference = format!("127.0.0.1:{dead}/x/y:z").parse().unwrap();
    let e = client.get_manifest(&r).await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{dead}")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_and_blocking_writer() {
    let reg = Registry::plain();
    let proxy = FaultProxy::start(reg.port).await;
    let client = registry_client::Client::new(registry_client::ClientOptions {
        tls_verify: false,
        upload_chunk_size: Some(1024 * 1024),
        ..common::fast_options()
    });
    let repo = Repository::new(proxy.host(), "chunky/app").unwrap();
    let blob = Blob::new(random_bytes(3 * 1024 * 1024 + 100), "x");
    let o = client
        .push_blob(
            &repo,
            &blob.digest,
            blob.data.len() as u64,
            &BlobSource::Bytes(blob.data.clone().into()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(o, PushOutcome::Uploaded);
    assert_eq!(
        proxy.count("PATCH", "/blobs/uploads/"),
        4,
        "3 full chunks and a tail"
    );
    let ranges: Vec<String> = proxy
        .headers("PATCH", "/blobs/uploads/")
        .iter()
        .filter_map(|h| {
            h.lines()
                .find(|l| l.starts_with("content-range:"))
                .map(str::to_string)
        })
        .collect();
    assert_eq!(ranges[1], "content-range: 1048576-2097151");
    assert_eq!(
        ranges[3],
        format!("content-range: 3145728-{}", blob.data.len() - 1)
    );

    // Pull back through a plain std::io::Write.
    let mut sink = registry_client::BlockingWrite(std::io::Cursor::new(Vec::new()));
    client
        .pull_blob(&repo, &blob.digest, Some(blob.data.len() as u64), &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.0.into_inner(), blob.data);

    // A source shorter than announced fails instead of hanging.
    let short = Blob::new(random_bytes(1500 * 1024), "x");
    let e = client
        .push_blob(
            &repo,
            &short.digest,
            2 * 1024 * 1024,
            &BlobSource::Bytes(short.data.clone().into()),
            None,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("short"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_manifest_and_tls_verify_refuses_plain_http() {
    let reg = Registry::plain();
    let client = insecure_client();
    let repo = Repository::new(reg.host(), "head/app").unwrap();
    let img = TestImage::new("amd64", &[100]);
    img.push(&client, &repo, "v1").await;
    let h = client
        .head_manifest(&reference(&reg.host(), "head/app", "v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.digest, img.digest);
    assert_eq!(h.media_type, OCI_MANIFEST);
    assert_eq!(h.size, img.manifest.len() as u64);
    assert_eq!(
        client
            .head_manifest(&reference(&reg.host(), "head/app", "nope"))
            .await
            .unwrap(),
        None
    );
    // With verification on, no silent downgrade to HTTP.
    let strict = registry_client::Client::new(common::fast_options());
    let e = strict
        .head_manifest(&reference(&reg.host(), "head/app", "v1"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    // Unless this registry is listed as insecure.
    let listed = registry_client::Client::new(registry_client::ClientOptions {
        insecure_registries: vec![reg.host()],
        ..common::fast_options()
    });
    assert!(listed
        .head_manifest(&reference(&reg.host(), "head/app", "v1"))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_schema2_and_manifest_list() {
    use registry_client::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST};
    let reg = Registry::plain();
    let client = insecure_client();
    let repo = Repository::new(reg.host(), "docker/style").unwrap();
    let amd = TestImage::docker("amd64", &[3000]);
    let arm = TestImage::docker("arm", &[4000]);
    amd.push(&client, &repo, "amd").await;
    arm.push(&client, &repo, "arm").await;
    let list = index_of(&[(&amd, "amd64", None), (&arm, "arm", Some("v7"))]);
    let list_digest = client
        .put_manifest(&repo, "multi", DOCKER_MANIFEST_LIST, &list)
        .await
        .unwrap();
    let m = client
        .get_manifest(&reference(&reg.host(), "docker/style", "multi"))
        .await
        .unwrap();
    assert_eq!(m.media_type, DOCKER_MANIFEST_LIST);
    assert_eq!(m.digest, list_digest);
    let d = select_platform(&m.bytes, &"linux/arm/v7".parse().unwrap()).unwrap();
    assert_eq!(d.digest.to_string(), arm.digest.to_string());
    let one: Reference = format!("{}/docker/style@{}", reg.host(), d.digest)
        .parse()
        .unwrap();
    let got = client.get_manifest(&one).await.unwrap();
    assert_eq!(got.media_type, DOCKER_MANIFEST);
    assert_eq!(got.bytes, arm.manifest);
    assert!(select_platform(&m.bytes, &"linux/arm/v6".parse().unwrap()).is_err());
    // A Content-Type contradicting the document is caught before sending.
    let e = client
        .put_manifest(&repo, "bad", OCI_MANIFEST, &amd.manifest)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Manifest(_)), "{e}");
}
