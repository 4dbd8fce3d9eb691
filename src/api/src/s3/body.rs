//! Request bodies read as a stream, checked against what the signature
//! announced, and the response body type.
//!
//! [`BodyReader`] yields the payload piece by piece: a plain body is hashed
//! on the way (SHA-256 when a hash was signed) and checked at its end; an
//! aws-chunked body (`STREAMING-…`) is decoded, each chunk's signature
//! checked before its data is handed out. An error at the end means the
//! caller must not commit what it wrote. [`Chunker`] cuts the payload into
//! blocks of a fixed size. Nothing here holds more than one block (or one
//! aws chunk) in memory.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use super::error::S3Error;
use crate::signature::{ChunkSigner, PayloadHash, SigError, SigErrorKind};

/// The response body of the S3 API: a buffer or a stream of blocks.
pub type S3Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// A response body from bytes.
pub fn full(b: impl Into<Bytes>) -> S3Body {
    http_body_util::Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Largest aws-chunked chunk accepted (clients send 64 KiB to 1 MiB).
const MAX_AWS_CHUNK: usize = 16 << 20;

enum Mode {
    /// A plain body; hashed when a SHA-256 was signed.
    Plain(Option<([u8; 32], Sha256)>),
    /// aws-chunked, each chunk signed when a signer is given.
    Chunked {
        signer: Option<ChunkSigner>,
        raw: BytesMut,
        finished: bool,
    },
}

/// Reads a request body piece by piece, checking it.
pub struct BodyReader {
    body: Option<Incoming>,
    mode: Mode,
    /// Payload bytes handed out so far.
    pub read: u64,
    /// `x-amz-decoded-content-length` of an aws-chunked body.
    decoded_length: Option<u64>,
}

fn digest_error(msg: &str) -> S3Error {
    S3Error::Signature(SigError::new(SigErrorKind::InvalidDigest, msg))
}

impl BodyReader {
    /// A reader of `body`, checked against `payload`; `signer` is needed for
    /// signed chunks.
    pub fn new(
        body: Incoming,
        payload: &PayloadHash,
        signer: Option<ChunkSigner>,
        decoded_length: Option<u64>,
    ) -> Result<Self, S3Error> {
        let mode = match payload {
            PayloadHash::Unsigned => Mode::Plain(None),
            PayloadHash::Sha256(h) => Mode::Plain(Some((*h, Sha256::new()))),
            PayloadHash::StreamingSigned => Mode::Chunked {
                signer: Some(signer.ok_or_else(|| {
                    S3Error::Internal("no chunk signer for a signed stream".into())
                })?),
                raw: BytesMut::new(),
                finished: false,
            },
            PayloadHash::StreamingUnsignedTrailer => Mode::Chunked {
                signer: None,
                raw: BytesMut::new(),
                finished: false,
            },
        };
        Ok(Self {
            body: Some(body),
            mode,
            read: 0,
            decoded_length,
        })
    }

    /// The next raw bytes of the HTTP body (None at its end).
    async fn raw_next(body: &mut Option<Incoming>) -> Result<Option<Bytes>, S3Error> {
        let Some(b) = body.as_mut() else {
            return Ok(None);
        };
        loop {
            match b.frame().await {
                None => {
                    *body = None;
                    return Ok(None);
                }
                Some(Err(e)) => {
                    return Err(S3Error::InvalidRequest(format!(
                        "cannot read the body: {e}"
                    )))
                }
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        if !d.is_empty() {
                            return Ok(Some(d));
                        }
                    }
                }
            }
        }
    }

    /// The next piece of payload; None once the whole body was read and
    /// checked. An error means the body is not what was signed.
    pub async fn next(&mut self) -> Result<Option<Bytes>, S3Error> {
        let out = match &mut self.mode {
            Mode::Plain(hash) => match Self::raw_next(&mut self.body).await? {
                Some(d) => {
                    if let Some((_, h)) = hash {
                        h.update(&d);
                    }
                    Some(d)
                }
                None => {
                    if let Some((expected, h)) = hash.take() {
                        let got: [u8; 32] = h.finalize().into();
                        if got != expected {
                            return Err(digest_error(
                                "the body does not match the x-amz-content-sha256 header",
                            ));
                        }
                    }
                    None
                }
            },
            Mode::Chunked {
                signer,
                raw,
                finished,
            } => loop {
                if *finished {
                    break None;
                }
                if let Some((chunk, consumed)) = parse_chunk(raw, signer.is_some())? {
                    let sig = chunk.signature.as_deref().unwrap_or("");
                    if chunk.size == 0 {
                        if let Some(s) = signer.as_mut() {
                            s.verify(b"", sig)?;
                        }
                        *finished = true;
                        // What follows the final chunk (CRLF, or trailing
                        // checksum headers) is read and not checked.
                        while Self::raw_next(&mut self.body).await?.is_some() {}
                        if let Some(n) = self.decoded_length.filter(|n| *n != self.read) {
                            return Err(S3Error::InvalidRequest(format!(
                                "the aws-chunked body holds {} bytes, not the \
                                 x-amz-decoded-content-length {n}",
                                self.read
                            )));
                        }
                        break None;
                    }
                    // parse_chunk checked that header, data and CRLF are all in `raw`.
                    let _ = raw.split_to(consumed.header);
                    let data = raw.split_to(chunk.size).freeze();
                    let _ = raw.split_to(2);
                    if let Some(s) = signer.as_mut() {
                        s.verify(&data, sig)?;
                    }
                    break Some(data);
                }
                match Self::raw_next(&mut self.body).await? {
                    Some(d) => raw.extend_from_slice(&d),
                    None => {
                        return Err(S3Error::InvalidRequest(
                            "the aws-chunked body ends before its final chunk".into(),
                        ))
                    }
                }
            },
        };
        if let Some(d) = &out {
            self.read += d.len() as u64;
        }
        Ok(out)
    }

    /// The whole payload, refused past `limit` bytes (small XML bodies).
    pub async fn read_all(&mut self, limit: usize) -> Result<Bytes, S3Error> {
        let mut out = BytesMut::new();
        while let Some(d) = self.next().await? {
            if out.len() + d.len() > limit {
                return Err(S3Error::EntityTooLarge);
            }
            out.extend_from_slice(&d);
        }
        Ok(out.freeze())
    }
}

