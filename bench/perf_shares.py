#!/usr/bin/env python3
"""perf_shares.py — shares of a node's CPU by part of the code, from `perf script -F
comm,tid,ip,sym` output with call stacks (bench/profile.sh makes it).

Each sample is counted once, under the first part in PARTS whose frame pattern is on its stack:
the list runs from the most specific to the most general, so a JSON decode inside an axum
handler counts as the decode, and the handler's own work as HTTP.

    python3 bench/perf_shares.py stacks.txt
    python3 bench/perf_shares.py stacks.txt --within 'paddock_ledger::apply::apply_noting_replay'

With `--within PATTERN`: only the samples with a frame matching PATTERN, and for each function
called beneath that frame the share of those samples it is on the stack of (inclusive shares:
a sample under two of them counts for both, so they overlap and do not add up).
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


def frame_name(line):
    """The function of one stack line (`<ip> <symbol>[+offset]`), without the offset."""
    name = line.strip().split(" ", 1)[-1]
    return re.sub(r"\+0x[0-9a-f]+$", "", name)


def within(path, pattern, top=60):
    """Inclusive shares of the functions beneath the frame `pattern` names."""
    counts = collections.Counter()
    total = 0
    for stack in samples(path):
        frames = stack.splitlines()
        roots = [i for i, line in enumerate(frames) if re.search(pattern, line)]
        if not roots:
            continue
        total += 1
        # Frames are leaf first: those before the outermost match run beneath it.
        counts.update({frame_name(line) for line in frames[: roots[-1]]} - {""})
    if total == 0:
        sys.exit(f"no sample has a frame matching {pattern}")
    print(f"{total} samples under {pattern}")
    for name, count in counts.most_common(top):
        print(f"{100 * count / total:6.1f} %  {name[:140]}")


def main():
    if len(sys.argv) == 4 and sys.argv[2] == "--within":
        within(sys.argv[1], sys.argv[3])
        return
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
