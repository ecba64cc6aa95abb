//! Notification delivery against a real receiver (an HTTP server in the test): signatures the
//! platform public key verifies, the retry schedule on every kind of failure, parking as failed,
//! re-sending, and bounded answers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agreements_protocol::sign_content;
use agreements_protocol::{PublicKey, SignType, form};
use agreements_server::notify::{Deliverer, DeliverySettings};
use agreements_store::{Notification, NotificationFilter, Resend, demo};
use axum::body::Body;
use axum::extract::State;
use axum::routing::post;
use tokio::sync::mpsc;

use agreements_domain::address::AddressPolicy;

use crate::helpers::{TestApp, fixture, loopback};
use crate::unsign::UNSIGN;

/// What the receiver does with one request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answers this body with 200.
    Answer(&'static str),
    /// Answers 500 with `success` (a status that is not 2xx is a failure whatever the body).
    ServerError,
    /// Never answers.
    Hang,
    /// Answers 200 with an endless body.
    Endless,
    /// Answers 200 and the first byte of `success`, then never sends the rest nor closes.
    Trickle,
}

#[derive(Clone)]
struct Script {
    next: Arc<Mutex<VecDeque<Behaviour>>>,
    received: mpsc::UnboundedSender<Vec<u8>>,
    open: Arc<Mutex<(usize, usize)>>,
}

/// Counts a request as open until its handler ends (also when the client hangs up).
struct Open(Arc<Mutex<(usize, usize)>>);

impl Open {
    fn new(counts: &Arc<Mutex<(usize, usize)>>) -> Self {
        let mut c = counts.lock().unwrap();
        c.0 += 1;
        c.1 = c.1.max(c.0);
        Self(counts.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.lock().unwrap().0 -= 1;
    }
}

/// A real HTTP receiver on 127.0.0.1; each request gets the next scripted behaviour (`success`
/// once the script is used up) and its body is reported.
pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<VecDeque<Behaviour>>>,
    pub received: mpsc::UnboundedReceiver<Vec<u8>>,
    /// Requests open now, and the most ever open at once.
    open: Arc<Mutex<(usize, usize)>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let open = Arc::new(Mutex::new((0, 0)));
        let state = Script {
            next: script.clone(),
            received: tx,
            open: open.clone(),
        };
        let router = axum::Router::new()
            .route("/notify", post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url,
            script,
            received: rx,
            open,
        }
    }

    /// The most requests that were ever open at once.
    pub fn most_open(&self) -> usize {
        self.open.lock().unwrap().1
    }

    pub fn then(&self, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.script.lock().unwrap().extend(behaviours);
    }

    /// The next request's body (waits up to 10 s).
    pub async fn next(&mut self) -> Vec<u8> {
        tokio::time::timeout(Duration::from_secs(10), self.received.recv())
            .await
            .expect("no notification arrived within 10 s")
            .unwrap()
    }
}

async fn receive(
    State(script): State<Script>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let open = Open::new(&script.open);
    let _ = script.received.send(body.to_vec());
    let behaviour = script.next.lock().unwrap().pop_front();
    match behaviour.unwrap_or(Behaviour::Answer("success")) {
        Behaviour::Answer(text) => text.into_response(),
        Behaviour::ServerError => {
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "success").into_response()
        }
        Behaviour::Hang => {
            std::future::pending::<()>().await;
            drop(open);
            unreachable!()
        }
        Behaviour::Endless => {
            let chunk = axum::body::Bytes::from(vec![b'x'; 16 * 1024]);
            let endless =
                futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            Body::from_stream(endless).into_response()
        }
        Behaviour::Trickle => {
            use futures_util::StreamExt as _;
            let first = futures_util::stream::once(async {
                Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"s"))
            });
            let stream = first.chain(futures_util::stream::pending());
            axum::response::Response::builder()
                .header("content-length", "7")
                .body(Body::from_stream(stream))
                .unwrap()
        }
    }
}

/// The form parameters of a notification body, decoded.
pub fn form_params(body: &[u8]) -> Vec<(String, String)> {
    form::parse_urlencoded(body)
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                String::from_utf8(p.name).unwrap(),
                String::from_utf8(p.value).unwrap(),
            )
        })
        .collect()
}

