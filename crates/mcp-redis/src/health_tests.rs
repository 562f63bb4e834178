//! `/readyz` follows Redis: ready while it answers `PING`, 503 `store_unavailable` while it
//! is down, ready again once it is back.

use std::sync::Arc;
use std::time::Duration;

use mcp_proto::{McpServer, NoArgs, ToolError};
use mcp_sse::McpHttpServer;
use mcp_sse::store::SessionStore;
use serde_json::{Value, json};

use crate::test_redis::TestRedis;
use crate::{RedisConfig, RedisStore};

async fn readyz(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("GET /readyz");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.expect("a JSON body");
    (status, body)
}

#[tokio::test]
async fn readiness_follows_the_store() {
    let mut redis = TestRedis::start();
    let config = RedisConfig::new(redis.url())
        .replica_id("health")
        .op_timeout(Duration::from_millis(300));
    let store = RedisStore::connect(config).await.expect("redis store");
    store.health().await.unwrap();
    let service = McpServer::builder("health")
        .tool("noop", "Does nothing.", |_: NoArgs| async {
            Ok::<_, ToolError>(String::new())
        })
        .build()
        .expect("server");
    let running = McpHttpServer::new(service)
        .session_store(Arc::new(store))
        .spawn("127.0.0.1:0")
        .await
        .expect("spawn");
    let url = running.url("/readyz");
    assert_eq!(readyz(&url).await, (200, json!({"status": "ready"})));
    redis.kill();
    let (status, body) = readyz(&url).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "store_unavailable");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    redis.restart();
    let mut ready = readyz(&url).await;
    for _ in 0..50 {
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready = readyz(&url).await;
    }
    assert_eq!(ready, (200, json!({"status": "ready"})));
    running.shutdown().await.expect("shutdown");
}
