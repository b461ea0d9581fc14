"""Per-grant quotas: requests per minute and rows per calendar day (UTC+8), counted where every worker sees them.

One call both counts the request and reserves the page's rows, so a gateway call costs one Redis round trip (a
Lua script) instead of the four that `limits` needed for the same checks (bench/gateway.py: ~0.9 ms per call). Rows
reserved but not served (the last page of a scope) are given back. `memory://` keeps the counters in the process,
for the embedded demo's single worker.

The same round trip also returns the deployment's *gateway generation*, a counter bumped after every committed change
to grants, credentials or datasets (sharing.gateway): a worker may keep a credential's grant in memory only while the
generation it read the grant under is still the current one, so a revocation takes effect on the next call.
"""
from __future__ import annotations

import datetime as dt
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

CHINA = dt.timezone(dt.timedelta(hours=8))

# One grant's calls of one pass at once: KEYS = requests-this-minute, rows-today, generation; ARGV = per minute, per
# day, the minute key's TTL, the day key's TTL, then the rows each call wants. The outcome is what running the calls
# one after another would give — call i is the (count before + i)-th request of the minute; rows are reserved in
# order until the day's are gone — returned as {generation, the minute key's TTL, outcome of call 1, call 2, ...}
# with an outcome of rows reserved (≥ 1), -1 (over the per-minute limit) or -2 (no rows left today).
_TAKE = """
local generation = tonumber(redis.call('GET', KEYS[3]) or '0')
local calls = #ARGV - 4
local count = redis.call('INCRBY', KEYS[1], calls)
if count == calls then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
local per_minute, per_day = tonumber(ARGV[1]), tonumber(ARGV[2])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local taken = 0
local out = {generation, redis.call('TTL', KEYS[1])}
for i = 1, calls do
  if count - calls + i > per_minute then
    out[i + 2] = -1
  elseif used + taken >= per_day then
    out[i + 2] = -2
  else
    local take = math.min(per_day - used - taken, tonumber(ARGV[i + 4]))
    taken = taken + take
    out[i + 2] = take
  end
end
if taken > 0 then
  redis.call('INCRBY', KEYS[2], taken)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return out
"""


@dataclass(frozen=True)
class Taken:
    rows: int  # rows reserved for this call; 0 when refused
    refused: str | None = None  # "rate" | "rows"
    retry_after: int = 0
    generation: int = 0  # the gateway generation when the call was counted


