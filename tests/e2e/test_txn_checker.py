"""Issue 18's fault checker, short form: transactional producers and read_committed consumers on a
3-broker cluster while brokers are killed and paused; no aborted record is ever read committed and
no committed record is lost. The long form: `python -m txn_checker --duration 600`."""

import txn_checker


def test_transactions_survive_kills_and_pauses(cluster_factory):
    cluster = cluster_factory(size=3)
    result = txn_checker.run_txn_checker(cluster, duration=25.0, producers=2, consumers=2)
    assert result["context"]["committed"] >= 100, result
    assert result["context"]["aborted"] > 0, result
    assert result["valid"], result
