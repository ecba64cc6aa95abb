//! Bulk loading and export through the store API, on every configured backend: the same records
//! get the same outcomes on SQLite and PostgreSQL.

use agreements_domain::ids::{
    AgreementNo, AppId, CustomerId, ExternalAgreementNo, GroupId, LogonId, OpenId, PartnerId,
    PersonalProductCode, PrincipalId, ProductCode, SignScene, UserId,
};
use agreements_domain::{
    Agreement, AgreementStatus, Contract, EntityStatus, Merchant, PrincipalType, ThirdPartyType,
};
use agreements_protocol::{Method, SignType};
use agreements_store::test_support::{TestBackend, TestDatabase, backends};
use agreements_store::{
    AccountRecord, AppKey, AppRecord, AppStatus, Kind, LoadOptions, LogonIdRecord, NewGroup,
    OpenIdRecord, Outcome, ProductRecord, Record, Rejection, Store,
};

const M1: &str = "2088000000000001";
const U1: &str = "2088100000000001";
const U2: &str = "2088100000000002";
const APP: &str = "2021000000000001";

fn group(id: &str) -> Record {
    Record::Group(NewGroup {
        group_id: GroupId::parse(id).unwrap(),
        name: format!("group {id}"),
    })
}

fn merchant(id: &str, group: Option<&str>) -> Record {
    Record::Merchant(Merchant {
        partner_id: PartnerId::parse(id).unwrap(),
        name: "商户\tone".into(),
        status: EntityStatus::Normal,
        group_id: group.map(|g| GroupId::parse(g).unwrap()),
    })
}

fn account(user: &str, person: &str) -> Record {
    Record::Account(AccountRecord {
        user_id: UserId::parse(user).unwrap(),
        customer_id: CustomerId::parse(person).unwrap(),
        status: EntityStatus::Normal,
    })
}

fn agreement(no: &str, principal_type: PrincipalType, principal: &str, user: &str) -> Agreement {
    Agreement {
        agreement_no: AgreementNo::parse(no).unwrap(),
        partner_id: PartnerId::parse(M1).unwrap(),
        sign_app_id: AppId::parse(APP).unwrap(),
        principal_type,
        principal_id: PrincipalId::parse(principal).unwrap(),
        alipay_user_id: UserId::parse(user).unwrap(),
        personal_product_code: PersonalProductCode::parse("GENERAL_WITHHOLDING_P").unwrap(),
        product_code: ProductCode::parse("GENERAL_WITHHOLDING").unwrap(),
        sign_scene: SignScene::parse("DEFAULT|DEFAULT").unwrap(),
        third_party_type: ThirdPartyType::Partner,
        external_agreement_no: None,
        external_logon_id: Some("user\\name\nnext".into()),
        status: AgreementStatus::Normal,
        sign_time: 1_600_000_000,
        valid_time: 1_600_000_000,
        invalid_time: 4_000_000_000,
        unsign_time: None,
    }
}

fn with_external(mut a: Agreement, external: &str) -> Agreement {
    a.external_agreement_no = Some(ExternalAgreementNo::parse(external).unwrap());
    a
}

