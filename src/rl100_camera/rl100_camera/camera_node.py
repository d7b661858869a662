"""Camera node: a RealSense (or a recording of one) on realsense-ros' topics.

Thin wiring over ``RealSenseSource``. Topics are private (``~/...``) and the node is named
``camera`` in namespace ``/camera``, so the defaults are realsense-ros' names
(``/camera/camera/color/image_raw``, ...); remap ``__ns`` / ``__node`` to move them.

Threads: a capture thread only reads frames (camera -> numpy) and puts the newest into a
one-frame slot; a publish thread turns the slot into messages and publishes. A slow
publisher or subscriber therefore never stalls the camera: frames it could not take are
counted as dropped and the newest one wins.

Watchdog (``watchdog.StreamWatchdog``): no frame for ``stall_timeout_ms`` (or a read that
raises) -> diagnostics WARN 'stalled'; the capture thread then stops and starts the pipeline
again with a doubling backoff (ERROR while that has not brought frames back); after
``max_restarts`` restarts without a stable stream the node exits with code 1 so that its
supervisor (``rl100_bringup.up`` / launch ``respawn``) starts a fresh process. Stalls and
restarts are counted in the diagnostics. The end of a (non-looping) recording is not a stall.

Stamps: every message of a frame carries the ROS clock time at which the frame reached the
host (read back by the capture thread). The camera's own timestamps run on the device
clock (or on librealsense's estimate of host time, which recordings do not preserve), not
on the clock the robot state is stamped with; arrival time is comparable with the robot
topics at the cost of the USB transfer latency (a few ms), and follows /clock under
use_sim_time, so replays in simulation line up.
"""

from __future__ import annotations

import math
import threading
import time

from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.node import Node
from rl100_ros import diagnostics, qos
from rl100_ros.node_main import run_node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from .messages import camera_info_msg, image_msg, pointcloud_msg
from .realsense_source import RealSenseSource, SourceConfig
from .watchdog import Action, Phase, StreamWatchdog, WatchdogConfig

COLOR_IMAGE = '~/color/image_raw'
COLOR_INFO = '~/color/camera_info'
DEPTH_IMAGE = '~/aligned_depth_to_color/image_raw'
DEPTH_INFO = '~/aligned_depth_to_color/camera_info'
POINTS = '~/depth/color/points'
EXIT_STREAM_LOST = 1  # exit code when the watchdog gives up (the supervisor restarts the node)
LEVELS = {0: diagnostics.OK, 1: diagnostics.WARN, 2: diagnostics.ERROR}


