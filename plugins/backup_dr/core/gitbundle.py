"""Application code backups: a ``git bundle`` of the deployed commit, with the image it shipped as.

::

    manifest = backup_git(policy.sources["app_repository"], writer, ref=event["commit"],
                          image_ref="registry.example/api:1.4.2", image_digest="sha256:...")
    result = restore_git(store, manifest, "/srv/restore/repo", workdir=tmp)

The bundle holds the full history of the deployed commit, as ``HEAD`` plus every branch
and tag pointing at it. A deploy may name a commit that no ref points at any more (the
branch moved on); ``git bundle`` refuses a bare commit, so the bundle is cut from a
throw-away bare repository that borrows the source's objects (``objects/info/alternates``)
and holds only the refs we chose. The source repository is only read, never written.

git runs with a minimal environment: no inherited ``GIT_*`` variables (a worker started
from a hook could carry ``GIT_DIR``), no user config (credential helpers), no Airflow
connection secrets; nothing secret is ever on its command line.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from backup_dr.core.artifacts.manifest import FileEntry, Manifest
from backup_dr.core.artifacts.reader import fetch_verified
from backup_dr.core.artifacts.writer import ArtifactWriter
from backup_dr.core.errors import BackupDRError, NotFoundError, RestoreError, RestoreRefused, VerificationError
from backup_dr.core.files.restore import check_target, remove_tree, sibling
from backup_dr.core.policy_model import GitSource
from backup_dr.core.progress import Progress
from backup_dr.core.stores.base import CHUNK, Store
from backup_dr.core.stores.local import LocalStore

log = logging.getLogger(__name__)

_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_SAFE_TEXT = re.compile(r"^[^\s\x00-\x1f\x7f]{1,512}$")


class GitError(BackupDRError):
    """A git command failed (bad repository, missing ref, corrupt bundle)."""


@dataclass(frozen=True)
class GitRestoreResult:
    backup_id: str
    target: str
    commit: str
    branch: str | None
    refs: tuple[str, ...]
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def git_env(home: str) -> dict[str, str]:
    """The whole environment git gets: PATH and a few switches, nothing inherited."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": home,
        "LANG": "C",
        "LC_ALL": "C",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_ADVICE": "0",
    }


def _git(args: list[str], *, cwd: str | Path, home: str, what: str, hint: str | None = None) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=git_env(home), capture_output=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError as e:
        raise GitError("git is not installed on this worker", hint="install git (apt-get install git)") from e
    if proc.returncode != 0:
        raise GitError(what, detail=proc.stderr.decode("utf-8", "replace").strip()[-2000:], hint=hint)
    return proc.stdout.decode("utf-8", "replace")


def _validate_inputs(ref: str, image_ref: str | None, image_digest: str | None) -> None:
    if not ref or ref.startswith("-") or not _SAFE_TEXT.match(ref):
        raise BackupDRError(f"git ref {ref!r} is not a usable ref",
                            hint="pass a branch, tag or commit sha such as 'main', 'v1.4.2' or 'HEAD'")
    if image_ref is not None and not _SAFE_TEXT.match(image_ref):
        raise BackupDRError(f"image reference {image_ref!r} is not valid (empty, whitespace or over 512 chars)",
                            hint="pass the image as <registry>/<repository>:<tag>")
    if image_digest is not None:
        if not _DIGEST.match(image_digest):
            raise BackupDRError(f"image digest {image_digest!r} is not an OCI digest",
                                hint="pass it as sha256:<64 hex digits>, as the registry reports it")
        if image_ref and "@" in image_ref and image_ref.rsplit("@", 1)[1] != image_digest:
            raise BackupDRError(f"image reference {image_ref!r} names a different digest than {image_digest!r}",
                                hint="the deploy event's image and digest must describe the same image")


def _repo_root(source: GitSource, home: str) -> Path:
    field = f"sources.{source.name}.path"
    path = Path(source.path)
    if not path.is_dir():
        raise NotFoundError(f"git source {source.name!r}: repository {path} does not exist ({field})",
                            hint=f"clone the application repository there, or correct {field} in the policy file")
    top = _git(["rev-parse", "--absolute-git-dir"], cwd=path, home=home,
               what=f"git source {source.name!r}: {path} is not a git repository ({field})",
               hint=f"{field} must name a git working tree or bare repository; if git says 'dubious ownership', "
                    f"add `safe.directory = {path}` to the worker's /etc/gitconfig")
    if _git(["rev-parse", "--is-shallow-repository"], cwd=path, home=home, what="git rev-parse failed").strip() == "true":
        raise GitError(f"git source {source.name!r}: {path} is a shallow clone; its bundle would lack history",
                       hint="run `git fetch --unshallow` in it once")
    return Path(top.strip())


