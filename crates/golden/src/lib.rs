//! Golden-bytes fixtures: today's encoding of a value is checked in as hex, and must stay
//! today's encoding; today's bytes must decode to today's value forever (the pattern of redb's
//! backward-compatibility tests).
//!
//! A fixture lives at `tests/fixtures/<format>/<name>.v<version>.hex`: `#` comment lines, then
//! the bytes as hex, 32 to a line, so that a changed byte is a one-line diff. A [`Golden`]
//! checks one format's fixtures and reports every failure at once, when it is finished:
//! - today's encoding differs from the fixture, or the fixture no longer decodes to the value:
//!   always a failure, telling to bump the format's version constant and add new fixtures
//!   beside the old ones (never overwritten, not even when blessing);
//! - the fixture is missing: written from today's encoding when `PADDOCK_BLESS=1`, otherwise a
//!   failure that says how to create it;
//! - a file in the format's folder that no case checks: a failure, because an old version's
//!   fixtures stay and must still decode (or be refused with a clear error) in some test.
//!
//! [`check_tags`] pins each variant's postcard tag (the varint that starts its encoding, its
//! declaration index) to a number written in the test: postcard numbers variants by position,
//! so a variant inserted anywhere but at the end would silently re-label every stored value.
//!
//! One test checks one format's folder (the unclaimed-file check counts on it).
//!
//! Not here: the values, which each test spells out in full.
//!
//! A dev-dependency of each crate with fixtures (ledger, consensus, storage): fixtures are files
//! in the source tree and blessing is a developer's switch, so this crate reads files and the
//! environment, which the ledger's own library may not.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

/// The environment variable that lets a test write a missing fixture.
pub const BLESS_VAR: &str = "PADDOCK_BLESS";

/// One persisted or wire format: where its fixtures live and what to bump when it changes.
#[derive(Clone, Copy, Debug)]
pub struct Format {
    /// Folder under `tests/fixtures`.
    pub dir: &'static str,
    /// The version today's fixtures are named with (`<name>.v<version>.hex`).
    pub version: u32,
    /// The constant(s) whose bump a change of this encoding requires.
    pub bump: &'static str,
}

/// Checks a format's fixtures; call [`Golden::finish`] to report.
pub struct Golden {
    format: Format,
    crate_name: &'static str,
    root: PathBuf,
    claimed: BTreeSet<String>,
    failures: Vec<String>,
    blessed: Vec<PathBuf>,
    finished: bool,
}

impl Golden {
    /// A checker of `format`'s fixtures under `<manifest_dir>/tests/fixtures`. Pass
    /// `env!("CARGO_MANIFEST_DIR")` and `env!("CARGO_PKG_NAME")`.
    pub fn new(manifest_dir: &str, crate_name: &'static str, format: Format) -> Golden {
        Golden {
            format,
            crate_name,
            root: Path::new(manifest_dir).join("tests").join("fixtures"),
            claimed: BTreeSet::new(),
            failures: Vec::new(),
            blessed: Vec::new(),
            finished: false,
        }
    }

    fn file_name(&self, name: &str, version: u32) -> String {
        format!("{name}.v{version}.hex")
    }

