//! The no-leak property (agreements.md §4.4): in generated worlds — merchants, groups, ISV tokens,
//! persons with several accounts, agreements in every status and type — every answer of both
//! query methods equals the answer of an independent, obviously-correct model written here.
//!
//! Deterministic per seed. Run longer with e.g.
//! `NO_LEAK_WORLDS=50 NO_LEAK_REQUESTS=5000 NO_LEAK_SEED=7 cargo test -p agreements-server --test api no_leak -- --nocapture`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use agreements_client::verify_response;
use agreements_domain::clock::FixedClock;
use agreements_domain::ids::{
    AgreementNo, AppId, CustomerId, ExternalAgreementNo, GroupId, LogonId, OpenId, PartnerId,
    PersonalProductCode, PrincipalId, ProductCode, SignScene, UserId,
};
use agreements_domain::token::{AppAuthToken, TokenStatus};
use agreements_domain::{
    Agreement, AgreementStatus, Contract, EntityStatus, Merchant, PrincipalType, ThirdPartyType,
};
use agreements_protocol::sign_content::Empties;
use agreements_protocol::timestamp::parse_beijing;
use agreements_protocol::{Charset, Method, PrivateKey, PublicKey, SignType};
use agreements_server::{Gateway, Limits};
use agreements_store::{AppKey, AppStatus, NewAccount, NewApp, NewGroup, ProductRecord, Store};

use crate::helpers::{VECTOR_TIME, backend, fixture, signed_form};
use agreements_store::test_support::TestDatabase;

/// splitmix64: small, fast, and good enough to spread choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const PRODUCTS: &[(&str, &str)] = &[
    ("GENERAL_WITHHOLDING_P", "GENERAL_WITHHOLDING"),
    ("CYCLE_PAY_AUTH_P", "CYCLE_PAY_AUTH"),
];
const SCENES: &[&str] = &[
    "DEFAULT|DEFAULT",
    "INDUSTRY|DIGITAL_MEDIA",
    "INDUSTRY|CARRENTAL",
    "INDUSTRY|MEDICAL",
];
const STATUSES: &[AgreementStatus] = &[
    AgreementStatus::Temp,
    AgreementStatus::Normal,
    AgreementStatus::Stop,
    AgreementStatus::Unsign,
];

struct World {
    merchants: Vec<Merchant>,
    contracts: Vec<Contract>,
    /// app id → owner merchant
    apps: BTreeMap<String, String>,
    tokens: Vec<AppAuthToken>,
    /// user id → customer id
    accounts: BTreeMap<String, String>,
    /// logon id → user id
    logon_ids: BTreeMap<String, String>,
    /// (app, open id) → user id
    open_ids: BTreeMap<(String, String), String>,
    agreements: Vec<Agreement>,
}

