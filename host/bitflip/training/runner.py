"""`bitflip train` as a library function: check everything (plan.prepare), then run the same
job on the host reference or on a board (real or virtual) through the serial link; both
emit the same records into one Collector that writes the run directory and the summary."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from ..errors import BitflipError, UsageError
from .plan import Plan, TrainRequest, default_out, model_sizes, parse_model, prepare
from .records import Collector, Say
from .rundir import RunDir

__all__ = ["Plan", "TrainRequest", "default_out", "model_sizes", "parse_model", "prepare", "train"]
Progress = Callable[[int], None]


class Interrupted(BitflipError):
    """Ctrl-C during a run: says where its checkpoint is and how to continue."""

    exit_code = 130


def _plots(collector: Collector, summary: dict[str, Any]) -> None:
    """PNG plots in the run directory; a plotting problem is recorded, never fatal."""
    from ..measure import plots

    try:
        written = plots.write_run_plots(collector.run.path, summary, collector.rows())
        collector.host("plots", files=[p.name for p in written])
    except Exception as e:  # noqa: BLE001 - matplotlib can fail in many ways; the run is done
        collector.host("plots", error=f"{type(e).__name__}: {e}")


def resume_command(plan: Plan) -> str:
    r = plan.req
    parts = [
        "bitflip train",
        f"--board {plan.board.name}",
        f"--dataset {r.dataset}",
        f"--epochs {r.epochs}",
        f"--seed {r.seed}",
        f"--out {plan.out}",
    ]
    if plan.port:
        parts.append(f"--port {plan.port}")
    for opt, v in (
        ("--model", r.model),
        ("--weights", r.weights),
        ("--encoding", r.encoding),
        ("--limit", r.limit),
        ("--cores", r.cores),
    ):
        if v is not None:
            parts.append(f"{opt} {v}")
    if r.eval_every != 1:
        parts.append(f"--eval-every {r.eval_every}")
    parts += [f"--rule {k}={v}" for k, v in sorted(r.rule.items())]
    return " ".join(parts + ["--resume"])


def train(
    req: TrainRequest, progress_factory: Callable[[int], Any] | None = None, say: Say | None = None
) -> dict[str, Any]:
    """Run one training job; returns its summary (also written to the run's summary.json).
    progress_factory(total) -> a bar with update(n); say(line): one line per epoch."""
    plan = prepare(req)
    run = RunDir(plan.out, plan.job, resume=req.resume, force=req.force)
    got = Collector(plan, run, say)
    if req.resume:
        got.earlier()
    got.host(
        "start",
        board=plan.board.name,
        config=plan.cfg,
        **({"moved_aside": str(run.moved_aside)} if run.moved_aside else {}),
    )
    bar = progress_factory(plan.total_samples) if progress_factory else None
    progress: Progress = bar.update if bar is not None else (lambda n: None)
    try:
        if plan.board.is_host:
            from .hostrun import HostRun

            HostRun(plan, got, progress, resume=req.resume, ckpt_every=req.ckpt_every).execute()
        else:
            from ..link.targets import SerialTarget, Target, VirtualTarget
            from .device import DeviceRun

            with ExitStack() as stack:
                target: Target
                if plan.board.is_virtual and not plan.port:
                    target = VirtualTarget(plan.board, plan.out / "flash", req.fault_in, req.fault_out)
                else:  # a real board, or a virtual one already running (`bitflip sim` printed its port)
                    assert plan.port is not None
                    target = SerialTarget(plan.port, plan.board.link["pace_bytes_per_s"])
                stack.callback(target.close)
                DeviceRun(plan, target, got, progress, resume=req.resume, ckpt_every=req.ckpt_every).execute()
        run.write_model(got.planes, plan.cfg)
        summary = got.summary()
        run.write_json("summary.json", summary)
        _plots(got, summary)
        got.host("done")
        return summary
    except UsageError:
        if not req.resume and not got.epochs:  # found at the board before any epoch: leave no half-made run dir
            run.discard()
        raise
    except KeyboardInterrupt:
        got.host("interrupted")
        where = "the board's flash" if not plan.board.is_host else str(plan.out / "host.ckpt.npz")
        raise Interrupted(
            f"interrupted; the last checkpoint is on {where}: continue with `{resume_command(plan)}`"
        ) from None
    finally:
        if bar is not None:
            bar.close()
        run.close()
