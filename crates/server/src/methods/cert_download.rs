//! `alipay.open.app.alipaycert.download` (cert-aes-v3.md §2.1): a platform signing certificate
//! by its SN — how a client holding an older certificate learns the new one after a rotation.
//! The answer is Base64 of the PEM chain (the certificate, then its chain towards the root), so
//! that the client can check it against its root bundle before trusting it.

use agreements_protocol::ProtocolError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Map, Value};

use super::Call;
use crate::failure::Failure;

/// Longest accepted `alipay_cert_sn` (the method's field table).
const MAX_SN: usize = 128;

/// The success node's fields.
#[derive(Debug, Serialize)]
pub struct Response {
    /// Base64 of the PEM text.
    pub alipay_cert_content: String,
}

pub(super) fn handle(call: &Call<'_>, biz: &Map<String, Value>) -> Result<Response, Failure> {
    let sn = match biz.get("alipay_cert_sn") {
        Some(Value::String(sn)) if !sn.is_empty() && sn.len() <= MAX_SN => sn,
        _ => {
            return Err(ProtocolError::InvalidParameter {
                detail: "alipay_cert_sn is required: a string of at most 128 characters".into(),
            }
            .into());
        }
    };
    let chain = call
        .platform
        .and_then(|trust| trust.chain(sn))
        .ok_or(ProtocolError::PlatformCertNotExist)?;
    Ok(Response {
        alipay_cert_content: STANDARD.encode(chain),
    })
}
