//! A client of the OpenAPI v2 gateway that behaves like the official Python SDK: public
//! parameters in the query string, `biz_content` in the form body, RSA2/RSA request signatures,
//! and response signatures verified over the exact node bytes received.

pub mod load;

use std::time::{SystemTime, UNIX_EPOCH};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agreements_protocol::aes::{ContentKey, EncryptType};
use agreements_protocol::cert::{Certificate, root_cert_sn};
use agreements_protocol::method::ERROR_RESPONSE_NODE;
use agreements_protocol::sign_content::{self, Empties};
use agreements_protocol::timestamp::format_beijing;
use agreements_protocol::{Charset, KeyError, Params, PrivateKey, PublicKey, SignType};

/// What can go wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP exchange failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The gateway answered with a status other than 200.
    #[error("gateway answered HTTP {0}")]
    Status(u16),
    /// The body is not a gateway envelope.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The body carries no signature.
    #[error("the response is not signed")]
    Unsigned,
    /// The signature does not verify with the platform public key.
    #[error("the response signature does not verify with the platform public key")]
    BadSignature,
    /// Signing the request failed.
    #[error("signing: {0}")]
    Key(#[from] KeyError),
}

/// How a client identifies itself and whom it trusts.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http(s)://host:port/gateway.do`.
    pub gateway_url: String,
    /// The calling app.
    pub app_id: String,
    /// The app's private key.
    pub app_private_key: PrivateKey,
    /// The platform public key that verifies responses.
    pub platform_public_key: PublicKey,
    /// Request (and so response) signature algorithm.
    pub sign_type: SignType,
    /// Request charset.
    pub charset: Charset,
    /// Content encryption (`encrypt_type` and the app's key): `biz_content` is sent encrypted
    /// and encrypted answers are opened after their signature verifies.
    pub encryption: Option<(EncryptType, ContentKey)>,
    /// Certificate mode (公钥证书): `platform_public_key` is then the key of the platform
    /// certificate the client was given.
    pub cert: Option<CertMode>,
}

/// Certificate mode as the Java SDK's `certificateExecute` does it: requests carry
/// `app_cert_sn` and `alipay_root_cert_sn`; an answer naming a platform certificate the client
/// does not hold makes it download that certificate (`alipay.open.app.alipaycert.download`),
/// check its chain against the root bundle, and verify with it.
#[derive(Debug, Clone)]
pub struct CertMode {
    /// SN of the app's certificate.
    pub app_cert_sn: String,
    /// `alipay_root_cert_sn` of the root bundle.
    pub root_cert_sn: String,
    /// The root bundle.
    pub roots: Vec<Certificate>,
    /// SN of the platform certificate the client was given (its key is `platform_public_key`).
    pub platform_cert_sn: String,
}

impl CertMode {
    /// Certificate mode from the three files a merchant is handed: its app certificate, the
    /// platform certificate (chain) and the root bundle (PEM).
    pub fn from_files(
        app_cert: &[u8],
        platform_cert: &[u8],
        root_bundle: &[u8],
    ) -> Result<(Self, PublicKey), ClientError> {
        let bad = |e: agreements_protocol::cert::CertError| ClientError::Malformed(e.to_string());
        let app = Certificate::parse_pem(app_cert).map_err(bad)?;
        let platform = Certificate::parse_pem(platform_cert).map_err(bad)?;
        let roots = Certificate::parse_pem_chain(root_bundle).map_err(bad)?;
        let key = platform.public_key().map_err(bad)?;
        Ok((
            Self {
                app_cert_sn: app.sn(),
                root_cert_sn: root_cert_sn(&roots),
                roots,
                platform_cert_sn: platform.sn(),
            },
            key,
        ))
    }
}

/// A request ready for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The URL query string (public parameters and `sign`).
    pub query: String,
    /// The form body (`biz_content`).
    pub body: String,
    /// The Content-Type to send.
    pub content_type: String,
}

