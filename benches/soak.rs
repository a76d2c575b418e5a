//! Soak load generator: N concurrent clients pull images through Portcullis for T seconds,
//! the way a runtime does (manifest by tag with the runtimes' Accept list, the platform's
//! manifest from an index, then the config and every layer, each checked against its digest
//! here too), while Portcullis's RSS, open fds, runtime tasks and the pull latency are sampled
//! every 10 s from its `/metrics`. `bench/soak.sh` sets up a registry, notary-server, signed
//! images and Portcullis, and runs this; alone:
//!
//! ```sh
//! cargo bench --bench soak -- --proxy 127.0.0.1:5050 --admin 127.0.0.1:9090 \
//!     --image demo/app:v1 --clients 1000 --seconds 600 [--refused demo/app:unsigned] [--out F]
//! ```
//!
//! A pull of `--image` that fails, or of `--refused` that succeeds, is an error; the summary
//! ends with the error count, latency percentiles, RSS in the first and last minute, and fds and
//! tasks before the run and after it settled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Default)]
struct Args {
    proxy: String,
    admin: String,
    images: Vec<String>,
    refused: Vec<String>,
    clients: usize,
    seconds: u64,
    out: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        clients: 100,
        seconds: 60,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        // cargo bench passes --bench; ignore it.
        if k == "--bench" {
            continue;
        }
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--proxy" => a.proxy = v()?,
            "--admin" => a.admin = v()?,
            "--image" => a.images.push(v()?),
            "--refused" => a.refused.push(v()?),
            "--clients" => a.clients = v()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--seconds" => a.seconds = v()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--out" => a.out = Some(v()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.proxy.is_empty() || a.admin.is_empty() || a.images.is_empty() {
        return Err("--proxy, --admin and at least one --image are required".into());
    }
    Ok(a)
}

/// `repo:tag` -> (repo, tag).
fn split(image: &str) -> (&str, &str) {
    image.rsplit_once(':').unwrap_or((image, "latest"))
}

async fn get(c: &reqwest::Client, url: &str, accept: Option<&str>) -> Result<Vec<u8>, String> {
    let mut req = c.get(url);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("{url}: body: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url}: {status}"));
    }
    Ok(body.to_vec())
}

fn check(what: &str, body: &[u8], digest: &str) -> Result<(), String> {
    let got = format!("sha256:{}", hex::encode(Sha256::digest(body)));
    if got == digest {
        Ok(())
    } else {
        Err(format!("{what} {digest}: received {got}"))
    }
}

/// One pull as a runtime does it; the bytes of every blob are checked here too.
async fn pull(c: &reqwest::Client, base: &str, image: &str) -> Result<u64, String> {
    let (repo, tag) = split(image);
    let mut m = get(
        c,
        &format!("{base}/v2/{repo}/manifests/{tag}"),
        Some(ACCEPT),
    )
    .await?;
    let mut doc: serde_json::Value = serde_json::from_slice(&m).map_err(|e| e.to_string())?;
    if let Some(list) = doc["manifests"].as_array() {
        let child = list
            .iter()
            .find(|d| d["platform"]["architecture"] == "amd64")
            .or(list.first())
            .and_then(|d| d["digest"].as_str())
            .ok_or("an index without manifests")?
            .to_owned();
        m = get(
            c,
            &format!("{base}/v2/{repo}/manifests/{child}"),
            Some(ACCEPT),
        )
        .await?;
        check("manifest", &m, &child)?;
        doc = serde_json::from_slice(&m).map_err(|e| e.to_string())?;
    }
    let mut bytes = m.len() as u64;
    let blobs =
        std::iter::once(&doc["config"]).chain(doc["layers"].as_array().into_iter().flatten());
    for b in blobs {
        let d = b["digest"].as_str().ok_or("a descriptor without digest")?;
        let body = get(c, &format!("{base}/v2/{repo}/blobs/{d}"), None).await?;
        check("blob", &body, d)?;
        bytes += body.len() as u64;
    }
    Ok(bytes)
}

/// RSS (bytes), open fds, alive tasks from Portcullis's `/metrics`.
async fn sample(c: &reqwest::Client, admin: &str) -> Option<(f64, f64, f64)> {
    let text = c
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    Some((
        value("portcullis_process_resident_memory_bytes")?,
        value("portcullis_process_open_fds")?,
        value("portcullis_runtime_alive_tasks")?,
    ))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    /// Pull latencies (ms) since the last sample, and all of them.
    window: Mutex<Vec<f64>>,
    all: Mutex<Vec<f64>>,
    first_errors: Mutex<Vec<String>>,
}

