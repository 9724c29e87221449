#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests of the device proof: a valid proof verifies, and any single-bit change to
//! the signed payload, the public key, the signature or the nonce is rejected.

use pincer_protocol::connect::DeviceProofParams;
use pincer_protocol::device_auth::{
    build_payload_v2, build_payload_v3, decode_public_key, encode_base64url, verify_device_proof,
    verify_signature_bytes, DeviceAuthError, DeviceKeypair, DeviceProofContext,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Case {
    seed: [u8; 32],
    client_id: String,
    client_mode: String,
    role: String,
    scopes: Vec<String>,
    token: String,
    nonce: String,
    platform: String,
    family: Option<String>,
    signed_at: u64,
    v2: bool,
}

fn field() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9.\\-]{0,15}"
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<[u8; 32]>(),
        prop::sample::select(vec!["cli", "gateway-client", "node-host", "test"]),
        prop::sample::select(vec!["cli", "backend", "node", "ui"]),
        prop::sample::select(vec!["operator", "node"]),
        prop::collection::vec(field(), 0..5),
        "[A-Za-z0-9_\\-]{0,43}",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[A-Za-z ]{1,12}",
        prop::option::of("[A-Za-z]{1,10}"),
        1_000_000u64..4_000_000_000_000u64,
        any::<bool>(),
    )
        .prop_map(
            |(
                seed,
                client_id,
                client_mode,
                role,
                scopes,
                token,
                nonce,
                platform,
                family,
                signed_at,
                v2,
            )| Case {
                seed,
                client_id: client_id.into(),
                client_mode: client_mode.into(),
                role: role.into(),
                scopes,
                token,
                nonce,
                platform,
                family,
                signed_at,
                v2,
            },
        )
}

fn payload(c: &Case, device_id: &str) -> String {
    if c.v2 {
        build_payload_v2(
            device_id,
            &c.client_id,
            &c.client_mode,
            &c.role,
            &c.scopes,
            c.signed_at,
            &c.token,
            &c.nonce,
        )
    } else {
        build_payload_v3(
            device_id,
            &c.client_id,
            &c.client_mode,
            &c.role,
            &c.scopes,
            c.signed_at,
            &c.token,
            &c.nonce,
            Some(&c.platform),
            c.family.as_deref(),
        )
    }
}

fn proof(c: &Case) -> (DeviceKeypair, DeviceProofParams) {
    let kp = DeviceKeypair::from_seed(&c.seed);
    let id = kp.device_id();
    let sig = kp.sign(&payload(c, &id));
    (
        kp.clone(),
        DeviceProofParams {
            id,
            public_key: kp.public_key(),
            signature: sig,
            signed_at: c.signed_at,
            nonce: c.nonce.clone(),
        },
    )
}

fn ctx<'a>(c: &'a Case, challenge: &'a str) -> DeviceProofContext<'a> {
    DeviceProofContext {
        client_id: &c.client_id,
        client_mode: &c.client_mode,
        role: &c.role,
        scopes: &c.scopes,
        token: &c.token,
        platform: Some(&c.platform),
        device_family: c.family.as_deref(),
        challenge_nonce: challenge,
        now_ms: c.signed_at + 1_000,
    }
}

