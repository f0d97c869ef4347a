//! Dropbox's `content_hash`: the file split into 4 MiB blocks, each block hashed with
//! SHA-256, the binary digests concatenated and hashed once more with SHA-256, written
//! as 64 lower-case hex digits (Dropbox reference, "Content hash",
//! <https://www.dropbox.com/developers/reference/content-hash>).

use openssl::sha::Sha256;

/// The block size of the content hash: 4 MiB.
pub const BLOCK: usize = 4 * 1024 * 1024;

/// An incremental content hash.
pub struct ContentHasher {
    block: Sha256,
    in_block: usize,
    overall: Sha256,
}

impl Default for ContentHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl ContentHasher {
    /// An empty hash.
    pub fn new() -> Self {
        ContentHasher {
            block: Sha256::new(),
            in_block: 0,
            overall: Sha256::new(),
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (BLOCK - self.in_block).min(data.len());
            self.block.update(&data[..take]);
            self.in_block += take;
            data = &data[take..];
            if self.in_block == BLOCK {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        let done = std::mem::replace(&mut self.block, Sha256::new());
        self.overall.update(&done.finish());
        self.in_block = 0;
    }

    /// The hash as 64 hex digits. An empty file hashes no block at all.
    pub fn finish(mut self) -> String {
        if self.in_block > 0 {
            self.close_block();
        }
        hex::encode(self.overall.finish())
    }
}

/// The content hash of `data`.
pub fn content_hash(data: &[u8]) -> String {
    let mut h = ContentHasher::new();
    h.update(data);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition() {
        // Empty: SHA-256 of nothing (no blocks).
        assert_eq!(
            content_hash(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // One block: SHA-256(SHA-256(data)).
        let one = openssl::sha::sha256(&openssl::sha::sha256(b"abc"));
        assert_eq!(content_hash(b"abc"), hex::encode(one));
        // Two blocks, fed in odd pieces.
        let data: Vec<u8> = (0..BLOCK + 10).map(|i| (i % 251) as u8).collect();
        let mut cat = Vec::new();
        cat.extend_from_slice(&openssl::sha::sha256(&data[..BLOCK]));
        cat.extend_from_slice(&openssl::sha::sha256(&data[BLOCK..]));
        let mut h = ContentHasher::new();
        for piece in data.chunks(1_000_003) {
            h.update(piece);
        }
        assert_eq!(h.finish(), hex::encode(openssl::sha::sha256(&cat)));
    }
}
