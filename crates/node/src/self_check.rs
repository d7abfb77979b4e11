//! Self-authentication (R8 of the domain brief): the node hashes its own binary and its
//! effective configuration at start, on demand (`GET /v1/self-check`) and on a schedule (every
//! `self_check_interval_s`, a day by default), and compares them with the digests the operator
//! expects (`expected_binary_sha256`, `expected_config_sha256`).
//!
//! A mismatch — a binary other than the one released, a configuration edited outside change
//! control, a binary replaced on disk under a running process — sets
//! `paddock_self_check_ok` to 0, counts `paddock_self_check_failures_total` and logs at ERROR
//! what differs. It does not stop the node: taking the book offline is the operator's call.
//!
//! The binary is read through `/proc/self/exe`, the image this process runs, so a file
//! swapped in at the same path after start is seen as the change it is. The configuration
//! digest covers the settings as canonical JSON and then the static keys file's bytes (its
//! digests decide who may act as an operator); certificate files are left out, since they are
//! renewed routinely.

use crate::config::NodeConfig;
use paddock_api::wire::SelfCheckBody;
use sha2::{Digest, Sha256};
use std::io::Read;

/// Digests taken at start, to compare later checks with.
#[derive(Clone, Debug)]
pub(crate) struct AtStart {
    binary: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the running binary.
fn binary_digest() -> Result<String, String> {
    let mut file = std::fs::File::open("/proc/self/exe")
        .or_else(|_| std::env::current_exe().and_then(std::fs::File::open))
        .map_err(|e| format!("cannot open the running binary: {e}"))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer).map_err(|e| format!("cannot read the running binary: {e}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of the effective configuration.
pub fn config_digest(config: &NodeConfig) -> Result<String, String> {
    // The expected digests are not part of what they check (they could never match).
    let mut settings = config.clone();
    settings.expected_binary_sha256 = None;
    settings.expected_config_sha256 = None;
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(&settings).map_err(|e| format!("configuration does not encode: {e}"))?);
    if let Some(path) = &config.static_keys_file {
        hasher.update(std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?);
    }
    Ok(hex(&hasher.finalize()))
}

impl AtStart {
    /// Hashes the binary as it is when the node starts.
    pub(crate) fn take() -> Result<AtStart, String> {
        Ok(AtStart { binary: binary_digest()? })
    }
}

/// Runs one check, records its metrics and log lines, and returns the answer.
pub(crate) fn check(config: &NodeConfig, at_start: &AtStart, now_ms: u64) -> SelfCheckBody {
    let binary = binary_digest().unwrap_or_else(|e| format!("unreadable: {e}"));
    let config_sha = config_digest(config).unwrap_or_else(|e| format!("unreadable: {e}"));
    let mut mismatches = Vec::new();
    if binary != at_start.binary {
        mismatches.push(format!("the binary changed since start: {} then, {binary} now", at_start.binary));
    }
    if let Some(expected) = config.expected_binary_sha256.as_ref().filter(|e| !e.eq_ignore_ascii_case(&binary)) {
        mismatches.push(format!("the binary's SHA-256 is {binary}, expected {expected}"));
    }
    if let Some(expected) = config.expected_config_sha256.as_ref().filter(|e| !e.eq_ignore_ascii_case(&config_sha)) {
        mismatches.push(format!("the configuration's SHA-256 is {config_sha}, expected {expected}"));
    }
    let ok = mismatches.is_empty();
    metrics::gauge!("paddock_self_check_ok").set(if ok { 1.0 } else { 0.0 });
    metrics::gauge!("paddock_self_check_last_run_timestamp_seconds").set(now_ms as f64 / 1000.0);
    if ok {
        tracing::info!(binary_sha256 = %binary, config_sha256 = %config_sha, "self-check passed");
    } else {
        metrics::counter!("paddock_self_check_failures_total").increment(1);
        for m in &mismatches {
            tracing::error!(mismatch = %m, "SELF-CHECK FAILED");
        }
    }
    SelfCheckBody {
        binary_sha256: binary,
        binary_sha256_at_start: at_start.binary.clone(),
        config_sha256: config_sha,
        expected_binary_sha256: config.expected_binary_sha256.clone(),
        expected_config_sha256: config.expected_config_sha256.clone(),
        ok,
        mismatches,
        checked_at_ms: now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NodeConfig {
        NodeConfig::new(1, "/tmp/p1".into(), "127.0.0.1:7001".parse().unwrap(), "127.0.0.1:7101".parse().unwrap())
    }

    #[test]
    fn the_configuration_digest_follows_every_setting_but_the_expected_digests() {
        let base = config_digest(&config()).unwrap();
        let mut changed = config();
        changed.rate_limit_per_principal_per_s = 10;
        assert_ne!(config_digest(&changed).unwrap(), base, "a changed setting changes the digest");
        let mut expecting = config();
        expecting.expected_config_sha256 = Some(base.clone());
        assert_eq!(config_digest(&expecting).unwrap(), base, "naming the digest does not change it");
    }

    #[test]
    fn a_check_passes_when_the_digests_match_and_names_each_mismatch() {
        let at_start = AtStart::take().unwrap();
        let mut c = config();
        let passed = check(&c, &at_start, 1);
        assert!(passed.ok && passed.mismatches.is_empty());
        c.expected_binary_sha256 = Some(passed.binary_sha256.to_uppercase());
        c.expected_config_sha256 = Some(config_digest(&c).unwrap());
        assert!(check(&c, &at_start, 2).ok, "hex case does not matter");
        c.expected_binary_sha256 = Some("00".repeat(32));
        c.expected_config_sha256 = Some("11".repeat(32));
        let failed = check(&c, &at_start, 3);
        assert!(!failed.ok);
        assert_eq!(failed.mismatches.len(), 2, "{:?}", failed.mismatches);
        assert!(failed.mismatches[0].contains("binary") && failed.mismatches[1].contains("configuration"));
    }
}
