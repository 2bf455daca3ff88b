//! `pdx witness`: a supervisor's witness of the ledger's checkpoints.
//!
//! In a loop (or once, with `--once`) the witness:
//! 1. fetches the server's newest checkpoint and checks its signature under the log's
//!    public key (`--key`) and that its origin is the key's name;
//! 2. checks it against the last checkpoint it saw (the `--state` file): the same size
//!    must have the same root, a larger size needs an RFC 9162 consistency proof from
//!    the server that verifies against *both* signed roots, and a smaller size is a
//!    rollback;
//! 3. stores the new checkpoint in the state file (written to a temporary file and
//!    renamed, so a crash never leaves half a state);
//! 4. cosigns it with the witness's own Ed25519 key, in the C2SP
//!    tlog-cosignature/v1 format, and sends the cosignature to the server, which
//!    serves it with the checkpoint.
//!
//! Two checkpoints signed by the log's key that are not consistent are a split view:
//! the log showed two histories. The witness reports both and exits with status 2. It
//! exits 1 on any other failure that must not be retried (a checkpoint that does not
//! verify, an unreadable state file); network failures are retried in the loop and end
//! a `--once` run with status 1. The state file is the witness's memory: point one
//! witness at two servers in turn and it detects that they diverged.
//!
//! The witness key is a signed-note private key file (created with mode 0600 if
//! absent; default: the state file's path with `.key` appended). The API key of a
//! supervisor (`--api-key` or `PDX_API_KEY`) authenticates the requests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use pdx_ledger::merkle::{self, Blake3Hasher};
use pdx_ledger::note::{Checkpoint, NoteSigner, NoteVerifier, SignedNote, open_checkpoint};
use pdx_ledger::{Hash32, signing};
use serde::{Deserialize, Serialize};

/// Exit status of a detected split view.
pub const EXIT_SPLIT_VIEW: i32 = 2;

/// Flags of `pdx witness`.
#[derive(Debug, clap::Args)]
pub struct WitnessArgs {
    /// Base URL of the pdx server, e.g. `http://127.0.0.1:8080` or
    /// `https://pdx.example:8443`.
    #[arg(long)]
    pub server: String,
    /// PEM file of CA certificates to trust besides the public roots, for an HTTPS
    /// server whose certificate a private CA signed.
    #[arg(long, env = "PDX_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// The log's public key (verifier-key string, or a file holding it).
    #[arg(long)]
    pub key: String,
    /// State file: the last checkpoint this witness verified (created on first run).
    #[arg(long)]
    pub state: PathBuf,
    /// A supervisor's API key.
    #[arg(long, env = "PDX_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The witness's Ed25519 key file (default: `<state>.key`, created if absent).
    #[arg(long)]
    pub witness_key: Option<PathBuf>,
    /// The witness's name, used when its key is created.
    #[arg(long, default_value = "pdx-witness")]
    pub name: String,
    /// Seconds between polls.
    #[arg(long, default_value_t = 30)]
    pub interval: u64,
    /// Check and cosign once, then exit.
    #[arg(long)]
    pub once: bool,
}

/// What the witness remembers between polls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessState {
    /// The last verified checkpoint, as the log signed it.
    pub checkpoint: String,
    /// Its size.
    pub size: u64,
    /// Its root, hex.
    pub root: String,
    /// The size this witness last cosigned and the server accepted.
    pub cosigned_size: Option<u64>,
}

/// Why one check stopped.
#[derive(Debug)]
pub enum WitnessError {
    /// Two checkpoints signed by the log that are not consistent.
    SplitView(String),
    /// Something that must not be retried.
    Fatal(anyhow::Error),
    /// A failure worth retrying (network, server busy).
    Transient(anyhow::Error),
}

impl std::fmt::Display for WitnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WitnessError::SplitView(why) => write!(f, "SPLIT VIEW: {why}"),
            WitnessError::Fatal(e) => write!(f, "{e:#}"),
            WitnessError::Transient(e) => write!(f, "{e:#}"),
        }
    }
}

/// What one successful check did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Size before (0 on the first check).
    pub previous_size: u64,
    /// Size now.
    pub size: u64,
    /// Whether a cosignature was sent and accepted.
    pub cosigned: bool,
}

