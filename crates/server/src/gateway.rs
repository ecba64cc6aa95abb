//! The gateway pipeline: bytes in, signed bytes out. Every request gets HTTP 200 and a body;
//! the body is signed whenever the app can be known (openapi-gateway.md §2.5, §3).

use std::sync::Arc;
use std::time::Instant;

use agreements_domain::Caller;
use agreements_protocol::charset::{self, Charset};
use agreements_protocol::envelope::{self, Signing};
use agreements_protocol::method::ERROR_RESPONSE_NODE;
use agreements_protocol::{Method, Params, PrivateKey, ProtocolError, SignType, form, request};
use agreements_store::{AppStatus, Store, StoreError};

use crate::apps::{App, AppCache};
use crate::cache::Catalogue;
use crate::clock::Clock;
use crate::failure::Failure;
use crate::methods::{self, Call, Request};
use crate::notify::Outbox;

/// A rendered answer: the body bytes and the charset they are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The response body.
    pub body: Vec<u8>,
    /// The charset of `body`, for the Content-Type header.
    pub charset: Charset,
}

/// Gateway settings that requests see.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Accepted timestamp distance in seconds, `None` for no check.
    pub timestamp_window: Option<u64>,
    /// Largest request body.
    pub max_body_bytes: usize,
}

/// Everything a request needs, shared by all requests.
#[derive(Debug)]
pub struct Gateway {
    store: Arc<Store>,
    platform_key: PrivateKey,
    clock: Arc<dyn Clock>,
    limits: Limits,
    apps: AppCache,
    catalogue: Catalogue,
    outbox: Outbox,
}

/// What is known about a request for answering it, even when it is broken.
struct Context {
    method: Option<Method>,
    app_id: Option<String>,
    app: Result<Option<Arc<App>>, StoreError>,
    sign_type: SignType,
    charset: Charset,
}

