#!/usr/bin/python3
"""Turns the raw runs of bench/gateway into gateway-results.json and gateway-results.md.

Usage: report.py RUNS_DIR META_JSON OUT_DIR
RUNS_DIR holds one JSON file per measurement, named PAYLOAD-CASE-PHASE.json
(phases: saturation, rate, wrk) and idle-baseline.json / idle-with.json.
Prints the Markdown report on stdout.
"""

import json
import os
import sys

CASES = [("direct", "worker directly"), ("tandem", "tandem gateway"), ("nginx", "nginx"),
         ("haproxy", "HAProxy")]
PAYLOADS = ["digits", "wide"]
PROXY_CASES = ("tandem", "nginx", "haproxy")
# The rounds add tandem with server.audit.input_digest: none (no SHA-256 of each request body) and
# with server.audit.enabled: false (no audit record: nginx runs with access_log off).
ROUND_CASES = ("tandem", "tandem_nodigest", "tandem_noaudit", "nginx", "haproxy")
OPTIONAL_ROUND_CASES = ("tandem_baseline",)  # bench/gateway with BASELINE_TANDEM set
ROUND_TITLES = {"tandem": "tandem gateway (default: audit with SHA-256 of the input)",
                "tandem_nodigest": "tandem gateway, `audit.input_digest: none`",
                "tandem_noaudit": "tandem gateway, `audit.enabled: false`", "nginx": "nginx", "haproxy": "HAProxy",
                "tandem_baseline": "tandem gateway, baseline binary (`BASELINE_TANDEM`)"}
MINE_CASES = (("tandem", "tandem"), ("tandem_nodigest", "tandem (`input_digest: none`)"),
              ("tandem_noaudit", "tandem (`audit.enabled: false`)"))
# Targets from the issue (benchmark targets, not tests).
TARGET_CPU_VS_NGINX = {"digits": 1.0, "wide": 1.5}
TARGET_ADDED_P99_MS = 0.5
TARGET_IDLE_RSS_MIB = 64


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(value, digits=2, none="—"):
    if value is None:
        return none
    return f"{value:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def group(run, name):
    if not run:
        return {}
    return run.get("watch", {}).get(name, {})


def summarise(runs_dir):
    results = {}
    for payload in PAYLOADS:
        per_case = {}
        for case, title in CASES:
            sat = load(os.path.join(runs_dir, f"{payload}-{case}-saturation.json"))
            rate = load(os.path.join(runs_dir, f"{payload}-{case}-rate.json"))
            wrk = load(os.path.join(runs_dir, f"{payload}-{case}-wrk.json"))
            if not sat and not rate:
                continue
            cpu_group = "worker" if case == "direct" else "proxy"
            hwm = [group(r, cpu_group).get("vm_hwm_kib") for r in (sat, rate) if r]
            hwm = [h for h in hwm if h]
            worker_sat = group(sat, "worker")
            per_case[case] = {
                "title": title,
                "saturation_rps": sat and sat["achieved_rate"],
                "saturation_p50_ms": sat and sat["latency_ms"]["p50"],
                "saturation_p99_ms": sat and sat["latency_ms"]["p99"],
                "rate_target": rate and rate["target_rate"],
                "rate_achieved": rate and rate["achieved_rate"],
                "rate_p50_ms": rate and rate["latency_ms"]["p50"],
                "rate_p90_ms": rate and rate["latency_ms"]["p90"],
                "rate_p99_ms": rate and rate["latency_ms"]["p99"],
                "rate_p999_ms": rate and rate["latency_ms"]["p999"],
                # CPU of the proxy process(es) only; for "direct" there is no proxy.
                "proxy_cpu_s_per_1k_saturation":
                    None if case == "direct" else group(sat, "proxy").get("cpu_s_per_1k_requests"),
                "proxy_cpu_s_per_1k_rate":
                    None if case == "direct" else group(rate, "proxy").get("cpu_s_per_1k_requests"),
                "proxy_oncpu_s_per_1k_saturation":
                    None if case == "direct" else group(sat, "proxy").get("oncpu_s_per_1k_requests"),
                "worker_cpu_s_per_1k_saturation": worker_sat.get("cpu_s_per_1k_requests"),
                "peak_rss_mib": (max(hwm) / 1024.0) if hwm else None,
                "peak_rss_of": cpu_group,
                "errors": sum((r or {}).get("errors", 0) for r in (sat, rate)),
                "outcomes": {"saturation": sat and sat["outcomes"], "rate": rate and rate["outcomes"]},
                "loadgen_cpu_s_per_1k_saturation":
                    sat and sat["requests"] and 1000.0 * sat["loadgen_cpu_s"] / sat["requests"],
                "wrk": wrk,
            }
        results[payload] = per_case
    return results


