"""Component: the estimator contract every trainable stage follows, and its on-disk form.

The constructor only stores a typed config (no work, so a component is cheap to create and
to describe); ``fit`` returns ``self`` and sets public attributes ending in ``_``; using a
component before ``fit`` raises :class:`NotFittedError`. A saved component is a directory:
``manifest.json`` (class, config, versions, scalar state) plus ``state.safetensors`` (arrays).
No pickle, and nothing of the training data beyond the learned state.

Loading never imports what a file names: the manifest's ``class`` must be one facetrec knows
(a registered model, one of facetrec's own components, or the class ``load`` was called on), and
its state may set only the fitted attributes that class declares, so a crafted directory can
neither run code at import nor overwrite methods or settings.
"""

from __future__ import annotations

import importlib
import inspect
import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np

from facetrec import __version__
from facetrec.config import from_dict, to_dict
from facetrec.errors import ConfigError, NotFittedError

C = TypeVar("C")
_SCALARS = (bool, int, float, str)

OWN_COMPONENTS = ("facetrec.ranking.ranker:Ranker", "facetrec.content.lexical:LexicalEncoder")
"""facetrec's saved component classes besides the models (those are in scoring/registry.py)."""

MAP_MIN_BYTES = 1 << 20
"""Saved arrays this large or larger are loaded as read-only memory maps, which every worker
process shares through the page cache; smaller ones are copied (a map each would cost more)."""


class Component(Generic[C]):
    """Base class: subclasses set ``config_class`` to a frozen dataclass of their settings."""

    config_class: ClassVar[type]

    def __init__(self, config: C | None = None, **overrides: Any) -> None:
        if config is not None and not isinstance(config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__}: config must be a {self.config_class.__name__}, got {type(config).__name__}"
            )
        base = config if config is not None else self.config_class()
        if overrides:
            base = from_dict(self.config_class, {**to_dict(base), **overrides}, type(self).__name__)
        self.config: C = base

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    @property
    def fitted_attributes(self) -> list[str]:
        """Names of the state ``fit`` learned: public attributes ending in ``_``."""
        return [name for name in vars(self) if name.endswith("_") and not name.startswith("_")]

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted_attributes)

    def _require_fitted(self, method: str) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call .fit(train) before .{method}()")

    def save(self, directory: str | Path) -> Path:
        """Write the fitted component to ``directory``; returns the manifest path."""
        from safetensors.numpy import save_file

        self._require_fitted("save")
        arrays: dict[str, np.ndarray] = {}
        scalars: dict[str, Any] = {}
        for name in self.fitted_attributes:
            value = getattr(self, name)
            if isinstance(value, np.ndarray) and value.dtype != object:
                arrays[name] = np.ascontiguousarray(value)
            elif isinstance(value, _SCALARS) or value is None:
                scalars[name] = value
            else:
                raise ConfigError(
                    f"{type(self).__name__}.{name}: cannot save a {type(value).__name__}; "
                    "store fitted state as numpy arrays or scalars"
                )
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        save_file(arrays, str(out / "state.safetensors"))
        manifest = {
            "format": "facetrec-component",
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "config": to_dict(self.config),
            "state": scalars,
            "versions": {"facetrec": __version__, "numpy": np.__version__},
        }
        path = out / "manifest.json"
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        """Load a component saved by :meth:`save`; the saved class must be ``cls`` or a subclass.

        A damaged or foreign directory is a :class:`ConfigError` (or DataError) naming the file.
        Arrays of :data:`MAP_MIN_BYTES` or more stay read-only memory maps of the file, so worker
        processes serving one bundle share them (overwrite a served bundle's files never: write a
        new directory, as ``facetrec retrain`` does)."""
        from facetrec.arrays import map_safetensors

        root = Path(directory)
        saved, manifest = check_saved(root, None if cls is Component else cls)
        if not issubclass(saved, cls):
            raise ConfigError(f"{root}: holds a {manifest['class']}, not a {cls.__module__}.{cls.__qualname__}")
        component = saved(from_dict(saved.config_class, manifest["config"], f"{root}/manifest.json config"))
        arrays = map_safetensors(root / "state.safetensors")
        arrays = {key: a if a.nbytes >= MAP_MIN_BYTES else np.array(a) for key, a in arrays.items()}
        for name, value in {**manifest["state"], **arrays}.items():
            setattr(component, name, value)
        return component


