//! [`RedisStore`] against a real `redis-server` (see `test_redis`): several stores on one Redis
//! play the replicas.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mcp_proto::{ProtocolVersion, SessionState};
use mcp_sse::TransportKind;
use mcp_sse::store::{
    Deliveries, Delivery, DeliveryEvent, EventStore, NewSession, Replay, ReplicaBus, SessionStore,
    StoreError, StoredEvent,
};
use redis::AsyncCommands;

use crate::test_redis::TestRedis;
use crate::{RedisConfig, RedisStore};

async fn replica(redis: &TestRedis, name: &str) -> RedisStore {
    RedisStore::connect(RedisConfig::new(redis.url()).replica_id(name))
        .await
        .unwrap()
}

fn alice(id: &str) -> NewSession {
    NewSession::new(id, TransportKind::StreamableHttp).subject(Some("alice".into()))
}

async fn next(deliveries: &mut Deliveries) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .expect("a delivery within 10 s")
        .expect("the store is alive")
}

async fn nothing_more(deliveries: &mut Deliveries) {
    let extra = tokio::time::timeout(Duration::from_millis(300), deliveries.recv()).await;
    assert!(extra.is_err(), "unexpected delivery: {extra:?}");
}

fn message(session: &str, payload: &str) -> Delivery {
    Delivery {
        session_id: session.into(),
        event: DeliveryEvent::Message(payload.into()),
    }
}

#[tokio::test]
async fn sessions_are_shared_between_replicas() {
    let redis = TestRedis::start();
    let (a, b, c) = (
        replica(&redis, "a").await,
        replica(&redis, "b").await,
        replica(&redis, "c").await,
    );
    let mut to_a = a.subscribe().await.unwrap();

    let created = a
        .create(alice("s1").idle_timeout(Duration::from_secs(90)))
        .await
        .unwrap();
    assert_eq!(created.owner, "a");
    assert!(matches!(
        b.create(alice("s1")).await,
        Err(StoreError::SessionExists(id)) if id == "s1"
    ));

    let on_b = b.load("s1", Some("alice")).await.unwrap().unwrap();
    assert_eq!(on_b.id, "s1");
    assert_eq!(on_b.kind, TransportKind::StreamableHttp);
    assert_eq!(on_b.subject.as_deref(), Some("alice"));
    assert_eq!(on_b.owner, "a");
    assert_eq!(on_b.state, SessionState::default());
    assert_eq!(on_b.created_at_ms, created.created_at_ms);
    assert!(on_b.last_seen_ms >= created.created_at_ms);
    assert_eq!(on_b.idle_timeout, Duration::from_secs(90));
    assert_eq!(on_b.max_lifetime, mcp_sse::store::DEFAULT_MAX_LIFETIME);

    // State saved on B is what A loads.
    let state = SessionState {
        protocol_version: Some(ProtocolVersion::V2025_03_26),
        initialized: true,
        subscriptions: vec!["file:///notes.txt".into()],
        ..SessionState::default()
    };
    assert!(b.save_state("s1", &state).await.unwrap());
    assert!(!b.save_state("unknown", &state).await.unwrap());
    assert_eq!(
        a.load("s1", Some("alice")).await.unwrap().unwrap().state,
        state
    );

    // DELETE on C ends it everywhere and tells the owner.
    assert!(c.delete("s1", Some("alice")).await.unwrap());
    assert!(!c.delete("s1", Some("alice")).await.unwrap());
    assert_eq!(a.load("s1", Some("alice")).await.unwrap(), None);
    assert_eq!(b.load("s1", Some("alice")).await.unwrap(), None);
    assert!(!b.deliver("s1", "{}").await.unwrap());
    assert_eq!(
        next(&mut to_a).await,
        Delivery {
            session_id: "s1".into(),
            event: DeliveryEvent::SessionEnded
        }
    );
    nothing_more(&mut to_a).await;
    assert!(matches!(
        a.subscribe().await.unwrap_err(),
        StoreError::AlreadySubscribed
    ));
    // The store gone, its delivery reader stops and the subscription ends.
    drop(a);
    let end = tokio::time::timeout(Duration::from_secs(5), to_a.recv()).await;
    assert_eq!(end, Ok(None));
}

