"""Public datasets by name: where each is published, which files it needs, and its reader.

``load_source("ml-100k", path)`` reads the files exactly as the publisher ships them (unzipped)
into a :class:`~facetrec.data.dataset.Dataset`; :func:`facetrec.data.sources.fetch.fetch`
downloads and verifies them. Every reader goes through :func:`facetrec.data.ingest.build_dataset`,
so validation, de-duplication and notes are the same as for a user's own files. Sources without
published files (the sequence files and features of research code) are read from a local folder only.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from facetrec.data.dataset import Dataset
from facetrec.data.sources import _common, amazon, goodbooks, mind, movielens, sequences, tiktok
from facetrec.errors import DataError

__all__ = ["SOURCES", "RemoteFile", "Source", "find_root", "get_source", "load_source"]


@dataclass(frozen=True)
class RemoteFile:
    """One published file. ``url`` and ``name`` may hold ``{option}`` placeholders (e.g. ``{category}``)."""

    url: str
    name: str
    """Local file name in the source's cache folder."""
    sha256: str | None = None
    md5: str | None = None
    """Published checksums; both None means none is known and fetch needs ``verify=False``."""
    size: int | None = None
    """Size in bytes when known (used for progress only, never to accept a file)."""
    extract_to: str | None = None
    """For a zip: the folder (relative to the cache folder, "" for itself) to unpack into; None: keep as is."""

    @property
    def checksum(self) -> tuple[str, str] | None:
        """(algorithm, hex digest) to verify against, sha256 preferred; None when unknown."""
        if self.sha256:
            return ("sha256", self.sha256.lower())
        return ("md5", self.md5.lower()) if self.md5 else None


@dataclass(frozen=True)
class Source:
    """A public dataset: its reader, its published files and the local files the reader needs."""

    name: str
    description: str
    load: Callable[..., Dataset]
    """``load(path, **options) -> Dataset``; options are the reader's keyword arguments."""
    files: tuple[RemoteFile, ...]
    """Empty for a source that is not published as files to download: it is read with --path only."""
    layout: _common.Layout
    """Required local files: per file, the accepted relative paths (may hold ``{option}`` placeholders)."""
    homepage: str
    terms: str
    """Licence or terms of use, in a sentence."""
    subfolders: bool = True
    """Whether :func:`find_root` may pick a sub-folder (an unzipped archive's top folder); MIND names its
    split folders in ``layout`` instead, so that a dev folder is never taken for the train split."""

    def option_names(self) -> tuple[str, ...]:
        """The options ``load`` accepts: its keyword arguments other than ``path`` and those the
        registry fixes with :func:`functools.partial` (ml-latest-small's ``name``)."""
        fixed = getattr(self.load, "keywords", {})
        return tuple(p for p in inspect.signature(self.load).parameters if p != "path" and p not in fixed)

    def defaults(self) -> dict[str, Any]:
        """The readers' default option values."""
        parameters = inspect.signature(self.load).parameters
        return {k: p.default for k, p in parameters.items() if p.default is not inspect.Parameter.empty}

    def check_options(self, options: dict[str, Any]) -> None:
        """A DataError naming any option the reader does not accept, and listing those it does."""
        unknown = sorted(set(options) - set(self.option_names()))
        if unknown:
            raise DataError(
                f"{self.name}: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(self.option_names())}"
            )

    def expected(self, **options: Any) -> _common.Layout:
        """The layout with placeholders filled from ``options`` (globs where an option is not given)."""
        values = {**self.defaults(), **options}
        return tuple(tuple(_common.fill(p, values) for p in group) for group in self.layout)

    def missing(self, path: Path, **options: Any) -> list[str]:
        """Required files that ``path`` lacks (empty when it can be loaded)."""
        return _common.missing(Path(path), self.expected(**options))

    def remote_files(self, **options: Any) -> tuple[RemoteFile, ...]:
        """The published files with placeholders filled; a DataError names an option that is needed."""
        values = {**self.defaults(), **options}
        out = []
        for remote in self.files:
            url, name = _common.fill(remote.url, values), _common.fill(remote.name, values)
            if "*" in url or "*" in name:
                needed = [k for k in self.option_names() if "{" + k + "}" in remote.url + remote.name]
                raise DataError(
                    f"{self.name}: downloading needs the option(s) {', '.join(needed)} (e.g. category='Gift_Cards')"
                )
            out.append(replace(remote, url=url, name=name))
        return tuple(out)


_GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
_GROUPLENS_TERMS = (
    "Research use; no redistribution or commercial use without GroupLens' permission; cite Harper & Konstan 2015."
)
_AMAZON_2018 = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/"
_AMAZON_2023 = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/"
_MIND = "https://mind201910small.blob.core.windows.net/release/"

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "ml-100k",
            "MovieLens 100K: 100,000 ratings (1-5) by 943 users on 1,682 movies, 1997-98; titles, "
            "genres, release dates.",
            movielens.load_ml_100k,
            (
                RemoteFile(
                    _GROUPLENS + "ml-100k.zip",
                    "ml-100k.zip",
                    md5="0e33842e24a9c977be4e0107933c0723",
                    size=4_924_029,
                    extract_to="",
                ),
            ),
            movielens.ML_100K_LAYOUT,
            movielens.HOMEPAGE,
            _GROUPLENS_TERMS,
        ),
        Source(
            "ml-1m",
            "MovieLens 1M: 1,000,209 ratings (1-5) by 6,040 users on 3,706 movies; titles and genres.",
            movielens.load_ml_1m,
            (RemoteFile(_GROUPLENS + "ml-1m.zip", "ml-1m.zip", md5="c4d9eecfca2ab87c1945afe126590906", extract_to=""),),
            movielens.ML_1M_LAYOUT,
            movielens.HOMEPAGE,
            _GROUPLENS_TERMS,
        ),
        Source(
            "ml-1m-sasrec",
            "MovieLens 1M as SASRec's ml-1m.txt: 999,611 ordered events (no ratings or times) of 6,040 users "
            "on the 3,416 movies with 5+ ratings, in SASRec's ids; titles and genres through sasrec/item_map.csv.",
            movielens.load_ml_1m_sasrec,
            (),
            movielens.ML_1M_SASREC_LAYOUT,
            movielens.SASREC_HOMEPAGE,
            _GROUPLENS_TERMS,
        ),
        Source(
            "ml-1m-sequences",
            "MovieLens 1M, all 1,000,209 ratings as ordered events (sequences.csv.gz: user_id,item_id,position; "
            "no ratings or times) with movies.dat titles and genres.",
            movielens.load_ml_1m_sequences,
            (),
            movielens.ML_1M_SEQUENCES_LAYOUT,
            movielens.HOMEPAGE,
            _GROUPLENS_TERMS,
        ),
        Source(
            "ml-latest-small",
            "MovieLens latest-small: about 100,000 half-star ratings by 610 users on 9,742 movies, "
            "with user tags. GroupLens updates it in place, so no checksum is fixed.",
            functools.partial(movielens.load_ml_csv, name="ml-latest-small"),
            (RemoteFile(_GROUPLENS + "ml-latest-small.zip", "ml-latest-small.zip", extract_to=""),),
            movielens.ML_CSV_LAYOUT,
            movielens.HOMEPAGE,
            _GROUPLENS_TERMS,
        ),
        Source(
            "ml-25m",
            "MovieLens 25M: 25,000,095 half-star ratings by 162,541 users on 62,423 movies, with user tags.",
            functools.partial(movielens.load_ml_csv, name="ml-25m"),
            (
                RemoteFile(
                    _GROUPLENS + "ml-25m.zip",
                    "ml-25m.zip",
                    md5="6b51fb2759a8657d3bfcbfc42b592ada",
                    size=261_978_986,
                    extract_to="",
                ),
            ),
            movielens.ML_CSV_LAYOUT,
            movielens.HOMEPAGE,
            _GROUPLENS_TERMS,
        ),
        Source(
            "amazon-2018",
            "Amazon Review Data (2018), one category (option category, e.g. 'Gift_Cards'): 5-core "
            "reviews with text, rating and time, and product metadata. No checksums are published.",
            amazon.load_amazon_2018,
            (
                RemoteFile(_AMAZON_2018 + "categoryFilesSmall/{category}_5.json.gz", "{category}_5.json.gz"),
                RemoteFile(_AMAZON_2018 + "metaFiles2/meta_{category}.json.gz", "meta_{category}.json.gz"),
            ),
            amazon.LAYOUT_2018,
            amazon.HOMEPAGE_2018,
            "Research use (no formal licence); cite Ni, Li & McAuley, EMNLP 2019.",
        ),
        Source(
            "amazon-2023",
            "Amazon Reviews 2023, one category (option category, e.g. 'All_Beauty'): reviews with "
            "text, rating and time (items are parent_asin) and product metadata. No checksums are published.",
            amazon.load_amazon_2023,
            (
                RemoteFile(_AMAZON_2023 + "review_categories/{category}.jsonl.gz", "{category}.jsonl.gz"),
                RemoteFile(_AMAZON_2023 + "meta_categories/meta_{category}.jsonl.gz", "meta_{category}.jsonl.gz"),
            ),
            amazon.LAYOUT_2023,
            amazon.HOMEPAGE_2023,
            "Research use; cite Hou et al. 2024 (Amazon Reviews 2023).",
        ),
        Source(
            "s3rec",
            "S3-Rec's sequence files (option name: Beauty, Sports_and_Outdoors, Yelp, ...): ordered events "
            "without times, item attributes as categories (names for Beauty with beauty_items.csv).",
            sequences.load_s3rec,
            (),
            sequences.S3REC_LAYOUT,
            sequences.S3REC_HOMEPAGE,
            "Amazon 2014 data: research use, cite McAuley et al.; Yelp data: Yelp Dataset Terms (non-commercial, "
            "no sharing).",
        ),
        Source(
            "mind-small",
            "MIND small (Microsoft News): impressions (clicks and views) of 50,000 users on news "
            "articles with title, abstract, category and entities. Option split: 'train' or 'dev'.",
            mind.load_mind,
            (
                RemoteFile(_MIND + "MINDsmall_train.zip", "MINDsmall_train.zip", extract_to="MINDsmall_train"),
                RemoteFile(_MIND + "MINDsmall_dev.zip", "MINDsmall_dev.zip", extract_to="MINDsmall_dev"),
            ),
            mind.LAYOUT,
            mind.HOMEPAGE,
            "Microsoft Research License Terms: non-commercial research use only.",
            subfolders=False,
        ),
        Source(
            "goodbooks-10k",
            "Goodbooks-10k: about 6 million ratings (1-5, no times: file order) by 53,424 users on "
            "10,000 books with authors, years, covers and Goodreads shelves as tags.",
            goodbooks.load_goodbooks_10k,
            (
                RemoteFile(
                    "https://github.com/zygmuntz/goodbooks-10k/releases/download/v1.0/goodbooks-10k.zip",
                    "goodbooks-10k.zip",
                    extract_to="",
                ),
            ),
            goodbooks.LAYOUT,
            goodbooks.HOMEPAGE,
            "CC BY-SA 4.0 (attribute; share derivatives alike).",
        ),
        Source(
            "tiktok-mm",
            "TikTok micro-videos as HKUDS ships them for MMSSL/DiffMM: 68,722 clicks of 9,308 users on 6,710 "
            "videos with 128-d image and audio vectors, no times; option split: train, valid, test or all.",
            tiktok.load_tiktok_mm,
            (),
            tiktok.LAYOUT,
            tiktok.HOMEPAGE,
            "Unknown: no licence is published; research use only, do not redistribute.",
        ),
    )
}


