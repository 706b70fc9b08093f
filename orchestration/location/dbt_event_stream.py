"""Workarounds for dagster-dbt's event post-processing: a thread that spins a core while dbt runs,
and a traceback logged as a warning for each model whose lineage sqlglot cannot derive.

``DbtEventIterator.fetch_column_metadata()`` maps its metadata function over dbt's events with
``dagster._core.utils.imap``. That loop polls its work queue without waiting while the queue is
empty, and on DuckDB the queue stays empty until dbt exits (dagster-dbt collects every event first,
so that dbt's hold on the file is gone before it reads column metadata). On a 2-core machine the
spinning thread takes a core from DuckDB for the whole build (seen with py-spy: the Dagster process
at 45 % CPU in ``Future.done`` while dbt ran). ``imap_waiting`` is the same map, in the same order,
but blocks on its queue instead.

sqlglot cannot derive the column lineage of some models (``Cannot resolve 'component_id' due to
missing source schemas``: a column of a table the model creates in a pre-hook, or of its own earlier
state); dagster-dbt then logs a WARNING with the traceback, once per such model and build. The model
simply has no lineage: ``QuietDbtLog`` turns that into one DEBUG line, and dagster-dbt's INFO lines
about its own mechanics (selection, partial parse copy, the dbt command) into DEBUG lines too. Both
stay in the run's log in the Dagster UI; the console shows INFO and up.
"""

from __future__ import annotations

import logging
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


LINEAGE_NOT_BUILT = "An error occurred while building column lineage metadata for the dbt resource"
IMPLICIT_ALIASES = "The following columns are implicitly aliased"
# dagster-dbt's INFO lines about its own mechanics, not about the build.
MECHANICS = ("A dbt subsetted execution is not being performed", "Copying `", "Running dbt command: `",
             "Finished dbt command: `")


class QuietDbtLog(logging.Filter):
    """Lowers dagster-dbt's lineage failures and its mechanics to DEBUG; a lineage failure becomes
    one line without its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(LINEAGE_NOT_BUILT):
            resource = message[len(LINEAGE_NOT_BUILT):].split("`")[1:2] or ["a dbt model"]
            error = record.exc_info[1] if record.exc_info and record.exc_info[1] else None
            reason = str(error).splitlines()[0] if error is not None and str(error) else type(error).__name__
            record.msg, record.args = f"column lineage of {resource[0]} not built: {reason}", ()
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        elif not (message.startswith(IMPLICIT_ALIASES) or message.startswith(MECHANICS)
                  and (not message.startswith("Copying") or "partial_parse" in message)):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_QUIET = QuietDbtLog()


def quiet_dagster_dbt_log() -> None:
    """Filters dagster-dbt's log through ``QuietDbtLog`` (idempotent)."""
    from dagster_dbt.core import dbt_event_iterator

    dagster_dbt_logger = logging.getLogger(dbt_event_iterator.logger.name)
    if _QUIET not in dagster_dbt_logger.filters:
        dagster_dbt_logger.addFilter(_QUIET)


def install() -> None:
    """Make dagster-dbt's event post-processing use ``imap_waiting`` (a patch: installed with the
    others by orchestration/location/patches.py), and its log ``QuietDbtLog``."""
    from orchestration.location import patches

    patches.install()
