#!/usr/bin/env python3
"""A peer of `sluice run` for `cargo xtask bench --peers`: the client a
competent Python user would write to push an NDJSON file to a rate-limited,
unreliable HTTP API, with the usual libraries (aiohttp, aiolimiter,
tenacity; blake3 only to derive the same record keys sluice derives).

What it does, and nothing more:
- reads the file line by line, each line one JSON object, and cuts it into
  calls of `--batch` records, in file order;
- sends a call of one record as that object, with the record's key in the
  `Idempotency-Key` header, and a call of several as a JSON array of the
  objects, each given its key first in an `idempotency_key` field: the
  bodies sluice's http sink sends (the key is "sluice-" and the first 32
  hex digits of the BLAKE3 hash of "stream\\0partition\\0sequence\\n",
  with the stream, partition and sequence read from the record's
  `source`, `partition` and `sequence_id` fields);
- starts at most `--concurrency` calls at once (an asyncio.Semaphore) and
  takes a token of an AsyncLimiter at `--rate`/s before every request,
  retries included (no limiter without `--rate`);
- retries 429, 5xx, timeouts and connection errors with tenacity, up to
  `--attempts` attempts: after a 429 it waits what Retry-After says (plus
  up to 100 ms of jitter), otherwise an exponential backoff with full
  jitter (up to 0.1 s, 0.2 s, 0.4 s, ... capped at 5 s); another 4xx is
  given up at once;
- on SIGTERM or SIGINT it starts no new call, gives the calls in flight
  up to 5 s, cancels the rest;
- prints one JSON line of its own figures at the end.

Order: it promises none. Calls are started in file order, but they run
concurrently and a call that fails waits out its backoff while later calls
of the same partition go ahead, so a partition's records can arrive out of
sequence. Keeping a partition's order would take a queue per partition and
one call at a time per partition, which is not what such a client does.
Each record is sent until it succeeds or runs out of attempts, so it can
also arrive twice (a call that timed out after the API took it); the keys
let the API drop those.
"""

import argparse
import asyncio
import email.utils
import json
import random
import signal
import sys
import time

import aiohttp
from aiolimiter import AsyncLimiter
from blake3 import blake3
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

DRAIN_SECONDS = 5.0


class Retryable(Exception):
    """A 429 or a 5xx: worth another attempt (after `retry_after` seconds
    if the API said)."""

    def __init__(self, status, retry_after=None):
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class Rejected(Exception):
    """Any other 4xx: this call will not succeed."""


def record_key(record):
    identity = (
        f"{record.get('source', '-')}\0{record.get('partition', 0)}\0"
        f"{record.get('sequence_id', 0)}\n"
    )
    return "sluice-" + blake3(identity.encode()).hexdigest()[:32]


def encode(records):
    """The body and the headers of a call carrying `records`."""
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    if len(records) == 1:
        record = records[0]
        return dumps(record).encode(), {"Idempotency-Key": record_key(record)}
    keyed = [{"idempotency_key": record_key(r), **r} for r in records]
    return dumps(keyed).encode(), {}


def retry_after_seconds(value):
    """Retry-After as seconds: a number, or an HTTP date."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


class Client:
    def __init__(self, args):
        self.args = args
        self.limiter = AsyncLimiter(args.rate, 1) if args.rate else None
        self.backoff = wait_random_exponential(multiplier=0.1, max=5)
        self.stats = {
            "client": "python",
            "records_read": 0,
            "records_sent": 0,
            "calls": 0,
            "retries": 0,
            "refused": 0,
            "server_errors": 0,
            "connection_errors": 0,
            "rejected_records": 0,
            "given_up_records": 0,
            "cancelled_records": 0,
        }

    def wait(self, retry_state):
        """Retry-After when the API sent it, else the jittered backoff."""
        error = retry_state.outcome.exception()
        if isinstance(error, Retryable) and error.retry_after is not None:
            return error.retry_after + random.uniform(0, 0.1)
        return self.backoff(retry_state)

    async def post_once(self, session, body, headers):
        if self.limiter is not None:
            await self.limiter.acquire()
        self.stats["calls"] += 1
        try:
            async with session.post(self.args.url, data=body, headers=headers) as reply:
                await reply.read()
                if reply.status == 429:
                    self.stats["refused"] += 1
                    raise Retryable(429, retry_after_seconds(reply.headers.get("Retry-After")))
                if reply.status >= 500 or reply.status == 408:
                    self.stats["server_errors"] += 1
                    raise Retryable(reply.status)
                if reply.status >= 400:
                    raise Rejected(f"HTTP {reply.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError):
            self.stats["connection_errors"] += 1
            raise

    async def send(self, session, records):
        body, headers = encode(records)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(
                (Retryable, aiohttp.ClientError, asyncio.TimeoutError)
            ),
            wait=self.wait,
            stop=stop_after_attempt(self.args.attempts),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.stats["retries"] += 1
                    await self.post_once(session, body, headers)
            self.stats["records_sent"] += len(records)
        except Rejected:
            self.stats["rejected_records"] += len(records)
        except RetryError:
            self.stats["given_up_records"] += len(records)
        except asyncio.CancelledError:
            self.stats["cancelled_records"] += len(records)
            raise

    def calls(self):
        """The file's records, `--batch` at a time, in file order."""
        batch = []
        with open(self.args.input, "rb") as lines:
            for line in lines:
                if not line.strip():
                    continue
                batch.append(json.loads(line))
                self.stats["records_read"] += 1
                if len(batch) == self.args.batch:
                    yield batch
                    batch = []
        if batch:
            yield batch

    async def run(self):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        slots = asyncio.Semaphore(self.args.concurrency)
        in_flight = set()
        started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=self.args.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.args.timeout)
        headers = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=headers
        ) as session:

            async def one(records):
                try:
                    await self.send(session, records)
                finally:
                    slots.release()

            for records in self.calls():
                await slots.acquire()
                if stop.is_set():
                    slots.release()
                    break
                task = asyncio.create_task(one(records))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if in_flight:
                if stop.is_set():
                    _, late = await asyncio.wait(in_flight, timeout=DRAIN_SECONDS)
                    for task in late:
                        task.cancel()
                await asyncio.gather(*in_flight, return_exceptions=True)
        self.stats["seconds"] = round(time.monotonic() - started, 3)
        self.stats["stopped"] = stop.is_set()
        return self.stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="the NDJSON file")
    parser.add_argument("--url", required=True, help="where to POST records")
    parser.add_argument("--rate", type=float, default=0, help="requests a second (0: no limit)")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight at most")
    parser.add_argument("--batch", type=int, default=1, help="records a call")
    parser.add_argument("--attempts", type=int, default=8, help="attempts a call")
    parser.add_argument("--timeout", type=float, default=30, help="seconds a request may take")
    args = parser.parse_args()
    stats = asyncio.run(Client(args).run())
    print(json.dumps(stats), flush=True)
    lost = stats["given_up_records"] + stats["rejected_records"]
    return 1 if lost and not stats["stopped"] else 0


if __name__ == "__main__":
    sys.exit(main())