def get_source(name: str) -> Source:
    """The registered source called ``name``, or a DataError listing the valid names."""
    try:
        return SOURCES[name]
    except KeyError:
        raise DataError(f"unknown dataset source {name!r}; valid names: {', '.join(SOURCES)}") from None


def find_root(source: Source, path: Path, **options: Any) -> Path:
    """``path`` when it holds the source's files, else the sub-folder that does (an unzipped archive's folder).

    When several sub-folders qualify, the one named after the source or its archive wins; otherwise
    the choice is the user's, and the DataError lists them.
    """
    path = Path(path)
    layout = source.expected(**options)
    if path.is_dir() and not _common.missing(path, layout):
        return path
    if path.is_dir() and source.subfolders:
        matches = [c for c in sorted(path.iterdir()) if c.is_dir() and not _common.missing(c, layout)]
        names = {source.name, *(Path(f.name).stem for f in source.files)}
        preferred = [c for c in matches if c.name in names]
        if preferred or len(matches) == 1:
            return (preferred or matches)[0]
        if matches:
            raise DataError(
                f"{source.name}: several sub-folders of {path} hold its files "
                f"({', '.join(c.name for c in matches)}); pass the one to load"
            )
    absent = _common.missing(path, layout)
    where = f"{path} is not a directory" if not path.is_dir() else f"{path} lacks {', '.join(absent)}"
    nested = " (in the folder or one sub-folder)" if source.subfolders else ""
    values = {**source.defaults(), **options}
    archives = ", ".join(_common.fill(f.name, values) for f in source.files)
    get = (
        f"Download {archives} from {source.homepage}, unpack any zip, and pass that folder."
        if source.files
        else f"This source has no download: pass a folder holding these files (see {source.homepage})."
    )
    raise DataError(f"{source.name}: {where}; expected layout: {_common.describe(layout)}{nested}. {get}")


def load_source(name: str, path: Path, /, **options: Any) -> Dataset:
    """Read public dataset ``name`` from its unzipped files in ``path`` (or in one sub-folder of it).

    ``name`` and ``path`` are positional-only so that a reader may have options of those names (s3rec's ``name``).
    """
    source = get_source(name)
    source.check_options(options)
    return source.load(find_root(source, Path(path), **options), **options)
