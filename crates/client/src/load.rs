//! Load generation for `agreements bench`: pre-signed requests sent over keep-alive connections,
//! closed loop (as fast as answers come back) or open loop (at a fixed rate, each latency measured
//! from the intended send time, so a slow server cannot hide its queue: no coordinated omission).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::{Client, ClientError, SignedRequest, verify};

/// How a run sends.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The method every pooled request calls.
    pub method: String,
    /// Closed loop: connections sending back to back. Open loop: the most requests in flight.
    pub concurrency: usize,
    /// How long requests are sent.
    pub duration: Duration,
    /// `Some(r)`: open loop at `r` requests per second; `None`: closed loop.
    pub rate: Option<f64>,
    /// Every n-th answer's signature is verified and its code counted (0: none).
    pub verify_every: u64,
    /// The pool's index the run starts at (a measured run goes on where its warm-up stopped).
    pub first: u64,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Requests that got an HTTP 200 answer.
    pub answered: u64,
    /// Failures by kind (transport errors, other statuses, signatures that do not verify).
    pub errors: BTreeMap<String, u64>,
    /// From the first send to the last answer.
    pub elapsed: Duration,
    /// Every answered request's latency in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// Sampled answers whose signature verified, by `code` (and `sub_code`).
    pub verified: BTreeMap<String, u64>,
}

impl Report {
    /// Answered requests per second.
    pub fn throughput(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency below which `q` (0–1) of the answers came, if any came.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.latencies_us.len();
        if n == 0 {
            return None;
        }
        // Nearest rank: the smallest value with at least q of the samples at or below it.
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n);
        Some(Duration::from_micros(u64::from(
            self.latencies_us[rank - 1],
        )))
    }

    /// Failed requests.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    fn merge(&mut self, part: Part) {
        self.answered += part.answered;
        self.latencies_us.extend(part.latencies_us);
        for (k, v) in part.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in part.verified {
            *self.verified.entry(k).or_default() += v;
        }
    }
}

/// One sender's (or one request's) share of a report.
#[derive(Debug, Default)]
struct Part {
    answered: u64,
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
    verified: BTreeMap<String, u64>,
}

/// Sends `pool` (round robin) by `plan` to the client's gateway and measures the answers.
///
/// The load runs on the calling thread, on a single-threaded runtime of its own, over
/// `plan.concurrency` connections opened before the clock starts (one per sender, no pool in
/// between; each request rendered to its bytes beforehand): the generator's own cost per request
/// stays a small share of the machine it shares with the server. Blocking: call it off any async
/// worker.
pub fn run(client: &Client, pool: &[SignedRequest], plan: &Plan) -> Result<Report, ClientError> {
    let target = Target::parse(&client.config().gateway_url)?;
    let pool: Arc<[Wire]> = pool
        .iter()
        .map(|r| Wire::new(&target, r))
        .collect::<Result<_, _>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Malformed(format!("cannot start the load runtime: {e}")))?;
    runtime.block_on(drive(client, &target, pool, plan))
}

async fn drive(
    client: &Client,
    target: &Target,
    pool: Arc<[Wire]>,
    plan: &Plan,
) -> Result<Report, ClientError> {
    let mut connections = Vec::with_capacity(plan.concurrency.max(1));
    for _ in 0..plan.concurrency.max(1) {
        connections.push(connect(target).await.map_err(ClientError::Malformed)?);
    }
    let verify = Arc::new(Verify {
        every: plan.verify_every,
        method: plan.method.clone(),
        client: client.clone(),
    });
    let started = Instant::now();
    let deadline = started + plan.duration;
    let next = Arc::new(AtomicU64::new(0));
    let schedule = match plan.rate {
        None => Schedule::Closed,
        Some(rate) => Schedule::Open(Arc::new(Pacer::start(
            started,
            rate.clamp(1e-3, MAX_RATE),
            plan.duration,
        ))),
    };
    let mut tasks = JoinSet::new();
    for connection in connections {
        let worker = Worker {
            pool: pool.clone(),
            target: target.clone(),
            verify: verify.clone(),
            next: next.clone(),
            first: plan.first,
            schedule: schedule.clone(),
            deadline,
        };
        tasks.spawn(worker.run(connection));
    }
    let mut report = Report::default();
    while let Some(part) = tasks.join_next().await {
        if let Ok(part) = part {
            report.merge(part);
        }
    }
    report.elapsed = started.elapsed();
    report.latencies_us.sort_unstable();
    Ok(report)
}

/// The highest open-loop rate (requests per second) a plan may ask for; higher ones are clamped.
pub const MAX_RATE: f64 = 10_000_000.0;

