//! A synthetic agreement world, written as load files: groups of merchants with their contracts
//! and apps, persons with one to three accounts (logon ids, open ids), and agreements per person
//! drawn from a heavy-tailed distribution, in every status, scene, principal type and expiry.
//! The same options and seed always give the same bytes.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use agreements_domain::ids::{
    AgreementNo, AppId, CustomerId, ExternalAgreementNo, GroupId, LogonId, OpenId, PartnerId,
    PersonalProductCode, PrincipalId, ProductCode, SignScene, UserId,
};
use agreements_domain::{
    Agreement, AgreementStatus, Contract, EntityStatus, Merchant, PrincipalType, ThirdPartyType,
};
use agreements_protocol::timestamp::{format_beijing, parse_beijing};
use agreements_protocol::{Method, SignType};
use agreements_store::{
    AccountRecord, AppKey, AppRecord, AppStatus, Kind, LogonIdRecord, NewGroup, OpenIdRecord,
    ProductRecord, Record,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::export::file_name;
use crate::files::{Encoding, Format, RecordWriter, WriteError};

/// What to generate.
#[derive(Debug, Clone)]
pub struct WorldOptions {
    /// Persons (each with 1–3 accounts and at least one agreement).
    pub persons: u64,
    /// Merchants.
    pub merchants: u32,
    /// Merchant groups (about 70 % of merchants belong to one).
    pub groups: u32,
    /// The random seed: the same seed, the same world.
    pub seed: u64,
    /// Most agreements one person gets (the tail of the distribution).
    pub max_agreements_per_person: u32,
    /// Bare base64 SPKI public key given to every app (RSA2 and RSA), so that callers can sign.
    pub app_public_key: Option<String>,
    /// Notification address of every app; each app gets its own `https://bu<N>.example.com/…`
    /// when `None`.
    pub notify_url: Option<String>,
}

impl Default for WorldOptions {
    fn default() -> Self {
        Self {
            persons: 1_000,
            merchants: 40,
            groups: 5,
            seed: 1,
            max_agreements_per_person: 2_000,
            app_public_key: None,
            notify_url: None,
        }
    }
}

/// The two products every world has (agreements.md §2).
const PRODUCTS: [(&str, &str, &str); 2] = [
    (
        "GENERAL_WITHHOLDING_P",
        "GENERAL_WITHHOLDING",
        "General withholding",
    ),
    ("CYCLE_PAY_AUTH_P", "CYCLE_PAY_AUTH", "Periodic deduction"),
];

const SCENES: [&str; 6] = [
    SignScene::DEFAULT,
    "INDUSTRY|DIGITAL_MEDIA",
    "INDUSTRY|CARRENTAL",
    "INDUSTRY|MOBILE",
    "INDUSTRY|GAME_CHARGE",
    "INDUSTRY|SATELLITE_TV",
];

/// First id numbers (the 12 digits after `2088`).
const FIRST_MERCHANT: u64 = 10_000_000;
const FIRST_ACCOUNT: u64 = 200_000_000_000;

fn merchant_id(m: u32) -> String {
    format!("2088{:012}", FIRST_MERCHANT + u64::from(m))
}

fn app_id(m: u32) -> String {
    format!("2021{:012}", u64::from(m) + 1)
}

fn group_id(g: u32) -> String {
    format!("GROUP-{g:03}")
}

fn id<T, E: std::fmt::Debug>(parsed: Result<T, E>) -> io::Result<T> {
    parsed.map_err(|e| io::Error::other(format!("generated an invalid id: {e:?}")))
}

struct Writers {
    writers: BTreeMap<Kind, RecordWriter>,
    counts: BTreeMap<Kind, u64>,
}

impl Writers {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        let kind = record.kind();
        if let Some(w) = self.writers.get_mut(&kind) {
            w.write(record).map_err(|e| match e {
                WriteError::Io(e) => e,
                unencodable @ WriteError::Unencodable { .. } => {
                    io::Error::new(io::ErrorKind::InvalidData, unencodable)
                }
            })?;
        }
        *self.counts.entry(kind).or_default() += 1;
        Ok(())
    }
}

