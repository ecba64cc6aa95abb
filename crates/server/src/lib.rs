//! The agreements gateway server: `POST`/`GET /gateway.do` speaking the Alipay OpenAPI v2
//! protocol, `/v3/…` speaking OpenAPI v3, the consumer pages, `GET /healthz` and
//! `GET /metrics`.

pub mod apps;
pub mod audit;
pub mod cache;
pub mod cancel;
pub mod certs;
pub mod config;
pub mod failure;
pub mod gateway;
pub mod methods;
pub mod metrics;
pub mod nonces;
pub mod notify;
pub mod rates;
pub mod telemetry;
pub mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agreements_protocol::{ProtocolError, envelope};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::timeout::TimeoutLayer;

pub use gateway::{Gateway, Limits, Page, Reply, V3Reply};

/// Every route, in one list.
pub fn router(gateway: Arc<Gateway>, request_timeout: Duration) -> Router {
    Router::new()
        .route("/gateway.do", get(gateway_do).post(gateway_do))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v3/{*path}", axum::routing::any(openapi_v3))
        .merge(web::routes())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .with_state(gateway)
}

/// `gateway.do`: reads at most the body limit (refusing larger bodies by their Content-Length
/// before reading them), then answers. Always HTTP 200.
async fn gateway_do(
    State(gateway): State<Arc<Gateway>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let query = uri.query().unwrap_or_default().as_bytes();
    let content_type = headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes);
    let limit = gateway.limits().max_body_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let too_large = ProtocolError::RequestTooLarge { limit };
    let reply = if declared.is_some_and(|n| n > limit as u64) {
        gateway.refuse_body(query, content_type, too_large).await
    } else {
        match axum::body::to_bytes(body, limit).await {
            Ok(bytes) => gateway.handle(query, content_type, &bytes).await,
            Err(e) if is_length_limit(&e) => {
                gateway.refuse_body(query, content_type, too_large).await
            }
            Err(e) => {
                let detail = format!("the request body could not be read ({e})");
                gateway
                    .refuse_body(
                        query,
                        content_type,
                        ProtocolError::MalformedEncoding { detail },
                    )
                    .await
            }
        }
    };
    match reply.page {
        None => (
            StatusCode::OK,
            [(CONTENT_TYPE, envelope::content_type(reply.charset))],
            reply.body,
        )
            .into_response(),
        Some(Page::Signing(session)) => {
            web::redirect(&format!("/sign/{}", session.session_id), &[])
        }
        Some(Page::Refused(wire)) => {
            use axum::response::IntoResponse as _;
            let code = wire.code.code();
            web::Html::page(
                StatusCode::OK,
                &web::ErrorPage {
                    title: "无法签约",
                    message: "商户的签约请求未通过校验，请回到商户重新发起签约。",
                    code: Some(code),
                    sub_code: wire.sub_code,
                    sub_msg: &wire.sub_msg,
                    link: None,
                    link_text: "",
                },
            )
            .into_response()
        }
    }
}

/// OpenAPI v3 (`/v3/…`): reads at most the body limit, then answers with the v3 status, body and
/// signed `alipay-*` headers.
async fn openapi_v3(
    State(gateway): State<Arc<Gateway>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = gateway.limits().max_body_bytes;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        let wire = ProtocolError::RequestTooLarge { limit }.wire();
        let body = agreements_protocol::v3::error_body(&wire, "-");
        return (
            StatusCode::BAD_REQUEST,
            [(CONTENT_TYPE, "application/json;charset=utf-8")],
            body,
        )
            .into_response();
    };
    let request = agreements_protocol::v3::Request {
        http_method: method.as_str(),
        target,
        body: &bytes,
        authorization: header("authorization"),
        app_auth_token: header("alipay-app-auth-token"),
        encrypt_type: header("alipay-encrypt-type"),
        root_cert_sn: header("alipay-root-cert-sn"),
    };
    let reply = gateway.handle_v3(&request).await;
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_REQUEST),
        [(CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response();
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// `metrics`: the Prometheus exposition (OpenMetrics text).
async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, metrics::CONTENT_TYPE)],
        gateway.render_metrics().await,
    )
        .into_response()
}