fn generate(rng: &mut Rng, now: i64) -> World {
    let groups: Vec<String> = (0..4).map(|g| format!("G{g}")).collect();
    let merchants: Vec<Merchant> = (0..24)
        .map(|i| Merchant {
            partner_id: PartnerId::parse(format!("20880000000{i:05}")).unwrap(),
            name: format!("m{i}"),
            status: if rng.chance(5) {
                EntityStatus::Disabled
            } else {
                EntityStatus::Normal
            },
            group_id: rng
                .chance(70)
                .then(|| GroupId::parse(rng.pick(&groups).clone()).unwrap()),
        })
        .collect();
    let mut contracts = Vec::new();
    for m in &merchants {
        for (_, pc) in PRODUCTS {
            if rng.chance(90) {
                let (from, to) = match rng.below(12) {
                    0 => (now - 1_000_000, now - 1), // ended
                    1 => (now + 1, now + 1_000_000), // not yet
                    _ => (now - 1_000_000, now + 1_000_000),
                };
                contracts.push(Contract {
                    partner_id: m.partner_id.clone(),
                    product_code: ProductCode::parse(*pc).unwrap(),
                    status: if rng.chance(10) {
                        EntityStatus::Disabled
                    } else {
                        EntityStatus::Normal
                    },
                    valid_from: from,
                    valid_to: to,
                });
            }
        }
    }
    let mut apps = BTreeMap::new();
    for (i, m) in merchants.iter().enumerate() {
        apps.insert(format!("2021000000{i:06}"), m.partner_id.to_string());
    }
    let app_ids: Vec<String> = apps.keys().cloned().collect();
    let methods: Vec<Method> = Method::ALL.to_vec();
    let tokens: Vec<AppAuthToken> = (0..30)
        .map(|i| AppAuthToken {
            token: format!("202405BBtok{i:024}"),
            isv_app_id: AppId::parse(rng.pick(&app_ids).clone()).unwrap(),
            partner_id: rng.pick(&merchants).partner_id.clone(),
            auth_app_id: AppId::parse(rng.pick(&app_ids).clone()).unwrap(),
            status: if rng.chance(15) {
                TokenStatus::Revoked
            } else {
                TokenStatus::Valid
            },
            expires_at: if rng.chance(15) {
                now - 10
            } else {
                now + 100_000
            },
            methods: methods.iter().filter(|_| rng.chance(80)).cloned().collect(),
        })
        .collect();
    let mut accounts = BTreeMap::new();
    let mut logon_ids = BTreeMap::new();
    let mut open_ids = BTreeMap::new();
    let mut persons: Vec<Vec<String>> = Vec::new();
    let mut next_user = 0u64;
    for p in 0..400 {
        let n = 1 + rng.below(3);
        let users: Vec<String> = (0..n)
            .map(|_| {
                next_user += 1;
                format!("2088{next_user:012}")
            })
            .collect();
        for (k, user) in users.iter().enumerate() {
            accounts.insert(user.clone(), users[0].clone());
            if rng.chance(70) {
                logon_ids.insert(format!("p{p}a{k}@example.com"), user.clone());
            }
            if rng.chance(30) {
                logon_ids.insert(format!("139{:08}", p * 10 + k), user.clone());
            }
            for app in &app_ids {
                if rng.chance(5) {
                    open_ids.insert((app.clone(), format!("open-{app}-{user}")), user.clone());
                }
            }
        }
        persons.push(users);
    }
    let mut agreements = Vec::new();
    let mut externals = HashSet::new();
    for i in 0..3_000 {
        let person = rng.pick(&persons).clone();
        let signer = rng.pick(&person).clone();
        let (principal_type, principal_id) = if rng.chance(70) {
            (PrincipalType::Card, signer.clone())
        } else {
            (PrincipalType::Customer, person[0].clone())
        };
        let merchant = rng.pick(&merchants).partner_id.clone();
        let (ppc, pc) = *rng.pick(PRODUCTS);
        let scene = *rng.pick(SCENES);
        let external = (scene != "DEFAULT|DEFAULT" && rng.chance(40))
            .then(|| format!("EXT{}", rng.below(50)))
            .filter(|e| externals.insert((merchant.to_string(), ppc, scene, e.clone())));
        let sign_time = now - 1_000_000 + i64::try_from(rng.below(900_000)).unwrap();
        agreements.push(Agreement {
            agreement_no: AgreementNo::parse(format!("2024{i:016}")).unwrap(),
            partner_id: merchant,
            sign_app_id: AppId::parse(rng.pick(&app_ids).clone()).unwrap(),
            principal_type,
            principal_id: PrincipalId::parse(principal_id).unwrap(),
            alipay_user_id: UserId::parse(signer).unwrap(),
            personal_product_code: PersonalProductCode::parse(ppc).unwrap(),
            product_code: ProductCode::parse(pc).unwrap(),
            sign_scene: SignScene::parse(scene).unwrap(),
            third_party_type: if rng.chance(40) {
                ThirdPartyType::Merchant
            } else {
                ThirdPartyType::Partner
            },
            external_agreement_no: external.map(|e| ExternalAgreementNo::parse(e).unwrap()),
            external_logon_id: None,
            status: *rng.pick(STATUSES),
            sign_time,
            valid_time: sign_time,
            invalid_time: if rng.chance(15) {
                now - 1
            } else {
                now + 1_000_000
            },
            unsign_time: None,
        });
    }
    World {
        merchants,
        contracts,
        apps,
        tokens,
        accounts,
        logon_ids,
        open_ids,
        agreements,
    }
}