#[tokio::test]
async fn another_subject_finds_nothing_on_any_replica() {
    let redis = TestRedis::start();
    let (a, b) = (replica(&redis, "a").await, replica(&redis, "b").await);
    a.create(alice("s")).await.unwrap();
    a.create(NewSession::new("anonymous", TransportKind::LegacySse))
        .await
        .unwrap();

    for store in [&a, &b] {
        assert_eq!(store.load("s", Some("bob")).await.unwrap(), None);
        assert_eq!(store.load("s", None).await.unwrap(), None);
        assert_eq!(store.claim("s", Some("bob")).await.unwrap(), None);
        assert!(!store.delete("s", Some("bob")).await.unwrap());
        assert_eq!(store.load("anonymous", Some("alice")).await.unwrap(), None);
    }
    // Nothing bob did changed it: still there, still owned by A.
    let s = b.load("s", Some("alice")).await.unwrap().unwrap();
    assert_eq!(
        (s.owner.as_str(), s.subject.as_deref()),
        ("a", Some("alice"))
    );
    let anonymous = b.load("anonymous", None).await.unwrap().unwrap();
    assert_eq!(anonymous.subject, None);
    assert_eq!(anonymous.kind, TransportKind::LegacySse);
}

#[tokio::test]
async fn idle_timeout_and_lifetime_are_enforced_by_redis() {
    let redis = TestRedis::start();
    let mut raw = redis.raw().await;
    let b = replica(&redis, "b").await;
    {
        // Replica D creates two sessions and dies.
        let d = replica(&redis, "d").await;
        d.create(alice("idle").idle_timeout(Duration::from_millis(1000)))
            .await
            .unwrap();
        d.create(
            alice("life")
                .idle_timeout(Duration::from_secs(10))
                .max_lifetime(Duration::from_millis(1800)),
        )
        .await
        .unwrap();
    }
    let idle_ttl: i64 = raw.pttl("mcp:session:idle").await.unwrap();
    let life_ttl: i64 = raw.pttl("mcp:session:life").await.unwrap();
    assert!((1..=1000).contains(&idle_ttl), "PTTL {idle_ttl}");
    assert!((1..=1800).contains(&life_ttl), "PTTL {life_ttl}");

    // A delivery to the dead replica's session leaves a stream that expires too.
    assert!(b.deliver("idle", "{}").await.unwrap());
    let stream_ttl: i64 = raw.pttl("mcp:deliveries:d").await.unwrap();
    assert!((1..=3_600_000).contains(&stream_ttl), "PTTL {stream_ttl}");

    // Uses keep "idle" alive past its idle timeout; "life" ends at its lifetime anyway.
    let started = Instant::now();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(b.load("idle", Some("alice")).await.unwrap().is_some());
        assert_eq!(b.touch(&["life".to_owned()]).await.unwrap(), vec![true]);
    }
    tokio::time::sleep(Duration::from_millis(1800).saturating_sub(started.elapsed())).await;
    assert!(b.load("idle", Some("alice")).await.unwrap().is_some());
    assert_eq!(b.load("life", Some("alice")).await.unwrap(), None);

    // Nobody touches "idle" any more: Redis drops it, no replica needed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let left: i64 = raw
        .exists(&["mcp:session:idle", "mcp:session:life"])
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(
        b.touch(&["idle".to_owned(), "life".to_owned()])
            .await
            .unwrap(),
        vec![false, false]
    );
}

#[tokio::test]
async fn deliveries_reach_the_owner_in_order_exactly_once() {
    let redis = TestRedis::start();
    let (a, b, c) = (
        replica(&redis, "a").await,
        replica(&redis, "b").await,
        replica(&redis, "c").await,
    );
    let mut to_a = a.subscribe().await.unwrap();
    a.create(alice("s")).await.unwrap();

    // 1 000 messages from B to A's stream, one after the other.
    for i in 0..1000 {
        assert!(b.deliver("s", &format!("{{\"n\":{i}}}")).await.unwrap());
    }
    for i in 0..1000 {
        assert_eq!(
            next(&mut to_a).await,
            message("s", &format!("{{\"n\":{i}}}"))
        );
    }
    nothing_more(&mut to_a).await;

    // B and C at once: each one's messages in its order, none lost or doubled.
    async fn send(store: &RedisStore, tag: &str) {
        for i in 0..500 {
            assert!(store.deliver("s", &format!("{tag}{i}")).await.unwrap());
        }
    }
    tokio::join!(send(&b, "b"), send(&c, "c"));
    let mut seen: HashMap<char, u32> = HashMap::new();
    for _ in 0..1000 {
        let DeliveryEvent::Message(payload) = next(&mut to_a).await.event else {
            panic!("a message")
        };
        let tag = payload.chars().next().unwrap();
        let n: u32 = payload[1..].parse().unwrap();
        let expected = seen.entry(tag).or_insert(0);
        assert_eq!(n, *expected, "{payload} out of order");
        *expected += 1;
    }
    assert_eq!(seen, HashMap::from([('b', 500), ('c', 500)]));
    nothing_more(&mut to_a).await;

    // The reader trims what it took: A's stream does not grow without bound.
    let mut raw = redis.raw().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let len: u64 = raw.xlen("mcp:deliveries:a").await.unwrap();
        if len <= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stream still holds {len} entries"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A GET stream opened on B: B claims the session, deliveries from C go to B now.
    let mut to_b = b.subscribe().await.unwrap();
    assert_eq!(
        b.claim("s", Some("alice")).await.unwrap().unwrap().owner,
        "b"
    );
    assert!(c.deliver("s", "to b").await.unwrap());
    assert_eq!(next(&mut to_b).await, message("s", "to b"));
    nothing_more(&mut to_a).await;
    assert!(a.delivery_reads() > 0);
}

