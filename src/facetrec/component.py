"""Component: the estimator contract every trainable stage follows, and its on-disk form.

The constructor only stores a typed config (no work, so a component is cheap to create and
to describe); ``fit`` returns ``self`` and sets public attributes ending in ``_``; using a
component before ``fit`` raises :class:`NotFittedError`. A saved component is a directory:
``manifest.json`` (class, config, versions, scalar state) plus ``state.safetensors`` (arrays).
No pickle, and nothing of the training data beyond the learned state.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np

from facetrec import __version__
from facetrec.config import from_dict, to_dict
from facetrec.errors import ConfigError, NotFittedError

C = TypeVar("C")
_SCALARS = (bool, int, float, str)


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
        """Load a component saved by :meth:`save`; the saved class must be ``cls`` or a subclass."""
        from safetensors.numpy import load_file

        root = Path(directory)
        manifest = _read_manifest(root)
        saved = _import_class(manifest["class"], root)
        if not issubclass(saved, cls):
            raise ConfigError(f"{root}: holds a {manifest['class']}, not a {cls.__module__}.{cls.__qualname__}")
        component = saved(from_dict(saved.config_class, manifest["config"], f"{root}/manifest.json config"))
        for name, value in {**manifest["state"], **load_file(str(root / "state.safetensors"))}.items():
            setattr(component, name, value)
        return component


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / "manifest.json"
    if not path.is_file():
        raise ConfigError(f"{root}: no manifest.json; is this a directory written by .save()?")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != "facetrec-component":
        raise ConfigError(f"{path}: not a saved facetrec component (format {manifest.get('format')!r})")
    saved_version = manifest.get("versions", {}).get("facetrec")
    if saved_version != __version__:
        raise ConfigError(
            f"{path}: saved by facetrec {saved_version}, this is facetrec {__version__}; "
            "re-train and save it with this version"
        )
    return manifest


def _import_class(path: str, root: Path) -> type[Component]:
    module_name, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        raise ConfigError(f"{root}: the saved class {path} cannot be imported here") from None
    if not (isinstance(found, type) and issubclass(found, Component)):
        raise ConfigError(f"{root}: {path} is not a facetrec Component")
    return found
