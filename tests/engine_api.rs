//! `kiln system service` driven by clients nobody here wrote: the docker
//! CLI (Debian's docker.io, `DOCKER_HOST=unix://…`), the Python SDK
//! (python3-docker), and raw HTTP for the error cases. Containers need
//! root (skipped otherwise, as CI runs as root).

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{require_tool, Kiln, Run};

/// Debian's docker.io CLI (20.10), which `.ci/run` installs; another
/// `docker` earlier in PATH may be newer.
const DOCKER: &str = "/usr/bin/docker";
/// The Python that Debian's python3-docker is installed for.
const PYTHON: &str = "/usr/bin/python3";

/// A server on a socket of its own, stopped (this child only) on drop.
struct Service {
    k: Kiln,
    child: Child,
    sock: PathBuf,
    docker_config: tempfile::TempDir,
}

impl Service {
    fn start(k: Kiln) -> Service {
        let sock = k.dir.path().join("api.sock");
        let child = k
            .cmd()
            .args(["system", "service", "--time", "0"])
            .arg(format!("unix://{}", sock.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn kiln system service");
        common::wait_until("the API socket", Duration::from_secs(20), || {
            UnixStream::connect(&sock).is_ok()
        });
        Service {
            k,
            child,
            sock,
            docker_config: tempfile::tempdir().unwrap(),
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// The environment that points a client at this server.
    fn client_env(&self, c: &mut Command) {
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.docker_config.path())
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("DOCKER_CONTEXT");
    }

    fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(DOCKER);
        self.client_env(&mut c);
        c.args(args).stdin(Stdio::null());
        c
    }

    /// `docker ARGS` given `input`, stopped after two minutes (a client
    /// that waits for an end of input that never comes fails, not hangs).
    fn docker_fed(&self, args: &[&str], input: &[u8]) -> Run {
        let mut c = Command::new("timeout");
        self.client_env(&mut c);
        c.arg("120").arg(DOCKER).args(args);
        feed(c, input)
    }

    /// `shell` (a `sh` script) run on a terminal of its own (util-linux's
    /// `script`), given `input` as typed keys; stopped after two minutes.
    fn on_terminal(&self, shell: &str, input: &[u8]) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("on-terminal.sh");
        std::fs::write(&file, shell).unwrap();
        let mut c = Command::new("timeout");
        self.client_env(&mut c);
        c.args(["120", "script", "-qec"])
            .arg(format!("sh {}", file.display()))
            .arg("/dev/null");
        feed(c, input)
    }

    fn docker(&self, args: &[&str]) -> Run {
        output(self.docker_cmd(args))
    }

    fn docker_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        let mut c = self.docker_cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn docker");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let o = child.wait_with_output().unwrap();
        run_of(o)
    }

