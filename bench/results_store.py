"""Benchmark: results inserted through our API against raw pymongo, on the same MongoDB server.

Four ways of inserting COUNT distinct results, each into its own fresh collection with the store's indexes:

* raw ``insert_one`` of the already-encoded documents, one by one;
* ``MongoResultsStore.insert``, one by one (encoding, canonical hash, dedup by the unique index);
* raw ``insert_many`` of the encoded documents;
* ``MongoResultsStore.insert_many``.

The bulk paths run three times each, interleaved, and their medians count.
The one-by-one paths run interleaved in rounds, so that load from other processes on the machine falls on
both alike. Targets: our per-document path at most 1.3x raw ``insert_one``; our bulk path at least 10x faster
than our per-document path. The exit status is 1 if a target is missed.

Usage: ``.venv/bin/python bench/results_store.py [--url mongodb://127.0.0.1:27018/] [--count 10000]``
(the URL defaults to $LUME_TEST_MONGODB_URL, as written by ``hack/services.sh up``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection

from lume_platform.results import EmbeddedResultsStore, MongoResultsStore, Result

PER_DOCUMENT_LIMIT = 1.3
BULK_SPEEDUP_TARGET = 10.0
BULK_REPEATS = 3


def make_results(count: int, run: str) -> list[Result]:
    """Distinct, typical small results: a few scalar inputs and outputs, tags, a run id."""
    return [
        Result(
            flow_name="bench-flow",
            flow_run_id=run,
            inputs={"index": i, "quad_k1": 0.001 * i, "label": f"shot-{i}"},
            outputs={"energy": 1.5 * i, "emittance_x": 1e-6 * (i % 97), "ok": i % 2 == 0},
            tags=["bench"],
        )
        for i in range(count)
    ]


def timed(action: Callable[[], Any]) -> float:
    """Seconds taken by ``action``."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def prepare_like_the_store(collection: Collection[dict[str, Any]]) -> None:
    """Give a raw collection the store's indexes, so that both pay the same index maintenance."""
    collection.create_index("unique_hash", unique=True, name="unique_hash")
    collection.create_index([("flow_name", 1), ("created", -1)], name="flow_name_created")
    collection.create_index([("created", -1)], name="created")


def embedded_figures(count: int, run: str) -> tuple[float, float]:
    """Seconds for ``count`` one-by-one and ``count`` bulk inserts into fresh embedded stores."""
    with tempfile.TemporaryDirectory(prefix="lume-bench-") as directory:
        one_by_one, bulk = make_results(count, run + "-e"), make_results(count, run + "-e-bulk")
        with EmbeddedResultsStore(Path(directory) / "one.db") as store:
            one_seconds = timed(lambda: [store.insert(r) for r in one_by_one])
        with EmbeddedResultsStore(Path(directory) / "many.db") as store:
            many_seconds = timed(lambda: store.insert_many(bulk))
    return one_seconds, many_seconds