/// A verified answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The node name (`<method>_response` or `error_response`).
    pub node_name: String,
    /// The node object.
    pub node: serde_json::Map<String, serde_json::Value>,
}

impl Answer {
    /// `code`, or "" when absent.
    pub fn code(&self) -> &str {
        self.node
            .get("code")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    }

    /// `sub_code`, if any.
    pub fn sub_code(&self) -> Option<&str> {
        self.node.get("sub_code").and_then(|v| v.as_str())
    }

    /// `code`, and `sub_code` after a space when there is one (for counting answers).
    pub fn outcome(&self) -> String {
        match self.sub_code() {
            Some(sub) => format!("{} {sub}", self.code()),
            None => self.code().to_owned(),
        }
    }
}

/// The client.
#[derive(Debug, Clone)]
pub struct Client {
    config: ClientConfig,
    http: reqwest::Client,
    /// Certificate mode: the platform keys known, by certificate SN (downloads added).
    platform_keys: Arc<Mutex<HashMap<String, PublicKey>>>,
}

/// `scheme://host[:port]` of a URL (what precedes its path).
pub fn url_base(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

fn encode(bytes: &[u8]) -> String {
    form_urlencoded::byte_serialize(bytes).collect()
}

/// Who signs a request: what [`Client::sign`] and [`page_link`] share.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    /// The calling app.
    pub app_id: &'a str,
    /// Its private key.
    pub key: &'a PrivateKey,
    /// RSA2 or RSA.
    pub sign_type: SignType,
    /// The request charset.
    pub charset: Charset,
}

/// Public parameters, name and value.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

impl<'a> Signer<'a> {
    /// The public parameters (with `extra`) and the signature over them and `biz_content`.
    fn sign(
        &self,
        method: &'a str,
        biz_content: &str,
        timestamp: &'a str,
        extra: &[(&'a str, &'a str)],
    ) -> Result<(Pairs<'a>, String), ClientError> {
        let mut public: Vec<(&str, &str)> = vec![
            ("timestamp", timestamp),
            ("app_id", self.app_id),
            ("method", method),
            ("charset", self.charset.label()),
            ("format", "json"),
            ("version", "1.0"),
            ("sign_type", self.sign_type.as_str()),
        ];
        public.extend_from_slice(extra);
        let mut all = public.clone();
        all.push(("biz_content", biz_content));
        let params = Params::from_pairs(self.charset, &all)
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        let sign = self.key.sign(
            self.sign_type,
            &sign_content::request(&params, Empties::Drop),
        )?;
        Ok((public, sign))
    }
}

/// A page method's link as the SDKs' `pageExecute(…, "GET")` makes it: `gateway_url?` with every
/// parameter, `biz_content` and `sign` included, URL-encoded in the request charset.
pub fn page_link(
    gateway_url: &str,
    signer: &Signer<'_>,
    method: &str,
    biz_content: &str,
    timestamp: &str,
    extra: &[(&str, &str)],
) -> Result<String, ClientError> {
    let (public, sign) = signer.sign(method, biz_content, timestamp, extra)?;
    let query: Vec<String> = public
        .iter()
        .copied()
        .chain([("biz_content", biz_content), ("sign", sign.as_str())])
        .map(|(n, v)| {
            format!(
                "{}={}",
                encode(n.as_bytes()),
                encode(&signer.charset.encode(v))
            )
        })
        .collect();
    Ok(format!("{gateway_url}?{}", query.join("&")))
}

/// Now in Beijing wire time.
pub fn now_beijing() -> String {
    format_beijing(now_unix())
}

