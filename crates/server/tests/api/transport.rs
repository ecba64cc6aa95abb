//! How clients other than the Python SDK send requests: GET, multipart, duplicates, empty values.

use agreements_client::verify_response;
use agreements_protocol::sign_content::Empties;
use agreements_protocol::{Charset, SignType};

use crate::helpers::{BATCH_QUERY, TestApp, VECTOR_BIZ, common, signed_form};

fn success(app: &TestApp, body: &[u8]) {
    let answer = verify_response(
        body,
        BATCH_QUERY,
        Charset::Utf8,
        &app.platform_public,
        SignType::Rsa2,
    )
    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    assert_eq!(answer.code(), "10000", "{:?}", answer.node);
    assert_eq!(
        answer.node["usage_agreement_info_list"][0]["agreement_no"],
        "20245920000000000001"
    );
}

fn signed(extra: &[(&str, &str)], empties: Empties) -> String {
    let mut pairs = common(VECTOR_BIZ);
    pairs.extend(extra.iter().map(|(n, v)| (*n, (*v).to_owned())));
    signed_form(&pairs, SignType::Rsa2, Charset::Utf8, empties)
}

#[tokio::test]
async fn get_with_everything_in_the_query_string_works() {
    let app = TestApp::spawn().await;
    let raw = app
        .call_raw("GET", &signed(&[], Empties::Drop), None, "")
        .await;
    success(&app, &raw.body);
}

#[tokio::test]
async fn everything_in_the_body_without_content_type_works() {
    let app = TestApp::spawn().await;
    let raw = app
        .call_raw("POST", "", None, signed(&[], Empties::Drop))
        .await;
    success(&app, &raw.body);
}

#[tokio::test]
async fn duplicate_parameters_in_query_and_body_are_tolerated() {
    let app = TestApp::spawn().await;
    let raw = app
        .call_raw(
            "POST",
            "charset=utf-8",
            Some("application/x-www-form-urlencoded"),
            signed(&[], Empties::Drop),
        )
        .await;
    success(&app, &raw.body);
}

#[tokio::test]
async fn empty_values_signed_python_style_are_accepted() {
    let app = TestApp::spawn().await;
    let raw = app
        .call_raw(
            "POST",
            "",
            None,
            signed(&[("notify_url", "")], Empties::Keep),
        )
        .await;
    success(&app, &raw.body);
    let raw = app
        .call_raw(
            "POST",
            "",
            None,
            signed(&[("notify_url", "")], Empties::Drop),
        )
        .await;
    success(&app, &raw.body);
}

#[tokio::test]
async fn extra_sdk_parameters_are_signed_content() {
    let app = TestApp::spawn().await;
    let raw = app
        .call_raw(
            "POST",
            "",
            None,
            signed(
                &[("alipay_sdk", "alipay-sdk-java-4.38"), ("prod_code", "X")],
                Empties::Drop,
            ),
        )
        .await;
    success(&app, &raw.body);
}

