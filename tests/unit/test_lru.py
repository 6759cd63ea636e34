"""The bounded LRU map shared by the pages' caches and the compaction bases."""

from __future__ import annotations

import threading

from analyzer.lru import BoundedLru


def test_the_least_recently_used_item_goes_first() -> None:
    lru: BoundedLru[str, int] = BoundedLru(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # a read refreshes "a": "b" is now the oldest
    lru.put("c", 3)
    assert lru.get("b") is None
    assert (lru.get("a"), lru.get("c")) == (1, 3)


def test_a_rewrite_replaces_the_value_without_growing() -> None:
    lru: BoundedLru[str, int] = BoundedLru(2)
    lru.put("a", 1)
    lru.put("a", 2)
    lru.put("b", 3)
    assert (lru.get("a"), lru.get("b")) == (2, 3)
    lru.clear()
    assert lru.get("a") is None


def test_concurrent_writers_never_exceed_the_bound() -> None:
    lru: BoundedLru[int, int] = BoundedLru(50)

    def write(offset: int) -> None:
        for i in range(2_000):
            lru.put(offset + i, i)

    threads = [threading.Thread(target=write, args=(k * 10_000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = [k for k in range(40_000) if lru.get(k) is not None]
    assert len(kept) == 50
