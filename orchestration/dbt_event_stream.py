"""A workaround for dagster-dbt's event post-processing, which spins a core while dbt runs.

``DbtEventIterator.fetch_column_metadata()`` maps its metadata function over dbt's events with
``dagster._core.utils.imap``. That loop polls its work queue without waiting while the queue is
empty, and on DuckDB the queue stays empty until dbt exits (dagster-dbt collects every event first,
so that dbt's hold on the file is gone before it reads column metadata). On a 2-core machine the
spinning thread takes a core from DuckDB for the whole build (seen with py-spy: the Dagster process
at 45 % CPU in ``Future.done`` while dbt ran). ``imap_waiting`` is the same map, in the same order,
but blocks on its queue instead.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
P = TypeVar("P")

_END = object()


def imap_waiting(executor: ThreadPoolExecutor, iterable: Iterator[T], func: Callable[[T], P]) -> Iterator[P]:
    """``func`` over ``iterable`` in the executor's threads, results in input order, each yielded as
    soon as it and those before it are done; the input is read in a thread of its own."""
    work: queue.Queue[Future | object] = queue.Queue()

    def enqueue() -> None:
        try:
            for item in iterable:
                work.put(executor.submit(func, item))
        finally:
            work.put(_END)

    enqueuing = executor.submit(enqueue)
    while (future := work.get()) is not _END:
        yield future.result()
    # an error reading the input is raised after every item read before it was processed
    error = enqueuing.exception()
    if error:
        raise error


def install() -> None:
    """Make dagster-dbt's event post-processing use ``imap_waiting``."""
    from dagster_dbt.core import dbt_event_iterator

    dbt_event_iterator.imap = imap_waiting
