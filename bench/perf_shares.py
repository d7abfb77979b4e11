#!/usr/bin/env python3
"""perf_shares.py — shares of a node's CPU by part of the code, from `perf script -F
comm,tid,ip,sym` output with call stacks (bench/profile.sh makes it).

Each sample is counted once, under the first part in PARTS whose frame pattern is on its stack:
the list runs from the most specific to the most general, so a JSON decode inside an axum
handler counts as the decode, and the handler's own work as HTTP.

    python3 bench/perf_shares.py stacks.txt
"""
import collections
import re
import sys

PARTS = [
    ("the ledger's apply (all replicas)", r"paddock_ledger::apply::apply_noting_replay"),
    ("the state machine, the rest of apply", r"RaftStateMachine<paddock_consensus::types::TypeConfig>>::apply"),
    ("JSON decoding of request bodies", r"paddock_node::extract::decode"),
    ("JSON encoding of answers", r"serde_json::ser"),
    ("the Raft log writer (redb, fsync)", r"paddock_storage::log::"),
    ("the bet and other routes", r"paddock_node::routes"),
    ("replication and forwarding: tonic, h2", r"tonic::|h2::|paddock_consensus::network"),
    ("axum and hyper, the rest", r"axum::|hyper::"),
    ("openraft's core", r"openraft::"),
    ("tokio's scheduler", r"tokio::runtime"),
]


def samples(path):
    """Yields each sample's stack as one string (frames leaf first)."""
    stack = []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.strip():
                if stack:
                    yield "".join(stack)
                stack = []
            elif line[0].isspace():
                stack.append(line)
    if stack:
        yield "".join(stack)


def main():
    counts = collections.Counter()
    total = 0
    for stack in samples(sys.argv[1]):
        total += 1
        part = next((name for name, pattern in PARTS if re.search(pattern, stack)), "elsewhere")
        counts[part] += 1
    if total == 0:
        sys.exit("no samples with call stacks: was perf recording the nodes?")
    print(f"{total} samples")
    for name, count in counts.most_common():
        print(f"{100 * count / total:6.1f} %  {name}")


if __name__ == "__main__":
    main()
