//! A test CA, a server certificate for 127.0.0.1 and localhost, and a
//! client certificate, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};

pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A directory holding only `ca.crt`: a client's `--cert-dir` that
    /// trusts the server and has no certificate of its own.
    pub ca_dir: PathBuf,
    /// A directory laid out like `certs.d/HOST/`: ca.crt, client.cert, client.key.
    pub client_dir: PathBuf,
}

impl TlsFiles {
    /// Generates fresh keys and certificates into `dir`.
    pub fn generate(dir: &Path) -> TlsFiles {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kiln test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let srv_key = KeyPair::generate().unwrap();
        let mut srv_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        srv_params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        srv_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let srv = srv_params.signed_by(&srv_key, &ca, &ca_key).unwrap();

        let cli_key = KeyPair::generate().unwrap();
        let mut cli_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        cli_params
            .distinguished_name
            .push(DnType::CommonName, "kiln test client");
        cli_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cli = cli_params.signed_by(&cli_key, &ca, &ca_key).unwrap();

        let w = |name: &str, data: String| {
            let p = dir.join(name);
            std::fs::write(&p, data).unwrap();
            p
        };
        let ca_dir = dir.join("certs");
        std::fs::create_dir_all(&ca_dir).unwrap();
        std::fs::write(ca_dir.join("ca.crt"), ca.pem()).unwrap();
        let client_dir = dir.join("certs.d-host");
        std::fs::create_dir_all(&client_dir).unwrap();
        std::fs::write(client_dir.join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(client_dir.join("client.cert"), cli.pem()).unwrap();
        std::fs::write(client_dir.join("client.key"), cli_key.serialize_pem()).unwrap();
        TlsFiles {
            ca_cert: w("ca.pem", ca.pem()),
            server_cert: w("server.pem", srv.pem()),
            server_key: w("server-key.pem", srv_key.serialize_pem()),
            ca_dir,
            client_dir,
        }
    }
}