/// Checks the consistency of `new` with the last seen `old` (both already verified
/// under the log's key), given the server's proof when the tree grew.
pub fn check_consistency(
    old: &Checkpoint,
    new: &Checkpoint,
    proof: &[Hash32],
) -> Result<(), String> {
    if new.size < old.size {
        return Err(format!(
            "the log went back from size {} to size {}",
            old.size, new.size
        ));
    }
    if new.size == old.size {
        return if new.root == old.root {
            Ok(())
        } else {
            Err(format!(
                "two different roots are signed for size {}: {} and {}",
                new.size,
                hex::encode(old.root),
                hex::encode(new.root)
            ))
        };
    }
    if old.size == 0 {
        // Every tree extends the empty one.
        return Ok(());
    }
    let proof: Vec<merkle::Hash> = proof.iter().map(|h| h.0).collect();
    merkle::verify_consistency::<Blake3Hasher>(old.size, new.size, &proof, &old.root, &new.root)
        .map_err(|e| {
            format!(
                "the checkpoint at size {} is not consistent with the one at size {} ({e})",
                new.size, old.size
            )
        })
}

/// The cosigned note: the log's note without earlier lines by this witness, plus a
/// fresh cosignature line.
pub fn cosigned_note(note: &str, signer: &NoteSigner, timestamp: u64) -> anyhow::Result<String> {
    let mut parsed = SignedNote::parse(note).context("parsing the checkpoint note")?;
    let me = signer.cosigner_verifier();
    parsed
        .signatures
        .retain(|s| !(s.name == me.name() && s.key_id == me.key_id()));
    let line = signer
        .cosign(&parsed.body, timestamp)
        .context("cosigning the checkpoint")?;
    Ok(format!("{}{line}", parsed.to_text()))
}

fn load_state(
    path: &Path,
    key: &NoteVerifier,
) -> Result<Option<(WitnessState, Checkpoint)>, WitnessError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(WitnessError::Fatal(
                anyhow::Error::new(e).context(format!("reading {}", path.display())),
            ));
        }
    };
    let state: WitnessState = serde_json::from_str(&text).map_err(|e| {
        WitnessError::Fatal(
            anyhow::Error::new(e).context(format!("{} is not a witness state", path.display())),
        )
    })?;
    // The state is re-verified: a tampered file must not vouch for anything.
    let cp = open_checkpoint(&state.checkpoint, key).map_err(|e| {
        WitnessError::Fatal(anyhow::anyhow!(
            "the checkpoint in {} does not verify under the key: {e}",
            path.display()
        ))
    })?;
    Ok(Some((state, cp)))
}

fn save_state(path: &Path, state: &WitnessState) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(state)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// The witness: its keys, the server and the state file.
pub struct Witness {
    http: reqwest::Client,
    server: String,
    api_key: Option<String>,
    log_key: NoteVerifier,
    signer: NoteSigner,
    state: PathBuf,
}

#[derive(Deserialize)]
struct ConsistencyBody {
    proof: Vec<Hash32>,
}

fn transient(e: impl Into<anyhow::Error>) -> WitnessError {
    WitnessError::Transient(e.into())
}

impl Witness {
    /// A witness of the log signed by `log_key` at `server`, trusting the CA
    /// certificates in `ca_file` besides the public roots.
    pub fn new(
        server: &str,
        ca_file: Option<&Path>,
        api_key: Option<String>,
        log_key: NoteVerifier,
        signer: NoteSigner,
        state: PathBuf,
    ) -> anyhow::Result<Witness> {
        let http = crate::tls::client_builder(ca_file)?
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Witness {
            http,
            server: server.trim_end_matches('/').to_string(),
            api_key,
            log_key,
            signer,
            state,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.server));
        match &self.api_key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    async fn get_text(&self, path: &str) -> Result<String, WitnessError> {
        let resp = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .map_err(|e| transient(anyhow::Error::new(e).context(format!("GET {path}"))))?;
        let status = resp.status();
        let text = resp.text().await.map_err(transient)?;
        if !status.is_success() {
            return Err(transient(anyhow::anyhow!("GET {path}: {status}: {text}")));
        }
        Ok(text)
    }

