//! Signed notes, checkpoints and cosignatures: known answers from the Go reference
//! implementation, byte-layout checks done independently here, and rejection of every
//! kind of tampering.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use pdx_ledger::note::{
    Checkpoint, KeyType, MAX_SIGNATURES, NoteError, NoteSigner, NoteVerifier, SignedNote,
    open_checkpoint,
};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

// Known answers from golang.org/x/mod/sumdb/note/note_test.go (TestNewSigner, TestSign,
// TestOpen).
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n";
const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn peter_signer() -> NoteSigner {
    // PRIVATE+KEY+name+keyid+base64: base64 may itself contain '+', so split from the left.
    let b64 = PETER_SKEY.splitn(5, '+').nth(4).unwrap();
    let raw = STANDARD.decode(b64).unwrap();
    assert_eq!(raw[0], 0x01);
    let seed: [u8; 32] = raw[1..].try_into().unwrap();
    NoteSigner::new("PeterNeumann", SigningKey::from_bytes(&seed)).unwrap()
}

fn random_signer(name: &str, seed: u64) -> NoteSigner {
    let mut bytes = [0u8; 32];
    StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    NoteSigner::new(name, SigningKey::from_bytes(&bytes)).unwrap()
}

fn expected_key_id(name: &str, type_byte: u8, key: &VerifyingKey) -> [u8; 4] {
    let mut input = name.as_bytes().to_vec();
    input.push(0x0A);
    input.push(type_byte);
    input.extend_from_slice(key.as_bytes());
    Sha256::digest(&input)[..4].try_into().unwrap()
}

fn sample_checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "pdx.example/ledger".into(),
        size: 20852163,
        root: [7u8; 32],
        extensions: vec![],
    }
}

#[test]
fn go_reference_signature_is_reproduced_byte_for_byte() {
    let signer = peter_signer();
    assert_eq!(signer.verifier().to_vkey(), PETER_VKEY);
    let note = signer.sign(GO_TEXT).unwrap();
    assert_eq!(note, format!("{GO_TEXT}\n{PETER_SIG}"));
}

