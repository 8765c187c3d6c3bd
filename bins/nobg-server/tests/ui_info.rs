//! The web page's switch (`--no-ui`, `NOBG_NO_UI`, `ui` in the config), `GET /info`, and
//! `bria:2@1` on a server without RMBG-2.0.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use nobg_server::models::default_air_map;
use serde_json::{json, Value};

#[tokio::test]
async fn info_lists_models_airs_key_and_limits_without_a_key() {
    let mut config = test_config();
    config.limits.max_image_bytes = 12_345_678;
    config.limits.max_image_side = 4321;
    let srv = TestServer::with_config(config).await;
    // No key sent: /info is public.
    let resp = srv.http.get(srv.url("/info")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let info: Value = resp.json().await.unwrap();
    assert_eq!(info["name"], "nobg");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        info["models"],
        json!([{"name": "tiny", "config": "tiny", "default": true}])
    );
    let airs: Vec<&str> = info["air"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    // The default AIR first, then the ids test_config maps to tiny; none mapped elsewhere.
    assert_eq!(airs[0], "runware:109@1");
    for air in ["bria:2@1", "runware:110@1", "runware:112@10"] {
        assert!(airs.contains(&air), "{air} in {airs:?}");
    }
    assert!(!airs.contains(&"runware:112@9"), "{airs:?}");
    assert_eq!(info["apiKeyRequired"], true);
    assert_eq!(info["limits"]["maxImageBytes"], 12_345_678);
    assert_eq!(info["limits"]["maxImageSide"], 4321);
    srv.stop().await;

    let mut open = test_config();
    open.api_keys.clear();
    let srv = TestServer::with_config(open).await;
    let info: Value = srv
        .http
        .get(srv.url("/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["apiKeyRequired"], false);
    srv.stop().await;
}

async fn status_of(srv: &TestServer, path: &str) -> (u16, Option<String>, Option<String>) {
    let resp = srv.http.get(srv.url(path)).send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    (
        resp.status().as_u16(),
        header("content-type"),
        header("content-security-policy"),
    )
}

#[tokio::test]
async fn the_page_is_served_with_its_csp_unless_ui_is_off() {
    let srv = TestServer::start().await;
    let (status, kind, csp) = status_of(&srv, "/").await;
    assert_eq!(status, 200);
    assert_eq!(kind.as_deref(), Some("text/html; charset=utf-8"));
    assert_eq!(csp.as_deref(), Some(nobg_server::ui::CSP));
    for asset in ["/ui/app.js", "/ui/app.css", "/favicon.svg"] {
        assert_eq!(status_of(&srv, asset).await.0, 200, "{asset}");
    }
    srv.stop().await;

    let mut config = test_config();
    config.ui = false;
    let srv = TestServer::with_config(config).await;
    for page in ["/", "/ui/app.js", "/ui/app.css", "/favicon.svg"] {
        assert_eq!(status_of(&srv, page).await.0, 404, "{page} with ui off");
    }
    // The APIs stay.
    assert_eq!(status_of(&srv, "/info").await.0, 200);
    assert_eq!(status_of(&srv, "/health").await.0, 200);
    srv.stop().await;
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real binary on the tiny model, with `extra` flags and `NOBG_NO_UI = no_ui_env`.
fn binary(extra: &[&str], no_ui_env: Option<&str>) -> Server {
    let storage = std::env::temp_dir().join(format!("nobg-ui-{}", new_uuid()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nobg-server"));
    cmd.args(["--listen", "127.0.0.1:0", "--synthetic", "tiny"])
        .args(extra)
        .arg("--storage-dir")
        .arg(&storage)
        .env("RUST_LOG", "info")
        .env_remove("NOBG_NO_UI")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(value) = no_ui_env {
        cmd.env("NOBG_NO_UI", value);
    }
    let mut child = cmd.spawn().expect("binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("addr=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("server logs its address");
    Server(child, format!("http://{addr}"))
}

#[tokio::test]
async fn no_ui_flag_and_environment_variable_turn_the_page_off() {
    let http = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    for (flags, env, page) in [
        (&[][..], None, 200),
        (&["--no-ui"][..], None, 404),
        (&[][..], Some("1"), 404),
        (&[][..], Some("true"), 404),
        (&[][..], Some("false"), 200),
    ] {
        let server = binary(flags, env);
        let status = |path: &'static str| {
            let http = http.clone();
            let url = format!("{}{path}", server.1);
            async move { http.get(url).send().await.unwrap().status().as_u16() }
        };
        assert_eq!(
            status("/").await,
            page,
            "flags {flags:?}, NOBG_NO_UI {env:?}"
        );
        assert_eq!(status("/ui/app.js").await, page, "{flags:?} {env:?}");
        assert_eq!(status("/info").await, 200, "{flags:?} {env:?}");
    }
}

#[tokio::test]
async fn bria_2_without_rmbg_2_is_invalid_model_naming_the_fix() {
    let mut config = test_config();
    // The built-in map: bria:2@1 is RMBG-2.0's, which this server (tiny only) lacks.
    config.air_map = default_air_map();
    let srv = TestServer::with_config(config).await;
    let task = new_uuid();
    let (status, body) = srv
        .post(
            json!([{"taskType":"removeBackground","taskUUID":task,"model":"bria:2@1",
            "inputImage":data_uri(&transparent_logo()),"outputType":"base64Data"}]),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["code"], "invalidModel", "{body}");
    assert_eq!(error["taskUUID"], task.as_str());
    assert_eq!(error["parameter"], "model");
    let message = error["message"].as_str().unwrap();
    for fix in [
        "rmbg-2.0",
        "https://huggingface.co/briaai/RMBG-2.0",
        "HF_TOKEN",
        "licence",
    ] {
        assert!(message.contains(fix), "`{fix}` in {message}");
    }
    assert!(
        body.get("data")
            .is_none_or(|d| d.as_array().unwrap().is_empty()),
        "{body}"
    );
    srv.stop().await;
}