    /// One raw HTTP/1.1 request on the socket: (status, body).
    fn raw(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut s = UnixStream::connect(&self.sock).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: kiln\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_of(o: std::process::Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn feed(mut c: Command, input: &[u8]) -> Run {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A client that stops reading (it failed) closes the pipe early.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    run_of(out)
}

fn output(mut c: Command) -> Run {
    run_of(c.output().expect("spawn"))
}

/// Runs a Python script (the Docker SDK's tests) with the system python.
fn python(script: &str) -> Run {
    let mut c = Command::new(PYTHON);
    c.args(["-c", script]);
    output(c)
}

fn setup() -> Option<Service> {
    let k = common::root_store()?;
    require_tool(DOCKER);
    Some(Service::start(k))
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A name no other test (or session) uses.
fn unique(what: &str) -> String {
    format!("api-{}-{what}", std::process::id())
}

#[test]
fn docker_cli_runs_execs_copies_and_removes_containers() {
    let Some(s) = setup() else { return };
    let v = s
        .docker(&["version", "--format", "{{.Server.APIVersion}}"])
        .ok();
    assert_eq!(v.stdout.trim(), "1.41");
    let images = s.docker(&["images"]).ok();
    assert!(images.stdout.contains("busybox"), "{}", images.stdout);

    // Foreground, attached before start: both streams, the exit code.
    let since = chrono_now();
    let fg = unique("fg");
    let r = s
        .docker(&[
            "run",
            "--rm",
            "--name",
            &fg,
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .code(3);
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
    let events = s
        .docker(&[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &(chrono_now() + 1).to_string(),
            "--filter",
            &format!("container={fg}"),
            "--format",
            "{{.Action}} {{.Actor.Attributes.exitCode}}",
        ])
        .ok();
    let actions: Vec<&str> = events
        .stdout
        .lines()
        .map(|l| l.trim_end_matches(" <no value>").trim())
        .collect();
    assert_eq!(
        actions,
        ["create", "start", "die 3", "destroy"],
        "{}",
        events.stdout
    );

    // Detached: ps, logs, exec (with stdin), cp both ways, stop, rm.
    let name = unique("det");
    let id = s
        .docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "busybox",
            "sh",
            "-c",
            "echo started; sleep 60",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ps = s.docker(&["ps"]).ok();
    assert!(
        ps.stdout.contains(&name) && ps.stdout.contains("Up"),
        "{}",
        ps.stdout
    );
    common::wait_until("the log line", Duration::from_secs(20), || {
        s.docker(&["logs", &name]).stdout.contains("started")
    });
    let e = s
        .docker(&["exec", &name, "sh", "-c", "echo in-exec; exit 4"])
        .code(4);
    assert_eq!(e.stdout, "in-exec\n");
    let top = s.docker(&["top", &name]).ok();
    assert!(
        top.stdout.contains("PID") && top.stdout.contains("sleep 60"),
        "{}",
        top.stdout
    );
    let piped = s
        .docker_stdin(&["exec", "-i", &name, "cat"], b"piped\n")
        .ok();
    assert_eq!(piped.stdout, "piped\n");
    let host = s.k.dir.path().join("host.txt");
    std::fs::write(&host, "from-host\n").unwrap();
    s.docker(&["cp", host.to_str().unwrap(), &format!("{name}:/tmp/")])
        .ok();
    let cat = s.docker(&["exec", &name, "cat", "/tmp/host.txt"]).ok();
    assert_eq!(cat.stdout, "from-host\n");
    let back = s.k.dir.path().join("back");
    std::fs::create_dir(&back).unwrap();
    s.docker(&["cp", &format!("{name}:/etc/passwd"), back.to_str().unwrap()])
        .ok();
    assert!(std::fs::read_to_string(back.join("passwd"))
        .unwrap()
        .starts_with("root:"));
    let missing = s.docker(&[
        "cp",
        &format!("{name}:/nonexistent"),
        back.to_str().unwrap(),
    ]);
    assert_ne!(missing.code, 0);
    // 20.10's words for the 404 of the stat (newer CLIs show ours).
    let words = ["No such container:path", "could not find"];
    assert!(
        words.iter().any(|w| missing.stderr.contains(w)),
        "{}",
        missing.stderr
    );
    s.docker(&["stop", "-t", "1", &name]).ok();
    let ps = s
        .docker(&["ps", "-a", "--filter", &format!("name={name}")])
        .ok();
    assert!(ps.stdout.contains("Exited"), "{}", ps.stdout);
    s.docker(&["rm", &name]).ok();
    let gone = s.docker(&["inspect", &name]);
    assert_ne!(gone.code, 0);
    assert!(gone.stderr.contains("No such"), "{}", gone.stderr);
}

/// Waits (inside the container, at most ten seconds) until its terminal
/// is 33x101, then prints the size and echoes a line it reads.
const SIZED: &str = r#"i=0; while [ "$(stty size)" != "33 101" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; stty size; read x; echo "got-$x""#;

#[test]
fn docker_cli_feeds_stdin_and_runs_terminals() {
    let Some(s) = setup() else { return };
    // -i: the client's input reaches the container, sent before it starts.
    let r = s
        .docker_fed(
            &[
                "run",
                "-i",
                "--rm",
                "busybox",
                "sh",
                "-c",
                "read x; echo got $x",
            ],
            b"hello\n",
        )
        .ok();
    assert_eq!(r.stdout, "got hello\n");
    // StdinOnce: the end of the client's input is the container's.
    let r = s
        .docker_fed(&["run", "-i", "--rm", "busybox", "cat"], b"one\ntwo\n")
        .ok();
    assert_eq!(r.stdout, "one\ntwo\n");

    // -it on a terminal: raw output, the client's size set by resize.
    let run =
        format!("stty rows 33 cols 101\nexec {DOCKER} run -it --rm busybox sh -c '{SIZED}'\n");
    let r = s.on_terminal(&run, b"typed\n").ok();
    assert!(r.stdout.contains("33 101\r\n"), "{:?}", r.stdout);
    assert!(r.stdout.contains("got-typed\r\n"), "{:?}", r.stdout);

    // exec -it: a pty of the exec's own, resized the same way.
    let name = unique("tty");
    s.docker(&["run", "-d", "--name", &name, "busybox", "sleep", "300"])
        .ok();
    let exec = format!("stty rows 33 cols 101\nexec {DOCKER} exec -it {name} sh -c '{SIZED}'\n");
    let r = s.on_terminal(&exec, b"in-exec\n").ok();
    assert!(r.stdout.contains("33 101\r\n"), "{:?}", r.stdout);
    assert!(r.stdout.contains("got-in-exec\r\n"), "{:?}", r.stdout);

    // A detached -it container: resize through the API (seen in its log,
    // raw as docker's for a tty), then input and the client's size
    // through attach, which ends with the container.
    let tty = unique("ttyd");
    let cmd = format!(
        r#"i=0; while [ "$(stty size)" != "40 120" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; stty size; {SIZED}"#
    );
    s.docker(&["run", "-dit", "--name", &tty, "busybox", "sh", "-c", &cmd])
        .ok();
    let size = format!("/v1.41/containers/{tty}/resize?h=40&w=120");
    assert_eq!(s.raw("POST", &size, b"").0, 200);
    common::wait_until("the resized terminal", Duration::from_secs(30), || {
        s.docker(&["logs", &tty]).stdout.contains("40 120\r\n")
    });
    let attach = format!("stty rows 33 cols 101\nexec {DOCKER} attach {tty}\n");
    let r = s.on_terminal(&attach, b"via-attach\n");
    assert!(
        r.stdout.contains("33 101\r\n"),
        "{:?} {:?}",
        r.stdout,
        r.stderr
    );
    assert!(r.stdout.contains("got-via-attach\r\n"), "{:?}", r.stdout);
    let logs = s.docker(&["logs", &tty]).ok();
    assert!(
        logs.stdout.contains("got-via-attach\r\n"),
        "{:?}",
        logs.stdout
    );
    // Ctrl-P Ctrl-Q (typed once the client is attached: its terminal
    // is raw then) detaches the client; the container runs on.
    let det = unique("detach");
    s.docker(&["run", "-dit", "--name", &det, "busybox", "sh"])
        .ok();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("attach.sh");
    std::fs::write(&file, format!("exec {DOCKER} attach {det}\n")).unwrap();
    let mut c = Command::new("timeout");
    s.client_env(&mut c);
    c.args(["120", "script", "-qec"])
        .arg(format!("sh {}", file.display()))
        .arg("/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"echo ty''ped\n").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("typed\r\n") {
        let n = stdout.read(&mut buf).unwrap();
        assert_ne!(n, 0, "{:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    stdin.write_all(b"\x10\x11").unwrap();
    let status = child.wait().unwrap();
    assert_ne!(status.code(), Some(124), "attach did not end");
    let state = s
        .docker(&["inspect", "-f", "{{.State.Running}}", &det])
        .ok();
    assert_eq!(state.stdout.trim(), "true");
    s.docker(&["rm", "-f", &det]).ok();
    // A container without a terminal has none to resize.
    let (code, body) = s.raw(
        "POST",
        &format!("/v1.41/containers/{name}/resize?h=1&w=1"),
        b"",
    );
    assert_eq!(code, 400, "{body}");
    s.docker(&["rm", "-f", &name, &tty]).ok();

    // The Python SDK's socket: exec_run(stdin=True, socket=True).
    let py = unique("pysock");
    s.docker(&["run", "-d", "--name", &py, "busybox", "sleep", "300"])
        .ok();
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url={host:?}, version="1.41")
ctr = c.containers.get({py:?})
sock = ctr.exec_run(["sh", "-c", "read x; echo py-$x"], stdin=True, socket=True).output
sock._sock.sendall(b"sdk\n")
data = b""
while b"py-sdk" not in data:
    chunk = sock._sock.recv(4096)
    if not chunk:
        break
    data += chunk
assert b"py-sdk" in data, data
print("socket-ok")
"#,
        host = s.host(),
    );
    python(&script).ok();
    s.docker(&["rm", "-f", &py]).ok();
}

#[test]
fn docker_cli_stats_commits_exports_and_imports() {
    let Some(s) = setup() else { return };
    let name = unique("stats");
    s.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "echo data > /data.txt; echo ready; sleep 300",
    ])
    .ok();
    common::wait_until("the container's write", Duration::from_secs(30), || {
        s.docker(&["logs", &name]).stdout.contains("ready")
    });

    // stats: docker's JSON, from which the CLI and the SDK compute.
    let st = s
        .docker(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}} {{.MemUsage}}",
            &name,
        ])
        .ok();
    let fields: Vec<&str> = st.stdout.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&name.as_str()), "{}", st.stdout);
    let pids: u64 = fields[1].parse().unwrap();
    assert!(pids >= 1, "{}", st.stdout);
    assert!(!fields[2].starts_with("0B"), "{}", st.stdout);
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url={host:?}, version="1.41")
ctr = c.containers.get({name:?})
st = ctr.stats(stream=False)
for k in ("read", "preread", "cpu_stats", "precpu_stats", "memory_stats", "pids_stats", "networks", "blkio_stats"):
    assert k in st, (k, st)
