"""Trader load: Locust personas, the load runner, and the Jepsen-style history.

- `parse_load` / `LoadPlan`: the scenario's `load:` section (`LOAD_PARAMS` and each
  protocol's personas document every key).
- `protocol(name)`: a trader protocol (`perpdex`, `evm`, `starknet`, plugins from the
  entry point group ``l2chaos.protocols``), see `protocols/base.py`.
- `LoadRunner`: Locust out of process (standalone, or a master and workers), bounded,
  stats and logs in run_dir/load/, history merged into run_dir/history.jsonl.
- `merge_histories`, `check_history`: the history files (docs/architecture.md).
- `gc()`: removes load-context files (API keys) left by a harness that was killed;
  every `LoadRunner.start` does it too.

Importing this package never imports Locust or gevent; only `locustfile.py` does, in
Locust's own process. See docs/load.md.
"""

from .context import LoadContext, split_accounts
from .context import sweep_secret_files as gc
from .history import (
    READ_OPS,
    WRITE_OPS,
    HistoryCheck,
    HistoryWriter,
    MergeStats,
    check_history,
    merge_histories,
)
from .plan import LOAD_PARAMS, LoadPlan, PersonaPlan, parse_load
from .protocols import TraderProtocol, protocol
from .runner import LoadResult, LoadRunner

__all__ = [
    "LOAD_PARAMS",
    "READ_OPS",
    "WRITE_OPS",
    "HistoryCheck",
    "HistoryWriter",
    "LoadContext",
    "LoadPlan",
    "LoadResult",
    "LoadRunner",
    "MergeStats",
    "PersonaPlan",
    "TraderProtocol",
    "check_history",
    "gc",
    "merge_histories",
    "parse_load",
    "protocol",
    "split_accounts",
]
