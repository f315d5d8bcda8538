"""rawchat batch against a rate limit: how close to the allowed rate, how many 429s.

The simulator limits one key to ``--rpm`` requests per minute (a token
bucket holding ``--burst``). ``rawchat batch`` runs ``--requests`` lines
with ``--workers`` threads, paced by a client-side ``Pacer`` set to the same
rate. The figures: the throughput achieved against the rate the server
allows over the same time (its burst plus the refill), and the 429s the
server had to send.

    python benchmarks/batch_rate.py [--rpm 3000] [--requests 300] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import rawchat
from rawchat.cli.batch import run_batch
from rawchat.policies import Pacer, Policies
from rawchat.simulator import Simulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpm", type=float, default=3000)
    parser.add_argument("--burst", type=float, default=8)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory, Simulator(
        requests_per_minute=args.rpm, burst=args.burst
    ) as sim:
        source = os.path.join(directory, "in.jsonl")
        with open(source, "w") as out:
            for i in range(args.requests):
                out.write(json.dumps({"prompt": f"question {i}", "max_tokens": 5}) + "\n")
        client = rawchat.Client(
            "sk-bench-000000000000", sim.base_url, model="gpt-4o-mini",
            policies=Policies(pacer=Pacer(args.rpm, burst=args.burst / 2)),
        )  # fmt: skip
        started = time.monotonic()
        summary = run_batch(
            client, source, os.path.join(directory, "out.jsonl"), workers=args.workers
        )
        elapsed = time.monotonic() - started
    allowed = args.burst + args.rpm / 60.0 * elapsed
    print(
        f"{args.requests} requests, {args.workers} workers, limit {args.rpm:g}/min "
        f"(burst {args.burst:g}); {elapsed:.2f} s"
    )
    print(f"achieved {summary.done / elapsed:.1f} requests/s against {args.rpm / 60:.1f} allowed")
    print(f"share of the allowed requests used: {summary.done / allowed:.1%}")
    print(f"429s sent by the server: {sim.app.rate_limited}; failed lines: {summary.errors}")


if __name__ == "__main__":
    main()