    /// The path of fixture `name` at today's version.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(self.format.dir).join(self.file_name(name, self.format.version))
    }

    fn shown(&self, path: &Path) -> String {
        // Relative to the workspace: <workspace>/crates/<crate>/tests/fixtures.
        let workspace = self.root.ancestors().nth(4).unwrap_or(&self.root);
        path.strip_prefix(workspace).map(|p| p.display().to_string()).unwrap_or_else(|_| path.display().to_string())
    }

    fn changed(&self, label: &str) -> String {
        format!(
            "encoding of {label} changed: bump {} and add new fixtures; keep the old ones decodable",
            self.format.bump
        )
    }

    /// The bytes of today's fixture `name`, if it exists and parses (failures are recorded).
    pub fn bytes(&mut self, name: &str) -> Option<Vec<u8>> {
        let path = self.path(name);
        self.claimed.insert(self.file_name(name, self.format.version));
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse_hex(&text) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    self.failures.push(format!("{}: not a hex fixture: {e}", self.shown(&path)));
                    None
                }
            },
            Err(_) => None,
        }
    }

    /// Today's value and today's bytes agree both ways: `encode(value)` is the fixture, and the
    /// fixture decodes to `value`. `label` names the value in messages (`Command::PlaceBet`).
    pub fn check<T: PartialEq + Debug>(
        &mut self,
        name: &str,
        label: &str,
        value: &T,
        encode: impl FnOnce(&T) -> Vec<u8>,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) {
        self.check_by(name, label, value, encode, decode, |a, b| a == b)
    }

    /// As [`Golden::check`], for types without `PartialEq`: values are compared by their
    /// `Debug` text (derived, so it shows every field).
    pub fn check_debug<T: Debug>(
        &mut self,
        name: &str,
        label: &str,
        value: &T,
        encode: impl FnOnce(&T) -> Vec<u8>,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) {
        self.check_by(name, label, value, encode, decode, |a, b| format!("{a:?}") == format!("{b:?}"))
    }

    fn check_by<T: Debug>(
        &mut self,
        name: &str,
        label: &str,
        value: &T,
        encode: impl FnOnce(&T) -> Vec<u8>,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
        same: impl Fn(&T, &T) -> bool,
    ) {
        let today = encode(value);
        let path = self.path(name);
        let shown = self.shown(&path);
        if !path.exists() {
            self.claimed.insert(self.file_name(name, self.format.version));
            if std::env::var_os(BLESS_VAR).is_some_and(|v| v == "1") {
                match decode(&today) {
                    Ok(decoded) if same(&decoded, value) => {}
                    other => {
                        self.failures.push(format!(
                            "{shown} not written: today's encoding of {label} does not decode back to it: {other:?}"
                        ));
                        return;
                    }
                }
                let text = format_hex(label, self.format.dir, self.format.version, &today);
                let written = std::fs::create_dir_all(path.parent().expect("fixture has a folder"))
                    .and_then(|()| std::fs::write(&path, text));
                match written {
                    Ok(()) => self.blessed.push(path),
                    Err(e) => self.failures.push(format!("{shown}: could not write the fixture: {e}")),
                }
            } else {
                self.failures.push(format!(
                    "fixture {shown} of {label} is missing: run `{BLESS_VAR}=1 cargo test -p {}` to write it from \
                     today's encoding, review it, and commit it",
                    self.crate_name
                ));
            }
            return;
        }
        let Some(fixture) = self.bytes(name) else { return };
        if fixture != today {
            self.failures.push(format!(
                "{}\n  fixture: {shown}\n  {}",
                self.changed(label),
                difference(&fixture, &today)
            ));
        }
        match decode(&fixture) {
            Ok(decoded) if same(&decoded, value) => {}
            Ok(decoded) => self.failures.push(format!(
                "{}\n  fixture {shown} no longer decodes to today's value\n  decoded:  {decoded:?}\n  expected: {value:?}",
                self.changed(label)
            )),
            Err(e) => self.failures.push(format!(
                "{}\n  fixture {shown} no longer decodes: {e}",
                self.changed(label)
            )),
        }
    }

    /// An old version's fixture still decodes to the value it held. Use this for the fixtures
    /// of `version` after a bump has moved today's fixtures to a later one.
    pub fn old_decodes<T: PartialEq + Debug>(
        &mut self,
        version: u32,
        name: &str,
        label: &str,
        value: &T,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) {
        let Some(fixture) = self.old_bytes(version, name) else { return };
        match decode(&fixture) {
            Ok(decoded) if decoded == *value => {}
            Ok(decoded) => self.failures.push(format!(
                "{label}, version {version}, no longer decodes to its value: old fixtures must stay decodable\n  \
                 decoded:  {decoded:?}\n  expected: {value:?}"
            )),
            Err(e) => self
                .failures
                .push(format!("{label}, version {version}, no longer decodes ({e}): old fixtures must stay decodable")),
        }
    }

    /// An old version's fixture is refused with an error whose text contains `message`: for
    /// the formats that deliberately stop reading a version.
    pub fn old_refused<T: Debug>(
        &mut self,
        version: u32,
        name: &str,
        label: &str,
        message: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) {
        let Some(fixture) = self.old_bytes(version, name) else { return };
        match decode(&fixture) {
            Err(e) if e.contains(message) => {}
            Err(e) => self.failures.push(format!("{label}, version {version}: refused with {e:?}, not {message:?}")),
            Ok(decoded) => self.failures.push(format!(
                "{label}, version {version}: decoded to {decoded:?}, but this version must be refused with {message:?}"
            )),
        }
    }

    /// The bytes of an old version's fixture, for checks beyond decoding.
    pub fn bytes_of_version(&mut self, version: u32, name: &str) -> Option<Vec<u8>> {
        self.old_bytes(version, name)
    }

    fn old_bytes(&mut self, version: u32, name: &str) -> Option<Vec<u8>> {
        let file = self.file_name(name, version);
        let path = self.root.join(self.format.dir).join(&file);
        self.claimed.insert(file);
        match std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|t| parse_hex(&t)) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.failures.push(format!("old fixture {} cannot be read: {e}", self.shown(&path)));
                None
            }
        }
    }

    /// Reports: panics with every failure, including fixture files that no case checked.
    pub fn finish(mut self) {
        self.finished = true;
        let dir = self.root.join(self.format.dir);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut unclaimed: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| !self.claimed.contains(f))
                .collect();
            unclaimed.sort();
            for file in unclaimed {
                self.failures.push(format!(
                    "{} is checked by no test: an old version's fixtures stay and must still decode \
                     (Golden::old_decodes) or be refused with a clear error (Golden::old_refused)",
                    self.shown(&dir.join(file))
                ));
            }
        }
        for path in &self.blessed {
            eprintln!("wrote fixture {} from today's encoding: review and commit it", self.shown(path));
        }
        if !self.failures.is_empty() {
            panic!(
                "{} golden-bytes failure(s) in format `{}`:\n\n{}",
                self.failures.len(),
                self.format.dir,
                self.failures.join("\n\n")
            );
        }
    }
}

