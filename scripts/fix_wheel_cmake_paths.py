"""Point the ROS 2 wheels' exported CMake targets at this venv's Python and NumPy headers.

The ros-jazzy-* wheels were built in a manylinux container, and their exported CMake
targets still name that container's include directories (``/opt/python/cp311-cp311/...``).
CMake refuses imported targets whose include paths do not exist, so a colcon build of an
interface package fails. This rewrites those strings inside ``<venv>/share/**/cmake/*.cmake``
to the real paths of this interpreter. It needs no root and touches only the venv; running
it twice is harmless.

Usage: python fix_wheel_cmake_paths.py VENV
"""

from __future__ import annotations

import pathlib
import sys
import sysconfig

BUILD_HOST_PYTHON_INCLUDE = '/opt/python/cp311-cp311/include/python3.11'
BUILD_HOST_NUMPY_INCLUDE = '/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include'


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    venv = pathlib.Path(argv[1])
    share = venv / 'share'
    if not share.is_dir():
        print(f'no {share}: is {venv} a venv with the ros-jazzy wheels installed?', file=sys.stderr)
        return 1
    import numpy

    replacements = {
        BUILD_HOST_PYTHON_INCLUDE: sysconfig.get_paths()['include'],
        BUILD_HOST_NUMPY_INCLUDE: numpy.get_include(),
    }
    for real in replacements.values():
        if not pathlib.Path(real).is_dir():
            print(f'expected include directory {real} does not exist', file=sys.stderr)
            return 1
    changed = 0
    for path in share.glob('*/cmake/*.cmake'):
        text = path.read_text(encoding='utf-8')
        new = text
        for old, real in replacements.items():
            new = new.replace(old, real)
        if new != text:
            path.write_text(new, encoding='utf-8')
            changed += 1
    print(f'[setup] CMake paths fixed in {changed} files')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
