# rl100 trainer image: CUDA torch + the rl100 learning core. No ROS: it ingests recorded
# MCAP episodes, trains (IL -> offline RL -> online RL, consistency distillation) and exports ONNX.
#
#   docker build -f docker/trainer.Dockerfile -t rl100-trainer .
#   docker run --rm -it --gpus all --shm-size 8g -v $PWD/runs:/runs -v $HOME/rl100_episodes:/episodes \
#       rl100-trainer rl100 --help
#   multi-GPU: ... rl100-trainer torchrun --nproc-per-node 4 -m rl100.cli <command> ...

# pinned by digest in production; CUDA 12.4 runtime with cuDNN
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04

ARG DEBIAN_FRONTEND=noninteractive
# jammy ships Python 3.10; the learning core supports >= 3.10
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3 python3-pip python3-venv \
        libosmesa6 libegl1 libgl1 \
    && rm -rf /var/lib/apt/lists/*

# CUDA build of torch from the PyTorch cu124 index; the rest pinned like requirements/lock.txt
# (ONNX Runtime 1.20 runs exported graphs after a load-time rewrite that needs onnx: rl100.export.portable)
RUN pip3 install --no-cache-dir torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124 \
    && pip3 install --no-cache-dir \
        onnx==1.17.0 onnxruntime-gpu==1.20.1 safetensors==0.4.5 tensorboard==2.18.0 \
        matplotlib==3.9.2 tqdm==4.67.1 pyyaml==6.0.2 \
        mujoco==3.3.0 gymnasium==1.0.0 gymnasium-robotics==1.3.1 metaworld==3.0.0 packaging \
        rosbags==0.11.9 mcap==1.2.1 mcap-ros2-support==0.5.5

WORKDIR /rl100
COPY src/rl100/ src/rl100/
RUN pip3 install --no-cache-dir --no-deps -e src/rl100
ENV MUJOCO_GL=egl
ENTRYPOINT []
CMD ["rl100", "--help"]
