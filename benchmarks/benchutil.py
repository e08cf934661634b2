"""Shared pieces of the benchmark scripts: machine facts, robust timing, tables.

Benchmarks print figures; they assert nothing. Every table is preceded by the
machine it was measured on so that numbers pasted into docs/benchmarks.md keep
their context.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.table import Table

console = Console()


def machine_line() -> str:
    """One line naming CPU, core count, Python, torch and its thread count."""
    parts = [platform.processor() or platform.machine(), f"{os.cpu_count()} cores",
             f"python {platform.python_version()}"]
    try:
        import torch

        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        parts.append("no torch")
    return ", ".join(parts)


def timed_calls(fn: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn()`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(fn: Callable[[], object], repeats: int = 10, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` after ``warmup`` untimed calls."""
    return statistics.median(timed_calls(fn, repeats, warmup))


def best_seconds(fn: Callable[[], object], repeats: int = 10, warmup: int = 2) -> float:
    """Fastest of ``repeats`` timed calls: on a machine shared with other jobs the median
    measures the neighbours too, the minimum the work itself."""
    return min(timed_calls(fn, repeats, warmup))


def matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a float32 ``n x n`` matmul: the machine's practical compute ceiling."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = median_seconds(lambda: a @ b, repeats=repeats, warmup=1)
    return 2 * n**3 / seconds


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a rich table, then the same rows as markdown for docs/benchmarks.md."""
    table = Table(title=f"{title}\n[dim]{machine_line()}[/]")
    for column in header:
        table.add_column(str(column))
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)
    print("| " + " | ".join(map(str, header)) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")
