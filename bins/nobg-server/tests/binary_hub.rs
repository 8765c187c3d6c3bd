//! The real binary when its model cannot come from the Hugging Face hub: an unreachable hub
//! (`HF_ENDPOINT` on a closed loopback port) and a gated repository (a local server answering as
//! the hub does: 401 without a token, 403 with a token that has no access, both with
//! `X-Error-Code: GatedRepo`). Each must end the process non-zero with one line saying what to
//! do, and no backtrace or cause chain.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a failed start printed, and how it ended.
struct Failed {
    code: Option<i32>,
    stderr: String,
}

impl Failed {
    /// The one error line; asserts it is the only one and that nothing else looks like a
    /// backtrace or a cause chain.
    fn error_line(&self) -> &str {
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("nobg-server: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "exactly one error line:\n{}", self.stderr);
        for noise in ["panicked", "Backtrace", "Caused by", "RUST_BACKTRACE"] {
            assert!(!self.stderr.contains(noise), "{noise}:\n{}", self.stderr);
        }
        assert_eq!(
            self.stderr.lines().last(),
            Some(errors[0]),
            "the error is the last word:\n{}",
            self.stderr
        );
        errors[0]
    }
}

/// Runs `nobg-server ARGS` with an empty hub cache and `HF_ENDPOINT = endpoint`; it must exit
/// (not serve) within a minute.
fn run_server(args: &[&str], endpoint: &str, token: Option<&str>) -> Failed {
    let scratch = std::env::temp_dir().join(format!("nobg-hub-{}", uuid::Uuid::new_v4()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nobg-server"));
    cmd.args(["--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--storage-dir")
        .arg(scratch.join("storage"))
        .env("HF_HOME", scratch.join("hf"))
        .env("HF_ENDPOINT", endpoint)
        .env("RUST_LOG", "info")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_CACHE")
        .env_remove("NOBG_DEVICE")
        .env_remove("NOBG_CONFIG_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        cmd.env("HF_TOKEN", token);
    }
    let mut child = cmd.spawn().expect("binary starts");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not exit: it must not serve without its model");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_dir_all(&scratch);
    Failed {
        code: status.code(),
        stderr: reader.join().unwrap(),
    }
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The request lines and `Authorization` headers a fake hub saw.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A local server answering every request as huggingface.co answers a download from a gated
/// repository: `status` (401 anonymous, 403 with a token lacking access), `X-Error-Code:
/// GatedRepo`, the hub's `X-Error-Message`, a JSON error body.
fn gated_hub(status: u16) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut auth = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("authorization") {
                        auth = Some(value.trim().to_owned());
                    }
                }
            }
            record
                .lock()
                .unwrap()
                .push((request_line.trim().to_owned(), auth));
            let (reason, message) = if status == 401 {
                (
                    "Unauthorized",
                    "Access to model briaai/RMBG-2.0 is restricted. You must have access to it \
                     and be authenticated to access it. Please log in.",
                )
            } else {
                (
                    "Forbidden",
                    "Access to model briaai/RMBG-2.0 is restricted and you are not in the \
                     authorized list. Visit https://huggingface.co/briaai/RMBG-2.0 to ask for \
                     access.",
                )
            };
            let body = format!("{{\"error\":\"{message}\"}}");
            let _ = write!(
                stream,
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
                 X-Error-Code: GatedRepo\r\nX-Error-Message: {message}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (endpoint, seen)
}

#[test]
fn an_unreachable_hub_is_one_line_naming_the_endpoint() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    // No model flag: the default, ungated model must be fetched and cannot be.
    let failed = run_server(&["--device", "cpu"], &endpoint, None);
    assert_ne!(failed.code, Some(0), "{}", failed.stderr);
    let line = failed.error_line();
    for part in [
        "birefnet-lite",
        "ZhengPeng7/BiRefNet_lite",
        "unreachable",
        endpoint.as_str(),
        "HF_ENDPOINT",
    ] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
}

#[test]
fn a_gated_repo_without_a_token_says_accept_the_licence_and_set_hf_token() {
    let (endpoint, seen) = gated_hub(401);
    let failed = run_server(&["--model", "rmbg-2.0"], &endpoint, None);
    assert_ne!(failed.code, Some(0), "{}", failed.stderr);
    let line = failed.error_line();
    let licence = format!("{endpoint}/briaai/RMBG-2.0");
    for part in [
        "rmbg-2.0",
        "is gated",
        "HTTP 401",
        "accept its licence",
        licence.as_str(),
        "HF_TOKEN",
    ] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().any(|(req, auth)| req
            .starts_with("GET /briaai/RMBG-2.0/resolve/main/model.safetensors")
            && auth.is_none()),
        "the download went to the fake hub without a token: {seen:?}"
    );
}

#[test]
fn a_gated_repo_with_a_token_lacking_access_says_so() {
    let (endpoint, seen) = gated_hub(403);
    let failed = run_server(&["--model", "rmbg-2.0"], &endpoint, Some("hf_no_access"));
    assert_ne!(failed.code, Some(0), "{}", failed.stderr);
    let line = failed.error_line();
    for part in ["HF_TOKEN has no access", "HTTP 403", "accept its licence"] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|(_, auth)| auth.as_deref() == Some("Bearer hf_no_access")),
        "the token was sent: {seen:?}"
    );
}