def ratios(results):
    out = {}
    for payload, cases in results.items():
        t = cases.get("tandem", {})
        d = cases.get("direct", {})
        r = {}
        for other in ("nginx", "haproxy"):
            o = cases.get(other, {})
            r[f"cpu_saturation_tandem_over_{other}"] = ratio(t.get("proxy_cpu_s_per_1k_saturation"),
                                                             o.get("proxy_cpu_s_per_1k_saturation"))
            r[f"cpu_rate_tandem_over_{other}"] = ratio(t.get("proxy_cpu_s_per_1k_rate"),
                                                       o.get("proxy_cpu_s_per_1k_rate"))
            r[f"throughput_tandem_over_{other}"] = ratio(t.get("saturation_rps"), o.get("saturation_rps"))
        for case in PROXY_CASES:
            c = cases.get(case, {})
            if c.get("rate_p99_ms") is not None and d.get("rate_p99_ms") is not None:
                r[f"added_p99_ms_{case}"] = c["rate_p99_ms"] - d["rate_p99_ms"]
                r[f"added_p50_ms_{case}"] = c["rate_p50_ms"] - d["rate_p50_ms"]
        out[payload] = r
    return out


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def rounds(runs_dir):
    """Saturation CPU per request from the alternating rounds: per proxy, every round and the
    median; per round, tandem over each other proxy; and the median of those ratios."""
    out = {}
    for payload in PAYLOADS:
        per_round = {}
        for name in os.listdir(runs_dir):
            prefix = f"{payload}-"
            if not name.startswith(prefix) or "-round-" not in name or not name.endswith(".json"):
                continue
            case, number = name[len(prefix):-5].split("-round-")
            run = load(os.path.join(runs_dir, name))
            cpu = group(run, "proxy").get("cpu_s_per_1k_requests")
            per_round.setdefault(int(number), {})[case] = {"cpu_s_per_1k": cpu, "rps": run and run["achieved_rate"],
                                                           "errors": run and run["errors"]}
        if not per_round:
            continue
        numbers = sorted(per_round)
        present = ROUND_CASES + tuple(c for c in OPTIONAL_ROUND_CASES if any(c in per_round[n] for n in numbers))
        cases = {case: [per_round[n].get(case, {}).get("cpu_s_per_1k") for n in numbers] for case in present}
        result = {"rounds": len(numbers),
                  "cpu_s_per_1k": cases,
                  "median_cpu_s_per_1k": {case: median(v) for case, v in cases.items()},
                  "errors": sum((per_round[n].get(c, {}).get("errors") or 0) for n in numbers for c in present)}
        if "tandem_baseline" in cases:
            per = [ratio(t, b) for t, b in zip(cases["tandem"], cases["tandem_baseline"])]
            result["tandem_over_baseline_per_round"] = per
            result["tandem_over_baseline_median"] = median(per)
        for mine, _ in MINE_CASES:
            for other in ("nginx", "haproxy"):
                per = [ratio(t, o) for t, o in zip(cases[mine], cases[other])]
                result[f"{mine}_over_{other}_per_round"] = per
                result[f"{mine}_over_{other}_median"] = median(per)
        out[payload] = result
    return out