/// When each request leaves.
#[derive(Debug, Clone)]
enum Schedule {
    /// As soon as the connection's previous answer came.
    Closed,
    /// At its intended time, released by the pacer.
    Open(Arc<Pacer>),
}

/// Releases the open loop's requests at their intended times: the `i`-th at `started + i / rate`,
/// taken by whichever sender is free then (a request that finds none free leaves late and counts
/// its latency from its intended time).
///
/// The runtime's timers tick in whole milliseconds, which would send every request up to 1 ms
/// late and count that as the server's latency; the pacer is a thread of its own that sleeps to
/// each intended time (the OS's sleep overshoots by tens of microseconds) and adds one permit to a
/// semaphore the senders wait on, in order.
#[derive(Debug)]
struct Pacer {
    started: Instant,
    rate: f64,
    /// Requests whose intended time falls within the run.
    total: u64,
    released: Arc<tokio::sync::Semaphore>,
}

impl Pacer {
    fn start(started: Instant, rate: f64, duration: Duration) -> Self {
        // Every i with i / rate < duration.
        let total = (duration.as_secs_f64() * rate).ceil().max(0.0) as u64;
        let released = Arc::new(tokio::sync::Semaphore::new(0));
        let pacer = Self {
            started,
            rate,
            total,
            released: released.clone(),
        };
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while sent < total {
                let due = Self::intended_at(started, rate, sent);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                // Everything due by now (at high rates one wake-up releases several).
                let elapsed = started.elapsed().as_secs_f64();
                let due_count = ((elapsed * rate).floor() as u64 + 1).clamp(sent + 1, total);
                released.add_permits(usize::try_from(due_count - sent).unwrap_or(usize::MAX));
                sent = due_count;
            }
        });
        pacer
    }

    fn intended_at(started: Instant, rate: f64, i: u64) -> Instant {
        started + Duration::from_secs_f64(i as f64 / rate)
    }

    /// Waits until request `i` is released; its intended time, or `None` past the run.
    async fn release(&self, i: u64) -> Option<Instant> {
        if i >= self.total {
            return None;
        }
        self.released.acquire().await.ok()?.forget();
        Some(Self::intended_at(self.started, self.rate, i))
    }
}

/// The gateway's address, resolved once.
#[derive(Debug, Clone)]
struct Target {
    addr: std::net::SocketAddr,
    host: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::Malformed(format!("gateway URL {url}: {why}"));
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(bad("the load generator speaks plain http only"));
        }
        let name = parsed.host_str().ok_or_else(|| bad("no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(name.trim_matches(['[', ']']), port))
            .map_err(|e| bad(&format!("cannot resolve the host ({e})")))?
            .next()
            .ok_or_else(|| bad("the host resolves to no address"))?;
        let host = match parsed.port() {
            Some(port) => format!("{name}:{port}"),
            None => name.to_owned(),
        };
        Ok(Self {
            addr,
            host,
            path: parsed.path().to_owned(),
        })
    }
}

/// One pooled request, rendered once as the bytes of an HTTP/1.1 request (as `wrk` does): a send
/// is one write of these bytes.
#[derive(Debug)]
struct Wire(Box<[u8]>);

impl Wire {
    fn new(target: &Target, request: &SignedRequest) -> Result<Self, ClientError> {
        for (what, text) in [
            ("query", &request.query),
            ("content type", &request.content_type),
        ] {
            if text.bytes().any(|b| b.is_ascii_control()) {
                return Err(ClientError::Malformed(format!(
                    "the request's {what} holds control characters"
                )));
            }
        }
        let mut bytes = format!(
            "POST {}?{} HTTP/1.1\r\nhost: {}\r\ncontent-type: {}\r\ncontent-length: {}\r\n\r\n",
            target.path,
            request.query,
            target.host,
            request.content_type,
            request.body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(request.body.as_bytes());
        Ok(Self(bytes.into_boxed_slice()))
    }
}

/// The largest answer head and body the generator reads (the gateway's answers are far smaller;
/// past these, the exchange fails instead of buffering without bound).
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A keep-alive connection with its read buffer (reused from one answer to the next).
struct Connection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

/// Opens a keep-alive connection.
async fn connect(target: &Target) -> Result<Connection, String> {
    let stream = tokio::net::TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", target.addr))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
    Ok(Connection {
        stream,
        buffer: Vec::with_capacity(16 * 1024),
    })
}

/// What one exchange got back.
struct Answer<'a> {
    status: u16,
    body: &'a [u8],
    /// The server will close the connection (`connection: close`).
    closing: bool,
}

