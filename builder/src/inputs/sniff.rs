//! docker's rule for standard input and downloads (`DetectArchiveReader`):
//! the first 1024 bytes are an archive when they start with a compression
//! format's magic, or when they hold a valid tar header; anything else is
//! a Dockerfile.

use std::io::{self, Read};

/// Two tar blocks, what docker's CLI peeks at.
const PEEK: usize = 1024;
const BLOCK: usize = 512;

/// Reads up to [`PEEK`] bytes (fewer only at the end of the input).
pub(super) fn peek<R: Read>(mut input: R) -> io::Result<(Vec<u8>, R)> {
    let mut head = vec![0u8; PEEK];
    let mut got = 0;
    while got < PEEK {
        match input.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    Ok((head, input))
}

/// Whether `head` (the first bytes of a stream) starts an archive.
pub fn is_archive(head: &[u8]) -> bool {
    const MAGIC: [&[u8]; 4] = [
        &[0x1f, 0x8b],                      // gzip
        &[0x28, 0xb5, 0x2f, 0xfd],          // zstd
        b"BZh",                             // bzip2
        &[0xfd, b'7', b'z', b'X', b'Z', 0], // xz
    ];
    if MAGIC.iter().any(|m| head.starts_with(m)) {
        return true;
    }
    head.len() >= BLOCK && valid_tar_header(&head[..BLOCK])
}

/// Go's `tar.Reader.Next` on the first block: not all zeros, and the
/// checksum field (octal) matches the sum of the block's bytes with that
/// field counted as spaces, unsigned or signed as Go accepts either.
fn valid_tar_header(block: &[u8]) -> bool {
    if block.iter().all(|&b| b == 0) {
        return false;
    }
    let field = &block[148..156];
    let digits: String = field
        .iter()
        .map(|&b| b as char)
        .take_while(|c| *c != '\0')
        .collect();
    let Ok(stored) = i64::from_str_radix(digits.trim(), 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += b as i64;
        signed += b as i8 as i64;
    }
    stored == unsigned || stored == signed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_and_dockerfiles_are_told_apart_by_content() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_cksum();
        b.append_data(&mut h, "Dockerfile", &b"abc"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        assert!(is_archive(&tar[..PEEK]));
        let mut broken = tar.clone();
        broken[0] ^= 1;
        assert!(!is_archive(&broken[..PEEK]), "checksum no longer matches");
        assert!(is_archive(b"\x1f\x8b\x08rest"));
        assert!(is_archive(b"BZh91AY"));
        assert!(!is_archive(b"FROM busybox\nRUN true\n"));
        assert!(!is_archive(&[0u8; PEEK]), "an empty tar has no entry");
        let (head, mut rest) = peek(&b"FROM x\n"[..]).unwrap();
        assert_eq!(head, b"FROM x\n");
        assert_eq!(rest.read(&mut [0u8; 4]).unwrap(), 0);
    }
}