async fn load(store: &Store, world: &World, app_key: &str) {
    for g in 0..4 {
        store
            .add_group(&NewGroup {
                group_id: GroupId::parse(format!("G{g}")).unwrap(),
                name: format!("group {g}"),
            })
            .await
            .unwrap();
    }
    for m in &world.merchants {
        store.add_merchant(m).await.unwrap();
    }
    for (ppc, pc) in PRODUCTS {
        let product = ProductRecord {
            personal_product_code: PersonalProductCode::parse(*ppc).unwrap(),
            name: (*ppc).to_owned(),
            principal_type: PrincipalType::Card,
            product_codes: vec![ProductCode::parse(*pc).unwrap()],
        };
        store.add_product(&product).await.unwrap();
    }
    for c in &world.contracts {
        store.add_contract(c).await.unwrap();
    }
    for (app, owner) in &world.apps {
        let new = NewApp {
            app_id: AppId::parse(app.clone()).unwrap(),
            partner_id: PartnerId::parse(owner.clone()).unwrap(),
            name: app.clone(),
            status: AppStatus::Online,
            notify_url: None,
            keys: vec![AppKey {
                sign_type: SignType::Rsa2,
                public_key: app_key.to_owned(),
            }],
            methods: Method::ALL.to_vec(),
        };
        store.add_app(&new).await.unwrap();
    }
    for t in &world.tokens {
        store.add_app_auth_token(t).await.unwrap();
    }
    for (user, customer) in &world.accounts {
        let account = NewAccount {
            user_id: UserId::parse(user.clone()).unwrap(),
            customer_id: CustomerId::parse(customer.clone()).unwrap(),
            logon_ids: world
                .logon_ids
                .iter()
                .filter(|(_, u)| *u == user)
                .map(|(l, _)| LogonId::parse(l).unwrap())
                .collect(),
            open_ids: world
                .open_ids
                .iter()
                .filter(|(_, u)| *u == user)
                .map(|((a, o), _)| {
                    (
                        AppId::parse(a.clone()).unwrap(),
                        OpenId::parse(o.clone()).unwrap(),
                    )
                })
                .collect(),
        };
        store.add_account(&account).await.unwrap();
    }
    for a in &world.agreements {
        store.add_agreement(a).await.unwrap();
    }
}

/// What the model says a request must get: agreement numbers, or a sub_code.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    List(Vec<String>),
    One(String),
    Error(String),
    /// Unsign succeeded: the model names the agreement it cancels (`None`: already cancelled,
    /// nothing changes); the gateway's answer cannot say, so the store is checked instead.
    Cancelled(Option<String>),
    /// sign.effect made this TEMP agreement NORMAL (the answer names it, as `One`).
    Effected(String),
}

struct Request {
    app: String,
    token: Option<String>,
    method: Method,
    biz: serde_json::Map<String, serde_json::Value>,
}

fn err(sub_code: &str) -> Expected {
    Expected::Error(sub_code.to_owned())
}

