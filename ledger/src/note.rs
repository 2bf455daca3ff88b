//! C2SP signed notes, tlog checkpoints and tlog cosignatures, with Ed25519.
//!
//! The ledger publishes its tree head in the format every transparency-log tool already
//! reads (Go `golang.org/x/mod/sumdb/note`, transparency-dev witnesses, Sigstore), so a
//! supervisor needs no pdx-specific parser to check it. The byte rules, from
//! c2sp.org/signed-note, c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature:
//!
//! ```text
//! note           = text || "\n" || signature_line+          text ends in "\n"
//! signature_line = "— " || name || " " || base64(key_id || sig) || "\n"   (U+2014, space)
//! key_id         = SHA-256(name || 0x0A || type || 32-byte Ed25519 public key)[:4]
//!                  type 0x01: Ed25519 note signature, sig = Ed25519(text), 64 bytes
//!                  type 0x04: Ed25519 cosignature/v1, sig = timestamp(8, big endian) || Ed25519(msg)
//! cosignature/v1 msg = "cosignature/v1\n" || "time " || decimal(timestamp) || "\n" || text
//! vkey           = name || "+" || hex8(key_id) || "+" || base64(type || public key)
//! checkpoint     = origin "\n" || decimal(size) "\n" || base64(root, 32 bytes) "\n" || (extension "\n")*
//! ```
//!
//! The whole note must be UTF-8 with no ASCII control character other than newline; the
//! text is everything up to and including the newline before the *last* blank line.
//! Names are non-empty with no Unicode space and no `+`. Base64 is RFC 4648 standard
//! alphabet with padding, decoded strictly (non-canonical encodings are rejected, so a
//! note has exactly one spelling).
//!
//! Verification policy: signatures whose (name, key id) is not the verifier's are
//! ignored, as the spec requires (this is how witnesses' cosignatures ride along).
//! Every signature that *does* claim to be the verifier's must verify, and at least one
//! must exist; a bad signature from a known key rejects the whole note, as the spec
//! recommends. Signatures are checked with `verify_strict`, which rejects non-canonical
//! `s`, small-order `R` and weak public keys, so a signature cannot be malleated into a
//! second valid spelling.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type byte of a plain Ed25519 note signature (c2sp.org/signed-note).
pub const SIG_TYPE_ED25519: u8 = 0x01;
/// Signature type byte of an Ed25519 timestamped cosignature (c2sp.org/tlog-cosignature).
pub const SIG_TYPE_COSIGNATURE_V1: u8 = 0x04;
/// Signature lines beyond this many make a note malformed (the Go reference's limit; the
/// spec requires accepting at least 16).
pub const MAX_SIGNATURES: usize = 100;
/// Cosignature timestamps must fit in a signed 64-bit POSIX time (tlog-cosignature).
pub const MAX_COSIGNATURE_TIMESTAMP: u64 = i64::MAX as u64;

/// The em dash and space that open every signature line.
const SIG_LINE_PREFIX: &str = "\u{2014} ";
/// Domain-separation header of the cosignature/v1 signed message.
const COSIGNATURE_HEADER: &str = "cosignature/v1\n";
const ED25519_SIG_LEN: usize = 64;
const TIMESTAMP_LEN: usize = 8;
const KEY_ID_LEN: usize = 4;

