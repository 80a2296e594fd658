"""Numbers as every view writes them: bounded widths, engineering notation for the very large
and the very small, one LR format, "samples/s" after the number."""

import math

import pytest

from tui_trainer import fmt


@pytest.mark.parametrize("value, shown", [
    (0.6123, "0.6123"),
    (0.0074, "0.0074"),
    (1234.5678, "1234.57"),
    (1.5e-5, "15.0e-6"),  # "best val_loss 0.0000" hid a loss that kept improving
    (7.4e-4, "740e-6"),
    (4839358926259737600.0, "4.84e18"),  # a diverging loss, not 22 digits
    (99999.0, "100e3"),  # rounding carries into the next power of a thousand
    (-1.5e-5, "-15.0e-6"),
    (0.0, "0.0000"),
])
def test_metric_is_bounded_and_switches_to_engineering_notation(value, shown):
    assert fmt.metric(value) == shown
    assert len(fmt.metric(value)) <= 8


def test_metric_never_rounds_a_nonzero_value_to_zero_and_says_nan():
    for exponent in range(-30, 30):
        for mantissa in (1.0, 2.5, 9.99):
            value = mantissa * 10.0 ** exponent
            text = fmt.metric(value)
            assert float(text) != 0
            assert math.isclose(float(text), value, rel_tol=0.01), (value, text)
            assert len(text) <= 8, text
    assert fmt.metric(math.nan) == "nan" and fmt.metric(math.inf) == "inf" and fmt.metric(None) == "--"


def test_rate_puts_the_unit_after_the_number():
    assert fmt.rate(8545.2) == "8,545 samples/s"
    assert fmt.rate(123_456) == "123k samples/s"
    assert fmt.rate(8545.2, "/s") == "8,545/s"
    assert fmt.rate(None) == "--"


def test_lr_has_one_format():
    assert fmt.lr(0.000793893) == "7.94e-04"
    assert fmt.lr(1e-3) == "1.00e-03"