impl Connection {
    /// Sends `wire` and reads the whole answer (framed by its Content-Length; the gateway never
    /// sends chunked bodies). The head is parsed with `httparse`, hyper's own parser.
    async fn exchange(&mut self, wire: &Wire) -> Result<Answer<'_>, String> {
        use tokio::io::AsyncWriteExt as _;
        self.stream
            .write_all(&wire.0)
            .await
            .map_err(|e| format!("write: {e}"))?;
        self.buffer.clear();
        let (status, head, length, closing) = loop {
            self.read_more().await?;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buffer) {
                Ok(httparse::Status::Complete(head)) => {
                    let (length, closing) = framing(response.headers)?;
                    break (response.code.unwrap_or_default(), head, length, closing);
                }
                Ok(httparse::Status::Partial) if self.buffer.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => {
                    return Err(format!("an answer head over {MAX_HEAD} bytes"));
                }
                Err(e) => return Err(format!("unparseable answer head: {e}")),
            }
        };
        if length > MAX_BODY {
            return Err(format!("an answer of {length} bytes (over {MAX_BODY})"));
        }
        let end = head + length;
        while self.buffer.len() < end {
            self.read_more().await?;
        }
        if self.buffer.len() > end {
            return Err("bytes after the answer (nothing was pipelined)".to_owned());
        }
        Ok(Answer {
            status,
            body: &self.buffer[head..end],
            closing,
        })
    }

    async fn read_more(&mut self) -> Result<(), String> {
        use tokio::io::AsyncReadExt as _;
        if self.buffer.capacity() - self.buffer.len() < 4096 {
            self.buffer.reserve(self.buffer.capacity());
        }
        match self.stream.read_buf(&mut self.buffer).await {
            Ok(0) => Err("the server closed the connection".to_owned()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("read: {e}")),
        }
    }
}

/// The body length and whether the server closes after this answer.
fn framing(headers: &[httparse::Header<'_>]) -> Result<(usize, bool), String> {
    let mut length = None;
    let mut closing = false;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or("a content-length that is not a number")?;
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(
                "a chunked answer (the load generator reads Content-Length only)".to_owned(),
            );
        } else if header.name.eq_ignore_ascii_case("connection") {
            closing = header.value.eq_ignore_ascii_case(b"close");
        }
    }
    Ok((length.ok_or("an answer without content-length")?, closing))
}

/// What verifying a sample of the answers needs.
#[derive(Debug)]
struct Verify {
    every: u64,
    method: String,
    client: Client,
}

/// One connection's sender.
struct Worker {
    pool: Arc<[Wire]>,
    target: Target,
    verify: Arc<Verify>,
    next: Arc<AtomicU64>,
    first: u64,
    schedule: Schedule,
    deadline: Instant,
}

impl Worker {
    async fn run(self, connection: Connection) -> Part {
        let mut part = Part::default();
        let mut connection = Some(connection);
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let since = match &self.schedule {
                Schedule::Closed if Instant::now() < self.deadline => Instant::now(),
                Schedule::Closed => break,
                Schedule::Open(pacer) => match pacer.release(i).await {
                    Some(intended) => intended,
                    None => break,
                },
            };
            let Some(wire) = usize::try_from(self.first.wrapping_add(i))
                .ok()
                .and_then(|i| self.pool.get(i % self.pool.len().max(1)))
            else {
                break;
            };
            let open = match connection.as_mut() {
                Some(open) => open,
                None => match connect(&self.target).await {
                    Ok(open) => connection.insert(open),
                    Err(e) => {
                        *part.errors.entry(format!("transport: {e}")).or_default() += 1;
                        continue;
                    }
                },
            };
            let closing = match open.exchange(wire).await {
                Ok(answer) if answer.status == 200 => {
                    let micros = since.elapsed().as_micros();
                    part.latencies_us
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    part.answered += 1;
                    if self.verify.every > 0 && i.is_multiple_of(self.verify.every) {
                        self.verify.sample(answer.body, &mut part);
                    }
                    answer.closing
                }
                Ok(answer) => {
                    let status = answer.status;
                    *part.errors.entry(format!("HTTP {status}")).or_default() += 1;
                    answer.closing
                }
                Err(e) => {
                    // The connection is not reused after a transport failure.
                    *part.errors.entry(format!("transport: {e}")).or_default() += 1;
                    true
                }
            };
            if closing {
                connection = None;
            }
        }
        part
    }
}

