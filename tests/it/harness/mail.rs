//! What the notification sinks received, decoded: quoted-printable mail and RFC 2047 headers,
//! form-encoded SNS bodies.

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Quoted-printable bodies and RFC 2047 `=?utf-8?q?...?=` / `=?utf-8?b?...?=` headers, decoded.
pub fn decode_mail(raw: &str) -> String {
    // Encoded words first (their `?=` must not be read as a soft line break), then the body.
    let mut out = String::new();
    let mut rest = raw;
    while let Some(start) = rest.find("=?") {
        out.push_str(&rest[..start]);
        let word = &rest[start + 2..];
        let parts: Vec<&str> = word.splitn(3, '?').collect();
        match (parts.len(), word.find("?=")) {
            (3, Some(_)) => {
                let enc = parts[1];
                let text_end = parts[2].find("?=").unwrap();
                let text = &parts[2][..text_end];
                let bytes = if enc.eq_ignore_ascii_case("b") {
                    b64(text)
                } else {
                    q(text, true)
                };
                out.push_str(&String::from_utf8_lossy(&bytes));
                let consumed = 2 + parts[0].len() + 1 + parts[1].len() + 1 + text_end + 2;
                rest = &rest[start + consumed..];
            }
            _ => {
                out.push_str("=?");
                rest = &rest[start + 2..];
            }
        }
    }
    out.push_str(rest);
    String::from_utf8_lossy(&q(&out, false)).into_owned()
}

/// Quoted-printable; `_` is a space in encoded words.
fn q(s: &str, underscore_space: bool) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'=' if i + 2 < b.len() + 1 && b.get(i + 1) == Some(&b'\n') => i += 2,
            b'=' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                }
                _ => {
                    out.push(b'=');
                    i += 1;
                }
            },
            b'_' if underscore_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Base64, ignoring what is not in its alphabet.
fn b64(s: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        bits = (bits << 6) | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// A form-encoded body (`+` and `%XX`), decoded.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => {
                out.push(hex(b[i + 1]).unwrap_or(0) * 16 + hex(b[i + 2]).unwrap_or(0));
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
