"""``llmrelay batch IN OUT``: a JSONL file of OpenAI Batch requests, run through
the router against any provider, with results in the OpenAI Batch output format.

Resumable: results are appended to OUT as they complete, a second run sends
only what has no successful result yet, and OUT is compacted at the end. The
work itself is ``llmrelay.batch``; the files are ``llmrelay.batch_io``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import app
from .common import fail, plain, reported, stderr

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from ..batch import BatchRequest, BatchResult
    from ..batch_io import InputScan, OutputState


@dataclass
class Tally:
    """This run's counts, for the progress bar and the summary."""

    skipped: int = 0
    succeeded: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0  # answers whose price is unknown
    started: float = field(default_factory=time.monotonic)

    def add(self, result: BatchResult) -> None:
        if not result.ok:
            self.failed += 1
            return
        self.succeeded += 1
        self.prompt_tokens += result.usage.prompt_tokens
        self.completion_tokens += result.usage.completion_tokens
        if result.cost_usd is None:
            self.unpriced += 1
        else:
            self.cost_usd += result.cost_usd

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@app.command(short_help="Run a JSONL file of OpenAI batch requests into OUT; resumable.")
def batch(
    ctx: typer.Context,
    input_file: Annotated[str, typer.Argument(metavar="IN", help="JSONL of OpenAI Batch requests.")],
    output_file: Annotated[str, typer.Argument(metavar="OUT", help="JSONL of results (made, or resumed).")],
    concurrency: Annotated[int, typer.Option("--concurrency", "-n", min=1, help="Requests in flight at once.")] = 8,
    force: Annotated[
        bool, typer.Option("--force", help="Use an OUT that holds results of another input (they are kept).")
    ] = False,
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="YAML config file (as the global --config).")
    ] = None,
) -> None:
    """Send every request of IN (lines of {"custom_id", "method": "POST", "url":
    "/v1/chat/completions" or "/v1/embeddings", "body"}) through the router and
    write one OpenAI Batch output line per request to OUT. Run it again to
    resume: requests with a successful result in OUT are skipped, failed ones
    are retried. Malformed lines get an error result naming their line number.
    Exit code: 0 when every request succeeded, 1 when any failed (or on an
    error such as a missing IN), 130 when interrupted (run again to resume)."""
    tally = Tally()
    with reported(ctx) as st:
        if config:
            st.config = config
        source, target = _paths(input_file, output_file)
        scan = _read(source)
        state = _output_state(target, source, scan, force)
        done = state.succeeded()
        tally.skipped = sum(1 for i in done if i in scan.ids and i not in scan.invalid_ids)
        _list_problems(scan, source)
        try:
            asyncio.run(_run(st.config, source, target, scan, state, done, concurrency, tally))
        except KeyboardInterrupt:
            where = plain(str(target))
            stderr().print(f"\ninterrupted: {tally.done} results of this run are in {where}; run again to resume")
            raise SystemExit(130) from None
        except OSError as exc:
            fail(f"cannot use {exc.filename or target}: {exc.strerror or exc}")
        _summary(tally, target)
    raise typer.Exit(1 if tally.failed else 0)


def _paths(input_file: str, output_file: str) -> tuple[Path, Path]:
    """IN readable, OUT writable (and its directory, for the compacted copy), not the same file."""
    source, target = Path(input_file), Path(output_file)
    if not source.exists():
        fail(f"cannot read IN {source}: no such file")
    if not source.is_file() or not os.access(source, os.R_OK):
        fail(f"cannot read IN {source}: {'not a file' if not source.is_file() else 'permission denied'}")
    folder = target.parent
    if not folder.is_dir():
        fail(f"cannot write OUT {target}: the directory {folder} does not exist")
    if target.exists() and not target.is_file():
        fail(f"cannot write OUT {target}: not a file")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK | os.R_OK)):
        fail(f"cannot write OUT {target}: permission denied")
    if target.exists() and os.path.samefile(source, target):
        fail(f"IN and OUT are the same file ({source}): results need a file of their own")
    return source, target


def _read(source: Path) -> InputScan:
    from ..batch_io import scan_input

    try:
        return scan_input(source)
    except OSError as exc:
        fail(f"cannot read IN {source}: {exc.strerror or exc}")


