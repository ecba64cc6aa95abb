//! Request mixes of `agreements bench` made from a world's load files (`generate-world`).
//!
//! - `distinct`: every answer different, so no cache can help: one batch query per person and
//!   agreement kind, asked by the app of a merchant the agreement was signed with (each answer
//!   lists at least that agreement).
//! - `member-center`: a group's member center: one app asks with `third_party_type = MERCHANT`
//!   (every merchant of its group) for persons drawn from a Zipf distribution: mostly persons with
//!   the group's agreements, and a share without (their answers are empty lists).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, BufReader};
use std::path::Path;

use anyhow::Context as _;
use rand::SeedableRng as _;
use rand::distr::Distribution as _;
use serde::Deserialize;

/// Which mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Every request and every answer distinct.
    Distinct,
    /// A member center: one app, MERCHANT scope over its group, persons drawn from Zipf.
    MemberCenter,
}

/// One pooled request: the app that asks and its `biz_content`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ask {
    pub app_id: String,
    pub biz: String,
}

/// The requests of a mix, in the order they are sent, and what they are.
#[derive(Debug)]
pub struct Pool {
    pub asks: Vec<Ask>,
    pub description: String,
}

/// The member-center mix's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Zipf {
    /// The exponent of both populations' Zipf distributions.
    pub exponent: f64,
    /// The share of requests for persons without the group's agreements.
    pub empty_share: f64,
    pub seed: u64,
}

#[derive(Deserialize)]
struct AppLine {
    app_id: String,
    partner_id: String,
    status: String,
}

#[derive(Deserialize)]
struct MerchantLine {
    partner_id: String,
    status: String,
    group_id: Option<String>,
}

#[derive(Deserialize)]
struct ContractLine {
    partner_id: String,
    product_code: String,
    status: String,
}

#[derive(Deserialize)]
struct AccountLine {
    user_id: String,
    customer_id: String,
}

#[derive(Deserialize)]
struct AgreementLine {
    partner_id: String,
    principal_type: String,
    principal_id: String,
    alipay_user_id: String,
    personal_product_code: String,
    product_code: String,
    third_party_type: String,
    status: String,
    invalid_time: String,
}

/// Calls `each` with every line of `world/name` read as `T`, until it returns false.
fn each_line<T: for<'de> Deserialize<'de>>(
    world: &Path,
    name: &str,
    mut each: impl FnMut(T) -> bool,
) -> anyhow::Result<()> {
    let path = world.join(name);
    let file = std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value =
            serde_json::from_str(&line).with_context(|| format!("{}:{}", path.display(), n + 1))?;
        if !each(value) {
            break;
        }
    }
    Ok(())
}

/// The app of each merchant that is served: the merchant enabled, with its app online.
fn apps_by_merchant(world: &Path) -> anyhow::Result<HashMap<String, String>> {
    let mut enabled = HashSet::new();
    each_line(world, "merchants.jsonl", |m: MerchantLine| {
        if m.status == "NORMAL" {
            enabled.insert(m.partner_id);
        }
        true
    })?;
    let mut apps = HashMap::new();
    each_line(world, "apps.jsonl", |app: AppLine| {
        if app.status == "ONLINE" && enabled.contains(&app.partner_id) {
            apps.entry(app.partner_id).or_insert(app.app_id);
        }
        true
    })?;
    Ok(apps)
}

/// (merchant, sales product) of every contract in force (the others' requests are refused).
fn contracts_in_force(world: &Path) -> anyhow::Result<HashSet<(String, String)>> {
    let mut contracts = HashSet::new();
    each_line(world, "contracts.jsonl", |c: ContractLine| {
        if c.status == "NORMAL" {
            contracts.insert((c.partner_id, c.product_code));
        }
        true
    })?;
    Ok(contracts)
}

fn batch_query(product: &str, user_id: &str, third_party_type: &str) -> String {
    serde_json::json!({
        "personal_product_code": product,
        "alipay_user_id": user_id,
        "third_party_type": third_party_type,
    })
    .to_string()
}

/// The `distinct` mix: at most `size` requests, no two of which can get the same answer.
pub fn distinct(world: &Path, size: usize) -> anyhow::Result<Pool> {
    let apps = apps_by_merchant(world)?;
    let contracts = contracts_in_force(world)?;
    let mut customers = HashMap::new();
    each_line(world, "accounts.jsonl", |account: AccountLine| {
        customers.insert(account.user_id, account.customer_id);
        true
    })?;
    // Beijing time, as the world files write it: tells expired agreements.
    let now = agreements_client::now_beijing();
    let mut seen = HashSet::new();
    let mut asks = Vec::new();
    each_line(world, "agreements.jsonl", |a: AgreementLine| {
        let live = a.status != "UNSIGN"
            && a.invalid_time > now
            && contracts.contains(&(a.partner_id.clone(), a.product_code.clone()));
        if let (true, Some(app_id), Some(customer)) = (
            live,
            apps.get(&a.partner_id),
            customers.get(&a.alipay_user_id),
        ) {
            // Accounts of one person share their CUSTOMER agreements: one request per person.
            let key = (
                app_id.clone(),
                customer.clone(),
                a.personal_product_code.clone(),
                a.third_party_type.clone(),
            );
            if seen.insert(key) {
                asks.push(Ask {
                    app_id: app_id.clone(),
                    biz: batch_query(
                        &a.personal_product_code,
                        &a.alipay_user_id,
                        &a.third_party_type,
                    ),
                });
            }
        }
        asks.len() < size
    })?;
    let description = format!(
        "mix distinct: {} batch queries, one per person and agreement kind, each asked by the app \
         of a merchant the person signed with (every answer a different, non-empty list)",
        asks.len()
    );
    Ok(Pool { asks, description })
}

