"""The sim robot's scripted operator: thresholds from a JSON parameter, strictly."""

import pytest
from rl100.loop.operator import OperatorConfig
from rl100_sim.sim_operator import operator_config_from_json, SimOperator


def test_operator_config_from_json_is_strict():
    assert operator_config_from_json('{}') == OperatorConfig()
    assert operator_config_from_json('') == OperatorConfig()
    cfg = operator_config_from_json('{"stall_steps": 30, "target_tol": 0.05}')
    assert (cfg.stall_steps, cfg.target_tol) == (30, 0.05)
    with pytest.raises(ValueError, match=r"unknown fields \['stall_step'\]; valid: \['stall_st"):
        operator_config_from_json('{"stall_step": 30}')
    with pytest.raises(ValueError, match='not JSON'):
        operator_config_from_json('{stall_steps: 30')
    with pytest.raises(ValueError, match='must be a JSON object'):
        operator_config_from_json('[30]')
    with pytest.raises(ValueError, match='stall_steps and closed_steps must be >= 0'):
        operator_config_from_json('{"stall_steps": -1}')


def test_sim_operator_uses_the_given_thresholds():
    from rl100.sim import make_env

    env = make_env('juicing-place', obs=('state', 'env_state'))
    try:
        env.reset(seed=0)
        cfg = operator_config_from_json('{"stall_steps": 7}')
        op = SimOperator('juicing-place', env, config=cfg)
        assert op.operator.config.stall_steps == 7
    finally:
        env.close()
