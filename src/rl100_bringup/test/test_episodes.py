"""The episode runner without ROS: phases, labels, time limits, statistics and named failures."""

import json

import pytest
from rl100_bringup.episode_summary import format_results, results_dict, summarize
from rl100_bringup.episodes import (
    CancelledError,
    EpisodeError,
    EpisodeRunner,
    Phase,
    PolicySample,
    RunnerConfig,
    SimStatus,
    StackError,
)

DT = 0.1  # s, simulated control period


class FakeStack:
    """A simulated task behind the Stack calls; sim time advances one tick per status call.

    ``success_at``: seed -> episode time (s) of the first successful tick (missing: never).
    The fake policy publishes one chunk per tick while autonomous, with a new latency every
    ``replan`` ticks (the chunk repeats the last prediction's latency in between).
    """

    def __init__(self, success_at=None, time_limit=2.0, replan=4):
        self.success_at = success_at or {}
        self.time_limit, self.replan = time_limit, replan
        self.calls = []
        self.mode, self.seed, self.time, self.reset_time = 'autonomous', 0, 5.0, 0.0
        self.pending_reset = False
        self.samples, self.open_episode, self.episodes = [], None, 0
        self.chunks = 0
        self.applies_reset, self.stuck = True, False
        self.refuse_start = ''
        self.not_ready = ''
        self.resets, self.next_seed, self.model = 0, None, 'cm.onnx:0123456789ab'
        self.takeover_at = {}  # seed -> (step, reason) of the scripted operator's takeover
        self.lockstep_timeouts = None  # an int: counted up by one on every tick (a slow graph)
        self.camera_checks = []  # what check_camera answers, in turn

    def wait_ready(self):
        self.calls.append(('ready',))
        if self.not_ready:
            raise StackError(self.not_ready)

    def _tick(self):
        if self.stuck:
            return
        if self.pending_reset and self.applies_reset:
            self.seed = self.seed + 1 if self.next_seed is None else self.next_seed
            self.reset_time, self.pending_reset, self.next_seed = self.time, False, None
            self.resets += 1
        self.time = round(self.time + DT, 6)
        if self.lockstep_timeouts is not None:
            self.lockstep_timeouts += 1
        if self.mode == 'autonomous':
            self.chunks += 1
            latency = 0.001 * (1 + self.chunks // self.replan)
            self.samples.append(PolicySample(stamp=self.time, latency=latency, period=DT,
                                             model_id=self.model))

    def set_mode(self, mode, reason):
        self.calls.append(('set_mode', mode))
        self.mode = mode

    def reset_sim(self):
        self.calls.append(('reset',))
        self.pending_reset = True

    def set_next_seed(self, seed):
        self.calls.append(('next_seed', seed))
        self.next_seed = seed

    def sim_status(self):
        self.calls.append(('status',))
        self._tick()
        episode_time = round(self.time - self.reset_time, 6)
        at = self.success_at.get(self.seed)
        success_time = at if at is not None and episode_time >= at else None
        took = self.takeover_at.get(self.seed)
        return SimStatus(success=success_time is not None, seed=self.seed, time=self.time,
                         episode_time=episode_time, success_time=success_time,
                         time_limit=self.time_limit, resets=self.resets,
                         takeover=None if took is None else {'step': took[0], 'reason': took[1]},
                         lockstep_timeouts=self.lockstep_timeouts)

    def check_camera(self):
        self.calls.append(('check_camera', self.seed, self.pending_reset))
        return self.camera_checks.pop(0)

    def start_episode(self, task, note):
        self.calls.append(('start', task))
        if self.refuse_start:
            raise StackError(f'the recorder refused StartEpisode: {self.refuse_start}')
        self.episodes += 1
        self.open_episode = f'ep{self.episodes}'
        return self.open_episode

    def end_episode(self, success, note):
        self.calls.append(('end', success))
        path, self.open_episode = f'/bags/{self.open_episode}', None
        return path

    def abort_episode(self, note):
        self.calls.append(('abort',))
        self.open_episode = None

    def policy_samples(self):
        samples, self.samples = self.samples, []
        return samples

    def policy_status(self):
        return 'waiting for observations (no points received yet)'


class FakeClock:

    def __init__(self):
        self.now = 0.0

    def sleep(self, seconds):
        self.now += seconds

    def monotonic(self):
        return self.now


def _runner(stack, **config):
    clock = FakeClock()
    done = []
    runner = EpisodeRunner(stack, RunnerConfig(**config), sleep=clock.sleep,
                           monotonic=clock.monotonic, on_result=done.append)
    return runner, done


def test_episodes_run_in_order_with_labels_and_durations():
    stack = FakeStack(success_at={1: 1.0, 3: 0.7})  # seed 2 never succeeds
    runner, done = _runner(stack, episodes=3, task='juicing-place')
    results = runner.run()
    assert done == results and [r.index for r in results] == [1, 2, 3]
    assert stack.calls[0] == ('ready',) and stack.calls.count(('ready',)) == 1
    assert [r.seed for r in results] == [1, 2, 3]
    assert [r.success for r in results] == [True, False, True]
    assert [r.bag for r in results] == ['/bags/ep1', '/bags/ep2', '/bags/ep3']
    assert [c for c in stack.calls if c[0] == 'end'] == [('end', True), ('end', False),
                                                         ('end', True)]
    # one episode's calls, in the order of the phases
    first = stack.calls[:stack.calls.index(('end', True)) + 1]
    order = [c for c in first if c[0] not in ('status', 'ready')]
    assert order == [('set_mode', 'hold'), ('reset',), ('start', 'juicing-place'),
                     ('set_mode', 'autonomous'), ('set_mode', 'hold'), ('end', True)]
    for r in results:  # the policy had control from its start (t0) to success or the limit
        if r.success:
            assert 0.0 < r.duration < stack.success_at[r.seed]
        else:
            assert r.duration == pytest.approx(2.0, abs=DT + 1e-9)
        assert r.actions == pytest.approx(r.control_time / DT, abs=1)
    assert stack.open_episode is None and stack.mode == 'hold'


def test_configured_time_limit_overrides_the_task_one():
    stack = FakeStack(time_limit=20.0)
    runner, _ = _runner(stack, episodes=1, time_limit=0.5)
    (result,) = runner.run()
    assert not result.success and 0.5 <= result.duration <= 0.5 + DT + 1e-9
    assert result.note == ''


def test_an_episode_without_policy_actions_says_why():
    stack = FakeStack()
    stack.policy_samples = lambda: []  # the policy node published nothing
    runner, _ = _runner(stack, episodes=1, time_limit=0.5)
    (result,) = runner.run()
    assert result.actions == 0
    assert result.note == 'no policy actions: waiting for observations (no points received yet)'
    assert summarize([result]).control_rate == 0.0
    assert summarize([result]).fresh_fraction is None


def test_after_an_episode_without_policy_actions_the_next_waits_for_the_policy():
    stack = FakeStack()
    real = stack.policy_samples
    lost = []  # until episode 1 is over the policy node is dead: its actions never arrive

    def samples():
        got = real()
        return got if lost else []

    def finished(result):
        lost.append(result.index)

    stack.policy_samples = samples
    runner, _ = _runner(stack, episodes=3, time_limit=0.5)
    runner._on_result = finished
    results = runner.run()
    assert [r.actions > 0 for r in results] == [False, True, True]
    kinds = [c[0] for c in stack.calls]
    starts = [i for i, k in enumerate(kinds) if k == 'start']
    readies = [i for i, k in enumerate(kinds) if k == 'ready']
    # once before the first episode, once between episode 1 (no actions) and 2; not before 3
    assert len(readies) == 2 and readies[0] < starts[0] < readies[1] < starts[1]


def test_a_policy_that_does_not_come_back_ends_the_run_naming_it():
    stack = FakeStack()
    stack.policy_samples = lambda: []
    runner, _ = _runner(stack, episodes=3, time_limit=0.5)
    real_ready = stack.wait_ready

    def ready():
        real_ready()
        if stack.episodes:
            raise StackError('the policy node published no action in 30 s')

    stack.wait_ready = ready
    with pytest.raises(EpisodeError, match=r'episode 2/3 \(waiting for the policy after an '
                       r'episode without its actions\): the policy node published no action'):
        runner.run()
    assert stack.episodes == 1 and stack.mode == 'hold'


def test_summary_statistics():
    stack = FakeStack(success_at={1: 1.0, 2: 1.6}, time_limit=2.0, replan=4)
    runner, _ = _runner(stack, episodes=3)
    results = runner.run()
    summary = summarize(results, runner.nominal_rate)
    assert (summary.episodes, summary.successes) == (3, 2)
    assert summary.success_rate == pytest.approx(2 / 3)
    assert summary.mean_cycle_time == pytest.approx((results[0].duration + results[1].duration)
                                                    / 2)
    assert summary.control_rate == pytest.approx(1 / DT, rel=0.05)  # one action per tick
    assert summary.nominal_rate == pytest.approx(1 / DT)
    assert summary.fresh_fraction == 1.0  # every chunk from a new observation
    # a chunk repeats its prediction's latency: one latency per prediction, not per chunk
    actions = sum(r.actions for r in results)
    assert actions / 4 - 3 <= summary.predictions <= actions / 4 + 3
    assert summary.latency_p50_ms <= summary.latency_p99_ms
    text = format_results(results, summary)
    assert 'success rate      2/3 = 67 %' in text and '/bags/ep3' in text
    assert 'policy latency    p50' in text and 'control rate      10.0' in text
    data = json.loads(json.dumps(results_dict(results, summary, {'model': 'm.onnx'})))
    assert data['summary']['successes'] == 2 and len(data['episodes']) == 3
    assert data['meta'] == {'model': 'm.onnx'}


def test_summary_without_successes_or_actions():
    summary = summarize([])
    assert summary.success_rate == 0.0 and summary.mean_cycle_time is None
    assert summary.control_rate is None and summary.latency_p50_ms is None
    assert 'n/a' in format_results([], summary)


def test_a_reset_that_never_shows_is_named():
    stack = FakeStack()
    stack.applies_reset = False
    runner, _ = _runner(stack, episodes=2, reset_timeout=3.0)
    with pytest.raises(EpisodeError, match=r'episode 1/2 \(wait for reset\): the sim robot '
                                           r'did not apply the reset within 3 s \(still seed 0, '
                                           r'0 resets\)'):
        runner.run()
    assert ('abort',) not in stack.calls  # no episode was open yet
    assert stack.calls[-1] == ('set_mode', 'hold')


def test_stuck_simulation_fails_and_discards_the_open_episode():
    stack = FakeStack()
    runner, _ = _runner(stack, episodes=1, stall_timeout=2.0)
    original = stack.set_mode

    def freeze_when_autonomous(mode, reason):
        original(mode, reason)
        stack.stuck = mode == 'autonomous'

    stack.set_mode = freeze_when_autonomous
    with pytest.raises(EpisodeError, match=r'episode 1/1 \(run\): simulated time stuck at'):
        runner.run()
    assert stack.calls[-2:] == [('set_mode', 'hold'), ('abort',)]
    assert runner.results == []


def test_a_stack_that_is_not_ready_fails_before_any_episode():
    stack = FakeStack()
    stack.not_ready = 'the policy node published no action in 30 s: policy_node says ...'
    runner, _ = _runner(stack, episodes=3)
    with pytest.raises(EpisodeError, match='before the first episode: the policy node '
                                           'published no action in 30 s'):
        runner.run()
    assert stack.calls == [('ready',)]


def test_refusals_are_named_and_cancel_stops_between_calls():
    stack = FakeStack()
    stack.refuse_start = 'only 0.4 GB free'
    runner, _ = _runner(stack, episodes=1)
    with pytest.raises(EpisodeError, match=r'\(start episode\): the recorder refused '
                                           r'StartEpisode: only 0.4 GB free'):
        runner.run()

    stack = FakeStack()
    runner, _ = _runner(stack, episodes=1, max_errors=5)  # a stop is not an error to ride out

    def cancelled(_seconds):
        if runner.phase == Phase.RUN:
            raise CancelledError('stopped')

    runner._sleep = cancelled
    with pytest.raises(CancelledError, match=r'episode 1/1 \(run\): stopped'):
        runner.run()
    assert ('abort',) in stack.calls and stack.mode == 'hold'


class FlakyStack(FakeStack):
    """The recorder dies: StartEpisode fails for the listed attempts (1-based)."""

    def __init__(self, fail_start, **kw):
        super().__init__(**kw)
        self.fail_start, self.attempts = set(fail_start), 0

    def start_episode(self, task, note):
        self.attempts += 1
        if self.attempts in self.fail_start:
            self.calls.append(('start', task))
            raise StackError('the recorder did not answer /rl100/start_episode within 10 s')
        return super().start_episode(task, note)


def test_stack_errors_within_max_errors_count_as_failures_and_the_run_goes_on():
    stack = FlakyStack(fail_start={2}, success_at={1: 0.5, 2: 0.5, 3: 0.5})
    runner, done = _runner(stack, episodes=3, max_errors=1)
    results = runner.run()
    assert [r.index for r in results] == [1, 2, 3] and done == results
    assert [r.success for r in results] == [True, False, True]
    assert 'start_episode within 10 s' in results[1].error and results[1].bag == ''
    assert results[1].seed == 2 and not results[0].error and not results[2].error
    i = stack.calls.index(('start', 'juicing-place'), stack.calls.index(('end', True)) + 1)
    assert ('ready',) in stack.calls[i:]  # waited for the stack before the next episode
    summary = summarize(results)
    assert (summary.successes, summary.episodes, summary.errors) == (2, 3, 1)
    text = format_results(results, summary)
    assert '(1 ended by a stack error, counted as failures)' in text
    assert 'episode 2: stack error: ' in text and '      2      2  error' in text


def test_more_stack_errors_than_allowed_stop_the_run():
    stack = FlakyStack(fail_start={1, 2})
    runner, _ = _runner(stack, episodes=3, max_errors=1)
    with pytest.raises(EpisodeError, match=r'episode 2/3 \(start episode\).*within 10 s'):
        runner.run()
    assert len(runner.results) == 1 and runner.results[0].error
    stack = FlakyStack(fail_start={1})
    stack.start_episode = lambda task, note, start=stack.start_episode: (
        setattr(stack, 'not_ready', 'the policy node published no action in 30 s'),
        start(task, note))[1]  # the failing start also takes the policy down for good
    runner, _ = _runner(stack, episodes=2, max_errors=1)
    with pytest.raises(EpisodeError, match='did not come back: the policy node published'):
        runner.run()


def test_sim_status_parsing_names_what_is_missing():
    text = json.dumps({'success': False, 'seed': 3, 'time': 1.5, 'episode_time': 0.5,
                       'success_time': None, 'time_limit': 20.0, 'steps': 5})
    status = SimStatus.parse(text)
    assert (status.seed, status.episode_time, status.success_time) == (3, 0.5, None)
    with pytest.raises(StackError, match=r"lacks \['episode_time', 'success_time', "
                                         r"'time_limit'\]"):
        SimStatus.parse(json.dumps({'success': False, 'seed': 0, 'time': 1.0}))
    with pytest.raises(StackError, match='not JSON'):
        SimStatus.parse('ok')
    assert status.takeover is None
    took = SimStatus.parse(text.replace('"steps": 5',
                                        '"takeover": {"step": 4, "reason": "stalled"}'))
    assert took.takeover == {'step': 4, 'reason': 'stalled'}
    assert status.lockstep_timeouts is None
    counted = SimStatus.parse(text.replace('"steps": 5', '"lockstep_timeouts": 3'))
    assert counted.lockstep_timeouts == 3
    with pytest.raises(StackError, match='malformed takeover'):
        SimStatus.parse(text.replace('"steps": 5', '"takeover": {"step": "late"}'))


def test_the_operator_takeover_is_in_the_episode_result():
    stack = FakeStack(success_at={2: 0.5})
    stack.takeover_at = {1: (7, 'stalled')}
    runner, _ = _runner(stack, episodes=2)
    first, second = runner.run()
    assert first.takeover == {'step': 7, 'reason': 'stalled'} and second.takeover is None


def test_lockstep_timeouts_are_counted_over_the_policy_s_control_time():
    stack = FakeStack(success_at={1: 1.0})
    runner, _ = _runner(stack, episodes=1)
    assert runner.run()[0].lockstep_timeouts is None  # a sim robot that does not report them
    stack = FakeStack(success_at={1: 1.0})
    stack.lockstep_timeouts = 100  # from before: resets, other runs
    runner, _ = _runner(stack, episodes=1)
    result = runner.run()[0]
    # every tick timed out here: as many as ticks from the switch to autonomous to the end
    assert result.lockstep_timeouts == round(result.control_time / DT)
    assert 0 < result.lockstep_timeouts < stack.lockstep_timeouts - 100
    summary = summarize([result])
    assert summary.lockstep_timeouts == result.lockstep_timeouts
    assert f'{result.lockstep_timeouts} lockstep timeouts' in format_results([result], summary)


@pytest.mark.parametrize('kwargs, message', [
    ({'episodes': 0}, 'episodes must be >= 1'),
    ({'time_limit': -1.0}, 'time_limit must be >= 0'),
    ({'poll_period': 0.0}, 'poll_period must be > 0'),
    ({'max_errors': -1}, 'max_errors must be >= 0'),
])
def test_invalid_config_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunnerConfig(**kwargs)


def test_first_seed_is_set_once_and_a_repeated_seed_still_counts_as_reset():
    stack = FakeStack(success_at={7: 0.5, 8: 0.5})
    stack.seed = 7  # the sim already runs seed 7: only the reset counter shows the new reset
    runner, _ = _runner(stack, episodes=2, first_seed=7)
    results = runner.run()
    assert [r.seed for r in results] == [7, 8] and all(r.success for r in results)
    assert [c for c in stack.calls if c[0] == 'next_seed'] == [('next_seed', 7)]
    assert stack.resets == 2
    assert results[0].model == 'cm.onnx:0123456789ab'


def test_an_episode_run_by_another_model_is_a_stack_error():
    stack = FakeStack(success_at={1: 0.5, 2: 0.5, 3: 0.5})
    expected = stack.model
    runner, _ = _runner(stack, episodes=3, expect_model=expected, max_errors=1)
    original_end = stack.end_episode

    def end_then_respawn(success, note):  # the policy node restarts with another model
        stack.model = 'startup.onnx:ba9876543210'
        return original_end(success, note)

    stack.end_episode = end_then_respawn
    with pytest.raises(EpisodeError, match='startup.onnx:ba9876543210, not cm.onnx'):
        runner.run()
    assert runner.results[0].success and not runner.results[0].error
    assert 'startup.onnx' in runner.results[1].error and not runner.results[1].success
    with pytest.raises(ValueError, match='first_seed'):
        RunnerConfig(first_seed=-2)


def test_the_camera_is_checked_after_each_reset_before_the_episode_starts():
    stack = FakeStack(success_at={1: 0.5, 2: 0.5})
    stack.camera_checks = [{'moved_mm': 15.2, 'corrected': True},
                           {'error': 'paired fraction 0.12 < 0.5'}]
    results = _runner(stack, episodes=2, check_camera=True)[0].run()
    checks = [c for c in stack.calls if c[0] == 'check_camera']
    assert checks == [('check_camera', 1, False), ('check_camera', 2, False)]  # reset applied
    for i in (0, 1):  # in HOLD, between the applied reset and the recorder's episode
        order = [c[0] for c in stack.calls if c[0] in ('reset', 'check_camera', 'start')]
        assert order[3 * i:3 * i + 3] == ['reset', 'check_camera', 'start']
    assert [r.camera_check for r in results] == [{'moved_mm': 15.2, 'corrected': True},
                                                 {'error': 'paired fraction 0.12 < 0.5'}]
    assert all(r.success for r in results)  # a refused check is recorded, the episode runs
    stack = FakeStack(success_at={1: 0.5})
    _runner(stack, episodes=1)[0].run()
    assert not any(c[0] == 'check_camera' for c in stack.calls)  # off by default
