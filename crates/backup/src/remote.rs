//! Chains in S3-compatible object storage (`s3://bucket/prefix`), through the `object_store`
//! crate.
//!
//! A chain in a bucket is the same set of files as in a directory, one object each under the
//! prefix. Every operation works on a local copy, so that the chain logic (checksums, replay,
//! the manifest) is one code path for both kinds of target:
//!
//! - [`Remote::pull`] mirrors every object under the prefix into a scratch directory — every
//!   one, not only those the manifest names, so that `verify` reports a foreign or left-over
//!   object by name as it does a file in a directory;
//! - [`Remote::push`] uploads the files a run added, then the manifest **last**: the manifest is
//!   the chain's commit point, so a run cut off mid-upload leaves at most objects the manifest
//!   does not name (reported by `verify`, overwritten by the next run), never a manifest naming
//!   an object that is not there.
//!
//! Credentials and endpoint come from the standard AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` for a non-AWS
//! server, `AWS_ALLOW_HTTP=true` for one without TLS), never from a flag: a flag shows in the
//! process list.

use crate::{Manifest, MANIFEST};
use anyhow::{bail, Context, Result};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a chain lives: a local directory or a bucket and prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A directory.
    Dir(std::path::PathBuf),
    /// `s3://bucket/prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix the chain's objects are under (no leading or trailing `/`).
        prefix: String,
    },
}

impl Location {
    /// `s3://bucket/prefix` names a bucket (the prefix must name the chain: not empty);
    /// anything else is a directory.
    pub fn parse(text: &str) -> Result<Location> {
        let Some(rest) = text.strip_prefix("s3://") else {
            return Ok(Location::Dir(text.into()));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        if bucket.is_empty() || prefix.is_empty() {
            bail!("{text}: name the chain's bucket and prefix, as s3://bucket/paddock/2026-12 (one prefix per chain)");
        }
        Ok(Location::S3 { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }

    /// `s3://bucket/prefix` as its bucket and prefix: where only a bucket will do, a
    /// directory is refused like a URL without a prefix.
    pub fn bucket(text: &str) -> Result<(String, String)> {
        match Location::parse(text)? {
            Location::S3 { bucket, prefix } => Ok((bucket, prefix)),
            Location::Dir(_) => bail!("{text} names no bucket: give s3://bucket/prefix"),
        }
    }
}

/// A chain's objects in a bucket.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// `s3://bucket/prefix`, for messages.
    url: String,
}

impl Remote {
    /// The chain at `bucket`/`prefix`, with credentials and endpoint from the environment.
    pub fn from_env(bucket: &str, prefix: &str) -> Result<Remote> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true") {
            builder = builder.with_allow_http(true);
        }
        let store = builder.build().with_context(|| {
            format!("cannot reach s3://{bucket}: set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (and AWS_ENDPOINT for a server other than AWS)")
        })?;
        Ok(Remote { store: Arc::new(store), prefix: ObjectPath::from(prefix), url: format!("s3://{bucket}/{prefix}") })
    }

