//! Parse throughput in MB/s on a large synthetic Dockerfile plus the
//! BuildKit corpus. Run with `cargo bench -p dockerfile-parser`.

use std::time::Instant;

fn synthetic(lines: usize) -> String {
    let mut src = String::from("# syntax=docker/dockerfile:1\nFROM alpine:3.19 AS base\n");
    let mut i = 0;
    // Each block below is 11 lines.
    while i * 11 < lines {
        src.push_str(&format!(
            concat!(
                "# step {i}\n",
                "RUN --mount=type=cache,target=/var/cache apk add --no-cache pkg{i} \\\n",
                "    && echo \"done {i}\" > /tmp/{i}\n",
                "ENV PATH=/opt/{i}/bin:$PATH NAME=\"v {i}\"\n",
                "COPY --chown=app:app --chmod=644 [\"src/{i}\", \"/app/{i}/\"]\n",
                "RUN <<EOF\necho {i}\nEOF\n",
                "LABEL org.example.step{i}=\"yes\"\n\n",
            ),
            i = i
        ));
        i += 1;
    }
    src
}

fn measure(name: &str, src: &str, rounds: usize) {
    // Warm up once, then time.
    let n = dockerfile_parser::parse_dockerfile(src)
        .expect("parses")
        .commands
        .len();
    let started = Instant::now();
    for _ in 0..rounds {
        let df = dockerfile_parser::parse_dockerfile(std::hint::black_box(src)).expect("parses");
        std::hint::black_box(df);
    }
    let secs = started.elapsed().as_secs_f64();
    let mb = (src.len() * rounds) as f64 / 1e6;
    println!(
        "{name}: {} bytes, {n} instructions, {rounds} rounds: {:.1} MB/s ({:.2} ms/parse)",
        src.len(),
        mb / secs,
        secs * 1e3 / rounds as f64
    );
}

fn main() {
    // Linearity check: throughput should stay flat as the input grows.
    for lines in [10_000, 30_000] {
        measure(
            &format!("synthetic-{}k-lines", lines / 1000),
            &synthetic(lines),
            5,
        );
    }
    let big = synthetic(100_000);
    measure("synthetic-100k-lines", &big, 5);
    // Where the time goes: syntax tree, typed layer, freeing.
    let t = Instant::now();
    let p = dockerfile_parser::parse(&big).expect("parses");
    let ast = t.elapsed().as_secs_f64();
    let n = p.nodes.len();
    let t = Instant::now();
    let df = dockerfile_parser::instructions::from_parsed(p).expect("valid");
    let typed = t.elapsed().as_secs_f64();
    let t = Instant::now();
    drop(df);
    let free = t.elapsed().as_secs_f64();
    println!(
        "synthetic-100k-lines phases: AST {:.1} ms ({:.1} MB/s, {n} nodes), typed {:.1} ms, drop {:.1} ms",
        ast * 1e3,
        big.len() as f64 / 1e6 / ast,
        typed * 1e3,
        free * 1e3
    );
}