#[test]
fn go_reference_notes_open() {
    let peter = NoteVerifier::parse(PETER_VKEY).unwrap();
    let enoch = NoteVerifier::parse(ENOCH_VKEY).unwrap();
    assert_eq!(peter.to_vkey(), PETER_VKEY);
    assert_eq!(enoch.to_vkey(), ENOCH_VKEY);
    assert_eq!(peter.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);

    let text = format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    let note = SignedNote::parse(&text).unwrap();
    assert_eq!(note.body, GO_TEXT);
    assert_eq!(note.signatures.len(), 2);
    assert_eq!(note.to_text(), text);
    // Each verifier checks its own line and ignores the other's.
    note.verify(&peter).unwrap();
    note.verify(&enoch).unwrap();
    let only_enoch = SignedNote::parse(&format!("{GO_TEXT}\n{ENOCH_SIG}")).unwrap();
    assert!(matches!(
        only_enoch.verify(&peter),
        Err(NoteError::NotSigned { .. })
    ));

    // Go's TestOpen "invalid signature": four base64 characters inserted.
    let bad = format!("{GO_TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    assert!(matches!(
        SignedNote::parse(&bad).unwrap().verify(&peter),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn go_reference_malformed_notes_are_rejected() {
    let peter_sig_no_newline = PETER_SIG.strip_suffix('\n').unwrap();
    let bad = [
        GO_TEXT.to_string(),
        format!("{GO_TEXT}\n"),
        format!("{GO_TEXT}\n{peter_sig_no_newline}"),
        format!("\x01{GO_TEXT}\n{PETER_SIG}"),
        format!(
            "{GO_TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
        ),
        format!("{GO_TEXT}\n{PETER_SIG}Unexpected line.\n"),
        format!("{GO_TEXT}\n{}", PETER_SIG.replacen('—', "--", 1)),
        format!("{GO_TEXT}\n— PeterNeumann x08g\n"),
    ];
    for text in &bad {
        assert!(SignedNote::parse(text).is_err(), "accepted {text:?}");
    }
    let too_many = format!("{GO_TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES + 1));
    assert_eq!(
        SignedNote::parse(&too_many),
        Err(NoteError::TooManySignatures)
    );
    // The limit itself is accepted (the spec demands at least 16).
    let at_limit = format!("{GO_TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES));
    SignedNote::parse(&at_limit)
        .unwrap()
        .verify(&NoteVerifier::parse(PETER_VKEY).unwrap())
        .unwrap();
}

#[test]
fn go_reference_mangled_verifier_keys_are_rejected() {
    // Go TestNewVerifier: every proper substring and every single-byte increment fails.
    let b = PETER_VKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if i == 0 && j == b.len() {
                continue;
            }
            let s = std::str::from_utf8(&b[i..j]).unwrap();
            assert!(NoteVerifier::parse(s).is_err(), "accepted {s:?}");
        }
    }
    for i in 0..b.len() {
        let mut m = b.to_vec();
        m[i] += 1;
        let s = String::from_utf8(m).unwrap();
        assert!(NoteVerifier::parse(&s).is_err(), "accepted {s:?}");
    }
    // Wrong key length and unknown algorithm, each with a matching key id.
    assert!(matches!(
        NoteVerifier::parse(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        ),
        Err(NoteError::MalformedKey(_))
    ));
    assert!(matches!(
        NoteVerifier::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(NoteError::UnknownKeyType(_))
    ));
}

#[test]
fn key_ids_match_an_independent_sha256() {
    let signer = random_signer("log.example/a", 1);
    let v = signer.verifier();
    let c = signer.cosigner_verifier();
    assert_eq!(
        v.key_id(),
        expected_key_id("log.example/a", 0x01, v.verifying_key())
    );
    assert_eq!(
        c.key_id(),
        expected_key_id("log.example/a", 0x04, c.verifying_key())
    );
    assert_ne!(v.key_id(), c.key_id());
    assert_eq!(v.key_type(), KeyType::Ed25519);
    assert_eq!(c.key_type(), KeyType::CosignatureV1);
    // vkey layout: name + hex key id + base64(type || key).
    let vkey = v.to_vkey();
    let mut raw = vec![0x01];
    raw.extend_from_slice(v.verifying_key().as_bytes());
    assert_eq!(
        vkey,
        format!(
            "log.example/a+{}+{}",
            hex::encode(v.key_id()),
            STANDARD.encode(&raw)
        )
    );
    assert_eq!(NoteVerifier::parse(&vkey).unwrap(), v);
    assert_eq!(NoteVerifier::parse(&c.to_vkey()).unwrap(), c);
}

#[test]
fn checkpoint_round_trip_and_tampering() {
    let signer = random_signer("pdx.example/ledger", 2);
    let verifier = signer.verifier();
    let cp = sample_checkpoint();
    let note = signer.sign_checkpoint(&cp).unwrap();
    assert!(note.starts_with(&format!(
        "pdx.example/ledger\n20852163\n{}\n\n— pdx.example/ledger ",
        STANDARD.encode([7u8; 32])
    )));
    assert_eq!(open_checkpoint(&note, &verifier).unwrap(), cp);
    let parsed = SignedNote::parse(&note).unwrap();
    assert_eq!(parsed.to_text(), note);
    // The signed bytes are the body alone, with its final newline.
    let sig = &parsed.signatures[0];
    assert_eq!(sig.key_id, verifier.key_id());
    let raw: [u8; 64] = sig.signature.as_slice().try_into().unwrap();
    verifier
        .verifying_key()
        .verify_strict(cp.body().as_bytes(), &Signature::from_bytes(&raw))
        .unwrap();

    // A flipped body byte.
    let flipped = note.replacen("20852163", "20852164", 1);
    assert!(matches!(
        open_checkpoint(&flipped, &verifier),
        Err(NoteError::InvalidSignature { .. })
    ));
    // A signature by another key under the same name: different key id, so it is not
    // ours and the note has no signature by us.
    let other = random_signer("pdx.example/ledger", 3);
    let forged = other.sign_checkpoint(&cp).unwrap();
    assert!(matches!(
        open_checkpoint(&forged, &verifier),
        Err(NoteError::NotSigned { .. })
    ));
    // ... and with our key id spliced in, it is ours and invalid.
    let mut spliced = SignedNote::parse(&forged).unwrap();
    spliced.signatures[0].key_id = verifier.key_id();
    assert!(matches!(
        open_checkpoint(&spliced.to_text(), &verifier),
        Err(NoteError::InvalidSignature { .. })
    ));
    // A valid signature next to a bad one claiming the same key rejects the note.
    let mut doubled = parsed.clone();
    doubled.signatures.push(spliced.signatures[0].clone());
    assert!(doubled.verify(&verifier).is_err());
    // A swapped name.
    let renamed = note.replacen("— pdx.example/ledger ", "— pdx.example/other ", 1);
    assert!(matches!(
        open_checkpoint(&renamed, &verifier),
        Err(NoteError::NotSigned { .. })
    ));
    // Malformed base64: a bad character, and a non-canonical final character.
    let line_start = note.find("— ").unwrap();
    let b64_start = note[line_start..].find(' ').unwrap() + line_start + 1;
    let b64_start = note[b64_start..].find(' ').unwrap() + b64_start + 1;
    let mut bad_char = note.clone();
    bad_char.replace_range(b64_start + 5..b64_start + 6, "!");
    assert!(matches!(
        SignedNote::parse(&bad_char),
        Err(NoteError::MalformedNote(_))
    ));
    // 68 bytes encode to 92 characters ending in one "="; the last data character
    // carries 2 unused bits, which must be zero.
    let pad = note.len() - 3;
    assert_eq!(&note[pad + 1..], "=\n");
    let last = &note[pad..pad + 1];
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let pos = alphabet.find(last).unwrap();
    let sloppy = &alphabet[pos ^ 1..(pos ^ 1) + 1];
    let mut non_canonical = note.clone();
    non_canonical.replace_range(pad..pad + 1, sloppy);
    assert!(SignedNote::parse(&non_canonical).is_err());
}

#[test]
fn malleated_signature_is_rejected() {
    let signer = random_signer("pdx.example/ledger", 4);
    let note = signer.sign_checkpoint(&sample_checkpoint()).unwrap();
    let mut parsed = SignedNote::parse(&note).unwrap();
    // s' = s + L (little endian) is the same signature modulo L: verify_strict must
    // reject it as non-canonical. L = 2^252 + 27742317777372353535851937790883648493.
    let l: [u8; 32] = {
        let mut l = [0u8; 32];
        l[..16].copy_from_slice(&hex::decode("edd3f55c1a631258d69cf7a2def9de14").unwrap());
        l[31] = 0x10;
        l
    };
    let s = &mut parsed.signatures[0].signature[32..64];
    let mut carry = 0u16;
    for (byte, l_byte) in s.iter_mut().zip(l) {
        let sum = u16::from(*byte) + u16::from(l_byte) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    let malleated = parsed.to_text();
    assert_ne!(malleated, note);
    assert!(matches!(
        open_checkpoint(&malleated, &signer.verifier()),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn weak_and_invalid_names_and_keys_are_rejected() {
    // The identity point: every signature with R = identity, s = 0 "verifies" under it
    // with a lax verifier.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = VerifyingKey::from_bytes(&identity).unwrap();
    assert_eq!(NoteVerifier::new("x", weak), Err(NoteError::WeakKey));
    let key = *random_signer("ok", 5).verifier().verifying_key();
    for name in [
        "",
        "a b",
        "a+b",
        "a\nb",
        "a\u{a0}b",
        "a\u{2028}b",
        "a\u{1}b",
    ] {
        assert!(
            matches!(NoteVerifier::new(name, key), Err(NoteError::InvalidName(_))),
            "{name:?}"
        );
    }
    let signer = random_signer("ok", 5);
    assert!(signer.sign("no final newline").is_err());
    assert!(signer.sign("tab\there\n").is_err());
}

#[test]
fn checkpoint_body_rules() {
    let root_b64 = STANDARD.encode([1u8; 32]);
    let cp = Checkpoint {
        origin: "o".into(),
        size: 0,
        root: [1u8; 32],
        extensions: vec!["ext one".into(), "ext two".into()],
    };
    let body = format!("o\n0\n{root_b64}\next one\next two\n");
    assert_eq!(cp.body(), body);
    assert_eq!(Checkpoint::parse_body(&body).unwrap(), cp);
    let short_root = STANDARD.encode([1u8; 31]);
    for bad in [
        format!("o\n5\n{root_b64}"),
        format!("o\n05\n{root_b64}\n"),
        format!("o\n+5\n{root_b64}\n"),
        format!("o\n-0\n{root_b64}\n"),
        format!("o\n\n{root_b64}\n"),
        format!("o\n18446744073709551616\n{root_b64}\n"),
        format!("o\n5\n{short_root}\n"),
        format!("\n5\n{root_b64}\n"),
        format!("o\n5\n{root_b64}\n\n"),
        "o\n5\n".to_string(),
    ] {
        assert!(Checkpoint::parse_body(&bad).is_err(), "accepted {bad:?}");
    }
    assert_eq!(
        Checkpoint::parse_body(&format!("o\n18446744073709551615\n{root_b64}\n"))
            .unwrap()
            .size,
        u64::MAX
    );
    let newline_origin = Checkpoint {
        origin: "a\nb".into(),
        ..cp.clone()
    };
    assert!(newline_origin.validate().is_err());
    assert!(
        random_signer("o", 6)
            .sign_checkpoint(&newline_origin)
            .is_err()
    );
}

#[test]
fn cosignature_round_trip() {
    let log = random_signer("pdx.example/ledger", 7);
    let witness = random_signer("witness.example/w1", 8);
    let cp = sample_checkpoint();
    let body = cp.body();
    let note = log.sign_checkpoint(&cp).unwrap();
    let timestamp = 1_679_315_147;
    let line = witness.cosign(&body, timestamp).unwrap();
    let cosigned = format!("{note}{line}");

    let parsed = SignedNote::parse(&cosigned).unwrap();
    let cosigner = witness.cosigner_verifier();
    assert_eq!(parsed.verified_timestamp_cosig(&cosigner), Ok(timestamp));
    parsed.verify(&cosigner).unwrap();
    // The log's verifier ignores the cosignature line.
    assert_eq!(open_checkpoint(&cosigned, &log.verifier()).unwrap(), cp);
    // A plain key is not a cosigner, and the witness's plain key did not sign.
    assert!(matches!(
        parsed.verified_timestamp_cosig(&witness.verifier()),
        Err(NoteError::NotACosigner(_))
    ));
    assert!(matches!(
        parsed.verify(&witness.verifier()),
        Err(NoteError::NotSigned { .. })
    ));

    // Independent check of the byte layout: key id (type 0x04) || u64 BE time || sig over
    // "cosignature/v1\ntime <t>\n" || body.
    let sig = &parsed.signatures[1];
    assert_eq!(
        sig.key_id,
        expected_key_id("witness.example/w1", 0x04, cosigner.verifying_key())
    );
    assert_eq!(sig.signature.len(), 72);
    assert_eq!(sig.signature[..8], timestamp.to_be_bytes());
    let raw: [u8; 64] = sig.signature[8..].try_into().unwrap();
    let msg = format!("cosignature/v1\ntime 1679315147\n{body}");
    cosigner
        .verifying_key()
        .verify_strict(msg.as_bytes(), &Signature::from_bytes(&raw))
        .unwrap();

    // A changed timestamp or body breaks it.
    let mut retimed = parsed.clone();
    retimed.signatures[1].signature[7] ^= 1;
    assert!(retimed.verified_timestamp_cosig(&cosigner).is_err());
    let other_body = Checkpoint {
        size: 1,
        ..cp.clone()
    }
    .body();
    let mut moved = parsed.clone();
    moved.body = other_body;
    assert!(moved.verified_timestamp_cosig(&cosigner).is_err());

    // Timestamps above 2^63 - 1 are refused on both sides.
    assert_eq!(
        witness.cosign(&body, 1 << 63),
        Err(NoteError::TimestampOutOfRange(1 << 63))
    );
    let mut huge = parsed.clone();
    huge.signatures[1].signature[0] |= 0x80;
    assert!(huge.verified_timestamp_cosig(&cosigner).is_err());
    // Only checkpoint bodies are cosigned.
    assert!(witness.cosign("just text\n", timestamp).is_err());
}