#[tokio::test]
async fn event_store_is_bounded_expires_and_replays_on_any_replica() {
    let redis = TestRedis::start();
    let config = |name: &str| {
        RedisConfig::new(redis.url())
            .replica_id(name)
            .events_per_stream(3)
            .events_ttl(Duration::from_millis(1000))
    };
    let a = RedisStore::connect(config("a")).await.unwrap();
    let b = RedisStore::connect(config("b")).await.unwrap();
    assert_eq!(
        b.read_events_after("s/1", 0).await.unwrap(),
        Replay::UnknownStream
    );
    for seq in 0..5 {
        assert!(
            a.append_event("s/1", seq, &format!("{{\"e\":{seq}}}"))
                .await
                .unwrap()
        );
    }
    assert!(!a.append_event("s/1", 4, "again").await.unwrap());
    let ev = |seq: u64| StoredEvent {
        seq,
        payload: format!("{{\"e\":{seq}}}"),
    };
    assert_eq!(
        b.read_events_after("s/1", 1).await.unwrap(),
        Replay::Events(vec![ev(2), ev(3), ev(4)])
    );
    assert_eq!(
        b.read_events_after("s/1", 3).await.unwrap(),
        Replay::Events(vec![ev(4)])
    );
    assert_eq!(
        b.read_events_after("s/1", 4).await.unwrap(),
        Replay::Events(vec![])
    );
    assert_eq!(b.read_events_after("s/1", 0).await.unwrap(), Replay::Lagged);
    // Payloads may hold the separator.
    a.append_event("s/2", 0, "a:b:c").await.unwrap();
    assert_eq!(
        b.read_events_after("s/2", 0).await.unwrap(),
        Replay::Events(vec![])
    );
    a.append_event("s/2", 1, "a:b:c").await.unwrap();
    assert_eq!(
        b.read_events_after("s/2", 0).await.unwrap(),
        Replay::Events(vec![StoredEvent {
            seq: 1,
            payload: "a:b:c".into()
        }])
    );

    let mut raw = redis.raw().await;
    let len: u64 = raw.zcard("mcp:events:s/1").await.unwrap();
    assert_eq!(len, 3);
    let ttl: i64 = raw.pttl("mcp:events:s/1").await.unwrap();
    assert!((1..=1000).contains(&ttl), "PTTL {ttl}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        b.read_events_after("s/1", 3).await.unwrap(),
        Replay::UnknownStream
    );
}

