//! Witness cosignatures: only a verified line over a checkpoint this log signed is kept,
//! one per witness and size, and it is served after that checkpoint's note.

use pdx_ledger::kinds::Suspension;
use pdx_ledger::note::{Checkpoint, SignedNote};
use pdx_ledger::witness::MAX_NOTE_BYTES;
use pdx_ledger::{Actor, WitnessError};

use crate::support::{TestDb, signer};

/// The table as the application's migration `0002_supervision.sql` creates it (this
/// crate's own migrations do not; see the `pdx_ledger::witness` module docs).
const COSIGNATURES_TABLE: &str = "CREATE TABLE ledger_cosignatures (
    size        BIGINT NOT NULL,
    witness_key TEXT   NOT NULL,
    line        TEXT   NOT NULL,
    cosigned_s  BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (size, witness_key)
)";

#[tokio::test]
async fn a_verified_cosignature_of_a_signed_checkpoint_is_kept_and_served() {
    for t in TestDb::all().await {
        sqlx::query(COSIGNATURES_TABLE)
            .execute(t.db.pool())
            .await
            .unwrap();
        let log = signer("test.pdx/ledger");
        let ledger = t.ledger(log.clone(), 0);
        let actor = Actor {
            org: "org-supervisor".into(),
            key_id: "k-test".into(),
        };
        for i in 0..3 {
            let entry = Suspension {
                org: format!("org-{i}"),
                action: "suspended".into(),
                reason: "witness test".into(),
            };
            ledger.append_now(&actor, &entry).await.unwrap();
        }
        let cp = ledger.checkpoint().await.unwrap();
        assert_eq!(cp.size, 3, "{}", t.name);
        // Nothing cosigned yet: the note as signed.
        assert_eq!(ledger.with_cosignatures(&cp).await.unwrap(), cp.note);
        let body = SignedNote::parse(&cp.note).unwrap().body;
        let witness = signer("witness.test/w1");
        let vkey = witness.cosigner_verifier().to_vkey();

        let line = witness.cosign(&body, 1_700_000_000).unwrap();
        let cosigned = format!("{}{line}", cp.note);
        let accepted = ledger.accept_cosignature(&vkey, &cosigned).await.unwrap();
        assert_eq!(accepted.size, 3);
        assert_eq!(accepted.witness, "witness.test/w1");
        assert_eq!(accepted.witness_key, vkey);
        assert_eq!(accepted.timestamp, 1_700_000_000);
        assert_eq!(accepted.line, line);
        let served = ledger.with_cosignatures(&cp).await.unwrap();
        assert_eq!(served, cosigned, "{}", t.name);
        let note = SignedNote::parse(&served).unwrap();
        note.verify(&log.verifier()).unwrap();
        assert_eq!(
            note.verified_timestamp_cosig(&witness.cosigner_verifier()),
            Ok(1_700_000_000)
        );

        // The same witness again, later (its earlier line still on the note, as served):
        // one line per witness and size, the later one.
        let later = witness.cosign(&body, 1_700_000_100).unwrap();
        let recosigned = format!("{served}{later}");
        let again = ledger.accept_cosignature(&vkey, &recosigned).await.unwrap();
        assert_eq!(again.timestamp, 1_700_000_100);
        assert_eq!(
            ledger.with_cosignatures(&cp).await.unwrap(),
            format!("{}{later}", cp.note),
            "{}",
            t.name
        );

        // Refusals, each the submitter's mistake.
        let stranger = signer("stranger.test/w");
        let other_log = signer("test.pdx/ledger");
        let foreign = format!(
            "{}{}",
            other_log.sign(&body).unwrap(),
            witness.cosign(&body, 5).unwrap()
        );
        let ghost = Checkpoint {
            origin: log.name().to_string(),
            size: 99,
            root: [5; 32],
            extensions: Vec::new(),
        };
        let ghost_note = format!(
            "{}{}",
            log.sign_checkpoint(&ghost).unwrap(),
            witness.cosign(&ghost.body(), 5).unwrap()
        );
        let fork = Checkpoint {
            size: 3,
            ..ghost.clone()
        };
        let fork_note = format!(
            "{}{}",
            log.sign_checkpoint(&fork).unwrap(),
            witness.cosign(&fork.body(), 5).unwrap()
        );
        let too_long = "x".repeat(MAX_NOTE_BYTES + 1);
        let plain = witness.verifier().to_vkey();
        let strangers = stranger.cosigner_verifier().to_vkey();
        let (vkey, cosigned) = (vkey.as_str(), cosigned.as_str());
        let cases = [
            ("too long", vkey, too_long.as_str()),
            ("not a key", "not a key", cosigned),
            ("plain key", plain.as_str(), cosigned),
            ("not a note", vkey, "not a note"),
            ("another log", vkey, foreign.as_str()),
            ("stranger", strangers.as_str(), cosigned),
            ("unknown size", vkey, ghost_note.as_str()),
            ("fork", vkey, fork_note.as_str()),
        ];
        for (what, key, text) in cases {
            let err = ledger.accept_cosignature(key, text).await.unwrap_err();
            assert!(err.is_client_error(), "{}: {what}: {err}", t.name);
            let expected = match what {
                "too long" => matches!(err, WitnessError::TooLong),
                "not a key" => matches!(err, WitnessError::BadKey(_)),
                "plain key" => matches!(err, WitnessError::NotACosigner),
                "not a note" => matches!(err, WitnessError::BadNote(_)),
                "another log" => matches!(err, WitnessError::NotSignedByLog),
                "stranger" => matches!(err, WitnessError::BadCosignature(_)),
                "unknown size" => matches!(err, WitnessError::UnknownCheckpoint { size: 99 }),
                _ => matches!(err, WitnessError::RootMismatch { size: 3 }),
            };
            assert!(expected, "{}: {what}: {err:?}", t.name);
        }
        // None of them changed what is served.
        assert_eq!(
            ledger.with_cosignatures(&cp).await.unwrap(),
            format!("{}{later}", cp.note)
        );
        t.cleanup().await;
    }
}