assert st["memory_stats"]["usage"] > 0, st
assert st["pids_stats"]["current"] >= 1, st
assert st["cpu_stats"]["system_cpu_usage"] > st["precpu_stats"]["system_cpu_usage"], st
assert st["name"] == "/" + {name:?}, st
stream = ctr.stats(stream=True, decode=True)
first = next(stream)
assert first["id"] == ctr.id, first
print("stats-ok")
"#,
        host = s.host(),
    );
    python(&script).ok();

    // commit: the change and the container's file in a new image.
    let committed = format!("{}:1", unique("committed"));
    let id = s
        .docker(&[
            "commit",
            "-c",
            "ENV COMMITTED=yes",
            "-m",
            "via the API",
            &name,
            &committed,
        ])
        .ok();
    assert!(id.stdout.trim().starts_with("sha256:"), "{}", id.stdout);
    let r = s
        .docker(&[
            "run",
            "--rm",
            &committed,
            "sh",
            "-c",
            "cat /data.txt; echo $COMMITTED",
        ])
        .ok();
    assert_eq!(r.stdout, "data\nyes\n");
    let h = s.docker(&["history", "--no-trunc", &committed]).ok();
    assert!(h.stdout.contains("via the API"), "{}", h.stdout);
    let bad = s.docker(&["commit", "-c", "FROM busybox", &name, "x:1"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("FROM"), "{}", bad.stderr);
    let (code, body) = s.raw("POST", "/v1.41/commit?container=nosuchcontainer", b"");
    assert_eq!(code, 404, "{body}");

    // export | import: the rootfs as a one-layer image, with a change.
    let tar = s.k.dir.path().join("rootfs.tar");
    s.docker(&["export", "-o", tar.to_str().unwrap(), &name])
        .ok();
    s.docker(&["rm", "-f", &name]).ok();
    let imported = format!("{}:1", unique("imported"));
    let data = std::fs::read(&tar).unwrap();
    let r = s
        .docker_fed(
            &[
                "import",
                "-c",
                r#"CMD ["cat", "/data.txt"]"#,
                "-",
                &imported,
            ],
            &data,
        )
        .ok();
    assert!(r.stdout.trim().starts_with("sha256:"), "{}", r.stdout);
    let r = s.docker(&["run", "--rm", &imported]).ok();
    assert_eq!(r.stdout, "data\n");
    let before = s.docker(&["images", "-q"]).ok().stdout;
    let bad = s.docker_fed(&["import", "-c", "FROM x", "-", "bad:1"], &data);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("FROM"), "{}", bad.stderr);
    let (code, body) = s.raw("POST", "/v1.41/images/create?fromSrc=/etc/passwd", b"");
    assert_eq!(code, 400, "{body}");
    assert_eq!(s.docker(&["images", "-q"]).ok().stdout, before);
}