/// Verifies a notification as the SDKs' notification checks do: every parameter but `sign` and
/// `sign_type`, with the platform public key.
pub fn verifies(params: &[(String, String)], platform: &PublicKey) -> bool {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let sign_type = SignType::parse(get("sign_type").unwrap()).unwrap();
    let content = sign_content::notification(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    platform.verify(sign_type, content.as_bytes(), get("sign").unwrap())
}

fn settings(timeout_ms: u64) -> DeliverySettings {
    DeliverySettings {
        concurrency: 4,
        timeout: Duration::from_millis(timeout_ms),
        poll: Duration::from_millis(20),
    }
}

fn start_delivery(app: &TestApp, settings: DeliverySettings) {
    start_delivery_with(app, settings, loopback());
}

fn start_delivery_with(app: &TestApp, settings: DeliverySettings, policy: AddressPolicy) {
    let key =
        agreements_protocol::PrivateKey::parse(&fixture("keys/gateway_private_key_pkcs1.pem"))
            .unwrap();
    let deliverer = Deliverer::new(
        app.store.clone(),
        key,
        app.clock.clone(),
        settings,
        app.gateway.outbox().clone(),
        policy,
    )
    .unwrap()
    .with_metrics(app.gateway.metrics().clone());
    tokio::spawn(deliverer.run(std::future::pending()));
}

async fn the_notification(app: &TestApp) -> Notification {
    let all = app
        .store
        .notifications(&NotificationFilter {
            limit: 10,
            ..NotificationFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    all.into_iter().next().unwrap()
}

/// Waits (up to 10 s) until the notification has been sent `attempts` times and recorded.
async fn recorded(app: &TestApp, attempts: u32) -> Notification {
    for _ in 0..1_000 {
        let n = the_notification(app).await;
        if n.attempts >= attempts {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("attempt {attempts} was not recorded within 10 s");
}

/// Moves the clock to the notification's next send and wakes the worker.
fn advance_to(app: &TestApp, n: &Notification) {
    app.clock.set(n.next_attempt_at);
    app.gateway.outbox().wake();
}

async fn unsign_with_notify_url(app: &TestApp, url: &str) {
    unsign_no(app, "20245920000000000001", url).await;
}

async fn unsign_no(app: &TestApp, no: &str, url: &str) {
    let answer = app
        .try_call_with(
            demo::APP_ID,
            UNSIGN,
            &format!(r#"{{"agreement_no":"{no}"}}"#),
            &[("notify_url", url)],
        )
        .await
        .unwrap();
    assert_eq!(answer.code(), "10000", "{:?}", answer.node);
}

#[tokio::test]
async fn notifications_verify_and_are_retried_on_the_schedule_until_success() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    receiver.then([
        Behaviour::Answer("fail"),
        Behaviour::ServerError,
        Behaviour::Hang,
    ]);
    start_delivery(&app, settings(300));
    let t0 = app.clock_now();
    unsign_with_notify_url(&app, &receiver.url).await;

    // 1st send at once: signed by the platform key, the vector's field set.
    let first = form_params(&receiver.next().await);
    assert!(verifies(&first, &app.platform_public), "{first:?}");
    let get = |name: &str| {
        first
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("notify_type").as_deref(), Some("dut_user_unsign"));
    assert_eq!(get("sign_type").as_deref(), Some("RSA2"));
    assert_eq!(get("notify_time").as_deref(), Some("2024-05-20 13:14:15"));
    assert_eq!(get("charset").as_deref(), Some("utf-8"));
    let notify_id = get("notify_id").unwrap();
    let n = recorded(&app, 1).await;
    assert_eq!(n.state.as_str(), "PENDING");
    assert_eq!(
        n.next_attempt_at,
        t0 + 240,
        "4 minutes after the first send"
    );
    assert!(
        n.last_error.as_deref().unwrap().contains("\"fail\""),
        "{n:?}"
    );

    // 2nd: HTTP 500 is a failure even with `success` in the body.
    advance_to(&app, &n);
    let second = form_params(&receiver.next().await);
    assert!(verifies(&second, &app.platform_public));
    let n = recorded(&app, 2).await;
    assert_eq!(n.next_attempt_at, t0 + 240 + 600);
    assert!(
        n.last_error.as_deref().unwrap().contains("HTTP 500"),
        "{n:?}"
    );

    // 3rd: the receiver never answers; the send is cut at the time limit.
    advance_to(&app, &n);
    receiver.next().await;
    let n = recorded(&app, 3).await;
    assert_eq!(n.next_attempt_at, t0 + 240 + 600 + 600);
    let error = n.last_error.clone().unwrap();
    assert!(
        error.contains("time") || error.contains("no answer"),
        "{error}"
    );

    // 4th: success. Same notify_id on every send (receivers deduplicate on it).
    advance_to(&app, &n);
    let fourth = form_params(&receiver.next().await);
    assert!(
        fourth
            .iter()
            .any(|(k, v)| k == "notify_id" && *v == notify_id)
    );
    let n = recorded(&app, 4).await;
    assert_eq!(n.state.as_str(), "DELIVERED");
    assert_eq!(n.delivered_at, Some(app.clock_now()));
    assert_eq!(n.last_error, None);
    // The sends are counted by outcome.
    let metrics = app.gateway.render_metrics().await;
    for line in [
        "agreements_notification_deliveries_total{outcome=\"retry\"} 3",
        "agreements_notification_deliveries_total{outcome=\"delivered\"} 1",
        "agreements_outbox_pending 0",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

/// The address is checked again at every send (an operator's policy, or DNS, may have changed):
/// a sender whose policy refuses loopback never posts to a receiver on it.
#[tokio::test]
async fn a_send_to_an_address_the_policy_refuses_is_never_made() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    unsign_with_notify_url(&app, &receiver.url).await;
    start_delivery_with(&app, settings(2_000), AddressPolicy::default());
    let n = recorded(&app, 1).await;
    assert_eq!(n.state.as_str(), "PENDING");
    let error = n.last_error.unwrap();
    assert!(error.contains("loopback"), "{error}");
    assert!(
        receiver.received.try_recv().is_err(),
        "the receiver was reached"
    );
}

#[tokio::test]
async fn refused_connections_and_endless_answers_fail_cleanly_and_eight_failures_park_it() {
    let app = TestApp::spawn().await;
    // A port nobody listens on: bound, then closed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}/notify")
    };
    start_delivery(&app, settings(500));
    unsign_with_notify_url(&app, &closed).await;
    let mut n = recorded(&app, 1).await;
    assert!(
        n.last_error.as_deref().unwrap().contains("connection"),
        "{n:?}"
    );
    for attempt in 2..=8 {
        assert_eq!(n.state.as_str(), "PENDING");
        advance_to(&app, &n);
        n = recorded(&app, attempt).await;
    }
    assert_eq!(
        n.state.as_str(),
        "FAILED",
        "eight sends, then parked: {n:?}"
    );
    // Parked: nothing more is sent, however late it gets.
    app.clock.set(n.next_attempt_at + 7 * 86_400);
    app.gateway.outbox().wake();
    let still = recorded(&app, 8).await;
    assert_eq!((still.state.as_str(), still.attempts), ("FAILED", 8));

    // An operator points it at a receiver whose first answer never ends, and re-sends it.
    let mut receiver = Receiver::start().await;
    receiver.then([Behaviour::Endless]);
    app.store
        .execute_for_tests(&format!(
            "UPDATE notifications SET url = '{}'",
            receiver.url
        ))
        .await
        .unwrap();
    assert_eq!(
        app.store
            .resend(Resend::AllFailed, app.clock_now())
            .await
            .unwrap(),
        1
    );
    app.gateway.outbox().wake();
    receiver.next().await;
    let n = recorded(&app, 1).await;
    assert!(
        n.last_error
            .as_deref()
            .unwrap()
            .contains("longer than 4096"),
        "{n:?}"
    );
    advance_to(&app, &n);
    receiver.next().await;
    let n = recorded(&app, 2).await;
    assert_eq!(n.state.as_str(), "DELIVERED");
}

#[tokio::test]
async fn hanging_receivers_hold_at_most_the_concurrency_and_never_the_gateway() {
    let app = TestApp::spawn().await;
    let mut receiver = Receiver::start().await;
    receiver.then([
        Behaviour::Hang,
        Behaviour::Trickle,
        Behaviour::Hang,
        Behaviour::Trickle,
    ]);
    start_delivery(
        &app,
        DeliverySettings {
            concurrency: 2,
            ..settings(400)
        },
    );
    // Four cancellations, each with a notification to the stuck receiver.
    let numbers = [
        "20245920000000000001",
        "20231120000000000002",
        "20240102000000000003",
        "20230301000000000004",
    ];
    for no in numbers {
        unsign_no(&app, no, &receiver.url).await;
    }
    // The gateway answers while every send slot is held by a receiver that does not answer.
    let answer = app
        .call(
            "alipay.user.agreement.batch.query",
            crate::helpers::VECTOR_BIZ,
        )
        .await;
    assert_eq!(answer.code(), "10000", "{:?}", answer.node);
    for _ in numbers {
        receiver.next().await;
    }
    // Every one was cut at the time limit (a body that never completes included), recorded,
    // and never more than two were open at once.
    let mut recorded_all = false;
    for _ in 0..1_000 {
        let all = app
            .store
            .notifications(&NotificationFilter {
                limit: 10,
                ..NotificationFilter::default()
            })
            .await
            .unwrap();
        if all.len() == numbers.len() && all.iter().all(|n| n.attempts == 1) {
            assert!(all.iter().all(|n| n.state.as_str() == "PENDING"));
            assert!(
                all.iter().all(|n| n
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("time") || e.contains("no answer"))),
                "{all:?}"
            );
            recorded_all = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(recorded_all, "the four sends were not all cut and recorded");
    assert_eq!(receiver.most_open(), 2);
}