/// `healthz`: 200 when the store answers, 503 otherwise.
async fn healthz(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.store().ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::warn!(error = telemetry::chain(&e), "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

/// Limits on connections, beside the per-request ones of [`Limits`]. Together they bound what
/// connections cost: at most `max_connections` of them, each holding at most `max_head_bytes`
/// of unfinished request head (10,000 × 16 KiB = 160 MiB by default), none for longer than
/// `header_read_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A connection that has not sent a whole request head within this time is closed (slow
    /// clients cannot hold connections open by trickling headers).
    pub header_read_timeout: Duration,
    /// Connections served at once; further ones are closed at once until one ends.
    pub max_connections: usize,
    /// Connections served at once from one address (IPv4-mapped IPv6 counts as IPv4); further
    /// ones from it are closed at once. Behind a proxy every connection has the proxy's address:
    /// set it to `max_connections` there.
    pub max_connections_per_address: usize,
    /// The largest request head (request line and headers) read; a larger one is answered
    /// `431 Request Header Fields Too Large` (at least 8 KiB).
    pub max_head_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_address: 1_000,
            max_head_bytes: 16 * 1024,
        }
    }
}

/// The connections served per address.
#[derive(Debug, Default)]
struct PerAddress {
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

impl PerAddress {
    /// A slot for one more connection from `ip`, unless it has `max` already.
    fn acquire(self: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            table: self.clone(),
            ip,
        })
    }
}

/// One connection's place in [`PerAddress`], given back when the connection ends.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: std::net::IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Refused connections, logged at most once a second with their count (a flood must not
/// become a flood of log lines).
#[derive(Debug)]
struct Refusals {
    since: std::sync::Mutex<(std::time::Instant, u64, u64)>,
}

impl Refusals {
    fn new() -> Self {
        Self {
            since: std::sync::Mutex::new((std::time::Instant::now(), 0, 0)),
        }
    }

    /// Counts one refusal (`per_address`: the address's limit, else the total's) and logs the
    /// counts when a second has passed since the last line.
    fn refused(&self, per_address: bool, limits: &ConnectionLimits) {
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        if per_address {
            since.2 += 1;
        } else {
            since.1 += 1;
        }
        if since.0.elapsed() >= Duration::from_secs(1) {
            tracing::warn!(
                total_limit = since.1,
                address_limit = since.2,
                max_connections = limits.max_connections,
                max_connections_per_address = limits.max_connections_per_address,
                "connections refused since the last report"
            );
            *since = (std::time::Instant::now(), 0, 0);
        }
    }
}

/// Serves `router` on `listener` (HTTP/1.1 with keep-alive) until `shutdown` completes, then
/// stops accepting and lets requests in flight finish. Open and refused connections are counted
/// in `metrics`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
    metrics: Arc<metrics::Metrics>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let refusals = Refusals::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(address_slot) = per_address.acquire(peer.ip(), limits.max_connections_per_address)
        else {
            refusals.refused(true, &limits);
            metrics.connection_refused(true);
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refusals.refused(false, &limits);
            metrics.connection_refused(false);
            continue;
        };
        let open = metrics.connection();
        let _ = stream.set_nodelay(true);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_head_bytes.max(8 * 1024))
            // A client may close its sending side once its request is out: it still gets the
            // answer.
            .half_close(true)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(with_peer(router.clone(), peer)),
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
            drop(address_slot);
            drop(open);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// `router`, with the connection's peer address in each request's extensions (what
/// `ConnectInfo` extracts: the login throttle counts by it).
fn with_peer(
    router: Router,
    peer: std::net::SocketAddr,
) -> impl tower::Service<
    axum::http::Request<hyper::body::Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response, std::convert::Infallible>> + Send,
> + Clone {
    use tower::ServiceExt as _;
    tower::service_fn(
        move |mut request: axum::http::Request<hyper::body::Incoming>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            router.clone().oneshot(request)
        },
    )
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
