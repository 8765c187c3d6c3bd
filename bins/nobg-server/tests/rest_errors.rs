//! REST error paths: Runware's error objects, HTTP statuses, and batches that keep their good
//! tasks.

mod common;

use common::*;
use serde_json::{json, Value};

fn error_of(body: &Value) -> &Value {
    &body["errors"][0]
}

#[tokio::test]
async fn authentication_errors() {
    let srv = TestServer::start().await;
    let task = json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":b64(&fixture("chelsea.png"))}]);

    let (status, body) = srv.post_with_key(task.clone(), None).await;
    assert_eq!(status, 401);
    assert_eq!(error_of(&body)["code"], "missingApiKey");
    assert_eq!(body["data"], json!([]));

    let (status, body) = srv.post_with_key(task.clone(), Some("wrong")).await;
    assert_eq!(status, 401);
    assert_eq!(
        error_of(&body),
        &json!({"code":"invalidApiKey","message":"Invalid API key. Get one at https://my.runware.ai/signup",
                "parameter":"apiKey","type":"string","taskType":"authentication",
                "documentation":"https://runware.ai/docs/en/tools/remove-background#request-apikey"})
    );

    let mut with_bad_payload_key = vec![json!({"taskType":"authentication","apiKey":"wrong"})];
    with_bad_payload_key.extend(task.as_array().unwrap().iter().cloned());
    let (status, _) = srv
        .post_with_key(Value::Array(with_bad_payload_key), None)
        .await;
    assert_eq!(status, 401);
    srv.stop().await;
}

#[tokio::test]
async fn body_errors() {
    let srv = TestServer::start().await;
    for (body, what) in [
        ("[{", "truncated JSON"),
        ("42", "not an array"),
        ("[]", "empty array"),
    ] {
        let resp = srv
            .http
            .post(srv.url("/v1"))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{what}");
        let json: Value = resp.json().await.unwrap();
        assert_eq!(error_of(&json)["code"], "invalidRequestBody", "{what}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn body_over_the_limit_is_413_in_runware_shape() {
    let mut config = test_config();
    config.limits.max_body_bytes = 10_000;
    let srv = TestServer::with_config(config).await;
    let big = "A".repeat(20_000);
    let (status, body) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":big}]))
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(error_of(&body)["code"], "invalidRequestBody");
    srv.stop().await;
}

#[tokio::test]
async fn a_batch_with_bad_tasks_still_answers_the_good_one() {
    let srv = TestServer::start().await;
    let good = new_uuid();
    let raw = b64(&fixture("chelsea.png"));
    let cases = [
        (
            json!({"taskType":"imageInference","taskUUID":new_uuid()}),
            "unsupportedTaskType",
            "taskType",
        ),
        (
            json!({"taskType":"removeBackground","taskUUID":"not-a-uuid","inputImage":raw}),
            "invalidTaskUUID",
            "taskUUID",
        ),
        (
            json!({"taskType":"removeBackground","inputImage":raw}),
            "missingTaskUUID",
            "taskUUID",
        ),
        (
            json!({"taskType":"removeBackground","taskUUID":new_uuid()}),
            "missingInputImage",
            "inputImage",
        ),
        (
            json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw,"model":"civitai:4384@1"}),
            "invalidModel",
            "model",
        ),
        (
            json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw,"outputType":"file"}),
            "invalidOutputType",
            "outputType",
        ),
        (
            json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw,"outputFormat":"SVG"}),
            "invalidOutputFormat",
            "outputFormat",
        ),
        (
            json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw,"outputQuality":100}),
            "invalidOutputQuality",
            "outputQuality",
        ),
        (
            json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw,"ttl":30}),
            "invalidTtl",
            "ttl",
        ),
        (
            json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw,"deliveryMethod":"later"}),
            "invalidDeliveryMethod",
            "deliveryMethod",
        ),
        (
            json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw,"webhookURL":"ftp://x"}),
            "invalidWebhookURL",
            "webhookURL",
        ),
        (
            json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw,"settings":{"alphaMattingErodeSize":0}}),
            "invalidAlphaMattingErodeSize",
            "settings.alphaMattingErodeSize",
        ),
        (
            json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":"bm90IGFuIGltYWdl"}),
            "invalidInputImage",
            "inputImage",
        ),
        (
            json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputs":{"image":"%%%"}}),
            "invalidInputImage",
            "inputs.image",
        ),
        (
            json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":new_uuid()}),
            "invalidInputImage",
            "inputImage",
        ),
        (
            json!({"taskType":"getResponse","taskUUID":new_uuid()}),
            "taskNotFound",
            "taskUUID",
        ),
    ];
    let mut batch = vec![
        json!({"taskType":"removeBackground","taskUUID":good,"inputImage":raw,"outputFormat":"PNG"}),
    ];
    batch.extend(cases.iter().map(|(task, _, _)| task.clone()));
    let (status, body) = srv.post(Value::Array(batch)).await;
    assert_eq!(status, 200, "partial success is 200: {body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["taskUUID"], good.as_str());
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), cases.len());
    for (err, (task, code, parameter)) in errors.iter().zip(&cases) {
        assert_eq!(err["code"], *code, "{task} -> {err}");
        assert_eq!(err["parameter"], *parameter, "{task} -> {err}");
        assert_eq!(
            err["taskUUID"], task["taskUUID"],
            "every task error carries its taskUUID: {err}"
        );
        assert_eq!(err["taskType"], task["taskType"], "{err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    srv.stop().await;
}

#[tokio::test]
async fn single_failures_carry_their_status() {
    let srv = TestServer::start().await;
    let raw = b64(&fixture("chelsea.png"));
    let (status, body) = srv
        .post(json!([{"taskType":"getResponse","taskUUID":new_uuid()}]))
        .await;
    assert_eq!(
        (status, error_of(&body)["code"].as_str()),
        (404, Some("taskNotFound"))
    );
    let (status, _) = srv.post(json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw,"model":"x:1@1"}])).await;
    assert_eq!(status, 400);

    // A reused taskUUID conflicts.
    let task_uuid = new_uuid();
    let task = json!([{"taskType":"removeBackground","taskUUID":task_uuid,"inputImage":raw}]);
    assert_eq!(srv.post(task.clone()).await.0, 200);
    let (status, body) = srv.post(task).await;
    assert_eq!(
        (status, error_of(&body)["code"].as_str()),
        (400, Some("conflictTaskUUID"))
    );
    assert_eq!(error_of(&body)["taskUUID"], task_uuid.as_str());
    srv.stop().await;
}