#[tokio::test]
async fn multipart_text_parts_are_parameters() {
    let app = TestApp::spawn().await;
    let form = signed(&[], Empties::Drop);
    let mut body = Vec::new();
    for pair in form.split('&') {
        let (name, value) = pair.split_once('=').unwrap();
        let value = agreements_protocol::form::percent_decode(value.as_bytes()).unwrap();
        body.extend_from_slice(
            format!("\r\n--XB\r\nContent-Disposition:form-data;name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&value);
    }
    body.extend_from_slice(b"\r\n--XB\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n\x00\x01\r\n--XB--\r\n");
    let raw = app
        .call_raw(
            "POST",
            "",
            Some("multipart/form-data;boundary=XB;charset=utf-8"),
            body,
        )
        .await;
    success(&app, &raw.body);
}

#[tokio::test]
async fn healthz_reports_the_store() {
    let app = TestApp::spawn().await;
    let url = app.url.replace("/gateway.do", "/healthz");
    let response = app.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok\n");
}

#[tokio::test]
async fn a_gbk_client_gets_a_gbk_answer_it_can_verify() {
    let app = TestApp::spawn().await;
    let client = app.client(agreements_store::demo::APP_ID, SignType::Rsa2, Charset::Gbk);
    let biz = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_logon_id":"无此用户@alitest.com"}"#;
    let request = client
        .sign(BATCH_QUERY, biz, crate::helpers::VECTOR_TIME, &[])
        .unwrap();
    let (_, body) = client.send(&request).await.unwrap();
    let answer = verify_response(
        &body,
        BATCH_QUERY,
        Charset::Gbk,
        &app.platform_public,
        SignType::Rsa2,
    )
    .unwrap();
    assert_eq!(answer.sub_code(), Some("USER_NOT_EXIST_ERROR"));
    assert_eq!(answer.node["sub_msg"], "用户信息不存在");
}

/// Starts a bare server with `limits` over the demo world; returns its address.
async fn server_with(
    limits: agreements_server::ConnectionLimits,
) -> (TestApp, std::net::SocketAddr) {
    let app = TestApp::spawn().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = agreements_server::router(app.gateway.clone(), std::time::Duration::from_secs(10));
    tokio::spawn(agreements_server::serve(
        listener,
        router,
        std::future::pending(),
        limits,
        app.gateway.metrics().clone(),
    ));
    (app, addr)
}

/// Reads until the server closes the connection (bounded, so a hang fails the test).
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let mut seen = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut seen),
    )
    .await;
    assert!(read.is_ok(), "the server did not close the connection");
    seen
}

#[tokio::test]
async fn a_client_trickling_headers_is_disconnected() {
    use tokio::io::AsyncWriteExt as _;
    let limits = agreements_server::ConnectionLimits {
        header_read_timeout: std::time::Duration::from_millis(200),
        max_connections: 100,
        ..Default::default()
    };
    let (_app, addr) = server_with(limits).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /gateway.do HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let seen = read_until_closed(&mut stream).await;
    assert!(!String::from_utf8_lossy(&seen).contains("200 OK"));
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_on_arrival() {
    use tokio::io::AsyncWriteExt as _;
    let limits = agreements_server::ConnectionLimits {
        header_read_timeout: std::time::Duration::from_secs(10),
        max_connections: 1,
        ..Default::default()
    };
    let (app, addr) = server_with(limits).await;
    // The first connection holds the only slot (a healthz round trip proves it is served).
    let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::io::AsyncReadExt::read(&mut first, &mut buf)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(read_until_closed(&mut second).await.is_empty());
    let metrics = app.gateway.render_metrics().await;
    assert!(
        metrics.contains("agreements_connections_refused_total{reason=\"total\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agreements_connections_open 1"),
        "{metrics}"
    );
}

/// A connection from `ip` (any of 127.0.0.0/8 reaches the local server) that sent a healthz
/// request and got its answer: it holds a slot.
async fn served_from(ip: [u8; 4], addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((std::net::Ipv4Addr::from(ip), 0).into())
        .unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::io::AsyncReadExt::read(&mut stream, &mut buf)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    stream
}

/// One client cannot take every connection: past its address's limit its new connections are
/// closed on arrival, and another address is still served.
#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    use tokio::io::AsyncWriteExt as _;
    let limits = agreements_server::ConnectionLimits {
        max_connections: 10,
        max_connections_per_address: 2,
        ..Default::default()
    };
    let (app, addr) = server_with(limits).await;
    let _held = [
        served_from([127, 0, 0, 1], addr).await,
        served_from([127, 0, 0, 1], addr).await,
    ];
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(read_until_closed(&mut third).await.is_empty());
    let _other = served_from([127, 0, 0, 2], addr).await;
    let metrics = app.gateway.render_metrics().await;
    assert!(
        metrics.contains("agreements_connections_refused_total{reason=\"per_address\"} 1"),
        "{metrics}"
    );
}

/// A request head larger than the limit is refused with 431, not buffered.
#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    use tokio::io::AsyncWriteExt as _;
    let (_app, addr) = server_with(agreements_server::ConnectionLimits::default()).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let seen = read_until_closed(&mut stream).await;
    assert!(
        String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
}