impl Drop for Golden {
    fn drop(&mut self) {
        if !self.finished && !std::thread::panicking() {
            panic!("Golden for `{}` dropped without finish(): its failures were never reported", self.format.dir);
        }
    }
}

/// Postcard, the encoding of every ledger and consensus record.
pub fn postcard_encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("plain data encodes")
}

/// Postcard decoding that must consume every byte: trailing bytes would mean the fixture holds
/// more than the type reads.
pub fn postcard_decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|e| e.to_string())?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(format!("{} trailing byte(s) after the value", rest.len()))
    }
}

/// Where two byte strings first differ, and today's bytes in full.
fn difference(fixture: &[u8], today: &[u8]) -> String {
    let at = fixture.iter().zip(today).position(|(a, b)| a != b).unwrap_or(fixture.len().min(today.len()));
    let byte = |b: &[u8]| b.get(at).map_or("end".to_string(), |x| format!("{x:#04x}"));
    format!(
        "first difference at byte {at}: fixture {}, today {} (fixture {} bytes, today {})\n  today's bytes: {}",
        byte(fixture),
        byte(today),
        fixture.len(),
        today.len(),
        to_hex(today)
    )
}

/// Lower-case hex, no separators.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn format_hex(label: &str, dir: &str, version: u32, bytes: &[u8]) -> String {
    let mut out = format!(
        "# {label}\n# Format `{dir}` version {version}, {} bytes. Written by {BLESS_VAR}=1 from the encoding of the \
         day it was added; never edit by hand.\n",
        bytes.len()
    );
    for line in bytes.chunks(32) {
        out.push_str(&to_hex(line));
        out.push('\n');
    }
    out
}

/// Reads a fixture: `#` lines are comments, whitespace is ignored, the rest is hex.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|e| format!("at digit {i}: {e}")))
        .collect()
}

/// The postcard tag that starts an enum value's encoding: its variant index as a varint.
pub fn postcard_tag(bytes: &[u8]) -> Option<u32> {
    let mut tag: u32 = 0;
    for (i, b) in bytes.iter().take(5).enumerate() {
        tag |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(tag);
        }
    }
    None
}

