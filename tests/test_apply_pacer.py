"""The write pacer climbs back after a throttling storm ends, without running ahead of the tenant.

Only time is faked: the pacer gets a clock it does not own, and the test says what the tenant
accepted and when it throttled.
"""
from __future__ import annotations

from exocm.core.execute.apply import WritePacer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _storm_then_quiet(clock: Clock, pacer: WritePacer, *, accept: bool, seconds: float) -> list[float]:
    """A tenant that throttled at 40/s (two events), then accepts whatever the pacer sends (or, with
    accept False, a client that has nothing more to write); returns the pacer's rate per second."""
    for _ in range(2):  # leave slow start: two throttle events 10 s apart at 40/s
        for _ in range(100):
            clock.now += 0.1
            pacer.accepted(4)
        pacer.throttled()
    rates = []
    step = 0.05
    for i in range(int(seconds / step)):
        clock.now += step
        if accept:
            taken = 0
            while taken < 1000 and pacer.try_take(1) == 0.0:
                taken += 1
            pacer.accepted(taken)
        else:
            pacer.try_take(1)
        if i % int(1 / step) == 0:
            rates.append(pacer.rate)
    return rates


def test_pacer_climbs_back_and_probes_past_the_old_budget_once_the_storm_ends() -> None:
    clock = Clock()
    pacer = WritePacer(clock=clock)
    rates = _storm_then_quiet(clock, pacer, accept=True, seconds=40)
    after_cut = rates[0]
    assert after_cut <= 40.0  # just after the cut: no more than the tenant accepted in the storm
    # within recover_s plus a few doublings the rate is three times the storm's (the old pacer
    # grew 0.2-1 %/s and needed about two minutes for that)
    settle = int(pacer.recover_s + 4 * pacer.probe_doubling_s) + 1
    assert max(rates[:settle]) >= 3 * after_cut
    assert pacer.cuts == 2


def test_pacer_does_not_probe_past_what_the_client_actually_sends() -> None:
    clock = Clock()
    pacer = WritePacer(clock=clock)
    rates = _storm_then_quiet(clock, pacer, accept=False, seconds=40)
    # nothing accepted since the storm: the rate climbs back to its ceiling and rests there,
    # never doubling into the void
    plateau = rates[int(pacer.recover_s) + 1]
    assert plateau > rates[0]
    assert max(rates) <= plateau * 1.001
