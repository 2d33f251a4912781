#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/<target>/.

Sources: the repo's fixtures, the conformance corpora in fixtures/conformance
(BuildKit parser and shell test files, moby patternmatcher cases), and small
hand-made tars and JSON documents. Each seed is small; names are the sha1 of
the content (as libFuzzer names its own), so reruns are idempotent.

    python3 fuzz/make-seeds.py [CONFORMANCE_DIR]   # default fixtures/conformance
"""
import bz2, gzip, hashlib, io, json, lzma, os, subprocess, sys, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CONF = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "KILN_CONFORMANCE_DIR", os.path.join(REPO, "fixtures", "conformance"))
MAX_SEED = 8 * 1024


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_SEED:
        return
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def files_named(root, name):
    for dirpath, _, names in os.walk(root):
        for n in names:
            if n == name:
                yield os.path.join(dirpath, n)


# --- dockerfile_parse: every Dockerfile we have -------------------------
for root in (os.path.join(REPO, "fixtures"), os.path.join(CONF, "buildkit", "parser")):
    for p in files_named(root, "Dockerfile"):
        put("dockerfile_parse", open(p, "rb").read())
neg = os.path.join(CONF, "buildkit", "parser", "testfiles-negative")
if os.path.isdir(neg):
    for d in os.listdir(neg):
        p = os.path.join(neg, d, "Dockerfile")
        if os.path.exists(p):
            put("dockerfile_parse", open(p, "rb").read())
for s in ["# escape=`\nFROM x\nRUN a `\n b\n",
          "FROM x\nRUN <<EOF\necho $A\nEOF\nCOPY <<-'E' /f\n\tx\nE\n",
          "FROM x AS b\nONBUILD RUN x\nHEALTHCHECK --interval=1s CMD [\"a\"]\n",
          "\ufeffFROM x\r\nENV A=1 B=\"2 3\"\r\n"]:
    put("dockerfile_parse", s)

# --- shell_expand: flags byte + word [\0 env] ---------------------------
shell = os.path.join(CONF, "buildkit", "shell")
for name, env in (("wordsTest", []), ("envVarTest", ["PWD=/home", "SHELL=bash", "KOREAN=한국어"])):
    p = os.path.join(shell, name)
    if not os.path.exists(p):
        continue
    for line in open(p, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        if line.startswith("ENV "):
            env.append(line[4:])
            continue
        parts = line.split("|")
        word = parts[1] if name == "envVarTest" and len(parts) == 3 else parts[0]
        put("shell_expand", b"\0" + word.strip().encode() + b"\0" + "\n".join(env).encode())
for w in ["${a:-x}", "${a//b/c}", "${a%%*b}", "${a#*a}", "'q'\"$a\"", "`$a"]:
    put("shell_expand", b"\0" + w.encode())
    put("shell_expand", b"\x01" + w.encode())


# --- normalize_tar: small tars of every entry kind, each compression ----
def tar_bytes(build, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        build(t)
    return buf.getvalue()


def add(t, name, kind=tarfile.REGTYPE, data=b"", link="", **kw):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    ti.linkname = link
    ti.mode = kw.get("mode", 0o644)
    for k, v in kw.items():
        setattr(ti, k, v)
    t.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def everything(t):
    add(t, "./", tarfile.DIRTYPE, mode=0o755)
    add(t, "etc/", tarfile.DIRTYPE, mode=0o755)
    add(t, "etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n")
    add(t, "etc/hard", tarfile.LNKTYPE, link="etc/passwd")
    add(t, "etc/sym", tarfile.SYMTYPE, link="../etc/passwd")
    add(t, "dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3)
    add(t, "fifo", tarfile.FIFOTYPE)
    add(t, "etc/.wh.gone", data=b"")
    add(t, "etc/.wh..wh..opq", data=b"")
    add(t, "bin/su", data=b"x", mode=0o4755)


def pax_xattr(t):
    ti = tarfile.TarInfo("cap")
    ti.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02", "path": "over/ridden"}
    ti.size = 1
    t.addfile(ti, io.BytesIO(b"c"))


plain = tar_bytes(everything)
tars = [
    plain,
    tar_bytes(everything, tarfile.PAX_FORMAT),
    tar_bytes(lambda t: add(t, "/abs/x", data=b"a")),
    tar_bytes(lambda t: add(t, "a/../../escape", data=b"a")),
    tar_bytes(lambda t: add(t, "l", tarfile.LNKTYPE, link="missing")),
    tar_bytes(lambda t: add(t, "d" * 120 + "/" + "f" * 120, data=b"long")),
    tar_bytes(lambda t: [add(t, "x", data=b"1"), add(t, "x", tarfile.DIRTYPE), add(t, "x/y", tarfile.SYMTYPE, link="/")]),
    tar_bytes(pax_xattr, tarfile.PAX_FORMAT),
]



def trim(b):
    # tarfile pads to 10 KiB records; two zero blocks end the archive.
    end = len(b.rstrip(b"\0"))
    end = (end + 511) // 512 * 512 + 1024
    return b[:end]


for b in tars:
    b = trim(b)
    put("normalize_tar", b)
put("normalize_tar", gzip.compress(trim(plain)))
put("normalize_tar", bz2.compress(trim(plain)))
put("normalize_tar", lzma.compress(trim(plain), format=lzma.FORMAT_XZ))
try:
    put("normalize_tar", subprocess.run(["zstd", "-q", "-c"], input=trim(plain),
                                        capture_output=True, check=True).stdout)
except (OSError, subprocess.CalledProcessError):
    pass
put("normalize_tar", trim(plain)[:700])  # truncated inside an entry

# --- oci_json -------------------------------------------------------------
D = "sha256:" + "a" * 64
desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D, "size": 32}
docs = [
    {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 7},
     "layers": [desc], "annotations": {"org.opencontainers.image.ref.name": "latest"}},
    {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
     "manifests": [dict(desc, platform={"os": "linux", "architecture": "amd64"}),
                   dict(desc, platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
                   dict(desc, platform={"os": "unknown", "architecture": "unknown"})]},
    {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
     "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "User": "1:1", "ExposedPorts": {"80/tcp": {}},
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000}},
     "rootfs": {"type": "layers", "diff_ids": [D]},
     "history": [{"created_by": "RUN x", "empty_layer": True}], "x-extra": [1, {"a": None}]},
    desc,
    {"schemaVersion": 2, "config": desc, "layers": [], "extra": 1e400},
]
for d in docs:
    put("oci_json", json.dumps(d))
for s in [D, "sha256:" + "A" * 64, "docker.io/library/busybox:latest@" + D, "localhost:5000/a/b:c",
          "linux/arm/v7", "[]", "{}", "null"]:
    put("oci_json", s)

# --- dockerignore: ignore file \0 paths ----------------------------------
for p in files_named(os.path.join(REPO, "fixtures"), ".dockerignore"):
    put("dockerignore", open(p, "rb").read() + b"\0src/x.tmp\nlogs/x.log\nkeep/a.txt\nsecret.key")
cases = os.path.join(CONF, "patternmatcher", "cases.json")
if os.path.exists(cases):
    c = json.load(open(cases))
    for table in ("matches_or_parent_matches", "matches"):
        for row in c.get(table, []):
            if "patterns" in row and "path" in row:
                put("dockerignore", "\n".join(row["patterns"]).encode() + b"\0" + row["path"].encode())
    for row in c.get("match", []):
        if "pattern" in row and "path" in row:
            put("dockerignore", row["pattern"].encode() + b"\0" + row["path"].encode())
