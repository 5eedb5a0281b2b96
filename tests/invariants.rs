//! Invariants that no sequence of requests may break, checked with random sequences (proptest).
//!
//! Over HTTP: three users (the first is the admin), two devices each, and up to three connected
//! accounts each on the harness's stub instances, drive random sequences of every state-changing
//! route — register, login (right and wrong password), logout, connect (the whole OAuth round
//! trip), the token form, edit (activate/deactivate), switch (form and JSON), make default,
//! delete, the admin actions and session revocation — with hostile values mixed in (huge,
//! negative and non-numeric ids, NUL, invalid UTF-8 sent as raw `%FF%FE`, SQL and HTML
//! metacharacters, private and odd instance addresses, missing and duplicated fields, other
//! users' ids, wrong and duplicated CSRF tokens), and pairs of requests from one user's two
//! devices aimed at the same platform, one after the other or racing (`tokio::join!`). After
//! every step:
//!
//! - no response is a 5xx (the redirects followed and the pages read to prepare a step included);
//! - every user has at most one default platform, exactly one when they have an active platform,
//!   and the default is active;
//! - no session row points at a missing, inactive or another user's platform;
//! - at least one active administrator remains;
//! - a refused request (a 4xx, or a redirect to a page showing an error) changed no row (see
//!   [`Snapshot`] for what is compared and what a refusal may legitimately write).
//!
//! On the model level, without Rocket (`common/fixture.rs`), the default and admin invariants
//! hold for random orders of `Platform::{create, update, set_default, repair_default, delete}`
//! and `User::{set_role, set_active}`, each in a transaction under the user's lock as the
//! services run them, some pairs concurrently on two connections.
//!
//! `PROPTEST_CASES` sets the number of cases (32 over HTTP, 64 on the models),
//! `PROPTEST_RNG_SEED` replays a run (every failure prints its seed), `TETHER_INVARIANT_STEPS`
//! the longest sequence (12), `TETHER_INVARIANT_TRACE=1` prints every case's requests. Nothing is
//! written to the repository (no persistence file).

mod common;
#[path = "common/fixture.rs"]
mod fixture;

use std::fmt::Write as _;

use common::stub_instance::{Flavour, StubInstance};
use common::{encode, meta_csrf, Browser, Page, TestApp, PASSWORD};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use rocket::http::ContentType;
use tether::db::{query, DbConn, Timestamp};

// ---------------------------------------------------------------------------------------------
// Running a property
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    fn postgres_configured() -> bool {
        if std::env::var_os("TETHER_TEST_POSTGRES_URL").is_some() {
            return true;
        }
        assert!(
            std::env::var_os("TETHER_REQUIRE_POSTGRES").is_none(),
            "TETHER_REQUIRE_POSTGRES is set but TETHER_TEST_POSTGRES_URL is not"
        );
        false
    }
}

/// proptest's configuration from the environment, with tether's defaults where it is silent:
/// `cases`, a bounded shrink, no persistence file, and a fixed seed that a failure prints.
fn config(default_cases: u32) -> (Config, u64) {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        config.max_shrink_iters = 400;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_TIME").is_none() {
        config.max_shrink_time = 120_000;
    }
    config.failure_persistence = None;
    let seed = match config.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => rand::random(),
    };
    config.rng_seed = RngSeed::Fixed(seed);
    (config, seed)
}

/// How often a case that passed is replayed once a failure has been seen: races do not fail
/// every time, and without this proptest would shrink towards whatever happened to pass once.
const SHRINK_REPLAYS: usize = 4;

/// Runs `property` on every generated case, each on a fresh database; on failure panics with the
/// seed, the shrunk case (`render`ed one step a line) and what happened in its last run.
fn check<S, F, Fut>(
    name: &str,
    default_cases: u32,
    strategy: S,
    render: impl Fn(&S::Value) -> String,
    property: F,
) where
    S: Strategy,
    S::Value: Clone,
    F: Fn(S::Value) -> Fut,
    Fut: std::future::Future<Output = Result<(), TestCaseError>>,
{
    let (config, seed) = config(default_cases);
    let failed = std::cell::Cell::new(false);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |case| {
        let replays = if failed.get() { SHRINK_REPLAYS } else { 1 };
        for _ in 0..replays {
            // A runtime per run, as `rocket::async_test` gives each test: dropping a local
            // `Client` does not shut its Rocket down, so what it spawned at liftoff (the
            // background refresh loop, holding the pool) lives as long as the runtime.
            let runtime = rocket::tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            if let Err(e) = runtime.block_on(property(case.clone())) {
                failed.set(true);
                return Err(e);
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, case)) => panic!(
            "{name}: property failed (re-run with PROPTEST_RNG_SEED={seed}).\n\
             Minimal failing case:\n{}\n{reason}",
            render(&case)
        ),
        Err(TestError::Abort(reason)) => {
            panic!("{name}: aborted (PROPTEST_RNG_SEED={seed}): {reason}")
        }
    }
}

fn kind_of(stub: &StubInstance) -> &'static str {
    match stub.flavour() {
        Flavour::Mastodon43 => "mastodon",
        Flavour::Pixelfed => "pixelfed",
    }
}

fn render_case(case: &Case) -> String {
    let mut out = format!("platforms per user before step 0: {:?}\n", case.platforms);
    for (index, op) in case.steps.iter().enumerate() {
        let _ = writeln!(out, "  #{index} {op:?}");
    }
    out
}

fn render_steps<T: std::fmt::Debug>(steps: &[T]) -> String {
    let mut out = String::new();
    for (index, op) in steps.iter().enumerate() {
        let _ = writeln!(out, "  #{index} {op:?}");
    }
    out
}

