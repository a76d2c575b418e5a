//! Issue 13's signature benchmark, with the real parts: the Distribution registry 2.8 (no
//! referrers API, so discovery takes the referrers tag schema and cosign's `.sig` tag), images
//! signed keyless by the project's test Sigstore instance (`tests/support/cosign`: a
//! Fulcio-like CA, a Rekor-like log key, their `trusted_root.json`) as legacy `.sig` artifacts,
//! and the Portcullis binary enforcing a `[[policy]]` with that `cosign-keyless` source.
//!
//! 1. **cached**: GET manifest by tag through Portcullis with the verdict cached, against the
//!    registry directly, interleaved one for one on one keep-alive connection each; p50 / p99
//!    and the added ms at p50. The verdict counter must not move (the verdict is cached).
//! 2. **cold**: the first GET of each of `--cold` freshly signed digests, by digest: the
//!    upstream requests it made (from the registry's access log), the verdicts counted, and
//!    its time against a GET of the same digest from the registry directly: the difference is
//!    discovery + verification plus the proxy's own hop.
//! 3. **herd**: `--herd` concurrent cold GETs of one signed tag: upstream `/referrers`,
//!    tag-schema and `.sig` requests and verdicts counted (target: one discovery and one
//!    verification per source); tests/signature_policy.rs asserts the same counts.
//!
//! `bench/run.sh signatures` builds the release binary and runs this; alone:
//! `cargo bench --bench signatures -- [--iterations N] [--cold N] [--herd N] [--out FILE]`,
//! with `PC_BIN=path` to run another Portcullis binary than the one cargo built. Not part of
//! `cargo test`; it asserts nothing about time.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::cosign::fixtures::{EMAIL, ISSUER};
use support::cosign::keyless_signer::{TestSigstore, Timing};
use support::real::*;

const REPO: &str = "team/app";

struct Args {
    iterations: usize,
    cold: usize,
    herd: usize,
    out: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        iterations: 2000,
        cold: 10,
        herd: 200,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut num = |what: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match k.as_str() {
            "--iterations" => a.iterations = num("--iterations"),
            "--cold" => a.cold = num("--cold"),
            "--herd" => a.herd = num("--herd"),
            "--out" => a.out = it.next(),
            // cargo bench passes --bench; cargo test passes nothing here.
            _ => {}
        }
    }
    a
}

fn config(reg: &Registry, root: &str) -> String {
    format!(
        r#"{registry}
[trust.release]
type = "cosign-keyless"
trusted_root = "{root}"
sct = "not-required"
[[trust.release.identities]]
issuer = "{ISSUER}"
subject = "{EMAIL}"

[[policy]]
repositories = ["{host}/team/*"]
mode = "enforce"
any_of = ["release"]
"#,
        registry = Portcullis::registry_section(reg, "skip"),
        host = reg.addr(),
    )
}

/// Pushes an image under `tag` and its keyless `.sig`; its digest.
fn signed(reg: &Registry, sigstore: &TestSigstore, tag: &str) -> String {
    let img = images::push(
        reg,
        REPO,
        tag,
        &ImageSpec::single(&format!("sigbench {tag}")),
        Format::Oci,
    );
    let reference = format!("{}/{REPO}", reg.addr());
    let sig = sigstore.sign_image(EMAIL, ISSUER, &reference, &img.digest, Timing::recent());
    cosign::push_sig(reg, REPO, &sig);
    img.digest
}

/// The registry's access log lines so far (GET / HEAD request lines with their status).
fn access(reg: &Registry) -> Vec<(String, String, u16)> {
    reg.log()
        .lines()
        .filter_map(|l| {
            let start = l.find("\"GET ").or_else(|| l.find("\"HEAD "))?;
            let mut req = l[start + 1..].split(' ');
            let (method, path) = (req.next()?, req.next()?);
            let status = l[start + 1..]
                .split('"')
                .nth(1)?
                .split_whitespace()
                .next()?;
            Some((method.to_owned(), path.to_owned(), status.parse().ok()?))
        })
        .collect()
}

/// What each upstream request of a discovery was for.
fn kind(path: &str) -> &'static str {
    if path.contains("/referrers/") {
        "referrers API"
    } else if path.contains("/manifests/sha256-") && path.ends_with(".sig") {
        ".sig tag"
    } else if path.contains("/manifests/sha256-") {
        "tag schema"
    } else if path.contains("/manifests/sha256:") {
        "manifest by digest"
    } else if path.contains("/manifests/") {
        "manifest by tag"
    } else if path.contains("/blobs/") {
        "blob"
    } else {
        "other"
    }
}

fn counts(lines: &[(String, String, u16)]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for (_, path, _) in lines {
        *m.entry(kind(path)).or_default() += 1;
    }
    m
}

