//! Trust-path benchmark (rerun with `cargo bench --bench trust`):
//! 1. manifest-by-tag latency through Portcullis (enforce, warm trust cache) against the direct
//!    registry in the same run, at concurrency 1 and 32: p50/p99 and the added p50;
//! 2. a cold start: a fresh Portcullis (empty cache) gets 200 concurrent pulls of one tag; the
//!    number of metadata refreshes it made (timestamp.json fetches, from /metrics) must be 1.
//!
//! Uses the real registry and notary-server from the test harness. Results are printed and
//! written to bench/results/trust-<unix time>.md. Rounds: BENCH_ROUNDS (default 3), requests per
//! round: BENCH_REQUESTS (default 2000).
#![allow(dead_code)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::real::images::{self, ImageSpec};
use support::real::*;

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json";

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// `requests` GETs of `url` spread over `concurrency` workers; latencies in ms, sorted.
async fn latencies(url: &str, requests: usize, concurrency: usize) -> Vec<f64> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let per = requests / concurrency;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let c = client.clone();
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut v = Vec::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                let r = c.get(&url).header("accept", ACCEPT).send().await.unwrap();
                assert_eq!(r.status(), 200, "{url}");
                r.bytes().await.unwrap();
                v.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            v
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    all
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rounds = env_num("BENCH_ROUNDS", 3);
    let requests = env_num("BENCH_REQUESTS", 2000);
    let rt = tokio::runtime::Runtime::new().unwrap();

    let reg = Registry::start(RegistryAuth::None);
    let notary = Notary::start(TrustService::Remote);
    let img = images::push(
        &reg,
        "demo/app",
        "v1",
        &ImageSpec::single("bench"),
        images::Format::Oci,
    );
    Signer::new(&notary).sign(&reg.gun("demo/app"), "v1", &img, &Role::Targets);
    let proxy = Portcullis::start_for(&reg, &notary, "enforce");
    let direct = format!("{}/v2/demo/app/manifests/v1", reg.url());
    let through = format!("{}/v2/demo/app/manifests/v1", proxy.url());

    let mut report = String::from("# Trust-path benchmark\n\n");
    report.push_str(&format!(
        "{rounds} rounds of {requests} manifest GETs by tag; median of the rounds.\n\n\
         | concurrency | direct p50 ms | direct p99 ms | portcullis p50 ms | portcullis p99 ms | added p50 ms | p50 ratio |\n\
         |---|---|---|---|---|---|---|\n"
    ));
    rt.block_on(async {
        // Warm the trust cache and connections.
        latencies(&through, 20, 1).await;
        latencies(&direct, 20, 1).await;
        for c in [1usize, 32] {
            let (mut d50, mut d99, mut p50, mut p99) = (vec![], vec![], vec![], vec![]);
            for _ in 0..rounds {
                let d = latencies(&direct, requests, c).await;
                let p = latencies(&through, requests, c).await;
                d50.push(percentile(&d, 0.5));
                d99.push(percentile(&d, 0.99));
                p50.push(percentile(&p, 0.5));
                p99.push(percentile(&p, 0.99));
            }
            let (d50, d99, p50, p99) = (median(d50), median(d99), median(p50), median(p99));
            report.push_str(&format!(
                "| {c} | {d50:.3} | {d99:.3} | {p50:.3} | {p99:.3} | {:+.3} | {:.2} |\n",
                p50 - d50,
                p50 / d50
            ));
        }
    });
    drop(proxy);

    // Cold start: fresh cache, 200 concurrent pulls of one tag.
    let mut fetches = Vec::new();
    for _ in 0..rounds {
        let cold = Portcullis::start_for(&reg, &notary, "enforce");
        let url = format!("{}/v2/demo/app/manifests/v1", cold.url());
        let started = Instant::now();
        let ok = rt.block_on(async {
            let client = Arc::new(reqwest::Client::new());
            let mut tasks = Vec::new();
            for _ in 0..200 {
                let c = client.clone();
                let url = url.clone();
                tasks.push(tokio::spawn(async move {
                    let r = c.get(&url).header("accept", ACCEPT).send().await;
                    matches!(r, Ok(r) if r.status() == 200)
                }));
            }
            let mut ok = 0;
            for t in tasks {
                ok += usize::from(t.await.unwrap());
            }
            ok
        });
        let wall = started.elapsed();
        let metrics = rt.block_on(async {
            reqwest::get(format!("{}/metrics", cold.admin_url()))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        let ts = metric(
            &metrics,
            "portcullis_trust_metadata_fetches_total",
            "role=\"timestamp\"",
        );
        fetches.push((ok, ts, wall));
    }
    report.push_str("\nCold start, 200 concurrent pulls of one tag on an empty cache:\n\n| round | pulls OK | timestamp.json fetches (refreshes) | wall ms |\n|---|---|---|---|\n");
    for (i, (ok, ts, wall)) in fetches.iter().enumerate() {
        report.push_str(&format!(
            "| {} | {ok}/200 | {ts} | {:.0} |\n",
            i + 1,
            wall.as_secs_f64() * 1000.0
        ));
    }
    println!("{report}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    let _ = std::fs::create_dir_all(&dir);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let path = dir.join(format!("trust-{stamp}.md"));
    std::fs::write(&path, &report).unwrap();
    println!("written to {}", path.display());
}