fn max_steps() -> usize {
    std::env::var("TETHER_INVARIANT_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}

// ---------------------------------------------------------------------------------------------
// What a case is made of
// ---------------------------------------------------------------------------------------------

/// Registered at the start of every case, in this order: `user0` is the admin.
const USERS: usize = 3;
/// Device `2u` registered user `u`, device `2u + 1` logged in as them.
const DEVICES: usize = USERS * 2;

const NAMES: &[&str] = &["Main", "Work", "main", "Alt"];
const TYPES: &[&str] = &["mastodon", "pixelfed"];
/// Account names that are no stub's account.
const ACCOUNTS: &[&str] = &["@bob@127.0.0.1", "ALICE", "nobody"];
/// Tokens no stub issued, and the blank one (on edit: keep the stored token).
const TOKENS: &[&str] = &["tok-0123456789", ""];
/// What someone might type as an instance that is none of the stubs. Nothing here may reach a
/// real server: private and odd addresses are refused by tether's outbound client.
const BAD_INSTANCES: &[&str] = &[
    "http://127.0.0.1:1",
    "http://localhost",
    "http://169.254.169.254",
    "https://[::1]",
    "http://2130706433",
    "http://0x7f000001",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "https://user:pass@127.0.0.1",
    "http://127.0.0.1:8000/platforms",
];

/// The accounts a case can connect, on the harness's stub instances (`app.mastodon`,
/// `app.pixelfed`): 0 is the Mastodon stub's own account (the one its OAuth flow signs in), 1
/// another account there (token form only), 2 the Pixelfed stub's own account.
const STUBS: usize = 3;
const CHECKBOX: &[&str] = &["on", "off", "true", "false", "yes", "1", "0", ""];

/// Text that has broken web apps before.
const HOSTILE: &[&str] = &[
    "",
    " ",
    "\0",
    "a\0b",
    "' OR 1=1 --",
    "'; DROP TABLE users; --",
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "%",
    "_",
    "\\",
    "\u{202e}evil",
    "🦀 ß İ",
    "\r\nSet-Cookie: x=y",
    "9223372036854775807",
    "9223372036854775808",
    "-1",
    "0",
    "1e9",
    "abc",
    "maybe",
];

/// Already percent-encoded: bytes that are not UTF-8, broken escapes, NUL.
const RAW: &[&str] = &[
    "%FF%FE",
    "%C3%28",
    "%ED%A0%80",
    "%",
    "%G1",
    "%00",
    "a%00b",
    "%E2%82",
];

/// Path segments where an id belongs.
const ID_LITERALS: &[&str] = &[
    "0",
    "-1",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "abc",
    "1e9",
    "1.0",
    "0x1",
    "+1",
    "%00",
    "%FF%FE",
    "1%20OR%201=1",
    "%3Cscript%3E",
    "%D9%A1",
];

const ADMIN_ACTIONS: &[&str] = &[
    "activate",
    "deactivate",
    "promote",
    "demote",
    "end-sessions",
];
const BAD_ACTIONS: &[&str] = &[
    "Promote",
    "delete",
    "end_sessions",
    "%FF",
    "promote%00",
    "%2E%2E",
];

const USERNAMES: &[&str] = &[
    "USER0",
    "user1 ",
    "us",
    "user0\0",
    "' OR 1=1 --",
    "<b>x</b>",
    "new.user",
    "new-user",
];

/// A form field: a value, a raw (already encoded) value, absent, or sent twice.
#[derive(Clone, Debug)]
enum Field {
    Text(&'static str),
    Raw(&'static str),
    Missing,
    /// This field, then a hostile value under the same name.
    Twice(Box<Field>, &'static str),
    /// Stub `n`'s origin, its account's name, its kind, a token it issued (and has not revoked).
    Instance(usize),
    Account(usize),
    Kind(usize),
    Token(usize),
    /// 5000 characters.
    Long,
    /// The edited platform's stored value (a valid edit); a good value when connecting.
    Current,
}

#[derive(Clone, Debug)]
struct PlatformFields {
    name: Field,
    platform_type: Field,
    instance_url: Field,
    username: Field,
    access_token: Field,
    is_active: Field,
}

#[derive(Clone, Debug)]
enum Csrf {
    Good,
    Missing,
    Wrong,
    /// The right token, then a wrong one.
    GoodThenWrong,
    WrongThenGood,
    Raw(&'static str),
}

/// Whose record: the `nth` (modulo their count) of the `owner`-th user (modulo the user count),
/// the `nth` of the acting device's own user (platforms only), a missing id, or a literal path
/// segment.
#[derive(Clone, Debug)]
enum Ref {
    Of(usize, usize),
    Mine(usize),
    Missing,
    Literal(&'static str),
}

#[derive(Clone, Debug)]
enum UserRef {
    Nth(usize),
    Literal(&'static str),
}

#[derive(Clone, Debug)]
enum Password {
    Right,
    Wrong,
    Hostile(&'static str),
}

#[derive(Clone, Debug)]
enum JsonBody {
    /// `{"platform_id": <id>}`, the id unquoted (so a literal may make it invalid JSON).
    Id(Ref),
    Raw(&'static str),
}

const JSON_BODIES: &[&str] = &[
    r#"{"platform_id": "1"}"#,
    r#"{"platform_id": 1e9}"#,
    r#"{"platform_id": 1e400}"#,
    r#"{"platform_id": 9223372036854775807}"#,
    r#"{"platform_id": 9223372036854775808}"#,
    r#"{"platform_id": -1}"#,
    r#"{"platform_id": null}"#,
    r#"{"platform_id": [1]}"#,
    r#"{"platform_id": 1, "user_id": 2}"#,
    r#"{"platform_id": 1, "platform_id": 2}"#,
    r#"{"platform_id": "\u0000"}"#,
    r#"{}"#,
    r#"[]"#,
    r#"{"platform_id":"#,
    "\u{0}",
];

#[derive(Clone, Debug)]
enum ApiCsrf {
    Good,
    Missing,
    Wrong,
}

#[derive(Clone, Debug)]
enum ApiType {
    Json,
    Form,
    Text,
}

#[derive(Clone, Debug)]
enum NewName {
    /// An existing user's name.
    Taken(usize),
    Fresh(u8),
    Hostile(&'static str),
}

#[derive(Clone, Debug)]
enum Op {
    Register {
        device: usize,
        name: NewName,
    },
    Login {
        device: usize,
        user: UserRef,
        password: Password,
    },
    Logout {
        device: usize,
        csrf: Csrf,
    },
    /// "Connect with your instance": the whole OAuth round trip through a stub.
    Connect {
        device: usize,
        instance: Field,
        csrf: Csrf,
    },
    Create {
        device: usize,
        fields: PlatformFields,
        csrf: Csrf,
    },
    Edit {
        device: usize,
        platform: Ref,
        fields: PlatformFields,
        csrf: Csrf,
    },
    Switch {
        device: usize,
        platform: Ref,
        csrf: Csrf,
    },
    ApiSwitch {
        device: usize,
        body: JsonBody,
        csrf: ApiCsrf,
        content_type: ApiType,
    },
    MakeDefault {
        device: usize,
        platform: Ref,
        csrf: Csrf,
    },
    Delete {
        device: usize,
        platform: Ref,
        csrf: Csrf,
    },
    Admin {
        device: usize,
        user: UserRef,
        action: &'static str,
        csrf: Csrf,
    },
    Revoke {
        device: usize,
        session: Ref,
        csrf: Csrf,
    },
    /// A platform form whose body is sent as is: invalid UTF-8 in one field.
    RawForm {
        device: usize,
        platform: Option<Ref>,
        body: &'static str,
        csrf: Csrf,
    },
    /// Both at once, from two devices.
    Race(Box<Op>, Box<Op>),
}

#[derive(Clone, Debug)]
struct Case {
    /// How many platforms each user connects before the sequence starts.
    platforms: [usize; USERS],
    steps: Vec<Op>,
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn field(good: BoxedStrategy<Field>) -> BoxedStrategy<Field> {
    prop_oneof![
        8 => good.clone(),
        6 => Just(Field::Current),
        2 => select(HOSTILE).prop_map(Field::Text),
        1 => select(RAW).prop_map(Field::Raw),
        1 => Just(Field::Missing),
        1 => (good, select(HOSTILE)).prop_map(|(a, b)| Field::Twice(Box::new(a), b)),
        1 => Just(Field::Long),
    ]
    .boxed()
}

fn text(values: &'static [&'static str]) -> BoxedStrategy<Field> {
    select(values).prop_map(Field::Text).boxed()
}

fn stub_field(make: fn(usize) -> Field, others: &'static [&'static str]) -> BoxedStrategy<Field> {
    prop_oneof![3 => (0..STUBS).prop_map(make), 1 => text(others)].boxed()
}

fn fields() -> impl Strategy<Value = PlatformFields> {
    (
        field(text(NAMES)),
        field(stub_field(Field::Kind, TYPES)),
        field(stub_field(Field::Instance, BAD_INSTANCES)),
        field(stub_field(Field::Account, ACCOUNTS)),
        field(stub_field(Field::Token, TOKENS)),
        field(text(CHECKBOX)),
    )
        .prop_map(
            |(name, platform_type, instance_url, username, access_token, is_active)| {
                PlatformFields {
                    name,
                    platform_type,
                    instance_url,
                    username,
                    access_token,
                    is_active,
                }
            },
        )
}

/// Fields a form would accept (unless the name or account is taken): one stub's instance, kind,
/// account and token, or (editing) what is stored.
fn valid_fields() -> impl Strategy<Value = PlatformFields> {
    (
        prop_oneof![text(NAMES), Just(Field::Current)],
        proptest::option::of(0..STUBS),
        prop_oneof![Just(Field::Text("")), Just(Field::Current)],
        prop_oneof![
            Just(Field::Text("on")),
            Just(Field::Text("off")),
            Just(Field::Missing)
        ],
    )
        .prop_map(|(name, stub, keep_token, is_active)| match stub {
            Some(n) => PlatformFields {
                name,
                platform_type: Field::Kind(n),
                instance_url: Field::Instance(n),
                username: Field::Account(n),
                access_token: Field::Token(n),
                is_active,
            },
            None => PlatformFields {
                name,
                platform_type: Field::Current,
                instance_url: Field::Current,
                username: Field::Current,
                access_token: keep_token,
                is_active,
            },
        })
}

/// The edit that deactivates (or activates) a platform and changes nothing else.
fn toggle(active: bool) -> PlatformFields {
    PlatformFields {
        name: Field::Current,
        platform_type: Field::Current,
        instance_url: Field::Current,
        username: Field::Current,
        access_token: Field::Text(""),
        is_active: if active {
            Field::Text("on")
        } else {
            Field::Missing
        },
    }
}

fn csrf() -> impl Strategy<Value = Csrf> {
    prop_oneof![
        12 => Just(Csrf::Good),
        1 => Just(Csrf::Missing),
        1 => Just(Csrf::Wrong),
        1 => Just(Csrf::GoodThenWrong),
        1 => Just(Csrf::WrongThenGood),
        1 => select(RAW).prop_map(Csrf::Raw),
    ]
}

fn platform_ref() -> impl Strategy<Value = Ref> {
    prop_oneof![
        8 => (0..3usize).prop_map(Ref::Mine),
        5 => (0..USERS + 1, 0..3usize).prop_map(|(u, n)| Ref::Of(u, n)),
        1 => Just(Ref::Missing),
        2 => select(ID_LITERALS).prop_map(Ref::Literal),
    ]
}

fn user_ref() -> impl Strategy<Value = UserRef> {
    prop_oneof![
        8 => (0..USERS + 1).prop_map(UserRef::Nth),
        2 => select(ID_LITERALS).prop_map(UserRef::Literal),
    ]
}

fn login_name() -> impl Strategy<Value = UserRef> {
    prop_oneof![
        8 => (0..USERS + 1).prop_map(UserRef::Nth),
        2 => select(USERNAMES).prop_map(UserRef::Literal),
    ]
}

fn single(device: BoxedStrategy<usize>) -> BoxedStrategy<Op> {
    let d = || device.clone();
    prop_oneof![
        1 => (d(), prop_oneof![
            (0..USERS + 1).prop_map(NewName::Taken),
            (0..3u8).prop_map(NewName::Fresh),
            select(USERNAMES).prop_map(NewName::Hostile),
        ])
            .prop_map(|(device, name)| Op::Register { device, name }),
        2 => (d(), login_name(), prop_oneof![
            2 => Just(Password::Right),
            2 => Just(Password::Wrong),
            1 => select(HOSTILE).prop_map(Password::Hostile),
        ])
            .prop_map(|(device, user, password)| Op::Login { device, user, password }),
        1 => (d(), csrf()).prop_map(|(device, csrf)| Op::Logout { device, csrf }),
        3 => (d(), prop_oneof![
            6 => (0..STUBS).prop_map(Field::Instance),
            2 => text(BAD_INSTANCES),
            1 => text(HOSTILE),
            1 => select(RAW).prop_map(Field::Raw),
            1 => Just(Field::Missing),
        ], csrf())
            .prop_map(|(device, instance, csrf)| Op::Connect { device, instance, csrf }),
        4 => (d(), prop_oneof![fields(), valid_fields()], csrf())
            .prop_map(|(device, fields, csrf)| Op::Create { device, fields, csrf }),
        5 => (d(), platform_ref(), prop_oneof![
            2 => fields(),
            1 => valid_fields(),
            2 => any::<bool>().prop_map(toggle),
        ], csrf())
            .prop_map(|(device, platform, fields, csrf)| Op::Edit { device, platform, fields, csrf }),
        3 => (d(), platform_ref(), csrf())
            .prop_map(|(device, platform, csrf)| Op::Switch { device, platform, csrf }),
        3 => (d(), prop_oneof![
            4 => platform_ref().prop_map(JsonBody::Id),
            1 => select(JSON_BODIES).prop_map(JsonBody::Raw),
        ], prop_oneof![
            8 => Just(ApiCsrf::Good),
            1 => Just(ApiCsrf::Missing),
            1 => Just(ApiCsrf::Wrong),
        ], prop_oneof![
            8 => Just(ApiType::Json),
            1 => Just(ApiType::Form),
            1 => Just(ApiType::Text),
        ])
            .prop_map(|(device, body, csrf, content_type)| Op::ApiSwitch { device, body, csrf, content_type }),
        3 => (d(), platform_ref(), csrf())
            .prop_map(|(device, platform, csrf)| Op::MakeDefault { device, platform, csrf }),
        3 => (d(), platform_ref(), csrf())
            .prop_map(|(device, platform, csrf)| Op::Delete { device, platform, csrf }),
        3 => (d(), user_ref(), prop_oneof![
            6 => select(ADMIN_ACTIONS),
            1 => select(BAD_ACTIONS),
        ], csrf())
            .prop_map(|(device, user, action, csrf)| Op::Admin { device, user, action, csrf }),
        2 => (d(), prop_oneof![
            8 => (0..USERS + 1, 0..3usize).prop_map(|(u, n)| Ref::Of(u, n)),
            1 => Just(Ref::Missing),
            2 => select(ID_LITERALS).prop_map(Ref::Literal),
        ], csrf())
            .prop_map(|(device, session, csrf)| Op::Revoke { device, session, csrf }),
        1 => (d(), proptest::option::of(platform_ref()), select(RAW_FORMS), csrf())
            .prop_map(|(device, platform, body, csrf)| Op::RawForm { device, platform, body, csrf }),
    ]
    .boxed()
}

/// Raw platform-form bodies (a `csrf_token` field is appended).
const RAW_FORMS: &[&str] = &[
    "name=%FF%FE&platform_type=mastodon&instance_url=https%3A%2F%2Fa.example&username=a&access_token=t0123&is_active=on",
    "name=ok&platform_type=%FF&instance_url=https%3A%2F%2Fa.example&username=a&access_token=t0123",
    "name=ok&platform_type=mastodon&instance_url=%C3%28&username=%ED%A0%80&access_token=t0123",
    "name=ok&platform_type=mastodon&instance_url=https%3A%2F%2Fa.example&username=a&access_token=%FF&is_active=%FF",
    "%FF%FE=1&name=ok",
    "name&platform_type&&&=&",
    "name=a%00b&platform_type=mastodon%00&instance_url=https%3A%2F%2Fa.example%00&username=a&access_token=t",
    "name=%&is_active=on&is_active=off",
];

/// Two requests aimed at one platform of one user (or at two neighbours), from that user's two
/// devices: racing each other, or one after the other.
fn targeted_pair() -> impl Strategy<Value = Vec<Op>> {
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Delete,
        Switch,
        ApiSwitch,
        MakeDefault,
        Deactivate,
        Activate,
        /// Connect the stub behind the platform again (the setup connects stub `n` as the `n`th).
        Reconnect,
    }
    let kind = || {
        select(
            &[
                Kind::Delete,
                Kind::Switch,
                Kind::ApiSwitch,
                Kind::MakeDefault,
                Kind::Deactivate,
                Kind::Activate,
                Kind::Reconnect,
            ][..],
        )
    };
    let parts = (
        0..USERS,
        0..3usize,
        0..3usize,
        kind(),
        kind(),
        any::<bool>(),
    );
    parts.prop_map(|(user, a_nth, b_nth, a, b, racing)| {
        let build = |kind: Kind, device: usize, nth: usize| {
            let platform = Ref::Of(user, nth);
            match kind {
                Kind::Delete => Op::Delete {
                    device,
                    platform,
                    csrf: Csrf::Good,
                },
                Kind::Switch => Op::Switch {
                    device,
                    platform,
                    csrf: Csrf::Good,
                },
                Kind::ApiSwitch => Op::ApiSwitch {
                    device,
                    body: JsonBody::Id(platform),
                    csrf: ApiCsrf::Good,
                    content_type: ApiType::Json,
                },
                Kind::MakeDefault => Op::MakeDefault {
                    device,
                    platform,
                    csrf: Csrf::Good,
                },
                Kind::Reconnect => Op::Connect {
                    device,
                    instance: Field::Instance(nth),
                    csrf: Csrf::Good,
                },
                Kind::Deactivate | Kind::Activate => Op::Edit {
                    device,
                    platform,
                    fields: toggle(matches!(kind, Kind::Activate)),
                    csrf: Csrf::Good,
                },
            }
        };
        // Mostly the same platform; sometimes its neighbour (delete one, default the other).
        let b_nth = if b_nth == 2 { a_nth + 1 } else { a_nth };
        let (a, b) = (build(a, 2 * user, a_nth), build(b, 2 * user + 1, b_nth));
        if racing {
            vec![Op::Race(Box::new(a), Box::new(b))]
        } else {
            vec![a, b]
        }
    })
}

/// One step, or two aimed at the same platform.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let any_device = (0..DEVICES).boxed();
    let racing = (0..USERS)
        .prop_flat_map(|u| (single(Just(2 * u).boxed()), single(Just(2 * u + 1).boxed())))
        .prop_map(|(a, b)| Op::Race(Box::new(a), Box::new(b)));
    prop_oneof![
        10 => single(any_device).prop_map(|op| vec![op]),
        4 => targeted_pair(),
        2 => racing.prop_map(|op| vec![op]),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        [0..4usize, 0..4usize, 0..4usize],
        proptest::collection::vec(ops(), 1..=max_steps()),
    )
        .prop_map(|(platforms, steps)| {
            let mut steps: Vec<Op> = steps.into_iter().flatten().collect();
            steps.truncate(max_steps());
            Case { platforms, steps }
        })
}

// ---------------------------------------------------------------------------------------------
// The database as the invariants see it
// ---------------------------------------------------------------------------------------------

type UserRow = (i64, String, String, String, bool, String, Option<Timestamp>);
type PlatformRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    bool,
    bool,
    Vec<u8>,
    Timestamp,
    Timestamp,
);
/// A session of an active user, with `active_platform_id` replaced by the platform the session
/// works with (what `PlatformContext` would resolve), so a guard repairing a stale pointer is not
/// a change.
type SessionRow = (
    i64,
    i64,
    String,
    String,
    Timestamp,
    Timestamp,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// Every row a refused request must leave alone: users, platforms (their own columns, not the
/// stored copy of the instance's account, which the background refresh may update at any time),
/// and sessions. Left out, because a refused request may legitimately write them:
/// `login_throttle` and `audit_events` (every failed or throttled login is counted and logged),
/// the OAuth tables (a connect registers tether at the instance and keeps its state before the
/// instance can refuse), `user_sessions.last_seen_at` (touched by the session guard at most once a
/// minute), the stored `active_platform_id` (the platform guard repairs a stale choice on any
/// page, 4xx pages included; the platform the session resolves to is compared instead), and the
/// sessions of deactivated users (the session guard deletes them on sight).
#[derive(Debug, PartialEq)]
struct Snapshot {
    users: Vec<UserRow>,
    platforms: Vec<PlatformRow>,
    sessions: Vec<SessionRow>,
}

async fn snapshot(app: &TestApp) -> Snapshot {
    let mut db = app.db().await;
    let users: Vec<UserRow> = query(
        "SELECT id, username, email, role, is_active, password_hash, last_login_at
         FROM users ORDER BY id",
    )
    .fetch_all(&mut db)
    .await
    .expect("users");
    let platforms: Vec<PlatformRow> = query(
        "SELECT id, user_id, name, platform_type, instance_url, username, is_active, is_default,
                access_token_encrypted, created_at, updated_at
         FROM platform_connections ORDER BY id",
    )
    .fetch_all(&mut db)
    .await
    .expect("platforms");
    // The same shape, with the stored `active_platform_id` last until it is resolved.
    let raw: Vec<SessionRow> = query(
        "SELECT s.id, s.user_id, s.token_hash, s.csrf_token, s.created_at, s.expires_at,
                s.user_agent, s.ip, s.active_platform_id
         FROM user_sessions s JOIN users u ON u.id = s.user_id
         WHERE u.is_active ORDER BY s.id",
    )
    .fetch_all(&mut db)
    .await
    .expect("sessions");
    let sessions = raw
        .into_iter()
        .map(
            |(id, user, token, csrf, created, expires, agent, ip, chosen)| {
                let resolved = resolve_platform(&platforms, user, chosen);
                (id, user, token, csrf, created, expires, agent, ip, resolved)
            },
        )
        .collect();
    Snapshot {
        users,
        platforms,
        sessions,
    }
}

/// `PlatformContext`'s rule: the session's choice if it is the user's and active; else the
/// default; else the oldest active platform.
fn resolve_platform(platforms: &[PlatformRow], user: i64, chosen: Option<i64>) -> Option<i64> {
    let mut active: Vec<&PlatformRow> = platforms.iter().filter(|p| p.1 == user && p.6).collect();
    active.sort_by_key(|p| (p.9, p.0));
    chosen
        .and_then(|id| active.iter().find(|p| p.0 == id))
        .or_else(|| active.iter().find(|p| p.7))
        .or_else(|| active.first())
        .map(|p| p.0)
}

fn describe_changes(before: &Snapshot, after: &Snapshot) -> String {
    fn diff<T: std::fmt::Debug + PartialEq>(out: &mut String, table: &str, a: &[T], b: &[T]) {
        for row in a.iter().filter(|r| !b.contains(r)) {
            let _ = writeln!(out, "  {table} - {row:?}");
        }
        for row in b.iter().filter(|r| !a.contains(r)) {
            let _ = writeln!(out, "  {table} + {row:?}");
        }
    }
    let mut out = String::new();
    diff(&mut out, "users", &before.users, &after.users);
    diff(&mut out, "platforms", &before.platforms, &after.platforms);
    diff(&mut out, "sessions", &before.sessions, &after.sessions);
    out
}

/// The snapshot one row a line.
fn dump(snapshot: &Snapshot) -> String {
    let mut out = String::from("  users (id, name, email, role, active, hash, last login):\n");
    for (id, name, email, role, active, _, login) in &snapshot.users {
        let login = login.map(Timestamp::unix);
        let _ = writeln!(out, "    {id} {name:?} {email:?} {role} {active} {login:?}");
    }
    out.push_str("  platforms (id, user, name, type, instance, account, active, default):\n");
    for (id, user, name, kind, instance, account, active, default, ..) in &snapshot.platforms {
        let _ = writeln!(
            out,
            "    {id} {user} {name:?} {kind} {instance:?} {account:?} {active} {default}"
        );
    }
    out.push_str("  sessions of active users (id, user, resolved platform):\n");
    for (id, user, .., platform) in &snapshot.sessions {
        let _ = writeln!(out, "    {id} {user} {platform:?}");
    }
    out
}

/// The invariants, each its own test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Invariant {
    NoServerError,
    OneActiveDefault,
    SessionsOnOwnActivePlatforms,
    ActiveAdmin,
    RefusalsChangeNothing,
}

const MORE_THAN_ONE_DEFAULT: &str = "SELECT COUNT(*) FROM users u
     WHERE (SELECT COUNT(*) FROM platform_connections p
            WHERE p.user_id = u.id AND p.is_default) > 1";
const ACTIVE_BUT_NO_ACTIVE_DEFAULT: &str = "SELECT COUNT(*) FROM users u
     WHERE EXISTS (SELECT 1 FROM platform_connections p WHERE p.user_id = u.id AND p.is_active)
       AND NOT EXISTS (SELECT 1 FROM platform_connections p
                       WHERE p.user_id = u.id AND p.is_default AND p.is_active)";
const INACTIVE_DEFAULTS: &str =
    "SELECT COUNT(*) FROM platform_connections WHERE is_default AND NOT is_active";
const SESSIONS_ON_BAD_PLATFORMS: &str = "SELECT s.id, s.user_id, s.active_platform_id
     FROM user_sessions s
     WHERE s.active_platform_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM platform_connections p
                       WHERE p.id = s.active_platform_id AND p.user_id = s.user_id
                         AND p.is_active)";
const ACTIVE_ADMINS: &str = "SELECT COUNT(*) FROM users WHERE role = 'admin' AND is_active";

/// Runs the default and admin checks against any connection.
async fn default_and_admin_violations(
    db: &mut DbConn,
    invariant: Invariant,
) -> Result<Vec<String>, sqlx::Error> {
    async fn count(db: &mut DbConn, sql: &str) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) = query(sql).fetch_one(db).await?;
        Ok(n)
    }
    let mut problems = Vec::new();
    match invariant {
        Invariant::OneActiveDefault => {
            let n = count(db, MORE_THAN_ONE_DEFAULT).await?;
            if n > 0 {
                problems.push(format!("{n} user(s) have more than one default platform"));
            }
            let n = count(db, ACTIVE_BUT_NO_ACTIVE_DEFAULT).await?;
            if n > 0 {
                problems.push(format!(
                    "{n} user(s) have an active platform but no active default"
                ));
            }
            let n = count(db, INACTIVE_DEFAULTS).await?;
            if n > 0 {
                problems.push(format!("{n} inactive platform(s) are a default"));
            }
        }
        Invariant::SessionsOnOwnActivePlatforms => {
            let bad: Vec<(i64, i64, Option<i64>)> =
                query(SESSIONS_ON_BAD_PLATFORMS).fetch_all(db).await?;
            if !bad.is_empty() {
                problems.push(format!(
                    "session(s) point at a missing, inactive or foreign platform \
                     (session, user, active_platform_id): {bad:?}"
                ));
            }
        }
        Invariant::ActiveAdmin => {
            if count(db, ACTIVE_ADMINS).await? == 0 {
                problems.push("no active administrator is left".into());
            }
        }
        Invariant::NoServerError | Invariant::RefusalsChangeNothing => {}
    }
    Ok(problems)
}

// ---------------------------------------------------------------------------------------------
// Playing a case over HTTP
// ---------------------------------------------------------------------------------------------

/// A request ready to send: everything it needs (tokens, ids) was looked up beforehand.
#[derive(Debug)]
struct Prepared {
    device: usize,
    uri: String,
    content_type: ContentType,
    body: String,
    csrf_header: Option<String>,
    /// Connecting: when tether sends the browser to a stub's authorize page, approve there and
    /// follow the stub back to tether's callback.
    authorize: bool,
}

struct World<'a> {
    app: &'a TestApp,
    devices: Vec<Browser<'a>>,
    checks: &'static [Invariant],
    log: Vec<String>,
}

/// What a request got: its response and, for a redirect, the kind of flash message the page it
/// leads to shows (tether's flash cookie is encrypted, so the page is the only way to read it).
struct Outcome {
    page: Page,
    flash: Option<String>,
}

fn flash_on(page: &Page) -> Option<String> {
    let marker = "class=\"flash flash--";
    let start = page.body.find(marker)? + marker.len();
    let end = page.body[start..].find('"')? + start;
    Some(page.body[start..end].to_string())
}

impl Outcome {
    /// Refused: a 4xx, or a redirect to a page with an error message (switching to a deactivated
    /// platform, demoting the last admin, the login page after a lost session).
    fn refused(&self) -> bool {
        (400..500).contains(&self.page.status.code) || self.flash.as_deref() == Some("error")
    }
}

fn summary(page: &Page) -> String {
    match &page.location {
        Some(to) => format!("{} → {to}", page.status.code),
        None => page.status.code.to_string(),
    }
}

impl<'a> World<'a> {
    async fn new(
        app: &'a TestApp,
        platforms: &[usize; USERS],
        checks: &'static [Invariant],
    ) -> Result<World<'a>, TestCaseError> {
        let devices: Vec<Browser<'a>> = (0..DEVICES).map(|_| app.browser()).collect();
        for u in 0..USERS {
            let name = format!("user{u}");
            devices[2 * u].register(&name).await;
            let login = devices[2 * u + 1].login(&name, PASSWORD).await;
            if login.status.code != 303 {
                return Err(TestCaseError::fail(format!(
                    "setup: login {name}: {}",
                    login.status
                )));
            }
        }
        let mut world = World {
            app,
            devices,
            checks,
            log: Vec::new(),
        };
        for (u, count) in platforms.iter().enumerate() {
            for n in 0..*count {
                // Account `n` becomes user `u`'s `n`th platform: connected with OAuth when it is
                // a stub's own account, else with the token form.
                let connect = if n == 1 {
                    Op::Create {
                        device: 2 * u,
                        fields: PlatformFields {
                            name: Field::Text("Second"),
                            platform_type: Field::Kind(n),
                            instance_url: Field::Instance(n),
                            username: Field::Account(n),
                            access_token: Field::Token(n),
                            is_active: Field::Text("on"),
                        },
                        csrf: Csrf::Good,
                    }
                } else {
                    Op::Connect {
                        device: 2 * u,
                        instance: Field::Instance(n),
                        csrf: Csrf::Good,
                    }
                };
                let request = world.prepare(&connect).await?;
                let (page, trail) = world.send(&request).await;
                if page.location.as_deref() != Some("/dashboard") {
                    return Err(TestCaseError::fail(format!(
                        "setup: user{u} connecting account {n}: {} {trail}\n{}",
                        summary(&page),
                        page.body.chars().take(500).collect::<String>()
                    )));
                }
            }
        }
        Ok(world)
    }

    fn fail(&self, message: impl std::fmt::Display) -> TestCaseError {
        TestCaseError::fail(format!(
            "{message}\n\nWhat happened:\n{}",
            self.log.join("\n")
        ))
    }

    fn no_5xx(&mut self, what: &str, page: &Page) -> Result<(), TestCaseError> {
        if self.checks.contains(&Invariant::NoServerError) && page.status.code >= 500 {
            return Err(self.fail(format!(
                "{what} answered {}: {}",
                page.status,
                page.body.chars().take(300).collect::<String>()
            )));
        }
        Ok(())
    }

    /// The CSRF token a page would give this device (the session's, or the anonymous one).
    async fn csrf_of(&mut self, device: usize) -> Result<String, TestCaseError> {
        let page = self.devices[device].get("/account").await;
        self.no_5xx("GET /account", &page)?;
        if let Some(token) = meta_csrf(&page.body) {
            return Ok(token);
        }
        let page = self.devices[device].get("/login").await;
        self.no_5xx("GET /login", &page)?;
        Ok(meta_csrf(&page.body).unwrap_or_default())
    }

    async fn users(&self) -> Vec<(i64, String)> {
        let mut db = self.app.db().await;
        query("SELECT id, username FROM users ORDER BY id")
            .fetch_all(&mut db)
            .await
            .expect("users")
    }

    async fn nth_user(&self, k: usize) -> Option<(i64, String)> {
        let users = self.users().await;
        (!users.is_empty()).then(|| users[k % users.len()].clone())
    }

    async fn max_id(&self, table: &str) -> i64 {
        self.app
            .count(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"), vec![])
            .await
    }

    /// A platform id (or path segment) for `r`, as `device` would name it.
    async fn platform_segment(&mut self, device: usize, r: &Ref) -> Result<String, TestCaseError> {
        Ok(match r {
            Ref::Literal(s) => (*s).to_string(),
            Ref::Missing => (self.max_id("platform_connections").await + 1).to_string(),
            Ref::Of(..) | Ref::Mine(_) => match self.platform(device, r).await? {
                Some(p) => p.0.to_string(),
                None => (self.max_id("platform_connections").await + 1).to_string(),
            },
        })
    }

    /// `(id, name, type, instance, account)` of the platform `r` names, if it exists.
    async fn platform(
        &mut self,
        device: usize,
        r: &Ref,
    ) -> Result<Option<(i64, String, String, String, String)>, TestCaseError> {
        let mut db = self.app.db().await;
        let rows: Vec<(i64, String, String, String, String)> = match r {
            Ref::Of(owner, _) => {
                let Some((user_id, _)) = self.nth_user(*owner).await else {
                    return Ok(None);
                };
                query(
                    "SELECT id, name, platform_type, instance_url, username
                     FROM platform_connections WHERE user_id = $1 ORDER BY id",
                )
                .bind(user_id)
                .fetch_all(&mut db)
                .await
                .expect("platforms")
            }
            Ref::Mine(_) => {
                // Whoever this device is signed in as, its own list (oldest first).
                let page = self.devices[device].get("/api/platforms").await;
                self.no_5xx("GET /api/platforms", &page)?;
                if page.status.code != 200 {
                    return Ok(None);
                }
                let ids: Vec<i64> = page.json()["platforms"]
                    .as_array()
                    .map(|list| list.iter().filter_map(|p| p["id"].as_i64()).collect())
                    .unwrap_or_default();
                let mut rows = Vec::new();
                for id in ids {
                    let row: Option<(i64, String, String, String, String)> = query(
                        "SELECT id, name, platform_type, instance_url, username
                         FROM platform_connections WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&mut db)
                    .await
                    .expect("platform");
                    rows.extend(row);
                }
                rows
            }
            Ref::Missing | Ref::Literal(_) => return Ok(None),
        };
        let nth = match r {
            Ref::Of(_, nth) | Ref::Mine(nth) => *nth,
            _ => 0,
        };
        Ok((!rows.is_empty()).then(|| rows[nth % rows.len()].clone()))
    }

    async fn session_segment(&self, r: &Ref) -> String {
        match r {
            Ref::Literal(s) => (*s).to_string(),
            Ref::Missing | Ref::Mine(_) => (self.max_id("user_sessions").await + 1).to_string(),
            Ref::Of(owner, nth) => {
                let Some((user_id, _)) = self.nth_user(*owner).await else {
                    return "1".into();
                };
                let mut db = self.app.db().await;
                let rows: Vec<(i64,)> =
                    query("SELECT id FROM user_sessions WHERE user_id = $1 ORDER BY id")
                        .bind(user_id)
                        .fetch_all(&mut db)
                        .await
                        .expect("sessions");
                if rows.is_empty() {
                    (self.max_id("user_sessions").await + 1).to_string()
                } else {
                    rows[nth % rows.len()].0.to_string()
                }
            }
        }
    }

    async fn user_segment(&self, r: &UserRef) -> String {
        match r {
            UserRef::Literal(s) => (*s).to_string(),
            UserRef::Nth(k) => match self.nth_user(*k).await {
                Some((id, _)) => id.to_string(),
                None => "1".into(),
            },
        }
    }

    fn form_body(pairs: &[(&str, FieldValue)], csrf: &Csrf, token: &str) -> String {
        fn push(parts: &mut Vec<String>, key: &str, value: &FieldValue) {
            match value {
                FieldValue::Missing => {}
                FieldValue::Encoded(v) => parts.push(format!("{}={v}", encode(key))),
                FieldValue::Text(v) => parts.push(format!("{}={}", encode(key), encode(v))),
                FieldValue::Twice(a, b) => {
                    push(parts, key, a);
                    parts.push(format!("{}={}", encode(key), encode(b)));
                }
            }
        }
        let mut parts: Vec<String> = Vec::new();
        for (key, value) in pairs {
            push(&mut parts, key, value);
        }
        let wrong = "A".repeat(43);
        match csrf {
            Csrf::Good => parts.push(format!("csrf_token={}", encode(token))),
            Csrf::Missing => {}
            Csrf::Wrong => parts.push(format!("csrf_token={wrong}")),
            Csrf::GoodThenWrong => {
                parts.push(format!("csrf_token={}", encode(token)));
                parts.push(format!("csrf_token={wrong}"));
            }
            Csrf::WrongThenGood => {
                parts.push(format!("csrf_token={wrong}"));
                parts.push(format!("csrf_token={}", encode(token)));
            }
            Csrf::Raw(raw) => parts.push(format!("csrf_token={raw}")),
        }
        parts.join("&")
    }

    async fn platform_pairs(
        &mut self,
        device: usize,
        fields: &PlatformFields,
        editing: Option<&Ref>,
    ) -> Result<Vec<(&'static str, FieldValue)>, TestCaseError> {
        let current = match editing {
            Some(r) => self.platform(device, r).await?,
            None => None,
        };
        let c = current.as_ref();
        // Connecting, `Current` means stub 0's values: a form that works.
        Ok(vec![
            (
                "name",
                self.resolve(&fields.name, c.map(|p| p.1.clone()), &Field::Text("Fresh")),
            ),
            (
                "platform_type",
                self.resolve(
                    &fields.platform_type,
                    c.map(|p| p.2.clone()),
                    &Field::Kind(0),
                ),
            ),
            (
                "instance_url",
                self.resolve(
                    &fields.instance_url,
                    c.map(|p| p.3.clone()),
                    &Field::Instance(0),
                ),
            ),
            (
                "username",
                self.resolve(&fields.username, c.map(|p| p.4.clone()), &Field::Account(0)),
            ),
            (
                "access_token",
                self.resolve(&fields.access_token, None, &Field::Token(0)),
            ),
            (
                "is_active",
                self.resolve(&fields.is_active, Some("on".into()), &Field::Text("on")),
            ),
        ])
    }

    fn stub(&self, n: usize) -> &'a StubInstance {
        match n % STUBS {
            0 | 1 => &self.app.mastodon,
            _ => &self.app.pixelfed,
        }
    }

    fn account(&self, n: usize) -> String {
        match n % STUBS {
            1 => "bob".into(),
            _ => self.stub(n).account().username.clone(),
        }
    }

    /// A fresh token the stub accepts for account `n`, as if made in the instance's settings.
    fn stub_token(&self, n: usize) -> String {
        self.stub(n).new_token(&self.account(n))
    }

    fn resolve(&self, field: &Field, stored: Option<String>, fresh: &Field) -> FieldValue {
        match field {
            Field::Text(v) => FieldValue::Text((*v).to_string()),
            Field::Raw(v) => FieldValue::Encoded((*v).to_string()),
            Field::Missing => FieldValue::Missing,
            Field::Twice(first, then) => FieldValue::Twice(
                Box::new(self.resolve(first, stored, fresh)),
                (*then).to_string(),
            ),
            Field::Long => FieldValue::Text("x".repeat(5000)),
            Field::Current => match stored {
                Some(value) => FieldValue::Text(value),
                None => self.resolve(fresh, None, &Field::Missing),
            },
            Field::Instance(n) => FieldValue::Text(self.stub(*n).origin()),
            Field::Account(n) => FieldValue::Text(self.account(*n)),
            Field::Kind(n) => FieldValue::Text(kind_of(self.stub(*n)).into()),
            Field::Token(n) => FieldValue::Text(self.stub_token(*n)),
        }
    }

    async fn prepare(&mut self, op: &Op) -> Result<Prepared, TestCaseError> {
        let form = |device: usize, uri: String, body: String| Prepared {
            device,
            uri,
            content_type: ContentType::Form,
            body,
            csrf_header: None,
            authorize: false,
        };
        Ok(match op {
            Op::Register { device, name } => {
                let token = self.csrf_of(*device).await?;
                let username = match name {
                    NewName::Taken(k) => self.nth_user(*k).await.map(|u| u.1).unwrap_or_default(),
                    NewName::Fresh(n) => format!("fresh{n}"),
                    NewName::Hostile(s) => (*s).to_string(),
                };
                let email = format!("{}@example.com", username.trim());
                let pairs = [
                    ("username", FieldValue::Text(username)),
                    ("email", FieldValue::Text(email)),
                    ("password", FieldValue::Text(PASSWORD.into())),
                    ("password_confirm", FieldValue::Text(PASSWORD.into())),
                ];
                form(
                    *device,
                    "/register".into(),
                    Self::form_body(&pairs, &Csrf::Good, &token),
                )
            }
            Op::Login {
                device,
                user,
                password,
            } => {
                let token = self.csrf_of(*device).await?;
                let username = match user {
                    UserRef::Nth(k) => self.nth_user(*k).await.map(|u| u.1).unwrap_or_default(),
                    UserRef::Literal(s) => (*s).to_string(),
                };
                let password = match password {
                    Password::Right => PASSWORD.to_string(),
                    Password::Wrong => "not the password at all".into(),
                    Password::Hostile(s) => (*s).to_string(),
                };
                let pairs = [
                    ("username", FieldValue::Text(username)),
                    ("password", FieldValue::Text(password)),
                ];
                form(
                    *device,
                    "/login".into(),
                    Self::form_body(&pairs, &Csrf::Good, &token),
                )
            }
            Op::Logout { device, csrf } => {
                let token = self.csrf_of(*device).await?;
                form(
                    *device,
                    "/logout".into(),
                    Self::form_body(&[], csrf, &token),
                )
            }
            Op::Create {
                device,
                fields,
                csrf,
            } => {
                let token = self.csrf_of(*device).await?;
                let pairs = self.platform_pairs(*device, fields, None).await?;
                form(
                    *device,
                    "/platforms".into(),
                    Self::form_body(&pairs, csrf, &token),
                )
            }
            Op::Edit {
                device,
                platform,
                fields,
                csrf,
            } => {
                let token = self.csrf_of(*device).await?;
                let id = self.platform_segment(*device, platform).await?;
                let pairs = self.platform_pairs(*device, fields, Some(platform)).await?;
                form(
                    *device,
                    format!("/platforms/{id}"),
                    Self::form_body(&pairs, csrf, &token),
                )
            }
            Op::Switch {
                device,
                platform,
                csrf,
            }
            | Op::MakeDefault {
                device,
                platform,
                csrf,
            }
            | Op::Delete {
                device,
                platform,
                csrf,
            } => {
                let token = self.csrf_of(*device).await?;
                let id = self.platform_segment(*device, platform).await?;
                let action = match op {
                    Op::Switch { .. } => "switch",
                    Op::MakeDefault { .. } => "default",
                    _ => "delete",
                };
                form(
                    *device,
                    format!("/platforms/{id}/{action}"),
                    Self::form_body(&[], csrf, &token),
                )
            }
            Op::ApiSwitch {
                device,
                body,
                csrf,
                content_type,
            } => {
                let token = self.csrf_of(*device).await?;
                let body = match body {
                    JsonBody::Id(r) => {
                        let id = self.platform_segment(*device, r).await?;
                        format!("{{\"platform_id\": {id}}}")
                    }
                    JsonBody::Raw(s) => (*s).to_string(),
                };
                Prepared {
                    device: *device,
                    uri: "/api/switch_platform".into(),
                    content_type: match content_type {
                        ApiType::Json => ContentType::JSON,
                        ApiType::Form => ContentType::Form,
                        ApiType::Text => ContentType::Plain,
                    },
                    body,
                    csrf_header: match csrf {
                        ApiCsrf::Good => Some(token),
                        ApiCsrf::Missing => None,
                        ApiCsrf::Wrong => Some("A".repeat(43)),
                    },
                    authorize: false,
                }
            }
            Op::Admin {
                device,
                user,
                action,
                csrf,
            } => {
                let token = self.csrf_of(*device).await?;
                let id = self.user_segment(user).await;
                form(
                    *device,
                    format!("/admin/users/{id}/{action}"),
                    Self::form_body(&[], csrf, &token),
                )
            }
            Op::Revoke {
                device,
                session,
                csrf,
            } => {
                let token = self.csrf_of(*device).await?;
                let id = self.session_segment(session).await;
                form(
                    *device,
                    format!("/account/sessions/{id}/revoke"),
                    Self::form_body(&[], csrf, &token),
                )
            }
            Op::RawForm {
                device,
                platform,
                body,
                csrf,
            } => {
                let token = self.csrf_of(*device).await?;
                let uri = match platform {
                    Some(r) => format!("/platforms/{}", self.platform_segment(*device, r).await?),
                    None => "/platforms".into(),
                };
                let csrf_part = Self::form_body(&[], csrf, &token);
                let body = if csrf_part.is_empty() {
                    (*body).to_string()
                } else {
                    format!("{body}&{csrf_part}")
                };
                form(*device, uri, body)
            }
            Op::Connect {
                device,
                instance,
                csrf,
            } => {
                let token = self.csrf_of(*device).await?;
                let pairs = [("instance", self.resolve(instance, None, &Field::Missing))];
                Prepared {
                    authorize: true,
                    ..form(
                        *device,
                        "/platforms/connect".into(),
                        Self::form_body(&pairs, csrf, &token),
                    )
                }
            }
            Op::Race(..) => unreachable!("races are prepared one side at a time"),
        })
    }

    /// Sends the request; for a connect, plays the instance's part too. Returns the last
    /// response and, for a connect, the way there.
    async fn send(&self, request: &Prepared) -> (Page, String) {
        let page = self.post(request).await;
        let stub = page.location.as_deref().and_then(|to| {
            [&self.app.mastodon, &self.app.pixelfed]
                .into_iter()
                .find(|stub| to.starts_with(&format!("{}/", stub.origin())))
        });
        let (true, 303, Some(stub)) = (request.authorize, page.status.code, stub) else {
            return (page, String::new());
        };
        let authorize = page.location.clone().unwrap_or_default();
        let back = stub.authorize_redirect(&authorize);
        let callback = match back.find("/platforms/connect/callback") {
            Some(at) => back[at..].to_string(),
            None => back.clone(),
        };
        let trail = format!("→ approved at {} → GET {callback}", stub.host_port());
        (self.devices[request.device].get(&callback).await, trail)
    }

    async fn post(&self, request: &Prepared) -> Page {
        let device = &self.devices[request.device];
        match &request.csrf_header {
            Some(token) => {
                device
                    .post_raw_with_csrf(
                        &request.uri,
                        request.content_type.clone(),
                        &request.body,
                        token,
                    )
                    .await
            }
            None => {
                device
                    .post_raw(&request.uri, request.content_type.clone(), &request.body)
                    .await
            }
        }
    }

    fn describe(request: &Prepared) -> String {
        let mut body: String = request.body.chars().take(160).collect();
        if request.body.len() > 160 {
            body.push('…');
        }
        format!(
            "device {} POST {} [{}] {body}",
            request.device, request.uri, request.content_type
        )
    }

    async fn step(&mut self, index: usize, op: &Op) -> Result<(), TestCaseError> {
        let requests = match op {
            Op::Race(a, b) => vec![self.prepare(a).await?, self.prepare(b).await?],
            single => vec![self.prepare(single).await?],
        };
        let before = snapshot(self.app).await;
        let pages = match requests.as_slice() {
            [a, b] => {
                let (pa, pb) = tokio::join!(self.send(a), self.send(b));
                vec![pa, pb]
            }
            [a] => vec![self.send(a).await],
            _ => unreachable!(),
        };
        let after = snapshot(self.app).await;
        let together = if requests.len() > 1 {
            " (concurrently)"
        } else {
            ""
        };
        let mut outcomes = Vec::new();
        for (request, (page, trail)) in requests.iter().zip(pages) {
            self.log.push(format!(
                "#{index}{together} {} {trail} → {}",
                Self::describe(request),
                summary(&page)
            ));
            self.no_5xx(&format!("step {index}: POST {}", request.uri), &page)?;
            outcomes.push(Outcome { page, flash: None });
        }
        // Only now that the rows are recorded: follow the redirects to read their messages.
        for (request, outcome) in requests.iter().zip(&mut outcomes) {
            if let (303, Some(to)) = (outcome.page.status.code, outcome.page.location.clone()) {
                let next = self.devices[request.device].get(&to).await;
                outcome.flash = flash_on(&next);
                if let Some(kind) = &outcome.flash {
                    self.log.push(format!(
                        "   device {} GET {to}: {kind} message",
                        request.device
                    ));
                }
                self.no_5xx(&format!("step {index}: GET {to}"), &next)?;
            }
        }
        if self.checks.contains(&Invariant::RefusalsChangeNothing)
            && outcomes.iter().all(Outcome::refused)
            && before != after
        {
            let changes = describe_changes(&before, &after);
            return Err(self.fail(format!(
                "step {index}: refused, yet rows changed:\n{changes}"
            )));
        }
        let mut db = self.app.db().await;
        let mut problems = Vec::new();
        for invariant in self.checks {
            problems.extend(
                default_and_admin_violations(&mut db, *invariant)
                    .await
                    .expect("invariant queries"),
            );
        }
        drop(db);
        if !problems.is_empty() {
            return Err(self.fail(format!(
                "after step {index}: {}\n\nDatabase after it:\n{}",
                problems.join("; "),
                dump(&after)
            )));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum FieldValue {
    Text(String),
    Encoded(String),
    Missing,
    Twice(Box<FieldValue>, String),
}

/// Everything the HTTP property checks after every step.
const ALL: &[Invariant] = &[
    Invariant::NoServerError,
    Invariant::OneActiveDefault,
    Invariant::SessionsOnOwnActivePlatforms,
    Invariant::ActiveAdmin,
    Invariant::RefusalsChangeNothing,
];

async fn play(
    engine: Engine,
    case: Case,
    checks: &'static [Invariant],
) -> Result<(), TestCaseError> {
    let app = match engine {
        Engine::Sqlite => TestApp::sqlite(|f| f).await,
        Engine::Postgres => TestApp::postgres(|f| f)
            .await
            .expect("PostgreSQL is configured"),
    };
    let mut world = World::new(&app, &case.platforms, checks).await?;
    let result = async {
        for (index, op) in case.steps.iter().enumerate() {
            world.step(index, op).await?;
        }
        Ok(())
    }
    .await;
    if std::env::var_os("TETHER_INVARIANT_TRACE").is_some() {
        eprintln!("--- case\n{}", world.log.join("\n"));
    }
    result
}

fn http_property(engine: Engine) {
    if engine == Engine::Postgres && !Engine::postgres_configured() {
        return;
    }
    check(
        &format!("HTTP invariants on {engine:?}"),
        32,
        case(),
        render_case,
        move |case| play(engine, case, ALL),
    );
}

/// No 5xx; one active default per user with an active platform; sessions only on their user's
/// active platforms; an active admin; refusals change nothing — after every step.
mod random_request_sequences_keep_every_invariant {
    use super::*;

    #[test]
    fn sqlite() {
        http_property(Engine::Sqlite);
    }

    #[test]
    fn postgres() {
        http_property(Engine::Postgres);
    }
}

// ---------------------------------------------------------------------------------------------
// The same invariants on the models, without Rocket
// ---------------------------------------------------------------------------------------------

mod models {
    use super::*;
    use fixture::TestDb;
    use tether::models::{NewPlatform, NewUser, Platform, PlatformType, Role, User};

    /// Which platform a model call names.
    #[derive(Clone, Debug)]
    pub enum Target {
        /// The `n`th (modulo) of the acting user's platforms.
        Own(usize),
        /// The `n`th platform of another user.
        Foreign(usize, usize),
        Missing,
    }

    /// One unit of work as a route does it: in a transaction holding the user's lock.
    #[derive(Clone, Debug)]
    pub enum ModelOp {
        Create {
            user: usize,
            active: bool,
            n: u8,
        },
        /// `Platform::update` with only `is_active` changed, then `repair_default`.
        SetActive {
            user: usize,
            target: Target,
            active: bool,
        },
        SetDefault {
            user: usize,
            target: Target,
        },
        /// `Platform::delete`, then `repair_default`.
        Delete {
            user: usize,
            target: Target,
        },
        Repair {
            user: usize,
        },
        SetRole {
            user: usize,
            admin: bool,
        },
        SetUserActive {
            user: usize,
            active: bool,
        },
        /// Both at once, on two connections.
        Together(Box<ModelOp>, Box<ModelOp>),
    }

    pub const MODEL_USERS: usize = 3;

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            6 => (0..3usize).prop_map(Target::Own),
            1 => (0..MODEL_USERS, 0..3usize).prop_map(|(u, n)| Target::Foreign(u, n)),
            1 => Just(Target::Missing),
        ]
    }

    fn single() -> BoxedStrategy<ModelOp> {
        let user = || 0..MODEL_USERS;
        prop_oneof![
            4 => (user(), any::<bool>(), 0..4u8)
                .prop_map(|(user, active, n)| ModelOp::Create { user, active, n }),
            3 => (user(), target(), any::<bool>())
                .prop_map(|(user, target, active)| ModelOp::SetActive { user, target, active }),
            3 => (user(), target()).prop_map(|(user, target)| ModelOp::SetDefault { user, target }),
            3 => (user(), target()).prop_map(|(user, target)| ModelOp::Delete { user, target }),
            1 => user().prop_map(|user| ModelOp::Repair { user }),
            2 => (user(), any::<bool>()).prop_map(|(user, admin)| ModelOp::SetRole { user, admin }),
            2 => (user(), any::<bool>())
                .prop_map(|(user, active)| ModelOp::SetUserActive { user, active }),
        ]
        .boxed()
    }

    pub fn model_ops() -> impl Strategy<Value = Vec<ModelOp>> {
        let op = prop_oneof![
            4 => single(),
            1 => (single(), single()).prop_map(|(a, b)| ModelOp::Together(Box::new(a), Box::new(b))),
        ];
        proptest::collection::vec(op, 1..=30)
    }

    struct Model<'a> {
        db: &'a TestDb,
        users: Vec<i64>,
    }

    /// A constraint that caught a duplicate: the call is refused, which is fine.
    fn refused(e: &sqlx::Error) -> bool {
        e.as_database_error()
            .is_some_and(|d| d.is_unique_violation())
    }

    impl Model<'_> {
        async fn platforms(&self, db: &mut DbConn, user: usize) -> Vec<Platform> {
            Platform::list_for_user(db, self.users[user])
                .await
                .expect("list platforms")
        }

        async fn target_id(&self, db: &mut DbConn, user: usize, target: &Target) -> i64 {
            let pick =
                |list: Vec<Platform>, n: usize| (!list.is_empty()).then(|| list[n % list.len()].id);
            let found = match target {
                Target::Own(n) => pick(self.platforms(db, user).await, *n),
                Target::Foreign(other, n) => {
                    let other = if *other == user {
                        (other + 1) % MODEL_USERS
                    } else {
                        *other
                    };
                    pick(self.platforms(db, other).await, *n)
                }
                Target::Missing => None,
            };
            match found {
                Some(id) => id,
                None => {
                    let (max,): (i64,) =
                        query("SELECT COALESCE(MAX(id), 0) FROM platform_connections")
                            .fetch_one(db)
                            .await
                            .expect("max id");
                    max + 1
                }
            }
        }

        async fn apply(&self, op: &ModelOp) -> Result<String, sqlx::Error> {
            if let ModelOp::Together(a, b) = op {
                let (ra, rb) = tokio::join!(self.apply_one(a), self.apply_one(b));
                return Ok(format!("{} | {}", ra?, rb?));
            }
            self.apply_one(op).await
        }

        async fn apply_one(&self, op: &ModelOp) -> Result<String, sqlx::Error> {
            let mut db = self.db.conn().await;
            let outcome = match op {
                ModelOp::Create { user, active, n } => {
                    let uid = self.users[*user];
                    let new = NewPlatform {
                        name: format!("p{n}"),
                        platform_type: PlatformType::Mastodon,
                        instance_url: format!("https://m{n}.example"),
                        username: "a".into(),
                        is_active: *active,
                    };
                    let mut tx = db.begin().await?;
                    User::lock(&mut tx, uid).await?;
                    match Platform::create(&mut tx, uid, &new, vec![1, 2, 3]).await {
                        Ok(p) => {
                            tx.commit().await?;
                            format!("created {}", p.id)
                        }
                        Err(e) if refused(&e) => "duplicate".into(),
                        Err(e) => return Err(e),
                    }
                }
                ModelOp::SetActive {
                    user,
                    target,
                    active,
                } => {
                    let uid = self.users[*user];
                    let id = self.target_id(&mut db, *user, target).await;
                    let mut tx = db.begin().await?;
                    User::lock(&mut tx, uid).await?;
                    let Some(p) = Platform::find_for_user(&mut tx, uid, id).await? else {
                        return Ok(format!("{id} not found"));
                    };
                    let changes = NewPlatform {
                        platform_type: p.platform_type,
                        name: p.name,
                        instance_url: p.instance_url,
                        username: p.username,
                        is_active: *active,
                    };
                    let updated = Platform::update(&mut tx, uid, id, &changes, None).await?;
                    Platform::repair_default(&mut tx, uid).await?;
                    tx.commit().await?;
                    format!("update {id}: {updated}")
                }
                ModelOp::SetDefault { user, target } => {
                    let uid = self.users[*user];
                    let id = self.target_id(&mut db, *user, target).await;
                    let mut tx = db.begin().await?;
                    User::lock(&mut tx, uid).await?;
                    let set = Platform::set_default(&mut tx, uid, id).await?;
                    tx.commit().await?;
                    format!("set_default {id}: {set}")
                }
                ModelOp::Delete { user, target } => {
                    let uid = self.users[*user];
                    let id = self.target_id(&mut db, *user, target).await;
                    let mut tx = db.begin().await?;
                    User::lock(&mut tx, uid).await?;
                    let deleted = Platform::delete(&mut tx, uid, id).await?;
                    Platform::repair_default(&mut tx, uid).await?;
                    tx.commit().await?;
                    format!("delete {id}: {deleted}")
                }
                ModelOp::Repair { user } => {
                    let uid = self.users[*user];
                    let mut tx = db.begin().await?;
                    User::lock(&mut tx, uid).await?;
                    Platform::repair_default(&mut tx, uid).await?;
                    tx.commit().await?;
                    "repaired".into()
                }
                ModelOp::SetRole { user, admin } => {
                    // As the admin service does: the target's lock, then the admins' lock.
                    let id = self.users[*user];
                    let role = if *admin { Role::Admin } else { Role::User };
                    let mut tx = db.begin().await?;
                    User::lock(&mut tx, id).await?;
                    User::lock_admins(&mut tx).await?;
                    let changed = User::set_role(&mut tx, id, role).await?;
                    tx.commit().await?;
                    format!("set_role {id} {role:?}: {changed}")
                }
                ModelOp::SetUserActive { user, active } => {
                    let id = self.users[*user];
                    let mut tx = db.begin().await?;
                    User::lock(&mut tx, id).await?;
                    User::lock_admins(&mut tx).await?;
                    let changed = User::set_active(&mut tx, id, *active).await?;
                    tx.commit().await?;
                    format!("set_active {id} {active}: {changed}")
                }
                ModelOp::Together(..) => unreachable!("nested at most once"),
            };
            Ok(outcome)
        }
    }

    async fn play(engine: Engine, ops: Vec<ModelOp>) -> Result<(), TestCaseError> {
        let db = match engine {
            Engine::Sqlite => TestDb::sqlite().await,
            Engine::Postgres => TestDb::postgres().await.expect("PostgreSQL is configured"),
        };
        let mut users = Vec::new();
        {
            let mut conn = db.conn().await;
            for u in 0..MODEL_USERS {
                let name = format!("user{u}");
                let email = format!("user{u}@example.com");
                let user = User::create(
                    &mut conn,
                    NewUser {
                        username: &name,
                        email: &email,
                        password_hash: "not-a-hash",
                        role: None,
                    },
                )
                .await
                .expect("create user");
                users.push(user.id);
            }
        }
        let model = Model { db: &db, users };
        let mut log = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            let outcome = model.apply(op).await.map_err(|e| {
                TestCaseError::fail(format!(
                    "step {index} {op:?} failed: {e}\n{}",
                    log.join("\n")
                ))
            })?;
            log.push(format!("#{index} {op:?} → {outcome}"));
            let mut conn = db.conn().await;
            let mut problems = Vec::new();
            for invariant in [Invariant::OneActiveDefault, Invariant::ActiveAdmin] {
                problems.extend(
                    default_and_admin_violations(&mut conn, invariant)
                        .await
                        .expect("invariant queries"),
                );
            }
            if !problems.is_empty() {
                let platforms: Vec<(i64, i64, bool, bool)> = query(
                    "SELECT id, user_id, is_active, is_default FROM platform_connections
                     ORDER BY id",
                )
                .fetch_all(&mut conn)
                .await
                .expect("platforms");
                let users: Vec<(i64, String, bool)> =
                    query("SELECT id, role, is_active FROM users ORDER BY id")
                        .fetch_all(&mut conn)
                        .await
                        .expect("users");
                return Err(TestCaseError::fail(format!(
                    "after step {index}: {}\n{}\nplatforms (id, user, active, default): \
                     {platforms:?}\nusers (id, role, active): {users:?}",
                    problems.join("; "),
                    log.join("\n")
                )));
            }
        }
        Ok(())
    }

    pub fn model_property(engine: Engine) {
        if engine == Engine::Postgres && !Engine::postgres_configured() {
            return;
        }
        check(
            &format!("models on {engine:?}"),
            64,
            model_ops(),
            |ops: &Vec<ModelOp>| render_steps(ops),
            move |ops| play(engine, ops),
        );
    }
}

mod model_calls_in_any_order_keep_one_active_default_and_an_active_admin {
    use super::*;

    #[test]
    fn sqlite() {
        models::model_property(Engine::Sqlite);
    }

    #[test]
    fn postgres() {
        models::model_property(Engine::Postgres);
    }
}
