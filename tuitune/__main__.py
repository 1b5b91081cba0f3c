"""The ``tuitune`` command line. Each subcommand lives in ``tuitune.cli.<name>`` and is imported
only when used, so ``tuitune stop`` never pays for Textual and nothing here imports torch.

The command line is a promise kept stable (see README): tuitune, tuitune train, tuitune attach,
tuitune stop, tuitune pause, tuitune continue, tuitune data check, tuitune estimate, tuitune chat,
tuitune eval, tuitune export, tuitune import-lf, tuitune pull, tuitune queue, tuitune serve,
tuitune runs, tuitune compare, tuitune plot.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable


def _gpus(text: str) -> str | list[int]:
    from engine.machine.gpus import parse_gpus

    try:
        return parse_gpus(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--gpus {text!r}: ")) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535; 0 picks a free one)")
    return int(text)


def _chat_setting(name: str) -> Callable[[str], int | float]:
    """An argparse ``type`` for the generation setting ``name``, checked as the chat service checks it."""
    from engine.services.chat_protocol import SETTINGS, setting_problem

    kind, _test, words = SETTINGS[name]

    def parse(text: str) -> int | float:
        try:
            value = int(text) if kind == "int" else float(text)
        except ValueError:
            value = None
        if value is None or setting_problem(name, value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {words}")
        return value

    return parse


def _master(text: str) -> str:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not ADDR:PORT (e.g. 10.0.0.1:29500)")
    return text


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """What composes a run's config (tuitune.cli.common.config_from_args), for train and estimate alike."""
    from engine.stages import STAGES

    parser.add_argument("config", nargs="?",
                        help="run config YAML, tuitune's or LLaMA-Factory's (default: the demo run)")
    parser.add_argument("--model", help="model alias, local folder or hub id")
    parser.add_argument("--stage", choices=list(STAGES), help="training stage (default: the config's, else sft)")
    parser.add_argument("--data", action="append", help="training data file or folder (repeatable)")
    parser.add_argument("--preset", help="preset name or YAML file laid under the config")
    parser.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    parser.add_argument("--dataset-dir", metavar="DIR", help="--data names datasets of DIR/dataset_info.json "
                                                             "(LLaMA-Factory); over the config's dataset_dir")
    several = parser.add_argument_group("several GPUs or machines (torchrun)")
    several.add_argument("--gpus", type=_gpus, metavar="0,1|all",
                         help="GPU indices to train on (train.gpus; default all): more than one runs under torchrun")
    several.add_argument("--nproc", type=_positive, metavar="N",
                         help="processes on this machine (distributed.nproc; default one per GPU; "
                              "on a CPU, N over gloo)")
    several.add_argument("--nnodes", type=_positive, metavar="N", help="machines taking part (distributed.nnodes)")
    several.add_argument("--node-rank", type=int, metavar="R",
                         help="this machine's place among them, 0 for the one at --master (distributed.node_rank)")
    several.add_argument("--master", type=_master, metavar="ADDR:PORT",
                         help="address and free port of node 0, reachable from every node (distributed.master)")


