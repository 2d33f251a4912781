//! TLS (CA + client certificate) with htpasswd, and token auth.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::image::TestImage;
use common::token::TokenServer;
use common::{fast_options, Auth, Registry, Tls};
use registry_client::{
    Client, ClientOptions, Credentials, DockerConfig, Error, Reference, Repository,
    StaticCredentials,
};

fn tls_client(reg: &Registry, creds: Option<Credentials>) -> Client {
    let tls = reg.tls.as_ref().unwrap();
    let mut store = StaticCredentials::new();
    if let Some(c) = creds {
        store = store.with(reg.host(), c);
    }
    Client::new(ClientOptions {
        credentials: Some(Arc::new(store)),
        cert_dir: Some(tls.client_dir.clone()),
        ..fast_options()
    })
}

fn htpasswd_registry() -> Registry {
    Registry::start(
        Tls::ClientCerts,
        Auth::Htpasswd {
            user: "alice".into(),
            password: "wonderland".into(),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_cert_and_basic_auth() {
    let reg = htpasswd_registry();
    let client = tls_client(&reg, Some(Credentials::new("alice", "wonderland")));
    client.check_login(&reg.host()).await.unwrap();
    let repo = Repository::new(reg.host(), "secure/app").unwrap();
    let img = TestImage::new("amd64", &[50_000]);
    img.push(&client, &repo, "v1").await;
    let r: Reference = format!("{}/secure/app:v1", reg.host()).parse().unwrap();
    let m = client.get_manifest(&r).await.unwrap();
    assert_eq!(m.digest, img.digest);
    let mut out = Vec::new();
    client
        .pull_blob(&repo, &img.layers[0].digest, None, &mut out)
        .await
        .unwrap();
    assert_eq!(out, img.layers[0].data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_d_layout_is_found_by_host_and_port() {
    let reg = htpasswd_registry();
    let tls = reg.tls.as_ref().unwrap();
    let root = tempfile::tempdir().unwrap();
    let host_dir = root.path().join(reg.host());
    std::fs::create_dir_all(&host_dir).unwrap();
    for f in ["ca.crt", "client.cert", "client.key"] {
        std::fs::copy(tls.client_dir.join(f), host_dir.join(f)).unwrap();
    }
    let client = Client::new(ClientOptions {
        credentials: Some(Arc::new(
            StaticCredentials::new().with(reg.host(), Credentials::new("alice", "wonderland")),
        )),
        certs_d_roots: vec![root.path().to_path_buf()],
        ..fast_options()
    });
    client.check_login(&reg.host()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_names_the_registry() {
    let reg = htpasswd_registry();
    let client = tls_client(&reg, Some(Credentials::new("alice", "not-the-password")));
    let e = client.check_login(&reg.host()).await.unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "unauthorized: authentication required for {}",
            reg.host()
        )),
        "{msg}"
    );
    assert!(!msg.contains("not-the-password") && !format!("{e:?}").contains("not-the-password"));
    let r: Reference = format!("{}/secure/app:v1", reg.host()).parse().unwrap();
    let e = client.get_manifest(&r).await.unwrap_err();
    assert!(e.to_string().contains("unauthorized"), "{e}");
    // And with no credentials at all.
    let anon = tls_client(&reg, None);
    let e = anon.get_manifest(&r).await.unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("authentication required for {}", reg.host())),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_refuses_unknown_ca_and_missing_client_cert() {
    let reg = htpasswd_registry();
    let creds = Arc::new(
        StaticCredentials::new().with(reg.host(), Credentials::new("alice", "wonderland")),
    );
    // System roots only: the test CA is unknown.
    let client = Client::new(ClientOptions {
        credentials: Some(creds.clone()),
        ..fast_options()
    });
    let e = client.check_login(&reg.host()).await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    // The CA but no client certificate: the server requires one.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        reg.tls.as_ref().unwrap().client_dir.join("ca.crt"),
        dir.path().join("ca.crt"),
    )
    .unwrap();
    let client = Client::new(ClientOptions {
        credentials: Some(creds.clone()),
        cert_dir: Some(dir.path().to_path_buf()),
        ..fast_options()
    });
    assert!(client.check_login(&reg.host()).await.is_err());
    // A .cert without its .key is a configuration error, not a silent skip.
    std::fs::copy(
        reg.tls.as_ref().unwrap().client_dir.join("client.cert"),
        dir.path().join("client.cert"),
    )
    .unwrap();
    let client = Client::new(ClientOptions {
        credentials: Some(creds),
        cert_dir: Some(dir.path().to_path_buf()),
        ..fast_options()
    });
    let e = client.check_login(&reg.host()).await.unwrap_err();
    assert!(matches!(e, Error::Tls { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_push_pull_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TokenServer::start(dir.path(), "bob", "builder");
    let reg = Registry::start(Tls::Off, Auth::Token(ts.config.clone()));
    // Credentials read from a docker config.json, as `kiln login` writes it.
    let cfg_path = dir.path().join("docker").join("config.json");
    let mut cfg = DockerConfig::load(Some(&cfg_path)).unwrap();
    cfg.store(&reg.host(), &Credentials::new("bob", "builder"))
        .unwrap();
    let cfg = DockerConfig::load(Some(&cfg_path)).unwrap();
    let client = Client::new(ClientOptions {
        credentials: Some(Arc::new(cfg)),
        tls_verify: false,
        ..fast_options()
    });
    client.check_login(&reg.host()).await.unwrap();
    let repo = Repository::new(reg.host(), "team/app").unwrap();
    let img = TestImage::new("amd64", &[10_000, 20_000, 30_000]);
    img.push(&client, &repo, "v1").await;
    // One push scope token served every blob and the manifest.
    let after_push = ts.requests.load(Ordering::SeqCst);
    assert!(after_push <= 3, "token requests: {after_push}");
    let img2 = TestImage::new("amd64", &[1000]);
    img2.push(&client, &repo, "v2").await;
    assert_eq!(
        ts.requests.load(Ordering::SeqCst),
        after_push,
        "cached token reused"
    );

    // Cross-repository mount needs pull on the source and push on the target.
    let other = Repository::new(reg.host(), "team/other").unwrap();
    let l = &img.layers[2];
    let o = client
        .push_blob(
            &other,
            &l.digest,
            l.data.len() as u64,
            &registry_client::BlobSource::Bytes(l.data.clone().into()),
            Some(&repo),
        )
        .await
        .unwrap();
    assert_eq!(o, registry_client::PushOutcome::Mounted);

    // Anonymous clients get pull-only tokens.
    let anon = Client::new(ClientOptions {
        tls_verify: false,
        ..fast_options()
    });
    let r: Reference = format!("{}/team/app:v1", reg.host()).parse().unwrap();
    let m = anon.get_manifest(&r).await.unwrap();
    assert_eq!(m.digest, img.digest);
    let mut out = Vec::new();
    anon.pull_blob(&repo, &img.layers[1].digest, None, &mut out)
        .await
        .unwrap();
    assert_eq!(out, img.layers[1].data);
    let e = anon
        .put_manifest(
            &repo,
            "v3",
            registry_client::manifest::OCI_MANIFEST,
            &img.manifest,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains(&reg.host()), "{e}");

    // Wrong password: the token server refuses, the error names the registry.
    let bad = Client::new(ClientOptions {
        credentials: Some(Arc::new(
            StaticCredentials::new().with(reg.host(), Credentials::new("bob", "wrong")),
        )),
        tls_verify: false,
        ..fast_options()
    });
    let e = bad.get_manifest(&r).await.unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "unauthorized: authentication required for {}",
            reg.host()
        )),
        "{e}"
    );
    assert!(bad.check_login(&reg.host()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_fetch_is_shared_and_identity_tokens_work() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TokenServer::start(dir.path(), "carol", "pw");
    let reg = Registry::start(Tls::Off, Auth::Token(ts.config.clone()));
    // docker stores an identity token as user "<token>".
    let client = Client::new(ClientOptions {
        credentials: Some(Arc::new(StaticCredentials::new().with(
            reg.host(),
            Credentials::new("<token>", common::token::refresh_token("pw")),
        ))),
        tls_verify: false,
        ..fast_options()
    });
    let repo = Repository::new(reg.host(), "team/par").unwrap();
    let img = TestImage::new("amd64", &[1000, 2000, 3000, 4000, 5000]);
    img.push(&client, &repo, "v1").await;

    // A fresh anonymous client pulling five blobs at once asks for one token.
    let anon = Client::new(ClientOptions {
        tls_verify: false,
        ..fast_options()
    });
    let before = ts.requests.load(Ordering::SeqCst);
    let tasks: Vec<_> = img
        .layers
        .iter()
        .map(|l| {
            let (anon, repo, digest) = (anon.clone(), repo.clone(), l.digest.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                anon.pull_blob(&repo, &digest, None, &mut out)
                    .await
                    .map(|_| out)
            })
        })
        .collect();
    for (t, l) in tasks.into_iter().zip(&img.layers) {
        assert_eq!(t.await.unwrap().unwrap(), l.data);
    }
    assert_eq!(ts.requests.load(Ordering::SeqCst) - before, 1);

    // A bad refresh token is refused with the registry named.
    let bad = Client::new(ClientOptions {
        credentials: Some(Arc::new(
            StaticCredentials::new().with(reg.host(), Credentials::new("<token>", "stale")),
        )),
        tls_verify: false,
        ..fast_options()
    });
    let e = bad.check_login(&reg.host()).await.unwrap_err();
    assert!(
        e.to_string().contains(&format!("for {}", reg.host())),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verify_off_accepts_an_unknown_ca() {
    let reg = htpasswd_registry();
    let tls = reg.tls.as_ref().unwrap();
    // Client certificate only: the server's CA stays unknown.
    let dir = tempfile::tempdir().unwrap();
    for f in ["client.cert", "client.key"] {
        std::fs::copy(tls.client_dir.join(f), dir.path().join(f)).unwrap();
    }
    let opts = |tls_verify: bool| ClientOptions {
        credentials: Some(Arc::new(
            StaticCredentials::new().with(reg.host(), Credentials::new("alice", "wonderland")),
        )),
        cert_dir: Some(dir.path().to_path_buf()),
        tls_verify,
        ..fast_options()
    };
    assert!(Client::new(opts(true))
        .check_login(&reg.host())
        .await
        .is_err());
    let client = Client::new(opts(false));
    client.check_login(&reg.host()).await.unwrap();
    let repo = Repository::new(reg.host(), "insecure/app").unwrap();
    TestImage::new("amd64", &[777])
        .push(&client, &repo, "v1")
        .await;
}
