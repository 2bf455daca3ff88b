//! Encryption at rest (XT Art.35–36; GD18 Art.27): every zone file on disk is sealed.
//!
//! A market (a certified version, a run, a quarantined and released output, an FHE key
//! index) and a raw upload leave files under `zones/`; read straight off the disk, each
//! is a sealed file and none shows a value, a column name or Parquet's own structure;
//! through the API the same files still download with their certified and released
//! hashes. A byte changed on disk is refused, not served; `pdx zones verify` names the
//! file. Rotating the KEK rewrites the keyring only: every zone file stays byte for
//! byte, the old KEK no longer opens the keyring, the new one verifies every file. A
//! data directory from before sealing is sealed in place by `pdx zones seal`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pdx_sandbox::config::ZONES_KEK_FILE_NAME;
use pdx_seal::{KEYRING_FILE_NAME, Kek, Keyring, MAGIC, SealError};

use crate::products::{Market, market};
use crate::support::{TestServer, blake3_hex};

/// Strings the market's data holds in the clear (column names, category values) and
/// that only plaintext Parquet or CSV would show. Long enough that random bytes do not
/// hold them by chance.
const PLAINTEXTS: [&str; 8] = [
    "credit_code",
    "kwh_12m",
    "district",
    "industry",
    "manufacturing",
    "logistics",
    "Longgang",
    "parquet-rs",
];