#[test]
fn docker_cli_publishes_a_port_and_removes_with_force() {
    let Some(s) = setup() else { return };
    let name = unique("web");
    let port = test_support::free_port();
    s.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo hello-api > /www/index.html && httpd -f -p 80 -h /www",
    ])
    .ok();
    let mut body = String::new();
    common::wait_until("the published port", Duration::from_secs(20), || {
        let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = c.write_all(b"GET / HTTP/1.0\r\n\r\n");
        body.clear();
        let _ = c.read_to_string(&mut body);
        body.contains("hello-api")
    });
    let ps = s.docker(&["ps", "--filter", &format!("name={name}")]).ok();
    assert!(
        ps.stdout.contains(&format!("127.0.0.1:{port}->80/tcp")),
        "{}",
        ps.stdout
    );
    let inspect = s
        .docker(&[
            "inspect",
            "--format",
            "{{json .NetworkSettings.Ports}}",
            &name,
        ])
        .ok();
    assert!(
        inspect.stdout.contains(&port.to_string()),
        "{}",
        inspect.stdout
    );
    s.docker(&["rm", "-f", &name]).ok();
    assert!(!s.docker(&["ps", "-a"]).ok().stdout.contains(&name));

    // A health check given in the create body runs as `--health-cmd`'s.
    let hc = unique("hc");
    s.docker(&[
        "run",
        "-d",
        "--name",
        &hc,
        "--health-cmd",
        "test -e /tmp/ready",
        "--health-interval",
        "1s",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ready; sleep 60",
    ])
    .ok();
    common::wait_until("healthy", Duration::from_secs(30), || {
        s.docker(&["inspect", "--format", "{{.State.Health.Status}}", &hc])
            .stdout
            .trim()
            == "healthy"
    });
    s.docker(&["rm", "-f", &hc]).ok();
}

