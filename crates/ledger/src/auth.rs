//! Principals and API keys: who may call the API, held in the replicated state so that every
//! node authenticates every request alike and a key revoked on one node is revoked on all.
//!
//! The ledger stores only a key's SHA-256 digest ([`key_hash`]), never the secret: the secret
//! is 256 random bits made outside the ledger (by the node or by the operator's own machine), so
//! a fast hash is as strong here as a slow one is for a password, and costs one microsecond on
//! the per-request path instead of the tens of milliseconds of argon2.
//!
//! The key text a client sends is `pdk_<id: 16 hex>_<secret: 64 hex>`; the id finds the record,
//! the digest of id and secret must match it.

use crate::apply::{ApplyCtx, Handled};
use crate::audit::AuditEvent;
use crate::code::ResultCode;
use crate::ids::{AccountId, Actor, TimestampMs};
use crate::outcome::Done;
use crate::state::State;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What a principal may do; the node maps each route to the roles that may call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A player: reads and moves money only on the accounts bound to them.
    Bettor,
    /// Trading staff: events, markets, prices, suspensions.
    Trader,
    /// Operations staff: settlement, voids, accounts' limits, membership, principals and keys.
    Operator,
    /// Read-only: accounts, bets, the audit trail, the cluster.
    Auditor,
    /// A system acting for many players: a betting front end, a payment gateway, the load
    /// generator, the demo.
    Service,
}

impl Role {
    /// Every role, in declaration order.
    pub const ALL: [Role; 5] = [Role::Bettor, Role::Trader, Role::Operator, Role::Auditor, Role::Service];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Bettor => "bettor",
            Role::Trader => "trader",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::Service => "service",
        }
    }

    /// The role of a wire name.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// People, whose keys are sessions with a bounded lifetime; a service's key may be
    /// long-lived (and is rotated instead).
    pub fn is_interactive(self) -> bool {
        self != Role::Service
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API key's public identifier (the first part of the key text; not a secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub u64);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// SHA-256 of a key's id and secret: what the state stores instead of the secret.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyHash(pub [u8; 32]);

impl fmt::Debug for KeyHash {
    // A digest is not a secret, but it has no business in logs either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

/// Length of a key's secret in bytes (256 bits).
pub const KEY_SECRET_LEN: usize = 32;
/// Longest principal name, in bytes.
pub const PRINCIPAL_NAME_LEN_MAX: usize = 64;
/// Accounts one principal may hold.
pub const PRINCIPAL_ACCOUNTS_MAX: usize = 64;
/// Live keys one principal may hold (keys that ended are dropped 30 days later).
pub const PRINCIPAL_KEYS_MAX: usize = 16;
/// Domain separation: a digest of this kind is never mistaken for any other SHA-256 in Paddock.
const KEY_HASH_CONTEXT: &[u8] = b"paddock api key v1\0";

/// The digest stored for a key.
pub fn key_hash(id: KeyId, secret: &[u8; KEY_SECRET_LEN]) -> KeyHash {
    let mut h = Sha256::new();
    h.update(KEY_HASH_CONTEXT);
    h.update(id.0.to_be_bytes());
    h.update(secret);
    KeyHash(h.finalize().into())
}

/// A key as a client holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyText {
    /// Which record.
    pub id: KeyId,
    /// The secret part.
    pub secret: [u8; KEY_SECRET_LEN],
}

impl fmt::Debug for KeyText {
    // Never print a secret, not even in a test failure.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyText({}, ..)", self.id)
    }
}