def build_parser() -> argparse.ArgumentParser:
    """The whole argument parser, every subcommand included."""
    from engine.stages import STAGES

    parser = argparse.ArgumentParser(prog="tuitune", description="Fine-tune LLMs with LoRA/QLoRA from the terminal.")
    parser.add_argument("--runs-dir", help="folder holding run folders (over $TUITUNE_RUNS_DIR, the settings file "
                                           "and XDG data)")
    sub = parser.add_subparsers(dest="command")

    train = sub.add_parser("train", help="train headless (progress bar, or --detach)")
    add_config_arguments(train)
    train.add_argument("--run-dir", help="run folder (default: a new one in the runs folder)")
    train.add_argument("--resume", action="store_true", help="continue --run-dir from its latest checkpoint")
    train.add_argument("--detach", action="store_true", help="start in the background, print the run folder, return")
    train.add_argument("--force", action="store_true",
                       help="start even when the memory estimate says it will not fit or the chat-template doctor "
                            "finds an error")

    import_lf = sub.add_parser("import-lf", help="write a LLaMA-Factory training YAML as a tuitune run config")
    import_lf.add_argument("config", help="LLaMA-Factory training YAML (paths in it are taken from the current folder)")
    import_lf.add_argument("-o", "--output", required=True, help="the tuitune run config to write")
    import_lf.add_argument("--force", action="store_true", help="replace --output if it exists")
    import_lf.add_argument("--dataset-dir", metavar="DIR",
                           help="read dataset_info.json from DIR (over the file's dataset_dir)")

    attach = sub.add_parser("attach", help="open the app on a run's dashboard")
    attach.add_argument("run", help="run folder or run name")

    stop = sub.add_parser("stop", help="stop a run: save a checkpoint and the adapter, then end")
    stop.add_argument("run", help="run folder or run name")
    stop.add_argument("--kill", action="store_true", help="kill at once without saving")

    pause = sub.add_parser("pause", help="pause a run: its trainer holds where it is, the model stays loaded")
    pause.add_argument("run", help="run folder or run name")
    go_on = sub.add_parser("continue", help="let a paused run go on")
    go_on.add_argument("run", help="run folder or run name")

    data = sub.add_parser("data", help="instruction data tools")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    check = data_sub.add_parser("check", help="validate a data file and print a report; non-zero exit on errors")
    check.add_argument("path", help="JSON, JSON Lines, .txt or datasets folder (with --dataset-dir: dataset names)")
    check.add_argument("--format", default="auto", help="record layout (default: detected); tuitune data check "
                                                        "names the layouts when a file matches none")
    check.add_argument("--stage", choices=list(STAGES),
                       help="accept only the layouts this stage trains on, as training would")
    check.add_argument("--dataset-dir", metavar="DIR",
                       help="PATH names datasets of DIR/dataset_info.json (LLaMA-Factory), comma separated")
    check.add_argument("--model", help="tokenise with this model's chat template for token statistics")
    check.add_argument("--cutoff", type=int, help="cutoff length in tokens (default: the config's)")

    chat = sub.add_parser("chat", help="talk to a run's tuned model (the app's Chat screen, or --once)")
    chat.add_argument("run", help="run folder or run name, or a checkpoint folder of a run")
    chat.add_argument("--once", metavar="QUESTION",
                      help="print the answer to QUESTION and exit (no app); - reads the question from stdin")
    side = chat.add_mutually_exclusive_group()
    side.add_argument("--base", action="store_true", help="with --once: answer with the adapter off (the base model)")
    side.add_argument("--compare", action="store_true", help="with --once: print the base and the tuned answers")
    chat.add_argument("--max-new-tokens", type=_chat_setting("max_new_tokens"), default=256,
                      help="longest answer in tokens, at least 1 (default 256)")
    chat.add_argument("--temperature", type=_chat_setting("temperature"), default=0.0,
                      help="0 (default) answers greedily: reproducible; above 0 samples")
    chat.add_argument("--top-p", type=_chat_setting("top_p"), default=1.0,
                      help="nucleus sampling when temperature > 0 (above 0, at most 1)")
    chat.add_argument("--repetition-penalty", type=_chat_setting("repetition_penalty"), default=1.0,
                      help="above 1 discourages repeats (above 0)")
    chat.add_argument("--seed", type=_chat_setting("seed"), default=0, help="seed for sampling (0 or more)")
    chat.add_argument("--system", help="system prompt (default: the run's data.system_prompt)")

    evaluate = sub.add_parser("eval", help="loss, perplexity and predictions of base and tuned on held-out data")
    evaluate.add_argument("run", help="run folder or run name, or a checkpoint folder of a run")
    evaluate.add_argument("--data", required=True, help="held-out data in any layout data check accepts")
    evaluate.add_argument("--max-new-tokens", type=int, default=128, help="longest prediction in tokens")
    evaluate.add_argument("--limit", type=int, help="evaluate only the first N records")
    evaluate.add_argument("--name", help="name of the evaluation's folder in RUN/evals/ (default: a time stamp)")
    evaluate.add_argument("--detach", action="store_true", help="start in the background, print its folder, return")

    export = sub.add_parser("export", help="write a run's model where it is served: merged safetensors, GGUF, Ollama")
    export.add_argument("run", help="run folder or run name, or a checkpoint folder of a run")
    export.add_argument("--to", metavar="DIR", help="where the files go (default: RUN/exports/NAME/)")
    export.add_argument("--merged", action="store_true", help="the adapter merged into the full-precision base")
    export.add_argument("--gguf", action="append", metavar="TYPE",
                        help="a GGUF file of TYPE (f16, bf16, q8_0; repeatable)")
    export.add_argument("--ollama", action="store_true", help="a Modelfile next to the GGUF for `ollama create`")
    export.add_argument("--adapter-only", metavar="DIR", help="copy a clean PEFT adapter folder to DIR")
    export.add_argument("--name", help="name of the export's folder in RUN/exports/ (default: a time stamp)")
    export.add_argument("--best", action="store_true",
                        help="export the run's checkpoint of the lowest eval loss (RUN: a run, not a checkpoint)")
    export.add_argument("--push", metavar="ORG/NAME",
                        help="upload what the export wrote (or the adapter) to this Hub repo, with a model card")
    export.add_argument("--private", action="store_true", help="with --push: create the repo private")
    export.add_argument("--detach", action="store_true", help="start in the background, print its folder, return")

    pull = sub.add_parser("pull", help="download a model from the Hugging Face Hub into its cache, with progress")
    pull.add_argument("repo", metavar="ORG/NAME", help="the model's hub id")
    pull.add_argument("--revision", help="branch, tag or commit (default: main)")
    pull.add_argument("--detach", action="store_true", help="start in the background, print its folder, return")

    queue = sub.add_parser("queue", help="runs that start one after another, unattended (no subcommand: list it)")
    queue_sub = queue.add_subparsers(dest="queue_command")
    queue_add = queue_sub.add_parser("add", help="add a run, or with --sweep one run per combination of values")
    add_config_arguments(queue_add)
    queue_add.add_argument("--sweep", action="append", metavar="KEY=V1,V2",
                           help="a dotted config key and its values (repeatable: every combination)")
    queue_add.add_argument("--name", help="the run's name (a sweep appends its values)")
    queue_add.add_argument("--force", action="store_true",
                           help="start even when the memory estimate says it will not fit or the chat-template "
                                "doctor finds an error")
    queue_rm = queue_sub.add_parser("rm", help="remove a queued run")
    queue_rm.add_argument("name", help="the queued run's name")
    queue_sub.add_parser("pause", help="start no further run (the one running goes on)")
    queue_sub.add_parser("resume", help="start the queue again (after a pause or a reboot)")

    runs = sub.add_parser("runs", help="list the runs of the runs folder: state, step, loss, start, duration")
    runs.add_argument("--json", action="store_true", help="one JSON object per run, one per line, for scripts")

    compare = sub.add_parser("compare", help="open the app's Compare on runs: curves overlaid, figures, config diff")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run folders or run names (two or more)")

    plot = sub.add_parser("plot", help="write runs' curves as an image (PNG or SVG), for reports")
    plot.add_argument("runs", nargs="+", metavar="RUN", help="run folders or run names")
    plot.add_argument("--metric", default="loss", help="a logged metric (default loss)")
    plot.add_argument("--out", metavar="FILE", help="FILE.png or FILE.svg (default: METRIC.png in the current folder)")

    serve = sub.add_parser("serve", help="serve the app to a browser on loopback, behind a one-time access token")
    serve.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000; 0: any free port)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; anything else is reachable from outside)")

    estimate = sub.add_parser("estimate", help="estimate the memory a run needs and check it as train would")
    add_config_arguments(estimate)
    return parser


HANDLERS = {
    "app": "tuitune.cli.app",
    "attach": "tuitune.cli.app",
    "train": "tuitune.cli.train",
    "stop": "tuitune.cli.stop",
    "pause": "tuitune.cli.pause",
    "continue": "tuitune.cli.pause",
    "data": "tuitune.cli.data_check",
    "estimate": "tuitune.cli.estimate",
    "chat": "tuitune.cli.chat",
    "eval": "tuitune.cli.eval",
    "export": "tuitune.cli.export",
    "import-lf": "tuitune.cli.import_lf",
    "pull": "tuitune.cli.pull",
    "queue": "tuitune.cli.queue",
    "serve": "tuitune.cli.serve",
    "runs": "tuitune.cli.runs",
    "compare": "tuitune.cli.compare",
    "plot": "tuitune.cli.plot",
}


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the exit status (2 for a refusal before it starts,
    said in one line)."""
    from tuitune.cli.common import Refusal

    args = build_parser().parse_args(argv)
    args.command = args.command or "app"
    handler = importlib.import_module(HANDLERS[args.command])
    try:
        return int(handler.run(args) or 0)
    except Refusal as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