/// Why a note, key or checkpoint was rejected.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    /// A key name is empty or contains a space, `+` or a control character.
    #[error("invalid key name {0:?}: must be non-empty, without spaces, '+' or control characters")]
    InvalidName(String),
    /// Text to be signed is not a valid note text.
    #[error("malformed note text: {0}")]
    MalformedText(&'static str),
    /// A signed note does not follow the signed-note syntax.
    #[error("malformed signed note: {0}")]
    MalformedNote(&'static str),
    /// A note has more than [`MAX_SIGNATURES`] signature lines.
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// A note body is not a tlog checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    /// A verifier key string or key is malformed.
    #[error("malformed verifier key: {0}")]
    MalformedKey(&'static str),
    /// A verifier key uses a signature type this crate does not implement.
    #[error("unsupported signature type 0x{0:02x}")]
    UnknownKeyType(u8),
    /// A verifier key's key id does not match its name and public key.
    #[error("verifier key id does not match its name and public key")]
    KeyIdMismatch,
    /// The public key is a small-order point, for which signatures prove nothing.
    #[error("weak (small-order) Ed25519 public key")]
    WeakKey,
    /// A signature that claims to be by the verifier's key does not verify.
    #[error("invalid signature for key {name}+{key_id}")]
    InvalidSignature {
        /// Key name on the signature line.
        name: String,
        /// Key id, hex.
        key_id: String,
    },
    /// No signature by the verifier's key is present.
    #[error("note has no signature by key {name}+{key_id}")]
    NotSigned {
        /// Expected key name.
        name: String,
        /// Expected key id, hex.
        key_id: String,
    },
    /// A cosignature timestamp above 2^63 - 1.
    #[error("cosignature timestamp {0} exceeds 2^63 - 1")]
    TimestampOutOfRange(u64),
    /// A plain note key was used where a cosigner key is needed.
    #[error("key {0} is not a cosignature/v1 key")]
    NotACosigner(String),
}

/// Which kind of signature a key makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// Plain Ed25519 over the note text (type 0x01).
    Ed25519,
    /// Timestamped Ed25519 cosignature/v1 over a checkpoint (type 0x04).
    CosignatureV1,
}

impl KeyType {
    /// The signature type byte hashed into the key id.
    pub const fn type_byte(self) -> u8 {
        match self {
            KeyType::Ed25519 => SIG_TYPE_ED25519,
            KeyType::CosignatureV1 => SIG_TYPE_COSIGNATURE_V1,
        }
    }

    fn from_type_byte(byte: u8) -> Result<Self, NoteError> {
        match byte {
            SIG_TYPE_ED25519 => Ok(KeyType::Ed25519),
            SIG_TYPE_COSIGNATURE_V1 => Ok(KeyType::CosignatureV1),
            other => Err(NoteError::UnknownKeyType(other)),
        }
    }
}

/// `SHA-256(name || 0x0A || type || public key)[:4]`, the C2SP recommended key id.
fn compute_key_id(name: &str, key_type: KeyType, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', key_type.type_byte()]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

/// Key names: non-empty, no Unicode space (Rust's `is_whitespace` is the same
/// White_Space set Go's `unicode.IsSpace` uses), no `+`. Control characters are also
/// refused because a note containing one could never be parsed.
fn check_name(name: &str) -> Result<(), NoteError> {
    let bad = name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c < ' ');
    if bad {
        Err(NoteError::InvalidName(name.to_string()))
    } else {
        Ok(())
    }
}

/// True if `text` has an ASCII control character other than newline.
fn has_forbidden_control(text: &str) -> bool {
    text.bytes().any(|b| b < 0x20 && b != b'\n')
}

/// A note text must end in a newline and contain no control character but newline.
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::MalformedText("text must end with a newline"));
    }
    if has_forbidden_control(text) {
        return Err(NoteError::MalformedText(
            "text contains a control character other than newline",
        ));
    }
    Ok(())
}

/// The exact bytes an Ed25519 cosignature/v1 signs.
fn cosignature_message(checkpoint_body: &str, timestamp: u64) -> String {
    format!("{COSIGNATURE_HEADER}time {timestamp}\n{checkpoint_body}")
}

fn signature_line(name: &str, payload: &[u8]) -> String {
    format!("{SIG_LINE_PREFIX}{name} {}\n", STANDARD.encode(payload))
}

/// A transparency-log tree head (c2sp.org/tlog-checkpoint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, the first line.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Merkle tree root hash at `size`.
    pub root: [u8; 32],
    /// Optional opaque extension lines (without newlines).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: origin, size, base64 root and extension lines, each ending in "\n".
    pub fn body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for ext in &self.extensions {
            body.push_str(ext);
            body.push('\n');
        }
        body
    }

    /// Parses a checkpoint note text.
    pub fn parse_body(body: &str) -> Result<Self, NoteError> {
        let Some(content) = body.strip_suffix('\n') else {
            return Err(NoteError::MalformedCheckpoint(
                "body must end with a newline",
            ));
        };
        if has_forbidden_control(body) {
            return Err(NoteError::MalformedCheckpoint(
                "body contains a control character",
            ));
        }
        let mut lines = content.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(NoteError::MalformedCheckpoint(
                "needs origin, size and root lines",
            ));
        };
        if origin.is_empty() {
            return Err(NoteError::MalformedCheckpoint("empty origin"));
        }
        // Decimal with no sign and no leading zeroes ("0" only for the empty tree), so
        // each size has exactly one spelling.
        let canonical_size = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        if !canonical_size {
            return Err(NoteError::MalformedCheckpoint(
                "size is not a canonical decimal",
            ));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| NoteError::MalformedCheckpoint("size does not fit in 64 bits"))?;
        let root: [u8; 32] = STANDARD
            .decode(root)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(NoteError::MalformedCheckpoint(
                "root is not base64 of 32 bytes",
            ))?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(NoteError::MalformedCheckpoint("empty extension line"));
        }
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }

    /// Checks that [`Checkpoint::body`] parses back to this checkpoint (no newline or
    /// control character in the origin or an extension, no empty line).
    pub fn validate(&self) -> Result<(), NoteError> {
        if Self::parse_body(&self.body())? == *self {
            Ok(())
        } else {
            Err(NoteError::MalformedCheckpoint(
                "origin or extension contains a newline",
            ))
        }
    }
}