/// The model: agreements.md §4–§6 read literally, over the in-memory world.
fn model(world: &World, r: &Request, now: i64) -> Expected {
    let text = |k: &str| r.biz.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let merchant_of = |p: &str| {
        world
            .merchants
            .iter()
            .find(|m| m.partner_id.as_str() == p)
            .unwrap()
    };
    // §4.1: the calling merchant.
    let caller = match &r.token {
        None => world.apps[&r.app].clone(),
        Some(token) => {
            let Some(t) = world.tokens.iter().find(|t| t.token == *token) else {
                return err("aop.invalid-app-auth-token");
            };
            if t.isv_app_id.as_str() != r.app || t.status == TokenStatus::Revoked {
                return err("aop.invalid-app-auth-token");
            }
            if t.expires_at <= now {
                return err("aop.app-auth-token-time-out");
            }
            if !t.methods.contains(&r.method) {
                return err("aop.invalid-app-auth-token-no-api");
            }
            t.partner_id.to_string()
        }
    };
    let caller = merchant_of(&caller);
    if caller.status != EntityStatus::Normal {
        return err("isv.invalid-app-id");
    }
    let merchant_type = text("third_party_type").as_deref() == Some("MERCHANT");
    if merchant_type && caller.group_id.is_none() {
        return err("INVALID_PARAMETER");
    }
    let visible = |a: &Agreement| {
        if merchant_type {
            a.third_party_type == ThirdPartyType::Merchant
                && merchant_of(a.partner_id.as_str()).group_id == caller.group_id
        } else {
            a.third_party_type == ThirdPartyType::Partner && a.partner_id == caller.partner_id
        }
    };
    let live = |a: &Agreement| a.status != AgreementStatus::Unsign && a.invalid_time > now;
    let has_contract = |pc: &str| {
        world.contracts.iter().any(|c| {
            c.partner_id == caller.partner_id
                && c.product_code.as_str() == pc
                && c.status == EntityStatus::Normal
                && c.valid_from <= now
                && now < c.valid_to
        })
    };
    let product_rule = |ppc: &str, pc: Option<&str>| -> Result<(), Expected> {
        let Some((_, paired)) = PRODUCTS.iter().find(|(p, _)| *p == ppc) else {
            return Err(err("PRODUCT_CODE_NOT_SUPPORTED_ERROR"));
        };
        if pc.is_some_and(|pc| pc != *paired) {
            return Err(err("PRODUCT_CODE_NOT_SUPPORTED_ERROR"));
        }
        if !has_contract(paired) {
            return Err(err("MERCHANT_AGREEMENT_IS_NOT_EXIST"));
        }
        Ok(())
    };
    let resolve = || -> Option<(String, String)> {
        let user = if let Some(id) = text("alipay_user_id") {
            world.accounts.contains_key(&id).then_some(id)
        } else if let Some(open) = text("alipay_open_id") {
            world.open_ids.get(&(r.app.clone(), open)).cloned()
        } else {
            world
                .logon_ids
                .get(&text("alipay_logon_id")?.to_lowercase())
                .cloned()
        }?;
        let customer = world.accounts[&user].clone();
        Some((user, customer))
    };
    let belongs = |a: &Agreement, (user, customer): &(String, String)| match a.principal_type {
        PrincipalType::Card => a.principal_id.as_str() == user,
        PrincipalType::Customer => a.principal_id.as_str() == customer,
    };
    let latest = |mut found: Vec<&Agreement>| {
        found.sort_by_key(|a| (a.sign_time, a.agreement_no.clone()));
        found.last().map_or_else(
            || err("USER_AGREEMENT_NOT_EXIST"),
            |a| Expected::One(a.agreement_no.to_string()),
        )
    };
    let ppc = text("personal_product_code");
    // §6 locators over the agreements `keep` admits (unsign: also the merchant number given beside
    // `agreement_no`): the candidates, or the answer that stops there.
    let locate = |keep: &dyn Fn(&Agreement) -> bool,
                  check_external: bool|
     -> Result<Vec<&Agreement>, Expected> {
        if let Some(no) = text("agreement_no") {
            let external = text("external_agreement_no").filter(|_| check_external);
            let Some(a) = world.agreements.iter().find(|a| {
                a.agreement_no.as_str() == no
                    && visible(a)
                    && keep(a)
                    && match (&a.external_agreement_no, &external) {
                        (Some(stored), Some(given)) => stored.as_str() == given,
                        _ => true,
                    }
            }) else {
                return Err(err("USER_AGREEMENT_NOT_EXIST"));
            };
            if !has_contract(a.product_code.as_str()) {
                return Err(err("MERCHANT_AGREEMENT_IS_NOT_EXIST"));
            }
            return Ok(vec![a]);
        }
        let ppc = ppc.clone().unwrap();
        product_rule(&ppc, None)?;
        let scene = text("sign_scene").unwrap_or_else(|| SignScene::DEFAULT.to_owned());
        let candidates = world.agreements.iter().filter(|a| {
            visible(a)
                && keep(a)
                && a.personal_product_code.as_str() == ppc
                && a.sign_scene.as_str() == scene
        });
        if let Some(external) = text("external_agreement_no") {
            return Ok(candidates
                .filter(|a| {
                    a.external_agreement_no
                        .as_ref()
                        .map(ExternalAgreementNo::as_str)
                        == Some(external.as_str())
                })
                .collect());
        }
        let Some(person) = resolve() else {
            return Err(err("USER_NOT_EXIST_ERROR"));
        };
        Ok(candidates.filter(|a| belongs(a, &person)).collect())
    };
    match r.method {
        Method::AgreementBatchQuery => {
            let ppc = ppc.unwrap();
            let pc = text("product_code");
            if let Err(e) = product_rule(&ppc, pc.as_deref()) {
                return e;
            }
            let Some(person) = resolve() else {
                return err("USER_NOT_EXIST_ERROR");
            };
            let scene = text("sign_scene");
            let mut found: Vec<&Agreement> = world
                .agreements
                .iter()
                .filter(|a| {
                    visible(a)
                        && live(a)
                        && a.personal_product_code.as_str() == ppc
                        && scene.as_deref().is_none_or(|s| a.sign_scene.as_str() == s)
                        && pc.as_deref().is_none_or(|p| a.product_code.as_str() == p)
                        && belongs(a, &person)
                })
                .collect();
            found.sort_by_key(|a| (a.sign_time, a.agreement_no.clone()));
            Expected::List(found.iter().map(|a| a.agreement_no.to_string()).collect())
        }
        Method::AgreementQuery => match locate(&live, false) {
            Ok(found) => latest(found),
            Err(answer) => answer,
        },
        Method::AgreementUnsign => {
            // §7: located as for the query, cancelled ones included; the one active agreement, or
            // with none a cancelled one (nothing changes); several active: refused.
            let alive = |a: &Agreement| a.invalid_time > now;
            let found = match locate(&alive, true) {
                Ok(found) => found,
                Err(answer) => return answer,
            };
            let key = |a: &&Agreement| (a.sign_time, a.agreement_no.clone());
            let (mut active, mut cancelled): (Vec<&Agreement>, Vec<&Agreement>) = found
                .into_iter()
                .partition(|a| a.status != AgreementStatus::Unsign);
            active.sort_by_key(key);
            cancelled.sort_by_key(key);
            match (active.as_slice(), cancelled.last()) {
                ([a], _) => Expected::Cancelled(Some(a.agreement_no.to_string())),
                ([], Some(_)) => Expected::Cancelled(None),
                ([], None) => err("USER_AGREEMENT_NOT_EXIST"),
                _ => err("INVALID_PARAMETER"),
            }
        }
        Method::AgreementSignEffect => {
            // Located as for unsign; TEMP becomes NORMAL, NORMAL is answered as it is, STOP is
            // refused, cancelled ones are not found.
            let alive = |a: &Agreement| a.invalid_time > now;
            let found = match locate(&alive, true) {
                Ok(found) => found,
                Err(answer) => return answer,
            };
            let active: Vec<&Agreement> = found
                .into_iter()
                .filter(|a| a.status != AgreementStatus::Unsign)
                .collect();
            match active.as_slice() {
                [a] => match a.status {
                    AgreementStatus::Temp => Expected::Effected(a.agreement_no.to_string()),
                    AgreementStatus::Normal => Expected::One(a.agreement_no.to_string()),
                    _ => err("AGREEMENT_STATUS_NOT_TEMP"),
                },
                [] => err("USER_AGREEMENT_NOT_EXIST"),
                _ => err("INVALID_PARAMETER"),
            }
        }
        Method::AgreementExecutionPlanModify => {
            // The agreement by number, visible in either scope (the method has no
            // third_party_type), live, under a contract; the generated agreements have no period
            // rule, so a visible one is refused as not periodic.
            let Some(no) = text("agreement_no") else {
                return err("INVALID_PARAMETER");
            };
            let either = |a: &Agreement| match a.third_party_type {
                ThirdPartyType::Partner => a.partner_id == caller.partner_id,
                ThirdPartyType::Merchant => {
                    caller.group_id.is_some()
                        && merchant_of(a.partner_id.as_str()).group_id == caller.group_id
                }
            };
            let Some(a) = world
                .agreements
                .iter()
                .find(|a| a.agreement_no.as_str() == no && either(a) && live(a))
            else {
                return err("USER_AGREEMENT_NOT_EXIST");
            };
            if !has_contract(a.product_code.as_str()) {
                return err("MERCHANT_AGREEMENT_IS_NOT_EXIST");
            }
            err("INVALID_PARAMETER")
        }
        Method::AgreementPageSign | Method::AlipayCertDownload => {
            unreachable!(
                "page methods and the certificate download (no agreements) are not generated"
            )
        }
    }
}

