"""What every engine's restore shares so that no target is ever left half-written unnoticed.

* :mod:`.signals`: SIGTERM / SIGINT / SIGHUP raise an exception inside a restore, so its
  rollback runs before the process exits; a rollback is never interrupted.
* :mod:`.journal`: the record written before a restore changes its target and removed
  after validation; a record left behind (SIGKILL, power loss) is an interrupted restore.
* :mod:`.health`: the ``check_health`` extra check reporting interrupted restores (CRITICAL).
* :mod:`.workdirs`: temp directories whose owner's death is detectable, swept at the next start.
"""
