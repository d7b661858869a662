"""Topic and service names of the rl100 graph, in one place (remap at launch, not in code)."""

ACTION_CHUNK = '/rl100/action_chunk'  # rl100_msgs/ActionChunk: policy node -> safety node
SAFETY_STATUS = '/rl100/safety_status'  # rl100_msgs/SafetyStatus
INTERVENTION = '/rl100/intervention'  # rl100_msgs/Intervention, every control tick
EPISODE_EVENT = '/rl100/episode_event'  # rl100_msgs/EpisodeEvent
LOAD_POLICY = '/rl100/load_policy'  # rl100_msgs/srv/LoadPolicy
SET_MODE = '/rl100/set_mode'  # rl100_msgs/srv/SetMode
