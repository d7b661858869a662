# rl100 robot image: ROS 2 Humble + franka_ros2 + realsense-ros + onnxruntime-gpu + this workspace.
# Runs the deployment graph (camera, policy, safety, recorder, Franka bridge) on the robot PC.
#
#   docker build -f docker/robot.Dockerfile -t rl100-robot .
#   docker run --rm -it --network host --privileged --gpus all \
#       -v /dev:/dev -v $HOME/rl100_episodes:/episodes rl100-robot \
#       ros2 launch rl100_bringup orange_juicer.launch.py use_sim:=false record_dir:=/episodes
#
# --network host: DDS discovery with the Franka controller PC; --privileged -v /dev: the
# RealSense (USB) and the SpaceMouse / gamepad (HID); --gpus all: CUDA for ONNX Runtime.
# The real-time kernel and the franka_ros2 controller manager run on the host as Franka requires.

# pinned by digest in production; the tag names the distribution
FROM ros:humble-ros-base-jammy

ARG DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# franka_ros2 (Humble binaries from the ROS apt repository), realsense-ros, and the
# system libraries of pyrealsense2 (libusb) and pyspacemouse (hidapi)
RUN apt-get update && apt-get install -y --no-install-recommends \
        ros-humble-franka-ros2 \
        ros-humble-franka-gripper \
        ros-humble-franka-msgs \
        ros-humble-realsense2-camera \
        ros-humble-rosbag2-storage-mcap \
        ros-humble-diagnostic-updater \
        python3-pip python3-colcon-common-extensions \
        libusb-1.0-0 libhidapi-hidraw0 \
        libegl1 libosmesa6 \
    && rm -rf /var/lib/apt/lists/*

# Python dependencies of the nodes; onnxruntime-gpu brings the CUDA execution provider
# (CUDA/cuDNN runtime libraries come with the NVIDIA container toolkit at run time). ONNX Runtime
# for Python 3.10 stops at 1.23, which needs the exported graph's group norms rewritten at load
# time (rl100.export.portable): that takes the onnx package. rosbags as in requirements/lock.txt
# (0.10 has no Writer.abort, which the recorder's abort path calls). MuJoCo and the Panda model
# of gymnasium-robotics: check_camera renders the robot and table it expects to see (EGL, or
# OSMesa with MUJOCO_GL=osmesa where the GPU has no EGL).
RUN pip3 install --no-cache-dir \
        "numpy<2" \
        onnxruntime-gpu==1.20.1 \
        onnx==1.23.2 \
        pyrealsense2==2.55.1.6486 \
        rosbags==0.11.9 \
        pyspacemouse==1.1.4 \
        pysdl2==0.9.17 \
        pysdl2-dll==2.32.10 \
        pyyaml \
        mujoco==3.3.0 gymnasium==1.0.0 gymnasium-robotics==1.3.1

WORKDIR /ws
COPY src/ src/
COPY colcon.meta ./
# the learning core goes in as a plain Python package (the policy node uses its PolicyRuntime)
RUN pip3 install --no-cache-dir --no-deps ./src/rl100 \
    && . /opt/ros/humble/setup.bash \
    && colcon build --event-handlers console_cohesion+ \
    && rm -rf build log
COPY models/ models/

RUN echo 'source /opt/ros/humble/setup.bash && source /ws/install/setup.bash' >> /etc/bash.bashrc
ENTRYPOINT ["/bin/bash", "-c", "source /opt/ros/humble/setup.bash && source /ws/install/setup.bash && exec \"$@\"", "--"]
CMD ["ros2", "launch", "rl100_bringup", "orange_juicer.launch.py", "use_sim:=false"]
