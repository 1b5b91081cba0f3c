"""What the dashboard's title and failure band say, and the loss curve it draws. No Textual here."""

from __future__ import annotations


from rich.text import Text

from tuitune.runs.state import RUNNING, RunState

STATUS_STYLE = {"running": "green", "finished": "cyan", "stopped": "yellow", "failed": "red", "lost": "magenta"}
"""Colour of each status badge."""


def title_text(state: RunState, run_status: str) -> Text:
    """Status badge, name, model and method, the slow phase while starting, and the last warning."""
    out = Text(f" {run_status.upper()} ", style=f"bold reverse {STATUS_STYLE.get(run_status, '')}")
    out.append(f" {state.name} ", style="bold")
    out.append(f" {state.model or '?'} · {state.method or '?'}")
    if run_status == RUNNING and state.phase and state.phase != "training":
        out.append(f"  {state.phase}: {state.phase_message}", style="italic")
    if state.warnings:
        out.append(f"  ⚠ {state.warnings[-1]}", style="yellow")
    return out


def failure_text(state: RunState, run_status: str) -> Text:
    """The cause, exit, hint and errors of a failed run; a line for a lost one; empty otherwise."""
    terminal = state.terminal or {}
    if run_status == "lost":
        return Text("The engine is gone and wrote no final event (machine restarted or engine killed).")
    if run_status != "failed":
        return Text("")
    out = Text.assemble(("FAILED  ", "bold red"), (str(terminal.get("cause") or "unknown cause"), "bold"))
    if terminal.get("signal") or terminal.get("exit_code") is not None:
        out.append(f"  (exit {terminal.get('exit_code')}, {terminal.get('signal') or 'no signal'})", style="dim")
    if terminal.get("hint"):
        out.append(f"\nhint: {terminal['hint']}", style="yellow")
    for error in terminal.get("errors") or []:
        out.append(f"\n  {error}", style="red")
    return out
