"""The preset editor's fields, read from the engine's config schema (no second list of knobs).

No Textual here: each :class:`FieldSpec` knows its kind, help, choices and range from
``engine.config.RunConfig`` and turns what the user typed into a checked value.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from engine.config import RunConfig
from engine.presets import PRESET_SECTIONS, RUN_ONLY_FIELDS

Kind = Literal["bool", "choice", "int", "float", "list", "yaml", "text"]


@dataclass(frozen=True)
class FieldSpec:
    """One editable knob: where it sits in the config and how its text is checked."""

    dotted: str
    """Path in the config, e.g. ``adapter.r``."""
    description: str
    """Help text: the field's attribute docstring in engine/config.py."""
    kind: Kind
    """Which control edits it: a switch, a choice list or a text box (``yaml``: a list of sections, as flow YAML)."""
    choices: tuple[str, ...]
    """Allowed values of a choice (or of the words a list field also accepts)."""
    optional: bool
    """Whether an empty box means None."""
    bounds: str
    """The range as text, e.g. ``1 to 1024``; '' when unbounded."""
    adapter: TypeAdapter[Any]
    """Validates the value with the field's own type and constraints."""

    @property
    def widget_id(self) -> str:
        """A Textual id for the field's control (dots are not allowed in ids)."""
        return "field-" + self.dotted.replace(".", "-")

    def parse(self, text: str) -> Any:
        """The checked value of ``text``.

        Raises:
            ValueError: a message for the user, from the schema's own checks.
        """
        text = text.strip()
        if text == "" and self.optional:
            return None
        if text == "" and self.kind != "text":
            raise ValueError("a value is required")
        candidate: Any = text
        if self.kind == "list":
            candidate = text if text in self.choices else [part.strip() for part in text.split(",") if part.strip()]
        elif self.kind == "yaml":
            try:
                candidate = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"not YAML: {str(exc).splitlines()[0]}") from None
        try:
            value = self.adapter.validate_python(candidate)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
            raise ValueError(f"{where}: {message}" if self.kind == "yaml" and where else message) from None
        # sections back to plain values, as a preset file holds them
        return self.adapter.dump_python(value, mode="json", exclude_defaults=True) if self.kind == "yaml" else value

    def format(self, value: Any) -> str:
        """``value`` as the text a box shows."""
        if value is None:
            return ""
        if self.kind == "yaml":
            return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 20).strip()
        if isinstance(value, list):
            return ", ".join(str(item) for item in value)
        return str(value)


def _describe_bounds(metadata: list[Any]) -> str:
    """Pydantic Field constraints as a short range text."""
    low = next((f">= {m.ge}" for m in metadata if isinstance(m, Ge)), None)
    low = low or next((f"> {m.gt}" for m in metadata if isinstance(m, Gt)), None)
    high = next((f"<= {m.le}" for m in metadata if isinstance(m, Le)), None)
    high = high or next((f"< {m.lt}" for m in metadata if isinstance(m, Lt)), None)
    length = next((f"at least {m.min_length} item(s)" for m in metadata if isinstance(m, MinLen)), None)
    length = length or next((f"at most {m.max_length} items" for m in metadata if isinstance(m, MaxLen)), None)
    return ", ".join(part for part in (low, high, length) if part)


def _members(annotation: Any) -> list[Any]:
    """The members of a union annotation (or the annotation itself)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return list(get_args(annotation))
    return [annotation]


def _is_section(item: Any) -> bool:
    return isinstance(item, type) and issubclass(item, BaseModel)


def spec_for(dotted: str, field: FieldInfo) -> FieldSpec:
    """The FieldSpec of one schema field."""
    members = _members(field.annotation)
    optional = type(None) in members
    members = [m for m in members if m is not type(None)]
    literals = tuple(str(v) for m in members if get_origin(m) is Literal for v in get_args(m))
    others = [m for m in members if get_origin(m) is not Literal]
    kind: Kind
    if others == [bool]:
        kind = "bool"
    elif not others:
        kind = "choice"
    elif any(get_origin(m) is list and _is_section(get_args(m)[0]) for m in others):
        kind = "yaml"
    elif any(get_origin(m) is list for m in others):
        kind = "list"
    elif others == [int]:
        kind = "int"
    elif others == [float]:
        kind = "float"
    else:
        kind = "text"
    inner = Union[tuple(members)] if len(members) > 1 else members[0]  # noqa: UP007 - made from a list at run time
    adapter = TypeAdapter(Annotated[(inner, *field.metadata)]) if field.metadata else TypeAdapter(inner)
    return FieldSpec(dotted, field.description or "", kind, literals, optional, _describe_bounds(field.metadata),
                     adapter)


def preset_fields() -> list[FieldSpec]:
    """Every knob a preset sets, in schema order: description, then each preset section."""
    specs = [spec_for("description", RunConfig.model_fields["description"]),
             spec_for("stage", RunConfig.model_fields["stage"])]
    for section in PRESET_SECTIONS:
        model = RunConfig.model_fields[section].annotation
        for name, field in model.model_fields.items():
            if f"{section}.{name}" not in RUN_ONLY_FIELDS:
                specs.append(spec_for(f"{section}.{name}", field))
    return specs


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"adapter.r": 16}`` back into ``{"adapter": {"r": 16}}``, keeping order."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested
