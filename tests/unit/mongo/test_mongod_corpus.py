"""The mongod oplog corpus (``tests/fixtures/mongod_oplog``) replays exactly on the test server.

Each case: the documents before are inserted as raw BSON; the entries go through the same
reader filter the dump and the PITR slices use (``oplog.touches``) and the strict order check,
then through the product's applier into a fresh database (the corpus database mapped to it,
as a restore maps names). The result is compared exactly: every document as raw bytes (field
order and types), views, collection options, index names. Where mongod's own tests apply a
diff twice, so does this (oplog replay must be idempotent). The counts at the consistent
point (``end_counts``) are checked against the same result: treating the "before" documents as
what a dump read and the entries as its window, they must predict the replayed counts.
"""

from __future__ import annotations

import bson
import pytest
from bson import Timestamp
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from backup_dr.core.mongo.applier import NamespaceMap, OplogApplier
from backup_dr.core.mongo.end_counts import WindowFacts, resolve
from backup_dr.core.mongo.oplog import checked, touches
from tests.fixtures.mongod_oplog import DB, T0, Case, all_cases

RAW = CodecOptions(document_class=RawBSONDocument)
CASES = all_cases()


@pytest.fixture
def db(mongo_client, fresh_db_name):
    yield mongo_client[fresh_db_name]
    mongo_client.drop_database(fresh_db_name)


def _raw(doc) -> RawBSONDocument:
    return RawBSONDocument(bson.encode(doc))


def _key(doc: RawBSONDocument) -> bytes:
    return bson.encode({"k": doc["_id"]})


def _state(db) -> dict:
    out = {"docs": {}, "views": {}, "options": {}, "indexes": {}}
    for info in db.list_collections():
        name = info["name"]
        if info.get("type") == "view":
            out["views"][name] = dict(info.get("options") or {})
            continue
        out["docs"][name] = {_key(d): d.raw for d in db.get_collection(name, codec_options=RAW).find()}
        out["options"][name] = dict(info.get("options") or {})
        out["indexes"][name] = sorted(ix["name"] for ix in db[name].list_indexes())
    return out


def _replay(db, entries) -> None:
    OplogApplier(db.client, NamespaceMap(DB, db.name)).apply_all(entries)


def _window(case: Case) -> list[RawBSONDocument]:
    """What the product's reader would keep of the case's entries, in its strict order."""
    entries = [_raw(e) for e in case.entries]
    return [e for e in checked(entries, Timestamp(T0, 0), Timestamp(T0 + 1, 0), case.name) if touches(e, DB)]


def test_every_case_names_its_source():
    assert len(CASES) >= 35
    assert all(c.cite for c in CASES) and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_mongod_oplog_corpus_replays_exactly(db, case: Case):
    for coll, docs in case.before.items():
        db.create_collection(coll)
        if docs:
            db.get_collection(coll, codec_options=RAW).insert_many([_raw(d) for d in docs])
    for name, definition in case.before_views.items():
        db.command("create", name, **definition)
    window = _window(case)
    if case.raises:
        cls, pattern = case.raises
        with pytest.raises(cls, match=pattern):
            _replay(db, window)
        return
    _replay(db, window)
    state = _state(db)
    if case.twice:
        _replay(db, window)
        assert _state(db) == state, "replaying the entries again changed the result"
    assert set(state["docs"]) == set(case.after), state["docs"].keys()
    for coll, docs in case.after.items():
        want = {_key(_raw(d)): _raw(d).raw for d in docs}
        assert state["docs"][coll] == want, f"{case.name}: {coll} differs from mongod's post-image"
    assert state["views"] == case.views
    for coll, options in case.options.items():
        assert {k: state["options"][coll].get(k) for k in options} == options, state["options"][coll]
    for coll, names in case.indexes.items():
        assert state["indexes"][coll] == sorted(names)


@pytest.mark.parametrize("case", [c for c in CASES if not c.raises], ids=lambda c: c.name)
def test_counts_at_the_consistent_point_predict_the_replay(case: Case):
    facts = WindowFacts(DB, dumped=list(case.before))
    facts.feed_all(_window(case))
    read = {coll: len(docs) for coll, docs in case.before.items()}
    dumped = lambda names: ((c, _raw(d).raw) for c in sorted(names) for d in case.before[c])  # noqa: E731
    counts = resolve(facts, read, dumped)
    known = {k: v for k, v in counts.items() if v is not None}
    assert known == {coll: len(docs) for coll, docs in case.after.items() if coll in known}
    assert set(counts) == set(case.after)
