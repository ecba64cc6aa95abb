//! `agreements sign-link`: a page.sign link as a merchant's server makes it with the SDKs'
//! `pageExecute(…, "GET")`, signed with the app's key and stamped now: open it in a browser to
//! sign an agreement on the hosted signing page.

use std::path::PathBuf;

use agreements_client::{Signer, now_beijing, page_link};
use agreements_protocol::{Charset, PrivateKey, SignType};
use anyhow::Context as _;

use super::call::read;

/// The agreement product, scene and channel the link asks for when `--biz` is not given.
pub const DEFAULT_BIZ: &str = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","product_code":"GENERAL_WITHHOLDING","sign_scene":"INDUSTRY|DIGITAL_MEDIA","access_params":{"channel":"ALIPAYAPP"},"external_logon_id":"member-0001"}"#;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gateway URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/gateway.do")]
    pub gateway: String,
    /// The merchant's app.
    #[arg(long)]
    pub app_id: String,
    /// The app's private key file (PKCS#1 or PKCS#8, PEM or bare base64).
    #[arg(long)]
    pub app_key: PathBuf,
    /// biz_content of alipay.user.agreement.page.sign.
    #[arg(long, default_value = DEFAULT_BIZ)]
    pub biz: String,
    /// Where the browser goes after signing (gets the signed parameters PROTOCOL.md lists).
    #[arg(long)]
    pub return_url: Option<String>,
    /// Where dut_user_sign goes (else the app's notification address).
    #[arg(long)]
    pub notify_url: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let key = PrivateKey::parse(&read(&args.app_key)?).context("--app-key")?;
    let link = link(
        &args.gateway,
        &args.app_id,
        &key,
        &args.biz,
        (args.return_url.as_deref(), args.notify_url.as_deref()),
        &now_beijing(),
    )?;
    super::print(&format!("{link}\n"))
}

/// The link, stamped `timestamp`, with `(return_url, notify_url)` when given.
pub fn link(
    gateway: &str,
    app_id: &str,
    key: &PrivateKey,
    biz: &str,
    (return_url, notify_url): (Option<&str>, Option<&str>),
    timestamp: &str,
) -> anyhow::Result<String> {
    let extra: Vec<(&str, &str)> = [("return_url", return_url), ("notify_url", notify_url)]
        .into_iter()
        .filter_map(|(name, url)| Some((name, url?)))
        .collect();
    let signer = Signer {
        app_id,
        key,
        sign_type: SignType::Rsa2,
        charset: Charset::Utf8,
    };
    Ok(page_link(
        gateway,
        &signer,
        "alipay.user.agreement.page.sign",
        biz,
        timestamp,
        &extra,
    )?)
}
