"""Which of two starts' fits the camera check keeps (camera_check.check_two_starts)."""

import numpy as np
import pytest
from rl100_camera.camera_check import check_two_starts, PAIRED_TIE

FIRST = np.eye(4)
BELIEVED = np.eye(4)
BELIEVED[:3, 3] = [0.01, 0.0, 0.0]  # a calibration corrected after an earlier knock


class TwoFits:
    """Stands in for CameraCheck: the fit it returns depends on the start (``believed``)."""

    def __init__(self, from_believed, from_first):
        self.believed = None
        self._fits = {True: from_believed, False: from_first}

    def __call__(self, frames):
        fit = self._fits[bool(np.allclose(self.believed, BELIEVED))]
        if fit is None:
            raise ValueError('refused: 10% of the observed points paired')
        return dict(fit)


def fit(paired, rms_mm, x):
    return {'paired': paired, 'rms_mm': rms_mm, 'camera_pose': [x, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
            'moved_mm': 0.0, 'turned_deg': 0.0}


@pytest.mark.parametrize('prev, first, kept', [
    (fit(0.95, 0.8, 0.02), fit(0.80, 0.4, 0.03), 'believed'),  # clearly more paired wins
    (fit(0.80, 0.4, 0.02), fit(0.95, 0.8, 0.03), 'first'),
    (fit(0.957, 0.76, 0.02), fit(0.95, 0.43, 0.03), 'first'),  # a near tie: smaller rms wins
    (fit(0.93, 0.40, 0.02), fit(0.95, 0.43, 0.03), 'believed'),
    (None, fit(0.9, 0.5, 0.03), 'first'),  # the start from the corrected one refused
    (fit(0.9, 0.5, 0.02), None, 'believed'),
])
def test_keeps_the_better_fit(prev, first, kept):
    result, refused = check_two_starts(TwoFits(prev, first), BELIEVED, [object()], FIRST)
    assert bool(result.get('retried')) == (kept == 'first')
    assert bool(refused) == (prev is None)
    if kept == 'first':  # its move is counted from the calibration in use
        assert result['moved_mm'] == pytest.approx(20.0)


def test_the_tie_is_a_parameter():
    prev, first = fit(0.957, 0.76, 0.02), fit(0.95, 0.43, 0.03)
    assert PAIRED_TIE >= 0.007
    result, _ = check_two_starts(TwoFits(prev, first), BELIEVED, [object()], FIRST, paired_tie=0.0)
    assert 'retried' not in result  # judged by paired alone: the start from the corrected one


def test_both_refused_raises():
    with pytest.raises(ValueError, match='refused'):
        check_two_starts(TwoFits(None, None), BELIEVED, [object()], FIRST)
