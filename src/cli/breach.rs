//! Have I Been Pwned's Pwned Passwords range API with k-anonymity: only the first five
//! hex characters of a password's SHA-1 leave the device (`GET <endpoint><PREFIX>`);
//! the answer lists every known suffix of that prefix with its count, and the match is
//! made here. `Add-Padding: true` asks the service to pad each answer with fake
//! suffixes of count 0 (so its size says nothing about the prefix); those are ignored.
//! Answers are cached per prefix for the life of one [`RangeClient`] (one run).

use std::collections::HashMap;

/// The public endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.pwnedpasswords.com/range/";
/// An answer larger than this is refused (real ones are about 30–40 KiB padded).
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// Why a lookup failed. No variant carries a password or a full hash.
#[derive(Debug, thiserror::Error)]
pub enum BreachError {
    /// The request did not complete (connect, TLS, timeout).
    #[error("breach check: the range service could not be reached: {0}")]
    Transport(String),
    /// The service answered with an error status.
    #[error("breach check: the range service answered HTTP {0}")]
    Status(u16),
    /// The answer was not a range list.
    #[error("breach check: unreadable answer from the range service: {0}")]
    BadAnswer(String),
}

/// A range-API client with a per-run cache.
pub struct RangeClient {
    endpoint: String,
    client: reqwest::Client,
    cache: HashMap<String, HashMap<String, u64>>,
    /// Requests made (one per distinct prefix).
    pub requests: usize,
}

/// The upper-case hex SHA-1 of `password`, split into the 5-character prefix that is
/// sent and the 35-character suffix that is not.
pub fn split_hash(password: &str) -> (String, String) {
    let h = hex::encode_upper(openssl::sha::sha1(password.as_bytes()));
    (h[..5].to_string(), h[5..].to_string())
}

/// Parses a range answer: `SUFFIX:COUNT` lines; count-0 lines (padding) are dropped.
pub fn parse_range(body: &str) -> Result<HashMap<String, u64>, BreachError> {
    let mut out = HashMap::new();
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (suffix, count) = line
            .split_once(':')
            .ok_or_else(|| BreachError::BadAnswer("a line without ':'".into()))?;
        if suffix.len() != 35 || !suffix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(BreachError::BadAnswer(
                "a suffix that is not 35 hex digits".into(),
            ));
        }
        let count: u64 = count
            .trim()
            .parse()
            .map_err(|_| BreachError::BadAnswer("a count that is not a number".into()))?;
        if count > 0 {
            out.insert(suffix.to_ascii_uppercase(), count);
        }
    }
    Ok(out)
}

impl RangeClient {
    /// A client for `endpoint` (the prefix is appended to it).
    pub fn new(endpoint: &str) -> Result<RangeClient, BreachError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("syncfabric/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| BreachError::Transport(e.without_url().to_string()))?;
        Ok(RangeClient {
            endpoint: endpoint.to_string(),
            client,
            cache: HashMap::new(),
            requests: 0,
        })
    }

    /// How often `password` appears in known breaches (0: not found).
    pub async fn count(&mut self, password: &str) -> Result<u64, BreachError> {
        let (prefix, suffix) = split_hash(password);
        if !self.cache.contains_key(&prefix) {
            let url = format!("{}{prefix}", self.endpoint);
            self.requests += 1;
            let resp = self
                .client
                .get(url)
                .header("Add-Padding", "true")
                .send()
                .await
                .map_err(|e| BreachError::Transport(e.without_url().to_string()))?;
            if !resp.status().is_success() {
                return Err(BreachError::Status(resp.status().as_u16()));
            }
            let body = syncfabric_http::read_capped(resp, MAX_ANSWER, "range answer")
                .await
                .map_err(|e| BreachError::BadAnswer(e.to_string()))?;
            let text =
                String::from_utf8(body).map_err(|_| BreachError::BadAnswer("not UTF-8".into()))?;
            self.cache.insert(prefix.clone(), parse_range(&text)?);
        }
        Ok(self
            .cache
            .get(&prefix)
            .and_then(|m| m.get(&suffix))
            .copied()
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_split_and_padding_lines() {
        let (p, s) = split_hash("password");
        assert_eq!(p, "5BAA6");
        assert_eq!(s, "1E4C9B93F3F0682250B6CF8331B7EE68FD8");
        let m = parse_range(
            "1E4C9B93F3F0682250B6CF8331B7EE68FD8:3861493\r\n\
             0000000000000000000000000000000000A:0\r\n\
             1e4c9b93f3f0682250b6cf8331b7ee68fd9:2\n",
        )
        .unwrap();
        assert_eq!(m.len(), 2, "the padding line is dropped");
        assert_eq!(m["1E4C9B93F3F0682250B6CF8331B7EE68FD8"], 3861493);
        for bad in ["nonsense", "ABC:1", "1E4C9B93F3F0682250B6CF8331B7EE68FD8:x"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }
}
