"""The analysis half of the fault-injection checker: given what producers were told and what
consumers saw, count the anomalies Jepsen's Kafka `queue` checker looks for. Pure functions over
plain data, so tests can feed it hand-made histories and see each anomaly counted.

History (all values are bytes; partitions and offsets ints):
- attempted: {value: partition} for every value a producer handed to the client.
- acked: [(partition, offset, value)] for every acknowledgement.
- definite_failures: {value} the broker certainly never appended (refused before sending).
- reads: {reader name: [(partition, offset, value), ...] in the order that reader saw them};
  a reader's `seeks` ({reader: [(index into its reads, partition)]}) mark where it was moved, so
  a backwards step there is no anomaly.
- final: {partition: [(offset, value), ...]} the drain after healing, from offset 0 to the high
  watermark.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Set, Tuple

Read = Tuple[int, int, bytes]

# Counts that must all be zero for a run to pass.
ANOMALIES = (
    "lost",                  # acknowledged, absent from the final drain
    "duplicated",            # one value at two offsets (any reads, or the final drain)
    "inconsistent_offsets",  # one (partition, offset), two values across acks and reads
    "non_monotonic",         # a reader's offsets in a partition did not strictly increase
    "unexpected",            # a value read that no producer ever sent
    "read_but_lost",         # a consumer saw it (so it was committed), the final drain lacks it
    "failed_but_read",       # the client said it certainly failed, yet it was read
    "replica_divergence",    # a replica's log differs from the drain below the high watermark
)

EXAMPLES = 10


def _example(bucket: List, item) -> None:
    if len(bucket) < EXAMPLES:
        bucket.append(item)


def _text(v: bytes) -> str:
    return v.decode(errors="replace")


def check(attempted: Dict[bytes, int], acked: Iterable[Tuple[int, int, bytes]], definite_failures: Set[bytes],
          reads: Dict[str, List[Read]], final: Dict[int, List[Tuple[int, bytes]]],
          seeks: Optional[Dict[str, List[Tuple[int, int]]]] = None,
          replicas: Optional[Dict[int, Dict[int, List[Tuple[int, bytes]]]]] = None) -> dict:
    """Counts of every anomaly in ANOMALIES plus examples and context counts. `replicas` is
    {node: {partition: [(offset, value)]}} read from each replica's segment files, if taken."""
    acked = list(acked)
    seeks = seeks or {}
    examples: Dict[str, list] = defaultdict(list)
    counts = {k: 0 for k in ANOMALIES}

    # Every observation of (partition, offset) -> value: acks, concurrent reads, the drain.
    at: Dict[Tuple[int, int], Dict[bytes, List[str]]] = defaultdict(lambda: defaultdict(list))
    for p, o, v in acked:
        at[(p, o)][v].append("ack")
    for reader, seen in reads.items():
        for p, o, v in seen:
            at[(p, o)][v].append(reader)
    for p, records in final.items():
        for o, v in records:
            at[(p, o)][v].append("final")
    for (p, o), values in sorted(at.items()):
        if len(values) > 1:
            counts["inconsistent_offsets"] += 1
            _example(examples["inconsistent_offsets"],
                     {"partition": p, "offset": o, "values": {_text(v): sorted(set(s)) for v, s in values.items()}})

    # One value, two places: the drain and every concurrent read and ack together.
    where: Dict[bytes, Set[Tuple[int, int]]] = defaultdict(set)
    for (p, o), values in at.items():
        for v in values:
            where[v].add((p, o))
    for v, places in sorted(where.items()):
        if len(places) > 1:
            counts["duplicated"] += 1
            _example(examples["duplicated"], {"value": _text(v), "at": sorted(places)})

    drained = {v for records in final.values() for _, v in records}
    for p, o, v in acked:
        if v not in drained:
            counts["lost"] += 1
            _example(examples["lost"], {"value": _text(v), "partition": p, "offset": o})

    read_values: Set[bytes] = set()
    for reader, seen in reads.items():
        # A seek recorded at index i applies to the reader's next read of that partition, which
        # need not be read i (other partitions' records may come first).
        pending_seeks = sorted(seeks.get(reader, []))
        last: Dict[int, int] = {}
        for i, (p, o, v) in enumerate(seen):
            read_values.add(v)
            while pending_seeks and pending_seeks[0][0] <= i:
                last.pop(pending_seeks.pop(0)[1], None)
            if p in last and o <= last[p]:
                counts["non_monotonic"] += 1
                _example(examples["non_monotonic"], {"reader": reader, "partition": p, "previous": last[p], "offset": o})
            last[p] = o
    for v in sorted(read_values - drained):
        counts["read_but_lost"] += 1
        _example(examples["read_but_lost"], {"value": _text(v), "at": sorted(where[v])})

    for v in sorted((read_values | drained) - set(attempted)):
        counts["unexpected"] += 1
        _example(examples["unexpected"], {"value": _text(v), "at": sorted(where[v])})
    for v in sorted((read_values | drained) & set(definite_failures)):
        counts["failed_but_read"] += 1
        _example(examples["failed_but_read"], {"value": _text(v), "at": sorted(where[v])})

    for node, partitions in sorted((replicas or {}).items()):
        for p, records in sorted(final.items()):
            on_disk = dict(partitions.get(p, []))
            wrong = [(o, _text(v), _text(on_disk[o]) if o in on_disk else None)
                     for o, v in records if on_disk.get(o) != v]
            if wrong:
                counts["replica_divergence"] += 1
                _example(examples["replica_divergence"],
                         {"node": node, "partition": p, "differing": len(wrong), "first": wrong[:3]})

    acked_values = {v for _, _, v in acked}
    unacked_present = drained - acked_values
    return {
        "valid": all(c == 0 for c in counts.values()),
        "anomalies": counts,
        "examples": {k: v for k, v in examples.items() if v},
        "context": {
            "attempted": len(attempted),
            "acknowledged": len(acked),
            "definite_failures": len(definite_failures),
            "drained": sum(len(r) for r in final.values()),
            "unacknowledged_but_present": len(unacked_present),
            "read_by_consumers": {r: len(s) for r, s in reads.items()},
            "drain_offset_gaps": _gaps(final),
        },
    }


def _gaps(final: Dict[int, List[Tuple[int, bytes]]]) -> int:
    """Offsets missing between the first and last drained record of each partition (a plain,
    non-transactional log has none)."""
    gaps = 0
    for records in final.values():
        offsets = [o for o, _ in records]
        if offsets:
            gaps += (offsets[-1] - offsets[0] + 1) - len(set(offsets))
    return gaps