def idle(runs_dir):
    base = load(os.path.join(runs_dir, "idle-baseline.json"))
    with_idle = load(os.path.join(runs_dir, "idle-with.json"))
    if not base or not with_idle:
        return None
    gb, gi = group(base, "proxy"), group(with_idle, "proxy")
    return {
        "idle_connections": with_idle.get("idle", {}),
        "rate": with_idle["target_rate"],
        "before": {"vm_rss_mib": gb.get("vm_rss_kib", 0) / 1024.0, "vm_hwm_mib": gb.get("vm_hwm_kib", 0) / 1024.0,
                   "p50_ms": base["latency_ms"]["p50"], "p99_ms": base["latency_ms"]["p99"],
                   "p999_ms": base["latency_ms"]["p999"],
                   "cpu_s_per_1k": gb.get("cpu_s_per_1k_requests"), "errors": base["errors"]},
        "with_idle": {"vm_rss_mib_after_open": gi.get("vm_rss_kib_after_idle", 0) / 1024.0,
                      "vm_rss_mib": gi.get("vm_rss_kib", 0) / 1024.0, "vm_hwm_mib": gi.get("vm_hwm_kib", 0) / 1024.0,
                      "p50_ms": with_idle["latency_ms"]["p50"], "p99_ms": with_idle["latency_ms"]["p99"],
                      "p999_ms": with_idle["latency_ms"]["p999"],
                      "cpu_s_per_1k": gi.get("cpu_s_per_1k_requests"), "errors": with_idle["errors"]},
    }


def verdict(ok):
    return "meets target" if ok else "MISSES target"


