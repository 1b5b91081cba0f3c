"""The trainer process of every stage: ``python -m engine train --run-dir RUN [--resume]``.

It installs the signal handlers, refuses what it can before the ML stack loads (an invalid config, a
model that cannot be read or needs code the run did not allow: in a second, not after the imports'
several), fetches a hub id's model into the Hugging Face cache when it is not there yet (the ``downloading``
phase, with ``progress`` events as ``tuitune pull`` writes them), picks the run's recipe by stage (the stage
table, engine.stages), and turns whatever ends the recipe into the run's terminal event: ``run_stopped`` for a
stop that came before training, ``run_failed`` with a cause, hint and located errors for any failure. A recipe
only trains and reports; this module is the process around it.

Signals: SIGTERM/SIGINT ask for a stop (checkpoint + adapter, then run_stopped) and
SIGUSR1 for a checkpoint now. Both are answered at the end of the current optimizer step; a stop
that comes before training has started ends the attempt at once (``run_stopped`` with no step).
The supervisor starts us with those signals blocked, so one that arrives while torch is
still importing waits here instead of killing us; ``main`` unblocks them once the handlers
are in place.

Under torchrun (one of several processes) the supervisor asks each worker to stop with SIGINT,
and SIGTERM comes only from torchrun's agent tearing the run down after another rank died: a
worker then ends at once (its peers are gone, a collective would only hang). Every rank but 0
writes its output to ``RUN/logs/rank-N.log`` (rank 0's stays in engine.log), and each watches the
supervisor, which is not its parent: should it be killed outright, the rank stops and saves as a
lone trainer does when its parent dies.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from engine.config import RunConfig, load_config
from engine.machine.host import peak_rss
from engine.machine.place import place
from engine.machine.sampler import SystemSampler
from engine.models.info import check_loadable, read_model_info
from engine.protocol import CONFIG_FILE, PEER_LOST, PHASE, PROGRESS, RUN_FAILED, RUN_STOPPED, rank_log, read_log_tail
from engine.recipes.attempt import Events, RunFlags, StopBeforeTraining
from engine.recipes.saving import finish_from_checkpoint
from engine.stages import STAGES
from engine.supervisor.failures import TRAINING, describe_failure
from engine.units import fmt_bytes

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


def main(argv: list[str]) -> int:
    """``python -m engine train --run-dir RUN [--resume]``."""
    parser = argparse.ArgumentParser(prog="python -m engine train")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    flags = RunFlags()
    several = place().several
    if several:
        rank_output(args.run_dir)
        watch_supervisor(flags)
    # Under torchrun SIGTERM is the agent's teardown: the default action, ending at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL if several else flags.request_stop)
    signal.signal(signal.SIGINT, flags.request_stop)
    signal.signal(signal.SIGUSR1, flags.request_save)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    events = Events(args.run_dir)
    # One sampler a node, from the start: its first process measures the node's GPUs and workers (node 0's go to
    # the run's events), while the model loads too, so the system panel fills in a second, not after the load.
    sampler = SystemSampler(events.emit).start() if place().local_rank == 0 else None
    try:
        # A stop that came already (it waited, blocked) or comes while loading raises StopBeforeTraining here.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)  # see the module docstring
        # What can be refused without the ML stack is refused before it loads (seconds): a config that is
        # invalid, a model that cannot be read or runs code the run did not allow. The recipe reads both again.
        config = load_config(args.run_dir / CONFIG_FILE)
        events.stop_when(frozenset(config.train.stop_on), flags)
        info = read_model_info(config.model.name_or_path, config.model.revision)
        check_loadable(info, config.model.trust_remote_code)
        if info.source == "hub":
            download_model(config, events)
        if several and args.resume:
            check_node_checkpoint(args.run_dir)
        elif args.resume and (last := last_step_checkpoint(args.run_dir)) is not None:
            finish_from_checkpoint(args.run_dir, *last, events.emit, (peak_rss(), "rss"))  # nothing to load or train
            return 0
        import transformers

        transformers.utils.logging.disable_progress_bar()
        recipe = importlib.import_module(STAGES[config.stage].recipe)
        return recipe.train(args.run_dir, args.resume, events, flags)
    except StopBeforeTraining:
        # Nothing is left to do but say so: further stops wait, blocked, and die with the process (one arriving
        # as Python finalizes would meet the default action and end it by SIGTERM).
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        peak, kind = attempt_peak()
        events.emit(RUN_STOPPED, step=None, checkpoint_path=None, adapter_path=None,
                    peak_memory_bytes=peak, peak_memory_kind=kind)
        download = sys.modules.get("engine.models.download")
        if download is not None and download.ABANDONED.is_set():  # its threads would hold the exit (see there)
            events.close()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return 0
    except BaseException as exc:  # every failure must become an event
        traceback.print_exc()
        sys.stderr.flush()
        if several and peer_lost(exc):
            # Another rank went away (killed, crashed): the supervisor names it from torchrun's report.
            return PEER_LOST
        events.emit(RUN_FAILED, **describe_failure(exc, TRAINING), exit_code=1, signal=None,
                    log_tail=read_log_tail(args.run_dir, lines=30))
        return 1
    finally:
        if sampler:
            sampler.stop()
        events.close()


def download_model(config: RunConfig, events: Events) -> None:
    """The run's first phase when its model is a hub id not whole in the cache: fetch it as ``tuitune pull`` does,
    with the same ``progress`` events (:mod:`engine.models.download`), so the dashboard shows bytes, rate and time
    left. A stop while it downloads reaches the main thread as :class:`StopBeforeTraining`, which ends the download
    threads too; the files already whole stay in the cache.

    Raises:
        HubError: the Hub refused (gone since the check before the run, gated) or the network or disk failed.
    """
    from engine.models.download import download
    from engine.models.hub import plan_pull

    name = config.model.name_or_path
    listing = plan_pull(name, config.model.revision)
    missing = listing.missing()
    if not missing:
        return
    events.emit(PHASE, name="downloading", message=f"downloading {name}: {fmt_bytes(sum(missing.values()))} "
                f"({len(missing)} of {len(listing.files)} files) into the Hugging Face cache")
    download(listing, lambda fields: events.emit(PROGRESS, **fields), threading.Event())


def attempt_peak() -> tuple[int, str]:
    """The attempt's peak memory: the CUDA allocator's once the loader (and torch) imported whole, else the RSS.

    A stop can interrupt ``import torch`` halfway; importing it again then fails or crashes the process
    (SIGSEGV), so the loader is used only when it is already there: a module whose import was interrupted
    is not left in ``sys.modules``.
    """
    loading = sys.modules.get("engine.models.loading")
    return loading.peak_memory() if loading is not None else (peak_rss(), "rss")


def last_step_checkpoint(run_dir: Path) -> tuple[Path, int, dict[str, Any]] | None:
    """``(checkpoint, step, run_started fields)`` when the newest complete checkpoint is the run's last step and an
    earlier attempt said how the run started: a resume then has nothing to train, and needs no model."""
    from engine.checkpoints import finished_step, latest_checkpoint
    from engine.protocol import RUN_STARTED, read_events

    checkpoint = latest_checkpoint(run_dir)
    step = finished_step(checkpoint)
    started = [e for e in read_events(run_dir) if e.get("type") == RUN_STARTED]
    if checkpoint is None or step is None or not started:
        return None
    per_attempt = {"v", "seq", "t", "type", "total_steps", "resumed_from_step", "pid"}
    return checkpoint, step, {key: value for key, value in started[-1].items() if key not in per_attempt}


PEER_ERRORS = ("gloo", "nccl", "connection reset", "connection closed", "broken pipe", "socket timeout")


def peer_lost(exc: BaseException) -> bool:
    """Whether a collective failed for want of a peer (torch.distributed's errors, or gloo/NCCL's text)."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    return isinstance(exc, RuntimeError) and any(word in str(exc).lower() for word in PEER_ERRORS)