impl Gateway {
    /// A gateway over `store`, signing with `platform_key`.
    pub fn new(
        store: Arc<Store>,
        platform_key: PrivateKey,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Self {
        Self {
            store,
            platform_key,
            clock,
            limits,
            apps: AppCache::default(),
            catalogue: Catalogue::default(),
            outbox: Outbox::default(),
        }
    }

    /// The handle that wakes the delivery worker when a request queued notifications.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Answers one request made of its raw query string, Content-Type and body.
    pub async fn handle(&self, query: &[u8], content_type: Option<&[u8]>, body: &[u8]) -> Reply {
        let started = Instant::now();
        let (context, result) = match Params::decode(query, content_type, body) {
            Ok(params) => {
                let context = self
                    .context(|name| params.get(name).map(str::to_owned), params.charset())
                    .await;
                let result = self.run(&params, &context).await;
                (context, result)
            }
            Err(error) => (
                self.raw_context(query, content_type, body).await,
                Err(error.into()),
            ),
        };
        self.reply(context, result, started)
    }

    /// Answers a request whose body was larger than the limit (or could not be read), from what
    /// its query string says.
    pub async fn refuse_body(
        &self,
        query: &[u8],
        content_type: Option<&[u8]>,
        error: ProtocolError,
    ) -> Reply {
        let started = Instant::now();
        let context = self.raw_context(query, content_type, b"").await;
        self.reply(context, Err(error.into()), started)
    }

    /// Best-effort context from undecodable input: ASCII-safe scans of query and form body.
    async fn raw_context(&self, query: &[u8], content_type: Option<&[u8]>, body: &[u8]) -> Context {
        let charset = charset::resolve(query, content_type, body).unwrap_or(Charset::Utf8);
        let is_form =
            !content_type.is_some_and(|ct| ct.trim_ascii_start().starts_with(b"multipart"));
        let get = |name: &str| {
            form::find_raw(query, name.as_bytes())
                .or_else(|| {
                    if is_form {
                        form::find_raw(body, name.as_bytes())
                    } else {
                        None
                    }
                })
                .and_then(|v| String::from_utf8(v).ok())
        };
        self.context(get, charset).await
    }

    async fn context(&self, get: impl Fn(&str) -> Option<String>, charset: Charset) -> Context {
        let method = get("method").as_deref().and_then(Method::parse);
        let sign_type = get("sign_type")
            .as_deref()
            .and_then(SignType::parse)
            .unwrap_or(SignType::Rsa2);
        let app_id = get("app_id").filter(|id| {
            !id.is_empty()
                && id.len() <= request::MAX_APP_ID
                && id.bytes().all(|b| b.is_ascii_digit())
        });
        let app = match &app_id {
            Some(id) => self.apps.get(&self.store, id).await,
            None => Ok(None),
        };
        Context {
            method,
            app_id,
            app,
            sign_type,
            charset,
        }
    }

    /// The checks of §2.5 in order, then the method.
    async fn run(&self, params: &Params, context: &Context) -> Result<String, Failure> {
        let method = request::method(params)?;
        let required = request::required(params)?;
        let app = match &context.app {
            Err(e) => return Err(e.clone().into()),
            Ok(None) => {
                return Err(ProtocolError::InvalidAppId {
                    detail: "no such app",
                }
                .into());
            }
            Ok(Some(app)) => app,
        };
        if app.record.status == AppStatus::Offline {
            return Err(ProtocolError::InvalidAppId {
                detail: "the app is offline",
            }
            .into());
        }
        let sign_type = request::sign_type(&required)?;
        if app.keys.is_empty() {
            return Err(ProtocolError::MissingSignatureKey.into());
        }
        let key = app
            .key(sign_type)
            .ok_or(ProtocolError::MissingSignatureConfig {
                sign_type: sign_type.as_str(),
            })?;
        request::verify(params, key, sign_type)?;
        let now = self.clock.now();
        request::check_signed(params, now, self.limits.timestamp_window)?;
        // With an ISV token the request acts for the merchant that granted it; otherwise for the
        // app's owner.
        let (token, token_merchant) = match params.non_empty("app_auth_token") {
            None => (None, None),
            Some(token) => {
                let token = self
                    .store
                    .app_auth_token(token)
                    .await?
                    .ok_or(ProtocolError::InvalidAppAuthToken)?;
                let partner = token.authorize(&app.record.app_id, method.name(), now)?;
                let merchant = self.store.merchant(partner).await?.ok_or_else(|| {
                    Failure::from(StoreError::Corrupt(format!(
                        "token merchant {partner} does not exist"
                    )))
                })?;
                (Some(token), Some(merchant))
            }
        };
        if !app.record.methods.iter().any(|m| m == method.name()) {
            return Err(ProtocolError::InsufficientIsvPermissions.into());
        }
        let merchant = match &token_merchant {
            Some(merchant) => merchant,
            None => app.merchant.as_ref().ok_or_else(|| {
                Failure::from(StoreError::Corrupt(format!(
                    "app {} has no owner merchant",
                    app.record.app_id
                )))
            })?,
        };
        if merchant.status != agreements_domain::EntityStatus::Normal {
            return Err(ProtocolError::InvalidAppId {
                detail: "the calling merchant is disabled",
            }
            .into());
        }
        let biz = request::biz_content(params)?;
        let caller = Caller {
            merchant: merchant.partner_id.clone(),
            group: merchant.group_id.clone(),
        };
        methods::dispatch(
            method,
            &Call {
                store: &self.store,
                catalogue: &self.catalogue,
                app,
                caller,
                now,
                request: Request {
                    sign_type,
                    notify_url: params.non_empty("notify_url"),
                    token,
                },
                outbox: &self.outbox,
            },
            &biz,
        )
        .await
    }

    /// Renders the answer: the method's node (or `error_response` when the method is missing or
    /// unknown), signed when the app is known, in the request charset.
    fn reply(&self, context: Context, result: Result<String, Failure>, started: Instant) -> Reply {
        let node = context
            .method
            .map_or(ERROR_RESPONSE_NODE, Method::response_node);
        let (json, code, sub_code) = match &result {
            Ok(json) => (json.clone(), "10000", ""),
            Err(failure) => {
                let wire = failure.wire();
                (envelope::error_node(&wire), wire.code.code(), wire.sub_code)
            }
        };
        let known = matches!(context.app, Ok(Some(_)));
        let signing = known.then_some(Signing {
            key: &self.platform_key,
            sign_type: context.sign_type,
        });
        let body = envelope::render(node, &json, context.charset, signing).unwrap_or_else(|e| {
            tracing::error!(error = %e, "signing failed; answering unsigned");
            envelope::render(node, &json, context.charset, None).unwrap_or_default()
        });
        tracing::info!(
            app_id = context.app_id.as_deref().unwrap_or("-"),
            method = context.method.map_or("-", Method::name),
            code,
            sub_code,
            signed = known,
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "gateway"
        );
        Reply {
            body,
            charset: context.charset,
        }
    }
}