impl KeyText {
    /// `pdk_<16 hex>_<64 hex>`.
    pub fn parse(text: &str) -> Option<KeyText> {
        let rest = text.strip_prefix("pdk_")?;
        let (id, secret) = rest.split_once('_')?;
        if id.len() != 16 || secret.len() != 2 * KEY_SECRET_LEN {
            return None;
        }
        let id = u64::from_str_radix(id, 16).ok()?;
        let mut out = [0u8; KEY_SECRET_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(secret.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(KeyText { id: KeyId(id), secret: out })
    }

    /// The text form (contains the secret: show it once, never log it).
    pub fn expose(&self) -> String {
        let mut s = format!("pdk_{}_", self.id);
        for b in self.secret {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// The digest the state stores for it.
    pub fn hash(&self) -> KeyHash {
        key_hash(self.id, &self.secret)
    }
}

/// Whether a principal name is acceptable: 1–64 of `a-z 0-9 . _ @ -`, so that names are
/// printable in logs and audit trails without quoting and cannot impersonate each other by
/// case or Unicode look-alikes.
pub fn principal_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= PRINCIPAL_NAME_LEN_MAX
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._@-".contains(&b))
}

/// A principal as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub(crate) role: Role,
    /// For a bettor, the accounts they own; empty for other roles.
    pub(crate) accounts: BTreeSet<AccountId>,
    /// Its keys, live or not yet pruned.
    pub(crate) keys: BTreeSet<KeyId>,
    pub(crate) created_at: TimestampMs,
    pub(crate) created_by: Actor,
}

/// An API key as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub(crate) principal: String,
    pub(crate) hash: KeyHash,
    pub(crate) created_at: TimestampMs,
    pub(crate) expires_at: Option<TimestampMs>,
    pub(crate) revoked_at: Option<TimestampMs>,
}

/// Every principal and key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub(crate) principals: BTreeMap<String, Principal>,
    pub(crate) keys: BTreeMap<KeyId, ApiKey>,
    /// Which principal owns each bound account (one owner per account).
    pub(crate) owners: BTreeMap<AccountId, String>,
}

/// A principal, for readers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrincipalView {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Bound accounts (bettors).
    pub accounts: Vec<AccountId>,
    /// When it was created.
    pub created_at: TimestampMs,
    /// Who created it.
    pub created_by: String,
    /// Its keys, without their digests.
    pub keys: Vec<KeyView>,
}

/// A key, for readers: never its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyView {
    /// Public id.
    pub id: KeyId,
    /// Owner.
    pub principal: String,
    /// When issued.
    pub created_at: TimestampMs,
    /// When it stops working, if ever.
    pub expires_at: Option<TimestampMs>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<TimestampMs>,
}

/// What a presented key proves, if it is valid at `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The principal's name.
    pub principal: String,
    /// Its role.
    pub role: Role,
    /// The key used.
    pub key: KeyId,
    /// When that key expires.
    pub expires_at: Option<TimestampMs>,
}

impl State {
    /// Checks a presented key: it exists, its digest matches (compared in constant time), it
    /// is not revoked, and it has not expired at `now` (the caller's clock: authentication is
    /// a read, not a command).
    pub fn authenticate(&self, key: &KeyText, now: TimestampMs) -> Option<Authenticated> {
        let record = self.auth.keys.get(&key.id)?;
        if !digests_equal(&record.hash, &key.hash()) || record.revoked_at.is_some() {
            return None;
        }
        if record.expires_at.is_some_and(|t| t <= now) {
            return None;
        }
        let principal = self.auth.principals.get(&record.principal)?;
        Some(Authenticated {
            principal: record.principal.clone(),
            role: principal.role,
            key: key.id,
            expires_at: record.expires_at,
        })
    }

    /// The principal that owns an account, if one does.
    pub fn account_owner(&self, account: AccountId) -> Option<&str> {
        self.auth.owners.get(&account).map(String::as_str)
    }

    /// One principal with its keys.
    pub fn principal(&self, name: &str) -> Option<PrincipalView> {
        let p = self.auth.principals.get(name)?;
        let keys = p.keys.iter().filter_map(|id| self.auth.keys.get(id).map(|k| key_view(*id, k))).collect();
        Some(PrincipalView {
            name: name.to_string(),
            role: p.role,
            accounts: p.accounts.iter().copied().collect(),
            created_at: p.created_at,
            created_by: p.created_by.0.clone(),
            keys,
        })
    }

