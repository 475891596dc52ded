"""Item text: one cleaned string per catalogue item, built from a template over its fields.

Encoders see whatever this module produces, so it owns three decisions: which fields go in and
how they are labelled (:class:`TextTemplate`, configurable per dataset), how scraped markup is
removed (:func:`clean_text`), and how long texts are cut (:func:`truncate_tokens`, by the
encoder's own tokens, so a model never silently drops the tail of a text we think it read).
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facetrec.errors import ConfigError
from facetrec.types import ItemCatalog

DEFAULT_TEMPLATE = "Title: {title} | Categories: {categories} | Tags: {tags} | Description: {description}"

_LIST_FIELDS = ("categories", "tags")
_ID_FIELD = "item_id"
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")

# Markup: comments and script/style blocks go with their content; any other tag leaves a space.
# A tag may be cut off by the scraper (Amazon 2018 titles hold a bare '<span class="..."'), so an
# unclosed tag ends at the end of the string or at the next '<'.
_BLOCKS = re.compile(r"<!--.*?(?:-->|$)|<(script|style)\b.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[A-Za-z!][^<>]*(?:>|$|(?=<))")
# C0/C1 control characters and zero-width/format characters; tabs and newlines are whitespace.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


@dataclass(frozen=True)
class TextTemplate:
    """How an item's fields become one string: ``{field}`` placeholders in segments.

    Segments are the pieces between ``separator``; a segment whose fields are all empty is dropped
    whole, so an item without tags never shows ``Tags:  |``. Fields are the catalogue's text fields,
    ``categories`` and ``tags`` (joined with ``list_separator``), numeric fields and ``item_id``.
    """

    template: str = DEFAULT_TEMPLATE
    """The template; placeholders are bare field names (no format specs or conversions)."""
    separator: str = " | "
    """Splits the template into segments and joins the kept ones."""
    list_separator: str = ", "
    """Joins the values of list fields (categories, tags)."""
    optional: tuple[str, ...] = ("title", "description", "brand", "price")
    """Fields read as empty when a catalogue lacks them, so one template serves datasets with and
    without them (MovieLens has no descriptions); any other unknown field is an error (a typo)."""

    def __post_init__(self) -> None:
        if not self.separator:
            raise ConfigError("TextTemplate.separator: must not be empty")
        fields = self.fields  # parses, so a malformed template fails here rather than at use
        if not fields:
            raise ConfigError(
                f"TextTemplate.template: names no field; add placeholders such as {{title}}, got {self.template!r}"
            )

    @property
    def segments(self) -> list[list[tuple[str, str | None]]]:
        """Each segment as (literal text, field name or None) pairs, in order."""
        return [_parse_segment(seg, self.template) for seg in self.template.split(self.separator)]

    @property
    def fields(self) -> list[str]:
        """Field names the template uses, in first-use order."""
        names = (name for seg in self.segments for _, name in seg if name is not None)
        return list(dict.fromkeys(names))


def _parse_segment(segment: str, template: str) -> list[tuple[str, str | None]]:
    try:
        parts = list(string.Formatter().parse(segment))
    except ValueError as exc:
        raise ConfigError(
            f"TextTemplate.template: {exc} in {template!r} (write literal braces as {{{{ and }}}})"
        ) from None
    out: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parts:
        if name is not None and (spec or conversion or not _FIELD_NAME.match(name)):
            raise ConfigError(
                f"TextTemplate.template: placeholder {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} must be a bare field name such as {{title}}"
            )
        out.append((literal, name))
    return out


def _preset(template: str) -> TextTemplate:
    """A bundled template: every field optional, as a source's files may lack any of them."""
    return TextTemplate(template, optional=tuple(TextTemplate(template).fields))


TEMPLATES: dict[str, TextTemplate] = {
    "default": TextTemplate(),
    "amazon": _preset(
        "Title: {title} | Brand: {brand} | Categories: {categories} | Features: {features} | Description: {description}"
    ),
    "goodbooks": _preset("Title: {title} | Authors: {authors} | Tags: {tags}"),
    "ml": _preset("Title: {title} | Genres: {categories} | Tags: {tags}"),
    "mind": _preset("Title: {title} | Categories: {categories} | Abstract: {description}"),
}
"""Templates for the bundled sources, keyed by the start of a dataset's name (``ml-100k`` -> ``ml``)."""