/// A public key that checks note signatures or cosignatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
    key_type: KeyType,
}

impl NoteVerifier {
    /// A verifier of plain Ed25519 note signatures (type 0x01).
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        Self::with_type(name, key, KeyType::Ed25519)
    }

    /// A verifier of Ed25519 cosignature/v1 signatures (type 0x04).
    pub fn new_cosigner(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        Self::with_type(name, key, KeyType::CosignatureV1)
    }

    fn with_type(name: &str, key: VerifyingKey, key_type: KeyType) -> Result<Self, NoteError> {
        check_name(name)?;
        if key.is_weak() {
            return Err(NoteError::WeakKey);
        }
        Ok(Self {
            name: name.to_string(),
            key_id: compute_key_id(name, key_type, &key),
            key,
            key_type,
        })
    }

    /// Parses a verifier key string `name+<hex key id>+<base64(type || public key)>`.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        // The name cannot contain '+', but base64 can: split at the first two only.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedKey("expected name+keyid+key"));
        };
        if id_hex.len() != 2 * KEY_ID_LEN || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::MalformedKey("key id is not 8 hex digits"));
        }
        let mut key_id = [0u8; KEY_ID_LEN];
        hex::decode_to_slice(id_hex, &mut key_id)
            .map_err(|_| NoteError::MalformedKey("key id is not 8 hex digits"))?;
        let raw = STANDARD
            .decode(key_b64)
            .map_err(|_| NoteError::MalformedKey("key is not base64"))?;
        let Some((&type_byte, key_bytes)) = raw.split_first() else {
            return Err(NoteError::MalformedKey("empty key"));
        };
        let key_type = KeyType::from_type_byte(type_byte)?;
        let key_bytes: [u8; 32] = key_bytes
            .try_into()
            .map_err(|_| NoteError::MalformedKey("Ed25519 key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| NoteError::MalformedKey("not an Ed25519 point"))?;
        let verifier = Self::with_type(name, key, key_type)?;
        if verifier.key_id != key_id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(verifier)
    }

    /// The verifier key string, `name+<hex key id>+<base64(type || public key)>`.
    pub fn to_vkey(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(self.key_type.type_byte());
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            STANDARD.encode(raw)
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id (big-endian uint32 on the wire).
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// Plain note key or cosigner key.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The Ed25519 public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    fn matches(&self, sig: &NoteSignature) -> bool {
        sig.name == self.name && sig.key_id == self.key_id
    }

    fn invalid(&self) -> NoteError {
        NoteError::InvalidSignature {
            name: self.name.clone(),
            key_id: hex::encode(self.key_id),
        }
    }

    /// Checks one signature line that claims to be ours; returns the cosignature
    /// timestamp, or `None` for a plain signature.
    fn check(&self, body: &str, sig: &NoteSignature) -> Result<Option<u64>, NoteError> {
        match self.key_type {
            KeyType::Ed25519 => {
                let sig_bytes: &[u8; ED25519_SIG_LEN] = sig
                    .signature
                    .as_slice()
                    .try_into()
                    .map_err(|_| self.invalid())?;
                self.key
                    .verify_strict(body.as_bytes(), &Signature::from_bytes(sig_bytes))
                    .map_err(|_| self.invalid())?;
                Ok(None)
            }
            KeyType::CosignatureV1 => {
                if sig.signature.len() != TIMESTAMP_LEN + ED25519_SIG_LEN {
                    return Err(self.invalid());
                }
                let (ts_bytes, sig_bytes) = sig.signature.split_at(TIMESTAMP_LEN);
                let ts_bytes: [u8; TIMESTAMP_LEN] =
                    ts_bytes.try_into().map_err(|_| self.invalid())?;
                let timestamp = u64::from_be_bytes(ts_bytes);
                if timestamp > MAX_COSIGNATURE_TIMESTAMP {
                    return Err(NoteError::TimestampOutOfRange(timestamp));
                }
                let sig_bytes: &[u8; ED25519_SIG_LEN] =
                    sig_bytes.try_into().map_err(|_| self.invalid())?;
                let msg = cosignature_message(body, timestamp);
                self.key
                    .verify_strict(msg.as_bytes(), &Signature::from_bytes(sig_bytes))
                    .map_err(|_| self.invalid())?;
                Ok(Some(timestamp))
            }
        }
    }
}