    /// Every principal, by name.
    pub fn principals(&self) -> Vec<PrincipalView> {
        self.auth.principals.keys().filter_map(|n| self.principal(n)).collect()
    }

    /// One key, without its digest.
    pub fn api_key(&self, id: KeyId) -> Option<KeyView> {
        self.auth.keys.get(&id).map(|k| key_view(id, k))
    }
}

fn key_view(id: KeyId, k: &ApiKey) -> KeyView {
    KeyView {
        id,
        principal: k.principal.clone(),
        created_at: k.created_at,
        expires_at: k.expires_at,
        revoked_at: k.revoked_at,
    }
}

/// Constant-time comparison: how long it takes says nothing about how many bytes matched.
fn digests_equal(a: &KeyHash, b: &KeyHash) -> bool {
    a.0.iter().zip(b.0.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn accounts_bindable(state: &State, accounts: &[AccountId], role: Role) -> Result<(), ResultCode> {
    if !accounts.is_empty() && role != Role::Bettor {
        return Err(ResultCode::AccountsOnlyForBettors);
    }
    if accounts.len() > PRINCIPAL_ACCOUNTS_MAX {
        return Err(ResultCode::TooManyAccounts);
    }
    for a in accounts {
        if !state.accounts.contains_key(a) {
            return Err(ResultCode::AccountNotFound);
        }
        if state.auth.owners.contains_key(a) {
            return Err(ResultCode::AccountAlreadyBound);
        }
    }
    Ok(())
}

pub(crate) fn create_principal(
    state: &mut State,
    name: &str,
    role: Role,
    accounts: &[AccountId],
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    if !principal_name_is_valid(name) || !crate::ids::text_is_valid(&actor.0) {
        return Err(ResultCode::PrincipalNameInvalid);
    }
    if state.auth.principals.contains_key(name) {
        return Err(ResultCode::PrincipalExists);
    }
    let unique: BTreeSet<AccountId> = accounts.iter().copied().collect();
    if unique.len() != accounts.len() {
        return Err(ResultCode::AccountAlreadyBound);
    }
    accounts_bindable(state, accounts, role)?;
    for a in accounts {
        state.auth.owners.insert(*a, name.to_string());
    }
    state.auth.principals.insert(
        name.to_string(),
        Principal { role, accounts: unique, keys: BTreeSet::new(), created_at: now, created_by: actor.clone() },
    );
    state.audit.push(
        ctx.log_index,
        now,
        actor.clone(),
        AuditEvent::PrincipalCreated { principal: name.to_string(), role, accounts: accounts.to_vec() },
    );
    Ok(Done::Ok)
}

pub(crate) fn bind_account(
    state: &mut State,
    name: &str,
    account: AccountId,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    let principal = state.auth.principals.get(name).ok_or(ResultCode::PrincipalNotFound)?;
    accounts_bindable(state, &[account], principal.role)?;
    if principal.accounts.len() >= PRINCIPAL_ACCOUNTS_MAX {
        return Err(ResultCode::TooManyAccounts);
    }
    state.auth.principals.get_mut(name).expect("checked above").accounts.insert(account);
    state.auth.owners.insert(account, name.to_string());
    state.audit.push(
        ctx.log_index,
        now,
        actor.clone(),
        AuditEvent::AccountBound { principal: name.to_string(), account },
    );
    Ok(Done::Ok)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn issue_key(
    state: &mut State,
    id: KeyId,
    name: &str,
    hash: KeyHash,
    ttl_ms: Option<u64>,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    let principal = state.auth.principals.get(name).ok_or(ResultCode::PrincipalNotFound)?;
    if state.auth.keys.contains_key(&id) {
        return Err(ResultCode::KeyExists);
    }
    if ttl_ms == Some(0) {
        return Err(ResultCode::KeyTtlInvalid);
    }
    // Keys of this principal that ended long ago make room (the audit trail keeps them).
    let ended: Vec<KeyId> = principal
        .keys
        .iter()
        .copied()
        .filter(|k| state.auth.keys.get(k).is_some_and(|k| k.ended_long_ago(now)))
        .collect();
    let live = principal.keys.iter().filter(|k| state.auth.keys.get(k).is_some_and(|k| k.is_live(now))).count();
    if live >= PRINCIPAL_KEYS_MAX {
        return Err(ResultCode::TooManyKeys);
    }
    let expires_at = ttl_ms.map(|ttl| now.plus_ms(ttl));
    let principal = state.auth.principals.get_mut(name).expect("checked above");
    for k in ended {
        principal.keys.remove(&k);
        state.auth.keys.remove(&k);
    }
    principal.keys.insert(id);
    state
        .auth
        .keys
        .insert(id, ApiKey { principal: name.to_string(), hash, created_at: now, expires_at, revoked_at: None });
    state.audit.push(
        ctx.log_index,
        now,
        actor.clone(),
        AuditEvent::KeyIssued { principal: name.to_string(), key: id, expires_at },
    );
    Ok(Done::KeyIssued { key: id, expires_at })
}

pub(crate) fn revoke_key(state: &mut State, id: KeyId, actor: &Actor, ctx: ApplyCtx, now: TimestampMs) -> Handled {
    let record = state.auth.keys.get_mut(&id).ok_or(ResultCode::KeyNotFound)?;
    if record.revoked_at.is_some() {
        return Err(ResultCode::KeyRevoked);
    }
    record.revoked_at = Some(now);
    let principal = record.principal.clone();
    state.audit.push(ctx.log_index, now, actor.clone(), AuditEvent::KeyRevoked { principal, key: id });
    Ok(Done::Ok)
}

/// How long an expired or revoked key stays listed before a new key of its principal may
/// replace it (its history stays in the audit trail).
pub const ENDED_KEY_RETENTION_MS: u64 = 30 * crate::ids::DAY_MS;

impl ApiKey {
    fn is_live(&self, now: TimestampMs) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now)
    }

    fn ended_long_ago(&self, now: TimestampMs) -> bool {
        let ended = match (self.revoked_at, self.expires_at) {
            (Some(r), Some(e)) => Some(r.min(e)),
            (Some(t), None) | (None, Some(t)) => Some(t),
            (None, None) => None,
        };
        ended.is_some_and(|t| t.plus_ms(ENDED_KEY_RETENTION_MS) <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_text_round_trips_and_its_debug_text_hides_the_secret() {
        let key = KeyText { id: KeyId(0xfeed), secret: [0xab; KEY_SECRET_LEN] };
        let text = key.expose();
        assert_eq!(text.len(), 4 + 16 + 1 + 64);
        assert_eq!(KeyText::parse(&text), Some(key.clone()));
        assert!(!format!("{key:?}").contains("abab"));
    }

    #[test]
    fn malformed_key_texts_are_refused() {
        let good = KeyText { id: KeyId(1), secret: [7; KEY_SECRET_LEN] }.expose();
        for bad in [
            "",
            "pdk_",
            &good[..good.len() - 1],
            &good.replace("pdk_", "pdx_"),
            &format!("{good}0"),
            &good.replace('_', "-"),
            "pdk_zzzzzzzzzzzzzzzz_0000000000000000000000000000000000000000000000000000000000000000",
            "pdk_0000000000000001_000000000000000000000000000000000000000000000000000000000000000é",
        ] {
            assert_eq!(KeyText::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_digest_binds_the_id_to_the_secret() {
        let secret = [9; KEY_SECRET_LEN];
        assert_ne!(key_hash(KeyId(1), &secret), key_hash(KeyId(2), &secret));
        assert_eq!(key_hash(KeyId(1), &secret), key_hash(KeyId(1), &secret));
    }

    #[test]
    fn principal_names_are_lower_case_ascii() {
        for good in ["alice", "svc.load", "ops-1", "a@b.c", "x_y"] {
            assert!(principal_name_is_valid(good), "{good}");
        }
        for bad in ["", "Alice", "al ice", "ålice", "a\u{0}", &"a".repeat(65)] {
            assert!(!principal_name_is_valid(bad), "{bad}");
        }
    }
}