fn flip_bit_in_string(s: &str, bit: usize) -> Option<String> {
    let mut bytes = s.as_bytes().to_vec();
    if bytes.is_empty() {
        return None;
    }
    let i = bit % (bytes.len() * 8);
    bytes[i / 8] ^= 1 << (i % 8);
    String::from_utf8(bytes).ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn valid_proofs_verify(c in case()) {
        let (kp, p) = proof(&c);
        let ok = verify_device_proof(&p, &ctx(&c, &c.nonce)).unwrap();
        prop_assert_eq!(ok.device_id, kp.device_id());
        prop_assert_eq!(ok.public_key, kp.public_key());
    }

    #[test]
    fn any_bit_flip_in_the_signed_payload_is_rejected(c in case(), bit in any::<usize>()) {
        let (kp, p) = proof(&c);
        let mut bytes = payload(&c, &p.id).into_bytes();
        let i = bit % (bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        prop_assert!(!verify_signature_bytes(&kp.public_key_raw(), &bytes, &p.signature));
    }

    #[test]
    fn any_bit_flip_in_a_signed_field_is_rejected(c in case(), which in 0usize..6, bit in any::<usize>()) {
        let (_, p) = proof(&c);
        let mut m = c.clone();
        let target = match which {
            0 => &mut m.token,
            1 => &mut m.client_id,
            2 => &mut m.role,
            3 => &mut m.platform,
            4 => &mut m.client_mode,
            _ => {
                m.signed_at ^= 1 << (bit % 20);
                let r = verify_device_proof(
                    &DeviceProofParams { signed_at: m.signed_at, ..p.clone() },
                    &DeviceProofContext { now_ms: m.signed_at + 1_000, ..ctx(&m, &m.nonce) },
                );
                prop_assert_eq!(r, Err(DeviceAuthError::SignatureInvalid));
                return Ok(());
            }
        };
        let Some(flipped) = flip_bit_in_string(target, bit) else { return Ok(()) };
        // v3 lowercases platform: a case-only change of an ASCII letter is the same payload.
        if which == 3 && !c.v2 && flipped.eq_ignore_ascii_case(target) {
            return Ok(());
        }
        // v2 does not sign the platform at all.
        if which == 3 && c.v2 {
            return Ok(());
        }
        *target = flipped;
        let r = verify_device_proof(&p, &ctx(&m, &m.nonce));
        prop_assert_eq!(r, Err(DeviceAuthError::SignatureInvalid));
    }

    #[test]
    fn any_bit_flip_in_the_public_key_is_rejected(c in case(), bit in 0usize..256) {
        let (kp, p) = proof(&c);
        let mut raw = kp.public_key_raw();
        raw[bit / 8] ^= 1 << (bit % 8);
        // The signature alone never verifies under the changed key ...
        let payload = payload(&c, &p.id);
        prop_assert!(!verify_signature_bytes(&raw, payload.as_bytes(), &p.signature));
        // ... and in a proof the id no longer matches the key.
        let changed = DeviceProofParams { public_key: encode_base64url(&raw), ..p.clone() };
        prop_assert_eq!(
            verify_device_proof(&changed, &ctx(&c, &c.nonce)),
            Err(DeviceAuthError::DeviceIdMismatch)
        );
        prop_assert_eq!(decode_public_key(&encode_base64url(&raw)), Some(raw));
    }

    #[test]
    fn any_bit_flip_in_the_signature_is_rejected(c in case(), bit in 0usize..512) {
        let (_, p) = proof(&c);
        let mut sig = pincer_protocol::device_auth::decode_base64url(&p.signature).unwrap();
        sig[bit / 8] ^= 1 << (bit % 8);
        let changed = DeviceProofParams { signature: encode_base64url(&sig), ..p.clone() };
        prop_assert_eq!(
            verify_device_proof(&changed, &ctx(&c, &c.nonce)),
            Err(DeviceAuthError::SignatureInvalid)
        );
    }

    #[test]
    fn any_bit_flip_in_the_nonce_is_rejected(c in case(), bit in any::<usize>()) {
        let (_, p) = proof(&c);
        let Some(other) = flip_bit_in_string(&c.nonce, bit) else { return Ok(()) };
        if other.trim() == c.nonce {
            return Ok(());
        }
        // The proof is bound to this socket's challenge ...
        let r = verify_device_proof(&p, &ctx(&c, &other));
        prop_assert!(matches!(r, Err(DeviceAuthError::NonceMismatch)), "{r:?}");
        // ... and replaying the signature with a matching but different nonce breaks it.
        let replayed = DeviceProofParams { nonce: other.clone(), ..p.clone() };
        let r = verify_device_proof(&replayed, &ctx(&c, &other));
        prop_assert!(
            matches!(r, Err(DeviceAuthError::SignatureInvalid) | Err(DeviceAuthError::NonceRequired)),
            "{r:?}"
        );
    }
}
