//! The node's identity: an ed25519 key pair created on first start in
//! `metadata_dir` (`node_key` holds the secret key, `node_key.pub` the
//! public key, which is the node id).

use std::path::Path;

use garage_util::data::Uuid;
use sodiumoxide::crypto::sign::ed25519;

/// Errors reading or creating the node key.
#[derive(Debug, thiserror::Error)]
pub enum NodeKeyError {
    /// File system error.
    #[error("node key in {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a valid key.
    #[error("node key file {path} is corrupted (expected 64 bytes)")]
    Corrupted {
        /// The file.
        path: String,
    },
    /// No key exists yet.
    #[error("no node key in {dir}: start the server once first")]
    Missing {
        /// The metadata directory.
        dir: String,
    },
}

/// The node's secret key (opaque to other crates).
#[derive(Clone)]
pub struct NodeSecret(pub(crate) ed25519::SecretKey);

impl NodeSecret {
    /// The public id.
    pub fn id(&self) -> Uuid {
        Uuid::try_from_slice(self.0.public_key().as_ref()).unwrap_or_default()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> NodeKeyError + '_ {
    move |source| NodeKeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads the key of `metadata_dir`, creating it if absent.
pub fn read_or_create(metadata_dir: &Path) -> Result<NodeSecret, NodeKeyError> {
    let path = metadata_dir.join("node_key");
    if path.exists() {
        return read(metadata_dir);
    }
    std::fs::create_dir_all(metadata_dir).map_err(io_err(metadata_dir))?;
    let _ = sodiumoxide::init();
    let (pk, sk) = sodiumoxide::crypto::sign::ed25519::gen_keypair();
    let tmp = metadata_dir.join("node_key.tmp");
    write_private(&tmp, sk.as_ref()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    let pub_path = metadata_dir.join("node_key.pub");
    std::fs::write(&pub_path, pk.as_ref()).map_err(io_err(&pub_path))?;
    Ok(NodeSecret(sk))
}

/// Reads an existing key.
pub fn read(metadata_dir: &Path) -> Result<NodeSecret, NodeKeyError> {
    let path = metadata_dir.join("node_key");
    if !path.exists() {
        return Err(NodeKeyError::Missing {
            dir: metadata_dir.display().to_string(),
        });
    }
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    let sk = ed25519::SecretKey::from_slice(&bytes).ok_or_else(|| NodeKeyError::Corrupted {
        path: path.display().to_string(),
    })?;
    Ok(NodeSecret(sk))
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_and_reread() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            read(dir.path()),
            Err(NodeKeyError::Missing { .. })
        ));
        let a = read_or_create(dir.path()).expect("create");
        let b = read_or_create(dir.path()).expect("reread");
        assert_eq!(a.id(), b.id());
        std::fs::write(dir.path().join("node_key"), b"short").expect("write");
        assert!(matches!(
            read(dir.path()),
            Err(NodeKeyError::Corrupted { .. })
        ));
    }
}