def markdown(meta, results, rats, idle_result, rounds_result=None):
    lines = []
    add = lines.append
    add(f"## Gateway benchmark — {meta.get('date', '')}")
    add("")
    add(f"Machine: {meta.get('nproc')} CPUs ({meta.get('cpu_model')}), {meta.get('mem_total')}, "
        f"kernel {meta.get('kernel')}; load average {meta.get('loadavg_at_start')} at the start, "
        f"{meta.get('loadavg_at_end')} at the end. One run on a shared, noisy machine: load generator, proxy and "
        "worker compete for the same cores, so CPU seconds per request of the proxy process (from /proc) is "
        "the primary figure; throughput and latency are indicative.")
    add("")
    v = meta.get("versions", {})
    add(f"Software: {v.get('nginx')}; {v.get('haproxy')}; {v.get('wrk')}; {v.get('gxx')}; "
        f"tandem {v.get('tandem')} (binary built {v.get('tandem_binary_built')}; git {v.get('git')} at run time). "
        f"Command: `{meta.get('command')}`.")
    add("")
    p = meta.get("params", {})
    add(f"Saturation: closed loop, {p.get('sat_connections')} keep-alive connections, {p.get('sat_seconds')} s "
        f"(after {p.get('warmup_seconds')} s warm-up). Latency: open loop at a fixed rate "
        f"(digits {p.get('digits_rate')} req/s, wide {p.get('wide_rate')} req/s), {p.get('rate_seconds')} s, "
        f"{p.get('sat_connections')} connections, measured from the scheduled send time. "
        "CPU: utime+stime of the proxy process(es) only (nginx: master + worker), per 1 000 requests of the phase.")
    add("")
    for payload, cases in results.items():
        if not cases:
            continue  # not measured in this run (BENCH_PAYLOADS)
        size = meta.get("payloads", {}).get(payload, {}).get("bytes")
        desc = "one row, 64 FP32 values" if payload == "digits" else "one row, 3×224×224 = 150 528 FP32 values"
        add(f"### {payload} ({desc}; request body {size} bytes)")
        add("")
        add("| case | saturation req/s | p50 ms @ rate | p99 ms @ rate | proxy CPU s / 1k req (saturation) "
            "| proxy CPU s / 1k req (@ rate) | peak RSS MiB | errors |")
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for case, _ in CASES:
            c = cases.get(case)
            if not c:
                continue
            rss = fmt(c["peak_rss_mib"], 1) + (" (worker)" if case == "direct" else "")
            add(f"| {c['title']} | {fmt(c['saturation_rps'], 0)} | {fmt(c['rate_p50_ms'], 3)} | "
                f"{fmt(c['rate_p99_ms'], 3)} | {fmt(c['proxy_cpu_s_per_1k_saturation'], 4)} | "
                f"{fmt(c['proxy_cpu_s_per_1k_rate'], 4)} | {rss} | {c['errors']} |")
        add("")
        wrk_rows = [(case, cases[case]["wrk"]) for case, _ in CASES if case in cases and cases[case].get("wrk")]
        if wrk_rows:
            add("Cross-check with wrk (1 thread, same connections and duration, closed loop): " + "; ".join(
                f"{cases[case]['title']} {fmt(w.get('requests_per_s'), 0)} req/s"
                + (f", proxy CPU {fmt(w.get('proxy_cpu_s_per_1k'), 4)} s/1k" if w.get("proxy_cpu_s_per_1k") else "")
                for case, w in wrk_rows) + ".")
            add("")
        r = rats.get(payload, {})
        target = TARGET_CPU_VS_NGINX[payload]
        cpu_n = r.get("cpu_saturation_tandem_over_nginx")
        rr = (rounds_result or {}).get(payload)
        if rr:
            n = rr["rounds"]
            add(f"Proxy CPU s / 1k requests at saturation, {n} alternating rounds with every proxy up "
                f"(the order rotates each round; {rr['errors']} errors):")
            add("")
            add("| | " + " | ".join(f"round {i + 1}" for i in range(n)) + " | median |")
            add("| --- |" + " ---: |" * (n + 1))
            for case in rr["cpu_s_per_1k"]:
                values = rr["cpu_s_per_1k"][case]
                add(f"| {ROUND_TITLES[case]} | " + " | ".join(fmt(v, 4) for v in values)
                    + f" | {fmt(rr['median_cpu_s_per_1k'][case], 4)} |")
            for mine, mine_title in MINE_CASES:
                for other, title in (("nginx", "nginx"), ("haproxy", "HAProxy")):
                    add(f"| {mine_title} / {title} | "
                        + " | ".join(fmt(v) + "×" for v in rr[f"{mine}_over_{other}_per_round"])
                        + f" | **{fmt(rr[f'{mine}_over_{other}_median'])}×** |")
            if "tandem_over_baseline_per_round" in rr:
                add("| tandem / baseline binary | "
                    + " | ".join(fmt(v, 3) + "×" for v in rr["tandem_over_baseline_per_round"])
                    + f" | **{fmt(rr['tandem_over_baseline_median'], 3)}×** |")
            add("")
        add(f"Ratios ({payload}):")
        add("")
        if rr:
            med = rr["tandem_over_nginx_median"]
            # The verdict is on the unrounded median: printed too, so that "1.00×, MISSES" reads plainly.
            exact = f", {med:.3f}×" if med is not None else ""
            add(f"- proxy CPU per request, tandem / nginx, median of {rr['rounds']} rounds: **{fmt(med)}×** "
                f"(target ≤ {target}×: {verdict(med is not None and med <= target)}{exact}); with "
                f"`audit.input_digest: none`: {fmt(rr['tandem_nodigest_over_nginx_median'])}×; with "
                f"`audit.enabled: false`: {fmt(rr['tandem_noaudit_over_nginx_median'])}×")
        add(f"- proxy CPU per request, tandem / nginx, the single run above: **{fmt(cpu_n)}×** at saturation, "
            f"{fmt(r.get('cpu_rate_tandem_over_nginx'))}× at the fixed rate"
            + ("" if rr else f" (target ≤ {target}×: {verdict(cpu_n is not None and cpu_n <= target)})"))
        add(f"- proxy CPU per request, tandem / HAProxy: **{fmt(r.get('cpu_saturation_tandem_over_haproxy'))}×** at "
            f"saturation, {fmt(r.get('cpu_rate_tandem_over_haproxy'))}× at the fixed rate")
        add(f"- saturation throughput, tandem / nginx: {fmt(r.get('throughput_tandem_over_nginx'))}×; "
            f"tandem / HAProxy: {fmt(r.get('throughput_tandem_over_haproxy'))}×")
        added = r.get("added_p99_ms_tandem")
        add(f"- added p99 latency at the fixed rate (proxy minus direct): tandem **{fmt(added, 3)} ms**"
            + (f" (target ≤ {TARGET_ADDED_P99_MS} ms: {verdict(added <= TARGET_ADDED_P99_MS)})"
               if payload == "digits" and added is not None else "")
            + f", nginx {fmt(r.get('added_p99_ms_nginx'), 3)} ms, HAProxy {fmt(r.get('added_p99_ms_haproxy'), 3)} ms"
            + f"; added p50: tandem {fmt(r.get('added_p50_ms_tandem'), 3)} ms, nginx {fmt(r.get('added_p50_ms_nginx'), 3)} ms,"
            + f" HAProxy {fmt(r.get('added_p50_ms_haproxy'), 3)} ms")
        add("")
    if idle_result:
        b, w = idle_result["before"], idle_result["with_idle"]
        ic = idle_result["idle_connections"]
        add(f"### Idle connections (tandem gateway, digits at {fmt(idle_result['rate'], 0)} req/s)")
        add("")
        add(f"{ic.get('opened')} of {ic.get('requested')} idle keep-alive connections opened in "
            f"{fmt(ic.get('setup_s'))} s (each sent one request, then stayed idle); "
            f"{ic.get('still_open_at_end')} still open at the end.")
        add("")
        add("| | VmRSS MiB | VmHWM MiB | p50 ms | p99 ms | p99.9 ms | CPU s / 1k req | errors |")
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        add(f"| before (no idle connections) | {fmt(b['vm_rss_mib'], 1)} | {fmt(b['vm_hwm_mib'], 1)} | "
            f"{fmt(b['p50_ms'], 3)} | {fmt(b['p99_ms'], 3)} | {fmt(b['p999_ms'], 3)} | {fmt(b['cpu_s_per_1k'], 4)} | "
            f"{b['errors']} |")
        add(f"| with {ic.get('opened')} idle connections | {fmt(w['vm_rss_mib'], 1)} | {fmt(w['vm_hwm_mib'], 1)} | "
            f"{fmt(w['p50_ms'], 3)} | {fmt(w['p99_ms'], 3)} | {fmt(w['p999_ms'], 3)} | {fmt(w['cpu_s_per_1k'], 4)} | "
            f"{w['errors']} |")
        add("")
        grow = (w["vm_rss_mib"] - b["vm_rss_mib"]) * 1024.0 / max(1, ic.get("opened") or 1)
        add(f"RSS with the idle connections: {fmt(w['vm_rss_mib'], 1)} MiB, about {fmt(grow, 1)} KiB per idle "
            f"connection (target ≤ {TARGET_IDLE_RSS_MIB} MiB: {verdict(w['vm_hwm_mib'] <= TARGET_IDLE_RSS_MIB)}).")
        add("")
    return "\n".join(lines) + "\n"


def main():
    runs_dir, meta_path, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    meta = load(meta_path) or {}
    with open("/proc/loadavg", encoding="utf-8") as f:
        meta["loadavg_at_end"] = " ".join(f.read().split()[:3])
    results = summarise(runs_dir)
    rats = ratios(results)
    idle_result = idle(runs_dir)
    rounds_result = rounds(runs_dir)
    raw = {}
    for name in sorted(os.listdir(runs_dir)):
        if name.endswith(".json"):
            raw[name[:-5]] = load(os.path.join(runs_dir, name))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "gateway-results.json"), "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "results": results, "ratios": rats, "rounds": rounds_result, "idle": idle_result,
                   "runs": raw}, f, indent=1)
    text = markdown(meta, results, rats, idle_result, rounds_result)
    with open(os.path.join(out_dir, "gateway-results.md"), "w", encoding="utf-8") as f:
        f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
