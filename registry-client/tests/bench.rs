//! Throughput check against a loopback registry (ignored by default; run
//! `cargo test --release -p registry-client --test bench -- --ignored --nocapture`).
//! Pushes and pulls a ~510 MB image of several layers, blobs in parallel,
//! and prints the times next to skopeo's for the same image.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use common::{insecure_client, Registry};
use registry_client::manifest::OCI_MANIFEST;
use registry_client::{BlobSource, Digest, Reference, Repository};
use sha2::Digest as _;

const LAYERS: usize = 6;
const LAYER_BYTES: usize = 85 * 1024 * 1024;
const PARALLEL: usize = 4;

fn write_layer(path: &PathBuf, seed: u64) -> (Digest, u64) {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut h = sha2::Sha256::new();
    let mut x = seed | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = LAYER_BYTES;
    while left > 0 {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len());
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
    (
        format!("sha256:{}", hex::encode(h.finalize()))
            .parse()
            .unwrap(),
        LAYER_BYTES as u64,
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: writes ~1.5 GB to a temp dir"]
async fn push_pull_510mb() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let layers: Vec<(PathBuf, Digest, u64)> = (0..LAYERS)
        .map(|i| {
            let p = dir.path().join(format!("layer{i}"));
            let (d, n) = write_layer(
                &p,
                0x9e3779b97f4a7c15u64.wrapping_mul(i as u64 + 1) ^ std::process::id() as u64,
            );
            (p, d, n)
        })
        .collect();
    let config =
        serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
        "diff_ids": layers.iter().map(|l| l.1.to_string()).collect::<Vec<_>>()}, "config": {}})
        .to_string()
        .into_bytes();
    let config_digest = Digest::of_bytes(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers.iter().map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l.1.to_string(), "size": l.2})).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();

    let client = insecure_client();
    let repo = Repository::new(reg.host(), "bench/big").unwrap();
    let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (path, digest, size) in layers.clone() {
        let (client, repo, sem) = (client.clone(), repo.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            client
                .push_blob(&repo, &digest, size, &BlobSource::File(path), None)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    client
        .push_blob(
            &repo,
            &config_digest,
            config.len() as u64,
            &BlobSource::Bytes(config.clone().into()),
            None,
        )
        .await
        .unwrap();
    client
        .put_manifest(&repo, "v1", OCI_MANIFEST, &manifest)
        .await
        .unwrap();
    let push = t.elapsed();

    let out = dir.path().join("pulled");
    std::fs::create_dir_all(&out).unwrap();
    let client = insecure_client();
    let t = Instant::now();
    let r: Reference = format!("{}/bench/big:v1", reg.host()).parse().unwrap();
    let m = client.get_manifest(&r).await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    let mut tasks = Vec::new();
    for d in doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&doc["config"]])
    {
        let (client, repo, sem) = (client.clone(), repo.clone(), sem.clone());
        let digest: Digest = d["digest"].as_str().unwrap().parse().unwrap();
        let size = d["size"].as_u64();
        let path = out.join(digest.hex());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let mut f = tokio::fs::File::create(&path).await.unwrap();
            client
                .pull_blob(&repo, &digest, size, &mut f)
                .await
                .unwrap()
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let pull = t.elapsed();
    eprintln!(
        "kiln push {:.2}s, pull {:.2}s ({} MB)",
        push.as_secs_f64(),
        pull.as_secs_f64(),
        total / 1_000_000
    );

    // skopeo on the same registry, for comparison.
    let sk = dir.path().join("skopeo-dir");
    let t = Instant::now();
    let st = std::process::Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{}/bench/big:v1", reg.host()))
        .arg(format!("dir:{}", sk.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let sk_pull = t.elapsed();
    // A fresh registry, so skopeo cannot skip blobs that already exist.
    let reg2 = Registry::plain();
    let t = Instant::now();
    let st = std::process::Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("dir:{}", sk.display()))
        .arg(format!("docker://{}/bench/copy:v1", reg2.host()))
        .status()
        .unwrap();
    assert!(st.success());
    eprintln!(
        "skopeo push {:.2}s, pull {:.2}s",
        t.elapsed().as_secs_f64(),
        sk_pull.as_secs_f64()
    );
}