/// Debian's docker-compose (1.29, the Python one on docker's SDK).
const COMPOSE: &str = "/usr/bin/docker-compose";

#[test]
fn docker_compose_brings_up_healthy_services_and_takes_them_down() {
    let Some(s) = setup() else { return };
    require_tool(COMPOSE);
    let project = unique("compose").replace('-', "");
    let port = test_support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(
        &file,
        format!(
            r#"version: "2.4"
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo hello-compose > /www/index.html && exec httpd -f -p 80 -h /www"]
    volumes: ["site:/www"]
    ports: ["127.0.0.1:{port}:80"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      retries: 30
  client:
    image: busybox
    command: ["sh", "-c", "wget -q -O - http://web/ && sleep 300"]
    depends_on:
      web:
        condition: service_healthy
volumes:
  site: {{}}
"#
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut c = Command::new(COMPOSE);
        c.env("DOCKER_HOST", s.host())
            .env("DOCKER_CONFIG", s.docker_config.path())
            .env_remove("DOCKER_CONTEXT")
            .arg("-f")
            .arg(&file)
            .args(["-p", &project])
            .args(args)
            .stdin(Stdio::null());
        output(c)
    };
    compose(&["up", "-d"]).ok();

    // The published port answers with what web wrote into the volume.
    let mut body = String::new();
    common::wait_until("the published port", Duration::from_secs(30), || {
        let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = c.write_all(b"GET / HTTP/1.0\r\n\r\n");
        body.clear();
        let _ = c.read_to_string(&mut body);
        body.contains("hello-compose")
    });
    // The client started after web was healthy and found it by name.
    common::wait_until("the client's fetch", Duration::from_secs(30), || {
        compose(&["logs", "--no-color", "client"])
            .stdout
            .contains("hello-compose")
    });
    let ps = compose(&["ps"]).ok();
    assert!(ps.stdout.contains("healthy"), "{}", ps.stdout);
    // info and system df measure as `kiln info`/`kiln system df` do: the
    // store is this test's own, so its two containers are all there is.
    let info = s
        .docker(&["info", "--format", "{{.ContainersRunning}} {{.Images}}"])
        .ok();
    assert_eq!(info.stdout.trim(), "2 1");
    let df = s.docker(&["system", "df", "-v"]).ok();
    let site = format!("{project}_site");
    let row: Vec<&str> = df
        .stdout
        .lines()
        .find(|l| l.starts_with(&site))
        .unwrap_or_else(|| panic!("{}", df.stdout))
        .split_whitespace()
        .collect();
    // Used by web, and holding its index.html.
    assert_eq!(row[1], "1", "{}", df.stdout);
    assert_ne!(row[2], "0B", "{}", df.stdout);

    // A second `up` finds the project as its file says (the network's
    // options are docker's) and leaves it be.
    let again = compose(&["up", "-d"]).ok();
    assert!(again.stderr.contains("is up-to-date"), "{}", again.stderr);
    // A stopped container keeps its networks' aliases, its short ID among
    // them (compose disconnects and reconnects one that lacks it).
    let client = format!("{project}_client_1");
    s.docker(&["stop", "-t", "1", &client]).ok();
    let id = s.docker(&["inspect", "-f", "{{.Id}}", &client]).ok().stdout;
    let nets = s
        .docker(&[
            "inspect",
            "-f",
            "{{json .NetworkSettings.Networks}}",
            &client,
        ])
        .ok();
    let default_net = format!("{project}_default");
    let v: serde_json::Value = serde_json::from_str(&nets.stdout).unwrap();
    let aliases = v[&default_net]["Aliases"].to_string();
    assert!(aliases.contains(&id[..12]), "{}", nets.stdout);
    assert!(aliases.contains("\"client\""), "{}", nets.stdout);

    compose(&["down", "-v", "--timeout", "1"]).ok();
    let label = format!("label=com.docker.compose.project={project}");
    let left = s.docker(&["ps", "-aq", "--filter", &label]).ok();
    assert_eq!(left.stdout.trim(), "", "containers left behind");
    let nets = s.docker(&["network", "ls", "-q", "--filter", &label]).ok();
    assert_eq!(nets.stdout.trim(), "", "networks left behind");
    let vols = s.docker(&["volume", "ls", "-q", "--filter", &label]).ok();
    assert_eq!(vols.stdout.trim(), "", "volumes left behind");
}

#[test]
fn docker_cli_connects_and_disconnects_networks() {
    let Some(s) = setup() else { return };
    let (a, b, c) = (unique("neta"), unique("netb"), unique("conn"));
    s.docker(&["network", "create", &a]).ok();
    s.docker(&["network", "create", &b]).ok();
    s.docker(&[
        "run",
        "-d",
        "--name",
        &c,
        "--network",
        &a,
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    s.docker(&["network", "connect", "--alias", "extra", &b, &c])
        .ok();
    let nets = |s: &Service| {
        s.docker(&[
            "inspect",
            "--format",
            "{{json .NetworkSettings.Networks}}",
            &c,
        ])
        .ok()
        .stdout
    };
    assert!(nets(&s).contains(&b), "{}", nets(&s));
    // The alias resolves on the second network.
    let r = s
        .docker(&[
            "run",
            "--rm",
            "--network",
            &b,
            "busybox",
            "ping",
            "-c1",
            "-W5",
            "extra",
        ])
        .ok();
    assert!(r.stdout.contains("1 packets received"), "{}", r.stdout);
    let again = s.docker(&["network", "connect", &b, &c]).code(1);
    assert!(
        again.stderr.contains("already connected"),
        "{}",
        again.stderr
    );
    s.docker(&["network", "disconnect", &b, &c]).ok();
    assert!(!nets(&s).contains(&b), "{}", nets(&s));

    // NetworkMode container:NAME joins c's network namespace.
    let ip = s
        .docker(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &c,
        ])
        .ok();
    let joined = s
        .docker(&[
            "run",
            "--rm",
            "--network",
            &format!("container:{c}"),
            "busybox",
            "ip",
            "-4",
            "addr",
        ])
        .ok();
    assert!(
        joined.stdout.contains(ip.stdout.trim()),
        "{} vs {}",
        joined.stdout,
        ip.stdout
    );

    // Two networks at create (the SDKs send them; the CLI sends one).
    let two = unique("two");
    let body = format!(
        r#"{{"Image":"busybox","Cmd":["sleep","300"],"HostConfig":{{"NetworkMode":"{a}"}},
            "NetworkingConfig":{{"EndpointsConfig":{{"{a}":{{}},"{b}":{{"Aliases":["second"]}}}}}}}}"#
    );
    let (code, out) = s.raw(
        "POST",
        &format!("/containers/create?name={two}"),
        body.as_bytes(),
    );
    assert_eq!(code, 201, "{out}");
    let both = s
        .docker(&[
            "inspect",
            "--format",
            "{{json .NetworkSettings.Networks}}",
            &two,
        ])
        .ok();
    assert!(
        both.stdout.contains(&a) && both.stdout.contains(&b),
        "{}",
        both.stdout
    );
    s.docker(&["rm", "-f", &two]).ok();

    // Security flags come through to the container.
    let caps = s
        .docker(&[
            "run",
            "--rm",
            "--cap-drop",
            "ALL",
            "--init",
            "busybox",
            "sh",
            "-c",
            "grep CapEff /proc/self/status; cat /proc/1/comm",
        ])
        .ok();
    assert!(caps.stdout.contains("0000000000000000"), "{}", caps.stdout);
    // pid 1 is the init, not the command.
    assert_ne!(caps.stdout.lines().last(), Some("sh"), "{}", caps.stdout);

    s.docker(&["rm", "-f", &c]).ok();
    s.docker(&["network", "rm", &a, &b]).ok();
}

#[test]
fn docker_cli_pushes_pulls_saves_loads_and_builds() {
    let Some(s) = setup() else { return };
    let reg = test_support::registry::Registry::plain();
    let remote = format!("127.0.0.1:{}/api/bb:1", reg.port);
    s.docker(&["tag", "busybox", &remote]).ok();
    let push = s.docker(&["push", &remote]).ok();
    assert!(push.stdout.contains("digest: sha256:"), "{}", push.stdout);
    s.docker(&["rmi", &remote]).ok();
    assert!(!s.docker(&["images"]).ok().stdout.contains("api/bb"));
    s.docker(&["pull", &remote]).ok();
    let images = s
        .docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok();
    assert!(images.stdout.contains(&remote), "{}", images.stdout);
    let r = s.docker(&["run", "--rm", &remote, "echo", "pulled"]).ok();
    assert_eq!(r.stdout, "pulled\n");

    // save | load round trip.
    let archive = s.k.dir.path().join("saved.tar");
    s.docker(&["save", "-o", archive.to_str().unwrap(), &remote])
        .ok();
    s.docker(&["rmi", &remote]).ok();
    let load = s.docker(&["load", "-i", archive.to_str().unwrap()]).ok();
    assert!(load.stdout.contains("Loaded image"), "{}", load.stdout);
    assert!(s.docker(&["images"]).ok().stdout.contains("api/bb"));

    // The classic builder's /build, with a build arg, from a context dir.
    let ctx = s.k.dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nARG WHO=nobody\nCOPY hello.txt /hello.txt\n\
         RUN echo \"built for $WHO\" > /who.txt\n",
    )
    .unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello-context\n").unwrap();
    let tag = format!("{}:1", unique("built"));
    let b = s
        .docker(&[
            "build",
            "-t",
            &tag,
            "--build-arg",
            "WHO=api",
            ctx.to_str().unwrap(),
        ])
        .ok();
    assert!(b.stdout.contains("Successfully built"), "{}", b.stdout);
    let r = s
        .docker(&["run", "--rm", &tag, "cat", "/hello.txt", "/who.txt"])
        .ok();
    assert_eq!(r.stdout, "hello-context\nbuilt for api\n");
    let h = s.docker(&["history", "--no-trunc", &tag]).ok();
    assert!(h.stdout.contains("COPY"), "{}", h.stdout);
    let q = s.docker(&["build", "-q", ctx.to_str().unwrap()]).ok();
    assert!(q.stdout.trim().starts_with("sha256:"), "{}", q.stdout);
    let df = s.docker(&["system", "df"]).ok();
    assert!(df.stdout.contains("Images"), "{}", df.stdout);
}

