"""The Hugging Face Hub, asked before anything big is fetched: a model repo's files and their sizes, whether this
machine may read it, and the model's facts from its config.json and safetensors headers, never its weights.

Every door that takes a hub id asks here first: ``tuitune pull`` and the pull job, ``tuitune estimate``,
``tuitune train`` and the app's review (through :func:`engine.estimate.prestart.check_run`), the Models screen,
and the trainer before it downloads. So a mistyped id, a gated or private repo, no network and a full disk are
each one line (:class:`HubError`), said before a run folder or a job exists.

The app imports this module: huggingface_hub is imported inside the functions, which the app calls in worker
threads. The cache folder is passed to the client explicitly (:func:`engine.models.hf_cache.hub_cache_dir`), and
the endpoint read from ``HF_ENDPOINT`` at each call, so what the client writes is where tuitune looks. The token
is huggingface_hub's own (``HF_TOKEN``, else the login file): nothing here reads its value, passes, writes or
logs it; a message only says whether there is one.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from engine.files import write_text_atomic
from engine.models import hf_cache
from engine.models.info import HUB_ID, ModelError, ModelInfo, describe, read_model_info
from engine.models.safetensors_header import shapes_from_headers
from engine.units import fmt_bytes

DEFAULT_ENDPOINT = "https://huggingface.co"


class HubError(ModelError):
    """The Hub cannot give this model here: the message is one line saying what, and what to do."""


@dataclass(frozen=True)
class Listing:
    """A model repo at one commit, as the Hub lists it: the files training needs and their sizes."""

    repo_id: str
    """ORG/NAME."""
    revision: str
    """What was asked for: a branch, a tag or a commit (``main`` when nothing was)."""
    commit: str
    """The commit ``revision`` is at."""
    files: dict[str, int]
    """The files a pull fetches (:func:`engine.models.hf_cache.wanted_files`), path in the repo → bytes."""
    gated: bool = False
    """Its files need the license accepted (and a token)."""

    @property
    def total_bytes(self) -> int:
        """Bytes of every file the pull fetches."""
        return sum(self.files.values())

    def snapshot(self) -> Path:
        """The cache folder the files go into: ``models--ORG--NAME/snapshots/COMMIT``."""
        return hf_cache.repo_dir(self.repo_id) / "snapshots" / self.commit

    def missing(self) -> dict[str, int]:
        """The files not yet whole in the cache, with their sizes (a pull fetches only these)."""
        snapshot = self.snapshot()
        return {path: size for path, size in self.files.items() if not (snapshot / path).is_file()}


def endpoint() -> str:
    """The Hub's address: ``HF_ENDPOINT``, else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def offline() -> bool:
    """Whether the environment says not to reach the Hub (``HF_HUB_OFFLINE``, or transformers'
    ``TRANSFORMERS_OFFLINE``), read now: huggingface_hub reads it once, when it is first imported."""
    return any(os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def offline_message(repo_id: str) -> str:
    """The one line for a hub id that only the Hub could give while offline."""
    return f"{repo_id} is not on this machine and HF_HUB_OFFLINE is set: unset it to reach the Hub"


def check_hub_id(repo_id: str) -> None:
    """Refuse what cannot be a model's hub id, before the network.

    Raises:
        HubError: ``repo_id`` is not ORG/NAME.
    """
    if not HUB_ID.fullmatch(repo_id) or ".." in repo_id or repo_id.endswith((".", "-")):
        raise HubError(f"{repo_id!r} is not a hub id: give ORG/NAME, e.g. HuggingFaceTB/SmolLM2-135M-Instruct")


def read_listing(repo_id: str, revision: str | None = None) -> Listing:
    """The repo's commit, gating and the files training needs with their sizes (one request, no file fetched).

    Raises:
        HubError: no such model or revision, a private repo without access, no network (one line).
    """
    check_hub_id(repo_id)
    if offline():
        raise HubError(offline_message(repo_id))
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=endpoint()).model_info(repo_id, revision=revision, files_metadata=True)
    except Exception as exc:  # every failure of the client becomes one line, or is re-raised
        raise hub_error(exc, repo_id, revision) from None
    sizes = {sibling.rfilename: sibling.size or 0 for sibling in info.siblings or []}
    return Listing(repo_id, revision or "main", str(info.sha),
                   {path: sizes[path] for path in hf_cache.wanted_files(sizes)}, gated=bool(info.gated))