class CameraNode(Node):

    def __init__(self, **node_kwargs):
        node_kwargs.setdefault('namespace', '/camera')
        super().__init__('camera', **node_kwargs)
        p = self._declare
        max_depth = p('pointcloud_max_depth', 3.0, 'points farther than this are dropped, m '
                      '(0: no limit)')
        config = SourceConfig(
            serial_no=p('serial_no', '', 'serial number of the camera to open (empty: the '
                        'first one found)'),
            recording_file=p('recording_file', '', 'replay this librealsense recording (.db3 '
                             'or .bag) instead of opening a camera'),
            width=p('width', 640, 'colour and depth width, px'),
            height=p('height', 480, 'colour and depth height, px'),
            fps=p('fps', 30, 'frame rate of both streams, Hz'),
            real_time=p('playback_real_time', True, 'recordings: replay at the recorded rate '
                        '(false: as fast as frames are read)'),
            repeat_playback=p('playback_repeat', False, 'recordings: loop at the end'),
            pointcloud=p('enable_pointcloud', False, 'publish ~/depth/color/points (x y z '
                         'float32, m, colour optical frame)'),
            pointcloud_decimation=p('pointcloud_decimation', 1, 'keep every n-th pixel in '
                                    'both directions in the point cloud'),
            min_depth=p('pointcloud_min_depth', 0.0, 'points nearer than this are dropped, m'),
            max_depth=max_depth if max_depth > 0.0 else math.inf)
        camera_name = p('camera_name', 'camera', 'prefix of the frame ids, as in realsense-ros')
        self._frame_id = f'{camera_name}_color_optical_frame'
        watchdog = WatchdogConfig(
            stall_timeout=p('stall_timeout_ms', 1000, 'no frame for this long, ms: the stream '
                            'is stalled (diagnostics WARN), the pipeline gets restarted') / 1e3,
            startup_timeout=p('startup_timeout_ms', 5000, 'the first frame must come this soon '
                              'after a (re)start of the pipeline, ms') / 1e3,
            restart_backoff=p('restart_backoff_ms', 500, 'wait from a stall to the first '
                              'restart, ms; doubles with every further restart') / 1e3,
            max_backoff=p('restart_backoff_max_ms', 8000, 'longest wait between restarts, '
                          'ms') / 1e3,
            max_restarts=p('max_restarts', 5, 'restarts without a stable stream (10 s) before '
                           'the node exits with code 1 for its supervisor to restart it'))
        self.exit_code = 0  # EXIT_STREAM_LOST once the watchdog gave up

        self._source = RealSenseSource(config).start()  # SourceError: run_node says why
        self.get_logger().info(
            f'{self._source.device_label}: {config.width}x{config.height}@{config.fps}, '
            f'depth scale {self._source.depth_scale:g} m, frame {self._frame_id}')
        self._color_pub = self.create_publisher(Image, COLOR_IMAGE, qos.SENSOR)
        self._color_info_pub = self.create_publisher(CameraInfo, COLOR_INFO, qos.SENSOR)
        self._depth_pub = self.create_publisher(Image, DEPTH_IMAGE, qos.SENSOR)
        self._depth_info_pub = self.create_publisher(CameraInfo, DEPTH_INFO, qos.SENSOR)
        self._points_pub = (self.create_publisher(PointCloud2, POINTS, qos.SENSOR)
                            if config.pointcloud else None)

        self._lock = threading.Condition()
        self._slot = None  # (frame, stamp) waiting to be published
        self._running = True
        self._watchdog = StreamWatchdog(watchdog)
        self._source_up = True  # False after a restart whose start() failed
        self._captured = self._published = self._dropped = self._skipped = 0
        self._fps = diagnostics.RateMeter()  # published frames per second since the last report
        self._fps.rate(0, time.monotonic())
        self._latencies: list[float] = []
        self._last_number = None
        self._threads = [threading.Thread(target=self._capture_loop, name='capture', daemon=True),
                         threading.Thread(target=self._publish_loop, name='publish', daemon=True)]
        self._diagnostics = diagnostics.Diagnostics(self, 'camera', self._status)
        for t in self._threads:
            t.start()

    def _declare(self, name, default, description):
        self.declare_parameter(name, default, ParameterDescriptor(description=description))
        return self.get_parameter(name).value

    # --- threads -------------------------------------------------------------------------------
    def _capture_loop(self) -> None:
        wd = self._watchdog
        interval = wd.config.poll_interval
        while self._running:
            before = wd.phase
            action = wd.poll()
            if wd.phase is Phase.STALLED and before in (Phase.STARTING, Phase.STREAMING):
                self.get_logger().warn(f'stream stalled: {wd.reason}')
            if action is Action.GIVE_UP:
                self._give_up()
                return
            if action is Action.RESTART:
                self._restart()
                continue
            if not self._source_up or wd.phase is Phase.FINISHED:
                self._sleep(interval)  # nothing to read until the next restart
                continue
            try:
                frame = self._source.read(timeout=interval)
            except Exception as exc:  # unplugged camera, USB error: the watchdog restarts it
                if wd.phase in (Phase.STARTING, Phase.STREAMING, Phase.RESTARTING):
                    self.get_logger().error(f'capture failed: {exc}')
                wd.failure(f'capture failed: {exc}')
                self._sleep(interval)
                continue
            if frame is None:
                if self._source.finished and wd.phase is not Phase.FINISHED:
                    wd.finished()
                    self.get_logger().info('recording finished')
                continue
            if wd.phase is not Phase.STREAMING and wd.restarts:
                self.get_logger().info(f'stream back after restart {wd.restarts}')
            wd.frame()
            stamp = self.get_clock().now()
            with self._lock:
                self._captured += 1
                if self._last_number is not None and frame.frame_number > self._last_number + 1:
                    self._skipped += frame.frame_number - self._last_number - 1
                self._last_number = frame.frame_number
                if self._slot is not None:
                    self._dropped += 1  # the publisher did not keep up: newest frame wins
                self._slot = (frame, stamp)
                self._lock.notify()

    def _publish_loop(self) -> None:
        while True:
            with self._lock:
                while self._running and self._slot is None:
                    self._lock.wait(0.5)
                if not self._running:
                    return
                (frame, stamp), self._slot = self._slot, None
            self._publish(frame, stamp)

    def _publish(self, frame, stamp) -> None:
        t = stamp.to_msg()
        info = camera_info_msg(frame.intrinsics, self._frame_id, t)
        self._color_pub.publish(image_msg(frame.color, self._frame_id, t))
        self._color_info_pub.publish(info)
        self._depth_pub.publish(image_msg(frame.depth_mm(), self._frame_id, t))
        self._depth_info_pub.publish(info)
        if self._points_pub is not None and frame.points is not None:
            self._points_pub.publish(pointcloud_msg(frame.points, self._frame_id, t))
        latency = (self.get_clock().now() - stamp).nanoseconds * 1e-6
        with self._lock:
            self._published += 1
            self._latencies.append(latency)

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            if self._running:
                self._lock.wait(seconds)

    def _restart(self) -> None:
        """Stop and start the pipeline (in the capture thread: no read runs meanwhile)."""
        wd = self._watchdog
        self.get_logger().warn(f'restarting {self._source.device_label} '
                               f'({wd.attempts + 1}/{wd.config.max_restarts}): {wd.reason}')
        self._source.stop()
        try:
            self._source.start()
        except Exception as exc:  # camera gone, recording gone: counted, retried with backoff
            self._source_up = False
            self.get_logger().error(f'restart failed: {exc}')
            wd.restarted(False, str(exc))
        else:
            self._source_up = True
            wd.restarted(True)
        with self._lock:
            self._last_number = None  # frame numbers start again

    def _give_up(self) -> None:
        """Out of restarts: report, then end the process with EXIT_STREAM_LOST."""
        self.exit_code = EXIT_STREAM_LOST
        _, message, _ = self._watchdog.status()
        self.get_logger().error(f'{message}; exiting with code {EXIT_STREAM_LOST} for the '
                                'supervisor to restart the camera node')
        self._diagnostics.publish()  # the final ERROR status goes out before the process ends
        rclpy.try_shutdown(context=self.context)  # ends the spin in main()

    # --- diagnostics ---------------------------------------------------------------------------
    def _status(self):
        now = time.monotonic()
        level, state, counters = self._watchdog.status()
        with self._lock:
            fps = self._fps.rate(self._published, now) or 0.0
            latencies, self._latencies = self._latencies, []
            values = {'fps': f'{fps:.1f}', 'frames_published': self._published,
                      'frames_captured': self._captured,
                      'dropped_frames': self._dropped + self._skipped,
                      'dropped_by_publisher': self._dropped,
                      'skipped_by_camera': self._skipped}
        if latencies:
            values['latency_ms_mean'] = f'{sum(latencies) / len(latencies):.2f}'
            values['latency_ms_max'] = f'{max(latencies):.2f}'
        values.update(counters)  # stalls, restarts, failed_restarts
        values['device'] = self._source.device_label
        if state in (Phase.STARTING.value, Phase.STREAMING.value) and fps == 0.0:
            return diagnostics.WARN, 'no frames', values
        return LEVELS[int(level)], state, values

    def destroy_node(self):
        with self._lock:
            self._running = False
            self._lock.notify_all()
        for t in self._threads:
            t.join(timeout=2.0)
        if not self._threads[0].is_alive():  # else stuck in the driver: the process exit ends it
            self._source.stop()
        return super().destroy_node()


def main(args=None) -> int:
    nodes = []

    def factory():
        nodes.append(CameraNode())
        return nodes[-1]

    factory.__name__ = CameraNode.__name__  # run_node names it in a start-up error
    code = run_node(factory, args)
    return code or (nodes[0].exit_code if nodes else 0)


if __name__ == '__main__':
    raise SystemExit(main())