fn rejected(outcome: &Outcome) -> (&'static str, &str) {
    match outcome {
        Outcome::Rejected { field, reason } => (field, reason.as_str()),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The entities every agreement below refers to.
fn entities() -> Vec<(Kind, Vec<Record>)> {
    vec![
        (Kind::Group, vec![group("GROUP-A")]),
        (Kind::Merchant, vec![merchant(M1, Some("GROUP-A"))]),
        (
            Kind::Product,
            vec![Record::Product(ProductRecord {
                personal_product_code: PersonalProductCode::parse("GENERAL_WITHHOLDING_P").unwrap(),
                name: "General".into(),
                principal_type: agreements_domain::PrincipalType::Card,
                product_codes: vec![ProductCode::parse("GENERAL_WITHHOLDING").unwrap()],
            })],
        ),
        (
            Kind::Contract,
            vec![Record::Contract(Contract {
                partner_id: PartnerId::parse(M1).unwrap(),
                product_code: ProductCode::parse("GENERAL_WITHHOLDING").unwrap(),
                status: EntityStatus::Normal,
                valid_from: 0,
                valid_to: 4_000_000_000,
            })],
        ),
        (
            Kind::App,
            vec![Record::App(AppRecord {
                app_id: AppId::parse(APP).unwrap(),
                partner_id: PartnerId::parse(M1).unwrap(),
                name: "app".into(),
                status: AppStatus::Online,
                notify_url: Some("https://example.com/notify".into()),
                keys: vec![AppKey {
                    sign_type: SignType::Rsa2,
                    public_key: "KEY".into(),
                }],
                methods: vec![Method::AgreementQuery, Method::AgreementBatchQuery],
            })],
        ),
        (Kind::Account, vec![account(U1, U1), account(U2, U1)]),
        (
            Kind::LogonId,
            vec![Record::LogonId(LogonIdRecord {
                logon_id: LogonId::parse("13800000001").unwrap(),
                user_id: UserId::parse(U1).unwrap(),
            })],
        ),
        (
            Kind::OpenId,
            vec![Record::OpenId(OpenIdRecord {
                app_id: AppId::parse(APP).unwrap(),
                open_id: OpenId::parse("open-1").unwrap(),
                user_id: UserId::parse(U1).unwrap(),
            })],
        ),
    ]
}

#[tokio::test]
async fn loading_classifies_every_record_the_same_on_every_backend() {
    for backend in backends() {
        let db = TestDatabase::new(&backend).await.unwrap();
        let store = Store::open(db.location()).await.unwrap();
        let mut loader = store.loader(LoadOptions::default()).await.unwrap();

        for (kind, records) in entities() {
            let outcomes = loader.load(kind, &records).await.unwrap();
            assert!(
                outcomes.iter().all(|o| *o == Outcome::Inserted),
                "{backend:?} {kind}: {outcomes:?}"
            );
        }

        // Missing references, a taken unique value, a repeated key.
        let outcomes = loader
            .load(
                Kind::Merchant,
                &[merchant("2088000000000002", Some("NO-SUCH-GROUP"))],
            )
            .await
            .unwrap();
        let (field, reason) = rejected(&outcomes[0]);
        assert_eq!(field, "group_id");
        assert!(
            reason.contains("no merchant group NO-SUCH-GROUP"),
            "{reason}"
        );
        let outcomes = loader
            .load(
                Kind::OpenId,
                &[Record::OpenId(OpenIdRecord {
                    app_id: AppId::parse(APP).unwrap(),
                    open_id: OpenId::parse("open-other").unwrap(),
                    user_id: UserId::parse(U1).unwrap(),
                })],
            )
            .await
            .unwrap();
        let (field, reason) = rejected(&outcomes[0]);
        assert_eq!(field, "user_id");
        assert!(
            reason.contains("already used by the record with key"),
            "{reason}"
        );

        let batch: Vec<Record> = vec![
            Record::Agreement(agreement("A1", PrincipalType::Card, U1, U1)),
            Record::Agreement(agreement("A2", PrincipalType::Customer, U1, U2)),
            Record::Agreement(agreement("A3", PrincipalType::Customer, U2, U2)),
            Record::Agreement(agreement(
                "A4",
                PrincipalType::Card,
                "2088100000000009",
                "2088100000000009",
            )),
            Record::Agreement(agreement("A1", PrincipalType::Card, U1, U1)),
            Record::Agreement(with_external(
                agreement("A5", PrincipalType::Card, U1, U1),
                "EXT1",
            )),
            Record::Agreement(with_external(
                agreement("A6", PrincipalType::Card, U1, U1),
                "EXT1",
            )),
        ];
        let outcomes = loader.load(Kind::Agreement, &batch).await.unwrap();
        assert_eq!(outcomes[0], Outcome::Inserted, "{backend:?}");
        assert_eq!(outcomes[1], Outcome::Inserted, "{backend:?}");
        let (field, reason) = rejected(&outcomes[2]);
        assert_eq!(field, "principal_id");
        assert!(reason.contains(U1), "{reason}");
        let (field, reason) = rejected(&outcomes[3]);
        assert_eq!(field, "alipay_user_id");
        assert!(reason.contains("no account 2088100000000009"), "{reason}");
        assert_eq!(outcomes[4], Outcome::Duplicate { first: 0 });
        assert_eq!(outcomes[5], Outcome::Inserted);
        let (field, reason) = rejected(&outcomes[6]);
        assert_eq!(field, "external_agreement_no");
        assert!(reason.contains("A5"), "{reason}");

        // Loading the same again changes nothing and says so.
        for (kind, records) in entities() {
            let outcomes = loader.load(kind, &records).await.unwrap();
            assert!(
                outcomes.iter().all(|o| *o == Outcome::Unchanged),
                "{backend:?} {kind}: {outcomes:?}"
            );
        }
        let outcomes = loader.load(Kind::Agreement, &batch[..2]).await.unwrap();
        assert_eq!(outcomes, [Outcome::Unchanged, Outcome::Unchanged]);

        // Other content under a stored key: a conflict, unless updating.
        let mut stopped = agreement("A1", PrincipalType::Card, U1, U1);
        stopped.status = AgreementStatus::Stop;
        let outcomes = loader
            .load(Kind::Agreement, &[Record::Agreement(stopped.clone())])
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            [Outcome::Conflict {
                fields: vec!["status"]
            }]
        );
        let mut renamed = entities()[4].1.clone();
        if let Record::App(app) = &mut renamed[0] {
            app.methods.pop();
        }
        let outcomes = loader.load(Kind::App, &renamed).await.unwrap();
        assert_eq!(
            outcomes,
            [Outcome::Conflict {
                fields: vec!["methods"]
            }]
        );
        loader.finish().await.unwrap();
        // PostgreSQL: a load ends by analyzing what it loaded, so the planner knows the tables.
        if let Some(rows) = db.planner_rows("agreements").await.unwrap() {
            assert!(
                rows >= 1.0,
                "{backend:?}: agreements estimated at {rows} rows"
            );
        }

        let mut updater = store
            .loader(LoadOptions {
                update: true,
                dry_run: false,
            })
            .await
            .unwrap();
        let outcomes = updater
            .load(Kind::Agreement, &[Record::Agreement(stopped.clone())])
            .await
            .unwrap();
        assert_eq!(outcomes, [Outcome::Updated]);
        let outcomes = updater.load(Kind::App, &renamed).await.unwrap();
        assert_eq!(outcomes, [Outcome::Updated]);
        // History: imported once (the identical re-import and the refused conflict wrote
        // nothing), then overwritten.
        let events = store
            .history(&AgreementNo::parse("A1").unwrap())
            .await
            .unwrap();
        let summary: Vec<(i64, &str, Option<&str>, &str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e.seq,
                    e.kind.as_str(),
                    e.old_status.map(AgreementStatus::as_str),
                    e.new_status.as_str(),
                    e.actor.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (1, "IMPORT", None, "NORMAL", "import"),
                (2, "UPDATE", Some("NORMAL"), "STOP", "import")
            ],
            "{backend:?}"
        );
        updater.finish().await.unwrap();
        let app = store
            .app(&AppId::parse(APP).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(app.methods, [Method::AgreementQuery]);

        // A dry run checks against the database and writes nothing.
        let mut dry = store
            .loader(LoadOptions {
                update: false,
                dry_run: true,
            })
            .await
            .unwrap();
        let outcomes = dry
            .load(
                Kind::Account,
                &[account("2088100000000003", "2088100000000003")],
            )
            .await
            .unwrap();
        assert_eq!(outcomes, [Outcome::Inserted]);
        let outcomes = dry
            .load(
                Kind::Agreement,
                &[Record::Agreement(agreement(
                    "A7",
                    PrincipalType::Card,
                    "2088100000000003",
                    "2088100000000003",
                ))],
            )
            .await
            .unwrap();
        assert_eq!(outcomes, [Outcome::Inserted], "{backend:?}");
        dry.finish().await.unwrap();
        let app_id = AppId::parse(APP).unwrap();
        assert!(
            store
                .agreement_by_no(&AgreementNo::parse("A7").unwrap(), &app_id)
                .await
                .unwrap()
                .is_none()
        );

        // Export: every stored record, in key order, page by page, from one snapshot.
        let mut exporter = store.exporter().await.unwrap();
        let mut exported = Vec::new();
        let mut after: Option<Record> = None;
        loop {
            let page = exporter
                .page(Kind::Agreement, after.as_ref(), 2)
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().cloned();
            exported.extend(page);
        }
        let numbers: Vec<String> = exported
            .iter()
            .map(|r| match r {
                Record::Agreement(a) => a.agreement_no.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(numbers, ["A1", "A2", "A5"], "{backend:?}");
        assert_eq!(exported[0], Record::Agreement(stopped));
        let apps = exporter.page(Kind::App, None, 10).await.unwrap();
        assert_eq!(apps, renamed);
        let merchants = exporter.page(Kind::Merchant, None, 10).await.unwrap();
        assert_eq!(merchants, [merchant(M1, Some("GROUP-A"))]);
        exporter.finish().await.unwrap();
    }
}

/// The rejection of row `row` of `kind` in `rejections`.
fn rejection_of(rejections: &[Rejection], kind: Kind, row: usize) -> &Outcome {
    &rejections
        .iter()
        .find(|r| r.kind == kind && r.row == row)
        .unwrap_or_else(|| panic!("row {row} of {kind} was not rejected: {rejections:?}"))
        .outcome
}

/// Asserts which of the agreements `kept` names (number, whether stored) are stored.
async fn assert_agreements_stored(store: &Store, backend: &TestBackend, kept: &[(&str, bool)]) {
    let app_id = AppId::parse(APP).unwrap();
    for &(no, kept) in kept {
        let found = store
            .agreement_by_no(&AgreementNo::parse(no).unwrap(), &app_id)
            .await
            .unwrap();
        assert_eq!(found.is_some(), kept, "{backend:?} {no}");
    }
}

#[tokio::test]
async fn a_fresh_load_checks_every_rule_in_bulk_and_is_one_unit() {
    for backend in backends() {
        let db = TestDatabase::new(&backend).await.unwrap();
        let store = Store::open(db.location()).await.unwrap();

        // Dropped before it finishes: nothing of it stays, the indexes included.
        let mut abandoned = store.fresh_loader(LoadOptions::default()).await.unwrap();
        for (kind, records) in entities() {
            abandoned.load(kind, &records).await.unwrap();
        }
        drop(abandoned);
        assert_eq!(
            store.first_stored_kind().await.unwrap(),
            None,
            "{backend:?}"
        );

        let mut loader = store.fresh_loader(LoadOptions::default()).await.unwrap();
        for (kind, records) in entities() {
            let outcomes = loader.load(kind, &records).await.unwrap();
            let expected = if matches!(
                kind,
                Kind::Account | Kind::LogonId | Kind::OpenId | Kind::Agreement
            ) {
                Outcome::Pending
            } else {
                Outcome::Inserted
            };
            assert!(
                outcomes.iter().all(|o| *o == expected),
                "{backend:?} {kind}: {outcomes:?}"
            );
        }
        // A second batch of open ids: a repeated key and a taken (app, account) pair.
        let open_id = |open: &str, user: &str| {
            Record::OpenId(OpenIdRecord {
                app_id: AppId::parse(APP).unwrap(),
                open_id: OpenId::parse(open).unwrap(),
                user_id: UserId::parse(user).unwrap(),
            })
        };
        loader
            .load(
                Kind::OpenId,
                &[
                    open_id("open-1", U2),
                    open_id("open-0", U1),
                    open_id("open-2", U2),
                ],
            )
            .await
            .unwrap();
        // Agreements over two batches; row numbers run on across them.
        let first: Vec<Record> = vec![
            Record::Agreement(agreement("A1", PrincipalType::Card, U1, U1)),
            Record::Agreement(agreement("A2", PrincipalType::Customer, U1, U2)),
            Record::Agreement(agreement("A3", PrincipalType::Customer, U2, U2)),
        ];
        let second: Vec<Record> = vec![
            Record::Agreement(agreement(
                "A4",
                PrincipalType::Card,
                "2088100000000009",
                "2088100000000009",
            )),
            Record::Agreement(agreement("A1", PrincipalType::Card, U2, U2)),
            Record::Agreement(with_external(
                agreement("A6", PrincipalType::Card, U1, U1),
                "EXT1",
            )),
            Record::Agreement(with_external(
                agreement("A5", PrincipalType::Card, U1, U1),
                "EXT1",
            )),
        ];
        loader.load(Kind::Agreement, &first).await.unwrap();
        loader.load(Kind::Agreement, &second).await.unwrap();
        let rejections = loader.finish().await.unwrap();
        assert_eq!(rejections.len(), 6, "{backend:?}: {rejections:?}");

        // Open ids: row 0 (open-1) is the first batch's; row 1 repeats its key; row 2
        // (open-0) holds the same (app, account) pair with a smaller key, and keeps it.
        let (field, reason) = rejected(rejection_of(&rejections, Kind::OpenId, 0));
        assert_eq!(field, "user_id", "{backend:?}");
        assert!(reason.contains(&format!("{APP} open-0")), "{reason}");
        assert_eq!(
            *rejection_of(&rejections, Kind::OpenId, 1),
            Outcome::Duplicate { first: 0 },
            "{backend:?}"
        );

        let (field, reason) = rejected(rejection_of(&rejections, Kind::Agreement, 2));
        assert_eq!(field, "principal_id", "{backend:?}");
        assert!(reason.contains(U1), "{reason}");
        let (field, reason) = rejected(rejection_of(&rejections, Kind::Agreement, 3));
        assert_eq!(field, "alipay_user_id");
        assert!(reason.contains("no account 2088100000000009"), "{reason}");
        assert_eq!(
            *rejection_of(&rejections, Kind::Agreement, 4),
            Outcome::Duplicate { first: 0 },
            "{backend:?}"
        );
        // The smaller key keeps a unique value, as within a batch of the per-batch path.
        let (field, reason) = rejected(rejection_of(&rejections, Kind::Agreement, 5));
        assert_eq!(field, "external_agreement_no", "{backend:?}");
        assert!(reason.contains("A5"), "{reason}");
        let a6 = rejections
            .iter()
            .find(|r| r.kind == Kind::Agreement && r.row == 5)
            .unwrap();
        assert_eq!(a6.key, [agreements_store::schema::Cell::Text("A6".into())]);

        // What stayed is what the per-batch path keeps, with an import event each, and the
        // indexes and constraints are back: a second A5 is refused by the database.
        let app_id = AppId::parse(APP).unwrap();
        let kept = [
            ("A1", true),
            ("A2", true),
            ("A3", false),
            ("A5", true),
            ("A6", false),
        ];
        assert_agreements_stored(&store, &backend, &kept).await;
        let a1 = store
            .agreement_by_no(&AgreementNo::parse("A1").unwrap(), &app_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            a1.agreement.principal_id.as_str(),
            U1,
            "the first A1 is kept"
        );
        let history = store
            .history(&AgreementNo::parse("A2").unwrap())
            .await
            .unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].kind.as_str(), "IMPORT");
        let mut batches = store.loader(LoadOptions::default()).await.unwrap();
        let outcomes = batches
            .load(
                Kind::Agreement,
                &[Record::Agreement(with_external(
                    agreement("A9", PrincipalType::Card, U1, U1),
                    "EXT1",
                ))],
            )
            .await
            .unwrap();
        let (field, _) = rejected(&outcomes[0]);
        assert_eq!(field, "external_agreement_no", "{backend:?}");
        batches.finish().await.unwrap();

        // A database with load data is refused.
        let refused = store
            .fresh_loader(LoadOptions::default())
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("already holds groups"),
            "{backend:?}: {refused}"
        );
    }
}

