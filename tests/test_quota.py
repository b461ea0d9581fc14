"""Per-grant quotas, in memory and in the shared Redis: one call counts the request and reserves its rows."""
from __future__ import annotations

import uuid

import pytest

from sharing.quota import MemoryQuota, RedisQuota, quota_for


@pytest.fixture(params=["memory", "redis"])
def quota(request):
    if request.param == "memory":
        yield MemoryQuota()
        return
    q = RedisQuota("redis://127.0.0.1:6379", f"test-{uuid.uuid4().hex[:12]}")
    yield q
    for key in q.client.scan_iter(match=f"odh:{q.ns}:*"):
        q.client.delete(key)


def test_requests_per_minute(quota):
    assert [quota.take(1, 3, 10**6, 10).refused for _ in range(4)] == [None, None, None, "rate"]
    refused = quota.take(1, 3, 10**6, 10)
    assert refused.rows == 0 and 1 <= refused.retry_after <= 61
    assert quota.take(2, 3, 10**6, 10).refused is None  # another grant counts apart


def test_rows_per_day_reserve_trim_and_give_back(quota):
    assert quota.take(1, 100, 250, 100).rows == 100
    assert quota.take(1, 100, 250, 100).rows == 100
    assert quota.take(1, 100, 250, 100).rows == 50  # trimmed to what is left today
    done = quota.take(1, 100, 250, 100)
    assert done.refused == "rows" and 1 <= done.retry_after <= 86400
    quota.give_back(1, 30)  # a last page served fewer rows than it reserved
    assert quota.take(1, 100, 250, 100).rows == 30


def test_calls_taken_together_count_as_one_after_another(quota):
    """take_many runs one script per grant for a whole pass: every call's outcome is the one it would get alone, in
    order — the minute's limit, the day's rows trimmed and then refused, grants and limits apart."""
    calls = [(1, 4, 250, 100), (2, 2, 10**6, 7), (1, 4, 250, 100), (1, 4, 250, 100), (2, 2, 10**6, 7),
             (1, 4, 250, 100), (2, 2, 10**6, 7), (1, 4, 250, 100), (3, 5, 40, 0)]
    got = [(t.rows, t.refused) for t in quota.take_many(calls)]
    assert got == [(100, None), (7, None), (100, None), (50, None), (7, None),
                   (0, "rows"), (0, "rate"), (0, "rate"), (1, None)]
    # The counters now hold exactly what one-at-a-time calls would have left behind.
    assert quota.take(1, 6, 250, 100).refused == "rows"      # grant 1's 6th request this minute: no rows left
    assert quota.take(1, 6, 250, 100).refused == "rate"      # its 7th
    assert quota.take(2, 3, 10**6, 7).refused == "rate"      # grant 2's 4th (3 counted, 2 served)
    assert quota.take(3, 5, 40, 100).rows == 39              # a want of 0 still reserved 1 row


def test_unknown_storage_is_refused():
    with pytest.raises(ValueError):
        quota_for("mongodb://x", "ns")


@pytest.fixture
def redis_quota():
    q = RedisQuota("redis://127.0.0.1:6379", f"test-{uuid.uuid4().hex[:12]}")
    yield q
    for key in q.client.scan_iter(match=f"odh:{q.ns}:*"):
        q.client.delete(key)


def test_a_broken_connection_is_replaced_without_losing_the_count(redis_quota):
    q = redis_quota
    assert q.take(1, 5, 10**6, 10).rows == 10
    conn = q._local.conn  # this thread's own connection
    conn.send_command("CLIENT", "ID")
    q.client.client_kill_filter(_id=conn.read_response())  # as a Redis restart or a network drop would
    assert q.take(1, 5, 10**6, 10).rows == 10
    assert q._local.conn is not conn
    assert [q.take(1, 5, 10**6, 10).refused for _ in range(4)] == [None, None, None, "rate"]  # 5 counted in all


def test_rows_given_back_over_a_broken_connection_still_count(redis_quota):
    q = redis_quota
    assert q.take(1, 100, 250, 200).rows == 200
    conn = q._local.conn
    conn.send_command("CLIENT", "ID")
    q.client.client_kill_filter(_id=conn.read_response())
    q.give_back(1, 150)  # the last page served 50 of its 200
    assert q._local.conn is not conn
    assert q.take(1, 100, 250, 500).rows == 200  # 250 - 50 served


def test_a_script_redis_no_longer_holds_is_loaded_again(redis_quota):
    q = redis_quota
    q.take_script.sha = "0" * 40  # what EVALSHA meets after Redis restarted with an empty script cache
    assert q.take(1, 5, 10**6, 10).rows == 10
    assert q.take_script.sha != "0" * 40


def test_the_generation_comes_back_with_every_count(redis_quota):
    q = redis_quota
    before = q.take(1, 100, 10**6, 1).generation
    q.bump_generation()
    assert q.take(1, 100, 10**6, 1).generation == before + 1
    assert q.take(1, 1, 10**6, 1).generation == before + 1  # also on a refusal