/// Every regular file under `dir`, by path relative to it.
fn files_under(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, path);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// GETs `path` as `key`; returns the status and the body's bytes.
async fn get_bytes(t: &TestServer, key: &str, path: &str) -> (u16, Vec<u8>) {
    let resp = t
        .http
        .get(t.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// The certified Parquet file of the market's dataset version 1, downloaded (200).
async fn version_parquet(m: &Market) -> Vec<u8> {
    let path = format!(
        "/v1/datasets/{}/versions/1/download?format=parquet",
        m.dataset
    );
    let (s, bytes) = get_bytes(&m.t, &m.dev, &path).await;
    assert_eq!(s, 200, "{path}");
    bytes
}

/// The market's released output, downloaded by its owner in `format` (200).
async fn output_download(m: &Market, format: &str) -> Vec<u8> {
    let output = m.release["id"].as_str().unwrap();
    let path = format!("/v1/outputs/{output}/download?format={format}");
    let (s, bytes) = get_bytes(&m.t, &m.dev, &path).await;
    assert_eq!(s, 200, "{path}");
    bytes
}

/// BLAKE3 of every file under `zones` as it is on disk, the keyring left out.
fn disk_hashes(zones: &Path) -> BTreeMap<String, String> {
    files_under(zones)
        .into_iter()
        .filter(|(rel, _)| rel != KEYRING_FILE_NAME)
        .map(|(rel, path)| (rel, blake3_hex(std::fs::read(path).unwrap())))
        .collect()
}

/// Runs `pdx --data-dir DIR [--config CONFIG] zones ARGS`; returns the exit code and
/// the output.
async fn pdx_zones(dir: &Path, config: Option<&Path>, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["--data-dir".to_string(), dir.to_str().unwrap().to_string()];
    if let Some(config) = config {
        all.extend(["--config".to_string(), config.to_str().unwrap().to_string()]);
    }
    all.push("zones".to_string());
    all.extend(args.iter().map(|a| a.to_string()));
    crate::backup::pdx(all).await
}

#[tokio::test]
async fn zone_files_read_off_the_disk_are_sealed_and_show_no_value() {
    let Some(m) = market(false).await else {
        return;
    };
    let t = &m.t;
    // A raw upload as it streams in (the market's own raw file is deleted once its
    // version is certified).
    let mut upload = t.app.sandbox.versions().start_upload().await.unwrap();
    let csv = pdx::samples::electricity_csv(300, 11);
    for chunk in csv.as_bytes().chunks(1000) {
        upload.write(chunk).await.unwrap();
    }
    let raw = upload.finish().await.unwrap();
    assert_eq!(raw.bytes(), csv.len() as u64);

    let zones = t.dir.path().join("zones");
    let files = files_under(&zones);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (rel, path) in &files {
        let bytes = std::fs::read(path).unwrap();
        let zone = rel.split('/').next().unwrap();
        if rel == KEYRING_FILE_NAME {
            // The keyring holds only wrapped keys and public ids.
            assert!(!contains(&bytes, b"PDXSEAL1"), "{rel}");
            continue;
        }
        if matches!(zone, "raw" | "deid" | "quarantine" | "released")
            || rel.starts_with("fhe/index/")
        {
            assert!(bytes.starts_with(MAGIC), "{rel} is not sealed");
            *seen
                .entry(if zone == "fhe" { "fhe/index" } else { zone })
                .or_default() += 1;
        }
        for plain in PLAINTEXTS {
            assert!(
                !contains(&bytes, plain.as_bytes()),
                "{rel} shows {plain:?} on disk"
            );
        }
        // No Parquet footer magic at the end of any file either.
        assert!(!bytes.ends_with(b"PAR1"), "{rel} ends like a Parquet file");
    }
    for zone in ["raw", "deid", "quarantine", "released", "fhe/index"] {
        assert!(
            seen.get(zone).is_some_and(|n| *n >= 1),
            "no file in {zone}: {files:?}"
        );
    }

    // Through the API the plaintext comes back, with its certified and released hashes.
    let (s, version) = t
        .get(
            &m.provider,
            &format!("/v1/datasets/{}/versions/1", m.dataset),
        )
        .await;
    assert_eq!(s, 200, "{version}");
    let parquet = version_parquet(&m).await;
    assert!(parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"));
    assert_eq!(
        blake3_hex(&parquet),
        version["content_hash"].as_str().unwrap()
    );
    let out = output_download(&m, "parquet").await;
    assert_eq!(blake3_hex(&out), m.release["output_hash"].as_str().unwrap());
    let csv_out = output_download(&m, "csv").await;
    assert!(
        contains(&csv_out, b"district"),
        "{}",
        String::from_utf8_lossy(&csv_out)
    );
    drop(raw);
    m.t.stop().await;
}

#[tokio::test]
async fn a_zone_file_changed_on_disk_is_refused_not_served() {
    let Some(m) = market(false).await else {
        return;
    };
    let t = &m.t;
    let output = m.release["id"].as_str().unwrap();
    let released: BTreeMap<String, PathBuf> = files_under(&t.dir.path().join("zones/released"));
    let (rel, file) = released.iter().next().expect("a released file");
    let mut bytes = std::fs::read(file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(file, &bytes).unwrap();

    for format in ["parquet", "csv", "json"] {
        let (s, body) = get_bytes(
            t,
            &m.dev,
            &format!("/v1/outputs/{output}/download?format={format}"),
        )
        .await;
        assert_eq!(s, 500, "{format}: {}", String::from_utf8_lossy(&body));
        for plain in PLAINTEXTS {
            assert!(!contains(&body, plain.as_bytes()), "{format}: {plain}");
        }
    }
    let (code, out) = pdx_zones(t.dir.path(), None, &["verify"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("FAILED released/{rel}")) && out.contains("authentication"),
        "{out}"
    );
    assert!(out.contains(" zone file(s), 1 failed"), "{out}");
    m.t.stop().await;
}

#[tokio::test]
async fn rotating_the_kek_rewraps_the_keyring_and_rewrites_no_zone_file() {
    let Some(m) = market(false).await else {
        return;
    };
    let t = &m.t;
    let dir = t.dir.path();
    let zones = dir.join("zones");
    let before = disk_hashes(&zones);
    let old_kek = dir.join(ZONES_KEK_FILE_NAME);
    let scratch = tempfile::tempdir().unwrap();
    let new_kek = scratch.path().join("new-kek.key");

    let (code, out) = pdx_zones(
        dir,
        None,
        &["rotate-kek", "--new-kek", new_kek.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("re-wrapped 1 data key"), "{out}");
    assert!(new_kek.is_file());

    let after = disk_hashes(&zones);
    assert_eq!(before, after, "a zone file was rewritten");

    let keyring = zones.join(KEYRING_FILE_NAME);
    let old = Kek::load(&old_kek).unwrap();
    assert!(matches!(
        Keyring::open(&keyring, &old),
        Err(SealError::WrongKek { .. })
    ));
    // The default place still holds the old KEK: verify refuses at the keyring.
    let (code, out) = pdx_zones(dir, None, &["verify"]).await;
    assert_ne!(code, Some(0), "{out}");
    let config = scratch.path().join("pdx.toml");
    std::fs::write(
        &config,
        format!("zones_kek_file = {:?}\n", new_kek.to_str().unwrap()),
    )
    .unwrap();
    let (code, out) = pdx_zones(dir, Some(&config), &["verify"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(" zone file(s), 0 failed"), "{out}");
    // The running server keeps its unwrapped keys: downloads go on.
    let out = output_download(&m, "parquet").await;
    assert_eq!(blake3_hex(&out), m.release["output_hash"].as_str().unwrap());
    m.t.stop().await;
}

#[tokio::test]
async fn a_data_directory_from_before_sealing_is_sealed_in_place() {
    let Some(m) = market(false).await else {
        return;
    };
    let t = &m.t;
    let dir = t.dir.path();
    // As an older pdx left it: the version's file in the clear, under the same name.
    let (s, version) = t
        .get(
            &m.provider,
            &format!("/v1/datasets/{}/versions/1", m.dataset),
        )
        .await;
    assert_eq!(s, 200, "{version}");
    let hash = version["content_hash"].as_str().unwrap();
    let file = dir
        .join("zones/deid")
        .join(&hash[..2])
        .join(format!("{hash}.parquet"));
    let plain = t.app.sandbox.at_rest().read_all(&file).unwrap();
    std::fs::write(&file, &plain).unwrap();

    let (code, out) = pdx_zones(dir, None, &["verify"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not sealed"), "{out}");
    let (code, out) = pdx_zones(dir, None, &["seal"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("sealed 1 zone file(s)"), "{out}");
    let on_disk = std::fs::read(&file).unwrap();
    assert!(on_disk.starts_with(MAGIC));
    for plain in PLAINTEXTS {
        assert!(!contains(&on_disk, plain.as_bytes()), "{plain}");
    }
    let (code, out) = pdx_zones(dir, None, &["verify"]).await;
    assert_eq!(code, Some(0), "{out}");
    // Sealed again with its name and certified hash unchanged: it downloads as before.
    let parquet = version_parquet(&m).await;
    assert_eq!(blake3_hex(&parquet), hash);
    // Nothing left to seal the second time.
    let (code, out) = pdx_zones(dir, None, &["seal"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("sealed 0 zone file(s)"), "{out}");
    m.t.stop().await;
}
