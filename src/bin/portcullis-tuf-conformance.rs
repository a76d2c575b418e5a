//! `portcullis-tuf-conformance`: the client-under-test CLI of the TUF project's conformance
//! suite (tuf-conformance, CLIENT-CLI.md) over Portcullis's own TUF client, `trust::tuf`: the
//! same HTTP transport and metadata store as the proxy. Run by `scripts/tuf-conformance.sh`.
//!
//! ```text
//! portcullis-tuf-conformance --metadata-dir DIR init ROOT
//! portcullis-tuf-conformance --metadata-dir DIR --metadata-url URL refresh
//! portcullis-tuf-conformance --metadata-dir DIR --metadata-url URL --target-name P... \
//!     --target-base-url URL --target-dir DIR download
//! ```
//!
//! Exit code 0 on success, 1 on any failure (argument errors included).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sha2::Digest as _;
use sigstore_tuf::{TargetFile, TrustedMetadataSet, Updater, UpdaterConfig};

use portcullis::trust::notary::fetch::{HttpFetcher, Timing};
use portcullis::trust::tuf::lookup;
use portcullis::trust::tuf::store::{DurableStore, Layout, write_durably};
use portcullis::trust::tuf::transport::{HttpRepo, StoreFirst};

#[derive(Parser)]
#[command(
    name = "portcullis-tuf-conformance",
    version,
    about = "tuf-conformance client-under-test over Portcullis's TUF client"
)]
struct Cli {
    /// Where the client keeps the metadata it trusts (non-versioned names only).
    #[arg(long)]
    metadata_dir: PathBuf,
    /// The repository's metadata URL.
    #[arg(long)]
    metadata_url: Option<String>,
    /// A target path to download (repeatable: processed in order, the first failure stops).
    #[arg(long = "target-name")]
    target_names: Vec<String>,
    /// The repository's targets URL.
    #[arg(long)]
    target_base_url: Option<String>,
    /// Where downloaded targets go.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Accepted for the suite's sake; logging is set with RUST_LOG.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trust ROOT (a root.json): copy it into the metadata directory. No request is made.
    Init { trusted_root: PathBuf },
    /// Update the top-level metadata from --metadata-url (TUF 5.3 - 5.6).
    Refresh,
    /// Refresh, then resolve each --target-name and download it into --target-dir.
    Download,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis-tuf-conformance: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Init { trusted_root } => init(&cli.metadata_dir, trusted_root),
        Command::Refresh => Client::open(cli)?.refresh().await,
        Command::Download => {
            let target_dir = cli
                .target_dir
                .as_deref()
                .context("download needs --target-dir")?;
            if cli.target_base_url.is_none() {
                bail!("download needs --target-base-url");
            }
            if cli.target_names.is_empty() {
                bail!("download needs at least one --target-name");
            }
            let mut client = Client::open(cli)?;
            client.refresh().await?;
            for name in &cli.target_names {
                client
                    .download(name, target_dir)
                    .await
                    .with_context(|| format!("target {name:?}"))?;
            }
            Ok(())
        }
    }
}

/// `init`: the proxy's check of a pinned root (a valid, self-signed TUF root), then
/// `root.json` in the metadata directory. No request is made.
fn init(metadata_dir: &Path, trusted_root: &Path) -> anyhow::Result<()> {
    let root = std::fs::read(trusted_root)
        .with_context(|| format!("reading {}", trusted_root.display()))?;
    TrustedMetadataSet::from_root(&root).context("not a valid, self-signed TUF root")?;
    write_durably(&metadata_dir.join("root.json"), &root)
        .with_context(|| format!("writing root.json in {}", metadata_dir.display()))
}

/// The crate's `Updater` over the proxy's transport (`HttpRepo` behind `StoreFirst`) and
/// store (`DurableStore`, here with the suite's layout), bootstrapped from the metadata
/// directory's `root.json` as python-tuf's client is.
struct Client {
    updater: Updater,
    store: Arc<DurableStore>,
    config: UpdaterConfig,
}