    /// The chain (or the root of chains) at `prefix` in `store`; `url` names it in messages.
    pub fn with_store(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Remote {
        Remote { store, prefix: ObjectPath::from(prefix), url: url.to_string() }
    }

    /// The prefix `name` under this one, in the same bucket.
    pub fn child(&self, name: &str) -> Remote {
        Remote { store: self.store.clone(), prefix: self.prefix.child(name), url: format!("{}/{name}", self.url) }
    }

    /// The manifest the bucket holds under this prefix, checked like one on disk; `None` if
    /// there is none. Nothing else is read.
    pub async fn manifest(&self) -> Result<Option<Manifest>> {
        match self.store.get(&self.object(MANIFEST)).await {
            Ok(got) => {
                let bytes = got.bytes().await.with_context(|| format!("cannot read {}/{MANIFEST}", self.url))?;
                crate::parse_manifest(&format!("{}/{MANIFEST}", self.url), &bytes).map(Some)
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}/{MANIFEST}", self.url)),
        }
    }

    /// The names one level under this prefix that hold objects (the chains under a root).
    pub async fn children(&self) -> Result<Vec<String>> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .with_context(|| format!("cannot list {}", self.url))?;
        Ok(listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
    }

    /// Every object under this prefix, at any depth.
    async fn list_all(&self) -> Result<Vec<object_store::ObjectMeta>> {
        self.store.list(Some(&self.prefix)).try_collect().await.with_context(|| format!("cannot list {}", self.url))
    }

    /// Deletes every object under this prefix.
    pub async fn delete_all(&self) -> Result<()> {
        for meta in self.list_all().await? {
            self.store.delete(&meta.location).await.with_context(|| format!("cannot delete {}", meta.location))?;
        }
        Ok(())
    }

    fn object(&self, name: &str) -> ObjectPath {
        self.prefix.child(name)
    }

    /// Copies every object under the prefix into `dir` (which must exist); returns the
    /// manifest's bytes as the bucket holds them, if there is one.
    pub async fn pull(&self, dir: &Path) -> Result<Option<Manifest>> {
        for meta in self.list_all().await? {
            let Some(name) = meta.location.filename() else { continue };
            // Only the chain's own level: a deeper object is another chain's.
            if meta.location.prefix_match(&self.prefix).is_none_or(|mut parts| parts.nth(1).is_some()) {
                continue;
            }
            let bytes = self
                .store
                .get(&meta.location)
                .await
                .with_context(|| format!("cannot read {}/{name}", self.url))?
                .bytes()
                .await
                .with_context(|| format!("cannot read {}/{name}", self.url))?;
            std::fs::write(dir.join(name), &bytes)
                .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
        }
        crate::read_manifest(dir).with_context(|| format!("the manifest in {}", self.url))
    }

    /// Uploads what `dir` holds beyond `before` (the manifest as pulled): the files the run
    /// added, then the manifest.
    pub async fn push(&self, dir: &Path, before: Option<&Manifest>) -> Result<()> {
        let manifest = crate::read_manifest(dir)?.context("the chain has no manifest to upload")?;
        let had = |name: &str| before.is_some_and(|m| m.files.iter().any(|f| f.name == name));
        for file in manifest.files.iter().filter(|f| !had(&f.name)) {
            self.put(dir, &file.name).await?;
        }
        self.put(dir, MANIFEST).await
    }

    async fn put(&self, dir: &Path, name: &str) -> Result<()> {
        let bytes =
            std::fs::read(dir.join(name)).with_context(|| format!("cannot read {}", dir.join(name).display()))?;
        self.store
            .put(&self.object(name), PutPayload::from(bytes))
            .await
            .with_context(|| format!("cannot upload {name} to {}", self.url))?;
        Ok(())
    }
}

/// What [`mirror`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mirrored {
    /// Chains whose new files and manifest were uploaded.
    pub copied: Vec<String>,
    /// Chains deleted from the bucket because they are no longer kept locally.
    pub deleted: Vec<String>,
}

/// Makes the chains under `root` in the bucket those of `chains` (name, local directory): a
/// chain whose manifest there is not the local one gets the files the bucket lacks, then its
/// manifest (last: the commit point, as [`Remote::push`]); a chain there named like a
/// schedule's (`chain-<ms>`) that is not kept locally any more is deleted, so retention holds
/// off-site too. Nothing else under the root is touched. The local chains are the truth: a
/// run that fails part-way is finished by the next.
pub async fn mirror(root: &Remote, chains: &[(String, PathBuf)]) -> Result<Mirrored> {
    let mut done = Mirrored::default();
    for (name, dir) in chains {
        let Some(local) = crate::read_manifest(dir)? else { continue };
        let remote = root.child(name);
        let there = remote.manifest().await?;
        if there.as_ref().is_some_and(|m| m.sha256 == local.sha256) {
            continue;
        }
        remote.push(dir, there.as_ref()).await?;
        done.copied.push(name.clone());
    }
    for name in root.children().await? {
        let schedules =
            name.strip_prefix("chain-").is_some_and(|ms| !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()));
        if schedules && !chains.iter().any(|(kept, _)| *kept == name) {
            root.child(&name).delete_all().await?;
            done.deleted.push(name);
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_url_names_a_bucket_and_a_prefix_and_anything_else_a_directory() {
        assert_eq!(
            Location::parse("s3://backups/paddock/2026-12/").unwrap(),
            Location::S3 { bucket: "backups".into(), prefix: "paddock/2026-12".into() }
        );
        assert_eq!(Location::parse("/var/backups/c1").unwrap(), Location::Dir("/var/backups/c1".into()));
    }

    #[test]
    fn an_s3_url_without_a_prefix_is_refused_since_a_chain_needs_its_own() {
        let err = Location::parse("s3://backups").unwrap_err().to_string();
        assert!(err.contains("name the chain's bucket and prefix"), "{err}");
        assert!(Location::parse("s3:///x").is_err());
    }
}
