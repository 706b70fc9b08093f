"""The non-spinning replacement of dagster's imap that dagster-dbt's column metadata runs through."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from orchestration.location import dbt_event_stream


def slow_input(items, pause):
    for item in items:
        time.sleep(pause)
        yield item


def test_results_come_in_input_order_whatever_order_they_finish_in():
    def work(item):
        time.sleep(0.05 if item % 2 else 0.0)
        return item * 10

    with ThreadPoolExecutor(max_workers=4) as executor:
        assert list(dbt_event_stream.imap_waiting(executor, iter(range(8)), work)) == [i * 10 for i in range(8)]


def test_waiting_for_the_input_costs_no_cpu():
    """dagster's imap polls while its queue is empty: a second of slow input cost a second of CPU."""
    with ThreadPoolExecutor(max_workers=4) as executor:
        started = time.process_time()
        assert list(dbt_event_stream.imap_waiting(executor, slow_input([1, 2], pause=0.5), str)) == ["1", "2"]
        assert time.process_time() - started < 0.2


def test_an_error_in_the_input_comes_after_the_items_before_it():
    def failing():
        yield 1
        raise RuntimeError("dbt stream broke")

    seen = []
    with ThreadPoolExecutor(max_workers=2) as executor, pytest.raises(RuntimeError, match="dbt stream broke"):
        for result in dbt_event_stream.imap_waiting(executor, failing(), lambda x: x):
            seen.append(result)
    assert seen == [1]


def test_an_error_in_the_function_is_raised_where_its_item_is():
    def work(item):
        if item == 2:
            raise ValueError("bad event")
        return item

    with ThreadPoolExecutor(max_workers=2) as executor, pytest.raises(ValueError, match="bad event"):
        list(dbt_event_stream.imap_waiting(executor, iter([1, 2, 3]), work))


def test_installed_into_dagster_dbt_when_the_assets_load():
    from dagster_dbt.core import dbt_event_iterator

    import orchestration.location.assets.dbt  # noqa: F401  (installs it)

    assert dbt_event_iterator.imap is dbt_event_stream.imap_waiting
