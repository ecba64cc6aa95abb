//! No input makes the gateway panic or answer outside the protocol: random bytes and mutations
//! of a valid request all get a well-formed envelope with a known code.

use agreements_protocol::sign_content::Empties;
use agreements_protocol::{Charset, SignType};
use proptest::prelude::*;

use crate::helpers::{TestApp, VECTOR_BIZ, common, signed_form};

const CODES: &[&str] = &[
    "10000", "20000", "20001", "40001", "40002", "40004", "40006",
];

fn assert_well_formed(body: &[u8], charset: Charset) {
    let text = charset
        .decode(body)
        .expect("the body is in the charset it declares");
    let value: serde_json::Value = serde_json::from_str(&text).expect("the body is JSON");
    let object = value.as_object().expect("an object");
    let (name, node) = object.iter().next().expect("a node");
    assert!(name.ends_with("_response"), "{name}");
    let code = node["code"].as_str().expect("a string code");
    assert!(CODES.contains(&code), "{code}");
    assert_eq!(code == "10000", node.get("sub_code").is_none());
    assert!(object.len() <= 2);
}

fn valid_request() -> String {
    let pairs = common(VECTOR_BIZ);
    signed_form(&pairs, SignType::Rsa2, Charset::Utf8, Empties::Drop)
}

#[test]
fn random_and_mutated_requests_always_get_a_well_formed_answer() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(TestApp::spawn());
    let valid = valid_request().into_bytes();
    let content_types = prop_oneof![
        Just(None),
        Just(Some(
            b"application/x-www-form-urlencoded;charset=utf-8".to_vec()
        )),
        Just(Some(
            b"application/x-www-form-urlencoded; charset=gbk".to_vec()
        )),
        Just(Some(b"multipart/form-data; boundary=B".to_vec())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Some),
    ];
    let mutation = (any::<usize>(), any::<u8>(), 0usize..4);
    let config = ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        query in proptest::collection::vec(any::<u8>(), 0..80),
        body in proptest::collection::vec(any::<u8>(), 0..200),
        content_type in content_types,
        (at, byte, kind) in mutation,
    )| {
        let reply = runtime.block_on(app.gateway.handle(&query, content_type.as_deref(), &body));
        assert_well_formed(&reply.body, reply.charset);

        // The valid request, mutated in one place: a changed byte, a cut, an inserted escape, a
        // duplicated tail.
        let mut mutated = valid.clone();
        let at = at % mutated.len();
        match kind {
            0 => mutated[at] = byte,
            1 => mutated.truncate(at),
            2 => mutated.insert(at, b'%'),
            _ => { let tail = mutated[at..].to_vec(); mutated.push(b'&'); mutated.extend(tail); }
        }
        let reply = runtime.block_on(app.gateway.handle(b"", None, &mutated));
        assert_well_formed(&reply.body, reply.charset);
    });
    // And the unmutated request succeeds, so the mutations above started from a valid one.
    let reply = runtime.block_on(app.gateway.handle(b"", None, &valid));
    let text = String::from_utf8(reply.body).unwrap();
    assert!(text.contains("\"code\":\"10000\""), "{text}");
}
