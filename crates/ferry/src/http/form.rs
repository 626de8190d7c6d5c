//! `application/x-www-form-urlencoded`: the query strings and form bodies of the http input,
//! and the `url_param` messages of the scribe input.

/// `+` as a space and `%XX` as a byte, as CGI.unescape and WEBrick read them.
pub fn unescape(s: &[u8]) -> Vec<u8> {
    let plus: Vec<u8> = s
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&plus).collect()
}

/// `k=v&k2=v2` unescaped, in order (a pair without `=` has an empty value; empty pairs are
/// skipped). Keys are text (invalid UTF-8 replaced); values stay bytes.
pub fn parse(q: &[u8]) -> Vec<(String, Vec<u8>)> {
    q.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (
                String::from_utf8_lossy(&unescape(k)).into_owned(),
                unescape(v),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_percent_decoded_to_bytes_and_plus_is_a_space() {
        let q = parse(b"json=%7B%22a%22%3A1%7D&time=1.5&msgpack=%81%a1a%01&x+y=a+b&flag&&");
        assert_eq!(q[0], ("json".into(), br#"{"a":1}"#.to_vec()));
        assert_eq!(q[1], ("time".into(), b"1.5".to_vec()));
        assert_eq!(q[2].1, b"\x81\xa1a\x01".to_vec());
        assert_eq!(q[3], ("x y".into(), b"a b".to_vec()));
        assert_eq!(q[4], ("flag".into(), Vec::new()));
        assert_eq!(q.len(), 5);
    }
}
