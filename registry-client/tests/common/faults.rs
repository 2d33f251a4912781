//! A fault-injecting HTTP/1.1 proxy for loopback tests. Each client
//! connection carries one request (responses are rewritten to
//! `Connection: close`), so every request passes through the rules.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and `Retry-After: 1` for 429) without
    /// contacting the registry.
    Status(u16),
    /// Forward, but drop the connection after this many response-body bytes.
    CutAfter(usize),
    /// Forward, flipping the response-body byte at this offset.
    FlipByte(usize),
    /// Forward without the request's `Range` header, like a server that
    /// ignores ranges and answers 200 with the whole body.
    StripRange,
    /// Reset the connection (RST) without answering.
    Reset,
}

pub struct Rule {
    pub method: &'static str,
    pub path_contains: String,
    pub fault: Fault,
    /// How many matching requests get the fault.
    pub times: usize,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// (method, path, headers-lowercased) of every request seen.
    log: Vec<(String, String, String)>,
}

pub struct FaultProxy {
    pub port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    pub async fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = handle(sock, upstream_port, st).await;
                });
            }
        });
        FaultProxy { port, state, task }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn add(&self, method: &'static str, path_contains: &str, fault: Fault, times: usize) {
        self.state.lock().unwrap().rules.push(Rule {
            method,
            path_contains: path_contains.to_string(),
            fault,
            times,
        });
    }

    /// Requests seen whose method matches and whose path contains `part`.
    pub fn count(&self, method: &str, part: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|(m, p, _)| m == method && p.contains(part))
            .count()
    }

    /// Header blocks (lowercased) of matching requests.
    pub fn headers(&self, method: &str, part: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|(m, p, _)| m == method && p.contains(part))
            .map(|x| x.2.clone())
            .collect()
    }
}

async fn read_head(sock: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok(Some((buf, rest)));
        }
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// Replaces any Connection header with `Connection: close`.
fn force_close(head: &[u8]) -> Vec<u8> {
    rewrite_head(head, false)
}

fn rewrite_head(head: &[u8], strip_range: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.trim_end_matches("\r\n\r\n").split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") || (strip_range && lower.starts_with("range:")) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

async fn handle(
    mut client: TcpStream,
    upstream_port: u16,
    state: Arc<Mutex<State>>,
) -> std::io::Result<()> {
    // Clients probing HTTPS first send a TLS ClientHello: this proxy speaks
    // plain HTTP only, so refuse it at once like a non-TLS server would.
    let mut first_byte = [0u8; 1];
    if client.peek(&mut first_byte).await? == 0 || first_byte[0] == 0x16 {
        return Ok(());
    }
    let Some((head, early_body)) = read_head(&mut client).await? else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&head).to_string();
    let mut first = text.split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let fault = {
        let mut st = state.lock().unwrap();
        st.log
            .push((method.clone(), path.clone(), text.to_ascii_lowercase()));
        let rule = st
            .rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method && path.contains(&r.path_contains));
        rule.map(|r| {
            r.times -= 1;
            r.fault.clone()
        })
    };
    if let Some(Fault::Reset) = fault {
        // Linger 0 turns the close into a TCP reset.
        client.set_zero_linger()?;
        drop(client);
        return Ok(());
    }
    if let Some(Fault::Status(code)) = fault {
        let extra = if code == 429 {
            "Retry-After: 1\r\n"
        } else {
            ""
        };
        let body = r#"{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}"#;
        let resp = format!(
            "HTTP/1.1 {code} Injected\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        client.write_all(resp.as_bytes()).await?;
        return client.shutdown().await;
    }
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port)).await?;
    upstream
        .write_all(&rewrite_head(
            &head,
            matches!(fault, Some(Fault::StripRange)),
        ))
        .await?;
    upstream.write_all(&early_body).await?;
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    // The request body (if any) flows on untouched.
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut uw).await;
    });
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 256 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w: &[u8]| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = ur.read(&mut tmp).await?;
        if n == 0 {
            up.abort();
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let body_start = buf.split_off(head_end);
    cw.write_all(&force_close(&buf)).await?;
    let mut body_seen = 0usize;
    let mut chunk = body_start;
    loop {
        match &fault {
            Some(Fault::CutAfter(n)) if body_seen + chunk.len() > *n => {
                let keep = n - body_seen;
                cw.write_all(&chunk[..keep]).await?;
                cw.flush().await?;
                // Drop both halves without a clean shutdown: a broken transfer.
                up.abort();
                return Ok(());
            }
            Some(Fault::FlipByte(k)) if *k >= body_seen && *k < body_seen + chunk.len() => {
                chunk[k - body_seen] ^= 0xff;
            }
            _ => {}
        }
        body_seen += chunk.len();
        cw.write_all(&chunk).await?;
        let n = ur.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        chunk = tmp[..n].to_vec();
    }
    cw.shutdown().await?;
    up.abort();
    Ok(())
}
