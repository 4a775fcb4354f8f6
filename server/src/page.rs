//! Page tokens: opaque, signed by this server process, so a token the server did not
//! issue (made up, edited, or from another list) is refused with `INVALID_ARGUMENT`
//! instead of silently returning a wrong page. A restart changes the key: a client
//! paging across a restart starts over.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Issues and checks page tokens.
pub(crate) struct Pager {
    secret: [u8; 32],
}

impl Pager {
    /// A pager with a fresh random key.
    pub(crate) fn new() -> Self {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        Self { secret }
    }

    fn mac(&self, list: &str, key: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(list.as_bytes());
        h.update([0]);
        h.update(key.as_bytes());
        hex::encode(&h.finalize()[..12])
    }

    /// The token that continues `list` after `key`.
    pub(crate) fn issue(&self, list: &str, key: &str) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
        format!("{b64}.{}", self.mac(list, key))
    }

    /// The key a token continues after (`None` for the first page).
    pub(crate) fn open(&self, list: &str, token: &str) -> Result<Option<String>> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || {
            Error::invalid(
                "page_token",
                "was not issued by this server for this list (or the server restarted); start from the first page",
            )
        };
        let (b64, mac) = token.split_once('.').ok_or_else(bad)?;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .ok()
            .and_then(|k| String::from_utf8(k).ok())
            .ok_or_else(bad)?;
        if self.mac(list, &key) != mac {
            return Err(bad());
        }
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_forgeries_are_refused() {
        let p = Pager::new();
        let t = p.issue("backups", "b7");
        assert_eq!(p.open("backups", &t).expect("valid").as_deref(), Some("b7"));
        assert!(p.open("backups", "").expect("first").is_none());
        assert!(p.open("jobs", &t).is_err(), "another list's token");
        assert!(p.open("backups", "b7").is_err());
        let forged = format!("{}.{}", t.split('.').next().unwrap_or(""), "00");
        assert!(p.open("backups", &forged).is_err());
        assert!(
            Pager::new().open("backups", &t).is_err(),
            "another server's token"
        );
    }
}