/// Sum of `portcullis_signature_verdicts_total` for source `release`, by `verdict`.
fn verdicts(proxy: &Portcullis) -> BTreeMap<String, f64> {
    let text = http_get(&format!("{}/metrics", proxy.admin_url()));
    let mut m = BTreeMap::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("portcullis_signature_verdicts_total{")
            && rest.contains("source=\"release\"")
        {
            let verdict = rest
                .split("verdict=\"")
                .nth(1)
                .and_then(|v| v.split('"').next());
            let n: f64 = l
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            *m.entry(verdict.unwrap_or("?").to_owned()).or_default() += n;
        }
    }
    m
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, Duration) {
    let t = Instant::now();
    let r = c
        .get(url)
        .header("Accept", MANIFEST_ACCEPT)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    r.bytes().await.expect("body");
    (status, t.elapsed())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let a = args();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let load_start = loadavg();
    let mut report = String::new();
    let mut line = |s: String| {
        println!("{s}");
        report.push_str(&s);
        report.push('\n');
    };

    let reg = Registry::start(RegistryAuth::None);
    let sigstore = TestSigstore::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("trusted_root.json");
    std::fs::write(&root, sigstore.trusted_root_json()).expect("write trusted root");
    let cached_digest = signed(&reg, &sigstore, "cached");
    let cold: Vec<String> = (0..a.cold)
        .map(|i| signed(&reg, &sigstore, &format!("cold-{i}")))
        .collect();
    let herd_digest = signed(&reg, &sigstore, "herd");
    let mut opts = PortcullisOpts::default();
    let bin = std::env::var("PC_BIN").ok();
    if let Some(b) = &bin {
        opts.program = Some(vec![b.clone()]);
    }
    let proxy = Portcullis::start_with(&config(&reg, &root.display().to_string()), opts);
    let pc = proxy.url();
    let direct = reg.url();
    let c_direct = reqwest::Client::new();
    let c_proxy = reqwest::Client::new();

    line(format!(
        "# Signatures benchmark ({})\n",
        String::from_utf8_lossy(
            &std::process::Command::new("date")
                .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
                .output()
                .expect("date")
                .stdout
        )
        .trim()
    ));
    line(format!(
        "Portcullis binary: `{}`; harness (client): {} build; source `release` = cosign-keyless (test Sigstore instance, \
         legacy `.sig`, `sct = \"not-required\"`); registry: docker-registry {}; \
         {} CPUs; load average at start {load_start}.\n",
        bin.as_deref().unwrap_or(env!("CARGO_BIN_EXE_portcullis")),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        String::from_utf8_lossy(
            &std::process::Command::new("docker-registry")
                .arg("--version")
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default()
        )
        .split_whitespace()
        .nth(2)
        .unwrap_or("?"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    ));

    // 1. Manifest by tag, verdict cached, interleaved with the registry itself.
    let by_tag = |base: &str| format!("{base}/v2/{REPO}/manifests/cached");
    let (s, _) = rt.block_on(get(&c_proxy, &by_tag(&pc)));
    assert_eq!(s, 200, "the signed tag is served");
    let before = verdicts(&proxy);
    let (mut d, mut p) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..50 {
            get(&c_direct, &by_tag(&direct)).await;
            get(&c_proxy, &by_tag(&pc)).await;
        }
        for _ in 0..a.iterations {
            let (s1, t1) = get(&c_direct, &by_tag(&direct)).await;
            let (s2, t2) = get(&c_proxy, &by_tag(&pc)).await;
            assert_eq!((s1, s2), (200, 200));
            d.push(ms(t1));
            p.push(ms(t2));
        }
    });
    let after = verdicts(&proxy);
    let added: Vec<f64> = sorted(p.iter().zip(&d).map(|(p, d)| p - d).collect());
    let (d, p) = (sorted(d), sorted(p));
    line("## 1. Manifest by tag, verdict cached\n".into());
    line(format!(
        "`{REPO}:cached` (`{cached_digest}`): {} GETs each, interleaved (direct, \
         Portcullis, ...) after 50 warm-up pairs; one keep-alive connection each; client: this \
         harness (reqwest).\n",
        a.iterations
    ));
    line("| | p50 ms | p99 ms |\n| --- | --- | --- |".into());
    line(format!(
        "| direct registry | {:.3} | {:.3} |",
        pct(&d, 0.5),
        pct(&d, 0.99)
    ));
    line(format!(
        "| through Portcullis | {:.3} | {:.3} |",
        pct(&p, 0.5),
        pct(&p, 0.99)
    ));
    line(format!(
        "| added (p50 of the difference) | **{:.3}** | |",
        pct(&added, 0.5)
    ));
    line(format!(
        "\nAdded at p50 (p50 Portcullis - p50 direct): {:.3} ms (target < 0.5 ms: {}). \
         Verdicts counted during the phase: {} (0 = the verdict was cached throughout).\n",
        pct(&p, 0.5) - pct(&d, 0.5),
        if pct(&p, 0.5) - pct(&d, 0.5) < 0.5 {
            "met"
        } else {
            "missed"
        },
        after.values().sum::<f64>() - before.values().sum::<f64>()
    ));

    // 2. Cold first pulls of signed digests.
    line("## 2. Cold first pull of a signed digest\n".into());
    line(
        "| digest | cold ms | again through Portcullis (cached) ms | direct ms | cold - direct ms | upstream requests (cold pull) | verdicts |\n| --- | --- | --- | --- | --- | --- | --- |"
            .into(),
    );
    let mut diffs = Vec::new();
    let mut totals = Vec::new();
    for digest in &cold {
        let url = format!("{pc}/v2/{REPO}/manifests/{digest}");
        let seen = access(&reg).len();
        let v0 = verdicts(&proxy);
        let (s, t_cold) = rt.block_on(get(&c_proxy, &url));
        assert_eq!(s, 200, "signed digest {digest} is served");
        std::thread::sleep(Duration::from_millis(200));
        let new = access(&reg)[seen..].to_vec();
        let v1 = verdicts(&proxy);
        let (s, t_warm) = rt.block_on(get(&c_proxy, &url));
        assert_eq!(s, 200);
        let (s, t_direct) = rt.block_on(get(
            &c_direct,
            &format!("{direct}/v2/{REPO}/manifests/{digest}"),
        ));
        assert_eq!(s, 200);
        let c = counts(&new);
        let list: Vec<String> = c.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let vs = v1.values().sum::<f64>() - v0.values().sum::<f64>();
        diffs.push(ms(t_cold) - ms(t_direct));
        totals.push(new.len() as f64);
        line(format!(
            "| `{}…` | {:.2} | {:.2} | {:.2} | {:.2} | {} ({}) | {vs} |",
            &digest[..19],
            ms(t_cold),
            ms(t_warm),
            ms(t_direct),
            ms(t_cold) - ms(t_direct),
            new.len(),
            list.join(", ")
        ));
    }
    if !cold.is_empty() {
        let diffs = sorted(diffs);
        line(format!(
            "\nMedian over {} digests of cold - direct (discovery + verification, plus the \
             proxy's own hop): {:.2} ms (min {:.2}, max {:.2}); upstream requests per cold \
             pull: {}.\n",
            cold.len(),
            pct(&diffs, 0.5),
            diffs[0],
            diffs[diffs.len() - 1],
            pct(&sorted(totals), 0.5)
        ));
    }

    // 3. A herd of concurrent cold pulls of one tag.
    let seen = access(&reg).len();
    let v0 = verdicts(&proxy);
    let herd_url = format!("{pc}/v2/{REPO}/manifests/herd");
    let t = Instant::now();
    let statuses: Vec<u16> = rt.block_on(async {
        let c = reqwest::Client::new();
        let pulls = (0..a.herd).map(|_| {
            let c = c.clone();
            let u = herd_url.clone();
            tokio::spawn(async move { get(&c, &u).await.0 })
        });
        futures_util::future::join_all(pulls)
            .await
            .into_iter()
            .map(|r| r.expect("task"))
            .collect()
    });
    let wall = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let new = access(&reg)[seen..].to_vec();
    let v1 = verdicts(&proxy);
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let c = counts(&new);
    let hex = herd_digest.trim_start_matches("sha256:");
    let n = |pred: &dyn Fn(&str) -> bool| new.iter().filter(|(_, p, _)| pred(p)).count();
    let referrers = n(&|p| p.contains(&format!("/referrers/{herd_digest}")));
    let schema = n(&|p| p.ends_with(&format!("/manifests/sha256-{hex}")));
    let sig = n(&|p| p.ends_with(&format!("/manifests/sha256-{hex}.sig")));
    let verdict_count = v1.values().sum::<f64>() - v0.values().sum::<f64>();
    line(format!(
        "## 3. {} concurrent cold pulls of one tag\n",
        a.herd
    ));
    line(format!(
        "{ok} of {} answered 200 in {:.0} ms (wall, all of them). Upstream requests: {} in all \
         ({}).\n",
        a.herd,
        ms(wall),
        new.len(),
        c.iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    line("| | count | target |\n| --- | --- | --- |".into());
    line(format!("| `/referrers/<digest>` | {referrers} | 1 |"));
    line(format!("| tag schema `sha256-<hex>` | {schema} | 1 |"));
    line(format!("| `.sig` tag | {sig} | 1 |"));
    line(format!(
        "| verifications (`portcullis_signature_verdicts_total`, source `release`) | {verdict_count} | 1 |"
    ));
    let met = referrers == 1 && schema == 1 && sig == 1 && verdict_count == 1.0 && ok == a.herd;
    line(format!(
        "\nOne discovery and one verification per source: {}.\n",
        if met { "met" } else { "missed" }
    ));
    line(format!("Load average at the end: {}.", loadavg()));

    if let Some(out) = a.out {
        std::fs::write(&out, report).expect("write the results file");
        println!("wrote {out}");
    }
}
