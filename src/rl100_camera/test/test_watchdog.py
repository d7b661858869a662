"""The stream watchdog's timing rules, on a hand-driven clock."""

import pytest
from rl100_camera.watchdog import Action, Level, Phase, StreamWatchdog, WatchdogConfig

CONFIG = WatchdogConfig(stall_timeout=1.0, startup_timeout=3.0, restart_backoff=0.5,
                        max_backoff=2.0, max_restarts=3, stable_after=10.0)


class Clock:

    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock():
    return Clock()


def streaming(clock, config=CONFIG):
    wd = StreamWatchdog(config, clock)
    clock.t += 0.1
    wd.frame()
    return wd


def test_stall_warns_then_restarts_then_errors_until_frames_come_back(clock):
    wd = streaming(clock)
    assert wd.status() == (Level.OK, 'streaming', {'stalls': 0, 'restarts': 0,
                                                   'failed_restarts': 0})
    clock.t += 1.0
    assert wd.poll() is Action.NONE  # exactly the timeout: not yet
    clock.t += 0.01
    assert wd.poll() is Action.NONE and wd.phase is Phase.STALLED  # backoff before a restart
    assert wd.status()[:2] == (Level.WARN, 'stalled: no frame for 1 s')
    clock.t += 0.5
    assert wd.poll() is Action.RESTART
    wd.restarted(True)
    level, message, counters = wd.status()
    assert (level, message) == (Level.ERROR, 'stalled: no frame for 1 s; restart 1/3')
    assert counters == {'stalls': 1, 'restarts': 1, 'failed_restarts': 0}
    assert wd.poll() is Action.NONE and wd.phase is Phase.RESTARTING
    clock.t += 0.2
    wd.frame()
    assert wd.status()[:2] == (Level.OK, 'streaming')
    assert wd.status()[2] == {'stalls': 1, 'restarts': 1, 'failed_restarts': 0}


def test_frames_during_the_backoff_recover_without_a_restart(clock):
    wd = streaming(clock)
    clock.t += 1.2
    wd.poll()
    assert wd.phase is Phase.STALLED
    clock.t += 0.1
    wd.frame()  # a transient hiccup
    assert wd.phase is Phase.STREAMING and wd.poll() is Action.NONE and wd.restarts == 0


def test_no_first_frame_within_the_startup_timeout_is_a_stall(clock):
    wd = StreamWatchdog(CONFIG, clock)
    clock.t += 2.9
    assert wd.poll() is Action.NONE and wd.status()[:2] == (Level.OK, 'starting')
    clock.t += 0.2
    wd.poll()
    assert wd.status()[:2] == (Level.WARN, 'stalled: no first frame for 3 s')


def test_failed_restarts_back_off_doubling_then_give_up(clock):
    wd = streaming(clock)
    wd.failure('capture failed: USB error')  # a read that raises stalls at once
    assert wd.status()[:2] == (Level.WARN, 'stalled: capture failed: USB error')
    waits = []
    while True:
        start = clock.t
        while (action := wd.poll()) is Action.NONE:
            clock.t += 0.01
        if action is Action.GIVE_UP:
            break
        waits.append(round(clock.t - start, 2))
        wd.restarted(False, 'no RealSense device found')
    assert waits == [0.5, 1.0, 2.0]  # 0.5 s doubling, capped at max_backoff = 2 s
    level, message, counters = wd.status()
    assert level == Level.ERROR and wd.phase is Phase.FAILED
    assert message == 'stream lost after 3 restarts: restart failed: no RealSense device found'
    assert counters == {'stalls': 1, 'restarts': 3, 'failed_restarts': 3}
    wd.frame()  # too late: giving up is final
    assert wd.poll() is Action.GIVE_UP


def test_a_restart_without_frames_counts_as_failed(clock):
    wd = streaming(clock)
    clock.t += 1.5
    wd.poll()
    clock.t += 0.5
    assert wd.poll() is Action.RESTART
    wd.restarted(True)
    clock.t += 3.01
    assert wd.poll() is Action.NONE and wd.phase is Phase.STALLED
    assert wd.reason == 'no frame within 3 s of the restart' and wd.failed_restarts == 1
    clock.t += 1.0  # the second wait is twice the first
    assert wd.poll() is Action.RESTART
    wd.restarted(True)
    wd.failure('capture failed: USB reset')  # a read raising right after a restart
    assert wd.failed_restarts == 2 and wd.phase is Phase.STALLED


def stall_and_restart(wd, clock):
    clock.t += 1.01
    while wd.poll() is Action.NONE:
        clock.t += 0.01
    if wd.phase is Phase.FAILED:
        return Action.GIVE_UP
    wd.restarted(True)
    clock.t += 0.1
    wd.frame()  # back at once ...
    return Action.RESTART


def test_a_stream_that_stalls_after_every_restart_gives_up(clock):
    wd = streaming(clock)
    assert [stall_and_restart(wd, clock) for _ in range(4)] == [Action.RESTART] * 3 + [
        Action.GIVE_UP]  # ... but never stable for 10 s
    assert wd.status()[2] == {'stalls': 4, 'restarts': 3, 'failed_restarts': 0}


def test_ten_seconds_of_stable_stream_refill_the_restart_budget(clock):
    wd = streaming(clock)
    for _ in range(3):
        assert stall_and_restart(wd, clock) is Action.RESTART
        for _ in range(11):  # streams for 11 s
            clock.t += 1.0
            wd.frame()
        assert wd.poll() is Action.NONE and wd.attempts == 0
    assert stall_and_restart(wd, clock) is Action.RESTART
    assert wd.status()[2]['restarts'] == 4


def test_the_end_of_a_recording_is_not_a_stall(clock):
    wd = streaming(clock)
    wd.finished()
    clock.t += 100.0
    assert wd.poll() is Action.NONE
    assert wd.status()[:2] == (Level.OK, 'recording finished')


def test_max_restarts_zero_gives_up_at_the_first_stall(clock):
    wd = streaming(clock, WatchdogConfig(max_restarts=0))
    clock.t += 1.5
    assert wd.poll() is Action.GIVE_UP


@pytest.mark.parametrize('kwargs, message', [
    ({'stall_timeout': 0.0}, 'stall_timeout must be > 0'),
    ({'restart_backoff': 9.0}, 'need 0 <= restart_backoff <= max_backoff'),
    ({'max_restarts': -1}, 'max_restarts must be >= 0'),
])
def test_config_checks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WatchdogConfig(**kwargs)