impl Tally {
    async fn record(&self, took: Duration, r: Result<u64, String>) {
        match r {
            Ok(b) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(b, Ordering::Relaxed);
                let ms = took.as_secs_f64() * 1000.0;
                self.window.lock().await.push(ms);
                self.all.lock().await.push(ms);
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut f = self.first_errors.lock().await;
                if f.len() < 10 {
                    f.push(e);
                }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    };
    // reqwest is built without a default TLS provider (the product picks ring itself).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let base = format!("http://{}", a.proxy);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(a.clients)
        .build()
        .expect("HTTP client");
    let admin = reqwest::Client::new();
    let before = sample(&admin, &a.admin).await;
    let tally = Arc::new(Tally::default());
    let refused_ok = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for i in 0..a.clients {
        let (c, base, tally, refused_ok) = (
            client.clone(),
            base.clone(),
            tally.clone(),
            refused_ok.clone(),
        );
        let images = a.images.clone();
        let refused = a.refused.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = i;
            while Instant::now() < end {
                // Every tenth pull of a client with --refused asks for an image that must be refused.
                if !refused.is_empty() && n % 10 == 9 {
                    let img = &refused[n % refused.len()];
                    if pull(&c, &base, img).await.is_ok() {
                        refused_ok.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    let img = &images[n % images.len()];
                    let t = Instant::now();
                    let r = pull(&c, &base, img).await;
                    tally.record(t.elapsed(), r).await;
                }
                n += 1;
            }
        }));
    }
    let mut report = vec![format!(
        "# soak: {} clients, {} s, images {:?}, refused {:?}\n\n| t (s) | pulls | errors | p50 ms | p99 ms | RSS MiB | fds | tasks |\n|---|---|---|---|---|---|---|---|",
        a.clients, a.seconds, a.images, a.refused
    )];
    let mut rss: Vec<(f64, f64)> = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(10));
    ticker.tick().await;
    while Instant::now() < end {
        ticker.tick().await;
        let t = started.elapsed().as_secs_f64();
        let mut w = std::mem::take(&mut *tally.window.lock().await);
        w.sort_by(f64::total_cmp);
        let (r, fds, tk) = sample(&admin, &a.admin)
            .await
            .unwrap_or((f64::NAN, f64::NAN, f64::NAN));
        rss.push((t, r));
        let line = format!(
            "| {t:.0} | {} | {} | {:.1} | {:.1} | {:.1} | {fds} | {tk} |",
            w.len(),
            tally.errors.load(Ordering::Relaxed),
            pct(&w, 0.5),
            pct(&w, 0.99),
            r / 1048576.0
        );
        println!("{line}");
        report.push(line);
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Let connections close and tasks end before the "after" sample.
    drop(client);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let after = sample(&admin, &a.admin).await;
    let mut all = std::mem::take(&mut *tally.all.lock().await);
    all.sort_by(f64::total_cmp);
    let minute = |from: f64, to: f64| {
        let xs: Vec<f64> = rss
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|x| x.1)
            .collect();
        xs.iter().sum::<f64>() / xs.len().max(1) as f64 / 1048576.0
    };
    let (first, last) = (minute(0.0, 60.0), minute(elapsed - 60.0, elapsed));
    let ok = tally.ok.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    let summary = format!(
        "\n## summary\n\n- pulls completed: {ok} ({:.1}/s), {:.1} MiB\n- errors: {errors}; refused images that were served: {}\n- pull latency p50 {:.1} ms, p99 {:.1} ms\n- RSS first minute {first:.1} MiB, last minute {last:.1} MiB ({:+.1} %)\n- before: {before:?}; after (15 s settled): {after:?} (RSS bytes, fds, tasks)\n- first errors: {:?}\n",
        ok as f64 / elapsed,
        tally.bytes.load(Ordering::Relaxed) as f64 / 1048576.0,
        refused_ok.load(Ordering::Relaxed),
        pct(&all, 0.5),
        pct(&all, 0.99),
        (last - first) / first * 100.0,
        tally.first_errors.lock().await
    );
    println!("{summary}");
    report.push(summary);
    if let Some(out) = &a.out
        && let Err(e) = std::fs::write(out, report.join("\n"))
    {
        eprintln!("soak: writing {out}: {e}");
    }
    if errors > 0 || refused_ok.load(Ordering::Relaxed) > 0 {
        std::process::exit(1);
    }
}