#[test]
fn docker_cli_logs_in_and_builds_from_a_private_registry() {
    let Some(s) = setup() else { return };
    let reg = test_support::registry::Registry::start(
        test_support::registry::Tls::Off,
        test_support::registry::Auth::Htpasswd {
            user: "apiuser".into(),
            password: "apipass".into(),
        },
    );
    let host = reg.host();
    // A wrong password: the registry's refusal, nothing stored.
    let bad = s.docker_fed(
        &["login", "-u", "apiuser", "--password-stdin", &host],
        b"wrong\n",
    );
    assert_ne!(bad.code, 0, "{}", bad.stdout);
    assert!(bad.stderr.contains("unauthorized"), "{}", bad.stderr);
    assert!(!bad.stderr.contains("wrong"), "{}", bad.stderr);
    let config = s.docker_config.path().join("config.json");
    let stored = std::fs::read_to_string(&config).unwrap_or_default();
    assert!(!stored.contains(&host), "{stored}");
    // The right one: checked by the server, kept by the client.
    let good = s
        .docker_fed(
            &["login", "-u", "apiuser", "--password-stdin", &host],
            b"apipass\n",
        )
        .ok();
    assert!(good.stdout.contains("Login Succeeded"), "{}", good.stdout);
    let stored = std::fs::read_to_string(&config).unwrap();
    assert!(stored.contains(&host), "{stored}");

    // Push with the client's credentials (X-Registry-Auth), then a build
    // whose base image only they can pull (X-Registry-Config).
    let remote = format!("{host}/private/bb:1");
    s.docker(&["tag", "busybox", &remote]).ok();
    s.docker(&["push", &remote]).ok();
    s.docker(&["rmi", &remote]).ok();
    let ctx = s.k.dir.path().join("privctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {remote}\nRUN echo private > /p.txt\n"),
    )
    .unwrap();
    let tag = format!("{}:1", unique("private"));
    s.docker(&["build", "-t", &tag, ctx.to_str().unwrap()]).ok();
    let r = s.docker(&["run", "--rm", &tag, "cat", "/p.txt"]).ok();
    assert_eq!(r.stdout, "private\n");
    // The step records the build kept are docker's build cache.
    let df = s
        .docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
        .ok();
    let cache = df
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Build Cache "))
        .unwrap_or_else(|| panic!("{}", df.stdout));
    assert_ne!(cache.trim(), "0", "{}", df.stdout);
}