    /// One poll: fetch, verify, check consistency, store, cosign.
    pub async fn check_once(&self) -> Result<Observation, WitnessError> {
        let note = self.get_text("/v1/ledger/checkpoint").await?;
        let new = open_checkpoint(&note, &self.log_key).map_err(|e| {
            WitnessError::Fatal(anyhow::anyhow!(
                "the server's checkpoint does not verify under the log's key: {e}"
            ))
        })?;
        if new.origin != self.log_key.name() {
            return Err(WitnessError::Fatal(anyhow::anyhow!(
                "the checkpoint's origin {:?} is not the key's name",
                new.origin
            )));
        }
        let previous = load_state(&self.state, &self.log_key)?;
        let previous_size = previous.as_ref().map_or(0, |(_, cp)| cp.size);
        if let Some((_, old)) = &previous {
            let proof = if new.size > old.size && old.size > 0 {
                let path = format!(
                    "/v1/ledger/proof/consistency?from={}&to={}",
                    old.size, new.size
                );
                let body: ConsistencyBody = serde_json::from_str(&self.get_text(&path).await?)
                    .map_err(|e| transient(anyhow::Error::new(e).context("reading the proof")))?;
                body.proof
            } else {
                Vec::new()
            };
            check_consistency(old, &new, &proof).map_err(|why| {
                WitnessError::SplitView(format!(
                    "{why}\n--- last checkpoint seen ---\n{}--- checkpoint served now ---\n{}",
                    previous
                        .as_ref()
                        .map(|(s, _)| s.checkpoint.as_str())
                        .unwrap_or_default(),
                    note
                ))
            })?;
        }
        let already = previous
            .as_ref()
            .is_some_and(|(s, _)| s.size == new.size && s.cosigned_size == Some(new.size));
        // Only the log's own signature is kept: cosignatures served alongside are the
        // server's to show, not this witness's to remember.
        let mut own = SignedNote::parse(&note).map_err(|e| WitnessError::Fatal(e.into()))?;
        let log_key = &self.log_key;
        own.signatures
            .retain(|s| s.name == log_key.name() && s.key_id == log_key.key_id());
        let mut state = WitnessState {
            checkpoint: own.to_text(),
            size: new.size,
            root: hex::encode(new.root),
            cosigned_size: previous
                .as_ref()
                .and_then(|(s, _)| s.cosigned_size)
                .filter(|&s| s == new.size),
        };
        save_state(&self.state, &state).map_err(WitnessError::Fatal)?;
        if already {
            return Ok(Observation {
                previous_size,
                size: new.size,
                cosigned: true,
            });
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let cosigned = cosigned_note(
            &state.checkpoint,
            &self.signer,
            u64::try_from(now).unwrap_or(0),
        )
        .map_err(WitnessError::Fatal)?;
        let body = serde_json::json!({
            "witness_key": self.signer.cosigner_verifier().to_vkey(),
            "checkpoint": cosigned,
        });
        let resp = self
            .request(reqwest::Method::POST, "/v1/ledger/cosignatures")
            .json(&body)
            .send()
            .await
            .map_err(|e| transient(anyhow::Error::new(e).context("sending the cosignature")))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(transient(anyhow::anyhow!(
                "the server refused the cosignature: {status}: {text}"
            )));
        }
        state.cosigned_size = Some(new.size);
        save_state(&self.state, &state).map_err(WitnessError::Fatal)?;
        Ok(Observation {
            previous_size,
            size: new.size,
            cosigned: true,
        })
    }
}

