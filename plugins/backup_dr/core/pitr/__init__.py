"""Point-in-time recovery for MongoDB: oplog slices chained after full backups.

Entry points (plain objects, no Airflow; the operators and the CLI call these):

* :func:`archive_slice` (client, policy, source, local store, stores, run_after) -> SliceResult:
  archive the oplog from the end of the previous slice up to the majority point, detect gaps.
* :func:`restore_to_time` (client, stores, policy, source, at, workdir=, safety_dir=, ...) ->
  PitrRestoreResult: newest full backup at or before ``at``, then replay up to ``at``; a
  datetime means that WHOLE second, a bson ``Timestamp`` an exact oplog position.
* :func:`load_chain` (catalog, class, source) -> ChainState: slices, holes and the restorable
  windows (``state.current().describe()``: "any second between A and B").
* :func:`pitr_health_check`: the ``check_health`` extra check writing the ``pitr`` row.
"""

from backup_dr.core.pitr.archive import SliceResult, archive_slice, pitr_spec  # noqa: F401
from backup_dr.core.pitr.chain import ChainState, Window, known_breaks, load_chain  # noqa: F401
from backup_dr.core.pitr.health import pitr_health_check, pitr_status  # noqa: F401
from backup_dr.core.pitr.points import upper_bound  # noqa: F401
from backup_dr.core.pitr.restore import PitrPlan, PitrRestoreResult, plan_point_in_time, restore_to_time  # noqa: F401
