//! Credential checks. Secrets are compared in constant time (`subtle`), and every configured
//! credential is compared on every request, so the time taken tells neither how much of a
//! secret matched nor which credential did. Only a secret's length can show through.

use crate::config::{Credential, Secret};
use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

/// Constant-time equality of two byte strings (lengths excepted).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The index of the credential whose id and secret both match, comparing all of them.
/// `id` is `None` for vendors that authenticate by a secret alone.
pub fn find(credentials: &[Credential], id: Option<&[u8]>, secret: &[u8]) -> Option<usize> {
    let mut found = None;
    for (i, c) in credentials.iter().enumerate() {
        let id_ok = id.is_none_or(|id| ct_eq(c.id.as_bytes(), id));
        // `&` rather than `&&`: the secret is compared even when the id differs.
        if id_ok & ct_eq(c.secret.bytes(), secret) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// Whether `token` is one of `tokens`, comparing all of them.
pub fn token_ok(tokens: &[Secret], token: &[u8]) -> bool {
    tokens
        .iter()
        .fold(false, |ok, t| ok | ct_eq(t.bytes(), token))
}

/// A header's value as bytes, if present once. A header sent twice is treated as absent: which
/// copy to believe would otherwise depend on the proxy in front.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then(|| first.as_bytes())
}

/// The token of an `Authorization: Bearer TOKEN` header (the scheme is case-insensitive).
pub fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let v = header(headers, "authorization")?;
    let (scheme, rest) = v.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "bearer abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some(&b"abc"[..]));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer a".parse().unwrap());
        h.append("authorization", "Bearer b".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