#[test]
fn python_sdk_builds_runs_execs_streams_logs_and_removes() {
    let Some(s) = setup() else { return };
    require_tool(PYTHON);
    let ctx = s.k.dir.path().join("pyctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nLABEL made.by=sdk\nCMD [\"sh\", \"-c\", \"echo one; echo two; sleep 60\"]\n",
    )
    .unwrap();
    let script = format!(
        r#"
import docker, sys
c = docker.DockerClient(base_url={host:?}, version="1.41")
assert c.ping()
img, _ = c.images.build(path={ctx:?}, tag={tag:?})
assert img.labels.get("made.by") == "sdk", img.labels
out = c.containers.run("busybox", ["sh", "-c", "echo via-sdk"], remove=True)
assert out == b"via-sdk\n", out
ctr = c.containers.run({tag:?}, detach=True, name={name:?})
lines = []
for chunk in ctr.logs(stream=True, follow=True):
    lines.append(chunk)
    if b"two" in b"".join(lines):
        break
res = ctr.exec_run(["sh", "-c", "echo exec-out; exit 5"])
assert res.exit_code == 5, res
assert res.output == b"exec-out\n", res.output
ctr.reload()
assert ctr.status == "running", ctr.status
ctr.stop(timeout=1)
assert ctr.wait()["StatusCode"] in (137, 143), ctr.wait()
ctr.remove()
assert {name:?} not in [x.name for x in c.containers.list(all=True)]
c.images.remove({tag:?})
print("sdk-ok")
"#,
        host = s.host(),
        ctx = ctx.to_str().unwrap(),
        tag = format!("{}:1", unique("sdk")),
        name = unique("sdkctr"),
    );
    let r = python(&script).ok();
    assert!(r.stdout.contains("sdk-ok"));
}