def _bundle_refs(git_dir: Path, ref: str, commit: str, home: str) -> tuple[dict[str, str], str | None]:
    """Refs to put in the bundle (name -> object id) and the branch to check out on restore."""
    out = _git(["for-each-ref", f"--points-at={commit}", "--format=%(objectname) %(refname)", "refs/heads", "refs/tags"],
               cwd=git_dir, home=home, what="git for-each-ref failed")
    refs = {name: oid for oid, name in (line.split(" ", 1) for line in out.splitlines() if line)}
    # ``ref`` was checked not to start with '-'; rev-parse echoes --end-of-options here, so it is not used.
    lines = _git(["rev-parse", "--symbolic-full-name", ref], cwd=git_dir, home=home, what="git rev-parse failed").split()
    full = lines[-1] if lines else ""
    branch = None
    if full.startswith("refs/heads/") and refs.get(full) == commit:
        branch = full
    elif full.startswith("refs/") and full not in refs:
        oid = _git(["rev-parse", "--verify", "--end-of-options", full], cwd=git_dir, home=home, what="git rev-parse failed").strip()
        refs[full] = oid
    return refs, branch


def backup_git(source: GitSource, writer: ArtifactWriter, *, ref: str = "HEAD", image_ref: str | None = None,
               image_digest: str | None = None) -> Manifest:
    """Bundle the repository at ``ref`` (full history), verify it, and commit the manifest.

    :param source: the policy's git source (``path`` of the deployed repository).
    :param writer: an :class:`ArtifactWriter` for a ``bundle`` backup id (kind "bundle", source_type "git").
    :param ref: the deployed branch, tag or commit (from the deploy event); default ``HEAD``.
    :param image_ref: container image the commit was deployed as, recorded in the manifest.
    :param image_digest: that image's digest (``sha256:...``), recorded in the manifest.
    """
    if writer.bid.kind != "bundle" or writer.source_type != "git":
        raise ValueError(f"backup_git needs a writer for kind 'bundle' and source_type 'git', got "
                         f"{writer.bid.kind!r}/{writer.source_type!r}")
    _validate_inputs(ref, image_ref, image_digest)
    done = writer.existing()
    if done is not None:
        log.info("backup %s already complete; nothing to do", writer.bid)
        return done
    with tempfile.TemporaryDirectory(prefix="backup-dr-git-") as tmp:
        git_dir = _repo_root(source, tmp)
        commit = _git(["rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}"], cwd=git_dir, home=tmp,
                      what=f"git source {source.name!r}: ref {ref!r} does not name a commit in {source.path}",
                      hint="check the deploy event's ref; `git log --oneline -1 <ref>` in the repository must work").strip()
        refs, branch = _bundle_refs(git_dir, ref, commit, tmp)
        stage = Path(tmp) / "stage.git"
        _git(["init", "-q", "--bare", str(stage)], cwd=tmp, home=tmp, what="git init failed")
        objects = _git(["rev-parse", "--path-format=absolute", "--git-path", "objects"], cwd=git_dir, home=tmp,
                       what="git rev-parse failed").strip()
        (stage / "objects" / "info" / "alternates").write_text(objects + "\n")
        _git(["update-ref", "--no-deref", "HEAD", commit], cwd=stage, home=tmp, what="git update-ref failed")
        for name, oid in refs.items():
            _git(["update-ref", name, oid], cwd=stage, home=tmp, what="git update-ref failed")
        name = f"{source.name}.bundle"
        writer.begin()
        try:
            with writer.open_file(name, format="git-bundle") as out:
                _stream_bundle(stage, ["HEAD", *refs], out, tmp, label=f"bundle {source.name}")
            bundle_path = writer.store.path(writer.bid.key(name))
            _git(["bundle", "verify", str(bundle_path)], cwd=stage, home=tmp,
                 what=f"the new bundle of {source.name!r} does not verify")
            heads = _list_heads(bundle_path, stage, tmp)
            if heads.get("HEAD") != commit:
                raise VerificationError(f"bundle of {source.name!r} has HEAD {heads.get('HEAD')}, expected {commit}")
            commits = int(_git(["rev-list", "--count", commit], cwd=stage, home=tmp, what="git rev-list failed"))
            details = {"repository": str(Path(source.path).absolute()), "ref": ref, "commit": commit,
                       "branch": branch, "refs": heads, "image_ref": image_ref, "image_digest": image_digest}
            manifest = writer.commit(consistent_point={"commit": commit}, details=details,
                                     counts={"commits": commits, "refs": len(heads), "bytes": writer.files[-1].size})
        except BaseException:
            writer.abort()
            raise
    log.info("bundled %s at %s (%s, %d commits)%s", source.name, commit[:12], ref, commits,
             f" deployed as {image_ref}" if image_ref else "")
    return manifest