/// An Ed25519 key that signs notes (type 0x01) and cosigns checkpoints (type 0x04).
#[derive(Clone)]
pub struct NoteSigner {
    key: SigningKey,
    verifier: NoteVerifier,
    cosigner: NoteVerifier,
}

impl std::fmt::Debug for NoteSigner {
    // Never print key material, not even through a dependency's Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.verifier.name)
            .field("key_id", &hex::encode(self.verifier.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer named `name` (the same name is used for note and cosignature lines).
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        let public = key.verifying_key();
        Ok(Self {
            verifier: NoteVerifier::new(name, public)?,
            cosigner: NoteVerifier::new_cosigner(name, public)?,
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.verifier.name
    }

    /// The verifier for this signer's plain note signatures.
    pub fn verifier(&self) -> NoteVerifier {
        self.verifier.clone()
    }

    /// The verifier for this signer's cosignatures.
    pub fn cosigner_verifier(&self) -> NoteVerifier {
        self.cosigner.clone()
    }

    /// Signs `body` and returns the whole note: body, blank line, one signature line.
    pub fn sign(&self, body: &str) -> Result<String, NoteError> {
        check_text(body)?;
        // Signed bytes: the text including its final newline, nothing else.
        let sig = self.key.sign(body.as_bytes());
        let mut payload = Vec::with_capacity(KEY_ID_LEN + ED25519_SIG_LEN);
        payload.extend_from_slice(&self.verifier.key_id);
        payload.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{body}\n{}",
            signature_line(&self.verifier.name, &payload)
        ))
    }

    /// Validates and signs a checkpoint; returns the whole note.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, NoteError> {
        checkpoint.validate()?;
        self.sign(&checkpoint.body())
    }

    /// A cosignature/v1 line over `checkpoint_body` at `timestamp` (POSIX seconds).
    pub fn cosign(&self, checkpoint_body: &str, timestamp: u64) -> Result<String, NoteError> {
        if timestamp > MAX_COSIGNATURE_TIMESTAMP {
            return Err(NoteError::TimestampOutOfRange(timestamp));
        }
        check_text(checkpoint_body)?;
        Checkpoint::parse_body(checkpoint_body)?;
        // Signed bytes: "cosignature/v1\ntime <ts>\n" || checkpoint text.
        let sig = self
            .key
            .sign(cosignature_message(checkpoint_body, timestamp).as_bytes());
        // Line payload: key id (type 0x04) || timestamp (u64 big endian) || signature.
        let mut payload = Vec::with_capacity(KEY_ID_LEN + TIMESTAMP_LEN + ED25519_SIG_LEN);
        payload.extend_from_slice(&self.cosigner.key_id);
        payload.extend_from_slice(&timestamp.to_be_bytes());
        payload.extend_from_slice(&sig.to_bytes());
        Ok(signature_line(&self.cosigner.name, &payload))
    }
}