/// A parsed aws-chunked chunk header.
struct ChunkHeader {
    size: usize,
    signature: Option<String>,
}

/// Lengths of a chunk's parts in the raw buffer.
struct Consumed {
    header: usize,
}

/// Parses the chunk at the start of `raw` when all of it has arrived:
/// `hex-size[;chunk-signature=sig]\r\n data \r\n` (the last chunk has size
/// 0; in trailer mode it is followed by trailer lines, read separately).
fn parse_chunk(raw: &BytesMut, signed: bool) -> Result<Option<(ChunkHeader, Consumed)>, S3Error> {
    let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
        if raw.len() > 4096 {
            return Err(S3Error::InvalidRequest(
                "an aws-chunked header is too long".into(),
            ));
        }
        return Ok(None);
    };
    let line = std::str::from_utf8(&raw[..eol])
        .map_err(|_| S3Error::InvalidRequest("an aws-chunked header is not ASCII".into()))?;
    let (size_hex, ext) = line.split_once(';').unwrap_or((line, ""));
    let size = usize::from_str_radix(size_hex.trim(), 16)
        .ok()
        .filter(|s| *s <= MAX_AWS_CHUNK)
        .ok_or_else(|| S3Error::InvalidRequest(format!("invalid aws-chunked size {size_hex:?}")))?;
    let signature = ext
        .split(';')
        .find_map(|e| e.trim().strip_prefix("chunk-signature="))
        .map(str::to_owned);
    if signed && signature.is_none() {
        return Err(S3Error::Signature(SigError::new(
            SigErrorKind::AccessDenied,
            "an aws-chunked chunk has no chunk-signature",
        )));
    }
    let header = eol + 2;
    if size == 0 {
        // The final chunk: its data is empty; what follows (CRLF or
        // trailers) is drained by the reader.
        return Ok(Some((ChunkHeader { size, signature }, Consumed { header })));
    }
    if raw.len() < header + size + 2 {
        return Ok(None);
    }
    if &raw[header + size..header + size + 2] != b"\r\n" {
        return Err(S3Error::InvalidRequest(
            "an aws-chunked chunk is not followed by CRLF".into(),
        ));
    }
    Ok(Some((ChunkHeader { size, signature }, Consumed { header })))
}