def template_for(dataset_name: str) -> TextTemplate:
    """The preset template whose key starts ``dataset_name`` (e.g. ``amazon-2018-Gift_Cards``), else the default."""
    family = dataset_name.split("-", 1)[0].lower()
    return TEMPLATES.get(family, TEMPLATES["default"])


def available_fields(catalog: ItemCatalog) -> list[str]:
    """Field names ``catalog`` offers a template."""
    return [*catalog.text, *_LIST_FIELDS, *catalog.numeric, _ID_FIELD]


def clean_text(texts: Iterable[str | None]) -> np.ndarray:
    """Texts without HTML tags, entities, control characters or runs of whitespace (None -> "").

    Tags are removed with a regex and entities decoded with :func:`html.unescape` rather than
    :class:`html.parser.HTMLParser`: the parser's treatment of the truncated tags in scraped data
    differs between Python versions, and it is several times slower. A plain loop of C-level
    string methods beats pandas' regex ``str.replace`` here by about 5x. Returns an object array.
    """
    out = []
    for text in texts:
        text = text if isinstance(text, str) else ""
        if "<" in text or "&" in text:
            text = html.unescape(_TAG.sub(" ", _BLOCKS.sub(" ", text)))
        out.append(_collapse(text))
    return np.asarray(out, dtype=object) if out else np.empty(0, dtype=object)


def _collapse(text: str) -> str:
    """Drop control and zero-width characters; collapse whitespace runs (Unicode) to one space."""
    if not text.isprintable():  # a fast C check: only then is the regex needed
        text = _CONTROL.sub("", text)
    return " ".join(text.split())


def _field_column(catalog: ItemCatalog, name: str, list_separator: str, optional: tuple[str, ...]) -> np.ndarray:
    """One field as a cleaned object array of str, "" where the item has no value."""
    if name in _LIST_FIELDS:
        values = getattr(catalog, name)
        cleaned = clean_text([s for v in values for s in v])  # one vectorised pass over all values
        ends = np.cumsum([len(v) for v in values])
        starts = ends - np.asarray([len(v) for v in values], dtype=np.int64)
        joined = [list_separator.join(s for s in cleaned[a:b] if s) for a, b in zip(starts, ends, strict=True)]
        return np.asarray(joined, dtype=object)
    if name in catalog.text:
        return clean_text(catalog.text[name])
    if name in catalog.numeric:
        numbers = catalog.numeric[name]
        return np.asarray(["" if np.isnan(x) else f"{x:g}" for x in numbers], dtype=object)
    if name == _ID_FIELD:
        return catalog.items.ids.astype(object)
    if name in optional:
        return np.full(len(catalog), "", dtype=object)
    raise ConfigError(f"TextTemplate: field {name!r} is not in the catalogue; available: {available_fields(catalog)}")


def render(catalog: ItemCatalog, template: TextTemplate) -> np.ndarray:
    """The template filled for every item (object array aligned with ``catalog.items``), untruncated."""
    unknown = [f for f in template.fields if f not in available_fields(catalog) and f not in template.optional]
    if unknown:
        raise ConfigError(
            f"TextTemplate: unknown field {unknown[0]!r} in {template.template!r}; "
            f"this catalogue has: {', '.join(available_fields(catalog))}"
        )
    n = len(catalog)
    columns = {
        name: _field_column(catalog, name, template.list_separator, template.optional) for name in template.fields
    }
    rendered: list[np.ndarray] = []
    for segment in template.segments:
        text = np.full(n, "", dtype=object)
        present = np.zeros(n, dtype=bool)
        has_field = False
        for literal, name in segment:
            text = text + literal
            if name is not None:
                has_field = True
                text = text + columns[name]
                present |= columns[name] != ""
        if has_field:
            text = np.where(present, text, "")
        rendered.append(text)
    joined = [
        template.separator.join(s for s in (part.strip() for part in row) if s) for row in zip(*rendered, strict=True)
    ]
    # Fields are clean already: only tidy the joins (decoding entities twice would be wrong).
    return np.asarray([_collapse(t) for t in joined], dtype=object)