#[tokio::test]
async fn redis_down_is_unavailable_within_the_timeout_then_service_resumes() {
    let mut redis = TestRedis::start();
    let budget = Duration::from_millis(500);
    let url = redis.url();
    let config = |name: &str| {
        RedisConfig::new(url.clone())
            .replica_id(name)
            .op_timeout(budget)
            .delivery_block(Duration::from_millis(200))
    };
    let a = RedisStore::connect(config("a")).await.unwrap();
    let b = RedisStore::connect(config("b")).await.unwrap();
    let mut to_a = a.subscribe().await.unwrap();
    a.create(alice("before")).await.unwrap();

    redis.kill();
    // A store made while Redis is down works once it is back.
    let late = RedisStore::new(config("late")).unwrap();
    let state = SessionState::default();
    let ids = ["before".to_owned()];
    for round in 0..2 {
        let started = Instant::now();
        let results: Vec<Result<(), StoreError>> = vec![
            b.load("before", Some("alice")).await.map(drop),
            b.claim("before", Some("alice")).await.map(drop),
            b.create(alice("during")).await.map(drop),
            b.save_state("before", &state).await.map(drop),
            b.touch(&ids).await.map(drop),
            b.deliver("before", "{}").await.map(drop),
            b.delete("before", Some("alice")).await.map(drop),
            b.append_event("k", 0, "{}").await.map(drop),
            b.read_events_after("k", 0).await.map(drop),
            late.load("before", Some("alice")).await.map(drop),
        ];
        for (i, result) in results.into_iter().enumerate() {
            assert!(
                matches!(result, Err(StoreError::Unavailable { .. })),
                "round {round}, operation {i}: {result:?}"
            );
        }
        // Ten operations, each within its budget (plus scheduling slack).
        assert!(started.elapsed() < (budget + Duration::from_millis(500)) * 10);
    }
    let started = Instant::now();
    let result = b.load("before", Some("alice")).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable { .. })),
        "{result:?}"
    );
    assert!(
        started.elapsed() < budget + Duration::from_millis(500),
        "took {:?}",
        started.elapsed()
    );

    // Redis is back (empty: no persistence): the same stores work again by themselves.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match a.create(alice("after")).await {
            Ok(_) => break,
            Err(e @ StoreError::Unavailable { .. }) => {
                assert!(Instant::now() < deadline, "still unavailable: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(b.load("after", Some("alice")).await.unwrap().is_some());
    assert!(late.load("after", Some("alice")).await.unwrap().is_some());
    assert!(b.deliver("after", "back").await.unwrap());
    assert_eq!(next(&mut to_a).await, message("after", "back"));
    nothing_more(&mut to_a).await;
}

#[tokio::test]
async fn every_operation_is_one_round_trip() {
    let redis = TestRedis::start();
    let a = replica(&redis, "a").await;
    let b = replica(&redis, "b").await;
    assert_eq!(
        a.round_trips(),
        1,
        "connect: PING and the scripts in one pipeline"
    );

    let cost = |store: &RedisStore, before: u64| store.round_trips() - before;
    let state = SessionState::default();
    let mut figures = Vec::new();
    macro_rules! measure {
        ($store:expr, $name:expr, $op:expr) => {{
            let before = $store.round_trips();
            let out = $op.await.unwrap();
            figures.push(($name, cost($store, before)));
            out
        }};
    }
    measure!(&a, "create", a.create(alice("s")));
    measure!(&b, "load", b.load("s", Some("alice")));
    measure!(&b, "load (other subject)", b.load("s", Some("bob")));
    measure!(&b, "claim", b.claim("s", Some("alice")));
    measure!(&b, "save_state", b.save_state("s", &state));
    let ids: Vec<String> = (0..10).map(|i| format!("x{i}")).collect();
    measure!(&a, "touch (10 sessions)", a.touch(&ids));
    measure!(&a, "deliver", a.deliver("s", "{}"));
    measure!(&a, "append_event", a.append_event("s/1", 0, "{}"));
    measure!(&b, "read_events_after", b.read_events_after("s/1", 0));
    // A streamable POST on B: load, then answer on its own stream.
    let before = b.round_trips();
    b.load("s", Some("alice")).await.unwrap().unwrap();
    figures.push(("streamable POST", cost(&b, before)));
    // A legacy POST on B for a stream on A: load, then deliver the response to A.
    let before = b.round_trips();
    let record = b.load("s", Some("alice")).await.unwrap().unwrap();
    b.deliver(&record.id, "{\"result\":{}}").await.unwrap();
    figures.push(("legacy POST across replicas", cost(&b, before)));
    measure!(&a, "delete", a.delete("s", Some("alice")));

    let expected = [
        ("create", 1),
        ("load", 1),
        ("load (other subject)", 1),
        ("claim", 1),
        ("save_state", 1),
        ("touch (10 sessions)", 1),
        ("deliver", 1),
        ("append_event", 1),
        ("read_events_after", 1),
        ("streamable POST", 1),
        ("legacy POST across replicas", 2),
        ("delete", 1),
    ];
    assert_eq!(figures, expected);
    assert_eq!(b.touch(&[]).await.unwrap(), Vec::<bool>::new());

    // Scripts lost (a Redis restart, SCRIPT FLUSH): one extra round trip, once.
    let mut raw = redis.raw().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    let before = b.round_trips();
    assert_eq!(b.load("s", Some("alice")).await.unwrap(), None);
    assert_eq!(cost(&b, before), 2);
    let before = b.round_trips();
    assert_eq!(b.load("s", Some("alice")).await.unwrap(), None);
    assert_eq!(cost(&b, before), 1);
}

#[tokio::test]
async fn unbounded_limits_mean_a_century() {
    let redis = TestRedis::start();
    let a = replica(&redis, "a").await;
    let forever = alice("forever")
        .idle_timeout(Duration::MAX)
        .max_lifetime(Duration::MAX);
    a.create(forever).await.unwrap();
    let century = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    let loaded = a.load("forever", Some("alice")).await.unwrap().unwrap();
    assert_eq!(
        (loaded.idle_timeout, loaded.max_lifetime),
        (century, century)
    );
    let mut raw = redis.raw().await;
    let ttl: i64 = raw.pttl("mcp:session:forever").await.unwrap();
    assert!(ttl > 3_153_000_000_000, "PTTL {ttl}");
}

#[tokio::test]
async fn bad_configuration_and_unreachable_redis_say_what_is_wrong() {
    // The variant says what is wrong, the source is the Redis client's own error.
    let bad_url = RedisStore::new(RedisConfig::new("http://127.0.0.1:1")).unwrap_err();
    assert!(
        matches!(&bad_url, StoreError::InvalidConfig { detail, .. } if detail == "Redis URL http://127.0.0.1:1"),
        "{bad_url:?}"
    );
    let cause = std::error::Error::source(&bad_url).unwrap();
    assert_eq!(
        cause
            .downcast_ref::<redis::RedisError>()
            .map(redis::RedisError::kind),
        Some(redis::ErrorKind::InvalidClientConfig)
    );
    assert_eq!(
        mcp_proto::error_chain(&bad_url),
        "invalid session store configuration: Redis URL http://127.0.0.1:1: \
         Redis URL did not parse - InvalidClientConfig"
    );
    let zero = RedisStore::new(RedisConfig::new("redis://127.0.0.1:1").op_timeout(Duration::ZERO))
        .unwrap_err();
    assert!(matches!(
        &zero,
        StoreError::InvalidConfig { detail, source: None } if detail == "op_timeout must be greater than zero"
    ));
    // Nothing listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let result = RedisStore::connect(
        RedisConfig::new(format!("redis://127.0.0.1:{port}"))
            .op_timeout(Duration::from_millis(300)),
    )
    .await;
    let Err(unreachable) = result else {
        panic!("connected to a closed port");
    };
    assert!(
        matches!(unreachable, StoreError::Unavailable { .. }),
        "{unreachable:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(600));
    // Unreachable Redis: the source is the Redis error, or none when the budget ran out.
    if let Some(cause) = std::error::Error::source(&unreachable) {
        assert!(cause.is::<redis::RedisError>(), "{cause:?}");
    }
}

#[test]
fn a_store_outside_a_tokio_runtime_is_refused() {
    assert!(matches!(
        RedisStore::new(RedisConfig::new("redis://127.0.0.1:6379")).unwrap_err(),
        StoreError::InvalidConfig { detail, .. } if detail == "RedisStore must be created inside a Tokio runtime"
    ));
}

#[tokio::test]
async fn released_slots_ride_on_the_next_load_or_go_alone_after_a_moment() {
    let redis = TestRedis::start();
    let a = replica(&redis, "a").await;
    a.create(alice("s")).await.unwrap();
    a.create(alice("t")).await.unwrap();
    let one = mcp_sse::store::CallSlotRequest {
        n: 1,
        max: 1,
        ttl: Duration::from_secs(60),
    };
    let held = |id: &'static str| {
        let redis = &redis;
        async move {
            let mut raw = redis.raw().await;
            raw.get::<_, Option<i64>>(format!("mcp:calls:{id}"))
                .await
                .unwrap()
        }
    };
    let taken = |out: Option<(mcp_sse::store::SessionRecord, bool)>| out.unwrap().1;

    // Back-to-back calls at the session's limit of one: each costs one round trip, the
    // previous call's slot given back by the next call's own load.
    let before = a.round_trips();
    for _ in 0..5 {
        assert!(taken(
            a.load_and_acquire("s", Some("alice"), one).await.unwrap()
        ));
        // The release is queued at once; its flush (the future) is not run here.
        let flush = a.release_calls("s", 1);
        assert!(futures::FutureExt::now_or_never(flush).is_none());
    }
    assert_eq!(a.round_trips() - before, 5);
    assert_eq!(held("s").await, Some(1), "the last slot is still waiting");

    // Another session's load carries it too.
    assert!(taken(
        a.load_and_acquire("t", Some("alice"), one).await.unwrap()
    ));
    assert_eq!(held("s").await, None);
    assert_eq!(held("t").await, Some(1));

    // Nothing else comes: the flush sends it alone, in one round trip.
    let before = a.round_trips();
    a.release_calls("t", 1).await.unwrap();
    assert_eq!(held("t").await, None);
    assert_eq!(a.round_trips() - before, 1);
}
