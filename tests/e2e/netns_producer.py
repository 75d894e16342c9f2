"""An acks=all producer run inside a node's network namespace (`ip netns exec`), for
tests/e2e/test_cluster_partition.py: the only client that can still reach a node cut off from
the rest of the network.

    python netns_producer.py '<json spec>'

spec: {"bootstrap": "10.x.y.z:9092", "topic": ..., "partition": 0, "count": 20, "prefix": "cut-",
       "conf": {client config overrides}}

Sends `count` records with values "<prefix><n:06d>" to one partition, waits for every delivery
report, and prints one JSON line: {"acked": [[offset, value], ...], "errors": [[value, name], ...]}.
Not idempotent on purpose: InitProducerId needs the controller quorum, which a cut node cannot
reach, and the point is to get records into the cut leader's log.
"""

import json
import sys

from confluent_kafka import Producer


def main():
    spec = json.loads(sys.argv[1])
    conf = {"bootstrap.servers": spec["bootstrap"], "acks": "all", "linger.ms": 0, **spec.get("conf", {})}
    p = Producer(conf)
    acked, errors = [], []

    def on_delivery(err, msg):
        value = msg.value().decode()
        if err is None:
            acked.append([msg.offset(), value])
        else:
            errors.append([value, err.name()])

    for n in range(spec["count"]):
        p.produce(spec["topic"], value=f"{spec['prefix']}{n:06d}".encode(), partition=spec["partition"],
                  on_delivery=on_delivery)
    left = p.flush(120)
    print(json.dumps({"acked": acked, "errors": errors, "unresolved": left}), flush=True)


if __name__ == "__main__":
    main()
