"""DER and cpWER on hand-computed cases."""

from __future__ import annotations

import pytest

from whisper_npu.diarize.metrics import best_mapping, cpwer, der


def test_der_components():
    ref = [(0.0, 10.0, "a"), (10.0, 20.0, "b"), (15.0, 20.0, "a")]  # 5 s of overlap: 25 s of speaker time
    hyp = [(0.0, 10.0, "X"), (10.0, 18.0, "Y"), (18.0, 20.0, "X"), (20.0, 21.0, "Y")]
    d = der(ref, hyp)
    # X=a, Y=b. 10-15: b/Y ok. 15-18: a+b vs Y -> 1 missed. 18-20: a+b vs X -> 1 missed. 20-21: FA 1.
    assert d.total == pytest.approx(25.0)
    assert d.missed == pytest.approx(5.0)
    assert d.false_alarm == pytest.approx(1.0)
    assert d.confusion == pytest.approx(0.0)
    assert d.rate == pytest.approx(6.0 / 25.0)


def test_der_confusion_and_collar():
    ref = [(0.0, 10.0, "a"), (10.0, 20.0, "b")]
    hyp = [(0.0, 10.5, "X"), (10.5, 20.0, "Y")]
    assert der(ref, hyp).confusion == pytest.approx(0.5)
    assert der(ref, hyp, collar=0.25).rate == pytest.approx(0.25 / 19.0)  # 10.25-10.5 still wrong
    assert der(ref, hyp, collar=0.5).rate == pytest.approx(0.0)


def test_mapping_is_optimal_not_greedy():
    import numpy as np

    gain = np.array([[10.0, 9.0], [9.0, 1.0]])  # greedy takes (0,0)=10 then (1,1)=1 -> 11; best is 18
    assert sorted(best_mapping(gain)) == [(0, 1), (1, 0)]


def test_cpwer():
    ref = {"a": "one two three", "b": "four five"}
    assert cpwer(ref, {"X": "four five", "Y": "one two three"}) == 0.0
    # X = a: "four five" inserted for a, and b's two words deleted
    assert cpwer(ref, {"X": "one two three four five"}) == pytest.approx(4 / 5)
    assert cpwer(ref, {"X": "one two", "Y": "three four five"}) == pytest.approx(2 / 5)