def main() -> int:
    """Run the benchmark and print its figures; 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("LUME_TEST_MONGODB_URL", "mongodb://127.0.0.1:27018/"))
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds of the one-by-one paths")
    arguments = parser.parse_args()
    count, rounds = arguments.count, arguments.rounds
    database = f"lume_bench_{uuid.uuid4().hex[:8]}"
    client: MongoClient[dict[str, Any]] = MongoClient(arguments.url, tz_aware=True,
                                                      serverSelectionTimeoutMS=10_000)
    run = str(uuid.uuid4())
    try:
        start = time.perf_counter()
        one_by_one = make_results(count, run)
        build_seconds = time.perf_counter() - start
        raw_one_documents = [MongoResultsStore.stored_document(r) for r in one_by_one]
        raw_one = client[database]["raw_one"]
        prepare_like_the_store(raw_one)
        ours_one = MongoResultsStore(arguments.url, database, collection="ours_one")

        raw_one_seconds = ours_one_seconds = 0.0
        size = -(-count // rounds)
        for start_index in range(0, count, size):
            raw_chunk = raw_one_documents[start_index : start_index + size]
            ours_chunk = one_by_one[start_index : start_index + size]

            def insert_raw(documents: list[dict[str, Any]] = raw_chunk) -> None:
                for document in documents:
                    raw_one.insert_one(document)

            def insert_ours(results: list[Result] = ours_chunk) -> None:
                for result in results:
                    ours_one.insert(result)

            raw_one_seconds += timed(insert_raw)
            ours_one_seconds += timed(insert_ours)

        # A bulk insert takes seconds, so one load spike from elsewhere skews it: take the median of
        # BULK_REPEATS interleaved repetitions, each into fresh collections with fresh results.
        raw_many_times, ours_many_times = [], []
        for repeat in range(BULK_REPEATS):
            bulk = make_results(count, f"{run}-bulk-{repeat}")
            raw_many_documents = [MongoResultsStore.stored_document(r) for r in bulk]
            raw_many = client[database][f"raw_many_{repeat}"]
            prepare_like_the_store(raw_many)
            raw_many_times.append(timed(partial(raw_many.insert_many, raw_many_documents, ordered=False)))
            with MongoResultsStore(arguments.url, database, collection=f"ours_many_{repeat}") as ours_many:
                ours_many_times.append(timed(partial(ours_many.insert_many, bulk)))
        raw_many_seconds = statistics.median(raw_many_times)
        ours_many_seconds = statistics.median(ours_many_times)
        duplicates = one_by_one[: max(1, count // 10)]
        duplicate_seconds = timed(lambda: [ours_one.insert(r) for r in duplicates])

        stored = {name: client[database][name].count_documents({})
                  for name in client[database].list_collection_names()}
        if set(stored.values()) != {count}:
            print(f"FAIL: expected {count} documents in every collection, found {stored}")
            return 1
        ours_one.close()
    finally:
        client.drop_database(database)
        client.close()

    def row(label: str, seconds: float, documents: int = count) -> str:
        return (f"  {label:<46} {seconds:8.3f} s  {documents / seconds:10.0f} docs/s"
                f"  {1e6 * seconds / documents:9.1f} µs/doc")

    per_document_ratio = ours_one_seconds / raw_one_seconds
    bulk_speedup = ours_one_seconds / ours_many_seconds
    print(f"results store benchmark: {count} results, {arguments.url}, "
          f"one-by-one paths interleaved in {rounds} rounds")
    print(row("Result(...) construction (per result)", build_seconds))
    print(row("raw pymongo insert_one", raw_one_seconds))
    print(row("MongoResultsStore.insert", ours_one_seconds))
    print(row(f"raw pymongo insert_many (median of {BULK_REPEATS})", raw_many_seconds))
    print(f"    each: {', '.join(f'{t:.2f} s' for t in raw_many_times)}")
    print(row(f"MongoResultsStore.insert_many (median of {BULK_REPEATS})", ours_many_seconds))
    print(f"    each: {', '.join(f'{t:.2f} s' for t in ours_many_times)}")
    print(row("MongoResultsStore.insert of duplicates", duplicate_seconds, len(duplicates)))
    print(f"  ratio ours/raw, one by one:   {per_document_ratio:6.2f}x  (target <= {PER_DOCUMENT_LIMIT}x)")
    print(f"  ratio ours/raw, bulk:         {ours_many_seconds / raw_many_seconds:6.2f}x")
    print(f"  speed-up of our bulk path:    {bulk_speedup:6.1f}x  (target >= {BULK_SPEEDUP_TARGET}x)")
    embedded_one, embedded_many = embedded_figures(count, run)
    print("embedded backend (SQLite file, for comparison; no target):")
    print(row("EmbeddedResultsStore.insert", embedded_one))
    print(row("EmbeddedResultsStore.insert_many", embedded_many))
    missed = []
    if per_document_ratio > PER_DOCUMENT_LIMIT:
        missed.append("per-document ratio")
    if bulk_speedup < BULK_SPEEDUP_TARGET:
        missed.append("bulk speed-up")
    print("targets: " + ("met" if not missed else "MISSED: " + ", ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