#[test]
fn bad_requests_get_docker_errors() {
    let Some(s) = setup() else { return };
    let message = |body: &str| -> String {
        let v: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        v["message"].as_str().unwrap_or_default().to_string()
    };
    let (code, body) = s.raw("GET", "/v1.41/no/such/endpoint", b"");
    assert_eq!(code, 404);
    assert_eq!(message(&body), "page not found");
    let (code, body) = s.raw("POST", "/v1.41/containers/create", b"{\"Image\": ");
    assert_eq!(code, 400);
    assert!(message(&body).contains("invalid JSON"), "{body}");
    let (code, body) = s.raw("GET", "/v1.41/containers/nosuchcontainer/json", b"");
    assert_eq!(code, 404);
    assert_eq!(message(&body), "No such container: nosuchcontainer");
    let (code, body) = s.raw(
        "POST",
        "/v1.41/containers/create",
        br#"{"Image": "localhost/nosuchimage:1"}"#,
    );
    assert_eq!(code, 404);
    assert!(message(&body).starts_with("No such image"), "{body}");
    let (code, _) = s.raw("DELETE", "/v1.41/images/nosuchimage", b"");
    assert_eq!(code, 404);
    // Newer clients' version prefixes (and none) reach the same handlers.
    assert_eq!(s.raw("GET", "/v1.45/_ping", b"").0, 200);
    assert_eq!(s.raw("GET", "/_ping", b"").0, 200);

    // A build context with a `../` entry: refused, nothing written
    // outside, no image.
    let mut tar = tar::Builder::new(Vec::new());
    let add = |t: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // Raw bytes: the tar crate refuses to set `..` names itself.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        t.append(&h, data).unwrap();
    };
    add(&mut tar, "Dockerfile", b"FROM busybox\n");
    add(&mut tar, "../escaped-by-api", b"x");
    let data = tar.into_inner().unwrap();
    let before = s.docker(&["images", "-q"]).ok().stdout;
    let (code, body) = s.raw("POST", "/v1.41/build?t=escape", &data);
    assert_eq!(code, 400, "{body}");
    assert!(message(&body).contains("../escaped-by-api"), "{body}");
    let store_tmp = s.k.root().join("kiln");
    assert!(!store_tmp.join("tmp/escaped-by-api").exists());
    assert!(!s.k.root().join("escaped-by-api").exists());
    assert_eq!(s.docker(&["images", "-q"]).ok().stdout, before);

    // A client that goes away in the middle of a streamed save: the
    // server goes on serving, the store stays consistent.
    {
        let mut c = UnixStream::connect(&s.sock).unwrap();
        c.write_all(b"GET /v1.41/images/get?names=busybox HTTP/1.1\r\nHost: kiln\r\n\r\n")
            .unwrap();
        let mut some = [0u8; 4096];
        c.read_exact(&mut some).unwrap();
    }
    assert_eq!(s.raw("GET", "/_ping", b"").0, 200);
    s.k.run(&["system", "check"]).ok();
    assert_eq!(s.docker(&["images", "-q"]).ok().stdout, before);
}

#[test]
fn idle_service_exits_and_removes_its_socket() {
    if !common::is_root() {
        return;
    }
    let k = Kiln::new();
    let sock = k.dir.path().join("idle.sock");
    let mut child = k
        .cmd()
        .args(["system", "service", "--time", "1"])
        .arg(format!("unix://{}", sock.display()))
        .spawn()
        .unwrap();
    common::wait_until("the socket", Duration::from_secs(20), || sock.exists());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    common::wait_until("the idle exit", Duration::from_secs(30), || {
        child.try_wait().unwrap().is_some()
    });
    assert!(child.wait().unwrap().success());
    assert!(!sock.exists());
}
