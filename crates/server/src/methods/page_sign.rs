//! `alipay.user.agreement.page.sign` (openapi-gateway.md §8.5, sign-flow.md §1): a browser
//! brings a merchant's signed link; once every check passed, a signing session bound to the
//! request is opened and the browser is sent to the hosted signing page ([`crate::web`]).

use agreements_domain::BizError;
use agreements_domain::ids::{AppId, PartnerId, ProductCode};
use agreements_domain::sign::{SignRequest, beijing_date};
use agreements_domain::{PrincipalType, Scope};
use agreements_protocol::crypto::random_alphanumeric;
use agreements_store::{ExternalKey, SessionState, SigningSession, Store};
use serde_json::{Map, Value};

use super::Call;
use crate::cache::Catalogue;
use crate::failure::Failure;

/// Characters of a signing session's id (62 symbols each: 238 bits).
pub const SESSION_ID_CHARS: usize = 40;

pub(super) async fn handle(
    call: &Call<'_>,
    biz: &Map<String, Value>,
) -> Result<SigningSession, Failure> {
    let request = SignRequest::parse(biz, beijing_date(call.now))?;
    call.caller.scope(request.third_party_type)?;
    let partner = &call.caller.merchant;
    terms(call.store, call.catalogue, partner, &request, call.now).await?;
    // The address rules of notifications: form, port, and the policy for an address host. A
    // name is not resolved while the browser waits: each send resolves it and connects only to
    // addresses the policy allows (notify.rs).
    for (name, url) in [
        ("notify_url", call.request.notify_url),
        ("return_url", call.request.return_url),
    ] {
        if let Some(url) = url {
            call.notify_policy
                .check_url(url)
                .map_err(|e| BizError::InvalidParameter(format!("{name} {e}")))?;
        }
    }
    let app_id = &call.app.record.app_id;
    let link_hash = hex(&openssl::sha::sha256(call.request.sign.as_bytes()));
    // The same link again: its session, whatever became of it (its page says).
    if let Some(opened) = call.store.signing_session_by_link(&link_hash).await? {
        return Ok(opened);
    }
    require_external_free(call.store, partner, &request, app_id).await?;
    let token = call.request.token.as_ref();
    let session = SigningSession {
        session_id: random_alphanumeric(SESSION_ID_CHARS)
            .map_err(|e| BizError::SystemError(format!("no randomness: {e}")))?,
        link_hash,
        app_id: app_id.clone(),
        auth_app_id: token.map_or_else(|| app_id.clone(), |t| t.auth_app_id.clone()),
        partner_id: partner.clone(),
        sign_type: call.request.sign_type,
        biz_content: Value::Object(biz.clone()).to_string(),
        timestamp: call.request.timestamp.to_owned(),
        notify_url: call.request.notify_url.map(str::to_owned),
        return_url: call.request.return_url.map(str::to_owned),
        state: SessionState::Open,
        created_at: call.now,
        expires_at: 0,
        agreement_no: None,
        user_id: None,
        finished_at: None,
    };
    let session = SigningSession {
        expires_at: request.deadline(call.request.timestamp, call.now, call.signing_ttl_secs),
        ..session
    };
    Ok(call.store.open_signing_session(&session).await?)
}

/// The sales product a signing is under: the product must be offered and the named sales
/// product paired with it (`PRODUCT_CODE_NOT_SUPPORTED_ERROR`), and the merchant must hold an
/// active contract for it — or, when none is named, for one of the product's sales products,
/// the first in order (`MERCHANT_AGREEMENT_IS_NOT_EXIST`). Checked when the link is opened
/// and again at confirmation. Returns the sales product and whom the product's agreements are
/// with.
pub async fn terms(
    store: &Store,
    catalogue: &Catalogue,
    partner: &PartnerId,
    request: &SignRequest,
    now: i64,
) -> Result<(ProductCode, PrincipalType), Failure> {
    let code = &request.personal_product_code;
    let product = catalogue.product(store, code).await?.ok_or_else(|| {
        BizError::ProductCodeNotSupported(format!("personal_product_code {code} is not offered"))
    })?;
    let candidates: Vec<&ProductCode> = match &request.product_code {
        Some(named) if product.product_codes.contains(named) => vec![named],
        Some(named) => {
            return Err(BizError::ProductCodeNotSupported(format!(
                "product_code {named} is not paired with {code}"
            ))
            .into());
        }
        None => product.product_codes.iter().collect(),
    };
    let contracts = catalogue.contracts(store, partner, &candidates).await?;
    candidates
        .into_iter()
        .find(|p| {
            contracts
                .iter()
                .any(|c| c.product_code == **p && c.is_active(now))
        })
        .map(|p| (p.clone(), product.principal_type))
        .ok_or_else(|| BizError::MerchantAgreementNotExist.into())
}

/// The merchant's number must not be taken by an agreement of the same merchant, product and
/// scene (whatever its status: the number is unique for good, PROTOCOL.md).
pub async fn require_external_free(
    store: &Store,
    partner: &PartnerId,
    request: &SignRequest,
    app_id: &AppId,
) -> Result<(), Failure> {
    let Some(external_agreement_no) = &request.external_agreement_no else {
        return Ok(());
    };
    let key = ExternalKey {
        personal_product_code: &request.personal_product_code,
        sign_scene: &request.sign_scene,
        external_agreement_no,
    };
    // By the merchant alone: the number is the merchant's whatever the third_party_type.
    let taken = store
        .agreements_by_external(&Scope::Partner(partner.clone()), &key, app_id)
        .await?;
    if taken.is_empty() {
        Ok(())
    } else {
        Err(BizError::AgreementAlreadyExists.into())
    }
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
