//! Dockerfile text → syntax tree → dump → typed instructions → expansion.
//! Beyond "no panic": spans must point at the instruction's own source text,
//! and parsing is deterministic.
#![no_main]

use dockerfile_parser::shell::env_from_pairs;
use dockerfile_parser::{dump, instructions, parse_bytes, Node};
use libfuzzer_sys::fuzz_target;

fn check_spans(text: &str, node: &Node) {
    let s = node.span;
    assert!(
        s.start <= s.end && s.end <= text.len(),
        "span {s:?} out of range"
    );
    assert_eq!(
        text.get(s.start..s.end),
        Some(node.source_text.as_str()),
        "span {s:?} is not the node's source text"
    );
    assert!(
        s.start_line >= 1 && s.start_line <= s.end_line,
        "lines {s:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = parse_bytes(data) else {
        return;
    };
    let lossy = String::from_utf8_lossy(data);
    let text = lossy.strip_prefix('\u{feff}').unwrap_or(&lossy);
    for node in &parsed.nodes {
        check_spans(text, node);
    }
    let dumped = dump(&parsed.nodes);
    assert_eq!(
        parse_bytes(data).map(|p| dump(&p.nodes)).as_deref(),
        Ok(dumped.as_str())
    );
    let Ok(mut df) = instructions::from_parsed(parsed) else {
        return;
    };
    let lex = df.lexer();
    let env = env_from_pairs(["A=x y", "B=", "PATH=/bin", "HOME=/root"]);
    for c in &mut df.commands {
        let _ = c.instruction.expand(&lex, &env);
        if let dockerfile_parser::Instruction::Run(run) = &c.instruction {
            let _ = run.expand_mounts(&lex, &env);
        }
    }
});
