"""Copy a Redis 7 multi-part AOF directory (manifest + base + incr files) consistently.

Redis 7 keeps ``<dir>/<appenddirname>/<appendfilename>.manifest`` listing one base file
(RDB or AOF format), the incr files appended since the last rewrite, and history files
waiting for deletion. A rewrite replaces the base and starts a new incr file, so the set
is copied only while no rewrite runs, and the manifest is compared before and after: if
it changed, or a rewrite ran meanwhile, the copy is repeated.

The point in time: writes are paused for a moment (``CLIENT PAUSE <ms> WRITE``; expiry is
paused too), the AOF buffer is allowed to drain to the file, and INFO keyspace, the
replication offset and every file's size are read together; then writes resume and the
files are copied *up to those sizes* (base files never change, the incr file only grows).
The copy therefore holds exactly the state whose key counts the manifest records. Without
the right to pause, the counts are INFO's a moment after the copy (approximate on a busy
server) and a half-written last command at the tail of the last incr file is cut off, as
Redis itself does on load (``aof-load-truncated yes``).
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from backup_dr.core.connections import ConnInfo
from backup_dr.core.errors import ConnectionConfigError, IntegrityError, SourceError
from backup_dr.core.policy_model import RedisSource
from backup_dr.core.progress import Progress
from backup_dr.core.redis.bgsave import config_get, server_data_dir
from backup_dr.core.redis.client import keyspace_counts, target, translate
from backup_dr.core.redis.rdb import check_stream, redis_check_tool

log = logging.getLogger(__name__)

_CHUNK = 4 * 1024 * 1024
_PAUSE_MS = 2000


@dataclass(frozen=True)
class AofFile:
    name: str
    seq: int
    type: str  # b(ase) | i(ncr) | h(istory)


def parse_manifest(text: str, where: str = "AOF manifest") -> list[AofFile]:
    files = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        tokens = shlex.split(line)
        if len(tokens) % 2:
            raise IntegrityError(f"{where} line {n} is malformed: {line[:80]!r}")
        pairs = dict(zip(tokens[0::2], tokens[1::2]))
        try:
            files.append(AofFile(pairs["file"], int(pairs["seq"]), pairs["type"]))
        except (KeyError, ValueError):
            raise IntegrityError(f"{where} line {n} lacks file/seq/type: {line[:80]!r}") from None
    if not any(f.type == "b" for f in files) and not any(f.type == "i" for f in files):
        raise IntegrityError(f"{where} lists no base or incr file")
    return files


@dataclass
class AofCopy:
    directory: Path
    dirname: str
    appendfilename: str
    files: list[str]
    attempts: int
    paused: bool
    taken_at: datetime
    counts: dict[str, int] = field(default_factory=dict)
    expires: dict[str, int] = field(default_factory=dict)
    replication: dict[str, Any] = field(default_factory=dict)
    truncated_bytes: int = 0

    @property
    def manifest_name(self) -> str:
        return f"{self.appendfilename}.manifest"


def _info(r, conn, section):
    import redis.exceptions as rx

    try:
        return r.info(section)
    except rx.RedisError as e:
        raise translate(conn, e, f"run INFO {section}") from None


def _wait_no_rewrite(r, conn, deadline: float, poll: float = 0.05) -> dict:
    while True:
        p = _info(r, conn, "persistence")
        if not p.get("aof_rewrite_in_progress") and not p.get("aof_rewrite_scheduled"):
            return p
        if time.monotonic() > deadline:
            raise SourceError(f"{target(conn).where}: an AOF rewrite did not finish in time")
        time.sleep(poll)


def _pause(r) -> bool:
    import redis.exceptions as rx

    try:
        r.execute_command("CLIENT", "PAUSE", _PAUSE_MS, "WRITE")
        return True
    except rx.NoPermissionError:
        return False


def _copy_prefix(src: Path, dest: Path, size: int | None, progress: Progress) -> int:
    """Copy ``src`` (its first ``size`` bytes when given); return bytes copied."""
    n = 0
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while size is None or n < size:
            block = fin.read(_CHUNK if size is None else min(_CHUNK, size - n))
            if not block:
                break
            fout.write(block)
            n += len(block)
            progress.add(1, len(block))
    if size is not None and n < size:
        raise FileNotFoundError(f"{src} shrank while being copied")
    return n


def copy_aof_dir(r, conn: ConnInfo, source: RedisSource, dest: Path, *, attempts: int = 5, timeout: float = 3600.0) -> AofCopy:
    """Copy the server's AOF directory into ``dest`` (created/emptied), consistently."""
    import redis.exceptions as rx

    t = target(conn)
    if (config_get(r, conn, "appendonly") or "yes") != "yes":
        raise ConnectionConfigError(f"{t.where}: AOF is off on this server (appendonly no); nothing to copy",
                                    hint="use mode 'replication' or 'bgsave' for this source, or enable AOF")
    dirname = config_get(r, conn, "appenddirname") or "appendonlydir"
    appendfilename = config_get(r, conn, "appendfilename") or "appendonly.aof"
    src = server_data_dir(r, conn, source) / dirname
    manifest = src / f"{appendfilename}.manifest"
    deadline = time.monotonic() + timeout
    for attempt in range(1, attempts + 1):
        before = _wait_no_rewrite(r, conn, deadline)
        paused = _pause(r)
        paused_at = time.monotonic()
        drained = True
        try:
            if paused:  # let what was written before the pause reach the file (everysec may hold it back)
                drain_until = paused_at + _PAUSE_MS / 2000
                while _info(r, conn, "persistence").get("aof_buffer_length", 0):
                    if time.monotonic() > drain_until:
                        drained = False
                        break
                    time.sleep(0.005)
            keys, expires = keyspace_counts(_info(r, conn, "keyspace"))
            repl = _info(r, conn, "replication")
            taken_at = datetime.now(timezone.utc)
            try:
                text = manifest.read_text()
                files = [f for f in parse_manifest(text, str(manifest)) if f.type in ("b", "i")]
                sizes = {f.name: (src / f.name).stat().st_size for f in files}
            except FileNotFoundError as e:
                raise ConnectionConfigError(f"redis source {source.name!r}: {e.filename} not found",
                                            hint="data_dir must be the server's dir as this worker sees it") from None
        finally:
            if paused:
                try:
                    r.execute_command("CLIENT", "UNPAUSE")
                except rx.RedisError as e:  # the pause also ends on its own after _PAUSE_MS
                    log.warning("%s: CLIENT UNPAUSE failed (%s); writes resume within %d ms", t.where, e, _PAUSE_MS)
        if paused and (not drained or time.monotonic() - paused_at > 0.9 * _PAUSE_MS / 1000):
            log.info("%s: the AOF buffer did not drain within the write pause (attempt %d); again", t.where, attempt)
            continue
        if not paused and attempt == 1:
            log.warning("%s: user %r may not CLIENT PAUSE: the AOF copy is consistent but its key counts are "
                        "approximate on a busy server (grant +client|pause +client|unpause)", t.where, t.user)
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        progress = Progress(f"copy {src}", total_bytes=sum(sizes.values()), unit="chunks")
        try:
            for f in files:
                _copy_prefix(src / f.name, dest / f.name, sizes[f.name] if (paused or f.type == "b") else None, progress)
            progress.done()
        except FileNotFoundError:
            log.info("%s: AOF files changed during the copy (attempt %d); again", t.where, attempt)
            continue
        after = _info(r, conn, "persistence")
        same = manifest.exists() and manifest.read_text() == text
        if same and not after.get("aof_rewrite_in_progress") and after.get("aof_rewrites") == before.get("aof_rewrites"):
            (dest / manifest.name).write_text(text)
            copy = AofCopy(dest, dirname, appendfilename, [f.name for f in files], attempt, paused, taken_at,
                           keys, expires, {k: repl.get(k) for k in ("master_replid", "master_repl_offset")})
            copy.truncated_bytes = validate_aof_dir(dest, copy.manifest_name, truncate_tail=True)
            return copy
        log.info("%s: an AOF rewrite ran during the copy (attempt %d); again", t.where, attempt)
    raise SourceError(f"{t.where}: the AOF directory kept changing during {attempts} copy attempts",
                      hint="AOF rewrites are too frequent right now; retry later or use mode 'bgsave'")


