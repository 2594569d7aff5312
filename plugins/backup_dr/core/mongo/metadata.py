"""Collection metadata exactly as mongodump writes it, and back.

mongodump's ``Metadata`` struct (``mongodump/metadata_dump.go``) is marshalled with
``bson.MarshalExtJSON(meta, canonical=true, escapeHTML=false)``::

    {"options": {...listCollections options...},      (omitted when empty)
     "indexes": [...listIndexes documents...],          (always present, [] for views)
     "uuid": "<32 hex chars>",                          (omitted when unknown)
     "collectionName": "<name>",
     "type": "collection" | "view" | "timeseries"}     (omitted when empty)

The same text goes into an archive's prelude and into ``<coll>.metadata.json`` of the
directory format. Options and index documents are kept as raw BSON until they are rendered,
so int32/int64/double and key order survive exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import bson
from bson import json_util
from bson.codec_options import CodecOptions
from bson.json_util import CANONICAL_JSON_OPTIONS
from bson.raw_bson import RawBSONDocument
from bson.son import SON

from backup_dr.core.errors import IntegrityError

RAW = CodecOptions(document_class=RawBSONDocument)
_CANONICAL_LOAD = CANONICAL_JSON_OPTIONS.with_options(document_class=SON)

#: index fields a server reports but will not accept back in createIndexes
INDEX_INTERNAL_FIELDS = frozenset({"ns", "entryFormat", "multikey", "buildUUID", "indexBuildUUID"})
#: listCollections options a create command does not take
CREATE_SKIP_OPTIONS = frozenset({"autoIndexId", "flags", "uuid", "idIndex"})


@dataclass
class CollectionMeta:
    """One collection or view of a database, with everything needed to recreate it."""

    name: str
    type: str = "collection"  # collection | view | timeseries
    options: dict[str, Any] = field(default_factory=dict)
    indexes: list[dict[str, Any]] = field(default_factory=list)
    uuid: str = ""

    @property
    def is_view(self) -> bool:
        return self.type == "view"

    @property
    def index_names(self) -> list[str]:
        return [ix["name"] for ix in self.indexes]

    def to_json(self) -> str:
        """The canonical Extended JSON v2 line mongodump writes (no spaces, UTF-8 kept)."""
        doc: dict[str, Any] = {}
        if self.options:
            doc["options"] = self.options
        doc["indexes"] = self.indexes
        if self.uuid:
            doc["uuid"] = self.uuid
        doc["collectionName"] = self.name
        if self.type:
            doc["type"] = self.type
        return json_util.dumps(doc, json_options=CANONICAL_JSON_OPTIONS, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, *, name: str = "", type_hint: str = "") -> "CollectionMeta":
        try:
            doc = json_util.loads(text, json_options=_CANONICAL_LOAD) if text else {}
        except (ValueError, TypeError) as e:
            raise IntegrityError(f"collection metadata of {name!r} is not valid Extended JSON ({e})") from e
        return cls(
            name=doc.get("collectionName") or name,
            type=doc.get("type") or type_hint or ("view" if "viewOn" in (doc.get("options") or {}) else "collection"),
            options=dict(doc.get("options") or {}),
            indexes=[dict(ix) for ix in doc.get("indexes") or []],
            uuid=doc.get("uuid") or "",
        )

    def create_command(self, target_name: str | None = None) -> SON:
        """The ``create`` command that recreates this collection/view (options, validator, collation)."""
        cmd = SON([("create", target_name or self.name)])
        for k, v in self.options.items():
            if k not in CREATE_SKIP_OPTIONS:
                cmd[k] = v
        return cmd

    @property
    def has_simple_collation(self) -> bool:
        """No default collation, or ``locale: "simple"`` (mongo-tools ``Intent.HasSimpleCollation``)."""
        collation = self.options.get("collation")
        return not isinstance(collation, dict) or collation.get("locale") == "simple"

    def index_specs(self) -> list[SON]:
        """createIndexes specs, without the _id index (create makes it) and server-internal fields.

        On a collection with a default collation, an index listed WITHOUT a collation is a
        simple-collation index: mongod lists every other index with its collation, inherited
        ones included. Created without one it would inherit the collection's (e.g. ``ko``) and
        be a different index, so it gets ``{locale: "simple"}`` explicitly, exactly as stock
        mongorestore does (mongo-tools ``common/idx/index_catalog.go`` ``GetIndexes``)."""
        simple = self.has_simple_collation
        out = []
        for ix in self.indexes:
            if ix.get("name") == "_id_":
                continue
            spec = SON((k, v) for k, v in ix.items() if k not in INDEX_INTERNAL_FIELDS)
            if not simple and "collation" not in spec:
                spec["collation"] = SON([("locale", "simple")])
            out.append(spec)
        return out


_ORDERED = CodecOptions(document_class=SON)


def _decode(raw: RawBSONDocument | None) -> dict[str, Any]:
    """Raw BSON -> ordered dict; int64 decodes to Int64, so int32/int64 stay distinct."""
    if raw is None:
        return {}
    if isinstance(raw, RawBSONDocument):
        return bson.decode(raw.raw, codec_options=_ORDERED)
    return bson.decode(bson.encode(raw), codec_options=_ORDERED)


def read_collections(db, names: list[str] | tuple[str, ...] | None = None) -> list[CollectionMeta]:
    """Metadata of the database's collections and views (system.* skipped, as mongodump does).

    ``names`` restricts to those collections; a name that does not exist raises NotFoundError.
    """
    from backup_dr.core.errors import NotFoundError

    infos = list(db.with_options(codec_options=RAW).list_collections())
    metas = []
    for info in infos:
        name = info["name"]
        if name.startswith("system.") and name != "system.js":
            continue
        if names and name not in names:
            continue
        meta = CollectionMeta(name=name, type=info.get("type", "collection"), options=_decode(info.get("options")))
        uuid = (info.get("info") or {}).get("uuid")
        if uuid is not None:
            meta.uuid = bytes(uuid).hex()
        if not meta.is_view:
            meta.indexes = [_decode(ix) for ix in db[name].with_options(codec_options=RAW).list_indexes()]
        metas.append(meta)
    if names:
        missing = sorted(set(names) - {m.name for m in metas})
        if missing:
            raise NotFoundError(
                f"database {db.name!r} has no collection(s) {', '.join(repr(m) for m in missing)}",
                hint="fix the collection list of the source/job in the policy, or create the collection",
            )
    return metas


def describe(meta: CollectionMeta) -> dict[str, Any]:
    """A JSON-safe summary for the manifest (index names and options as relaxed JSON)."""
    return {
        "type": meta.type,
        "indexes": meta.index_names,
        "options": json.loads(json_util.dumps(meta.options)) if meta.options else {},
    }
