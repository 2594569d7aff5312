"""mongodump's directory layout (``mongodump --out``, our ``format: directory``), read like an archive.

Layout (mongo-tools ``mongodump/prepare.go``, ``mongorestore/filepath.go``)::

    <root>/<db>/<escaped name>.bson[.gz|.zst]             the documents, concatenated
    <root>/<db>/<escaped name>.metadata.json[.gz|.zst]    options, indexes, uuid, collectionName, type
    <root>/oplog.bson[.zst]                                the oplog window (gzipped content keeps this name)

A view has only its metadata file. The file name is the percent-escaped collection name (cut
and hashed when long); the real name is the metadata's ``collectionName``. Each file's codec
is taken from its first bytes. :class:`DumpDirectoryReader` offers what
:class:`.archive.ArchiveReader` offers (``prelude``, ``documents()``, ``summarize()``), so a
restore reads either. The directory format has no CRCs: every document's framing is checked
here, and a backup's files are checked against the manifest's sha256 before they are read.
"""

from __future__ import annotations

import logging
import struct
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote_plus

from backup_dr.core.errors import IntegrityError
from backup_dr.core.mongo.archive import MAX_DOC, OPLOG_COLLECTION, OPLOG_DB, ArchiveSummary, PreludeEntry, summarize
from backup_dr.core.mongo.codecs import decompressed_reader
from backup_dr.core.mongo.metadata import CollectionMeta

log = logging.getLogger(__name__)

_INT32 = struct.Struct("<i")
_READ = 1 << 20
_SUFFIXES = ("", ".gz", ".zst")
_META = ".metadata.json"


def is_dump_directory(path: str | Path) -> bool:
    return Path(path).is_dir()


def _strip(name: str, stem_end: str) -> str | None:
    for sfx in _SUFFIXES:
        if name.endswith(stem_end + sfx):
            return name[: len(name) - len(stem_end + sfx)]
    return None


def _read_text(path: Path) -> str:
    with open(path, "rb") as raw, decompressed_reader(raw, where=str(path), allow_plain=True) as stream:
        return stream.read().decode("utf-8")


class DumpDirectoryReader:
    """The databases, collections and documents of a dump directory; see the module doc."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.where = str(self.root)
        self.header: dict = {"version": "directory"}
        self.prelude: list[PreludeEntry] = []
        self._data: dict[tuple[str, str], Path] = {}
        for db_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            self._scan_database(db_dir)
        for name in ("oplog.bson", "oplog.bson.zst", "oplog.bson.gz"):
            if (self.root / name).is_file():
                self.prelude.append(PreludeEntry(OPLOG_DB, OPLOG_COLLECTION))
                self._data[(OPLOG_DB, OPLOG_COLLECTION)] = self.root / name
                break
        if not self.prelude:
            raise IntegrityError(f"{self.where}: not a mongodump directory (no <db>/<collection>.bson or .metadata.json files)",
                                 hint="point at the directory mongodump --out wrote (or a directory-format backup's files)")

    def _scan_database(self, db_dir: Path) -> None:
        files = {p.name: p for p in db_dir.iterdir() if p.is_file()}
        stems: dict[str, Path] = {}
        for name, path in files.items():
            stem = _strip(name, ".bson")
            if stem is not None and not name.endswith(_META):
                stems[stem] = path
        for name, path in sorted(files.items()):
            stem = _strip(name, _META)
            if stem is None:
                continue
            text = _read_text(path)
            meta = CollectionMeta.from_json(text, name=unquote_plus(stem))
            self.prelude.append(PreludeEntry(db_dir.name, meta.name, text, 0, meta.type))
            data = stems.pop(stem, None)
            if data is not None and not meta.is_view:
                self._data[(db_dir.name, meta.name)] = data
        for stem, path in sorted(stems.items()):  # a .bson without metadata: a collection without options
            if stem.startswith("system.") and stem != "system.js":
                continue
            name = unquote_plus(stem)
            log.info("%s has no metadata file; restoring %s.%s without options or indexes", path, db_dir.name, name)
            self.prelude.append(PreludeEntry(db_dir.name, name, "", 0, "collection"))
            self._data[(db_dir.name, name)] = path

    def documents(self) -> Iterator[tuple[str, str, bytes | None]]:
        for entry in self.prelude:
            path = self._data.get((entry.db, entry.collection))
            if path is not None:
                yield from self._file_documents(entry.db, entry.collection, path)
            yield entry.db, entry.collection, None

    def _file_documents(self, db: str, coll: str, path: Path) -> Iterator[tuple[str, str, bytes]]:
        with ExitStack() as stack:
            raw = stack.enter_context(open(path, "rb"))
            stream = stack.enter_context(decompressed_reader(raw, where=str(path), allow_plain=True))
            buf, offset = b"", 0
            while True:
                chunk = stream.read(_READ)
                buf += chunk
                pos = 0
                while len(buf) - pos >= 4:
                    (size,) = _INT32.unpack_from(buf, pos)
                    if size < 5 or size > MAX_DOC:
                        raise IntegrityError(f"{path}: corrupt BSON file: {size} is not a document length (at byte {offset + pos})",
                                             hint="the file is damaged; restore from another copy")
                    if len(buf) - pos < size:
                        break
                    if buf[pos + size - 1] != 0:
                        raise IntegrityError(f"{path}: corrupt BSON file: the document at byte {offset + pos} does not end with a null byte")
                    yield db, coll, buf[pos:pos + size]
                    pos += size
                buf, offset = buf[pos:], offset + pos
                if not chunk:
                    break
            if buf:
                raise IntegrityError(f"{path}: BSON file is truncated ({len(buf)} bytes of a last document at byte {offset})",
                                     hint="the file was cut short; restore from another copy")

    def summarize(self) -> ArchiveSummary:
        return summarize(self)