_ANALYZED = re.compile(r"AOF analyzed: filename=(.+?), size=(\d+), ok_up_to=(\d+)")


def validate_aof_dir(directory: Path, manifest_name: str, *, truncate_tail: bool = False) -> int:
    """Check every file the manifest lists. With ``truncate_tail`` a half-written command at the
    end of the LAST incr file (a copy taken while Redis appended) is cut off; returns the bytes cut."""
    files = parse_manifest((directory / manifest_name).read_text(), f"{directory.name}/{manifest_name}")
    incr = [f for f in files if f.type == "i"]
    last = incr[-1].name if incr else None
    tool = redis_check_tool("redis-check-aof")
    cut = 0
    for _ in range(2):
        problem = _check_with_tool(tool, directory, manifest_name) if tool else _check_in_python(directory, files)
        if problem is None:
            return cut
        name, ok_up_to, detail = problem
        size = (directory / name).stat().st_size
        if truncate_tail and name == last and ok_up_to < size and not cut:
            log.warning("%s: cutting a half-written command (%d bytes) off the end of %s, as Redis does on load",
                        directory.name, size - ok_up_to, name)
            with open(directory / name, "r+b") as f:
                f.truncate(ok_up_to)
            cut = size - ok_up_to
            continue
        raise IntegrityError(f"AOF file {name} is corrupt or truncated", detail=detail,
                             hint="the backup does not count; take a new one")
    raise IntegrityError(f"AOF directory {directory} still invalid after cutting the tail")