/// A request aimed, most of the time, at one existing agreement (from its merchant's app, for
/// its product, person and type), so that answers with rows are frequent; the rest of the time,
/// and in each field separately, aimed elsewhere.
fn random_request(rng: &mut Rng, world: &World) -> Request {
    let agreement = rng.pick(&world.agreements);
    let owner_app = world
        .apps
        .iter()
        .find(|(_, owner)| **owner == agreement.partner_id.as_str())
        .map(|(app, _)| app.clone());
    let apps: Vec<&String> = world.apps.keys().collect();
    let mut app = match owner_app {
        Some(app) if rng.chance(70) => app,
        _ => (*rng.pick(&apps)).clone(),
    };
    let token = match rng.below(20) {
        0 => Some(rng.pick(&world.tokens).token.clone()),
        1..=4 => {
            // A token granted by the agreement's merchant, sent by its ISV app.
            let granted: Vec<&AppAuthToken> = world
                .tokens
                .iter()
                .filter(|t| t.partner_id == agreement.partner_id)
                .collect();
            (!granted.is_empty()).then(|| {
                let t = rng.pick(&granted);
                app = t.isv_app_id.to_string();
                t.token.clone()
            })
        }
        5 => Some("202405BBnosuchtoken00000000000000001".to_owned()),
        _ => None,
    };
    let method = match rng.below(13) {
        0..=3 => Method::AgreementBatchQuery,
        4..=7 => Method::AgreementQuery,
        8 | 9 => Method::AgreementUnsign,
        10 | 11 => Method::AgreementSignEffect,
        _ => Method::AgreementExecutionPlanModify,
    };
    let mut biz = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        biz.insert(k.to_owned(), serde_json::Value::String(v));
    };
    let ppc = if rng.chance(5) {
        "UNKNOWN_P".to_owned()
    } else if rng.chance(85) {
        agreement.personal_product_code.to_string()
    } else {
        rng.pick(PRODUCTS).0.to_owned()
    };
    put("personal_product_code", ppc);
    let signer = agreement.alipay_user_id.to_string();
    match rng.below(4) {
        0 | 1 => put(
            "alipay_user_id",
            if rng.chance(95) {
                signer.clone()
            } else {
                "2088999999999999".into()
            },
        ),
        2 => {
            let own: Vec<&String> = world
                .logon_ids
                .iter()
                .filter(|(_, u)| **u == signer)
                .map(|(l, _)| l)
                .collect();
            let all: Vec<&String> = world.logon_ids.keys().collect();
            let logon = if own.is_empty() || rng.chance(20) {
                (*rng.pick(&all)).clone()
            } else {
                (*rng.pick(&own)).clone()
            };
            put(
                "alipay_logon_id",
                if rng.chance(20) {
                    logon.to_uppercase()
                } else {
                    logon
                },
            );
        }
        _ => {
            let own: Vec<&(String, String)> =
                world.open_ids.keys().filter(|(a, _)| *a == app).collect();
            let all: Vec<&(String, String)> = world.open_ids.keys().collect();
            let pool = if own.is_empty() || rng.chance(30) {
                all
            } else {
                own
            };
            put("alipay_open_id", rng.pick(&pool).1.clone());
        }
    }
    if rng.chance(50) {
        let scene = if rng.chance(70) {
            agreement.sign_scene.to_string()
        } else {
            (*rng.pick(SCENES)).to_owned()
        };
        put("sign_scene", scene);
    }
    match rng.below(10) {
        0..=5 => put(
            "third_party_type",
            agreement.third_party_type.as_str().to_owned(),
        ),
        6 => put("third_party_type", "MERCHANT".to_owned()),
        7 => put("third_party_type", "PARTNER".to_owned()),
        _ => {}
    }
    if method == Method::AgreementBatchQuery && rng.chance(20) {
        put("product_code", rng.pick(PRODUCTS).1.to_owned());
    }
    if method != Method::AgreementBatchQuery {
        match rng.below(3) {
            0 => {
                put("agreement_no", agreement.agreement_no.to_string());
                if method == Method::AgreementUnsign && rng.chance(40) {
                    let given = match &agreement.external_agreement_no {
                        Some(ext) if rng.chance(50) => ext.to_string(),
                        _ => "MISMATCH1".to_owned(),
                    };
                    put("external_agreement_no", given);
                }
            }
            1 => {
                if let Some(ext) = &agreement.external_agreement_no {
                    put("external_agreement_no", ext.to_string());
                    put("sign_scene", agreement.sign_scene.to_string());
                }
            }
            _ => {}
        }
    }
    if method == Method::AgreementExecutionPlanModify {
        biz.clear();
        let target = if rng.chance(80) {
            agreement
        } else {
            rng.pick(&world.agreements)
        };
        biz.insert(
            "agreement_no".into(),
            target.agreement_no.to_string().into(),
        );
        biz.insert("deduct_time".into(), "2024-06-01".into());
    }
    Request {
        app,
        token,
        method,
        biz,
    }
}

