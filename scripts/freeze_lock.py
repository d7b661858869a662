"""Print the pinned lock of the current environment, for requirements/lock.txt.

``pip freeze`` also lists the ROS packages that the ros-jazzy-* wheels carry inside them
(``rclpy``, ``action_msgs``, ... as .egg-info); those are not installable on their own, so
only distributions installed from their own wheel (.dist-info) are pinned. Editable
installs (the project's own packages) are left out.
"""

from __future__ import annotations

import importlib.metadata as md
import json

SKIP = {"pip", "rl100"}


def main() -> None:
    pins = {}
    for dist in md.distributions():
        path = str(getattr(dist, "_path", ""))
        name = dist.metadata["Name"]
        if not path.endswith(".dist-info") or name is None or name.lower() in SKIP:
            continue
        direct = dist.read_text("direct_url.json")
        if direct and json.loads(direct).get("dir_info", {}).get("editable"):
            continue
        version = dist.version.split("+")[0]  # torch 2.13.0+cpu -> 2.13.0 (pip then takes the local file)
        pins[name.lower()] = f"{name}=={version}"
    print("\n".join(pins[k] for k in sorted(pins)))


if __name__ == "__main__":
    main()
