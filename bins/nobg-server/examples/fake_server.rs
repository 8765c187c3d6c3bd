//! The server over the fake backend (no model): for checking clients against the protocol while
//! no model is at hand. `cargo run -p nobg-server --example fake_server -- 127.0.0.1:8787 KEY`.

use std::sync::Arc;

use nobg_server::backend::fake::FakeBackend;
use nobg_server::{RunningServer, ServerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let mut config = ServerConfig {
        listen: args
            .next()
            .unwrap_or_else(|| "127.0.0.1:8787".into())
            .parse()?,
        api_keys: args.collect(),
        ..ServerConfig::default()
    };
    // The fake model is called `tiny`: let the AIR ids of the SDK scripts reach it.
    for air in ["bria:2@1", "runware:110@1"] {
        config.air_map.insert(air.into(), "tiny".into());
    }
    let server = RunningServer::start(config, Arc::new(FakeBackend::new())).await?;
    tracing::info!(addr = %server.addr, "fake server ready");
    tokio::signal::ctrl_c().await?;
    server.shutdown().await
}
