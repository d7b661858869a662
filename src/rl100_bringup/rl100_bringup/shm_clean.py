"""Remove the shared-memory segments Fast DDS leaves behind when a process dies by a signal.

    python -m rl100_bringup.shm_clean [--dry-run] [--min-age 60] [--dir /dev/shm]

Every Fast DDS participant with the shared-memory transport (the graph's profile,
``config/fastdds.xml``: a 16 MB segment) owns ``fastrtps_<id>`` in /dev/shm and holds an
exclusive ``flock`` on ``fastrtps_<id>_el`` while it lives. A process that exits cleanly removes
both; one killed with SIGKILL (a crash, ``up``'s fault tests, an OOM kill) leaves them, and a
graph that respawns nodes all day keeps adding them (what the dead process wrote stays taken: on
the development VM 213 of them held 628 MB after a day of test runs). A segment is stale when
its lock can be taken, i.e. no process holds it; it is removed while this process holds the
lock. Segments whose lock file is younger than ``--min-age`` seconds are left alone (a
participant that is starting may not have locked it yet). Port files (``fastrtps_port*``) are
shared by live participants and never touched. Fast DDS's own ``fastdds shm clean`` does the
same where its tools are installed. ``up`` runs this at start and before every respawn.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import fcntl
import os
import re
import sys
import time

SHM_DIR = '/dev/shm'
SEGMENT = re.compile(r'^fastrtps_[0-9a-f]{16}$')  # a participant's segment (not a port)
LOCK_SUFFIX = '_el'
MIN_AGE_S = 60.0


@dataclass(frozen=True)
class Cleaned:
    removed: tuple  # segment names
    bytes: int  # memory the removed files held (allocated blocks, not their nominal size)


def _allocated(path: str) -> int:
    try:
        return os.stat(path).st_blocks * 512
    except FileNotFoundError:
        return 0


def clean(directory: str = SHM_DIR, min_age_s: float = MIN_AGE_S, dry_run: bool = False,
          now: float | None = None) -> Cleaned:
    """Remove (or with ``dry_run`` only list) the stale segments in ``directory``."""
    now = time.time() if now is None else now
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return Cleaned((), 0)
    removed, freed = [], 0
    for name in names:
        if not SEGMENT.match(name):
            continue
        segment = os.path.join(directory, name)
        lock = segment + LOCK_SUFFIX
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            continue  # no lock file: not a segment this knows how to judge
        except PermissionError:
            continue  # another user's
        try:
            if now - os.fstat(fd).st_mtime < min_age_s:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its participant lives
            size = _allocated(segment) + _allocated(lock)
            if not dry_run:
                for path in (segment, lock):
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
            removed.append(name)
            freed += size
        finally:
            os.close(fd)  # releases the lock
    return Cleaned(tuple(removed), freed)


def report(result: Cleaned, dry_run: bool = False) -> str:
    verb = 'would remove' if dry_run else 'removed'
    return (f'{verb} {len(result.removed)} stale Fast DDS shared-memory segment(s) of dead '
            f'processes ({result.bytes / 1e6:.1f} MB)')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dir', default=SHM_DIR, help='shared-memory directory')
    parser.add_argument('--min-age', type=float, default=MIN_AGE_S,
                        help='s a lock file must exist before its segment may be judged stale')
    parser.add_argument('--dry-run', action='store_true', help='list, remove nothing')
    args = parser.parse_args(argv)
    if args.min_age < 0:
        parser.error('--min-age must be >= 0')
    result = clean(args.dir, args.min_age, args.dry_run)
    print(report(result, args.dry_run))
    for name in result.removed:
        print(f'  {name}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
