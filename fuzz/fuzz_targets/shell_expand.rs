//! The shell word expander (`Lexer::process`) with both escape characters and
//! every option combination, against a small environment taken from the
//! input. Properties: no panic, and a word without any special character
//! expands to itself.
#![no_main]

use dockerfile_parser::shell::{env_from_pairs, Lexer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    // word \0 env-line \n env-line ...
    let (word, env_text) = text
        .split_once('\0')
        .unwrap_or((&text, "a=abcabc\nb=\nc=x/y/z"));
    let env = env_from_pairs(env_text.split('\n'));
    let mut lex = Lexer::new(if flags & 1 == 0 { '\\' } else { '`' });
    lex.raw_quotes = flags & 2 != 0;
    lex.raw_escapes = flags & 4 != 0;
    lex.skip_process_quotes = flags & 8 != 0;
    lex.skip_unset_env = flags & 16 != 0;
    if let Ok(e) = lex.process(word, &env) {
        let plain = !word
            .chars()
            .any(|c| matches!(c, '$' | '\'' | '"' | '\\' | '`') || c.is_whitespace());
        if plain {
            assert_eq!(e.result, word, "a plain word changed");
        }
    }
});