impl Client {
    fn open(cli: &Cli) -> anyhow::Result<Client> {
        let url = cli
            .metadata_url
            .as_deref()
            .context("refresh and download need --metadata-url")?;
        let root_path = cli.metadata_dir.join("root.json");
        let root = std::fs::read(&root_path)
            .with_context(|| format!("reading {} (run init first)", root_path.display()))?;
        let fetcher = HttpFetcher::new(url, None, Timing::default()).map_err(anyhow::Error::msg)?;
        let mut http = HttpRepo::new(fetcher, url).map_err(anyhow::Error::msg)?;
        if let Some(targets) = &cli.target_base_url {
            http = http.with_targets(targets).map_err(anyhow::Error::msg)?;
        }
        let store = Arc::new(DurableStore::with_layout(
            cli.metadata_dir.clone(),
            Layout::TopLevel,
        ));
        // Never offline: the proxy's fallback to stored metadata is not part of the workflow
        // the suite checks.
        let repo = StoreFirst::new(
            store.clone(),
            Box::new(http),
            Arc::new(AtomicBool::new(false)),
        );
        let config = UpdaterConfig::default();
        let updater = Updater::new(repo, &root)
            .context("the trusted root.json")?
            .with_config(config)
            .with_store(store.clone());
        Ok(Client {
            updater,
            store,
            config,
        })
    }

    /// TUF 5.3 - 5.6. As in the proxy, a store that could not keep what was verified fails
    /// the refresh (the crate only logs it).
    async fn refresh(&mut self) -> anyhow::Result<()> {
        let result = self.updater.refresh(jiff::Timestamp::now()).await;
        let write_failure = self.store.take_failure();
        result?;
        if let Some(f) = write_failure {
            bail!("metadata verified but not stored: {f}");
        }
        Ok(())
    }

    /// TUF 5.7: the crate's delegation walk, the proxy's re-walk for the signing chain (the
    /// two must agree), then the bytes, unless `target_dir` already holds them.
    async fn download(&mut self, name: &str, target_dir: &Path) -> anyhow::Result<()> {
        let now = jiff::Timestamp::now();
        let info = self
            .updater
            .get_target_info(name, now)
            .await?
            .context("not a target of this repository")?;
        let walk = lookup::chain(
            self.updater.trusted(),
            name,
            self.config.max_delegations,
            now,
        )
        .map_err(anyhow::Error::msg)?;
        if walk.target.as_ref() != Some(&info) {
            bail!("the signing-chain walk does not find the target the crate found");
        }
        let out = target_dir.join(file_name(name));
        if let Ok(cached) = std::fs::read(&out)
            && matches_target(&cached, &info)
        {
            return Ok(());
        }
        let bytes = self.updater.download_target(&info, name).await?;
        write_durably(&out, &bytes).with_context(|| format!("writing {}", out.display()))
    }
}

/// One file per target path, whatever it holds (`/`, `..`): percent-encoded, as python-tuf
/// names its downloads.
fn file_name(target: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let name = percent_encoding::utf8_percent_encode(target, KEEP).to_string();
    // `%` itself is encoded, so neither answer can be another path's.
    match name.as_str() {
        "" => "%".into(),
        dots if dots.bytes().all(|b| b == b'.') => dots.replace('.', "%2E"),
        _ => name,
    }
}

/// The crate's rule for target bytes: the pinned length, every sha256 / sha512 listed, and at
/// least one of them.
fn matches_target(bytes: &[u8], t: &TargetFile) -> bool {
    let mut checked = false;
    for (alg, want) in &t.hashes {
        let have = match alg.as_str() {
            "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
            "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
            _ => continue,
        };
        if !have.eq_ignore_ascii_case(want) {
            return false;
        }
        checked = true;
    }
    checked && bytes.len() as u64 == t.length
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_path_is_one_file_in_the_target_dir() {
        assert_eq!(file_name("a.txt"), "a.txt");
        assert_eq!(file_name("dir/sub/a.txt"), "dir%2Fsub%2Fa.txt");
        assert_eq!(file_name("../x"), "..%2Fx");
        assert_eq!(file_name(".."), "%2E%2E");
        assert_eq!(file_name("%2E%2E"), "%252E%252E");
        assert_eq!(file_name(""), "%");
    }
}