def _check_with_tool(tool: str, directory: Path, manifest_name: str) -> tuple[str, int, str] | None:
    proc = subprocess.run([tool, str(directory / manifest_name)], capture_output=True, text=True, errors="replace", timeout=3600)
    if proc.returncode == 0:
        return None
    out = proc.stdout + proc.stderr
    tail = "\n".join(out.strip().splitlines()[-4:])
    for name, size, ok in reversed(_ANALYZED.findall(out)):
        if int(ok) < int(size):
            return name, int(ok), tail
    return "(manifest)", 0, tail


def _check_in_python(directory: Path, files: list[AofFile]) -> tuple[str, int, str] | None:
    """Without redis-check-aof: base RDBs by header + CRC, AOF-format files by RESP framing."""
    for f in files:
        if f.type not in ("b", "i"):
            continue
        path = directory / f.name
        with open(path, "rb") as fh:
            if fh.read(5) == b"REDIS":
                fh.seek(0)
                try:
                    check_stream(fh, f.name)
                except IntegrityError as e:
                    return f.name, 0, str(e)
                continue
        ok_up_to = resp_valid_prefix(path)
        if ok_up_to < path.stat().st_size:
            return f.name, ok_up_to, f"{f.name}: valid RESP up to byte {ok_up_to} of {path.stat().st_size}"
    return None


def resp_valid_prefix(path: Path) -> int:
    """Length of the longest prefix of an AOF file made of complete commands (and #annotations)."""
    good = 0
    with open(path, "rb") as f:
        while True:
            line = f.readline()
            if not line:
                return good
            if line.startswith(b"#"):
                if not line.endswith(b"\n"):
                    return good
                good = f.tell()
                continue
            if not (line.startswith(b"*") and line.endswith(b"\r\n")):
                return good
            try:
                argc = int(line[1:-2])
                for _ in range(argc):
                    head = f.readline()
                    if not (head.startswith(b"$") and head.endswith(b"\r\n")):
                        return good
                    n = int(head[1:-2])
                    f.seek(n, 1)
                    if f.read(2) != b"\r\n":
                        return good
            except ValueError:
                return good
            good = f.tell()


def tar_directory(directory: Path, arcdir: str, out: BinaryIO) -> None:
    """Stream ``directory``'s files into ``out`` as an uncompressed tar under ``arcdir/``."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(directory.iterdir()):
            tar.add(path, arcname=f"{arcdir}/{path.name}", recursive=False)


def untar_directory(tar_path: Path, dest: Path) -> Path:
    """Extract an AOF tar (regular files in one directory only); return that directory."""
    dest.mkdir(parents=True, exist_ok=True)
    top = None
    with tarfile.open(tar_path, mode="r:") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 2 or ".." in parts or member.name.startswith("/"):
                raise IntegrityError(f"{tar_path.name}: unexpected member {member.name!r} in an AOF archive")
            if top not in (None, parts[0]):
                raise IntegrityError(f"{tar_path.name}: more than one directory in an AOF archive")
            top = parts[0]
            src = tar.extractfile(member)
            (dest / parts[0]).mkdir(exist_ok=True)
            with open(dest / parts[0] / parts[1], "wb") as fout:
                shutil.copyfileobj(src, fout, _CHUNK)
    if top is None:
        raise IntegrityError(f"{tar_path.name}: empty AOF archive")
    return dest / top