def _output_state(target: Path, source: Path, scan: InputScan, force: bool) -> OutputState:
    """What OUT holds; refuse (before touching anything) an OUT that is not this input's."""
    from ..batch_io import read_output

    try:
        state = read_output(target)
    except OSError as exc:
        fail(f"cannot read OUT {target}: {exc.strerror or exc}")
    if force:
        return state
    if state.foreign:
        fail(
            f"{target} line {state.foreign[0]} is not a batch result ({state.foreign_count} such lines): "
            "is OUT the right file? (--force goes on and drops those lines)"
        )
    strangers = [custom_id for custom_id in state.latest if custom_id not in scan.ids]
    if strangers:
        fail(
            f"{target} holds results for {len(strangers)} custom_id(s) that {source} does not have "
            f"(e.g. {strangers[0]!r}): it looks like the output of another input. "
            "Choose another OUT, or pass --force to add to it anyway (those results are kept)"
        )
    return state


def _list_problems(scan: InputScan, source: Path) -> None:
    if not scan.bad:
        return
    err = stderr()
    err.print(f"[yellow]warning:[/] {scan.bad} malformed line(s) in {plain(str(source))} (each gets an error in OUT):")
    for number, why in scan.problems:
        err.print(f"  line {number}: {plain(why)}")
    if scan.bad > len(scan.problems):
        err.print(f"  ... and {scan.bad - len(scan.problems)} more")


async def _run(
    config: str | None,
    source: Path,
    target: Path,
    scan: InputScan,
    state: OutputState,
    done: set[str],
    concurrency: int,
    tally: Tally,
) -> None:
    """Send what is not done yet, appending each result to OUT; then compact OUT."""
    from ..batch import iter_batch
    from ..batch_io import ResultWriter, compact
    from ..client import AsyncClient

    async with AsyncClient(config) as client:
        writer = ResultWriter(target, state)
        try:
            with _progress() as progress:
                total = scan.requests + scan.bad
                task = progress.add_task("batch", total=total, completed=tally.skipped, failed=0, rate=0.0, cost="$0")
                show = _shower(progress, task, tally)

                def on_bad(line: dict[str, Any]) -> None:
                    writer.write(line)
                    tally.failed += 1
                    show()

                requests = _pending(source, scan, done, on_bad)
                async with aclosing(iter_batch(client, requests, concurrency=concurrency)) as results:
                    async for result in results:
                        writer.write(result.line)
                        tally.add(result)
                        show()
        finally:
            writer.close()
    compact(target, scan, writer.start)


def _pending(
    source: Path, scan: InputScan, done: set[str], on_bad: Callable[[dict[str, Any]], None]
) -> Iterator[BatchRequest]:
    """IN's requests without a successful result yet, read as the run needs them;
    a malformed line's error result goes to ``on_bad`` on the way."""
    from ..batch import BatchRequest
    from ..batch_io import bad_line_result, read_lines

    for number, item in read_lines(source):
        bad = bad_line_result(number, item, scan)
        if bad is not None:
            on_bad(bad)
        elif isinstance(item, BatchRequest) and item.custom_id not in done:
            yield item


def _progress() -> Progress:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed[/]"),
        TextColumn("{task.fields[rate]:.1f} req/s"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[cost]}"),
        console=Console(stderr=True),
    )


def _shower(progress: Progress, task: TaskID, tally: Tally) -> Callable[[], None]:
    """Update the bar from the tally (done counts skipped ones; rate and ETA this run's)."""

    def show() -> None:
        rate = tally.done / max(tally.elapsed(), 1e-6)
        completed = tally.skipped + tally.done
        progress.update(task, completed=completed, failed=tally.failed, rate=rate, cost=dollars(tally.cost_usd))

    return show


def dollars(amount: float) -> str:
    """Cents for sums of a cent or more; six decimals for the tiny sums of small batches."""
    return f"${amount:,.2f}" if amount >= 0.01 else f"${amount:.6f}"


def _summary(tally: Tally, target: Path) -> None:
    err = stderr()
    err.print(
        f"[bold]batch done[/] in {tally.elapsed():.1f}s: [green]{tally.succeeded} succeeded[/], "
        f"[red]{tally.failed} failed[/], {tally.skipped} skipped (already done)"
    )
    unpriced = f" ({tally.unpriced} without a known price)" if tally.unpriced else ""
    err.print(
        f"tokens: {tally.prompt_tokens} prompt, {tally.completion_tokens} completion; "
        f"cost: ${tally.cost_usd:.6f}{unpriced}"
    )
    err.print(f"results: {plain(str(target))}")
    if tally.failed:
        err.print("failed requests have an error result in OUT: run the same command again to retry them")
