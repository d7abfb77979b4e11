//! `paddock backup` over HTTP: a node's snapshot and committed log as a
//! [`paddock_backup::Source`], from the operator routes `GET /v1/backup/snapshot` and
//! `GET /v1/backup/log`. The chain itself (formats, verify, restore) is `paddock_backup`.

use anyhow::Result;
use paddock_backup::LogFetchError;
use paddock_client::Client;

/// The backup key: from `file`, else from `PADDOCK_BACKUP_KEY` (hex), else none.
pub fn key(file: Option<&std::path::Path>) -> Result<Option<paddock_backup::Key>> {
    if let Some(file) = file {
        return Ok(Some(paddock_backup::Key::from_file(file)?));
    }
    match std::env::var("PADDOCK_BACKUP_KEY") {
        Ok(hex) => Ok(Some(
            paddock_backup::Key::parse(hex.as_bytes()).map_err(|e| anyhow::anyhow!("PADDOCK_BACKUP_KEY: {e}"))?,
        )),
        Err(_) => Ok(None),
    }
}

/// A node reached over its HTTP API with an operator key.
pub struct ClientSource<'a>(pub &'a Client);

impl paddock_backup::Source for ClientSource<'_> {
    async fn cluster_id(&self) -> Result<String> {
        Ok(self.0.cluster().await?.cluster_id)
    }

    async fn snapshot(&self) -> Result<Vec<u8>> {
        Ok(self.0.get_bytes("/v1/backup/snapshot").await?)
    }

    async fn log(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, LogFetchError> {
        match self.0.get_bytes(&format!("/v1/backup/log?from={from}&limit={limit}")).await {
            Ok(page) => paddock_backup::decode_entries(&page)
                .ok_or_else(|| LogFetchError::Other(anyhow::anyhow!("the node's log answer is cut short"))),
            Err(e) if e.code() == Some("log_purged") => Err(LogFetchError::Purged(e.to_string())),
            Err(e) => Err(LogFetchError::Other(e.into())),
        }
    }
}

/// A chain to work on: a directory as it is, or a scratch copy of a chain in a bucket
/// (`s3://bucket/prefix`), pushed back by [`Working::finish`] after a backup run.
pub struct Working {
    dir: std::path::PathBuf,
    remote: Option<(paddock_backup::remote::Remote, Option<paddock_backup::Manifest>)>,
    _scratch: Option<tempfile::TempDir>,
}

impl Working {
    /// Opens `location`: a directory, or `s3://bucket/prefix` (copied into a scratch directory).
    pub async fn open(location: &str) -> Result<Working> {
        match paddock_backup::remote::Location::parse(location)? {
            paddock_backup::remote::Location::Dir(dir) => Ok(Working { dir, remote: None, _scratch: None }),
            paddock_backup::remote::Location::S3 { bucket, prefix } => {
                let remote = paddock_backup::remote::Remote::from_env(&bucket, &prefix)?;
                let scratch = tempfile::Builder::new().prefix("paddock-chain-").tempdir()?;
                let before = remote.pull(scratch.path()).await?;
                Ok(Working {
                    dir: scratch.path().to_path_buf(),
                    remote: Some((remote, before)),
                    _scratch: Some(scratch),
                })
            }
        }
    }

    /// The directory to work in.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Whether a backup run leaves the chain's tip: not in a scratch copy of a bucket's chain,
    /// which is gone after the run.
    pub fn tip(&self) -> paddock_backup::Tip {
        if self.remote.is_some() {
            paddock_backup::Tip::Skip
        } else {
            paddock_backup::Tip::Keep
        }
    }

    /// Uploads what the run added, for a chain in a bucket (the manifest last).
    pub async fn finish(self) -> Result<()> {
        if let Some((remote, before)) = &self.remote {
            remote.push(&self.dir, before.as_ref()).await?;
        }
        Ok(())
    }
}

/// Opens `location` for reading from synchronous code (verify, restore).
pub fn open_blocking(location: &str) -> Result<Working> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(Working::open(location))
}
