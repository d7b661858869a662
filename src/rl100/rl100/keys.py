"""Dictionary keys shared by the simulator, the dataset, the policies and the ROS nodes.

One definition each, so that a renamed key is a one-line change and a typo is an
ImportError instead of a silent KeyError at training time.
"""

# observations: one step of each is one array
# (D_s,) float32 proprioception: ee pos(3), ee quat xyzw(4), gripper width(1), joint pos(7)
OBS_STATE = "observation.state"
OBS_RGB = "observation.rgb"  # (H, W, 3) uint8
OBS_DEPTH = "observation.depth"  # (H, W) float32 metres, 0 = no return
OBS_POINTS = "observation.points"  # (N, 3) or (N, 6) float32 xyz[rgb], base frame, cropped + downsampled
OBS_ENV_STATE = "observation.env_state"  # (D_e,) float32 privileged object state (sim only, never a policy input)

# (7,) float32 absolute end-effector target in the robot base frame:
# position(3) m, rotation vector(3) rad, gripper(1) 0 = open .. 1 = closed
ACTION = "action"
REWARD = "reward"  # () float32
DONE = "done"  # () bool
SUCCESS = "success"  # () bool, per step: task success detector fired at this step

# per-step flags (bit field, uint8)
FLAGS = "flags"
FLAG_DEMO = 1  # the step comes from an operator / scripted-expert demonstration
FLAG_ROLLOUT = 2  # the step comes from a policy rollout
FLAG_INTERVENTION = 4  # a human (or scripted operator) overrode the policy at this step

OBSERVATION_KEYS = (OBS_STATE, OBS_RGB, OBS_DEPTH, OBS_POINTS, OBS_ENV_STATE)

# episode meta: m the table stood higher than the training table (rl100.taskframe); the recorder
# writes it, rl100 ingest moves the episode into the table frame
TABLE_DZ = "table_dz"
