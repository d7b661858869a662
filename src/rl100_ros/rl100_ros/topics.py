"""Topic and service names of the rl100 graph, in one place (remap at launch, not in code)."""

ACTION_CHUNK = '/rl100/action_chunk'  # rl100_msgs/ActionChunk: policy node -> safety node
SAFETY_STATUS = '/rl100/safety_status'  # rl100_msgs/SafetyStatus
INTERVENTION = '/rl100/intervention'  # rl100_msgs/Intervention, every control tick
EPISODE_EVENT = '/rl100/episode_event'  # rl100_msgs/EpisodeEvent
LOAD_POLICY = '/rl100/load_policy'  # rl100_msgs/srv/LoadPolicy
SET_MODE = '/rl100/set_mode'  # rl100_msgs/srv/SetMode
# std_srvs/Trigger: the camera_check node checks the scene camera on the next still frame
# (and corrects the calibration when its `correct` is on); the result as JSON in the message
CHECK_CAMERA = '/rl100/check_camera'
TELEOP_TARGET = '/rl100/teleop/target'  # rl100_msgs/TeleopTarget: pose-commanding operators
# std_msgs/String, latched: a node's name once its constructor has finished (rl100_ros.run_node)
READY = '/rl100/ready'

# robot side: what the safety node commands and what it observes (franka_ros2 + CRISP names;
# the sim robot uses the same ones)
TARGET_POSE = '/rl100/target_pose'  # geometry_msgs/PoseStamped, remapped to CRISP's target_pose
GRIPPER_COMMAND = '/rl100/gripper_command'  # std_msgs/Float32, 0 open .. 1 closed
CURRENT_POSE = '/franka_robot_state_broadcaster/current_pose'  # geometry_msgs/PoseStamped
GRIPPER_STATE = '/franka_gripper/joint_states'  # sensor_msgs/JointState, two finger joints (m)
JOINT_STATES = '/joint_states'  # sensor_msgs/JointState
POINTS = '/rl100/points'  # sensor_msgs/PointCloud2 xyz float32, base frame, cropped, all points
START_EPISODE = '/rl100/start_episode'  # rl100_msgs/srv/StartEpisode
END_EPISODE = '/rl100/end_episode'  # rl100_msgs/srv/EndEpisode