#[tokio::test]
async fn internal_urls_are_refused_unless_allow_listed() {
    let receiver = Receiver::start(0, Some(fixture("chelsea.png"))).await;
    let mut config = test_config();
    config.fetch.allow_networks.clear();
    let srv = TestServer::with_config(config).await;
    for url in [
        receiver.url("/a.png"),
        "http://localhost:1/a.png".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::1]/a.png".to_owned(),
    ] {
        let (status, body) = srv
            .post(json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":url}]))
            .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(error_of(&body)["code"], "invalidInputImage");
        assert!(
            error_of(&body)["message"]
                .as_str()
                .unwrap()
                .contains("not allowed"),
            "{body}"
        );
    }
    assert_eq!(receiver.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Webhook and upload destinations obey the same rule, refused at submission (400).
    let (status, body) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":b64(&fixture("chelsea.png")),
            "uploadEndpoint":receiver.url("/put")}]))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_of(&body)["code"], "invalidUploadEndpoint");
    assert_eq!(error_of(&body)["parameter"], "uploadEndpoint");
    assert_eq!(receiver.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    srv.stop().await;
}

#[tokio::test]
async fn unknown_files_are_404() {
    let srv = TestServer::start().await;
    let (status, _) = srv
        .get_bytes(&srv.url(&format!("/image/{}.png", new_uuid())))
        .await;
    assert_eq!(status, 404);
    let (status, _) = srv
        .get_bytes(&srv.url("/image/..%2F..%2Fetc%2Fpasswd"))
        .await;
    assert_eq!(status, 404);
    srv.stop().await;
}

#[tokio::test]
async fn redirects_are_checked_again() {
    // An allow-listed origin (127.0.0.1) that redirects to a private address.
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::FOUND,
            [(
                axum::http::header::LOCATION,
                "http://10.255.255.1/secret.png",
            )],
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let srv = TestServer::start().await;
    let (status, body) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":format!("http://{origin}/a.png")}]))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_of(&body)["message"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{body}"
    );
    srv.stop().await;
}