/// Now, in seconds since the epoch, by this machine's clock.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Client {
    /// A client with its own connection pool (keep-alive).
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Ok(Self::with_http(config, reqwest::Client::builder().build()?))
    }

    /// A client sharing an existing HTTP connection pool (building one loads the system's
    /// certificate store, which is slow).
    pub fn with_http(config: ClientConfig, http: reqwest::Client) -> Self {
        let mut keys = HashMap::new();
        if let Some(cert) = &config.cert {
            keys.insert(
                cert.platform_cert_sn.clone(),
                config.platform_public_key.clone(),
            );
        }
        Self {
            config,
            http,
            platform_keys: Arc::new(Mutex::new(keys)),
        }
    }

    /// The platform certificates this client has learnt so far (certificate mode), by SN.
    pub fn known_platform_certs(&self) -> Vec<String> {
        let mut sns: Vec<String> = self.keys().keys().cloned().collect();
        sns.sort();
        sns
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, HashMap<String, PublicKey>> {
        self.platform_keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The same client calling as `app_id` (with the same key), sharing its connection pool.
    pub fn as_app(&self, app_id: &str) -> Self {
        let config = ClientConfig {
            app_id: app_id.to_owned(),
            ..self.config.clone()
        };
        Self::with_http(config, self.http.clone())
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Builds and signs a request for `method` with `biz_content` (sent as given), stamped
    /// `timestamp`; `extra` parameters go into the query and are signed too.
    pub fn sign(
        &self,
        method: &str,
        biz_content: &str,
        timestamp: &str,
        extra: &[(&str, &str)],
    ) -> Result<SignedRequest, ClientError> {
        let c = &self.config;
        let signer = Signer {
            app_id: &c.app_id,
            key: &c.app_private_key,
            sign_type: c.sign_type,
            charset: c.charset,
        };
        let sealed;
        let mut extended = extra.to_vec();
        if let Some(cert) = &c.cert {
            extended.push(("app_cert_sn", cert.app_cert_sn.as_str()));
            extended.push(("alipay_root_cert_sn", cert.root_cert_sn.as_str()));
        }
        let biz_content = match &c.encryption {
            None => biz_content,
            Some((encrypt_type, key)) => {
                sealed = key
                    .encrypt(*encrypt_type, &c.charset.encode(biz_content))
                    .map_err(|e| ClientError::Malformed(e.to_string()))?;
                extended.push(("encrypt_type", encrypt_type.as_str()));
                sealed.as_str()
            }
        };
        let extra = extended.as_slice();
        let (public, sign) = signer.sign(method, biz_content, timestamp, extra)?;
        let mut query: Vec<String> = public
            .iter()
            .map(|(n, v)| format!("{}={}", encode(n.as_bytes()), encode(&c.charset.encode(v))))
            .collect();
        query.push(format!("sign={}", encode(sign.as_bytes())));
        Ok(SignedRequest {
            query: query.join("&"),
            body: format!("biz_content={}", encode(&c.charset.encode(biz_content))),
            content_type: format!(
                "application/x-www-form-urlencoded;charset={}",
                c.charset.label()
            ),
        })
    }

    pub async fn send(&self, request: &SignedRequest) -> Result<(u16, Vec<u8>), ClientError> {
        let url = format!("{}?{}", self.config.gateway_url, request.query);
        let response = self
            .http
            .post(url)
            .header("content-type", &request.content_type)
            .body(request.body.clone())
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.bytes().await?.to_vec()))
    }

    /// The server's metrics exposition (`GET /metrics` beside the gateway), if it answers 200.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let url = format!("{}/metrics", url_base(&self.config.gateway_url));
        let response = self.http.get(url).send().await?;
        if !response.status().is_success() {
            return Err(ClientError::Malformed(format!(
                "GET /metrics answered {}",
                response.status()
            )));
        }
        Ok(response.text().await?)
    }

    /// Signs, sends, and verifies: the answer is returned only if its signature verifies.
    pub async fn execute(&self, method: &str, biz_content: &str) -> Result<Answer, ClientError> {
        self.execute_at(method, biz_content, &now_beijing()).await
    }

    /// As [`Client::execute`], stamped `timestamp`. In certificate mode the answer's
    /// `alipay_cert_sn` chooses the key, downloading a certificate not yet known (a success
    /// without it is refused, as the Java SDK refuses it).
    pub async fn execute_at(
        &self,
        method: &str,
        biz_content: &str,
        timestamp: &str,
    ) -> Result<Answer, ClientError> {
        let request = self.sign(method, biz_content, timestamp, &[])?;
        let (status, body) = self.send(&request).await?;
        if status != 200 {
            return Err(ClientError::Status(status));
        }
        let cert_sn = cert_sn_of(&body, method);
        let key = match (&self.config.cert, cert_sn.as_deref()) {
            (Some(_), Some(sn)) => self.platform_key(sn, timestamp).await?,
            _ => self.config.platform_public_key.clone(),
        };
        let answer = verify(
            &body,
            method,
            self.config.charset,
            &key,
            self.config.sign_type,
        )?;
        if self.config.cert.is_some()
            && cert_sn.is_none()
            && matches!(&answer, Verified::Plain(a) if a.code() == "10000")
        {
            return Err(ClientError::Malformed(
                "cert check fail: ALIPAY_CERT_SN is Empty".into(),
            ));
        }
        answer.open(
            self.config.charset,
            self.config.encryption.as_ref().map(|(t, k)| (*t, k)),
        )
    }
}

