"""Undoing a files restore that died (SIGKILL, power loss) from its journal record.

The record names the target, the staging directory and where the previous content was
to be moved (``safety_copy``), and the target's state before (absent, empty, non-empty).
The swap is two renames, so after a kill the disk is in one of three states, told apart
by what exists: previous content still in place (nothing to undo but the staging
directory), previous content moved aside and nothing in place yet, or the new content in
place. Undoing removes whatever the restore put at the target and moves the previous
content back.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from backup_dr.core.files.restore import remove_tree
from backup_dr.core.restores.journal import JournalDir, JournalEntry
from backup_dr.core.restores.signals import shielded

log = logging.getLogger(__name__)


def rollback_interrupted_files(journal: JournalDir, entry: JournalEntry) -> dict[str, Any]:
    s = entry.safety
    target = Path(entry.resume["target"])
    safety = Path(s["safety_copy"]) if s.get("safety_copy") else None
    done = []
    with journal.claim(entry), shielded():  # the claim also removes the staging directory (safety.cleanup)
        if not entry.touched:
            return {"journal": entry.id, "target": entry.label, "rolled_back": [], "note": "the target was never touched"}
        if safety is not None:
            if safety.exists():  # it was moved aside: whatever is at the target now came from the restore
                if target.exists() or target.is_symlink():
                    remove_tree(target)
                    done.append(f"removed the restored {target}")
                os.rename(safety, target)
                done.append(f"moved {safety} back to {target}")
        elif target.exists() and s.get("staging") and not Path(s["staging"]).exists():  # the restore's tree is in place
            remove_tree(target)
            done.append(f"removed the restored {target}")
            if s.get("target_state") == "empty":
                target.mkdir()
                done.append(f"left {target} empty, as it was")
    log.info("interrupted files restore %s rolled back: %s", entry.id, "; ".join(done) or "nothing had changed")
    return {"journal": entry.id, "target": entry.label, "rolled_back": done, "safety": entry.safety_text()}
