"""`passage serve` under load: requests/s, reviews/s, latency percentiles, errors and memory,
beside in-process ``model.predict`` on the same IMDB test reviews in the same run.

The server runs as a subprocess on 127.0.0.1 (``passage serve MODEL --port 0``); a bounded load
generator (asyncio, plain HTTP/1.1 keep-alive connections: the client itself costs little CPU)
sends one review per request at concurrency 1, 8 and 64, each phase ending after a fixed number
of requests or its time limit. The concurrency-64 phase runs for ``--soak-seconds`` (60) and the
memory of the server and its worker processes is read at its start and end. Then SIGTERM, and
the exit status is checked. In-process predict runs before and after the server (the ratios
are taken against the mean). Each phase also gives the CPU time a review costs (server,
workers and load generator) and the machine's steal: on a shared virtual machine the
hypervisor takes a varying share of the cores, which moves every figure but the CPU times.

    python benchmarks/serve.py [--data /work/shared/data/imdb] [--model FILE] [--json out.json]
    python benchmarks/serve.py --markdown out.json     # the docs' table from a results file

Without --model, the default model of ``passage train`` (``passage.recipe``) is trained for one
epoch on ``--train-size`` training reviews first. A last phase sends ``--batch-per-request``
reviews per request at concurrency 64 (a client batching its own texts).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import data_dir  # noqa: E402

from passage.datasets import load_imdb


def tree(pid: int) -> list[int]:
    """The server and its worker processes (started by any of its threads: a replaced worker
    is started by a batch thread)."""
    found = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
        except OSError:  # (a thread that just ended)
            pass
    return found


def rss_mib(pid: int) -> float:
    """Resident memory of the server and its worker processes, summed (pages they share are
    counted in each: an upper bound)."""
    total = 0
    for p in tree(pid):
        with open(f"/proc/{p}/status") as f:
            total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by the server and its worker processes."""
    total = 0
    for p in tree(pid):
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def stolen(before: list[int], after: list[int]) -> float:
    """The share of the machine's time its hypervisor gave to others (steal) meanwhile: on a
    shared virtual machine it varies from minute to minute and slows both sides."""
    d = [b - a for a, b in zip(before, after, strict=True)]
    return d[7] / max(1, sum(d)) if len(d) > 7 else 0.0


def train(data: str, n: int, path: str) -> None:
    from passage.io import save
    from passage.recipe import TextModelOptions, fit_text_model

    texts, labels = load_imdb(data, "train")
    order = np.random.default_rng(0).permutation(len(texts))[:n]
    began = time.time()
    model = fit_text_model([texts[i] for i in order], [labels[i] for i in order],
                        options=TextModelOptions(n_epochs=1, validation_split=0.0))
    save(model, path)
    print(f"trained the default model (passage train's recipe) on {n:,} reviews, 1 epoch, "
          f"in {time.time() - began:.0f}s", flush=True)


def in_process(path: str, texts: list[str]) -> dict:
    """Best reviews/s of model.predict on all the texts (two runs), its CPU time per review,
    and the machine's steal meanwhile."""
    from passage.io import load

    model = load(path)
    model.predict(texts[:64])
    best, cpu = 0.0, float("inf")
    ticks = machine_ticks()
    for _ in range(2):
        began, used = time.perf_counter(), time.process_time()
        model.predict(texts)
        best = max(best, len(texts) / (time.perf_counter() - began))
        cpu = min(cpu, (time.process_time() - used) / len(texts))
    return {"reviews_per_s": best, "cpu_ms_per_review": cpu * 1000,
            "steal": stolen(ticks, machine_ticks())}


def start_server(path: str, extra: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "passage.cli", "serve", path, "--port", "0",
                             "--log-level", "warning", *extra],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    port = None
    while port is None and time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"the server exited ({proc.wait()}) before listening")
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        port = int(m.group(1)) if m else None
    if port is None:
        proc.kill()
        raise SystemExit("the server did not start listening within 120 s")
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server was not ready within 120 s")