impl Client {
    /// The platform key of certificate `sn`: known, or downloaded (the answer is read without
    /// verifying it, as the Java SDK does, because its proof is the chain to the root bundle,
    /// checked at this machine's time).
    async fn platform_key(&self, sn: &str, timestamp: &str) -> Result<PublicKey, ClientError> {
        if let Some(key) = self.keys().get(sn) {
            return Ok(key.clone());
        }
        let Some(cert) = &self.config.cert else {
            return Ok(self.config.platform_public_key.clone());
        };
        let method = "alipay.open.app.alipaycert.download";
        let biz = serde_json::json!({ "alipay_cert_sn": sn }).to_string();
        let plain = Client {
            config: ClientConfig {
                encryption: None,
                ..self.config.clone()
            },
            http: self.http.clone(),
            platform_keys: Arc::new(Mutex::new(HashMap::new())),
        };
        let request = plain.sign(method, &biz, timestamp, &[])?;
        let (_, body) = plain.send(&request).await?;
        let node = format!("{}_response", method.replace('.', "_"));
        let (bytes, _) = extract(&body, &node)
            .ok_or_else(|| ClientError::Malformed("no download node".into()))?;
        let answer = parse_node(node, bytes, self.config.charset)?;
        let content = answer
            .node
            .get("alipay_cert_content")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                ClientError::Malformed(format!(
                    "the platform has no certificate {sn}: {}",
                    answer.outcome()
                ))
            })?;
        use base64::Engine as _;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        let bad = |e: agreements_protocol::cert::CertError| ClientError::Malformed(e.to_string());
        let chain = Certificate::parse_pem_chain(&pem).map_err(bad)?;
        let leaf = &chain[0];
        if leaf.sn() != sn {
            return Err(ClientError::Malformed(format!(
                "downloaded certificate {} is not {sn}",
                leaf.sn()
            )));
        }
        leaf.verify_chain(&chain[1..], &cert.roots, now_unix())
            .map_err(bad)?;
        let key = leaf.public_key().map_err(bad)?;
        self.keys().insert(sn.to_owned(), key.clone());
        Ok(key)
    }
}

/// A response whose signature verified: a plain node, or an encrypted one still to open.
#[derive(Debug, Clone)]
pub enum Verified {
    /// The node, parsed.
    Plain(Answer),
    /// An encrypted node (§6): its name and its base64 ciphertext.
    Sealed {
        /// The node's name.
        node_name: String,
        /// The ciphertext, without its quotes.
        ciphertext: String,
    },
}

