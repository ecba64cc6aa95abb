//! The golden vectors in `tests/fixtures/openapi-vectors` (copied from the shared fixture set), produced by the official SDKs,
//! reproduced byte for byte.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;

use agreements_protocol::envelope::{self, Signing};
use agreements_protocol::notification;
use agreements_protocol::sign_content::{self, Empties};
use agreements_protocol::{
    Charset, Params, PrivateKey, ProtocolError, PublicKey, SignType, WireError, request,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/openapi-vectors")
}

fn read(name: &str) -> String {
    let path = fixtures().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(name: &str) -> Value {
    serde_json::from_str(&read(name)).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn sign_type(v: &Value) -> SignType {
    SignType::parse(s(v)).unwrap()
}

fn charset(v: &Value) -> Charset {
    Charset::from_label(s(v).as_bytes()).unwrap()
}

#[test]
fn every_key_container_in_the_fixtures_is_readable() {
    for name in ["app", "gateway"] {
        let reference =
            PublicKey::parse(&read(&format!("keys/{name}_public_key_spki.pem"))).unwrap();
        for private in ["pkcs1.pem", "pkcs8.pem", "pkcs1.b64", "pkcs8.b64"] {
            let key =
                PrivateKey::parse(&read(&format!("keys/{name}_private_key_{private}"))).unwrap();
            let sig = key.sign(SignType::Rsa2, b"probe").unwrap();
            assert!(
                reference.verify(SignType::Rsa2, b"probe", &sig),
                "{name} {private}"
            );
        }
        for public in [
            "public_key_spki.pem",
            "public_key_pkcs1.pem",
            "public_key_spki.b64",
        ] {
            let key = PublicKey::parse(&read(&format!("keys/{name}_{public}"))).unwrap();
            let sig = PrivateKey::parse(&read(&format!("keys/{name}_private_key_pkcs1.pem")))
                .unwrap()
                .sign(SignType::Rsa, b"probe")
                .unwrap();
            assert!(key.verify(SignType::Rsa, b"probe", &sig), "{name} {public}");
        }
    }
}

#[test]
fn request_vectors_decode_rebuild_and_verify_byte_for_byte() {
    let app_public = PublicKey::parse(&read("keys/app_public_key_spki.pem")).unwrap();
    let app_private = PrivateKey::parse(&read("keys/app_private_key_pkcs8.pem")).unwrap();
    let mut checked = 0;
    for vector in json("request-vectors.json")["vectors"].as_array().unwrap() {
        for variant in vector["variants"].as_array().unwrap() {
            let id = format!("{} {}", s(&vector["id"]), s(&variant["sign_type"]));
            let wire = &variant["wire"];
            let params = Params::decode(
                s(&wire["query_string"]).as_bytes(),
                Some(s(&wire["content_type"]).as_bytes()),
                s(&wire["body"]).as_bytes(),
            )
            .unwrap();
            assert_eq!(params.charset(), charset(&variant["charset"]), "{id}");

            // Every signed parameter arrived with its exact value, and nothing else but `sign`.
            let signed = variant["signed_params"].as_object().unwrap();
            for (name, value) in signed {
                assert_eq!(params.get(name), Some(s(value)), "{id}: {name}");
            }
            assert_eq!(params.iter().count(), signed.len() + 1, "{id}");
            assert_eq!(params.get("sign"), Some(s(&variant["sign"])), "{id}");

            let content = sign_content::request(&params, Empties::Drop);
            assert_eq!(
                hex(&content),
                s(&variant["string_to_sign_bytes_hex"]),
                "{id}"
            );
            let text = params.charset().decode(&content).unwrap();
            assert_eq!(text, s(&variant["string_to_sign"]), "{id}");

            let st = sign_type(&variant["sign_type"]);
            assert_eq!(request::verify(&params, &app_public, st), Ok(()), "{id}");
            assert_eq!(
                app_private.sign(st, &content).unwrap(),
                s(&variant["sign"]),
                "{id}"
            );

            // The same request signed with the other algorithm does not verify.
            let other = if st == SignType::Rsa2 {
                SignType::Rsa
            } else {
                SignType::Rsa2
            };
            assert_eq!(
                request::verify(&params, &app_public, other),
                Err(ProtocolError::InvalidSignature),
                "{id}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
}

#[test]
fn a_tampered_request_does_not_verify() {
    let app_public = PublicKey::parse(&read("keys/app_public_key_spki.pem")).unwrap();
    let variant = &json("request-vectors.json")["vectors"][0]["variants"][0];
    let body = s(&variant["wire"]["body"]).replace("2088101122675263", "2088101122675264");
    let params = Params::decode(
        s(&variant["wire"]["query_string"]).as_bytes(),
        None,
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(
        request::verify(&params, &app_public, SignType::Rsa2),
        Err(ProtocolError::InvalidSignature)
    );
}

#[test]
fn response_vectors_are_rendered_byte_for_byte() {
    let gateway_private = PrivateKey::parse(&read("keys/gateway_private_key_pkcs1.pem")).unwrap();
    let mut checked = 0;
    for vector in json("response-vectors.json")["vectors"].as_array().unwrap() {
        let id = s(&vector["id"]);
        let cs = charset(&vector["charset"]);
        let body_text = s(&vector["response_body"]);
        let node_name = &body_text[2..body_text.find("\":").unwrap()];
        let expected = STANDARD
            .decode(s(&vector["response_body_bytes_b64"]))
            .unwrap();
        let node = s(&vector["signed_substring"]);
        assert_eq!(
            hex(&cs.encode(node)),
            s(&vector["signed_substring_bytes_hex"]),
            "{id}"
        );
        let signing = Signing {
            key: &gateway_private,
            sign_type: sign_type(&vector["sign_type"]),
        };
        let body = envelope::render(node_name, node, cs, Some(signing)).unwrap();
        assert_eq!(body, expected, "{id}");
        assert_eq!(
            envelope::content_type(cs),
            s(&vector["http_content_type"]),
            "{id}"
        );
        checked += 1;
    }
    assert_eq!(checked, 6);
}

#[test]
fn error_nodes_match_the_vectors_text() {
    let vectors = json("response-vectors.json");
    let node = |i: usize| s(&vectors["vectors"][i]["signed_substring"]).to_owned();
    let not_exist = WireError::business("USER_AGREEMENT_NOT_EXIST", "用户协议不存在");
    assert_eq!(envelope::error_node(&not_exist), node(2));
    assert_eq!(envelope::error_node(&not_exist), node(3));
    assert_eq!(
        envelope::error_node(&ProtocolError::InvalidSignature.wire()),
        node(4)
    );
    assert_eq!(
        envelope::error_node(&ProtocolError::InvalidMethod.wire()),
        node(5)
    );
}

#[test]
fn notification_vectors_are_signed_byte_for_byte() {
    let gateway_private = PrivateKey::parse(&read("keys/gateway_private_key_pkcs8.pem")).unwrap();
    let vectors = json("notification-vectors.json");
    let vectors = vectors["vectors"].as_array().unwrap();
    assert!(!vectors.is_empty());
    for vector in vectors {
        let params = vector["params"].as_object().unwrap();
        let content = sign_content::notification(params.iter().map(|(k, v)| (k.as_str(), s(v))));
        assert_eq!(content, s(&vector["string_to_sign"]));
        assert_eq!(
            gateway_private
                .sign(SignType::Rsa2, content.as_bytes())
                .unwrap(),
            s(&vector["sign"])
        );
        let unsigned: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), s(v)))
            .filter(|(k, _)| *k != "sign" && *k != "sign_type")
            .collect();
        let body = notification::sign_form(&unsigned, &gateway_private, SignType::Rsa2).unwrap();
        assert_eq!(body, s(&vector["form_body"]));
        assert_eq!(notification::CONTENT_TYPE, s(&vector["http_content_type"]));
    }
}

#[test]
fn aes_request_signature_covers_the_ciphertext() {
    let app_public = PublicKey::parse(&read("keys/app_public_key_spki.pem")).unwrap();
    let vector = &json("aes-vector.json")["vectors"][0]["request"];
    let signed = vector["signed_params"].as_object().unwrap();
    let mut query = String::new();
    for (name, value) in signed {
        let mut encoded = String::new();
        for b in s(value).bytes() {
            encoded.push_str(&format!("%{b:02X}"));
        }
        query.push_str(&format!("{name}={encoded}&"));
    }
    let params = Params::decode(query.as_bytes(), None, b"").unwrap();
    let content = sign_content::request(&params, Empties::Drop);
    assert_eq!(content, s(&vector["string_to_sign"]).as_bytes());
    assert!(app_public.verify(SignType::Rsa2, &content, s(&vector["sign_rsa2"])));
}

/// The vector's ciphertexts, both ways: the request's `biz_content` decrypts to its plaintext, and
/// the plaintext response node encrypts (zero IV: deterministic) to the vector's node, whose quoted
/// form is what the platform key signed.
#[test]
fn aes_contents_match_the_vector_byte_for_byte() {
    use agreements_protocol::aes::{ContentKey, EncryptType};
    let vector = &json("aes-vector.json")["vectors"][0];
    let key = ContentKey::parse(s(&vector["aes_key_b64"])).unwrap();
    let request = &vector["request"];
    let plaintext = key
        .decrypt(
            EncryptType::Aes,
            s(&request["signed_params"]["biz_content"]),
        )
        .unwrap();
    assert_eq!(plaintext, s(&request["biz_content_plaintext"]).as_bytes());
    let response = &vector["response"];
    let sealed = key
        .encrypt(EncryptType::Aes, s(&response["plaintext_node"]).as_bytes())
        .unwrap();
    assert_eq!(format!("\"{sealed}\""), s(&response["signed_substring"]));
    let gateway = PublicKey::parse(&read("keys/gateway_public_key_spki.pem")).unwrap();
    assert!(gateway.verify(
        SignType::Rsa2,
        s(&response["signed_substring"]).as_bytes(),
        s(&response["sign_rsa2"])
    ));
}

/// The SNs of the public Alipay certificate files, as the Java and Node SDKs compute them: the
/// leaf of `appPublicCert.crt` and `alipayPublicCert.crt`, and the RSA-signed members of the
/// root bundle (its SM2 and ECDSA roots skipped) joined by `_`; each certificate's issuer in
/// RFC 2253 form and serial as the vector lists them.
#[test]
fn certificate_sns_match_the_vector() {
    use agreements_protocol::cert::{Certificate, root_cert_sn};
    let vector = &json("cert-sn-vector.json")["vectors"][0];
    for (file, data) in vector["files"].as_object().unwrap() {
        let chain =
            Certificate::parse_pem_chain(read(&format!("certs/{file}")).as_bytes()).unwrap();
        let expected = s(&data["expected"]);
        if s(&data["role"]) == "alipay_root_cert_sn" {
            assert_eq!(root_cert_sn(&chain), expected);
            let listed = data["certificates"].as_array().unwrap();
            assert_eq!(chain.len(), listed.len());
            for (cert, listed) in chain.iter().zip(listed) {
                assert_eq!(
                    cert.sn(),
                    s(&listed["sn"]),
                    "{}",
                    s(&listed["issuer_rfc2253"])
                );
                let rsa = s(&listed["signature_algorithm"]).contains("RSA");
                assert_eq!(
                    cert.is_rsa_signed(),
                    rsa,
                    "{}",
                    s(&listed["signature_algorithm"])
                );
            }
        } else {
            assert_eq!(chain[0].sn(), expected, "{file}");
        }
    }
}

/// OpenAPI v3 requests as the npm SDK's `curl()` signed them (`sdk-vectors/v3-requests.json`):
/// the Authorization header reads, the string-to-sign rebuilt from the raw request-target, body
/// and token verifies with the app key; the same target re-encoded by one character does not.
#[test]
fn v3_requests_of_the_node_sdk_verify() {
    use agreements_protocol::v3;
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/sdk-vectors/v3-requests.json"),
    )
    .unwrap();
    let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
    let app_public = PublicKey::parse(&read("keys/app_public_key_spki.pem")).unwrap();
    let vectors = vectors["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 3);
    for vector in vectors {
        let auth = v3::authorization(Some(s(&vector["authorization"]))).unwrap();
        assert_eq!(auth.app_id, "2021000000000001");
        let token = vector["app_auth_token"].as_str();
        let content = v3::request_sign_content(
            auth.auth_string,
            s(&vector["http_method"]),
            s(&vector["target"]),
            s(&vector["body"]).as_bytes(),
            token,
        );
        assert!(
            app_public.verify(SignType::Rsa2, &content, auth.sign),
            "{}",
            s(&vector["target"])
        );
        let respelled = s(&vector["target"]).replacen('+', "%20", 1);
        if respelled != s(&vector["target"]) {
            let content = v3::request_sign_content(
                auth.auth_string,
                s(&vector["http_method"]),
                &respelled,
                s(&vector["body"]).as_bytes(),
                token,
            );
            assert!(!app_public.verify(SignType::Rsa2, &content, auth.sign));
        }
        if token.is_some() {
            let content = v3::request_sign_content(
                auth.auth_string,
                s(&vector["http_method"]),
                s(&vector["target"]),
                s(&vector["body"]).as_bytes(),
                None,
            );
            assert!(
                !app_public.verify(SignType::Rsa2, &content, auth.sign),
                "the token is signed"
            );
        }
    }
}