def check_node_checkpoint(run_dir: Path) -> None:
    """On a node other than 0, a resume needs node 0's checkpoint here too: every rank loads it.

    Raises:
        FileNotFoundError: naming the folder to put it in (shared storage, or a copy from node 0).
    """
    from engine.checkpoints import latest_checkpoint

    node = place().node_rank
    if node > 0 and latest_checkpoint(run_dir) is None:
        raise FileNotFoundError(f"node {node} has no complete checkpoint in {run_dir / 'checkpoints'} to resume from: "
                                "every node loads node 0's checkpoint; put the run folder on storage all nodes "
                                "share, or copy node 0's checkpoints/ folder here first")


def rank_output(run_dir: Path) -> None:
    """Every rank but 0 writes stdout and stderr to ``RUN/logs/rank-N.log`` (appended, across attempts)."""
    here = place()
    rank = here.rank
    if rank == 0:
        return
    path = run_dir / rank_log(rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    print(f"[rank {rank} {time.strftime('%H:%M:%S')}] pid {os.getpid()}, local rank "
          f"{here.local_rank}, node {here.node_rank}", file=sys.stderr, flush=True)


def watch_supervisor(flags: RunFlags, every_s: float = 1.0) -> None:
    """Ask for a stop when the supervisor (not our parent under torchrun) is gone."""
    try:
        supervisor = int(os.environ["TUITUNE_SUPERVISOR_PID"])
    except (KeyError, ValueError):
        return

    def watch() -> None:
        while True:
            time.sleep(every_s)
            try:
                os.kill(supervisor, 0)
            except ProcessLookupError:
                logging.getLogger("engine.recipes.runner").warning("the supervisor is gone: stopping, saving first")
                flags.request_stop()
                return
            except PermissionError:
                pass

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()