def _stream_bundle(stage: Path, refs: list[str], out, home: str, *, label: str) -> None:
    """``git bundle create -`` piped straight into the store writer (no temp copy)."""
    progress = Progress(label, unit="chunks")
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(["git", "bundle", "create", "-q", "-", *refs], cwd=stage, env=git_env(home),
                                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        try:
            for chunk in iter(lambda: proc.stdout.read(CHUNK), b""):
                out.write(chunk)
                progress.add(1, len(chunk))
        finally:
            proc.stdout.close()
            rc = proc.wait()
        if rc != 0:
            err.seek(0)
            raise GitError("git bundle create failed", detail=err.read().decode("utf-8", "replace").strip()[-2000:])
    progress.done()


def _list_heads(bundle: Path, cwd: Path, home: str) -> dict[str, str]:
    out = _git(["bundle", "list-heads", str(bundle)], cwd=cwd, home=home, what=f"cannot read bundle {bundle.name}")
    return {name: oid for oid, name in (line.split(" ", 1) for line in out.splitlines() if line)}


def bundle_entry(manifest: Manifest) -> FileEntry:
    bundles = [f for f in manifest.files if f.format == "git-bundle"]
    if manifest.kind != "bundle" or len(bundles) != 1:
        raise RestoreRefused(f"backup {manifest.backup_id} is a {manifest.kind!r} backup, not a git bundle",
                             hint="restore it with the restore command of its own kind")
    return bundles[0]


def restore_git(store: Store, manifest: Manifest, target_dir: str | os.PathLike, workdir: str | os.PathLike) -> GitRestoreResult:
    """Clone the backed-up commit into ``target_dir`` (absent or empty), checked out at that commit.

    The bundle's bytes are verified against the manifest first; the clone is built in a
    staging directory next to the target and renamed into place only when HEAD is the
    recorded commit. The clone has no remote: add the real ``origin`` afterwards.
    """
    started = time.monotonic()
    entry = bundle_entry(manifest)
    commit = manifest.consistent_point.get("commit") or manifest.details.get("commit")
    branch = manifest.details.get("branch")
    target = Path(target_dir).absolute()
    check_target(target, overwrite=False)
    bundle = fetch_verified(store, manifest, entry.name, workdir)
    staging = sibling(target, "restore")
    try:
        with tempfile.TemporaryDirectory(prefix="backup-dr-git-") as home:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                _git(["init", "-q", str(staging)], cwd=home, home=home, what="git init failed")
                _git(["bundle", "verify", str(bundle)], cwd=staging, home=home,
                     what=f"bundle of backup {manifest.backup_id} does not verify")
                _git(["fetch", "-q", "--update-head-ok", str(bundle), "+refs/heads/*:refs/heads/*",
                      "+refs/tags/*:refs/tags/*", "HEAD"], cwd=staging, home=home,
                     what=f"cannot fetch from the bundle of backup {manifest.backup_id}")
                if branch:
                    _git(["checkout", "-q", "-B", branch.removeprefix("refs/heads/"), commit], cwd=staging, home=home,
                         what=f"cannot check out {commit}")
                else:
                    _git(["checkout", "-q", "--detach", commit], cwd=staging, home=home, what=f"cannot check out {commit}")
                head = _git(["rev-parse", "HEAD"], cwd=staging, home=home, what="git rev-parse failed").strip()
                if head != commit:
                    raise VerificationError(f"restored clone is at {head}, expected {commit}")
                refs = tuple(_git(["for-each-ref", "--format=%(refname)"], cwd=staging, home=home,
                                  what="git for-each-ref failed").split())
                check_target(target, overwrite=False)
                os.rename(staging, target)
            except BackupDRError:
                remove_tree(staging)
                raise
            except OSError as e:
                remove_tree(staging)
                raise RestoreError(f"restore of {manifest.backup_id} into {target} failed; {target} was not touched",
                                   detail=str(e)) from e
    finally:
        if not isinstance(store, LocalStore):
            Path(bundle).unlink(missing_ok=True)
    result = GitRestoreResult(manifest.backup_id, str(target), commit, branch, refs, round(time.monotonic() - started, 3))
    log.info("restored %s into %s at %s in %.1fs", manifest.backup_id, target, commit[:12], result.seconds)
    return result
