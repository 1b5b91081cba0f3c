"""PresetForm: every preset knob, built from the engine's config schema and checked as you type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from textual import events, getters, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.validation import ValidationResult, Validator
from textual.widgets import Checkbox, Input, Label, Select, Static

from engine.config import RunConfig
from engine.presets import diff_from, flatten, preset_values, resolve
from tuitune.widgets.preset_fields import FieldSpec, preset_fields, unflatten
from tuitune.widgets.tick_box import TickBox

Widgetish = Input | Select | Checkbox


class SchemaValidator(Validator):
    """Checks an Input's text with its field's type and range, so the box turns red as you type."""

    def __init__(self, spec: FieldSpec) -> None:
        super().__init__()
        self.spec = spec

    def validate(self, value: str) -> ValidationResult:
        """Success, or a failure carrying the schema's message."""
        try:
            self.spec.parse(value)
        except ValueError as exc:
            return self.failure(str(exc))
        return self.success()


class PresetForm(VerticalScroll):
    """Editable fields of a preset (description, quant, adapter, data, train) with help, errors and diff."""

    DEFAULT_CSS = """
    PresetForm { height: 1fr; }
    PresetForm .form-section { text-style: bold; color: $accent; margin-top: 1; }
    PresetForm .field { height: auto; }
    PresetForm .field-line { height: 1; }
    PresetForm .field-name { width: 24; }
    PresetForm .field-line Input, PresetForm .field-line Select { width: 1fr; max-width: 44; }
    PresetForm #field-description { max-width: 100%; width: 4fr; }
    PresetForm .field-base { color: $warning; padding-left: 1; width: 1fr; }
    PresetForm .field-help { color: $text-muted; padding-left: 4; display: none; }
    PresetForm .-focused .field-help { display: block; }
    PresetForm .field-error { color: $error; padding-left: 24; display: none; }
    PresetForm .-invalid .field-error { display: block; }
    PresetForm .-changed .field-name { color: $warning; }
    PresetForm #form-problems { color: $error; display: none; }
    PresetForm #form-problems.-shown { display: block; }
    """

    problems_line = getters.query_one("#form-problems", Static)

    @dataclass
    class Changed(Message):
        """A value, error or the whole preset changed; carries what the form now holds."""

        form: PresetForm
        values: dict[str, Any]
        """The preset as nested dicts (last valid value of each field)."""
        errors: dict[str, str]
        """Problems by dotted field ('config' for combinations); empty when the preset can be saved."""
        diff: list[tuple[str, Any, Any]]
        """(dotted field, base value, current value) of every field that differs from the base."""

        @property
        def control(self) -> PresetForm:
            """The form that changed (for ``@on(PresetForm.Changed, "#id")``)."""
            return self.form

    def __init__(self, base: dict[str, Any] | None = None, *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._specs = preset_fields()
        self._by_id = {spec.widget_id: spec for spec in self._specs}
        full = preset_values(resolve(base or {}))
        self._base = flatten(full)
        self._values = dict(self._base)
        self._field_errors: dict[str, str] = {}
        self._config_error: str | None = None
        self._shown: dict[Static, str] = {}

    @property
    def values(self) -> dict[str, Any]:
        """The preset as nested dicts, ready for ``save_user_preset``."""
        return unflatten(self._values)

    @property
    def base(self) -> dict[str, Any]:
        """The base preset, resolved over the defaults, as nested dicts."""
        return unflatten(self._base)

    @property
    def errors(self) -> dict[str, str]:
        """Field problems by dotted name, plus 'config' for a bad combination."""
        errors = dict(self._field_errors)
        if self._config_error:
            errors["config"] = self._config_error
        return errors

    @property
    def diff(self) -> list[tuple[str, Any, Any]]:
        """Fields that differ from the base preset."""
        return diff_from(self.base, self.values)

    def compose(self) -> ComposeResult:
        """A heading per section, then a row per field: name, control, base value, help and error."""
        section = ""  # top-level fields (description) come first, without a heading
        for spec in self._specs:
            head, _, name = spec.dotted.rpartition(".")
            if head != section:
                section = head
                doc = RunConfig.model_fields[head].annotation.__doc__
                yield Static(f"{head}: {doc}", markup=False, classes="form-section")
            with Vertical(classes="field", id=f"row-{spec.widget_id}"):
                with Horizontal(classes="field-line"):
                    yield Label(name, classes="field-name")
                    yield self._control(spec)
                    yield Static("", markup=False, classes="field-base")
                yield Static(self._help(spec), markup=False, classes="field-help")
                yield Static("", markup=False, classes="field-error")
        yield Static("", markup=False, id="form-problems")

    def on_mount(self) -> None:
        """Show the marks of the starting values, and the start of each text."""
        for box in self.query(Input):
            box.cursor_position = 0
        self._refresh_all()

    def load(self, base: dict[str, Any], values: dict[str, Any] | None = None) -> None:
        """Edit ``values`` (default: ``base``) with ``base`` as the reference for the diff."""
        self._base = flatten(preset_values(resolve(base)))
        self._values = flatten(preset_values(resolve(values))) if values is not None else dict(self._base)
        self._field_errors.clear()
        if self.is_mounted:
            for spec in self._specs:
                self._set_control(spec, self._values[spec.dotted])
            self._refresh_all()
        self._post()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """Show the help of the field being edited (only that one, to keep the form short)."""
        self._mark_focus(event.widget.id, True)

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        """Hide the help of the field left."""
        self._mark_focus(event.widget.id, False)

    def _mark_focus(self, widget_id: str | None, focused: bool) -> None:
        if widget_id in self._by_id:
            self.query_one(f"#row-{widget_id}").set_class(focused, "-focused")

    def _help(self, spec: FieldSpec) -> str:
        """The field's schema description with its range or accepted words."""
        extra = spec.bounds
        if spec.kind == "list":
            extra = f"{' or '.join(spec.choices)} or comma-separated names"
        elif spec.kind == "yaml":
            extra = "a YAML list, e.g. [{kind: length, max_words: 20}]"
        if spec.optional:
            extra = f"{extra}; empty = none" if extra else "empty = none"
        return f"{spec.description} ({extra})" if extra else spec.description

    def _control(self, spec: FieldSpec) -> Widgetish:
        """The control that edits ``spec``, showing its current value."""
        value = self._values[spec.dotted]
        if spec.kind == "bool":
            return TickBox(_on_off(value), bool(value), compact=True, id=spec.widget_id)
        if spec.kind == "choice":
            options = [(choice, choice) for choice in spec.choices]
            return Select(options, value=value, allow_blank=False, compact=True, id=spec.widget_id)
        kind = {"int": "integer", "float": "number"}.get(spec.kind, "text")
        return Input(
            spec.format(value), type=kind, validators=[SchemaValidator(spec)], valid_empty=spec.optional,
            placeholder="none" if spec.optional else "", compact=True, id=spec.widget_id,
        )

    def _set_control(self, spec: FieldSpec, value: Any) -> None:
        """Put ``value`` into the control of ``spec``."""
        control = self.query_one(f"#{spec.widget_id}")
        if isinstance(control, Input):
            control.value = spec.format(value)
            control.cursor_position = 0  # show the start of long values, not their end
        elif isinstance(control, Checkbox):
            control.value = bool(value)
            control.label = _on_off(value)
        else:
            control.value = value

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _control_changed(self, event: Input.Changed | Select.Changed | Checkbox.Changed) -> None:
        """Check the new value, keep it if valid, and tell the screen when anything changed."""
        spec = self._by_id.get(event.control.id or "")
        if spec is None:
            return
        event.stop()
        if isinstance(event, Checkbox.Changed):
            event.control.label = _on_off(event.value)
        error = None
        value = self._values[spec.dotted]
        try:
            value = spec.parse(event.value) if isinstance(event, Input.Changed) else event.value
        except ValueError as exc:
            error = str(exc)
        if value == self._values[spec.dotted] and error == self._field_errors.get(spec.dotted):
            return  # an echo of load() or of a value already held
        self._values[spec.dotted] = value
        if error:
            self._field_errors[spec.dotted] = error
        else:
            self._field_errors.pop(spec.dotted, None)
        self._refresh_all()
        self._post()

    def _refresh_all(self) -> None:
        """Re-check the combination and redraw every row's changed and error marks."""
        self._config_error = None
        try:
            resolve(self.values)
        except ValidationError as exc:
            self._config_error = "; ".join(err["msg"].removeprefix("Value error, ") for err in exc.errors())
        for spec in self._specs:
            row = self.query_one(f"#row-{spec.widget_id}")
            base = self._base.get(spec.dotted)
            changed = self._values[spec.dotted] != base
            row.set_class(changed, "-changed")
            row.set_class(spec.dotted in self._field_errors, "-invalid")
            self._show(row.query_one(".field-base", Static), f"was {spec.format(base) or 'none'}" if changed else "")
            self._show(row.query_one(".field-error", Static), self._field_errors.get(spec.dotted, ""))
        problems = self.problems_line
        self._show(problems, self._config_error or "")
        problems.set_class(bool(self._config_error), "-shown")

    def _show(self, static: Static, text: str) -> None:
        """Update ``static`` only when its text changes: each update costs a layout of the whole form."""
        if self._shown.get(static) != text:
            self._shown[static] = text
            static.update(text)

    def _post(self) -> None:
        """Tell the parent what the form holds now."""
        self.post_message(self.Changed(self, self.values, self.errors, self.diff))


def _on_off(value: object) -> str:
    """A checkbox's label, so its state reads without colour."""
    return "on" if value else "off"