impl Verified {
    /// The answer, decrypting an encrypted node with `encryption`.
    pub fn open(
        self,
        charset: Charset,
        encryption: Option<(EncryptType, &ContentKey)>,
    ) -> Result<Answer, ClientError> {
        match self {
            Self::Plain(answer) => Ok(answer),
            Self::Sealed {
                node_name,
                ciphertext,
            } => {
                let (encrypt_type, key) = encryption.ok_or_else(|| {
                    ClientError::Malformed("an encrypted answer and no content key".into())
                })?;
                let bytes = key
                    .decrypt(encrypt_type, &ciphertext)
                    .map_err(|e| ClientError::Malformed(e.to_string()))?;
                parse_node(node_name, &bytes, charset)
            }
        }
    }

    /// The parsed node; an encrypted one is an error.
    pub fn plain(self) -> Result<Answer, ClientError> {
        self.open(Charset::Utf8, None)
    }
}

fn parse_node(node_name: String, bytes: &[u8], charset: Charset) -> Result<Answer, ClientError> {
    let text = charset
        .decode(bytes)
        .map_err(|e| ClientError::Malformed(e.to_string()))?;
    let node = serde_json::from_str(&text).map_err(|e| ClientError::Malformed(e.to_string()))?;
    Ok(Answer { node_name, node })
}

/// Finds the node of `method` (or `error_response`) in `body`, verifies the signature over its
/// exact bytes, and parses it; an encrypted node is an error (see [`verify`]).
pub fn verify_response(
    body: &[u8],
    method: &str,
    charset: Charset,
    key: &PublicKey,
    sign_type: SignType,
) -> Result<Answer, ClientError> {
    verify(body, method, charset, key, sign_type)?.plain()
}

/// Finds the node of `method` (or `error_response`) in `body` and verifies the signature over
/// its exact bytes (an encrypted node's with its quotes); then parses a plain node.
pub fn verify(
    body: &[u8],
    method: &str,
    charset: Charset,
    key: &PublicKey,
    sign_type: SignType,
) -> Result<Verified, ClientError> {
    verify_with(body, method, charset, sign_type, |_| Ok(key.clone()))
}

/// The `alipay_cert_sn` of a response (certificate mode), if it names one.
pub fn cert_sn_of(body: &[u8], method: &str) -> Option<String> {
    let method_node = format!("{}_response", method.replace('.', "_"));
    [method_node.as_str(), ERROR_RESPONSE_NODE]
        .into_iter()
        .find_map(|name| extract(body, name))
        .and_then(|(_, tail)| tail.cert_sn)
}

/// As [`verify`], with the key chosen by the response's `alipay_cert_sn`.
fn verify_with(
    body: &[u8],
    method: &str,
    charset: Charset,
    sign_type: SignType,
    key_for: impl FnOnce(Option<&str>) -> Result<PublicKey, ClientError>,
) -> Result<Verified, ClientError> {
    let method_node = format!("{}_response", method.replace('.', "_"));
    let (node_name, node_bytes, tail) = [method_node.as_str(), ERROR_RESPONSE_NODE]
        .into_iter()
        .find_map(|name| extract(body, name).map(|(node, tail)| (name, node, tail)))
        .ok_or_else(|| ClientError::Malformed("no response node".into()))?;
    let sign = tail.sign.ok_or(ClientError::Unsigned)?;
    let key = key_for(tail.cert_sn.as_deref())?;
    if !key.verify(sign_type, node_bytes, &sign) {
        return Err(ClientError::BadSignature);
    }
    if let Some(quoted) = node_bytes.strip_prefix(b"\"") {
        let ciphertext = quoted.strip_suffix(b"\"").unwrap_or(quoted);
        return Ok(Verified::Sealed {
            node_name: node_name.to_owned(),
            ciphertext: String::from_utf8_lossy(ciphertext).into_owned(),
        });
    }
    parse_node(node_name.to_owned(), node_bytes, charset).map(Verified::Plain)
}

/// What follows a node: `alipay_cert_sn` (certificate mode) and `sign`.
#[derive(Debug, Default)]
struct Tail {
    cert_sn: Option<String>,
    sign: Option<String>,
}

/// `(node bytes, tail)` for `{"<name>":{…},"alipay_cert_sn":"…","sign":"…"}` — or, encrypted,
/// `{"<name>":"…",…}`, whose node is the quoted string; an object's end is found by brace
/// matching that respects strings and escapes.
fn extract<'b>(body: &'b [u8], name: &str) -> Option<(&'b [u8], Tail)> {
    let key = format!("\"{name}\":");
    let start = body.windows(key.len()).position(|w| w == key.as_bytes())? + key.len();
    let rest = &body[start..];
    if rest.first() == Some(&b'"') {
        // A base64 string has no quote or backslash inside.
        let end = rest[1..].iter().position(|&b| b == b'"')? + 2;
        return Some((&rest[..end], tail(&rest[end..])));
    }
    if rest.first() != Some(&b'{') {
        return None;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut end = None;
    for (i, &b) in rest.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(i + 1);
                    break;
                }
            }
            _ => {}
        }
    }
    let end = end?;
    Some((&rest[..end], tail(&rest[end..])))
}

/// The `alipay_cert_sn` and `sign` members right after a node, in that order.
fn tail(rest: &[u8]) -> Tail {
    let member = |rest: &[u8], name: &str| -> Option<(String, usize)> {
        let prefix = format!(",\"{name}\":\"");
        let value = rest.strip_prefix(prefix.as_bytes())?;
        let q = value.iter().position(|&b| b == b'"')?;
        Some((
            String::from_utf8_lossy(&value[..q]).into_owned(),
            prefix.len() + q + 1,
        ))
    };
    let (cert_sn, rest) = match member(rest, "alipay_cert_sn") {
        Some((sn, used)) => (Some(sn), &rest[used..]),
        None => (None, rest),
    };
    Tail {
        cert_sn,
        sign: member(rest, "sign").map(|(sign, _)| sign),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_of_a_gateway_url_is_what_precedes_its_path() {
        assert_eq!(
            url_base("http://127.0.0.1:8080/gateway.do"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            url_base("https://h.example/gateway.do?charset=utf-8"),
            "https://h.example"
        );
        assert_eq!(url_base("http://h:1?x=/y"), "http://h:1");
        assert_eq!(url_base("http://h"), "http://h");
    }

    #[test]
    fn extraction_respects_strings_and_finds_the_sign() {
        let body = br#"{"x_response":{"a":"}{\"","b":{"c":1}},"sign":"abc"}"#;
        let (node, tail) = extract(body, "x_response").unwrap();
        assert_eq!(node, br#"{"a":"}{\"","b":{"c":1}}"#);
        assert_eq!(tail.sign.as_deref(), Some("abc"));
        assert_eq!(tail.cert_sn, None);
        let (_, tail) = extract(
            br#"{"x_response":{},"alipay_cert_sn":"0a","sign":"s"}"#,
            "x_response",
        )
        .unwrap();
        assert_eq!(
            (tail.cert_sn.as_deref(), tail.sign.as_deref()),
            (Some("0a"), Some("s"))
        );
        assert_eq!(
            extract(br#"{"x_response":{"a":1}}"#, "x_response")
                .unwrap()
                .1
                .sign,
            None
        );
        assert!(extract(br#"{"x_response":{"a":1"#, "x_response").is_none());
        let (node, tail) =
            extract(br#"{"x_response":"QUJD+/==","sign":"s"}"#, "x_response").unwrap();
        assert_eq!(node, br#""QUJD+/==""#);
        assert_eq!(tail.sign.as_deref(), Some("s"));
        assert!(extract(br#"{"x_response":"QUJD"#, "x_response").is_none());
        assert!(extract(b"garbage", "x_response").is_none());
    }
}