/// One signature line of a note, not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// First four bytes of the decoded base64: the key id.
    pub key_id: [u8; 4],
    /// The rest: the signature (for cosignatures, timestamp || signature).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line as the signed-note rule writes it: `"— " name " " base64(key_id ||
    /// signature) "\n"`.
    pub fn to_line(&self) -> String {
        let mut payload = Vec::with_capacity(KEY_ID_LEN + self.signature.len());
        payload.extend_from_slice(&self.key_id);
        payload.extend_from_slice(&self.signature);
        signature_line(&self.name, &payload)
    }

    /// The timestamp a cosignature/v1 line carries (its first eight bytes, big endian),
    /// not verified; `None` if the signature is shorter than that.
    pub fn cosignature_timestamp(&self) -> Option<u64> {
        let bytes: [u8; TIMESTAMP_LEN] = self.signature.get(..TIMESTAMP_LEN)?.try_into().ok()?;
        Some(u64::from_be_bytes(bytes))
    }
}

/// A parsed note: its text and its signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedNote {
    /// The signed text, ending in a newline.
    pub body: String,
    /// Every signature line, in order, verified or not.
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Parses note syntax without checking any signature.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        if has_forbidden_control(text) {
            return Err(NoteError::MalformedNote(
                "control character other than newline",
            ));
        }
        // The text ends at the last blank line; the text itself may contain blank lines.
        let Some(split) = text.rfind("\n\n") else {
            return Err(NoteError::MalformedNote(
                "no blank line before the signatures",
            ));
        };
        let body = &text[..split + 1];
        let Some(sig_block) = text[split + 2..].strip_suffix('\n') else {
            return Err(NoteError::MalformedNote(
                "signature block missing or not newline-terminated",
            ));
        };
        let mut signatures = Vec::new();
        for line in sig_block.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            let Some(rest) = line.strip_prefix(SIG_LINE_PREFIX) else {
                return Err(NoteError::MalformedNote(
                    "signature line does not start with an em dash and space",
                ));
            };
            let Some((name, b64)) = rest.split_once(' ') else {
                return Err(NoteError::MalformedNote("signature line has no space"));
            };
            check_name(name).map_err(|_| NoteError::MalformedNote("invalid key name"))?;
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| NoteError::MalformedNote("signature is not base64"))?;
            // At least the key id and one signature byte.
            if raw.len() <= KEY_ID_LEN {
                return Err(NoteError::MalformedNote("signature too short"));
            }
            let (id, signature) = raw.split_at(KEY_ID_LEN);
            let mut key_id = [0u8; KEY_ID_LEN];
            key_id.copy_from_slice(id);
            signatures.push(NoteSignature {
                name: name.to_string(),
                key_id,
                signature: signature.to_vec(),
            });
        }
        Ok(Self {
            body: body.to_string(),
            signatures,
        })
    }

    /// The note text: body, blank line, signature lines.
    pub fn to_text(&self) -> String {
        let mut text = self.body.clone();
        text.push('\n');
        for sig in &self.signatures {
            text.push_str(&sig.to_line());
        }
        text
    }

    /// Succeeds if the verifier's key signed this note and no signature claiming to be
    /// by it is invalid. Works for plain and cosigner keys alike.
    pub fn verify(&self, verifier: &NoteVerifier) -> Result<(), NoteError> {
        self.check_all(verifier).map(|_| ())
    }

    /// Verifies `cosigner`'s cosignature/v1 and returns its timestamp (the latest one if
    /// the cosigner signed more than once).
    pub fn verified_timestamp_cosig(&self, cosigner: &NoteVerifier) -> Result<u64, NoteError> {
        if cosigner.key_type != KeyType::CosignatureV1 {
            return Err(NoteError::NotACosigner(cosigner.name.clone()));
        }
        let timestamps = self.check_all(cosigner)?;
        timestamps
            .into_iter()
            .flatten()
            .max()
            .ok_or_else(|| cosigner.invalid())
    }

    fn check_all(&self, verifier: &NoteVerifier) -> Result<Vec<Option<u64>>, NoteError> {
        let results = self
            .signatures
            .iter()
            .filter(|sig| verifier.matches(sig))
            .map(|sig| verifier.check(&self.body, sig))
            .collect::<Result<Vec<_>, _>>()?;
        if results.is_empty() {
            return Err(NoteError::NotSigned {
                name: verifier.name.clone(),
                key_id: hex::encode(verifier.key_id),
            });
        }
        Ok(results)
    }
}

/// Parse a note, verify it with `verifier`, and parse its body as a checkpoint.
pub fn open_checkpoint(text: &str, verifier: &NoteVerifier) -> Result<Checkpoint, NoteError> {
    let note = SignedNote::parse(text)?;
    note.verify(verifier)?;
    Checkpoint::parse_body(&note.body)
}