def fetch_small_file(listing: Listing, filename: str) -> Path:
    """Fetch one small file of the repo into the cache (config.json, tokenizer_config.json) and return it. The first
    file a gated repo refuses: this is where an access is checked.

    Raises:
        HubError: gated without access, missing file, no network.
    """
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(listing.repo_id, filename, revision=listing.commit,
                                    cache_dir=hf_cache.hub_cache_dir(), endpoint=endpoint()))
    except Exception as exc:  # as in read_listing
        raise hub_error(exc, listing.repo_id, listing.revision, filename) from None


def check_access(listing: Listing) -> dict:
    """Whether this machine may read the repo's files, asked with its config.json (fetched, and returned as a dict):
    a gated repo without the license accepted or a token refuses here, before any weights.

    Raises:
        HubError: gated or private without access, no config.json (not a transformers model), no network.
    """
    if "config.json" not in listing.files:
        raise HubError(f"{listing.repo_id} has no config.json on the Hub: it is not a transformers model repo "
                       "(tuitune trains models saved with save_pretrained, config.json and safetensors)")
    path = fetch_small_file(listing, "config.json")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HubError(f"{listing.repo_id}: its config.json is not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise HubError(f"{listing.repo_id}: its config.json is not a JSON object")
    return config


def hub_model_info(repo_id: str, revision: str | None = None) -> ModelInfo:
    """The facts of a model on the Hub, from its file list, config.json, tokenizer_config.json and safetensors
    headers (ranges of a few kilobytes): enough for the memory estimate, without its weights.

    Raises:
        HubError: as :func:`read_listing` and :func:`check_access`.
        ModelError: its architecture is not a causal language model.
    """
    listing = read_listing(repo_id, revision)
    config = check_access(listing)
    chat: bool | None = any(name in listing.files for name in ("chat_template.jinja", "chat_template.json"))
    if "tokenizer_config.json" in listing.files and not chat:
        try:
            tokenizer_config = json.loads(fetch_small_file(listing, "tokenizer_config.json").read_text("utf-8"))
            chat = isinstance(tokenizer_config, dict) and bool(tokenizer_config.get("chat_template"))
        except (OSError, ValueError):
            chat = None
    weights = sorted(path for path in listing.files if path.endswith(".safetensors") and "/" not in path)
    shapes, dtype = safetensors_shapes(listing, weights) if weights else ((), None)
    missing = listing.missing()
    where = (f"{fmt_bytes(sum(missing.values()))} to download ({len(missing)} of {len(listing.files)} files)"
             if len(missing) < len(listing.files) else f"{fmt_bytes(listing.total_bytes)} to download")
    note = f"On the Hub, not on this machine: {where}; `tuitune pull {repo_id}` fetches it, or a run does first."
    info = describe(config, repo_id, "hub", repo_id, path=None, header_shapes=shapes, header_dtype=dtype,
                    size=listing.total_bytes, chat=chat,
                    bin_only=not weights and any(path.endswith(".bin") for path in listing.files),
                    notes=(note,) + (("Gated: its license is accepted for the token here.",) if listing.gated else ()))
    return replace(info, download_bytes=sum(missing.values()), commit=listing.commit)


def safetensors_shapes(listing: Listing, files: list[str]) -> tuple[tuple, str | None]:
    """The tensors the headers of ``files`` name, each read with one small range request; ``((), None)`` when the
    headers cannot be read (the shapes then come from config.json, for the families it describes).

    Raises:
        HubError: no network (a gated refusal came earlier, at config.json).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import SafetensorsParsingError

    api = HfApi(endpoint=endpoint())
    headers = []
    for filename in files:
        try:
            parsed = api.parse_safetensors_file_metadata(listing.repo_id, filename, revision=listing.commit)
        except SafetensorsParsingError:
            return (), None
        except Exception as exc:  # as in read_listing
            raise hub_error(exc, listing.repo_id, listing.revision, filename) from None
        headers.append({name: {"dtype": t.dtype, "shape": t.shape} for name, t in parsed.tensors.items()})
    return shapes_from_headers(headers)


def plan_pull(repo_id: str, revision: str | None = None) -> Listing:
    """What a pull of ``repo_id`` fetches, once everything that refuses it before any weights is checked: the repo
    and revision exist, this machine may read its files (config.json is fetched), and the disk has room for what
    the cache lacks.

    Raises:
        HubError: one line saying which, and what to do.
    """
    listing = read_listing(repo_id, revision)
    check_access(listing)
    missing = sum(listing.missing().values())
    if problem := room_problem(repo_id, missing, listing.total_bytes):
        raise HubError(problem)
    return listing


def read_with_hub(name_or_path: str, revision: str | None = None) -> ModelInfo:
    """What every door reads of a model: :func:`engine.models.info.read_model_info`, and for a hub id that is not
    whole in the cache, its facts from the Hub (:func:`hub_model_info`, over the network).

    Raises:
        ModelError: the model cannot be used; HubError when the Hub says so (or cannot be reached).
    """
    info = read_model_info(name_or_path, revision)
    return hub_model_info(name_or_path, revision) if info.source == "hub" else info


def room_problem(repo_id: str, needed: int, total: int | None = None) -> str | None:
    """Why the cache's disk cannot take ``needed`` more bytes of ``repo_id``, or None: one line with both figures."""
    folder = hf_cache.hub_cache_dir()
    existing = next(parent for parent in (folder, *folder.parents) if parent.is_dir())
    free = shutil.disk_usage(existing).free
    if needed <= free:
        return None
    whole = f" ({fmt_bytes(total)} in all)" if total and fmt_bytes(total) != fmt_bytes(needed) else ""
    return (f"not enough disk space for {repo_id} in {existing}: {fmt_bytes(free)} free, the model needs "
            f"{fmt_bytes(needed)}{whole}; free some space, or point HF_HOME at a larger disk")


def remember_revision(listing: Listing) -> None:
    """Write ``refs/REVISION`` (the commit a branch or tag was pulled at), as the Hub client does, so that a run
    naming that revision finds the snapshot without the network; nothing for a commit asked by its hash."""
    if listing.revision == listing.commit:
        return
    ref = hf_cache.repo_dir(listing.repo_id) / "refs" / listing.revision
    if ref.is_file() and ref.read_text(encoding="utf-8").strip() == listing.commit:
        return
    ref.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(ref, listing.commit)


def has_token() -> bool:
    """Whether huggingface_hub finds a token here (``HF_TOKEN`` or the login file); its value is never read out."""
    from huggingface_hub import get_token

    try:
        return get_token() is not None
    except Exception:  # a token source that fails (OIDC) is no token for a message
        return False


def hub_error(exc: BaseException, repo_id: str, revision: str | None = None, filename: str | None = None
              ) -> HubError:
    """The Hub client's exception as one line a person can act on; an exception that is no Hub or network
    failure is re-raised."""
    import httpx2
    from huggingface_hub import errors

    page = f"{endpoint()}/{repo_id}"
    if isinstance(exc, errors.GatedRepoError):
        if has_token():
            return HubError(f"{repo_id} is gated and the token here has no access to it: accept its license at "
                            f"{page} with that token's account (or set HF_TOKEN to another account's token)")
        return HubError(f"{repo_id} is gated: accept its license at {page}, then set HF_TOKEN or log in "
                        "(hf auth login)")
    if isinstance(exc, errors.RevisionNotFoundError):
        return HubError(f"{repo_id} has no revision {revision!r} on the Hub: give a branch, tag or commit it has")
    if isinstance(exc, errors.RepositoryNotFoundError):
        private = ("that the token here can read" if has_token()
                   else "(if it is private, set HF_TOKEN or log in: hf auth login)")
        return HubError(f"no model {repo_id} on the Hub {private}; check the spelling at {endpoint()}")
    if isinstance(exc, errors.RemoteEntryNotFoundError):
        return HubError(f"{repo_id} has no {filename or 'such file'} on the Hub at {revision or 'main'}")
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return HubError(offline_message(repo_id))
    if isinstance(exc, httpx2.TransportError):
        return HubError(f"cannot reach the Hub at {endpoint()} for {repo_id} (no network?): {_first_line(exc)}")
    if isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        if status == 401:
            return HubError(f"the Hub refused the token here for {repo_id} (HTTP 401): set a valid HF_TOKEN or log "
                            "in again (hf auth login)")
        return HubError(f"the Hub answered HTTP {status} for {repo_id}: try again later ({_first_line(exc)})")
    if isinstance(exc, errors.HFValidationError):
        return HubError(f"{repo_id!r} is not a hub id: {_first_line(exc)}")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return HubError(f"the disk filled up while fetching {repo_id} into {hf_cache.hub_cache_dir()}: free some "
                        "space and pull again (the files already whole are kept)")
    raise exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