/// Writes a world into `dir` (one file per kind, named as `agreements export` names them);
/// `progress` hears the persons written so far. Returns the records written per kind.
pub fn generate(
    dir: &Path,
    options: &WorldOptions,
    format: Format,
    encoding: Encoding,
    progress: &mut dyn FnMut(u64),
) -> io::Result<BTreeMap<Kind, u64>> {
    std::fs::create_dir_all(dir)?;
    let mut writers = Writers {
        writers: BTreeMap::new(),
        counts: BTreeMap::new(),
    };
    for kind in Kind::ALL {
        writers.writers.insert(
            kind,
            RecordWriter::create(&file_name(dir, kind, format), kind, format, encoding)?,
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let merchants = options.merchants.max(1);
    let groups = options.groups;

    for g in 0..groups {
        writers.write(&Record::Group(NewGroup {
            group_id: id(GroupId::parse(group_id(g)))?,
            name: format!("集团 {g}"),
        }))?;
    }
    let mut merchant_group = Vec::with_capacity(merchants as usize);
    for m in 0..merchants {
        let group = (groups > 0 && rng.random_bool(0.7)).then(|| rng.random_range(0..groups));
        merchant_group.push(group);
        writers.write(&Record::Merchant(Merchant {
            partner_id: id(PartnerId::parse(merchant_id(m)))?,
            name: format!("业务单元 {m}"),
            status: if m % 25 == 24 {
                EntityStatus::Disabled
            } else {
                EntityStatus::Normal
            },
            group_id: group
                .map(|g| GroupId::parse(group_id(g)))
                .transpose()
                .map_err(|e| io::Error::other(e.to_string()))?,
        }))?;
    }
    for (personal, sales, name) in PRODUCTS {
        writers.write(&Record::Product(ProductRecord {
            personal_product_code: id(PersonalProductCode::parse(personal))?,
            name: name.to_owned(),
            principal_type: agreements_domain::PrincipalType::Card,
            product_codes: vec![id(ProductCode::parse(sales))?],
        }))?;
    }
    let contract_from = parse_beijing("2015-01-01 00:00:00").unwrap_or(0);
    let contract_to = parse_beijing("2099-12-31 23:59:59").unwrap_or(i64::MAX);
    for m in 0..merchants {
        for (_, sales, _) in PRODUCTS {
            writers.write(&Record::Contract(Contract {
                partner_id: id(PartnerId::parse(merchant_id(m)))?,
                product_code: id(ProductCode::parse(sales))?,
                status: if rng.random_bool(0.05) {
                    EntityStatus::Disabled
                } else {
                    EntityStatus::Normal
                },
                valid_from: contract_from,
                valid_to: contract_to,
            }))?;
        }
    }
    let keys: Vec<AppKey> = options
        .app_public_key
        .iter()
        .flat_map(|key| {
            [SignType::Rsa2, SignType::Rsa].map(|sign_type| AppKey {
                sign_type,
                public_key: key.clone(),
            })
        })
        .collect();
    for m in 0..merchants {
        writers.write(&Record::App(AppRecord {
            app_id: id(AppId::parse(app_id(m)))?,
            partner_id: id(PartnerId::parse(merchant_id(m)))?,
            name: format!("app of 业务单元 {m}"),
            status: AppStatus::Online,
            notify_url: Some(
                options
                    .notify_url
                    .clone()
                    .unwrap_or_else(|| format!("https://bu{m}.example.com/agreements/notify")),
            ),
            keys: keys.clone(),
            methods: Method::ALL.to_vec(),
        }))?;
    }

    let sign_from = parse_beijing("2015-01-01 00:00:00").unwrap_or(0);
    let sign_to = parse_beijing("2026-10-01 00:00:00").unwrap_or(0);
    let open_ended = parse_beijing("2117-05-24 00:00:00").unwrap_or(0);
    let member_center_app = id(AppId::parse(app_id(0)))?;
    let mut next_account = FIRST_ACCOUNT;
    let mut next_agreement = 1u64;
    let alpha = 1.5f64;
    for person in 0..options.persons {
        let accounts = match rng.random_range(0..10) {
            0..7 => 1,
            7..9 => 2,
            _ => 3,
        };
        // Each account with its number among the world's accounts (0, 1, …): logon ids and open
        // ids are derived from it, so they are unique too.
        let mut users = Vec::with_capacity(accounts);
        for _ in 0..accounts {
            let n = next_account - FIRST_ACCOUNT;
            users.push((n, id(UserId::parse(format!("2088{next_account:012}")))?));
            next_account += 1;
        }
        let customer = id(CustomerId::parse(users[0].1.as_str()))?;
        for (n, user) in &users {
            let n = *n;
            writers.write(&Record::Account(AccountRecord {
                user_id: user.clone(),
                customer_id: customer.clone(),
                status: if rng.random_bool(0.02) {
                    EntityStatus::Disabled
                } else {
                    EntityStatus::Normal
                },
            }))?;
            let logon = if rng.random_bool(0.6) {
                format!("1{}{n:09}", 3 + n % 7)
            } else {
                format!("user{n}@example{}.com", n % 10)
            };
            writers.write(&Record::LogonId(LogonIdRecord {
                logon_id: id(LogonId::parse(logon))?,
                user_id: user.clone(),
            }))?;
            if rng.random_bool(0.5) {
                writers.write(&Record::OpenId(OpenIdRecord {
                    app_id: member_center_app.clone(),
                    open_id: id(OpenId::parse(format!(
                        "074a{:024x}",
                        n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    )))?,
                    user_id: user.clone(),
                }))?;
            }
        }

        // Pareto(α = 1.5): most persons have one to three agreements, a few have hundreds.
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        let count = (u.powf(-1.0 / alpha).floor() as u64)
            .clamp(1, u64::from(options.max_agreements_per_person.max(1)));
        for _ in 0..count {
            let seq = next_agreement;
            next_agreement += 1;
            let v: f64 = rng.random();
            let m = ((f64::from(merchants) * v * v) as u32).min(merchants - 1);
            let user = users[rng.random_range(0..users.len())].1.clone();
            let (principal_type, principal_id) = if rng.random_bool(0.8) {
                (PrincipalType::Card, PrincipalId::from(user.clone()))
            } else {
                (PrincipalType::Customer, PrincipalId::from(customer.clone()))
            };
            let (personal, sales, _) = PRODUCTS[usize::from(rng.random_bool(0.3))];
            let third_party_type = if merchant_group[m as usize].is_some() && rng.random_bool(0.3) {
                ThirdPartyType::Merchant
            } else {
                ThirdPartyType::Partner
            };
            let status = match rng.random_range(0..100) {
                0..70 => AgreementStatus::Normal,
                70..78 => AgreementStatus::Stop,
                78..95 => AgreementStatus::Unsign,
                _ => AgreementStatus::Temp,
            };
            let sign_time = rng.random_range(sign_from..sign_to);
            let invalid_time = if rng.random_bool(0.85) {
                open_ended
            } else {
                sign_time + rng.random_range(86_400 * 365..86_400 * 365 * 4)
            };
            let unsign_time = (status == AgreementStatus::Unsign)
                .then(|| sign_time + rng.random_range(3_600..86_400 * 700));
            let date: String = format_beijing(sign_time)[..10].replace('-', "");
            writers.write(&Record::Agreement(Agreement {
                agreement_no: id(AgreementNo::parse(format!("{date}{seq:012}")))?,
                partner_id: id(PartnerId::parse(merchant_id(m)))?,
                sign_app_id: id(AppId::parse(app_id(m)))?,
                principal_type,
                principal_id,
                alipay_user_id: user,
                personal_product_code: id(PersonalProductCode::parse(personal))?,
                product_code: id(ProductCode::parse(sales))?,
                sign_scene: id(SignScene::parse(SCENES[rng.random_range(0..SCENES.len())]))?,
                third_party_type,
                external_agreement_no: rng
                    .random_bool(0.6)
                    .then(|| id(ExternalAgreementNo::parse(format!("EXT{seq:012}"))))
                    .transpose()?,
                external_logon_id: rng.random_bool(0.3).then(|| format!("member{seq}")),
                status,
                sign_time,
                valid_time: sign_time,
                invalid_time,
                unsign_time,
            }))?;
        }
        if person % 10_000 == 9_999 {
            progress(person + 1);
        }
    }
    progress(options.persons);
    for (_, writer) in std::mem::take(&mut writers.writers) {
        writer.finish()?;
    }
    Ok(writers.counts)
}