impl Verify {
    fn sample(&self, body: &[u8], part: &mut Part) {
        let c = self.client.config();
        let encryption = c.encryption.as_ref().map(|(t, k)| (*t, k));
        match verify(
            body,
            &self.method,
            c.charset,
            &c.platform_public_key,
            c.sign_type,
        )
        .and_then(|verified| verified.open(c.charset, encryption))
        {
            Ok(answer) => {
                let mut outcome = answer.outcome();
                let list = answer.node.get("usage_agreement_info_list");
                if list.and_then(|l| l.as_array()).is_some_and(Vec::is_empty) {
                    outcome.push_str(" (empty list)");
                }
                *part.verified.entry(outcome).or_default() += 1;
            }
            Err(e) => {
                *part
                    .errors
                    .entry(format!("answer refused: {e}"))
                    .or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_a_plain_http_url() {
        let target = Target::parse("http://127.0.0.1:8080/gateway.do").unwrap();
        assert_eq!(target.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(target.host, "127.0.0.1:8080");
        assert_eq!(target.path, "/gateway.do");
        assert_eq!(
            Target::parse("http://127.0.0.1/gateway.do").unwrap().addr,
            "127.0.0.1:80".parse().unwrap()
        );
        for bad in ["https://127.0.0.1/gateway.do", "/gateway.do", "not a url"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_pacer_releases_each_request_at_its_time_and_no_more() {
        let started = Instant::now();
        let pacer = Pacer::start(started, 2_000.0, Duration::from_millis(10));
        assert_eq!(pacer.total, 20);
        for i in 0..20 {
            let intended = pacer.release(i).await.unwrap();
            assert_eq!(intended, started + Duration::from_micros(500 * i));
            assert!(Instant::now() >= intended, "request {i} released early");
        }
        assert_eq!(pacer.release(20).await, None);
        assert_eq!(pacer.released.available_permits(), 0);
    }

    #[test]
    fn an_answer_is_framed_by_its_content_length() {
        let header = |name, value| httparse::Header { name, value };
        assert_eq!(
            framing(&[header("Content-Length", b" 12 ".as_slice())]),
            Ok((12, false))
        );
        assert_eq!(
            framing(&[
                header("content-length", b"0".as_slice()),
                header("Connection", b"Close".as_slice())
            ]),
            Ok((0, true))
        );
        assert!(framing(&[]).is_err());
        assert!(framing(&[header("content-length", b"-1".as_slice())]).is_err());
        assert!(framing(&[header("transfer-encoding", b"chunked".as_slice())]).is_err());
    }

    /// A server that answers in pieces (head split, body after a pause): the exchange reads
    /// exactly one answer, and the request arrives as rendered.
    #[tokio::test]
    async fn an_exchange_reads_an_answer_sent_in_pieces() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 4096];
            let mut got = 0;
            while !request[..got].ends_with(b"biz_content=x") {
                got += socket.read(&mut request[got..]).await.unwrap();
            }
            for piece in [
                &b"HTTP/1.1 200 OK\r\ncontent-le"[..],
                b"ngth: 5\r\n\r\nhe",
                b"llo",
            ] {
                socket.write_all(piece).await.unwrap();
                socket.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            String::from_utf8(request[..got].to_vec()).unwrap()
        });
        let target = Target::parse(&format!("http://{addr}/gateway.do")).unwrap();
        let wire = Wire::new(
            &target,
            &SignedRequest {
                query: "a=1&sign=s".to_owned(),
                body: "biz_content=x".to_owned(),
                content_type: "application/x-www-form-urlencoded;charset=utf-8".to_owned(),
            },
        )
        .unwrap();
        let mut connection = connect(&target).await.unwrap();
        let answer = connection.exchange(&wire).await.unwrap();
        assert_eq!(
            (answer.status, answer.body, answer.closing),
            (200, &b"hello"[..], false)
        );
        assert_eq!(
            server.await.unwrap(),
            format!(
                "POST /gateway.do?a=1&sign=s HTTP/1.1\r\nhost: {addr}\r\n\
                 content-type: application/x-www-form-urlencoded;charset=utf-8\r\n\
                 content-length: 13\r\n\r\nbiz_content=x"
            )
        );
        // The server is gone: the next exchange fails instead of hanging.
        assert!(connection.exchange(&wire).await.is_err());
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let report = Report {
            latencies_us: (1..=1000).collect(),
            ..Report::default()
        };
        assert_eq!(report.quantile(0.5), Some(Duration::from_micros(500)));
        assert_eq!(report.quantile(0.99), Some(Duration::from_micros(990)));
        assert_eq!(report.quantile(0.999), Some(Duration::from_micros(999)));
        assert_eq!(report.quantile(1.0), Some(Duration::from_micros(1000)));
        assert_eq!(report.quantile(0.0), Some(Duration::from_micros(1)));
        assert_eq!(Report::default().quantile(0.5), None);
    }
}