#[tokio::test]
async fn a_fresh_dry_run_checks_everything_and_keeps_nothing() {
    for backend in backends() {
        let db = TestDatabase::new(&backend).await.unwrap();
        let store = Store::open(db.location()).await.unwrap();
        let mut dry = store
            .fresh_loader(LoadOptions {
                update: false,
                dry_run: true,
            })
            .await
            .unwrap();
        for (kind, records) in entities() {
            dry.load(kind, &records).await.unwrap();
        }
        dry.load(
            Kind::Agreement,
            &[Record::Agreement(agreement(
                "A4",
                PrincipalType::Card,
                "2088100000000009",
                "2088100000000009",
            ))],
        )
        .await
        .unwrap();
        let rejections = dry.finish().await.unwrap();
        assert_eq!(rejections.len(), 1, "{backend:?}: {rejections:?}");
        assert_eq!(
            store.first_stored_kind().await.unwrap(),
            None,
            "{backend:?}"
        );
        // And the real load afterwards finds the indexes where they were.
        let mut loader = store.fresh_loader(LoadOptions::default()).await.unwrap();
        for (kind, records) in entities() {
            loader.load(kind, &records).await.unwrap();
        }
        assert_eq!(loader.finish().await.unwrap(), [], "{backend:?}");
        assert_eq!(
            store.first_stored_kind().await.unwrap(),
            Some(Kind::Group),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn a_fresh_load_checks_rows_naming_accounts_whatever_order_the_accounts_come_in() {
    const U3: &str = "2088100000000003";
    const U4: &str = "2088100000000004";
    for backend in backends() {
        let db = TestDatabase::new(&backend).await.unwrap();
        let store = Store::open(db.location()).await.unwrap();
        let mut loader = store.fresh_loader(LoadOptions::default()).await.unwrap();
        for (kind, records) in entities() {
            loader.load(kind, &records).await.unwrap();
        }
        // A logon id naming an account staged after it.
        let early = Record::LogonId(LogonIdRecord {
            logon_id: LogonId::parse("13800000004").unwrap(),
            user_id: UserId::parse(U4).unwrap(),
        });
        loader.load(Kind::LogonId, &[early]).await.unwrap();
        // U3 twice, with two persons: its first row is the one written, and a CUSTOMER agreement
        // is with the first row's person only (every other agreement names an account staged
        // before it, so that only this rule can refuse B2).
        loader
            .load(
                Kind::Account,
                &[account(U3, U3), account(U3, U2), account(U4, U4)],
            )
            .await
            .unwrap();
        let agreements = [
            agreement("B0", PrincipalType::Card, U4, U4),
            agreement("B1", PrincipalType::Card, U3, U3),
            agreement("B2", PrincipalType::Customer, U2, U3),
            agreement("B3", PrincipalType::Customer, U1, U2),
        ];
        loader
            .load(Kind::Agreement, &agreements.map(Record::Agreement))
            .await
            .unwrap();
        let rejections = loader.finish().await.unwrap();
        assert_eq!(rejections.len(), 2, "{backend:?}: {rejections:?}");
        // Accounts' rows run on from entities()' two.
        assert_eq!(
            *rejection_of(&rejections, Kind::Account, 3),
            Outcome::Duplicate { first: 2 },
            "{backend:?}"
        );
        let (field, reason) = rejected(rejection_of(&rejections, Kind::Agreement, 2));
        assert_eq!(field, "principal_id", "{backend:?}");
        assert!(reason.contains(U3), "{backend:?}: {reason}");

        let kept = [("B0", true), ("B1", true), ("B2", false), ("B3", true)];
        assert_agreements_stored(&store, &backend, &kept).await;
        let early = store
            .account_by_logon_id(&LogonId::parse("13800000004").unwrap())
            .await
            .unwrap();
        assert_eq!(early.map(|a| a.user_id.to_string()), Some(U4.to_owned()));
    }
}

/// The journal mode the SQLite file at `path` is in, as a new connection finds it.
fn journal_mode(path: &str) -> String {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_fresh_sqlite_load_writes_through_a_rollback_journal_when_alone_and_leaves_wal_mode() {
    let db = TestDatabase::new(&TestBackend::Sqlite).await.unwrap();
    let path = db.location();
    let (wal, journal) = (format!("{path}-wal"), format!("{path}-journal"));
    let exists = |file: &str| std::path::Path::new(file).exists();
    let store = Store::open(path).await.unwrap();
    assert_eq!(journal_mode(path), "wal");

    // Alone with the file: the load goes through a rollback journal, not the WAL, whether it is
    // abandoned, a dry run, or finished; WAL mode is back after each.
    for (dry_run, finished) in [(false, false), (true, true), (false, true)] {
        let mut loader = store
            .fresh_loader(LoadOptions {
                update: false,
                dry_run,
            })
            .await
            .unwrap();
        for (kind, records) in entities() {
            loader.load(kind, &records).await.unwrap();
        }
        assert!(exists(&journal), "dry run {dry_run}: no rollback journal");
        assert!(!exists(&wal), "dry run {dry_run}: the WAL is still there");
        if finished {
            assert_eq!(loader.finish().await.unwrap(), []);
        } else {
            drop(loader);
        }
        assert_eq!(journal_mode(path), "wal", "dry run {dry_run}");
        assert!(!exists(&journal), "dry run {dry_run}: the journal stayed");
        let stored = store.first_stored_kind().await.unwrap();
        assert_eq!(stored, (finished && !dry_run).then_some(Kind::Group));
    }

    // Another connection has the file open: the load goes through the WAL, as it must not wait.
    let db = TestDatabase::new(&TestBackend::Sqlite).await.unwrap();
    let path = db.location();
    let store = Store::open(path).await.unwrap();
    let other = rusqlite::Connection::open(path).unwrap();
    let _: i64 = other
        .query_row("SELECT count(*) FROM merchant_groups", [], |row| row.get(0))
        .unwrap();
    let mut loader = store.fresh_loader(LoadOptions::default()).await.unwrap();
    for (kind, records) in entities() {
        loader.load(kind, &records).await.unwrap();
    }
    assert!(exists(&format!("{path}-wal")));
    assert_eq!(loader.finish().await.unwrap(), []);
    let groups: i64 = other
        .query_row("SELECT count(*) FROM merchant_groups", [], |row| row.get(0))
        .unwrap();
    assert_eq!(groups, 1);
    assert_eq!(journal_mode(path), "wal");
}
