"""``python -m orchestration.cli``: the same as ``identity-warehouse``."""
from orchestration.cli.main import main

raise SystemExit(main())
