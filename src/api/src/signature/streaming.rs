//! Chunk signatures of `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` bodies (aws-chunked).
//!
//! Each chunk's signature is an HMAC, with the request's signing key, of
//! `AWS4-HMAC-SHA256-PAYLOAD \n datetime \n scope \n previous signature \n
//! SHA-256("") \n SHA-256(chunk)`; the first chunk chains to the signature of
//! the request headers, and the body ends with a signed empty chunk. A
//! chunk whose signature does not match fails the whole upload.

use sha2::{Digest, Sha256};

use super::error::SigError;
use super::signing_key_cache::{constant_time_eq, hmac_sha256};

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Computes (client) or checks (server) the chain of chunk signatures.
#[derive(Clone)]
pub struct ChunkSigner {
    key: [u8; 32],
    datetime: String,
    scope: String,
    previous: [u8; 32],
}

impl std::fmt::Debug for ChunkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSigner")
            .field("datetime", &self.datetime)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ChunkSigner {
    /// A chain starting at `seed` (the request's signature), signing with `key`.
    pub fn new(key: [u8; 32], datetime: &str, scope: &str, seed: [u8; 32]) -> Self {
        Self {
            key,
            datetime: datetime.to_owned(),
            scope: scope.to_owned(),
            previous: seed,
        }
    }

    /// The signature of the next chunk; advances the chain.
    pub fn sign(&mut self, chunk: &[u8]) -> [u8; 32] {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            self.datetime,
            self.scope,
            hex::encode(self.previous),
            hex::encode(Sha256::digest(chunk))
        );
        let sig = hmac_sha256(&self.key, sts.as_bytes());
        self.previous = sig;
        sig
    }

    /// Checks the signature (hex) announced for the next chunk; `AccessDenied` on a mismatch.
    pub fn verify(&mut self, chunk: &[u8], announced_hex: &str) -> Result<(), SigError> {
        let mut announced = [0u8; 32];
        hex::decode_to_slice(announced_hex, &mut announced)
            .map_err(|_| SigError::malformed("a chunk signature must be 64 hex digits"))?;
        let expected = self.sign(chunk);
        if constant_time_eq(&expected, &announced) {
            Ok(())
        } else {
            Err(SigError::denied(
                "the chunk signature does not match the signature computed with your key",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::signing_key;

    /// The example of AWS's "Signature Calculations for the Authorization
    /// Header: Transferring Payload in Multiple Chunks" page: 65 KiB of 'a'
    /// sent as chunks of 64 KiB, 1 KiB and 0 bytes.
    #[test]
    fn aws_example_chain() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "20130524",
            "us-east-1",
            "s3",
        );
        let mut seed = [0u8; 32];
        hex::decode_to_slice(
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
            &mut seed,
        )
        .expect("hex");
        let mut s = ChunkSigner::new(
            key,
            "20130524T000000Z",
            "20130524/us-east-1/s3/aws4_request",
            seed,
        );
        let first = vec![b'a'; 65536];
        assert_eq!(
            hex::encode(s.sign(&first)),
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
        );
        let mut v = s.clone();
        assert!(v
            .verify(
                &[b'a'; 1024],
                "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
            )
            .is_ok());
        assert!(s
            .verify(
                &[b'b'; 1024],
                "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
            )
            .is_err());
        assert_eq!(
            hex::encode(v.sign(b"")),
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
        );
    }
}