def truncate_tokens(texts: Sequence[str], tokenizer: Any, max_tokens: int, *, special_tokens: bool = True) -> list[str]:
    """Cut each text to at most ``max_tokens`` tokens of ``tokenizer`` (a fast Hugging Face tokenizer).

    With ``special_tokens`` the budget includes the tokens the tokenizer adds ([CLS], [SEP]), so
    ``len(tokenizer(t)["input_ids"]) <= max_tokens`` for every result: set it to the model's
    maximum sequence length. Texts are cut at a token's end offset in the original string and
    re-tokenised to confirm the budget (a cut can change how the last word splits); texts that fit
    are returned unchanged.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"truncate_tokens: needs a fast tokenizer (with offset mappings), got {type(tokenizer).__name__}; "
            "load it with AutoTokenizer.from_pretrained(path, use_fast=True)"
        )
    reserved = tokenizer.num_special_tokens_to_add(pair=False) if special_tokens else 0
    budget = max_tokens - reserved
    if budget < 1:
        raise ConfigError(f"truncate_tokens: max_tokens={max_tokens} leaves no room beside {reserved} special tokens")
    out = [str(t) for t in texts]
    # Only a prefix needs tokenising: ~4 characters make a token in English, so budget*8 characters
    # almost surely hold more than `budget` tokens; when they do not, the whole text is tokenised.
    window = max(8 * budget, 256)
    pending = [i for i, t in enumerate(out) if len(t.encode()) + len(t.split()) > budget]  # others surely fit
    first = True
    while pending:  # every pass strictly shortens each text still over budget, so this ends
        over: list[int] = []
        for start in range(0, len(pending), 1024):
            batch = pending[start : start + 1024]
            heads = [out[i][:window] for i in batch]
            encoded = tokenizer(heads, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            short = [
                k for k, offsets in enumerate(encoded) if len(offsets) <= budget and len(heads[k]) < len(out[batch[k]])
            ]
            if short:  # the prefix fits but the text is longer: tokenise those texts whole
                whole = tokenizer([out[batch[k]] for k in short], add_special_tokens=False, return_offsets_mapping=True)
                for k, offsets in zip(short, whole["offset_mapping"], strict=True):
                    encoded[k] = offsets
            for i, offsets in zip(batch, encoded, strict=True):
                if len(offsets) <= budget:
                    continue
                # First cut after the last token that fits; if re-tokenising still overflows, cut before it.
                token_start, token_end = offsets[budget - 1]
                end = min(token_end if first else token_start, len(out[i]) - 1)
                out[i] = out[i][:end].rstrip()
                over.append(i)
        pending, first = over, False
    return out


def load_tokenizer(path: str | Path) -> Any:
    """A fast tokenizer from a local directory; never downloads."""
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise ConfigError(f"tokenizer: {path} is not a directory; pass the local folder holding tokenizer.json")
    return AutoTokenizer.from_pretrained(str(path), use_fast=True, local_files_only=True)


def item_texts(
    catalog: ItemCatalog,
    template: TextTemplate | None = None,
    *,
    tokenizer: Any = None,
    max_tokens: int | None = None,
) -> list[str]:
    """One cleaned text per item, aligned with ``catalog.items``, optionally cut to ``max_tokens``.

    ``tokenizer`` is a fast Hugging Face tokenizer or a local path to one; truncation needs both it
    and ``max_tokens`` (the budget counts the tokenizer's special tokens, see :func:`truncate_tokens`).
    """
    texts = render(catalog, template if template is not None else TextTemplate())
    if max_tokens is None:
        return list(texts)
    if tokenizer is None:
        raise ConfigError("item_texts: max_tokens needs a tokenizer (the encoder's, or a local path to it)")
    if isinstance(tokenizer, str | Path):
        tokenizer = load_tokenizer(tokenizer)
    return truncate_tokens(list(texts), tokenizer, max_tokens)
