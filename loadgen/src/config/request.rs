//! `--server-request`: the bytes sent to the server once connected, written on the command
//! line with escapes (`GET / HTTP/1.0\r\n\r\n`) or read from a file (`@FILE`), and written
//! back (by [`escape`]) so that [`super::Config::to_args`] round-trips any bytes.

use crate::error::LoadgenError;

/// Longest request accepted: it is sent with one `send()` on a fresh socket, which must
/// take it whole.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// The bytes `value` stands for: `@FILE` is FILE's contents, anything else is the text
/// itself with `\r`, `\n`, `\t`, `\0`, `\\` and `\xHH` escapes.
pub fn parse(value: &str) -> Result<Vec<u8>, LoadgenError> {
    let bytes = match value.strip_prefix('@') {
        Some(path) => std::fs::read(path).map_err(|e| {
            LoadgenError::BadOption(format!(
                "--server-request @{path}: cannot read it ({e}); give an existing file, or the request itself (escapes \\r \\n \\xHH)"
            ))
        })?,
        None => unescape(value)?,
    };
    if bytes.is_empty() {
        return Err(LoadgenError::BadOption(
            "--server-request is empty; give the request (e.g. 'GET / HTTP/1.0\\r\\n\\r\\n') or drop it to wait for the server's close".into(),
        ));
    }
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(LoadgenError::BadOption(format!(
            "--server-request has {} bytes, at most {MAX_REQUEST_BYTES} are sent; give a shorter request",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn unescape(value: &str) -> Result<Vec<u8>, LoadgenError> {
    let bad = |what: String| {
        LoadgenError::BadOption(format!(
            "--server-request {value:?}: {what}; the escapes are \\r \\n \\t \\0 \\\\ and \\xHH"
        ))
    };
    let mut out = Vec::with_capacity(value.len());
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let Some(&c) = b.get(i + 1) else {
            return Err(bad("ends with a lone backslash".into()));
        };
        i += 2;
        out.push(match c {
            b'r' => b'\r',
            b'n' => b'\n',
            b't' => b'\t',
            b'0' => 0,
            b'\\' => b'\\',
            b'x' => {
                let hex = b
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| bad("\\x needs two hex digits".into()))?;
                i += 2;
                hex
            }
            other => return Err(bad(format!("unknown escape \\{}", other as char))),
        });
    }
    Ok(out)
}

/// `bytes` written so that [`parse`] gives them back: printable ASCII as is (a backslash
/// doubled, a leading `@` as `\x40`), the rest as escapes.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 8);
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'@' if i == 0 => s.push_str("\\x40"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let all: Vec<u8> = (0..=255u8).collect();
        for bytes in [
            b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            b"@not a file".to_vec(),
            b"a\\b".to_vec(),
            all,
        ] {
            assert_eq!(parse(&escape(&bytes)).unwrap(), bytes);
        }
        assert_eq!(
            parse("GET / HTTP/1.0\\r\\n\\r\\n").unwrap(),
            b"GET / HTTP/1.0\r\n\r\n"
        );
    }

    #[test]
    fn bad_requests_name_the_fix() {
        for (v, want) in [
            ("", "is empty"),
            ("a\\", "lone backslash"),
            ("\\xZZ", "two hex digits"),
            ("\\q", "unknown escape \\q"),
            ("@/nonexistent/req", "cannot read it"),
        ] {
            let e = parse(v).unwrap_err().to_string();
            assert!(e.contains(want), "{v}: {e}");
        }
    }
}
