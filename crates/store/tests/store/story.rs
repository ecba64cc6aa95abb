//! One story through the store API on a fresh database: migrations, the demo world, every
//! lookup the gateway makes, and conflicts.

use agreements_domain::batch_query::UserLocator;
use agreements_domain::ids::{
    AppId, GroupId, LogonId, OpenId, PartnerId, PersonalProductCode, ProductCode, SignScene, UserId,
};
use agreements_domain::{Caller, ThirdPartyType};
use agreements_protocol::Method;
use agreements_protocol::timestamp::parse_beijing;
use agreements_store::test_support::{TestBackend, TestDatabase, backends};
use agreements_store::{AgreementFilter, AppStatus, MIGRATIONS, Store, StoreError, demo};

fn now() -> i64 {
    parse_beijing("2024-05-20 13:14:15").unwrap()
}

async fn world(backend: &TestBackend) -> (TestDatabase, Store) {
    let db = TestDatabase::new(backend).await.unwrap();
    let store = Store::open(db.location()).await.unwrap();
    assert_eq!(
        store.backend(),
        if *backend == TestBackend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    demo::load(&store, "PUBLIC-KEY-B64").await.unwrap();
    (db, store)
}

async fn numbers(
    store: &Store,
    user: &str,
    third_party_type: ThirdPartyType,
    scene: Option<&str>,
) -> Vec<String> {
    let app = AppId::parse(demo::APP_ID).unwrap();
    let user = UserLocator::UserId(UserId::parse(user).unwrap());
    let caller = Caller {
        merchant: PartnerId::parse(demo::MERCHANT_VIDEO).unwrap(),
        group: Some(GroupId::parse(demo::GROUP_ID).unwrap()),
    };
    let scope = caller.scope(third_party_type).unwrap();
    let ppc = PersonalProductCode::parse("GENERAL_WITHHOLDING_P").unwrap();
    let scene = scene.map(|s| SignScene::parse(s).unwrap());
    let filter = |person| AgreementFilter {
        person,
        personal_product_code: &ppc,
        scope: &scope,
        sign_scene: scene.as_ref(),
        product_code: None,
        now: now(),
        open_id_app: &app,
        include_cancelled: false,
    };
    let (person, found) = store
        .person_agreements(&user, &app, filter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(person), store.resolve_user(&user, &app).await.unwrap());
    found
        .into_iter()
        .map(|f| f.agreement.agreement_no.to_string())
        .collect()
}

#[tokio::test]
async fn migrations_apply_once_and_reopen_is_idempotent() {
    let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    for backend in backends() {
        let db = TestDatabase::new(&backend).await.unwrap();
        assert_eq!(
            Store::open(db.location())
                .await
                .unwrap()
                .applied_migrations()
                .await
                .unwrap(),
            versions
        );
        assert_eq!(
            Store::open(db.location())
                .await
                .unwrap()
                .applied_migrations()
                .await
                .unwrap(),
            versions
        );
    }
}

#[tokio::test]
async fn batch_query_lookups_follow_the_rules() {
    for backend in backends() {
        let (_db, store) = world(&backend).await;
        // CARD of the account and CUSTOMER of the person, in sign_time order; no TEMP? TEMP is kept.
        assert_eq!(
            numbers(&store, demo::USER_PRIMARY, ThirdPartyType::Partner, None).await,
            [
                "20231120000000000002",
                "20240102000000000003",
                "20245920000000000001"
            ]
        );
        assert_eq!(
            numbers(
                &store,
                demo::USER_PRIMARY,
                ThirdPartyType::Partner,
                Some("INDUSTRY|DIGITAL_MEDIA")
            )
            .await,
            ["20245920000000000001"]
        );
        // The second account sees the person's CUSTOMER agreement and its own CARD one.
        assert_eq!(
            numbers(&store, demo::USER_SECOND, ThirdPartyType::Partner, None).await,
            ["20230301000000000004", "20231120000000000002"]
        );
        // Group sharing.
        assert_eq!(
            numbers(&store, demo::USER_PRIMARY, ThirdPartyType::Merchant, None).await,
            ["20220815000000000005"]
        );
    }
}

#[tokio::test]
async fn users_resolve_by_id_logon_id_and_open_id_of_the_app() {
    for backend in backends() {
        let (_db, store) = world(&backend).await;
        let app = AppId::parse(demo::APP_ID).unwrap();
        let by_logon = store
            .resolve_user(
                &UserLocator::LogonId(LogonId::parse("ABX@alitest.com").unwrap()),
                &app,
            )
            .await
            .unwrap();
        assert_eq!(by_logon.unwrap().user_id.as_str(), demo::USER_PRIMARY);
        let second = store
            .resolve_user(
                &UserLocator::UserId(UserId::parse(demo::USER_SECOND).unwrap()),
                &app,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.customer_id.as_str(), demo::USER_PRIMARY);
        let open = OpenId::parse("074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5").unwrap();
        let by_open = store
            .resolve_user(&UserLocator::OpenId(open.clone()), &app)
            .await
            .unwrap();
        assert_eq!(by_open.unwrap().user_id.as_str(), demo::USER_OTHER);
        let other_app = AppId::parse("2021000000000999").unwrap();
        assert_eq!(
            store
                .resolve_user(&UserLocator::OpenId(open), &other_app)
                .await
                .unwrap(),
            None
        );
        let unknown = UserLocator::UserId(UserId::parse("2088999999999999").unwrap());
        assert_eq!(store.resolve_user(&unknown, &app).await.unwrap(), None);
    }
}

#[tokio::test]
async fn apps_products_and_contracts_round_trip() {
    for backend in backends() {
        let (_db, store) = world(&backend).await;
        let app_id = AppId::parse(demo::APP_ID).unwrap();
        let app = store.app(&app_id).await.unwrap().unwrap();
        assert_eq!(app.status, AppStatus::Online);
        assert_eq!(app.partner_id.as_str(), demo::MERCHANT_VIDEO);
        assert_eq!(app.keys.len(), 2);
        assert!(app.methods.contains(&Method::AgreementBatchQuery));
        assert_eq!(store.apps().await.unwrap().len(), 1);
        let unknown = AppId::parse("2021000000000999").unwrap();
        assert!(store.app(&unknown).await.unwrap().is_none());

        let product = store
            .product(&PersonalProductCode::parse("GENERAL_WITHHOLDING_P").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            product.product_codes,
            [ProductCode::parse("GENERAL_WITHHOLDING").unwrap()]
        );
        assert!(
            store
                .product(&PersonalProductCode::parse("NOPE_P").unwrap())
                .await
                .unwrap()
                .is_none()
        );

        let music = PartnerId::parse(demo::MERCHANT_MUSIC).unwrap();
        let codes = [
            ProductCode::parse("GENERAL_WITHHOLDING").unwrap(),
            ProductCode::parse("CYCLE_PAY_AUTH").unwrap(),
        ];
        let contracts = store
            .contracts(&music, &codes.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        assert_eq!(contracts.len(), 1);
        assert!(contracts[0].is_active(now()));
        let merchant = store.merchant(&music).await.unwrap().unwrap();
        assert_eq!(merchant.group_id.unwrap().as_str(), demo::GROUP_ID);
    }
}

#[tokio::test]
async fn duplicate_writes_are_conflicts() {
    for backend in backends() {
        let (_db, store) = world(&backend).await;
        let err = demo::load(&store, "KEY").await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    }
}