fn answer_of(
    gateway: &Gateway,
    runtime: &tokio::runtime::Runtime,
    platform: &PublicKey,
    r: &Request,
) -> Expected {
    let biz = serde_json::Value::Object(r.biz.clone()).to_string();
    let mut pairs = vec![
        ("app_id", r.app.as_str()),
        ("method", r.method.name()),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("timestamp", VECTOR_TIME),
        ("version", "1.0"),
        ("biz_content", biz.as_str()),
    ];
    if let Some(token) = &r.token {
        pairs.push(("app_auth_token", token.as_str()));
    }
    let body = signed_form(&pairs, SignType::Rsa2, Charset::Utf8, Empties::Drop);
    let reply = runtime.block_on(gateway.handle(b"", None, body.as_bytes()));
    let answer = verify_response(
        &reply.body,
        r.method.name(),
        Charset::Utf8,
        platform,
        SignType::Rsa2,
    )
    .unwrap();
    if let Some(sub_code) = answer.sub_code() {
        return err(sub_code);
    }
    match r.method {
        Method::AgreementBatchQuery => Expected::List(
            answer.node["usage_agreement_info_list"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["agreement_no"].as_str().unwrap().to_owned())
                .collect(),
        ),
        Method::AgreementQuery => {
            Expected::One(answer.node["agreement_no"].as_str().unwrap().to_owned())
        }
        Method::AgreementSignEffect => {
            assert_eq!(answer.node["status"], "NORMAL", "{:?}", answer.node);
            Expected::One(answer.node["agreement_no"].as_str().unwrap().to_owned())
        }
        Method::AgreementUnsign => Expected::Cancelled(None),
        Method::AgreementExecutionPlanModify => {
            Expected::One(answer.node["agreement_no"].as_str().unwrap().to_owned())
        }
        Method::AgreementPageSign | Method::AlipayCertDownload => {
            unreachable!(
                "page methods and the certificate download (no agreements) are not generated"
            )
        }
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn no_request_ever_sees_an_agreement_outside_its_callers_view_nor_misses_one() {
    let worlds = env_number("NO_LEAK_WORLDS", 3);
    let requests = env_number("NO_LEAK_REQUESTS", 500);
    let seed = env_number("NO_LEAK_SEED", 20_241_120);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = parse_beijing(VECTOR_TIME).unwrap();
    let platform_key = PrivateKey::parse(&fixture("keys/gateway_private_key_pkcs1.pem")).unwrap();
    let platform = platform_key.public_key().unwrap();
    let mut outcomes: HashMap<&'static str, u64> = HashMap::new();
    let mut rows = 0usize;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for w in 0..worlds {
        let mut rng = Rng(seed.wrapping_add(w));
        let mut world = generate(&mut rng, now);
        let db = runtime.block_on(TestDatabase::new(&backend())).unwrap();
        let store = Arc::new(runtime.block_on(Store::open(db.location())).unwrap());
        runtime.block_on(load(
            &store,
            &world,
            fixture("keys/app_public_key_spki.b64").trim(),
        ));
        let limits = Limits {
            timestamp_window: Some(900),
            max_body_bytes: 65_536,
        };
        let gateway = Gateway::new(
            store.clone(),
            platform_key.clone(),
            Arc::new(FixedClock::new(now)),
            limits,
        );
        for i in 0..requests {
            let request = random_request(&mut rng, &world);
            let expected = model(&world, &request, now);
            let got = answer_of(&gateway, &runtime, &platform, &request);
            let agree = match (&got, &expected) {
                (Expected::Cancelled(_), Expected::Cancelled(_)) => true,
                (Expected::One(got), Expected::Effected(expected)) => got == expected,
                _ => got == expected,
            };
            assert!(
                agree,
                "{got:?} != {expected:?}: world {w} (seed {}), request {i}: app {} token {:?} {} {}",
                seed.wrapping_add(w),
                request.app,
                request.token,
                request.method.name(),
                serde_json::Value::Object(request.biz.clone())
            );
            if let Expected::Cancelled(Some(no)) = &expected {
                let a = world
                    .agreements
                    .iter_mut()
                    .find(|a| a.agreement_no.as_str() == no)
                    .unwrap();
                a.status = AgreementStatus::Unsign;
            }
            if let Expected::Effected(no) = &expected {
                let a = world
                    .agreements
                    .iter_mut()
                    .find(|a| a.agreement_no.as_str() == no)
                    .unwrap();
                a.status = AgreementStatus::Normal;
            }
            let kind = match &expected {
                Expected::Effected(_) => "effected",
                Expected::Cancelled(Some(_)) => "cancelled",
                Expected::Cancelled(None) => "already cancelled",
                Expected::List(list) if list.is_empty() => "empty list",
                Expected::List(list) => {
                    rows += list.len();
                    "non-empty list"
                }
                Expected::One(_) => "one agreement",
                Expected::Error(code) => {
                    *errors.entry(code.clone()).or_default() += 1;
                    "error"
                }
            };
            *outcomes.entry(kind).or_default() += 1;
        }
        // Unsign and sign.effect changed exactly what the model changed, nothing else.
        let any_app = AppId::parse(world.apps.keys().next().unwrap().as_str()).unwrap();
        for a in &world.agreements {
            let stored = runtime
                .block_on(store.agreement_by_no(&a.agreement_no, &any_app))
                .unwrap()
                .unwrap();
            assert_eq!(
                stored.agreement.status, a.status,
                "world {w}: agreement {}",
                a.agreement_no
            );
        }
    }
    eprintln!(
        "no-leak: {worlds} worlds × {requests} requests, seed {seed}: {outcomes:?}, {rows} rows returned; errors {errors:?}"
    );
    // The generator must exercise every kind of answer, or the property proves little.
    for kind in [
        "empty list",
        "non-empty list",
        "one agreement",
        "error",
        "cancelled",
        "already cancelled",
        "effected",
    ] {
        assert!(
            outcomes.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} answers generated"
        );
    }
}
