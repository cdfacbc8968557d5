"""What every family file shares: a SPECS table turned into registry entries.

A family file reads like its paper's table. It declares

- `SPECS`: registry name -> the family's spec (a frozen dataclass, or for LeNet the class:
  what the model's constructor needs besides `num_classes` and `in_channels`);
- `PUBLISHED`: registry name -> `Published(params, macs, source)`, the numbers a paper or
  torchvision published for that entry, each with its source. They are stated here once:
  `convzoo.analysis.papers` reads them from the registry (`model_info(name).params`);

and registers the table with one `register_specs(...)` call. `spec_builder` is the builder
each entry gets (keyword arguments only; options outside the family's list are a
`ConfigError`), and `base.classifier` the final layer every family uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar, Union

from ..errors import ConfigError
from ..registry import ModelInfo, register_model

S = TypeVar("S")
T = TypeVar("T")

#: a registry field given for the whole table, by name, or computed from each row: `f(name, spec)`
PerEntry = Union[T, Mapping[str, T], Callable[[str, Any], T]]


@dataclass(frozen=True)
class Published:
    """Published numbers of one registry entry (None where nothing exact was published).

    `params` and `macs` are plain counts (MACs: multiply-adds, biases not counted);
    `source` says where both come from.
    """

    params: int | None = None
    macs: int | None = None
    source: str = ""


#: the entry of a name the family publishes nothing for
NOTHING = Published()


def spec_builder(
    model: Callable[..., Any],
    spec: Any,
    name: str,
    *,
    options: tuple[str, ...] = (),
    doc: str = "",
    label: str = "",
) -> Callable[..., Any]:
    """The builder registered for `name`: `model(spec, num_classes=..., in_channels=..., **options)`.

    `num_classes` and `in_channels` left out (or None) take the model's own defaults;
    any other keyword must be one of `options`, else a `ConfigError` names the expected ones.
    `model` is the family's class, or a callable that picks one for the spec; `label` names
    the family in that message (default: `model`'s name).
    """
    family = label or getattr(model, "__name__", "model")

    def build(*, num_classes: int | None = None, in_channels: int | None = None, **kwargs: Any) -> Any:
        unknown = sorted(set(kwargs) - set(options))
        if unknown:
            expected = ", ".join(options) if options else "none"
            raise ConfigError(f"unknown {family} option(s) {', '.join(unknown)}; expected: {expected}")
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        if in_channels is not None:
            kwargs["in_channels"] = in_channels
        return model(spec, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = doc or f"Build `{name}` (see `{getattr(model, '__module__', __name__)}`)."
    return build


def _per_entry(value: Any, name: str, spec: Any) -> Any:
    if isinstance(value, Mapping):
        return value[name]
    return value(name, spec) if callable(value) else value


def register_specs(
    specs: Mapping[str, S],
    *,
    model: Callable[..., Any],
    family: PerEntry[str],
    paper: PerEntry[str],
    default_input: PerEntry[tuple[int, int, int]],
    min_input: PerEntry[int],
    description: PerEntry[str],
    num_classes: PerEntry[int] = 1000,
    published: Mapping[str, Published] | None = None,
    options: tuple[str, ...] = (),
    doc: PerEntry[str] = "",
    label: str = "",
) -> list[ModelInfo]:
    """Register every row of `specs`, in table order, with `spec_builder(model, spec, name)`.

    Each metadata argument is one value for the whole table, a mapping by name, or a
    function `f(name, spec)`;
    `published` maps names to their `Published` numbers (a name it lacks has none).
    """
    infos = []
    for name, spec in specs.items():
        pub = (published or {}).get(name, NOTHING)
        infos.append(
            register_model(
                ModelInfo(
                    name=name,
                    family=_per_entry(family, name, spec),
                    builder=spec_builder(
                        model, spec, name, options=options, doc=_per_entry(doc, name, spec), label=label
                    ),
                    paper=_per_entry(paper, name, spec),
                    default_input=_per_entry(default_input, name, spec),
                    min_input=_per_entry(min_input, name, spec),
                    num_classes=_per_entry(num_classes, name, spec),
                    params=pub.params,
                    macs=pub.macs,
                    source=pub.source,
                    description=_per_entry(description, name, spec),
                )
            )
        )
    return infos
