//! Scaling out: nobg-server replicas (separate processes of the real binary) sharing a real
//! Redis and a real S3 server (SeaweedFS), both started here on free loopback ports.

mod cluster;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use cluster::{RedisServer, Replica, SeaweedS3, KEY};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/images")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

/// POST /v1 on `replica`; (status, body).
async fn post(http: &reqwest::Client, replica: &Replica, tasks: Value) -> (u16, Value) {
    let resp = http
        .post(replica.url("/v1"))
        .bearer_auth(KEY)
        .json(&tasks)
        .send()
        .await
        .expect("POST /v1");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

async fn get_bytes(http: &reqwest::Client, url: &str) -> (u16, Vec<u8>) {
    let resp = http.get(url).send().await.expect("GET");
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

/// The path of a URL (`/image/<uuid>.png`), to ask another replica for the same file.
fn path_of(url: &str) -> String {
    let parsed = url::Url::parse(url).expect("a URL");
    parsed.path().to_owned()
}

async fn upload(http: &reqwest::Client, replica: &Replica, image: &[u8]) -> Value {
    let (status, body) = post(
        http,
        replica,
        json!([{"taskType":"imageUpload","taskUUID":uuid(),"image":b64(image)}]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"][0].clone()
}

fn removal(task_uuid: &str, input: &str) -> Value {
    json!({"taskType":"removeBackground","taskUUID":task_uuid,"model":"bria:2@1",
           "inputImage":input,"outputFormat":"PNG"})
}

/// Polls getResponse on `replica` until the task is no longer processing.
async fn await_response(
    http: &reqwest::Client,
    replica: &Replica,
    task_uuid: &str,
) -> (u16, Value) {
    let start = Instant::now();
    loop {
        let (status, body) = post(
            http,
            replica,
            json!([{"taskType":"getResponse","taskUUID":task_uuid}]),
        )
        .await;
        let processing = status == 200 && body["data"][0]["status"] == "processing";
        if !processing {
            return (status, body);
        }
        assert!(start.elapsed() < WAIT, "task {task_uuid} still processing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// S3 storage without Redis: images are objects in the bucket, served by nobg, unreachable
/// once their TTL ends and then deleted from the bucket by the sweeper.
#[tokio::test(flavor = "multi_thread")]
async fn s3_storage_serves_and_expires_images() {
    let weed = SeaweedS3::start().await;
    let config = std::env::temp_dir().join(format!("nobg-scale-{}.toml", uuid()));
    std::fs::write(&config, "[ttl]\nupload_secs = 3\nsweep_interval_secs = 1\n").unwrap();
    let config_arg = config.to_string_lossy().into_owned();
    let replica = Replica::start(
        None,
        Some((&weed, "single")),
        &["--config-file", &config_arg],
    );
    let http = client();
    let ready: Value = http
        .get(replica.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");

    let image = fixture("chelsea.png");
    let uploaded = upload(&http, &replica, &image).await;
    let id = uploaded["imageUUID"].as_str().unwrap().to_owned();
    let url = uploaded["imageURL"].as_str().unwrap().to_owned();
    assert_eq!(url, replica.url(&format!("/image/{id}.png")));
    assert_eq!(get_bytes(&http, &url).await, (200, image.clone()));
    // The object is in the bucket, under the prefix, as the same bytes.
    assert_eq!(weed.object_status(&format!("single/{id}")).await, 200);
    assert_eq!(
        get_bytes(&http, &replica.url(&format!("/image/{id}.jpg")))
            .await
            .0,
        404
    );

    // A removal reads its input from S3 and writes its result there.
    let task = uuid();
    let mut t = removal(&task, &id);
    t["outputType"] = json!("base64Data");
    let (status, body) = post(&http, &replica, json!([t])).await;
    assert_eq!(status, 200, "{body}");
    let item = &body["data"][0];
    assert_eq!(item["inputImageUUID"], id.as_str());
    let output = base64::engine::general_purpose::STANDARD
        .decode(item["imageBase64Data"].as_str().unwrap())
        .unwrap();
    assert!(output.starts_with(b"\x89PNG"));
    let out_id = item["imageUUID"].as_str().unwrap();
    assert_eq!(
        get_bytes(&http, &replica.url(&format!("/image/{out_id}.png"))).await,
        (200, output.clone())
    );
    // getResponse rebuilds the inline image from S3.
    let (status, again) = await_response(&http, &replica, &task).await;
    assert_eq!(status, 200);
    assert_eq!(again["data"][0]["imageBase64Data"], item["imageBase64Data"]);

    // After upload_secs the upload is gone for nobg at once, and from the bucket after a sweep.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(get_bytes(&http, &url).await.0, 404);
    let start = Instant::now();
    while weed.object_status(&format!("single/{id}")).await != 404 {
        assert!(start.elapsed() < Duration::from_secs(20), "never swept");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The output (ttl 3600 s by default) stays.
    assert_eq!(weed.object_status(&format!("single/{out_id}")).await, 200);
    std::fs::remove_file(config).unwrap();
}

/// Two replicas on one Redis and one bucket behave as one server.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_uploads_tasks_and_jobs() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let weed = SeaweedS3::start().await;
    let a = Replica::start(Some(&redis.url()), Some((&weed, "shared")), &[]);
    let b = Replica::start(Some(&redis.url()), Some((&weed, "shared")), &[]);
    let http = client();

    // An imageUpload on A is the input of a task on B; B's result is served by A too.
    let image = fixture("astronaut.png");
    let uploaded = upload(&http, &a, &image).await;
    let id = uploaded["imageUUID"].as_str().unwrap().to_owned();
    let task = uuid();
    let mut t = removal(&task, &id);
    t["outputType"] = json!("URL");
    let (status, body) = post(&http, &b, json!([t])).await;
    assert_eq!(status, 200, "{body}");
    let result_url = body["data"][0]["imageURL"].as_str().unwrap().to_owned();
    assert!(result_url.starts_with(&b.base), "{result_url}");
    let (status, from_b) = get_bytes(&http, &result_url).await;
    assert_eq!(status, 200);
    assert!(from_b.starts_with(b"\x89PNG"));
    let from_a = get_bytes(&http, &a.url(&path_of(&result_url))).await;
    assert_eq!(from_a, (200, from_b.clone()));

    // The same task UUID is refused by the other replica (and by the same one).
    let (status, body) = post(&http, &a, json!([removal(&task, &id)])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["code"], "conflictTaskUUID");

    // An async task submitted to A is answered by getResponse on B, with the result B stored
    // bytes for being the same as a sync run of the same input on A.
    let async_task = uuid();
    let mut t = removal(&async_task, &b64(&image));
    t["deliveryMethod"] = json!("async");
    t["outputType"] = json!("base64Data");
    let (status, ack) = post(&http, &a, json!([t])).await;
    assert_eq!(status, 200, "{ack}");
    let (status, answer) = await_response(&http, &b, &async_task).await;
    assert_eq!(status, 200, "{answer}");
    let item = &answer["data"][0];
    assert_eq!(item["status"], "success");
    assert_eq!(item["taskUUID"], async_task.as_str());
    let async_bytes = base64::engine::general_purpose::STANDARD
        .decode(item["imageBase64Data"].as_str().unwrap())
        .unwrap();
    assert_eq!(async_bytes, from_b, "same input, same model, same bytes");
    // A failed task's error is shared too, with its status.
    let bad = uuid();
    let mut t = removal(&bad, &uuid());
    t["deliveryMethod"] = json!("async");
    assert_eq!(post(&http, &a, json!([t])).await.0, 200);
    let (status, answer) = await_response(&http, &b, &bad).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["errors"][0]["code"], "invalidInputImage");
    assert_eq!(answer["errors"][0]["taskUUID"], bad.as_str());
    // Unknown tasks are unknown everywhere.
    let (status, body) = post(
        &http,
        &b,
        json!([{"taskType":"getResponse","taskUUID":uuid()}]),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["code"].as_str()),
        (404, Some("taskNotFound"))
    );

    // A predictions job created on A is polled on B until completed, its output served by B.
    let job: Value = http
        .post(a.url("/v1/predictions"))
        .header("x-api-key", KEY)
        .json(&json!({"model":"bria/remove-background","input":{"image":format!("data:image/png;base64,{}", b64(&image))}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_id = job["job_id"].as_str().expect("job id").to_owned();
    let start = Instant::now();
    let done = loop {
        let resp = http
            .get(b.url(&format!("/v1/predictions/{job_id}")))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let job: Value = resp.json().await.unwrap();
        match job["status"].as_str().unwrap() {
            "pending" | "processing" => {}
            "completed" => break job,
            other => panic!("{other}: {job}"),
        }
        assert!(start.elapsed() < WAIT, "job never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = done["result"]["output"].as_str().unwrap();
    let (status, bytes) = get_bytes(&http, &b.url(&path_of(output))).await;
    assert_eq!(status, 200);
    assert!(bytes.starts_with(b"\x89PNG"));
    // Cancelling a completed job on the other replica leaves it completed.
    let cancelled: Value = http
        .delete(b.url(&format!("/v1/predictions/{job_id}")))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "completed");
    drop(redis);
}

/// Redis going away: requests that need it fail at once with a clear 503, the replica stays
/// up, `/ready` says why, and everything works again once Redis is back.
#[tokio::test(flavor = "multi_thread")]
async fn redis_outage_gives_clean_503s_then_recovers() {
    let mut redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let replica = Replica::start(Some(&redis.url()), None, &[]);
    let http = client();
    let image = b64(&fixture("logo.png"));
    let (status, body) = post(&http, &replica, json!([removal(&uuid(), &image)])).await;
    assert_eq!(status, 200, "{body}");

    redis.kill();
    let started = Instant::now();
    let (status, body) = post(&http, &replica, json!([removal(&uuid(), &image)])).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["errors"][0]["code"], "serviceUnavailable");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a 503 must come quickly"
    );
    let (status, body) = post(
        &http,
        &replica,
        json!([{"taskType":"getResponse","taskUUID":uuid()}]),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["code"].as_str()),
        (503, Some("serviceUnavailable"))
    );
    let resp = http
        .post(replica.url("/v1/predictions"))
        .header("x-api-key", KEY)
        .json(&json!({"input":{"image":format!("data:image/png;base64,{image}")}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let resp = http.get(replica.url("/ready")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let ready: Value = resp.json().await.unwrap();
    assert!(ready["redis"]["error"].is_string(), "{ready}");

    redis.restart();
    let start = Instant::now();
    loop {
        let (status, body) = post(&http, &replica, json!([removal(&uuid(), &image)])).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(start.elapsed() < WAIT, "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = http.get(replica.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
}

/// Webhook POSTs received, by taskUUID.
type Deliveries = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

/// A loopback receiver for the tasks' webhooks: counts deliveries per task.
async fn webhook_receiver() -> (String, Deliveries) {
    use axum::routing::post as route_post;
    let deliveries = Deliveries::default();
    let seen = deliveries.clone();
    let app = axum::Router::new().route(
        "/hook",
        route_post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let item = if body["data"][0].is_object() {
                    &body["data"][0]
                } else {
                    &body["errors"][0]
                };
                let task = item["taskUUID"].as_str().unwrap_or("?").to_owned();
                *seen.lock().unwrap().entry(task).or_default() += 1;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), deliveries)
}

/// A 1024x1024 PNG: slow enough per task (debug build) for a replica to die holding some.
fn large_png() -> Vec<u8> {
    let small = image::load_from_memory(&fixture("astronaut.png")).unwrap();
    let large = small.resize_exact(1024, 1024, image::imageops::FilterType::Triangle);
    let mut out = std::io::Cursor::new(Vec::new());
    large.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn queue_config(extra: &str) -> String {
    let path = std::env::temp_dir().join(format!("nobg-scale-{}.toml", uuid()));
    std::fs::write(
        &path,
        format!("[batching]\nmax_batch = 2\n[cluster]\nclaim_idle_ms = 1500\n{extra}"),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// kill -9 of a replica in the middle of its batch: every async task still completes, on the
/// replica that takes its work over, and none is answered twice.
#[tokio::test(flavor = "multi_thread")]
async fn tasks_of_a_killed_replica_complete_elsewhere_once() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let weed = SeaweedS3::start().await;
    let (hook, deliveries) = webhook_receiver().await;
    let config = queue_config("");
    let flags = ["--config-file", &config, "--allow-network", "127.0.0.1/32"];
    let mut a = Replica::start(Some(&redis.url()), Some((&weed, "killed")), &flags);
    let http = client();
    let input = upload(&http, &a, &large_png()).await["imageUUID"]
        .as_str()
        .unwrap()
        .to_owned();

    const N: usize = 12;
    let tasks: Vec<String> = (0..N).map(|_| uuid()).collect();
    for task in &tasks {
        let mut t = removal(task, &input);
        t["deliveryMethod"] = json!("async");
        t["webhookURL"] = json!(hook);
        let (status, ack) = post(&http, &a, json!([t])).await;
        assert_eq!(status, 200, "{ack}");
    }
    // Kill A once it has finished a task and holds others, read but unconfirmed.
    let mut conn = redis_conn(&redis).await;
    let held = || async {
        let mut conn = redis_conn(&redis).await;
        // XPENDING's summary: count, smallest id, largest id, per-consumer counts.
        let summary: (usize, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg("nobg:queue:tiny")
            .arg("nobg")
            .query_async(&mut conn)
            .await
            .unwrap();
        summary.0
    };
    let start = Instant::now();
    while deliveries.lock().unwrap().is_empty() || held().await == 0 {
        assert!(start.elapsed() < WAIT, "A never finished a task");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.process.0.kill().unwrap();
    a.process.0.wait().unwrap();
    let done_by_a = deliveries.lock().unwrap().len();
    let held_by_a = held().await;
    assert!(done_by_a < N, "A finished everything before it was killed");
    assert!(held_by_a > 0, "A held no task when killed");

    // B takes over: every task completes, each answered once.
    let b = Replica::start(Some(&redis.url()), Some((&weed, "killed")), &flags);
    for task in &tasks {
        let (status, answer) = await_response(&http, &b, task).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["data"][0]["status"], "success", "{answer}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts = deliveries.lock().unwrap().clone();
    for task in &tasks {
        assert!(
            counts.get(task).copied().unwrap_or(0) <= 1,
            "{task} answered twice: {counts:?}"
        );
    }
    assert!(counts.len() >= N - 1, "webhooks lost: {counts:?}");
    let queued: usize = redis::cmd("XLEN")
        .arg("nobg:queue:tiny")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(queued, 0, "the stream still holds work");
    let _ = std::fs::remove_file(config);
}

/// A task whose replicas keep dying on it is given up with an error result and kept in the
/// dead-letter list; a full stream refuses new async tasks with 429. A consumer that reads an
/// entry and never confirms it is a replica that died holding it.
#[tokio::test(flavor = "multi_thread")]
async fn a_task_delivered_too_often_goes_to_the_dead_letter_list() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let weed = SeaweedS3::start().await;
    let mut conn = redis_conn(&redis).await;

    // The ghost replica, in the group before any other: it takes an entry and dies.
    let task = uuid();
    let mut raw = removal(&task, &b64(&fixture("logo.png")));
    raw["deliveryMethod"] = json!("async");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("nobg:queue:tiny")
        .arg("nobg")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg("nobg:queue:tiny")
        .arg("*")
        .arg("task")
        .arg(raw.to_string())
        .arg("owner")
        .arg(KEY)
        .arg("has_owner")
        .arg(1)
        .arg("base")
        .arg("http://127.0.0.1:9")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("nobg")
        .arg("ghost")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg("nobg:queue:tiny")
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();

    let config = queue_config("max_deliveries = 1\nmax_queued = 1\n");
    let config = config.replace("claim_idle_ms = 1500", "claim_idle_ms = 5000");
    let flags = ["--config-file", &config];
    let replica = Replica::start(Some(&redis.url()), Some((&weed, "dead")), &flags);
    let http = client();

    // The stream holds max_queued (1) entries, the ghost's: a new async task is refused.
    let refused = uuid();
    let mut t = removal(&refused, &b64(&fixture("logo.png")));
    t["deliveryMethod"] = json!("async");
    let (status, body) = post(&http, &replica, json!([t.clone()])).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["errors"][0]["code"], "rateLimitExceeded");
    assert_eq!(body["errors"][0]["taskUUID"], refused.as_str());

    // After claim_idle_ms the replica takes the entry over: its second delivery, one more
    // than max_deliveries, so it is given up instead of run.
    let start = Instant::now();
    let (status, answer) = loop {
        let (status, answer) = await_response(&http, &replica, &task).await;
        if status != 404 {
            break (status, answer);
        }
        assert!(start.elapsed() < WAIT, "never given up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 500, "{answer}");
    assert_eq!(answer["errors"][0]["code"], "internalServerError");
    assert_eq!(answer["errors"][0]["taskUUID"], task.as_str());
    let dead: Vec<String> = redis::cmd("LRANGE")
        .arg("nobg:dead:tiny")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let dead: Value = serde_json::from_str(&dead[0]).unwrap();
    assert_eq!(dead["task"]["taskUUID"], task.as_str());
    assert_eq!(dead["deliveries"], 2);

    // The stream is empty again: the refused task may be retried under its UUID, and runs.
    let (status, ack) = post(&http, &replica, json!([t])).await;
    assert_eq!(status, 200, "{ack}");
    let (status, answer) = await_response(&http, &replica, &refused).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"][0]["status"], "success");
    let _ = std::fs::remove_file(config);
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket on `replica`, authenticated (resuming `session` if given); and the session's
/// id as the server answered it.
async fn ws_connect(replica: &Replica, session: Option<&str>) -> (Ws, String) {
    use futures_util::SinkExt;
    let url = format!("{}/v1", replica.base.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket connects");
    let mut auth = json!({"taskType":"authentication","apiKey":KEY});
    if let Some(id) = session {
        auth["connectionSessionUUID"] = json!(id);
    }
    ws.send(Message::text(json!([auth]).to_string()))
        .await
        .unwrap();
    let answer = ws_next(&mut ws, WAIT).await.expect("authentication answer");
    let id = answer["data"][0]["connectionSessionUUID"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned();
    (ws, id)
}

async fn ws_send(ws: &mut Ws, tasks: Value) {
    use futures_util::SinkExt;
    ws.send(Message::text(tasks.to_string())).await.unwrap();
}

/// The next text frame, or `None` when none comes within `limit`.
async fn ws_next(ws: &mut Ws, limit: Duration) -> Option<Value> {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) | Ok(None) => return None,
            Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => panic!("WebSocket failed: {e}"),
        }
    }
}

/// Result frames by taskUUID until `n` tasks are answered, then a quiet second in which no
/// further frame may come (no task is answered twice).
async fn ws_results(ws: &mut Ws, n: usize) -> std::collections::HashMap<String, Vec<Value>> {
    let mut results = std::collections::HashMap::<String, Vec<Value>>::new();
    while results.len() < n {
        let frame = ws_next(ws, WAIT)
            .await
            .unwrap_or_else(|| panic!("only {} of {n} results came: {results:?}", results.len()));
        let item = if frame["data"][0].is_object() {
            frame["data"][0].clone()
        } else {
            frame["errors"][0].clone()
        };
        let task = item["taskUUID"]
            .as_str()
            .expect("a task's frame")
            .to_owned();
        results.entry(task).or_default().push(item);
    }
    if let Some(extra) = ws_next(ws, Duration::from_secs(1)).await {
        panic!("a frame after every task was answered: {extra}");
    }
    results
}

fn front_config() -> String {
    let path = std::env::temp_dir().join(format!("nobg-scale-{}.toml", uuid()));
    std::fs::write(&path, "[cluster]\nrun_queued = false\n").unwrap();
    path.to_string_lossy().into_owned()
}

/// WebSocket tasks sent to a front replica (which runs no queued work) are run by another
/// replica, and each result comes back on the connection that sent the task, once.
#[tokio::test(flavor = "multi_thread")]
async fn websocket_tasks_run_elsewhere_answer_on_their_connection() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let weed = SeaweedS3::start().await;
    let config = front_config();
    let a = Replica::start(
        Some(&redis.url()),
        Some((&weed, "ws")),
        &["--config-file", &config],
    );
    let b = Replica::start(Some(&redis.url()), Some((&weed, "ws")), &[]);
    let http = client();
    let input = upload(&http, &a, &fixture("astronaut.png")).await["imageUUID"]
        .as_str()
        .unwrap()
        .to_owned();

    let (mut ws, _) = ws_connect(&a, None).await;
    let tasks: Vec<String> = (0..6).map(|_| uuid()).collect();
    let mut frame: Vec<Value> = tasks.iter().map(|t| removal(t, &input)).collect();
    let bad = uuid();
    frame.push(removal(&bad, &uuid()));
    ws_send(&mut ws, Value::Array(frame)).await;
    let results = ws_results(&mut ws, tasks.len() + 1).await;

    for task in &tasks {
        let items = &results[task];
        assert_eq!(items.len(), 1, "{task} answered {} times", items.len());
        let url = items[0]["imageURL"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", items[0]));
        assert!(
            url.starts_with(&a.base),
            "the URL names the replica asked: {url}"
        );
        let (status, bytes) = get_bytes(&http, url).await;
        assert_eq!(status, 200);
        assert!(bytes.starts_with(b"\x89PNG"));
        // The same result is B's record too.
        let (status, answer) = await_response(&http, &b, task).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["data"][0]["imageUUID"], items[0]["imageUUID"]);
    }
    assert_eq!(results[&bad].len(), 1);
    assert_eq!(results[&bad][0]["code"], "invalidInputImage");

    // Only B consumes the queue: A never ran a queued task.
    let mut conn = redis_conn(&redis).await;
    let consumers: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg("nobg:queue:tiny")
        .arg("nobg")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(consumers.len(), 1, "one consumer: B's");
    let queued: usize = redis::cmd("XLEN")
        .arg("nobg:queue:tiny")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(queued, 0);
    let _ = std::fs::remove_file(config);
}

/// A client that left replica A resumes its session on replica B: the results of the tasks it
/// sent to A, run while it was away, are delivered on B, each once; none is left for a later
/// resume, and a task sent after resuming on A again reaches it live.
#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_session_resumes_on_another_replica() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let weed = SeaweedS3::start().await;
    let config = front_config();
    let front = ["--config-file", config.as_str()];
    let a = Replica::start(Some(&redis.url()), Some((&weed, "resume")), &front);
    let http = client();
    let input = upload(&http, &a, &fixture("logo.png")).await["imageUUID"]
        .as_str()
        .unwrap()
        .to_owned();

    // Tasks sent to A; nothing runs them yet (A runs no queued work), and the client leaves.
    let (mut ws, session) = ws_connect(&a, None).await;
    let tasks: Vec<String> = (0..4).map(|_| uuid()).collect();
    for task in &tasks {
        let mut t = removal(task, &input);
        t["outputType"] = json!("base64Data");
        ws_send(&mut ws, json!([t])).await;
    }
    assert!(ws_next(&mut ws, Duration::from_millis(500)).await.is_none());
    ws.close(None).await.unwrap();
    drop(ws);

    // B runs them; with no connection anywhere, their frames wait in the session's buffer.
    let b = Replica::start(Some(&redis.url()), Some((&weed, "resume")), &[]);
    let mut conn = redis_conn(&redis).await;
    let buffer = format!("nobg:ws-buffer:{session}");
    let start = Instant::now();
    loop {
        let len: usize = redis::cmd("LLEN")
            .arg(&buffer)
            .query_async(&mut conn)
            .await
            .unwrap();
        if len == tasks.len() {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "{len} of {} frames buffered",
            tasks.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ttl: i64 = redis::cmd("TTL")
        .arg(&buffer)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (1..=120).contains(&ttl),
        "the resume window is the buffer's TTL: {ttl}"
    );

    // Resumed on B: every buffered result, once.
    let (mut ws, resumed) = ws_connect(&b, Some(&session)).await;
    assert_eq!(resumed, session);
    let results = ws_results(&mut ws, tasks.len()).await;
    for task in &tasks {
        let items = &results[task];
        assert_eq!(items.len(), 1, "{task} answered {} times", items.len());
        let png = base64::engine::general_purpose::STANDARD
            .decode(items[0]["imageBase64Data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
    }
    ws.close(None).await.unwrap();
    let len: usize = redis::cmd("LLEN")
        .arg(&buffer)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 0, "delivered frames leave the buffer");

    // Back on A: nothing delivered twice; a new task runs on B and reaches A live.
    let (mut ws, again) = ws_connect(&a, Some(&session)).await;
    assert_eq!(again, session);
    assert!(ws_next(&mut ws, Duration::from_secs(1)).await.is_none());
    let live = uuid();
    ws_send(&mut ws, json!([removal(&live, &input)])).await;
    let results = ws_results(&mut ws, 1).await;
    assert_eq!(results[&live].len(), 1);
    assert!(results[&live][0]["imageURL"].is_string(), "{results:?}");

    // A session id that does not exist (or expired) opens a new session.
    let (_ws, other) = ws_connect(&b, Some(&uuid())).await;
    assert_ne!(other, session);
    let _ = std::fs::remove_file(config);
}

/// With Redis, `ttl.max_retained_tasks` bounds the finished tasks kept across replicas: past
/// it the oldest are forgotten (taskNotFound, and their UUID is free again).
#[tokio::test(flavor = "multi_thread")]
async fn redis_keeps_at_most_max_retained_tasks() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let config = std::env::temp_dir().join(format!("nobg-scale-{}.toml", uuid()));
    std::fs::write(&config, "[ttl]\nmax_retained_tasks = 3\n").unwrap();
    let config_arg = config.to_string_lossy().into_owned();
    let a = Replica::start(Some(&redis.url()), None, &["--config-file", &config_arg]);
    let b = Replica::start(Some(&redis.url()), None, &["--config-file", &config_arg]);
    let http = client();
    let image = b64(&fixture("logo.png"));
    let tasks: Vec<String> = (0..5).map(|_| uuid()).collect();
    for (i, task) in tasks.iter().enumerate() {
        let replica = if i % 2 == 0 { &a } else { &b };
        let (status, body) = post(&http, replica, json!([removal(task, &image)])).await;
        assert_eq!(status, 200, "{body}");
    }
    for (i, task) in tasks.iter().enumerate() {
        let (status, body) = await_response(&http, &a, task).await;
        if i < 2 {
            assert_eq!(status, 404, "task {i} should be forgotten: {body}");
            assert_eq!(body["errors"][0]["code"], "taskNotFound");
        } else {
            assert_eq!(status, 200, "task {i}: {body}");
            assert_eq!(body["data"][0]["status"], "success");
        }
    }
    let mut conn = redis_conn(&redis).await;
    let indexed: usize = redis::cmd("ZCARD")
        .arg("nobg:task-index")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(indexed, 3);
    // A forgotten task's UUID may be used again; the newest three are still taken.
    let (status, body) = post(&http, &b, json!([removal(&tasks[0], &image)])).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&http, &b, json!([removal(&tasks[4], &image)])).await;
    assert_eq!(
        (status, body["errors"][0]["code"].as_str()),
        (400, Some("conflictTaskUUID"))
    );
    std::fs::remove_file(config).unwrap();
}

/// A sync task that finishes while Redis is down still answers its client, and its record is
/// written once Redis is back (retried with backoff), instead of being lost for getResponse.
#[tokio::test(flavor = "multi_thread")]
async fn a_result_finished_during_a_redis_outage_is_recorded_afterwards() {
    let mut redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let replica = Replica::start(Some(&redis.url()), None, &[]);
    let http = client();
    let task = uuid();
    let mut t = removal(&task, &b64(&large_png()));
    t["outputType"] = json!("base64Data");
    let running = {
        let http = http.clone();
        let url = replica.url("/v1");
        tokio::spawn(async move {
            let resp = http
                .post(url)
                .bearer_auth(KEY)
                .json(&json!([t]))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        })
    };
    // Redis dies while the task runs (it is recorded as processing).
    let start = Instant::now();
    loop {
        let (status, body) = post(
            &http,
            &replica,
            json!([{"taskType":"getResponse","taskUUID":task}]),
        )
        .await;
        if status == 200 && body["data"][0]["status"] == "processing" {
            break;
        }
        assert!(start.elapsed() < WAIT, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    redis.kill();
    assert!(
        !running.is_finished(),
        "precondition: the task was still running when Redis died"
    );
    let (status, body) = running.await.unwrap();
    assert_eq!(status, 200, "the client gets its result: {body}");
    let image = body["data"][0]["imageBase64Data"].clone();
    assert!(image.is_string());

    // Redis is back empty (no persistence): the replica writes the record again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();
    let start = Instant::now();
    loop {
        let (status, body) = post(
            &http,
            &replica,
            json!([{"taskType":"getResponse","taskUUID":task}]),
        )
        .await;
        if status == 200 {
            assert_eq!(body["data"][0]["status"], "success", "{body}");
            assert_eq!(body["data"][0]["imageBase64Data"], image);
            break;
        }
        assert!(matches!(status, 404 | 503), "{status} {body}");
        assert!(
            start.elapsed() < WAIT,
            "the result was never recorded: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// kill -9 of the replica running a WebSocket connection's tasks: the replica that takes its
/// work over answers the rest, on the connection (held by a third replica), each task once.
#[tokio::test(flavor = "multi_thread")]
async fn websocket_tasks_of_a_killed_replica_are_answered_once() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let weed = SeaweedS3::start().await;
    let front = front_config();
    let a = Replica::start(
        Some(&redis.url()),
        Some((&weed, "ws-kill")),
        &["--config-file", &front],
    );
    let config = queue_config("");
    let flags = ["--config-file", config.as_str()];
    let mut b = Replica::start(Some(&redis.url()), Some((&weed, "ws-kill")), &flags);
    let http = client();
    let input = upload(&http, &a, &large_png()).await["imageUUID"]
        .as_str()
        .unwrap()
        .to_owned();

    let (mut ws, _) = ws_connect(&a, None).await;
    const N: usize = 8;
    let tasks: Vec<String> = (0..N).map(|_| uuid()).collect();
    let frame: Vec<Value> = tasks.iter().map(|t| removal(t, &input)).collect();
    ws_send(&mut ws, Value::Array(frame)).await;

    // Kill B once a result has reached A and B holds others, read but unconfirmed.
    let first = ws_next(&mut ws, WAIT).await.expect("a first result");
    let first_task = first["data"][0]["taskUUID"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let mut conn = redis_conn(&redis).await;
    let start = Instant::now();
    let held = loop {
        let summary: (usize, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg("nobg:queue:tiny")
            .arg("nobg")
            .query_async(&mut conn)
            .await
            .unwrap();
        if summary.0 > 0 {
            break summary.0;
        }
        assert!(start.elapsed() < WAIT, "B never held a task");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    b.process.0.kill().unwrap();
    b.process.0.wait().unwrap();
    assert!(held > 0);

    // C takes B's work over; the results still come to A's connection.
    let _c = Replica::start(Some(&redis.url()), Some((&weed, "ws-kill")), &flags);
    let mut results = ws_results(&mut ws, N - 1).await;
    assert!(
        !results.contains_key(&first_task),
        "{first_task} answered twice"
    );
    results.insert(first_task, vec![first["data"][0].clone()]);
    for task in &tasks {
        let items = results
            .get(task)
            .unwrap_or_else(|| panic!("{task} never answered"));
        assert_eq!(items.len(), 1, "{task} answered {} times", items.len());
        assert!(items[0]["imageURL"].is_string(), "{}", items[0]);
    }
    let _ = std::fs::remove_file(config);
    let _ = std::fs::remove_file(front);
}

/// With Redis, `ttl.max_prediction_jobs` counts the jobs of all replicas: full is 429 in the
/// predictions API's shape on any of them, until the jobs' retention ends.
#[tokio::test(flavor = "multi_thread")]
async fn the_prediction_job_cap_holds_across_replicas() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let config = std::env::temp_dir().join(format!("nobg-scale-{}.toml", uuid()));
    std::fs::write(
        &config,
        "[ttl]\nmax_prediction_jobs = 2\ntask_retention_secs = 2\n",
    )
    .unwrap();
    let config_arg = config.to_string_lossy().into_owned();
    let a = Replica::start(Some(&redis.url()), None, &["--config-file", &config_arg]);
    let b = Replica::start(Some(&redis.url()), None, &["--config-file", &config_arg]);
    let http = client();
    let body = json!({"model":"bria/remove-background",
        "input":{"image":format!("data:image/png;base64,{}", b64(&fixture("logo.png")))}});
    let create = |replica: &Replica| {
        let request = http
            .post(replica.url("/v1/predictions"))
            .header("x-api-key", KEY)
            .json(&body);
        async move {
            let resp = request.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    for replica in [&a, &b] {
        let (status, job) = create(replica).await;
        assert_eq!(status, 200, "{job}");
    }
    for replica in [&a, &b] {
        let (status, full) = create(replica).await;
        assert_eq!(status, 429, "{full}");
        assert_eq!(full["status"], 429);
        assert!(
            full["error"]
                .as_str()
                .unwrap()
                .contains("job store is full"),
            "{full}"
        );
    }
    // Past the retention the jobs are forgotten and new ones are taken again.
    let start = Instant::now();
    loop {
        let (status, job) = create(&b).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "{job}");
        assert!(start.elapsed() < WAIT, "the store never took jobs again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "jobs kept for their retention"
    );
    std::fs::remove_file(config).unwrap();
}