async def _one(reader, writer, body: bytes, port: int) -> tuple[int, bytes]:
    writer.write(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
                 b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (port, len(body), body))
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    at = head.lower().index(b"content-length:") + 15
    length = int(head[at:head.index(b"\r\n", at)])
    return status, await reader.readexactly(length)


def drive(*args) -> dict:
    """``load(*args)`` on uvloop when it is installed (the serve extra has it): the load
    generator shares the server's cores, so the less CPU it takes the better."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(load(*args))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(load(*args))


async def load(port: int, bodies: list[bytes], concurrency: int, n_requests: int,
               seconds: float, per_request: int = 1) -> dict:
    """``concurrency`` connections send requests until ``n_requests`` are answered or the
    time is up; latencies of the answered ones."""
    latencies, errors, sent = [], 0, 0
    deadline = time.perf_counter() + seconds

    async def client():
        nonlocal errors, sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while sent < n_requests and time.perf_counter() < deadline:
                body = bodies[sent % len(bodies)]
                sent += 1
                began = time.perf_counter()
                try:
                    async with asyncio.timeout(30):  # (no task per request, as wait_for makes)
                        status, _ = await _one(reader, writer, body, port)
                except (TimeoutError, OSError, asyncio.IncompleteReadError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append(time.perf_counter() - began)
                errors += status != 200
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {"concurrency": concurrency, "requests": len(latencies), "seconds": wall,
            "requests_per_s": len(latencies) / wall,
            "reviews_per_s": per_request * len(latencies) / wall, "per_request": per_request,
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "errors": errors}


def markdown(path: str) -> str:
    """The docs' table (docs/serve.md) from a results file of this benchmark."""
    with open(path) as f:
        doc = json.load(f)
    lines = ["| phase | requests | req/s | reviews/s | p50 ms | p95 ms | p99 ms | errors | memory "
             "MiB start -> end | CPU ms a review | steal |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["phases"]:
        name = (f"median review ({doc['median_chars']:,} chars)" if r["name"] == "median review"
                else r["name"])
        secs = f" ({r['seconds']:.0f} s)" if r["requests"] > 5000 else ""
        change = r["rss_end_mib"] / r["rss_start_mib"] - 1
        lines.append(f"| {name}, c={r['concurrency']}{secs} | {r['requests']:,} | "
                     f"{r['requests_per_s']:,.0f} | {r['reviews_per_s']:,.0f} | "
                     f"{r['p50_ms']:,.1f} | {r['p95_ms']:,.1f} | {r['p99_ms']:,.1f} | "
                     f"{r['errors']} | {r['rss_start_mib']:.0f} -> {r['rss_end_mib']:.0f}"
                     f"{f' ({change:+.1%})' if secs else ''} | "
                     f"{r.get('cpu_ms_per_review', float('nan')):.2f} | "
                     f"{r.get('steal', float('nan')):.0%} |")
    for run in doc.get("in_process_runs", []):
        lines.append(f"| in-process `model.predict` | | | {run['reviews_per_s']:,.0f} | | | | | "
                     f"| {run['cpu_ms_per_review']:.2f} | {run['steal']:.0%} |")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--markdown"]:
        print(markdown(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="the IMDB folder (default: DATA_ROOT/imdb)")
    ap.add_argument("--model", help="a model file (default: train one)")
    ap.add_argument("--train-size", type=int, default=5000)
    ap.add_argument("--reviews", type=int, default=4000, help="test reviews to send")
    ap.add_argument("--requests", type=int, default=2000, help="requests per short phase")
    ap.add_argument("--soak-seconds", type=float, default=60.0)
    ap.add_argument("--batch-per-request", type=int, default=8,
                    help="reviews per request in the last phase")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--server-args", default="", help="extra 'passage serve' flags")
    args = ap.parse_args()
    args.data = args.data or data_dir("imdb")
    if not os.path.exists(os.path.join(args.data, "test.jsonl.gz")):
        raise SystemExit(f"no IMDB data in {args.data!r} (test.jsonl.gz, train.jsonl.gz): give "
                         "--data DIR")
    texts, _ = load_imdb(args.data, "test")
    order = np.random.default_rng(1).permutation(len(texts))[:args.reviews]
    texts = [texts[i] for i in order]
    lengths = np.array([len(t) for t in texts])
    median = texts[int(np.argsort(lengths)[len(texts) // 2])]
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if path is None:
            path = os.path.join(tmp, "imdb.passage")
            train(args.data, args.train_size, path)
        local_runs = [in_process(path, texts)]
        print(f"in-process model.predict: {local_runs[0]['reviews_per_s']:,.0f} reviews/s on "
              f"{len(texts):,} reviews, {local_runs[0]['cpu_ms_per_review']:.2f} ms CPU a "
              f"review, steal {local_runs[0]['steal']:.0%}", flush=True)
        proc, port = start_server(path, args.server_args.split())
        bodies = [json.dumps({"inputs": t}).encode() for t in texts]
        k = args.batch_per_request
        lists = [json.dumps({"inputs": texts[i:i + k]}).encode()
                 for i in range(0, len(texts) - k + 1, k)]
        rows = []
        try:
            phases = [("median review", [json.dumps({"inputs": median}).encode()], 1, 500, 60),
                      ("reviews", bodies, 1, args.requests // 2, 60),
                      ("reviews", bodies, 8, args.requests, 60),
                      ("reviews", bodies, 64, 10 ** 9, args.soak_seconds),
                      (f"{k} per request", lists, 64, args.requests, 60)]
            for name, sent, concurrency, n, seconds in phases:
                rss_start, ticks = rss_mib(proc.pid), machine_ticks()
                cpu, client = cpu_seconds(proc.pid), time.process_time()
                row = drive(port, sent, concurrency, n, seconds, k if sent is lists else 1)
                reviews = max(1, row["requests"] * row["per_request"])
                row.update(name=name, rss_start_mib=rss_start, rss_end_mib=rss_mib(proc.pid),
                           cpu_ms_per_review=1000 * (cpu_seconds(proc.pid) - cpu
                                                     + time.process_time() - client) / reviews,
                           steal=stolen(ticks, machine_ticks()))
                rows.append(row)
                print(f"{name:>13} c={concurrency:<3} {row['requests']:>6} req "
                      f"{row['requests_per_s']:>7,.0f} req/s {row['reviews_per_s']:>7,.0f} "
                      f"reviews/s  p50 {row['p50_ms']:6.1f} p95 {row['p95_ms']:6.1f} p99 "
                      f"{row['p99_ms']:6.1f} ms  errors {row['errors']}  memory "
                      f"{rss_start:.0f} -> {row['rss_end_mib']:.0f} MiB  "
                      f"{row['cpu_ms_per_review']:.2f} ms CPU a review  steal "
                      f"{row['steal']:.0%}", flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(60)
        local_runs.append(in_process(path, texts))  # again: the machine drifts meanwhile
        local = float(np.mean([r["reviews_per_s"] for r in local_runs]))
        local_cpu = float(np.mean([r["cpu_ms_per_review"] for r in local_runs]))
        print(f"in-process model.predict again: {local_runs[1]['reviews_per_s']:,.0f} reviews/s,"
              f" steal {local_runs[1]['steal']:.0%}; ratios below against the mean of the two",
              flush=True)
        soak, batched = rows[-2], rows[-1]
        print(f"served at c=64: {soak['reviews_per_s'] / local:.0%} of in-process "
              f"(CPU a review, server and client: {soak['cpu_ms_per_review']:.2f} ms against "
              f"{local_cpu:.2f}, {local_cpu / soak['cpu_ms_per_review']:.0%}), "
              f"{batched['reviews_per_s'] / local:.0%} with {k} reviews per request; median "
              f"review ({len(median):,} chars) p50 at c=1: {rows[0]['p50_ms']:.1f} ms; RSS over "
              f"{soak['seconds']:.0f}s: {soak['rss_end_mib'] / soak['rss_start_mib'] - 1:+.1%}; "
              f"server exit status after SIGTERM: {status}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                       "in_process_reviews_per_s": local, "in_process_runs": local_runs,
                       "in_process_cpu_ms_per_review": local_cpu, "median_chars": len(median),
                       "phases": rows, "exit_status": status}, f, indent=1)


if __name__ == "__main__":
    main()