/// Runs the witness; returns the process exit code.
pub async fn run(args: WitnessArgs) -> anyhow::Result<i32> {
    let log_key = super::ledger::parse_key(&args.key)?;
    let key_path = args.witness_key.clone().unwrap_or_else(|| {
        let mut p = args.state.as_os_str().to_owned();
        p.push(".key");
        PathBuf::from(p)
    });
    let signer = signing::load_or_create(&key_path, &args.name)
        .with_context(|| format!("loading the witness key {}", key_path.display()))?;
    eprintln!(
        "witness {} (key {})",
        signer.name(),
        signer.cosigner_verifier().to_vkey()
    );
    let witness = Witness::new(
        &args.server,
        args.ca_file.as_deref(),
        args.api_key,
        log_key,
        signer,
        args.state,
    )?;
    let mut tick = tokio::time::interval(Duration::from_secs(args.interval.max(1)));
    loop {
        tick.tick().await;
        match witness.check_once().await {
            Ok(o) => println!(
                "ok: size {} (from {}), consistent{}",
                o.size,
                o.previous_size,
                if o.cosigned { ", cosigned" } else { "" }
            ),
            Err(e @ WitnessError::SplitView(_)) => {
                println!("{e}");
                return Ok(EXIT_SPLIT_VIEW);
            }
            Err(e @ WitnessError::Fatal(_)) => {
                println!("FAILED: {e}");
                return Ok(1);
            }
            Err(e @ WitnessError::Transient(_)) => {
                if args.once {
                    println!("FAILED: {e}");
                    return Ok(1);
                }
                eprintln!("witness: {e} (retrying)");
            }
        }
        if args.once {
            return Ok(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(size: u64, root: [u8; 32]) -> Checkpoint {
        Checkpoint {
            origin: "pdx.test/log".into(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    fn leaves(n: u64, tag: u8) -> Vec<merkle::Hash> {
        (0..n)
            .map(|i| {
                let mut data = [tag; 32];
                data[..8].copy_from_slice(&i.to_be_bytes());
                <Blake3Hasher as merkle::MerkleHasher>::leaf(&data)
            })
            .collect()
    }

    #[test]
    fn consistency_accepts_growth_and_refuses_forks_and_rollbacks() {
        let a = leaves(9, 1);
        let root = |l: &[merkle::Hash]| merkle::root_from_leaves::<Blake3Hasher>(l);
        let old = cp(5, root(&a[..5]));
        let new = cp(9, root(&a));
        let ranges = merkle::consistency_path(5, 9).unwrap();
        let ids = merkle::nodes_for(&ranges);
        let mut nodes = std::collections::HashMap::new();
        for id in ids {
            let range = id.leaves().unwrap();
            nodes.insert(id, root(&a[range.start as usize..range.end as usize]));
        }
        let proof: Vec<Hash32> = merkle::build_proof::<Blake3Hasher>(&ranges, &nodes)
            .unwrap()
            .into_iter()
            .map(Hash32)
            .collect();
        assert_eq!(check_consistency(&old, &new, &proof), Ok(()));
        assert_eq!(check_consistency(&new, &new, &[]), Ok(()));
        assert_eq!(check_consistency(&cp(0, root(&[])), &new, &[]), Ok(()));
        // A fork: the same first five leaves, then different ones.
        let mut b = a[..5].to_vec();
        b.extend(leaves(4, 2));
        let forked = cp(9, root(&b));
        assert!(check_consistency(&old, &forked, &proof).is_err());
        assert!(
            check_consistency(&new, &forked, &[]).is_err(),
            "same size, other root"
        );
        assert!(check_consistency(&new, &old, &[]).is_err(), "rollback");
        // A history rewritten from the start cannot prove consistency either.
        let c = leaves(9, 3);
        assert!(check_consistency(&old, &cp(9, root(&c)), &proof).is_err());
    }

    #[test]
    fn cosigned_notes_verify_and_replace_this_witnesss_older_line() {
        let log = NoteSigner::new(
            "pdx.test/log",
            ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        )
        .unwrap();
        let witness = NoteSigner::new(
            "witness.test",
            ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        )
        .unwrap();
        let note = log.sign_checkpoint(&cp(3, [7; 32])).unwrap();
        let once = cosigned_note(&note, &witness, 1_700_000_000).unwrap();
        let twice = cosigned_note(&once, &witness, 1_700_000_100).unwrap();
        let parsed = SignedNote::parse(&twice).unwrap();
        assert_eq!(parsed.signatures.len(), 2, "{twice}");
        parsed.verify(&log.verifier()).unwrap();
        assert_eq!(
            parsed
                .verified_timestamp_cosig(&witness.cosigner_verifier())
                .unwrap(),
            1_700_000_100
        );
    }
}
