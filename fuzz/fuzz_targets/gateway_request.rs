//! The request parser, as `gateway.do` and `/v3` meet a request: the input is
//! `content-type \n query \n body` (v2) and is also read as a v3 request
//! (`method \n target \n authorization \n body`). A decoded v2 request goes on to its head, its
//! method and required parameters, and both strings-to-sign. Nothing may panic, and the
//! head scan of the raw bytes must always answer.
#![no_main]

use agreements_protocol::sign_content::{self, Empties};
use agreements_protocol::{Params, request, v3};
use libfuzzer_sys::fuzz_target;

/// Splits off the first `n` lines; the rest is the last part.
fn parts<const N: usize>(data: &[u8]) -> Option<([&[u8]; N], &[u8])> {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for slot in &mut out {
        let end = rest.iter().position(|&b| b == b'\n')?;
        *slot = &rest[..end];
        rest = &rest[end + 1..];
    }
    Some((out, rest))
}

fuzz_target!(|data: &[u8]| {
    if let Some(([content_type, query], body)) = parts::<2>(data) {
        let content_type = (!content_type.is_empty()).then_some(content_type);
        let _ = request::Head::scan(query, content_type, body);
        if let Ok(params) = Params::decode(query, content_type, body) {
            let head = request::Head::of(&params);
            let _ = head.method;
            let _ = request::method(&params);
            let _ = request::required(&params);
            let dropped = sign_content::request(&params, Empties::Drop);
            let kept = sign_content::request(&params, Empties::Keep);
            // Keeping empty values never shortens the string-to-sign.
            assert!(kept.len() >= dropped.len());
        }
    }
    if let Some(([method, target, authorization], body)) = parts::<3>(data) {
        let (Ok(method), Ok(target), Ok(authorization)) = (
            std::str::from_utf8(method),
            std::str::from_utf8(target),
            std::str::from_utf8(authorization),
        ) else {
            return;
        };
        let request = v3::Request {
            http_method: method,
            target,
            body,
            authorization: Some(authorization),
            app_auth_token: None,
            encrypt_type: None,
            root_cert_sn: None,
        };
        let _ = v3::Head::of(&request);
        let _ = v3::method(method, request.path());
        if let Ok(auth) = v3::authorization(Some(authorization)) {
            let _ = auth;
        }
    }
});