/// Where a [`Chunker`] reads from.
pub enum ChunkSource<'a> {
    /// A request body.
    Body(&'a mut BodyReader),
    /// Data read elsewhere (a copy).
    Stream(futures::stream::BoxStream<'a, Result<Bytes, S3Error>>),
}

/// Cuts a payload into blocks of `block_size` bytes (the last one shorter).
pub struct Chunker<'a> {
    source: ChunkSource<'a>,
    block_size: usize,
    buf: BytesMut,
    eof: bool,
}

impl<'a> Chunker<'a> {
    /// A chunker over `reader`, starting with the bytes already in `first`.
    pub fn new(reader: &'a mut BodyReader, block_size: usize, first: BytesMut) -> Self {
        Self::from_source(ChunkSource::Body(reader), block_size, first)
    }

    /// A chunker over any source.
    pub fn from_source(source: ChunkSource<'a>, block_size: usize, first: BytesMut) -> Self {
        Self {
            source,
            block_size: block_size.max(1),
            buf: first,
            eof: false,
        }
    }

    /// The next block; None at the end (the body then has been checked).
    pub async fn next(&mut self) -> Result<Option<Bytes>, S3Error> {
        use futures::StreamExt;
        while !self.eof && self.buf.len() < self.block_size {
            let piece = match &mut self.source {
                ChunkSource::Body(r) => r.next().await?,
                ChunkSource::Stream(s) => s.next().await.transpose()?,
            };
            match piece {
                Some(d) => self.buf.extend_from_slice(&d),
                None => self.eof = true,
            }
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let n = self.block_size.min(self.buf.len());
        Ok(Some(self.buf.split_to(n).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_headers() {
        let sig = "a".repeat(64);
        let raw = BytesMut::from(
            format!("5;chunk-signature={sig}\r\nhello\r\n0;chunk-signature={sig}\r\n\r\n")
                .as_bytes(),
        );
        let (h, c) = parse_chunk(&raw, true).expect("parse").expect("complete");
        assert_eq!(
            (h.size, h.signature.as_deref(), c.header),
            (5, Some(sig.as_str()), 84)
        );
        // Incomplete data: wait for more.
        let part = BytesMut::from(&raw[..85]);
        assert!(parse_chunk(&part, true).expect("parse").is_none());
        // No signature where one is needed; bad sizes; data not followed by CRLF.
        let unsigned = BytesMut::from(&b"5\r\nhello\r\n"[..]);
        assert!(parse_chunk(&unsigned, true).is_err());
        assert_eq!(
            parse_chunk(&unsigned, false)
                .expect("parse")
                .map(|(h, _)| h.size),
            Some(5)
        );
        assert!(parse_chunk(&BytesMut::from(&b"zz\r\n"[..]), false).is_err());
        assert!(parse_chunk(&BytesMut::from(&b"fffffffff\r\n"[..]), false).is_err());
        assert!(parse_chunk(&BytesMut::from(&b"2\r\nabXY"[..]), false).is_err());
        // Trailer mode: the last chunk has size 0.
        let last = BytesMut::from(&b"0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n"[..]);
        assert_eq!(
            parse_chunk(&last, false)
                .expect("parse")
                .map(|(h, _)| h.size),
            Some(0)
        );
    }
}
