"""MediaTime: seconds, frames and timecodes."""

from __future__ import annotations

from fractions import Fraction

import pytest

from cinedex.core.mediatime import MediaTime


@pytest.mark.parametrize(("seconds", "fps", "frame"), [
    (0.0, 25, 0), (1.0, 25, 25), (1.019, 25, 25), (1.021, 25, 26), (12.5, 24.0, 300), (10.0, Fraction(24000, 1001), 240),
])
def test_frame_is_the_nearest_frame_index(seconds, fps, frame):
    assert MediaTime(seconds).frame(fps) == frame


@pytest.mark.parametrize(("seconds", "fps"), [(0.0, 25), (1.021, 25), (12.34, 24.0), (8.333, 29.97), (3599.99, 23.976),
                                              (0.52, 25.0)])
def test_snapped_is_the_time_of_the_nearest_frame(seconds, fps):
    snapped = MediaTime(seconds).snapped(fps)
    # Exactly what dividing the frame index by the rate gives, and within half a frame of the time.
    assert snapped.seconds == round(seconds * fps) / fps
    assert abs(snapped.seconds - seconds) <= 0.5 / fps + 1e-12
    assert snapped == MediaTime.from_frame(MediaTime(seconds).frame(fps), fps)
    assert snapped.snapped(fps) == snapped  # a time on a frame stays there


def test_snapped_with_an_exact_ntsc_rate():
    fps = Fraction(30000, 1001)
    snapped = MediaTime(1.0).snapped(fps)
    assert MediaTime(1.0).frame(fps) == 30
    assert snapped.seconds == float(Fraction(30) / fps) == pytest.approx(1.001)


def test_timecodes_round_trip():
    assert MediaTime.parse("01:02:03,450").seconds == pytest.approx(3723.45)
    assert MediaTime(3723.45).timecode(",") == "01:02:03,450"
    assert str(MediaTime(59.9996)) == "00:01:00.000"