def _windows(now: float) -> tuple[int, int, int, int]:
    """(minute window, seconds left in it, day number, seconds left in the day), days in the platform's zone."""
    minute = int(now // 60)
    local = dt.datetime.fromtimestamp(now, CHINA)
    midnight = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return minute, 60 - int(now % 60), local.toordinal(), max(1, int((midnight - local).total_seconds()))


class RedisQuota:
    def __init__(self, url: str, namespace: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self.take_script = self.client.register_script(_TAKE)
        self.ns = namespace
        self.generation_key = f"odh:{namespace}:gateway-generation"
        self._errors = redis.exceptions
        self._local = threading.local()  # each thread's own connection, for the per-call script

    def _connection(self):  # noqa: ANN202
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():  # never a connection inherited across a fork
            conn = self.client.connection_pool.make_connection()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _drop(self, conn) -> None:  # noqa: ANN001 - a broken connection: the next call makes a new one
        conn.disconnect()
        self._local.conn = None

    def _run_takes(self, calls: list[tuple[list[str], list[int]]]) -> list[Any]:
        """The script once per entry of `calls` (keys, args), all in one round trip (a pipeline) on this thread's
        own connection — no pool checkout, no Script wrapper (~60 → ~22 µs of CPU for one; bench/gateway.py). Every
        reply is read, so the connection stays in step; a script Redis lost (restarted) is loaded again and only the
        runs it refused are sent again (a refused EVALSHA changed nothing). A broken connection is replaced and the
        calls sent again, at most twice: a count may then be taken twice, never skipped."""
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in (1, 2, 3):
            conn = self._connection()
            try:
                conn.send_packed_command(conn.pack_commands(
                    [("EVALSHA", self.take_script.sha, len(calls[i][0]), *calls[i][0], *calls[i][1])
                     for i in pending]))
                lost_script = []
                for i in pending:
                    try:
                        replies[i] = conn.read_response()
                    except self._errors.NoScriptError:
                        lost_script.append(i)
            except (self._errors.ConnectionError, self._errors.TimeoutError, OSError):
                self._drop(conn)
                if attempt == 3:
                    raise
                continue
            if not lost_script:
                return replies
            if attempt == 3:
                raise self._errors.NoScriptError("配额脚本无法载入 Redis")
            self.take_script.sha = self.client.script_load(_TAKE)
            pending = lost_script
        raise AssertionError("unreachable")

    def _keys(self, grant_id: int, minute: int, day: int) -> tuple[str, str]:
        return f"odh:{self.ns}:rpm:{grant_id}:{minute}", f"odh:{self.ns}:rows:{grant_id}:{day}"

    def take(self, grant_id: int, per_minute: int, per_day: int, want: int) -> Taken:
        return self.take_many([(grant_id, per_minute, per_day, want)])[0]

    def take_many(self, calls: list[tuple[int, int, int, int]]) -> list[Taken]:
        """`take` for several calls (grant id, per minute, per day, rows wanted) in one Redis round trip, one script
        run per grant (and limits) however many calls it has: under load a pass holds many calls of the same grant,
        and each script run cost Redis ~25 µs of the machine's CPU (bench/gateway.py)."""
        minute, minute_left, day, day_left = _windows(time.time())
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i, (grant_id, per_minute, per_day, _want) in enumerate(calls):
            groups.setdefault((grant_id, per_minute, per_day), []).append(i)
        replies = self._run_takes([([*self._keys(grant_id, minute, day), self.generation_key],
                                    [per_minute, per_day, 61, day_left, *(max(1, calls[i][3]) for i in members)])
                                   for (grant_id, per_minute, per_day), members in groups.items()])
        out: list[Taken] = [None] * len(calls)  # type: ignore[list-item]
        for members, (generation, ttl, *outcomes) in zip(groups.values(), replies):
            generation = int(generation)
            for i, rows in zip(members, outcomes):
                if rows == -1:
                    out[i] = Taken(0, "rate", max(1, int(ttl) if ttl and ttl > 0 else minute_left), generation)
                elif rows == -2:
                    out[i] = Taken(0, "rows", day_left, generation)
                else:
                    out[i] = Taken(int(rows), generation=generation)
        return out

    def bump_generation(self) -> None:
        self.client.incr(self.generation_key)

    def give_back(self, grant_id: int, rows: int) -> None:
        if rows > 0:
            _, _, day, _ = _windows(time.time())
            key = self._keys(grant_id, 0, day)[1]
            try:  # this thread's own connection, as for the takes: a pool checkout cost more than the round trip
                conn = self._connection()
                conn.send_command("DECRBY", key, rows)
                conn.read_response()
            except (self._errors.ConnectionError, self._errors.TimeoutError, OSError):
                self._drop(conn)
                self.client.decrby(key, rows)  # once more, through the pool


class MemoryQuota:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[tuple[int, int], int] = {}
        self.rows: dict[tuple[int, int], int] = {}
        self.generation = 0

    def bump_generation(self) -> None:
        with self.lock:
            self.generation += 1

    def take(self, grant_id: int, per_minute: int, per_day: int, want: int) -> Taken:
        minute, minute_left, day, day_left = _windows(time.time())
        with self.lock:
            key = (grant_id, minute)
            self.calls[key] = self.calls.get(key, 0) + 1
            if self.calls[key] > per_minute:
                return Taken(0, "rate", minute_left, self.generation)
            used = self.rows.get((grant_id, day), 0)
            if used >= per_day:
                return Taken(0, "rows", day_left, self.generation)
            take = min(per_day - used, max(1, want))
            self.rows[(grant_id, day)] = used + take
            if len(self.calls) > 10_000:  # drop past windows now and then
                self.calls = {k: v for k, v in self.calls.items() if k[1] == minute}
            return Taken(take, generation=self.generation)

    def take_many(self, calls: list[tuple[int, int, int, int]]) -> list[Taken]:
        return [self.take(*call) for call in calls]

    def give_back(self, grant_id: int, rows: int) -> None:
        if rows > 0:
            _, _, day, _ = _windows(time.time())
            with self.lock:
                self.rows[(grant_id, day)] = max(0, self.rows.get((grant_id, day), 0) - rows)


def quota_for(url: str, namespace: str) -> RedisQuota | MemoryQuota:
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisQuota(url, namespace)
    if url.startswith("memory://"):
        return MemoryQuota()
    raise ValueError(f"不支持的配额存储 {url}（支持 memory:// 与 redis://）")
