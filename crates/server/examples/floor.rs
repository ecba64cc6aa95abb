//! The least an Alipay-compatible gateway must do per answer: the floor the benchmarks measure
//! the real server against (BENCHMARKS.md, "The floor").
//!
//! Per request it does what no gateway can skip and nothing else: HTTP/1.1 with keep-alive on
//! hyper and a two-worker tokio runtime (as `agreements serve`), the form decoded, the
//! string-to-sign built (every parameter but `sign`, sorted, empty values dropped), the request's
//! RSA2 signature verified with the app's key, and one answer node signed with the platform's key
//! and sent. It has no store, no checks beyond the signature, no rendering (the node is the same
//! bytes for every request: a PKCS #1 v1.5 signature costs the same whatever it covers) and no
//! logs. The keys are the protocol crate's, so the RSA operations are those the server makes;
//! the form, the string-to-sign and the body are written here with `form_urlencoded` rather than
//! through the protocol crate's `Params`, `sign_content` and `envelope`, so that the floor is the
//! least that work can cost, not our implementation of it.
//!
//! ```sh
//! cargo run --release -p agreements-server --example floor -- \
//!     127.0.0.1:8080 app_public_key_spki.pem platform_private_key_pkcs1.pem [node.json]
//! ```
//!
//! `node.json` holds the answer node's exact bytes (for instance one real answer's
//! `alipay_user_agreement_batch_query_response` object); without it a node of a typical
//! one-agreement answer's size is used. Requests whose signature does not verify get a signed
//! `error_response` node, as from the gateway.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;

use agreements_protocol::{PrivateKey, PublicKey, SignType};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const TYPICAL_NODE: &str = r#"{"code":"10000","msg":"Success","usage_agreement_info_list":[{"agreement_no":"20215230001234567890","alipay_logon_id":"138******00","alipay_user_id":"2088101122136241","external_agreement_no":"ext-0001234567","external_logon_id":"member-0001234","personal_product_code":"GENERAL_WITHHOLDING_P","principal_id":"2088101122136241","sign_scene":"INDUSTRY|DIGITAL_MEDIA","sign_time":"2026-11-27 10:00:00","single_quota":"100.00","status":"NORMAL","third_party_type":"PARTNER","valid_time":"2026-11-27 10:00:00","invalid_time":"2115-02-01 00:00:00","zm_open_id":"","credit_auth_mode":"","specified_sort_assets":"","device_id":""}]}"#;
const REFUSED_NODE: &[u8] = br#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature","sub_msg":"the request's signature does not verify"}"#;

struct Floor {
    app: PublicKey,
    platform: PrivateKey,
    node: Vec<u8>,
}

impl Floor {
    /// The answer to one request: its query string's and its form body's parameters.
    fn answer(
        &self,
        query: &[u8],
        body: &[u8],
    ) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        let mut params: Vec<(Cow<'_, str>, Cow<'_, str>)> = form_urlencoded::parse(query)
            .chain(form_urlencoded::parse(body))
            .collect();
        params.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut content = String::with_capacity(body.len());
        let mut signature = None;
        for (name, value) in &params {
            if name == "sign" {
                signature = Some(value);
            } else if !value.is_empty() {
                if !content.is_empty() {
                    content.push('&');
                }
                content.push_str(name);
                content.push('=');
                content.push_str(value);
            }
        }
        let verified =
            signature.is_some_and(|s| self.app.verify(SignType::Rsa2, content.as_bytes(), s));
        let (name, node): (&[u8], &[u8]) = if verified {
            (b"alipay_user_agreement_batch_query_response", &self.node)
        } else {
            (b"error_response", REFUSED_NODE)
        };
        let sign = self.platform.sign(SignType::Rsa2, node)?;
        let mut out = Vec::with_capacity(node.len() + sign.len() + 64);
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(name);
        out.extend_from_slice(b"\":");
        out.extend_from_slice(node);
        out.extend_from_slice(b",\"sign\":\"");
        out.extend_from_slice(sign.as_bytes());
        out.extend_from_slice(b"\"}");
        Ok(out)
    }
}

async fn handle(
    floor: Arc<Floor>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (head, body) = request.into_parts();
    let query = head.uri.query().unwrap_or_default().as_bytes();
    let answer = match body.collect().await {
        Ok(body) => floor.answer(query, &body.to_bytes()),
        Err(e) => Err(e.into()),
    };
    Ok(match answer {
        Ok(json) => Response::builder()
            .header("content-type", "application/json;charset=utf-8")
            .body(Full::new(Bytes::from(json))),
        Err(e) => Response::builder()
            .status(500)
            .body(Full::new(Bytes::from(e.to_string()))),
    }
    .unwrap_or_default())
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, app, platform, rest @ ..] = args.as_slice() else {
        return Err("usage: floor ADDRESS APP_PUBLIC_KEY PLATFORM_PRIVATE_KEY [NODE_FILE]".into());
    };
    let node = match rest.first() {
        Some(path) => std::fs::read(path)?,
        None => TYPICAL_NODE.as_bytes().to_vec(),
    };
    let floor = Arc::new(Floor {
        app: PublicKey::parse(&std::fs::read_to_string(app)?)?,
        platform: PrivateKey::parse(&std::fs::read_to_string(platform)?)?,
        node,
    });
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!("floor listening on http://{}", listener.local_addr()?);
            loop {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                let floor = floor.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request| handle(floor.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
}
