"""Ingestion: formats, column mapping, time parsing, dedupe, k-core, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facetrec.data.ingest import IngestOptions, InteractionColumns, ItemColumns, build_dataset, load_files
from facetrec.errors import DataError, DataWarning
from facetrec.types import Event

EVENTS = """user,item,ts,kind,stars,text
u1,a,2024-01-01T00:00:00Z,view,,
u1,b,2024-01-02T00:00:00Z,rate,5,loved it
u2,a,2024-01-03T10:00:00+02:00,purchase,,
u1,a,2024-01-04T00:00:00Z,click,,
u2,c,2024-01-01T00:00:00Z,rate,1,never again
"""
ITEMS = """id,name,genres,price,released
a,Alpha,Action|Drama,9.5,2020-05-01
b,Beta,,,
c,Gamma,Comedy,3,1999-12-31
"""
COLUMNS = InteractionColumns(user="user", item="item", timestamp="ts", event="kind", rating="stars", review="text")
ITEM_COLUMNS = ItemColumns(item="id", title="name", categories="genres", price="price", created_at="released")


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_csv_with_mapping_builds_sorted_interactions_and_aligned_catalogue(tmp_path):
    data = load_files(
        write(tmp_path / "e.csv", EVENTS), write(tmp_path / "i.csv", ITEMS), columns=COLUMNS, item_columns=ITEM_COLUMNS
    )
    i, c = data.interactions, data.catalog
    assert list(i.users.ids) == ["u1", "u2"]
    assert list(c.items.ids) == ["a", "b", "c"]
    # user u1 in time order, then u2 in time order (u2's c event is earliest)
    assert list(i.items.ids[i.item_idx]) == ["a", "b", "a", "c", "a"]
    assert i.timestamp[2] == pd.Timestamp("2024-01-04", tz="UTC").timestamp()
    assert i.timestamp[4] == pd.Timestamp("2024-01-03T08:00:00Z").timestamp()  # +02:00 converted to UTC
    assert list(i.event) == [Event.VIEW, Event.RATE, Event.CLICK, Event.RATE, Event.PURCHASE]
    np.testing.assert_array_equal(i.rating, [np.nan, 5, np.nan, 1, np.nan])
    assert list(i.review) == [None, "loved it", None, "never again", None]
    assert c.text["title"].tolist() == ["Alpha", "Beta", "Gamma"]
    assert c.categories.tolist() == [("Action", "Drama"), (), ("Comedy",)]
    np.testing.assert_array_equal(c.numeric["price"], [9.5, np.nan, 3.0])
    assert c.created_at[0] == pd.Timestamp("2020-05-01", tz="UTC").timestamp()
    assert np.isnan(c.created_at[1])
    assert data.notes == ()


@pytest.mark.parametrize("suffix", ["jsonl", "jsonl.gz", "parquet", "tsv", "csv.gz"])
def test_every_format_reads_the_same(tmp_path, suffix):
    frame = pd.read_csv(pd.io.common.StringIO(EVENTS), dtype=str)
    path = tmp_path / f"events.{suffix}"
    if suffix.startswith("jsonl"):
        lines = "\n".join(
            json.dumps({k: v for k, v in row.items() if isinstance(v, str)}) for row in frame.to_dict("records")
        )
        write(path, lines + "\n")
    elif suffix == "parquet":
        frame.to_parquet(path)
    elif suffix == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    else:
        write(path, EVENTS)
    data = load_files(path, columns=COLUMNS).interactions
    assert len(data) == 5
    assert list(data.items.ids[data.item_idx]) == ["a", "b", "a", "c", "a"]
    assert np.nansum(data.rating) == 6


def test_epoch_milliseconds_are_detected_and_seconds_kept(tmp_path):
    csv = "user_id,item_id,timestamp\nu,a,1700000000000\nu,b,1700000001000\n"
    data = load_files(write(tmp_path / "ms.csv", csv)).interactions
    assert data.timestamp.tolist() == [1_700_000_000, 1_700_000_001]
    seconds = load_files(write(tmp_path / "s.csv", csv.replace("000,", ",").replace("000\n", "\n"))).interactions
    assert seconds.timestamp.tolist() == [1_700_000_000, 1_700_000_001]


def test_ties_keep_file_order(tmp_path):
    csv = "user_id,item_id,timestamp\nu,z,5\nu,y,5\nu,x,5\nu,w,1\n"
    data = load_files(write(tmp_path / "t.csv", csv)).interactions
    assert list(data.items.ids[data.item_idx]) == ["w", "z", "y", "x"]


def test_exact_duplicates_are_dropped_and_reported(tmp_path):
    csv = "user_id,item_id,timestamp\nu,a,1\nu,a,1\nu,a,2\nv,a,1\n"
    data = load_files(write(tmp_path / "d.csv", csv))
    assert len(data.interactions) == 3
    assert any("dropped 1 exact duplicate" in n for n in data.notes)


def test_k_core_filters_iteratively_and_reports(tmp_path):
    rows = ["user_id,item_id,timestamp"]
    rows += [f"u{u},i{i},{u * 10 + i}" for u in range(4) for i in range(4)]  # dense 4x4 block
    rows += ["lonely,i0,1", "lonely,rare,2", "u0,rare,3"]  # 'rare' has 2 events, 'lonely' 2
    data = load_files(
        write(tmp_path / "k.csv", "\n".join(rows) + "\n"),
        options=IngestOptions(min_user_interactions=3, min_item_interactions=3),
    )
    assert sorted(data.interactions.users.ids) == ["u0", "u1", "u2", "u3"]
    assert sorted(data.interactions.items.ids) == ["i0", "i1", "i2", "i3"]
    assert len(data.interactions) == 16
    assert any("k-core" in n and "dropped 3 interactions" in n for n in data.notes)


def test_no_timestamp_uses_file_order_and_says_so(tmp_path):
    data = load_files(write(tmp_path / "n.csv", "user_id,item_id\nu,b\nu,a\n"))
    assert list(data.interactions.items.ids[data.interactions.item_idx]) == ["b", "a"]
    assert any("file order" in n for n in data.notes)


def test_event_map_translates_raw_values(tmp_path):
    csv = "user_id,item_id,timestamp,e\nu,a,1,1\nu,b,2,0\n"
    data = load_files(
        write(tmp_path / "m.csv", csv),
        columns=InteractionColumns(event="e"),
        options=IngestOptions(event_map={"1": "click", "0": "view"}),
    )
    assert list(data.interactions.event) == [Event.CLICK, Event.VIEW]


def test_ids_are_strings_and_leading_zeros_survive(tmp_path):
    data = load_files(write(tmp_path / "z.csv", "user_id,item_id,timestamp\n007,01,1\n7,1,2\n"))
    assert list(data.interactions.users.ids) == ["007", "7"]
    assert list(data.interactions.items.ids) == ["01", "1"]


# ---- bad input: each error names the problem, the column and the row -------------------------


@pytest.mark.parametrize(
    ("csv", "columns", "options", "expected"),
    [
        (
            "usr,item_id,timestamp\nu,a,1\n",
            InteractionColumns(),
            IngestOptions(),
            ["missing column 'user_id'", "field 'user'", "usr", "--map user=COLUMN"],
        ),
        (
            "user_id,item_id,timestamp\nu,a,1\nu,b,yesterday\n",
            InteractionColumns(),
            IngestOptions(),
            ["column 'timestamp'", "1 unparseable timestamps", "row 2", "'yesterday'"],
        ),
        (
            "user_id,item_id,timestamp\nu,a,1\n,b,2\nu,c,3\n",
            InteractionColumns(),
            IngestOptions(),
            ["column 'user_id'", "1 empty or missing ids", "row 2"],
        ),
        (
            "user_id,item_id,timestamp\nu,a,1\nu,NaN,2\n",
            InteractionColumns(),
            IngestOptions(),
            ["column 'item_id'", "empty or missing ids", "row 2"],
        ),
        (
            "user_id,item_id,timestamp,r\nu,a,1,4\nu,b,2,7\nu,c,3,0\n",
            InteractionColumns(rating="r"),
            IngestOptions(rating_range=(1, 5)),
            ["column 'r'", "2 ratings outside the declared range [1, 5]", "row 2: 7"],
        ),
        (
            "user_id,item_id,timestamp,r\nu,a,1,five\n",
            InteractionColumns(rating="r"),
            IngestOptions(),
            ["column 'r'", "not finite numbers", "row 1: 'five'"],
        ),
        (
            "user_id,item_id,timestamp,e\nu,a,1,like\n",
            InteractionColumns(event="e"),
            IngestOptions(),
            ["column 'e'", "unknown event types", "'like'", "click, view"],
        ),
        (
            "user_id,item_id,timestamp\nu,a,\n",
            InteractionColumns(),
            IngestOptions(),
            ["column 'timestamp'", "empty timestamps", "row 1"],
        ),
        (
            "user_id,item_id,rated_at\nu,a,1\n",
            InteractionColumns(timestamp="when"),
            IngestOptions(),
            ["missing column 'when'", "field 'timestamp'"],
        ),
    ],
)
def test_bad_input_gets_a_clear_data_error(tmp_path, csv, columns, options, expected):
    path = write(tmp_path / "bad.csv", csv)
    with pytest.raises(DataError) as info:
        load_files(path, columns=columns, options=options)
    message = str(info.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message


def test_empty_file_and_header_only_file(tmp_path):
    with pytest.raises(DataError, match="the file is empty"):
        load_files(write(tmp_path / "empty.csv", ""))
    with pytest.raises(DataError, match="header but no data rows"):
        load_files(write(tmp_path / "header.csv", "user_id,item_id,timestamp\n"))


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_files(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="cannot tell the format"):
        load_files(write(tmp_path / "data.xlsx", "x"))


def test_malformed_jsonl_is_a_data_error(tmp_path):
    path = write(tmp_path / "broken.jsonl", '{"user_id": "u", "item_id": "a", "timestamp": 1}\n{"user_id": \n')
    with pytest.raises(DataError, match=r"broken.jsonl: could not be read as jsonl"):
        load_files(path)


def test_catalogue_missing_items_warns_counts_and_keeps_interactions(tmp_path):
    events = write(tmp_path / "e.csv", "user_id,item_id,timestamp\nu,a,1\nu,ghost,2\nv,ghost2,3\n")
    items = write(tmp_path / "i.csv", "item_id,title\na,Alpha\nunused,Never seen\n")
    with pytest.warns(DataWarning, match="2 items in the interactions are missing from the catalogue"):
        data = load_files(events, items, item_columns=ItemColumns(title="title"))
    assert len(data.interactions) == 3
    assert list(data.catalog.items.ids) == ["a", "unused", "ghost", "ghost2"]
    assert data.catalog.text["title"].tolist() == ["Alpha", "Never seen", "", ""]
    assert any("missing from the catalogue" in n for n in data.notes)


def test_repeated_catalogue_rows_keep_the_first_and_are_reported(tmp_path):
    events = write(tmp_path / "e.csv", "user_id,item_id,timestamp\nu,a,1\n")
    items = write(tmp_path / "i.csv", "item_id,title\na,First\na,Second\n")
    data = load_files(events, items, item_columns=ItemColumns(title="title"))
    assert data.catalog.text["title"].tolist() == ["First"]
    assert any("1 repeated catalogue rows" in n for n in data.notes)


def test_build_dataset_from_frames_matches_files(tmp_path):
    frame = pd.DataFrame({"user_id": [1, 2, 1], "item_id": [10, 10, 11], "timestamp": [3, 2, 1]})
    data = build_dataset(frame, name="frames")
    assert list(data.interactions.users.ids) == ["1", "2"]
    assert list(data.interactions.items.ids[data.interactions.item_idx]) == ["11", "10", "10"]


def test_invalid_options_are_rejected():
    with pytest.raises(DataError, match="timestamp_unit"):
        IngestOptions(timestamp_unit="minutes")
    with pytest.raises(DataError, match="rating_range"):
        IngestOptions(rating_range=(5, 1))
    with pytest.raises(DataError, match="unknown event type 'like'"):
        IngestOptions(event_map={"1": "like"})


def test_different_reviews_at_the_same_time_are_not_duplicates(tmp_path):
    csv = "user_id,item_id,timestamp,text\nu,a,1,great\nu,a,1,great\nu,a,1,broke after a week\n"
    data = load_files(write(tmp_path / "r.csv", csv), columns=InteractionColumns(review="text"))
    assert list(data.interactions.review) == ["great", "broke after a week"]


def test_negative_epoch_seconds_are_not_mistaken_for_milliseconds(tmp_path):
    events = write(tmp_path / "e.csv", "user_id,item_id,timestamp\nu,a,1\n")
    items = write(tmp_path / "i.csv", "item_id,born\na,-117000000000\n")  # about 1750 BC, in seconds
    data = load_files(events, items, item_columns=ItemColumns(created_at="born"))
    assert data.catalog.created_at[0] == -117_000_000_000


# ---- dates, encodings, and a full account of what was dropped -----------------------------------


def test_ambiguous_slash_dates_are_refused_with_the_column_and_an_example(tmp_path):
    path = write(tmp_path / "d.csv", "user_id,item_id,when\nu,a,03/04/2021\nu,b,05/04/2021\n")
    with pytest.raises(DataError) as info:
        load_files(path, columns=InteractionColumns(timestamp="when"))
    message = str(info.value)
    for fragment in (str(path), "column 'when'", "'03/04/2021'", "ambiguous", "--date-format", "%d/%m/%Y"):
        assert fragment in message


def test_a_day_above_12_suggests_the_day_first_format(tmp_path):
    path = write(tmp_path / "d.csv", "user_id,item_id,when\nu,a,03/04/2021\nu,b,25/04/2021\n")
    with pytest.raises(DataError, match=r"2 dates such as '03/04/2021'.*probably --date-format '%d/%m/%Y'"):
        load_files(path, columns=InteractionColumns(timestamp="when"))


def test_date_format_reads_day_first_and_month_first(tmp_path):
    path = write(tmp_path / "d.csv", "user_id,item_id,when\nu,a,03/04/2021\nu,b,05/04/2021\n")
    columns = InteractionColumns(timestamp="when")
    day_first = load_files(path, columns=columns, options=IngestOptions(date_format="%d/%m/%Y")).interactions
    month_first = load_files(path, columns=columns, options=IngestOptions(date_format="%m/%d/%Y")).interactions
    assert day_first.timestamp.tolist() == [
        pd.Timestamp("2021-04-03", tz="UTC").timestamp(),
        pd.Timestamp("2021-04-05", tz="UTC").timestamp(),
    ]
    assert month_first.timestamp.tolist() == [
        pd.Timestamp("2021-03-04", tz="UTC").timestamp(),
        pd.Timestamp("2021-05-04", tz="UTC").timestamp(),
    ]
    timed = write(tmp_path / "t.csv", "user_id,item_id,when\nu,a,03/04/2021 09:15\nu,b,05/04/2021\n")
    with pytest.raises(DataError, match=r"1 timestamps that do not match the date format '%d/%m/%Y %H:%M'.*row 2"):
        load_files(timed, columns=columns, options=IngestOptions(date_format="%d/%m/%Y %H:%M"))
    with pytest.raises(DataError, match="no % directive"):
        IngestOptions(date_format="dd/mm/yyyy")


def test_iso_dates_and_epoch_numbers_need_no_date_format(tmp_path):
    iso = write(tmp_path / "iso.csv", "user_id,item_id,timestamp\nu,a,2021-04-03\nu,b,2021/04/05 10:00\n")
    assert load_files(iso).interactions.timestamp[0] == pd.Timestamp("2021-04-03", tz="UTC").timestamp()
    epoch = write(tmp_path / "ms.csv", "user_id,item_id,timestamp\nu,a,1617408000000\n")
    assert load_files(epoch).interactions.timestamp.tolist() == [1_617_408_000]
    # a format meant for the catalogue's dates leaves epoch-second interactions alone
    items = write(tmp_path / "i.csv", "item_id,born\na,03/04/2021\n")
    data = load_files(
        write(tmp_path / "s.csv", "user_id,item_id,timestamp\nu,a,1617408000\n"),
        items,
        item_columns=ItemColumns(created_at="born"),
        options=IngestOptions(date_format="%d/%m/%Y"),
    )
    assert data.interactions.timestamp.tolist() == [1_617_408_000]
    assert data.catalog.created_at[0] == pd.Timestamp("2021-04-03", tz="UTC").timestamp()


def test_catalogue_dates_are_refused_too_when_ambiguous(tmp_path):
    events = write(tmp_path / "e.csv", "user_id,item_id,timestamp\nu,a,1\n")
    items = write(tmp_path / "i.csv", "item_id,born\na,03/04/2021\n")
    with pytest.raises(DataError, match=r"i.csv: column 'born' has 1 dates such as '03/04/2021'"):
        load_files(events, items, item_columns=ItemColumns(created_at="born"))


@pytest.mark.parametrize("suffix", ["csv", "csv.gz", "tsv", "jsonl"])
def test_latin1_file_fails_clearly_in_utf8_and_imports_with_its_encoding(tmp_path, suffix):
    if suffix == "jsonl":
        text = (
            '{"user_id": "u1", "item_id": "a", "timestamp": 1}\n{"user_id": "u2", "item_id": "café", "timestamp": 2}\n'
        )
    else:
        sep = "\t" if suffix == "tsv" else ","
        text = sep.join(["user_id", "item_id", "timestamp"]) + "\n" + f"u1{sep}a{sep}1\nu2{sep}café{sep}2\n"
    path = tmp_path / f"latin.{suffix}"
    raw = text.encode("latin-1")
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
    with pytest.raises(DataError) as info:
        load_files(path)
    message = str(info.value)
    offset = raw.index(b"\xe9")
    line = "line " + str(raw[:offset].count(b"\n") + 1)  # 3 with a header row, 2 in JSON Lines
    for fragment in (str(path), "not valid utf-8", "0xe9", f"byte offset {offset}", line, "--encoding latin-1"):
        assert fragment in message, message
    data = load_files(path, options=IngestOptions(encoding="latin-1")).interactions
    assert sorted(data.items.ids) == ["a", "café"]


def test_unknown_encoding_is_a_data_error():
    with pytest.raises(DataError, match="encoding 'utf-99' is not a known text encoding"):
        IngestOptions(encoding="utf-99")


def test_catalogue_items_without_interactions_stay_as_cold_items(tmp_path):
    events = write(tmp_path / "e.csv", "user_id,item_id,timestamp\nu,a,1\nu,b,2\nv,a,3\n")
    items = write(tmp_path / "i.csv", "item_id,title\na,A\nb,B\ncold1,C1\ncold2,C2\n")
    data = load_files(events, items, item_columns=ItemColumns(title="title"))
    assert list(data.catalog.items.ids) == ["a", "b", "cold1", "cold2"]
    assert data.interactions.n_items == 4
    assert data.extras["ingest"]["catalogue_items_without_interactions"] == 2
    assert any("2 catalogue items have no interactions; they are kept as cold-start items" in n for n in data.notes)


def test_k_core_keeps_cold_catalogue_items_and_counts_what_it_drops(tmp_path):
    rows = ["user_id,item_id,timestamp"]
    rows += [f"u{u},i{i},{u * 10 + i}" for u in range(3) for i in range(3)]  # dense 3x3 block
    rows += ["u0,rare,50", "lonely,i0,60"]  # 'rare' and 'lonely' have one event each
    events = write(tmp_path / "e.csv", "\n".join(rows) + "\n")
    items = write(tmp_path / "i.csv", "item_id\ni0\ni1\ni2\nrare\ncold\n")
    data = load_files(events, items, options=IngestOptions(min_user_interactions=2, min_item_interactions=2))
    assert list(data.catalog.items.ids) == ["i0", "i1", "i2", "cold"]  # 'rare' filtered, 'cold' kept
    assert sorted(data.interactions.users.ids) == ["u0", "u1", "u2"]
    assert len(data.interactions) == 9
    counts = data.extras["ingest"]
    assert counts["kcore_interactions_dropped"] == 2
    assert counts["kcore_users_dropped"] == 1 and counts["kcore_items_dropped"] == 1
    assert counts["catalogue_items_without_interactions"] == 1
    note = next(n for n in data.notes if n.startswith("k-core"))
    assert "dropped 2 interactions, 1 users and 1 items (1 of them also from the catalogue)" in note


def test_every_drop_is_reported_with_its_count(tmp_path):
    rows = ["user_id,item_id,timestamp"]
    rows += [f"u{u},i{i},{u * 10 + i}" for u in range(3) for i in range(3)]
    rows += ["u0,i0,0", "u0,i0,0", "u1,i1,11"]  # three exact repeats of earlier rows
    rows += ["solo,i0,70", "u2,ghost,80"]  # a user and an item below the k-core minimum of 2
    events = write(tmp_path / "e.csv", "\n".join(rows) + "\n")
    items = write(tmp_path / "i.csv", "item_id,title\ni0,A\ni1,B\ni1,B again\ni2,C\nnever,D\n")
    data = load_files(
        events,
        items,
        item_columns=ItemColumns(title="title"),
        options=IngestOptions(min_user_interactions=2, min_item_interactions=2),
    )
    assert len(data.interactions) == 9
    assert data.extras["ingest"] == {
        "interaction_rows_read": 14,
        "duplicate_interactions_dropped": 3,
        "catalogue_rows_read": 5,
        "repeated_catalogue_rows_dropped": 1,
        "kcore_interactions_dropped": 2,
        "kcore_users_dropped": 1,
        "kcore_items_dropped": 1,
        "catalogue_items_without_interactions": 1,
        "interactions_kept": 9,
    }
    notes = "\n".join(data.notes)
    assert "dropped 3 exact duplicate interactions" in notes
    assert "dropped 1 repeated catalogue rows" in notes
    assert "k-core (users >= 2, items >= 2): dropped 2 interactions, 1 users and 1 items" in notes
    assert "1 catalogue items have no interactions" in notes
    assert "kept 9 of 14 interaction rows (5 dropped" in notes
    assert len(data.notes) == len(set(data.notes))
