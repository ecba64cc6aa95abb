//! A quick latency probe (not the benchmark): batch.query for one person with 10 and with 1,000
//! agreements, among other people's, on the database given (SQLite path or `postgres://` URL).
//!
//! `cargo run --release -p agreements-server --example person_latency -- /tmp/probe.db`
//! `cargo run --release -p agreements-server --example person_latency -- 'postgres://root@127.0.0.1:5432/test?options=-c%20search_path%3Dprobe'`
//! (the database or schema must be empty).

use std::sync::Arc;
use std::time::Instant;

use agreements_domain::ids::{
    AgreementNo, AppId, CustomerId, PartnerId, PersonalProductCode, ProductCode, SignScene, UserId,
};
use agreements_domain::{
    Agreement, AgreementStatus, Contract, EntityStatus, Merchant, PrincipalType, Product,
    ThirdPartyType,
};
use agreements_protocol::sign_content::{self, Empties};
use agreements_protocol::{Charset, Method, Params, PrivateKey, SignType};
use agreements_server::clock::FixedClock;
use agreements_server::{Gateway, Limits};
use agreements_store::{AppKey, AppStatus, NewAccount, NewApp, Store};

const NOW: i64 = 1_716_182_055; // 2024-05-20 13:14:15 Beijing time
const OTHERS: usize = 20_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let location = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: person_latency DATABASE"))?;
    let store = Arc::new(Store::open(&location).await?);
    let app_key = PrivateKey::generate(2048)?;
    let partner = PartnerId::parse("2088000000000001")?;
    store
        .add_merchant(&Merchant {
            partner_id: partner.clone(),
            name: "m".into(),
            status: EntityStatus::Normal,
            group_id: None,
        })
        .await?;
    let ppc = PersonalProductCode::parse("GENERAL_WITHHOLDING_P")?;
    let pc = ProductCode::parse("GENERAL_WITHHOLDING")?;
    store
        .add_product(
            &Product {
                personal_product_code: ppc.clone(),
                product_codes: vec![pc.clone()],
            },
            "p",
        )
        .await?;
    store
        .add_contract(&Contract {
            partner_id: partner.clone(),
            product_code: pc.clone(),
            status: EntityStatus::Normal,
            valid_from: 0,
            valid_to: i64::MAX,
        })
        .await?;
    let app_id = AppId::parse("2021000000000001")?;
    store
        .add_app(&NewApp {
            app_id: app_id.clone(),
            partner_id: partner.clone(),
            name: "a".into(),
            status: AppStatus::Online,
            notify_url: None,
            keys: vec![AppKey {
                sign_type: SignType::Rsa2,
                public_key: app_key.public_key()?.to_spki_base64()?,
            }],
            methods: Method::ALL.iter().map(|m| m.name().to_owned()).collect(),
        })
        .await?;
    let started = Instant::now();
    let mut no = 0u64;
    let people: Vec<(String, usize)> = vec![
        ("2088100000000010".into(), 10),
        ("2088100000001000".into(), 1_000),
    ]
    .into_iter()
    .chain((0..OTHERS / 10).map(|i| (format!("2088200{i:09}"), 10)))
    .collect();
    for (user, count) in &people {
        let user_id = UserId::parse(user.clone())?;
        store
            .add_account(&NewAccount {
                user_id: user_id.clone(),
                customer_id: CustomerId::parse(user.clone())?,
                logon_ids: vec![],
                open_ids: vec![],
            })
            .await?;
        for k in 0..*count {
            no += 1;
            store
                .add_agreement(&Agreement {
                    agreement_no: AgreementNo::parse(format!("2024{no:016}"))?,
                    partner_id: partner.clone(),
                    sign_app_id: app_id.clone(),
                    principal_type: PrincipalType::Card,
                    principal_id: user.clone(),
                    alipay_user_id: user_id.clone(),
                    personal_product_code: ppc.clone(),
                    product_code: pc.clone(),
                    sign_scene: SignScene::parse(format!("INDUSTRY|S{}", k % 7))?,
                    third_party_type: ThirdPartyType::Partner,
                    external_agreement_no: None,
                    external_logon_id: None,
                    status: AgreementStatus::Normal,
                    sign_time: NOW - 1_000_000 + i64::try_from(k)?,
                    valid_time: NOW - 1_000_000,
                    invalid_time: NOW + 1_000_000,
                    unsign_time: None,
                })
                .await?;
        }
    }
    eprintln!(
        "{} backend: loaded {no} agreements in {:.1} s",
        store.backend(),
        started.elapsed().as_secs_f64()
    );
    let gateway = Gateway::new(
        store.clone(),
        PrivateKey::generate(2048)?,
        Arc::new(FixedClock::new(NOW)),
        Limits {
            timestamp_window: None,
            max_body_bytes: 65_536,
        },
    );
    for (user, count) in &people[..2] {
        let biz = format!(
            r#"{{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"{user}"}}"#
        );
        let pairs = [
            ("app_id", app_id.as_str()),
            ("method", Method::AgreementBatchQuery.name()),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("timestamp", "2024-05-20 13:14:15"),
            ("version", "1.0"),
            ("biz_content", biz.as_str()),
        ];
        let params = Params::from_pairs(Charset::Utf8, &pairs)?;
        let sign = app_key.sign(
            SignType::Rsa2,
            &sign_content::request(&params, Empties::Drop),
        )?;
        let mut body: String = pairs
            .iter()
            .map(|(n, v)| format!("{n}={}&", encode(v)))
            .collect();
        body.push_str(&format!("sign={}", encode(&sign)));
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..300 {
            let t = Instant::now();
            let reply = gateway.handle(b"", None, body.as_bytes()).await;
            times.push(t.elapsed().as_micros());
            size = reply.body.len();
        }
        times.sort_unstable();
        eprintln!(
            "person with {count:>5} agreements: whole request p50 {} µs, p90 {} µs (response {size} bytes)",
            times[times.len() / 2],
            times[times.len() * 9 / 10]
        );
    }
    Ok(())
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
