"""Pure helpers that turn run configuration into dbt command-line arguments."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def dbt_build_args(full_refresh: bool = False, dbt_vars: Mapping[str, Any] | None = None) -> list[str]:
    """Arguments of the ``dbt build`` that materializes the models and runs their tests.

    Selection is left to dagster-dbt, which adds ``--select`` for the assets of the run.
    """
    args = ["build"]
    if full_refresh:
        args.append("--full-refresh")
    if dbt_vars:
        # JSON is valid YAML, and keeps values like "1" (a phone country code) strings.
        args += ["--vars", json.dumps(dict(dbt_vars), sort_keys=True)]
    return args
