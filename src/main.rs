//! The `portcullis` command: parse arguments, load config, start tracing, run.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use portcullis::config::{Config, LogFormat};

/// jemalloc, whose background thread gives memory freed after a burst of pulls back to the
/// kernel while the process is idle; glibc's malloc and mimalloc kept it (Cargo.toml says what
/// was measured, .cargo/config.toml which options are built in).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A registry mirror that serves only signed images"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// Config file (TOML). PORTCULLIS_* environment variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print the node configuration that points a runtime at this proxy, failing closed.
    Config {
        /// Config file (TOML) of the proxy the node files point at. PORTCULLIS_* environment
        /// variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// containerd | crio | podman | docker
        target: String,
        /// Only this registry (repeatable); with one, the file itself goes to stdout.
        #[arg(long = "registry")]
        registries: Vec<String>,
        /// Write the whole tree under DIR instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The address nodes reach the proxy at, when it differs from server.listen.
        #[arg(long)]
        proxy_addr: Option<String>,
    },
    /// Resolve IMAGE (registry/repository:tag, or registry/repository@digest under a
    /// `[[policy]]` entry) through the trust sources, as the proxy would.
    Check {
        /// Config file (TOML), the one `serve` uses. PORTCULLIS_* environment variables
        /// override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// e.g. 127.0.0.1:5000/demo/app:v1
        image: String,
        /// Print the result as one JSON object (repositories under a `[[policy]]` entry).
        #[arg(long)]
        json: bool,
    },
    /// Prove that every container runtime on this node pulls through this Portcullis: checks
    /// each runtime's files, pulls a canary through each, exits 0 only when all are enforced.
    Doctor {
        /// Config file (TOML) of this node's `serve` (its cache.dir holds the canary key).
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        opts: portcullis::doctor::Options,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Air-gap bundles: signed images with their trust metadata, for nodes without network.
    Bundle {
        #[command(subcommand)]
        action: BundleAction,
    },
    /// The verified blob and manifest cache under cache.dir.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    /// Re-hash every blob and manifest entry and remove the bad ones. Exit status: 0 all
    /// good, 1 bad entries were found and removed, 2 error (config or directory unreadable).
    Verify {
        /// Config file (TOML) of this node's `serve` (its cache.dir is checked).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BundleAction {
    /// On a connected machine: pull IMAGE... through the trust checks and write a bundle.
    Export {
        /// Config file (TOML), as for `serve`: the registries and notary servers to use.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Output file (a tar holding an OCI image layout and the trust metadata).
        #[arg(long, short)]
        out: PathBuf,
        /// registry/repository:tag, one or more.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// On the air-gapped node: verify FILE against this node's pinned roots and trust state,
    /// then fill its cache and trust state. All or nothing.
    Import {
        /// Config file (TOML) of this node's `serve`.
        #[arg(long, short)]
        config: Option<PathBuf>,
        file: PathBuf,
    },
}

fn init_tracing(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    use std::io::IsTerminal;
    // Colour codes only for a person at a terminal; in a journal or file they are noise (and
    // cost time per request line).
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => b.json().init(),
        LogFormat::Human => b.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One crypto stack for every TLS client and server in the process (rustls + aws-lc-rs).
    portcullis::crypto::install_process_default();
    // 8 MiB worker stacks instead of tokio's 2 MiB: a request's future nests routing, the trust
    // gate, passthrough auth and signature discovery, and a debug build overflowed 2 MiB on
    // one such path. Only touched pages cost memory, so the idle and per-connection figures do
    // not move.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portcullis: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Config {
        config,
        target,
        registries,
        out,
        proxy_addr,
    } = &cli.command
    {
        return match node_config(
            config.as_deref(),
            target,
            registries,
            out.as_deref(),
            proxy_addr.clone(),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("portcullis: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Cache {
        action: CacheAction::Verify { config },
    } = &cli.command
    {
        return cache_verify(config.as_deref());
    }
    let result = match cli.command {
        Command::Serve { config } => rt.block_on(serve(config)),
        Command::Check {
            config,
            image,
            json,
        } => rt.block_on(check(config, image, json)),
        Command::Config { .. } | Command::Cache { .. } => Ok(ExitCode::SUCCESS), // handled above
        Command::Bundle { action } => rt.block_on(bundle(action)),
        Command::Doctor { config, opts, json } => rt.block_on(doctor(config, opts, json)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(config.as_deref())?;
    // Before anything listens: a wrong path is a start-up error naming its key, not a
    // failure on the first pull.
    cfg.preflight()?;
    init_tracing(&cfg);
    let cache_dir = cfg.cache.dir.clone();
    let proxy = portcullis::api::Proxy::new(&cfg, &|registry, source| {
        portcullis::trust::build(registry, source, &cache_dir)
    })?;
    let (api, admin) = portcullis::server::bind(&cfg).await?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = tx.send(true);
    });
    portcullis::server::run(cfg, Arc::new(proxy), api, admin, rx).await?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("signal received");
}

async fn check(config: Option<PathBuf>, image: String, json: bool) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(config.as_deref())?;
    // `check` reads the same files and writes the same trust state as `serve`.
    cfg.preflight()?;
    init_tracing(&cfg);
    portcullis::check::run_with(&cfg, &image, json).await
}

async fn doctor(
    config: Option<PathBuf>,
    opts: portcullis::doctor::Options,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(config.as_deref())?;
    let report = portcullis::doctor::run(&cfg, &opts).await;
    if json {
        portcullis::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        portcullis::out!("{}", report.text());
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn bundle(action: BundleAction) -> anyhow::Result<ExitCode> {
    let (config, what) = match &action {
        BundleAction::Export { config, .. } => (config, "export"),
        BundleAction::Import { config, .. } => (config, "import"),
    };
    let cfg = Config::load(config.as_deref())?;
    cfg.preflight()?;
    init_tracing(&cfg);
    let summary = match action {
        BundleAction::Export { out, images, .. } => {
            portcullis::bundle::export(&cfg, &images, &out).await
        }
        BundleAction::Import { file, .. } => portcullis::bundle::import(&cfg, &file).await,
    }
    .map_err(|e| e.context(format!("bundle {what}")))?;
    portcullis::outln!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// `portcullis cache verify`: its own exit codes (2 for an error, not 1: 1 says "bad entries
/// were found and removed", which a script must be able to tell from "could not check").
fn cache_verify(config: Option<&std::path::Path>) -> ExitCode {
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&cfg);
    match portcullis::cache::verify(&cfg.cache.dir) {
        Ok(report) => {
            portcullis::outln!("{}", report.summary(&cfg.cache.dir));
            if report.removed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("portcullis: cache verify: {e}");
            ExitCode::from(2)
        }
    }
}

fn node_config(
    config: Option<&std::path::Path>,
    target: &str,
    registries: &[String],
    out: Option<&std::path::Path>,
    proxy_addr: Option<String>,
) -> anyhow::Result<()> {
    use portcullis::node;
    let cfg = Config::load(config)?;
    let target: node::Target = target.parse()?;
    let opts = node::Options {
        proxy_addr,
        ..Default::default()
    };
    let output = node::render_with(&cfg, target, registries, &opts)?;
    match out {
        Some(dir) => {
            node::write_tree(&output, dir)?;
            for f in output.files() {
                eprintln!("wrote {}", dir.join(&f.path).display());
            }
        }
        None => portcullis::out!("{}", output.stdout_text()),
    }
    Ok(())
}
