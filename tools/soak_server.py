#!/usr/bin/env python3
"""A long mixed load against a running `ragseg serve`, printing per round the throughput, latencies, answers
by kind and the server's resident memory (read from /proc, so run it on the server's machine).

    ragseg serve --index BANK --port 8099 &
    python3 tools/soak_server.py --port 8099 --pid $! --images DIR [--volumes DIR] \
        [--concurrency 8] [--rounds 6] [--per-round 400] [--pause 0] [--mix small,volume,json,bad]

Kinds of request, drawn at random per request: `small` (POST /segment with a PNG from --images, mask PNG
back), `json` (the same with format=json), `volume` (a NIfTI from --volumes, label volume back) and `bad`
(random bytes, which must be answered 400). `--pause S` waits S seconds before each round: an idle server's
worker threads retire meanwhile and the next round runs on fresh ones, which is how leaks tied to threads
show. Memory that keeps growing from round to round, rather than levelling off after the first rounds, is
a leak. Standard library only.
"""
import argparse
import http.client
import os
import random
import sys
import threading
import time


def resident_mib(pid):
    """(VmRSS, VmHWM) of the process in MiB."""
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def files(folder, suffixes):
    if not folder:
        return []
    names = sorted(n for n in os.listdir(folder) if n.endswith(suffixes))
    return [open(os.path.join(folder, n), "rb").read() for n in names]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True, help="the server's process id (for its memory)")
    parser.add_argument("--images", required=True, help="folder of PNG images to segment")
    parser.add_argument("--volumes", help="folder of NIfTI volumes to segment (.nii, .nii.gz)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=400)
    parser.add_argument("--pause", type=float, default=0, help="idle seconds before each round")
    parser.add_argument("--mix", default="small,volume,json,bad")
    parser.add_argument("--k", type=int, default=2)
    args = parser.parse_args()

    images = files(args.images, (".png",))
    volumes = files(args.volumes, (".nii", ".nii.gz"))
    mix = [kind for kind in args.mix.split(",") if kind != "volume" or volumes]
    if not images or not mix:
        sys.exit("soak_server: no PNG in --images (or nothing left to send)")

    def request(rng):
        kind = rng.choice(mix)
        path = f"/segment?k={args.k}"
        if kind == "small":
            body = rng.choice(images)
        elif kind == "json":
            body, path = rng.choice(images), path + "&format=json"
        elif kind == "volume":
            body = rng.choice(volumes)
        else:
            body = rng.randbytes(rng.randint(10, 200_000))
        connection = http.client.HTTPConnection(args.host, args.port, timeout=3600)
        start = time.time()
        connection.request("POST", path, body=body)
        response = connection.getresponse()
        response.read()
        connection.close()
        return kind, response.status, time.time() - start

    rss, peak = resident_mib(args.pid)
    print(
        f"server {args.pid}: RSS {rss} MiB (peak {peak}) before the first request; {args.concurrency} clients",
        flush=True,
    )
    failures = 0
    for number in range(1, args.rounds + 1):
        time.sleep(args.pause)
        results, lock = [], threading.Lock()

        def client(index):
            rng = random.Random(number * 1000 + index)
            for _ in range(args.per_round // args.concurrency):
                outcome = request(rng)
                with lock:
                    results.append(outcome)

        start = time.time()
        clients = [threading.Thread(target=client, args=(i,)) for i in range(args.concurrency)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        wall = time.time() - start
        answers = {}
        for kind, status, _ in results:
            answers[f"{kind} {status}"] = answers.get(f"{kind} {status}", 0) + 1
            failures += (status != 400) if kind == "bad" else (status != 200)
        latencies = sorted(seconds for _, _, seconds in results)
        rss, peak = resident_mib(args.pid)
        threads = len(os.listdir(f"/proc/{args.pid}/task"))
        print(
            f"round {number}: {len(results)} requests in {wall:.1f} s ({len(results) / wall:.1f}/s), "
            f"latency p50 {latencies[len(latencies) // 2] * 1000:.0f} ms p99 "
            f"{latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms; RSS {rss} MiB (peak {peak}); "
            f"{threads} threads; " + ", ".join(f"{k}: {v}" for k, v in sorted(answers.items())),
            flush=True,
        )
    if failures:
        sys.exit(f"soak_server: {failures} answers were not the expected 200 (or 400 for bad bytes)")


if __name__ == "__main__":
    main()