def check_saved(root: Path, expected: type[Component] | None = None) -> tuple[type[Component], dict[str, Any]]:
    """(class, manifest) of the component saved in ``root``, checked without loading its arrays:
    the manifest parses, its class is known (:func:`known_class`; ``expected`` is accepted too),
    and the state in the manifest and in ``state.safetensors`` (whose header must match its size)
    holds only fitted attributes the class declares."""
    from facetrec.arrays import map_safetensors

    manifest = _read_manifest(root)
    name, config, state = manifest.get("class"), manifest.get("config"), manifest.get("state")
    if not isinstance(name, str) or not isinstance(config, dict) or not isinstance(state, dict):
        raise ConfigError(f"{root}/manifest.json: 'class' must be a string, 'config' and 'state' objects")
    saved = known_class(name, root, expected)
    arrays = root / "state.safetensors"
    if not arrays.is_file():
        raise ConfigError(f"{arrays}: missing; the component was not saved completely")
    for where, names in ((f"{root}/manifest.json", state), (str(arrays), map_safetensors(arrays))):
        _check_state(saved, names, where)
    for key, value in state.items():
        if not (isinstance(value, _SCALARS) or value is None):
            raise ConfigError(f"{root}/manifest.json: state {key!r} must be a number, string, boolean or null")
    return saved, manifest


def known_class(name: str, root: Path, expected: type[Component] | None = None) -> type[Component]:
    """The Component class a manifest names, found among the registered models
    (scoring/registry.py, including those registered at run time or by entry point), facetrec's
    own components (:data:`OWN_COMPONENTS`) and ``expected``. Only a known class's own module is
    imported: a manifest naming anything else is refused before any import."""
    from facetrec.scoring.registry import SCORERS

    if expected is not None and name == f"{expected.__module__}.{expected.__qualname__}":
        return expected
    known = {path.replace(":", "."): path for path in (*SCORERS.values(), *OWN_COMPONENTS)}
    if name not in known:
        raise ConfigError(
            f"{root}/manifest.json: class {name!r} is not a registered facetrec model or component; "
            "register it (facetrec.scoring.registry.register) before loading"
        )
    module, _, qualname = known[name].partition(":")
    found: Any = importlib.import_module(module)
    try:
        for part in qualname.split("."):
            found = getattr(found, part)
    except AttributeError:
        raise ConfigError(f"{root}: the saved class {name} cannot be found in {module}") from None
    if not (isinstance(found, type) and issubclass(found, Component)):
        raise ConfigError(f"{root}: {name} is not a facetrec Component")
    return found


def declared_state(cls: type) -> frozenset[str]:
    """The fitted attributes ``cls`` declares: public ``name_`` attributes that it or a base
    class annotates or that their methods use. Read from the classes' code, so a model declares
    its state by setting it in ``fit``, as the contract asks, without a second list to keep."""
    names: set[str] = set()
    for klass in cls.__mro__:
        names.update(inspect.get_annotations(klass))
        for member in vars(klass).values():
            for code in _codes(member):
                names.update(code.co_names)
    return frozenset(n for n in names if n.endswith("_") and not n.startswith("_") and not hasattr(cls, n))


def _codes(member: Any) -> Iterator[types.CodeType]:
    """The code objects of a class member (function, static/class method, property), nested ones included."""
    if isinstance(member, property):
        functions = [member.fget, member.fset, member.fdel]
    else:
        functions = [getattr(member, "__func__", member)]
    stack = [f.__code__ for f in functions if isinstance(f, types.FunctionType)]
    while stack:
        code = stack.pop()
        yield code
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))


def _check_state(cls: type, names: Any, where: str) -> None:
    unknown = sorted(set(names) - declared_state(cls))
    if unknown:
        raise ConfigError(f"{where}: state {', '.join(map(repr, unknown))} is not declared by {cls.__qualname__}")


def read_json(path: Path) -> Any:
    """The JSON document at ``path``, or a ConfigError naming the file (a truncated or foreign file)."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not valid JSON: {exc}"
        raise ConfigError(f"{path}: cannot be read ({reason})") from None


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / "manifest.json"
    if not path.is_file():
        raise ConfigError(f"{root}: no manifest.json; is this a directory written by .save()?")
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != "facetrec-component":
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ConfigError(f"{path}: not a saved facetrec component (format {found!r})")
    versions = manifest.get("versions")
    saved_version = versions.get("facetrec") if isinstance(versions, dict) else None
    if saved_version != __version__:
        raise ConfigError(
            f"{path}: saved by facetrec {saved_version}, this is facetrec {__version__}; "
            "re-train and save it with this version"
        )
    return manifest
