//! `portcullis check IMAGE`: resolve a tag through the trust source as the proxy would.

use std::process::ExitCode;

use crate::config::Config;

/// Prints the trusted digest or the reason for refusal; exit 0 / 1.
pub async fn run(cfg: &Config, image: &str) -> anyhow::Result<ExitCode> {
    let _ = (cfg, image);
    anyhow::bail!("check is not built yet")
}