/// The `member-center` mix: `size` requests of one app of the group with the most merchants
/// (its first merchant served for `GENERAL_WITHHOLDING`), MERCHANT scope, each for a person with
/// the group's agreements or, with probability `empty_share`, one without; within each
/// population persons are drawn from Zipf(`exponent`) (ranked in an order shuffled by `seed`).
pub fn member_center(world: &Path, size: usize, zipf: Zipf) -> anyhow::Result<Pool> {
    let apps = apps_by_merchant(world)?;
    let contracts = contracts_in_force(world)?;
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    each_line(world, "merchants.jsonl", |m: MerchantLine| {
        if let Some(group) = m.group_id {
            groups.entry(group).or_default().push(m.partner_id);
        }
        true
    })?;
    let (group, merchants) = groups
        .into_iter()
        .max_by(|(ga, a), (gb, b)| a.len().cmp(&b.len()).then(gb.cmp(ga)))
        .context("the world has no merchant group")?;
    let served = |m: &&String| {
        apps.contains_key(*m) && contracts.contains(&((*m).clone(), "GENERAL_WITHHOLDING".into()))
    };
    let first = merchants
        .iter()
        .filter(served)
        .min()
        .with_context(|| format!("no merchant of {group} is served for GENERAL_WITHHOLDING"))?;
    let app_id = apps[first].clone();
    // Members: accounts with a live MERCHANT agreement of the group (their lists are not empty).
    let group_merchants: HashSet<&String> = merchants.iter().collect();
    // Beijing time, as the world files write it: tells expired agreements.
    let now = agreements_client::now_beijing();
    // An agreement belongs to its CARD's account, or to every account of its CUSTOMER.
    let (mut cards, mut customers) = (HashSet::new(), HashSet::new());
    each_line(world, "agreements.jsonl", |a: AgreementLine| {
        if a.third_party_type == "MERCHANT"
            && a.personal_product_code == "GENERAL_WITHHOLDING_P"
            && a.status != "UNSIGN"
            && a.invalid_time > now
            && group_merchants.contains(&a.partner_id)
        {
            match a.principal_type.as_str() {
                "CARD" => cards.insert(a.principal_id),
                _ => customers.insert(a.principal_id),
            };
        }
        true
    })?;
    let mut accounts = Vec::new();
    each_line(world, "accounts.jsonl", |account: AccountLine| {
        accounts.push(account);
        true
    })?;
    let (mut members, mut others): (Vec<&String>, Vec<&String>) = (Vec::new(), Vec::new());
    for account in &accounts {
        if cards.contains(&account.user_id) || customers.contains(&account.customer_id) {
            members.push(&account.user_id);
        } else {
            others.push(&account.user_id);
        }
    }
    anyhow::ensure!(
        !members.is_empty() && !others.is_empty(),
        "{group} needs persons with and without its agreements"
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(zipf.seed);
    rand::seq::SliceRandom::shuffle(members.as_mut_slice(), &mut rng);
    rand::seq::SliceRandom::shuffle(others.as_mut_slice(), &mut rng);
    let ranks = |n: usize| {
        rand_distr::Zipf::new(n as f64, zipf.exponent)
            .map_err(|e| anyhow::anyhow!("--zipf-exponent: {e}"))
    };
    let (member_ranks, other_ranks) = (ranks(members.len())?, ranks(others.len())?);
    let empty = rand::distr::Bernoulli::new(zipf.empty_share)
        .map_err(|e| anyhow::anyhow!("--empty-share: {e}"))?;
    let asks: Vec<Ask> = (0..size)
        .map(|_| {
            let (population, distribution) = if empty.sample(&mut rng) {
                (&others, &other_ranks)
            } else {
                (&members, &member_ranks)
            };
            // Zipf draws ranks 1..=n.
            let rank = (distribution.sample(&mut rng) as usize).clamp(1, population.len());
            Ask {
                app_id: app_id.clone(),
                biz: batch_query("GENERAL_WITHHOLDING_P", population[rank - 1], "MERCHANT"),
            }
        })
        .collect();
    let persons = asks.iter().collect::<HashSet<_>>().len();
    let description = format!(
        "mix member-center: {} batch queries by app {app_id} of {group} ({} merchants), \
         third_party_type MERCHANT; each person drawn from Zipf(s = {}) over the {} accounts with \
         the group's agreements, or with probability {} over the {} without \
         (their answers are empty lists): {persons} distinct persons",
        asks.len(),
        merchants.len(),
        zipf.exponent,
        members.len(),
        zipf.empty_share,
        others.len(),
    );
    Ok(Pool { asks, description })
}
