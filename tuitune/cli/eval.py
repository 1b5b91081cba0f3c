"""``tuitune eval RUN --data FILE [--max-new-tokens N] [--limit N] [--name NAME] [--detach]``.

Evaluates a run's adapter on held-out data: the loss and perplexity of the base model and of the
tuned one, and a prediction of each for every record, in ``RUN/evals/NAME/`` (``metrics.json``,
``predictions.jsonl``). ``RUN`` is a run folder or name, or a checkpoint folder of a run; a run
without ``adapter/`` is evaluated at its newest complete checkpoint (``resolve_trained``, as chat).

The evaluation is a long job of the run (``python -m engine eval`` under the supervisor, see
docs/run-folder.md, Jobs): this command only starts it and follows its ``events.jsonl``. Ctrl-C
asks it to stop (the predictions so far are kept); a second Ctrl-C kills it. Exit status: 0 when
the job finished, 1 when it stopped, failed or was lost, or the run has nothing to evaluate; 2
when it could not start (data the evaluation would refuse, checked record by record as
``tuitune data check`` does, or bad arguments).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.protocol import JOB_FAILED, JOB_FINISHED, LOG_FILE, TERMINAL_TYPES
from tuitune.cli.common import runs_root
from tuitune.cli.follow import JobProgress, print_failure
from tuitune.runs.evals import PREDICTIONS_FILE, EvalRefused, describe_job_end, read_metrics, start_eval, summary_lines
from tuitune.runs.folder import resolve_trained


def run(args: argparse.Namespace) -> int:
    """Start the evaluation, then detach or follow it to its end."""
    if args.max_new_tokens < 1 or (args.limit is not None and args.limit < 1):
        print("error: --max-new-tokens and --limit must be at least 1", file=sys.stderr)
        return 2
    try:
        run_dir, weights = resolve_trained(args.run, runs_root(args))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        job_dir = start_eval(run_dir, weights, args.data, args.max_new_tokens, args.limit, args.name)
    except EvalRefused as exc:
        print(*(f"error: {line}" for line in exc.lines), sep="\n", file=sys.stderr)
        return exc.code
    adapter = str(weights.relative_to(run_dir))
    if args.detach:
        print(job_dir)
        return 0
    print(f"evaluating {run_dir.name} ({adapter}) in {job_dir}  (engine log: {job_dir / LOG_FILE})")
    return JobFollower(job_dir).follow()


class JobFollower(JobProgress):
    """Follows an evaluation's events with a progress bar until its terminal event."""

    STOPPING = "stopping after the current record (Ctrl-C again to kill)"
    KILLING = "killing the evaluation"

    def started(self, event: dict[str, Any]) -> str:
        data = event.get("data") or {}
        return (f"{(event.get('model') or {}).get('name_or_path')} with {event.get('adapter')}: "
                f"{data.get('evaluated')} of {data.get('records')} records, up to "
                f"{event.get('max_new_tokens')} new tokens each, on {event.get('device')}")

    def describe(self, event: dict[str, Any]) -> str:
        return "loss" if event.get("phase") == "loss" else "predicting"

    def report(self, end: dict[str, Any]) -> int:
        kind = end["type"]
        if kind == JOB_FINISHED:
            metrics = read_metrics(self.job_dir)[0] or {"base": {}, "tuned": {}, **(end.get("metrics") or {})}
            print(f"{end.get('records')} records, {end.get('tokens')} answer tokens "
                  f"(loss per token over the set; BLEU-4 and ROUGE as LLaMA-Factory reports them)")
            print(*summary_lines(metrics), sep="\n")
            print(f"predictions: {self.job_dir / PREDICTIONS_FILE}")
            return 0
        if kind in TERMINAL_TYPES and kind != JOB_FAILED:
            print(describe_job_end(end))
            if (self.job_dir / PREDICTIONS_FILE).exists():
                print(f"predictions so far: {self.job_dir / PREDICTIONS_FILE}")
            return 1
        print_failure(end, self.job_dir)
        return 1