/// The variant names of enum `T` in declaration order — their index is their postcard tag —
/// as its derived `Deserialize` hands them to the deserializer.
pub fn variant_names<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::Visitor;

    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("probe stops here")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Stop {
            Stop
        }
    }

    /// A deserializer that records the variant list an enum asks for, then stops.
    struct Probe<'a>(&'a mut Option<&'static [&'static str]>);

    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = Stop;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = Some(variants);
            Err(Stop)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
        }
    }

    let mut found = None;
    let _ = T::deserialize(Probe(&mut found));
    found.unwrap_or_else(|| panic!("{} is not an enum", std::any::type_name::<T>()))
}

/// The variant name of a value, from its derived `Debug` (`PlaceBet(..)` → `PlaceBet`).
pub fn variant_of<T: Debug>(value: &T) -> String {
    let text = format!("{value:?}");
    text.split([' ', '(', '{']).next().unwrap_or("").to_string()
}

/// Pins every variant's postcard tag of enum `T` to the number `pinned` gives it, and checks
/// the first byte(s) of each sample's encoding carry that number. Fails, naming the variant,
/// when a variant was inserted before others, moved, renamed or removed, or has no pinned tag
/// or no sample.
pub fn check_tags<T: Serialize + DeserializeOwned + Debug>(
    enum_name: &str,
    bump: &str,
    pinned: &[(&str, u32)],
    samples: &[T],
) {
    check_tags_by(enum_name, bump, pinned, samples, variant_of)
}

/// As [`check_tags`], for an enum whose `Debug` does not start with the variant name:
/// `variant` names each sample's variant.
pub fn check_tags_by<T: Serialize + DeserializeOwned + Debug>(
    enum_name: &str,
    bump: &str,
    pinned: &[(&str, u32)],
    samples: &[T],
    variant: impl Fn(&T) -> String,
) {
    let declared = variant_names::<T>();
    let pins: BTreeMap<&str, u32> = pinned.iter().copied().collect();
    let mut failures = Vec::new();
    assert_eq!(pins.len(), pinned.len(), "{enum_name}: a variant is pinned twice");
    let rule = format!(
        "new variants go at the end only; an existing tag never changes (if it must, bump {bump} and keep the old \
         fixtures decodable)"
    );
    for (index, name) in declared.iter().enumerate() {
        match pins.get(name) {
            None => failures.push(format!(
                "{enum_name}::{name} is encoded with tag {index} but has no pinned tag in this test: pin it; {rule}"
            )),
            Some(&tag) if tag as usize != index => failures.push(format!(
                "{enum_name}::{name} is encoded with tag {index}, pinned at {tag}: a variant was inserted before it \
                 or the variants were reordered; {rule}"
            )),
            Some(_) => {}
        }
    }
    for (name, tag) in &pins {
        if !declared.contains(name) {
            failures.push(format!(
                "{enum_name}::{name} is pinned at tag {tag} but no longer exists: stored values may carry its tag, so \
                 keep the variant or bump {bump}"
            ));
        }
    }
    // A variant whose declared position is already reported is not reported again by its sample.
    let reported: BTreeSet<&str> = declared
        .iter()
        .enumerate()
        .filter(|(index, name)| pins.get(**name) != Some(&(*index as u32)))
        .map(|(_, name)| *name)
        .collect();
    let mut sampled = BTreeSet::new();
    for sample in samples {
        let name = variant(sample);
        let bytes = postcard_encode(sample);
        let found = postcard_tag(&bytes);
        match pins.get(name.as_str()) {
            Some(&tag) if found == Some(tag) || reported.contains(name.as_str()) => {}
            Some(&tag) => failures.push(format!(
                "{enum_name}::{name} encodes with tag {found:?} (first bytes {}), pinned at {tag}; {rule}",
                to_hex(&bytes[..bytes.len().min(4)])
            )),
            None => failures.push(format!("sample {sample:?} is of no pinned variant of {enum_name}")),
        }
        sampled.insert(name);
    }
    for name in declared {
        if !sampled.contains(*name) {
            failures.push(format!("{enum_name}::{name} has no sample in this test: add one"));
        }
    }
    if !failures.is_empty() {
        panic!("{} tag failure(s) of {enum_name}:\n\n{}", failures.len(), failures.join("\n\n"));
    }
}
