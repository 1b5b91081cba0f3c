"""``python -m engine COMMAND …``: the engine's entry points, each in its own module.

launch   supervise one long job of a run (training, evaluation) detached from any terminal
train    the trainer, for a run folder holding config.yaml (engine.recipes.runner picks the recipe)
eval     an evaluation job, for a job folder RUN/evals/NAME holding job.yaml
export   an export job, for a job folder RUN/exports/NAME holding job.yaml
pull     a pull job: a model fetched from the Hugging Face Hub, for a pull folder holding job.yaml
prepare  convert the embedded demo model once into the user's cache
data     tokenise instruction data and report statistics and problems as JSON lines
hub-data load a Hub dataset's split into the datasets cache and name its arrow files (engine.data.hub reads them)
chat     answer chat requests with a run's base and tuned model, as JSON lines
torchrun torchrun for a run of several processes, its one-machine rendezvous on loopback only
notify   send one event's notification where the settings file says (webhook, command)
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "launch": "engine.supervisor.launch",
    "train": "engine.recipes.runner",
    "eval": "engine.jobs.eval",
    "export": "engine.jobs.export",
    "pull": "engine.jobs.pull",
    "prepare": "engine.models.demo",
    "data": "engine.services.data",
    "hub-data": "engine.jobs.hub_data",
    "chat": "engine.services.chat",
    "torchrun": "engine.recipes.torchrun",
    "notify": "engine.notify.send",
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch to ``COMMANDS[argv[0]].main(argv[1:])``, importing only that module."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
