"""The blob-cache benchmark's report (bench/cache.py): tables of the median rounds, ratios to
direct, the memory phase, the issue's targets met or missed, written to bench/results/."""

import json
import os
import subprocess
from datetime import datetime, timezone

from cache_settings import (
    B, BLOB_MIB, CACHE_DIR_PARENT, COLS, HERE, LABEL, MULTI, QUICK, ROOT, RSS_STREAMS, log,
)


def report(rounds, mem, load_start, notes):
    nan = float("nan")

    def med(n, k):
        return B.median([r[n][k] for r in rounds if k in r[n]])

    def ratio(n, k, ref="direct", refk=None):
        refk = refk or k
        return B.median([r[n][k] / r[ref][refk] for r in rounds
                         if k in r[n] and r[ref].get(refk)])

    def added(n, k):
        return B.median([r[n][k] - r["direct"][k] for r in rounds if k in r[n]])

    def cell(n, k, fmt="{:.0f}", with_ratio=True):
        v = med(n, k)
        if v != v:
            return "-"
        s = fmt.format(v)
        if with_ratio and n != "direct":
            s += f" ({ratio(n, k):.2f})"
        return s

    def maxv(n, k):
        xs = [r[n][k] for r in rounds if k in r[n]]
        return max(xs) if xs else nan

    multi = f"multi{MULTI}"
    head = "| measure | " + " | ".join(LABEL[c] for c in COLS) + " |"
    lines = [head, "|" + " --- |" * (len(COLS) + 1)]

    def row(label, cells):
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    # cold fill: direct and the uncached hops move the blob as on any GET (single stream)
    row("cold fill MB/s (ratio to direct)", [
        cell("direct", "single_MBps"),
        f"{med('pc_cache', 'cold_MBps'):.0f} ({ratio('pc_cache', 'cold_MBps', refk='single_MBps'):.2f})",
        cell("pc_nocache", "single_MBps") + " *",
        f"{med('regproxy', 'cold_MBps'):.0f} ({ratio('regproxy', 'cold_MBps', refk='single_MBps'):.2f})",
        cell("nginx_proxy", "single_MBps") + " *", "-"])
    row("cold fill: ratio to nginx proxy, same round", [
        "-", f"**{ratio('pc_cache', 'cold_MBps', 'nginx_proxy', 'single_MBps'):.2f}**",
        f"{ratio('pc_nocache', 'single_MBps', 'nginx_proxy', 'single_MBps'):.2f} *",
        f"{ratio('regproxy', 'cold_MBps', 'nginx_proxy', 'single_MBps'):.2f}", "1", "-"])
    row("cold fill: upstream blob GETs (HEADs), max over rounds", [
        "1 (0)", f"**{maxv('pc_cache', 'cold_upstream_gets'):.0f}** "
                 f"({maxv('pc_cache', 'cold_upstream_heads'):.0f})",
        "1 *", f"{maxv('regproxy', 'cold_upstream_gets'):.0f} "
               f"({maxv('regproxy', 'cold_upstream_heads'):.0f})", "1 *", "-"])
    def stored_cell(n):
        xs = [r[n].get("cold_stored") for r in rounds if "cold_stored" in r[n]]
        until = [r[n].get("gets_until_stored") for r in rounds if "cold_stored" in r[n]]
        return (f"{sum(1 for x in xs if x)} of {len(xs)}; "
                f"upstream GETs until cached: {', '.join(str(u) for u in until)}")

    row("cold fill: the blob was in the cache after that GET (rounds)", [
        "-", f"**{stored_cell('pc_cache')}**", "-", stored_cell("regproxy"), "-", "-"])
    row("cold fill: hop CPU s/GB", [
        "-", f"**{med('pc_cache', 'cold_hop_cpu_s_per_GB'):.2f}**",
        f"{med('pc_nocache', 'single_hop_cpu_s_per_GB'):.2f} *",
        f"{med('regproxy', 'cold_hop_cpu_s_per_GB'):.2f}",
        f"{med('nginx_proxy', 'single_hop_cpu_s_per_GB'):.2f} *", "-"])
    def first_hit(n):
        v = med(n, "first_hit_MBps")
        if v != v:
            return "-"
        return (f"{v:.0f} ({ratio(n, 'first_hit_MBps', refk='single_MBps'):.2f}); "
                f"{med(n, 'first_hit_hop_cpu_s_per_GB'):.2f} s/GB")

    row("first hit right after the fill MB/s (ratio to direct); hop CPU", [
        "-", first_hit("pc_cache") + " (from disk: written with direct I/O)", "-",
        first_hit("regproxy") + " (page cache)", "-", "-"])
    row("warm single stream MB/s (ratio)", [cell(c, "single_MBps") for c in COLS])
    row("  hop CPU s/GB", ["-"] + [cell(c, "single_hop_cpu_s_per_GB", "{:.2f}", False)
                                    for c in COLS[1:]])
    row(f"warm {MULTI} streams aggregate MB/s (ratio)", [cell(c, f"{multi}_MBps") for c in COLS])
    row("  hop CPU s/GB", ["-"] + [cell(c, f"{multi}_hop_cpu_s_per_GB", "{:.2f}", False)
                                    for c in COLS[1:]])
    row("warm: upstream blob requests during the warm streams (all rounds)", [
        "-", f"{sum(r['pc_cache'].get('warm_upstream_blob_requests', 0) for r in rounds)}",
        "-", f"{sum(r['regproxy'].get('warm_upstream_blob_requests', 0) for r in rounds)}",
        "-", "-"])

    def mcell(n, k):
        v = med(n, k)
        if v != v:
            return "-"
        if n == "direct":
            return f"{v:.3f}"
        return f"{v:.3f} ({ratio(n, k):.2f}, {added(n, k):+.3f} ms)"

    row("manifest by tag p50 ms, wrk -c1 (ratio, added)", [mcell(c, "m_p50_ms") for c in COLS])
    row("manifest by tag p99 ms", [mcell(c, "m_p99_ms") for c in COLS])
    row("manifest by tag req/s", [cell(c, "m_rps") for c in COLS])
    row("  upstream requests during the wrk run", [
        "-" if c in ("pc_nocache", "nginx_file") else
        f"{med(c, 'm_upstream_requests'):.0f} of {med(c, 'm_requests'):.0f}" for c in COLS])
    lines.append("")
    lines.append("\\* no cache: the hop fetches upstream on every GET; its single-stream figures are "
                 "the same-run reference for the cold fill (1 upstream GET per GET).")
    lines.append("")
    lines += [
        f"Memory (a fresh Portcullis cache, fresh cache dir, {mem['cold_upstream_gets']} upstream GET(s) "
        f"for {RSS_STREAMS} concurrent cold GETs: {mem['joins']:.0f} joined the in-flight "
        f"download, {mem['hits']:.0f} came after it and were hits; blob cached: "
        f"{mem['cold_stored']}):",
        "",
        "| Portcullis memory | MiB |",
        "| --- | --- |",
        f"| idle at start (VmRSS) | {mem['idle_start_MiB']:.1f} |",
        f"| peak during {RSS_STREAMS} concurrent cold GETs, {BLOB_MIB} MiB blob being cached "
        f"(VmHWM; sampled VmRSS max) | **{mem['cold_hwm_MiB']:.1f}** ({mem['cold_sampled_MiB']:.1f}); "
        f"{mem['cold_MBps']:.0f} MB/s aggregate, {mem.get('cold_cpu_s_per_GB', float('nan')):.2f} s/GB of CPU |",
        f"| peak during {RSS_STREAMS} concurrent warm GETs (VmHWM; sampled) | "
        f"**{mem['warm_hwm_MiB']:.1f}** ({mem['warm_sampled_MiB']:.1f}); "
        f"{mem['warm_MBps']:.0f} MB/s aggregate, {mem.get('warm_cpu_s_per_GB', float('nan')):.2f} s/GB of CPU, "
        f"{mem['warm_upstream_requests']} upstream blob requests |",
        f"| idle after the load, 3 s later (VmRSS) | {mem['idle_after_MiB']:.1f} |",
        f"|   of which anonymous (heap, stacks: RssAnon); mapped files (the binary, libc: RssFile) | "
        f"{mem.get('idle_after_RssAnon_MiB', float('nan')):.1f}; "
        f"{mem.get('idle_after_RssFile_MiB', float('nan')):.1f} |",
        "| idle after the load, VmRSS (threads) at " + ", ".join(f"{t} s" for t, *_ in mem.get("idle_series", []))
        + " | " + ", ".join(f"{r:.1f} ({n})" for _, r, _, n in mem.get("idle_series", [])) + " |",
        f"| idle after one more single pull, 3 s later (VmRSS; RssAnon): what an allocator that "
        f"purges only when a thread allocates again had kept | "
        f"{mem.get('idle_next_MiB', float('nan')):.1f}; "
        f"{mem.get('idle_next_RssAnon_MiB', float('nan')):.1f} |",
        f"| idle at start of each round's cache Portcullis (median) | "
        f"{med('pc_cache', 'idle_start_MiB'):.1f} |",
    ]

    ws, wm = ratio("pc_cache", "single_MBps"), ratio("pc_cache", f"{multi}_MBps")
    gets = maxv("pc_cache", "cold_upstream_gets")
    until = [r["pc_cache"].get("gets_until_stored") for r in rounds]
    until_max = max((u if isinstance(u, int) else 99) for u in until) if until else 99
    not_warm = sum(1 for u in until if isinstance(u, str))
    nw = f" (in {not_warm} round(s) the blob never got into the cache: not warm)" if not_warm else ""
    cpu = med("pc_cache", "cold_hop_cpu_s_per_GB")
    cpu_nc = med("pc_nocache", "single_hop_cpu_s_per_GB")
    vs_ng = ratio("pc_cache", "cold_MBps", "nginx_proxy", "single_MBps")
    p50_add = added("pc_cache", "m_p50_ms")
    rp_p50 = ratio("regproxy", "m_p50_ms")
    idle = max(mem["idle_start_MiB"], mem["idle_after_MiB"])
    targets = [
        ("warm single stream >= 1.0x direct", "nginx file "
         f"{ratio('nginx_file', 'single_MBps'):.2f}x, registry proxy "
         f"{ratio('regproxy', 'single_MBps'):.2f}x", f"{ws:.2f}x{nw}", ws >= 1.0),
        (f"warm {MULTI} streams >= 1.0x direct", "nginx file "
         f"{ratio('nginx_file', f'{multi}_MBps'):.2f}x, registry proxy "
         f"{ratio('regproxy', f'{multi}_MBps'):.2f}x", f"{wm:.2f}x{nw}", wm >= 1.0),
        ("cold fill: exactly 1 upstream GET (and the blob cached by it)", "registry proxy "
         f"{maxv('regproxy', 'cold_upstream_gets'):.0f}",
         f"{gets:.0f} for the cold GET; until cached: {', '.join(str(u) for u in until)}",
         gets == 1 and until_max == 1),
        ("cold fill hop CPU <= 1.15 s/GB (today's uncached stream)",
         f"uncached Portcullis this run {cpu_nc:.2f}", f"{cpu:.2f} s/GB", cpu <= 1.15),
        ("cold fill >= 0.8 of nginx proxy, same run", "registry proxy "
         f"{ratio('regproxy', 'cold_MBps', 'nginx_proxy', 'single_MBps'):.2f}; to direct: "
         f"{ratio('regproxy', 'cold_MBps', refk='single_MBps'):.2f}x",
         f"{vs_ng:.2f} (to direct {ratio('pc_cache', 'cold_MBps', refk='single_MBps'):.2f}x)",
         vs_ng >= 0.8),
        ("manifest by tag p50 faster than direct (warm trust and cache)",
         f"registry proxy {rp_p50:.1f}x direct", f"{p50_add:+.3f} ms", p50_add < 0),
        (f"peak RSS < 64 MiB, {RSS_STREAMS} streams cold ({BLOB_MIB} MiB being cached)", "",
         f"{mem['cold_hwm_MiB']:.1f} MiB", mem["cold_hwm_MiB"] < 64),
        (f"peak RSS < 64 MiB, {RSS_STREAMS} streams warm", "",
         f"{mem['warm_hwm_MiB']:.1f} MiB", mem["warm_hwm_MiB"] < 64),
        ("idle RSS < 20 MiB (at start, after load)", "",
         f"{mem['idle_start_MiB']:.1f}, {mem['idle_after_MiB']:.1f} MiB", idle < 20),
    ]
    tl = ["| target (issue 10) | peers, same run | Portcullis | met |", "| --- | --- | --- | --- |"]
    tl += [f"| {a} | {b} | {c} | {'met' if ok else '**missed**'} |" for a, b, c, ok in targets]

    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True).stdout.strip()
    now = datetime.now(timezone.utc)
    la = os.getloadavg()
    text = "\n".join([
        f"# Portcullis cache benchmark {now.strftime('%Y-%m-%d %H:%M:%S UTC')}",
        "",
        f"- commit {rev}{' (src/ modified)' if dirty else ''}; {'QUICK ' if QUICK else ''}"
        f"blob {BLOB_MIB} MiB; rounds {len(rounds)}; wrk {B.WRK_SECS}s per point; "
        f"Portcullis log level {B.LOG_LEVEL}"
        + (f"; Portcullis extra env {B.PC_EXTRA_ENV}" if B.PC_EXTRA_ENV else ""),
        f"- trust: {notes['trust']}",
        f"- Portcullis cache dirs and the registry proxy's storage: "
        f"{CACHE_DIR_PARENT or 'in the temp dir under /tmp'}",
        f"- machine: {os.cpu_count()} cores, load average at start "
        f"{load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, at end {la[0]:.2f}. "
        "The machine is shared and was noisy (other builds running): absolute figures move a lot "
        "between runs, ratios to direct in the same round much less; CPU per GB least.",
        f"- Portcullis still running at the end: {mem['alive']}",
        "- everything (registries, hops, curl, wrk) shares the same cores; the upstream "
        "registry's access log is on (it counts the upstream GETs) and is the `direct` target.",
        "",
        "Median over rounds; in parentheses the median of the per-round ratio to direct. Hop CPU "
        "from /proc/<pid>/stat (utime+stime; nginx: master + workers) per GB moved to clients.",
        "",
        *lines,
        "",
        *tl,
        "",
        "<details><summary>raw rounds and memory phase</summary>",
        "",
        "```json",
        json.dumps({"rounds": rounds, "memory": mem}, indent=1),
        "```",
        "</details>",
        "",
    ])
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results",
                       now.strftime("%Y%m%dT%H%M%SZ") + "-cache" + ("-quick" if QUICK else "") + ".md")
    with open(out, "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {out}")
