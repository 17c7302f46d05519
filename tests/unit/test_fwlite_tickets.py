"""fwlite download tickets: one GET of one file, once, before they expire (clock injected)."""

from __future__ import annotations

from fwlite.tickets import Tickets

FILE = "/api/acquisitions/a1/files/a.dcm"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_ticket_opens_its_file_once_within_its_lifetime() -> None:
    clock = Clock()
    tickets = Tickets(lifetime=60, clock=clock)
    token = tickets.issue(FILE)
    clock.now += 59.9
    assert tickets.redeem(token, "GET", FILE) is None
    assert tickets.redeem(token, "GET", FILE) == "unknown or already used download ticket"


def test_an_expired_ticket_is_refused() -> None:
    clock = Clock()
    tickets = Tickets(lifetime=60, clock=clock)
    token = tickets.issue(FILE)
    clock.now += 60
    assert tickets.redeem(token, "GET", FILE) == "download ticket expired"


def test_a_ticket_is_spent_by_a_request_it_does_not_open() -> None:
    tickets = Tickets(clock=Clock())
    for method, path in [
        ("GET", "/api/acquisitions/a1/files/b.dcm"),
        ("GET", "/api/acquisitions/a2/files/a.dcm"),
        ("GET", FILE + "/info"),
        ("PUT", FILE),
        ("POST", "/api/groups"),
    ]:
        token = tickets.issue(FILE)
        assert tickets.redeem(token, method, path) == "ticket does not match this file"
        assert tickets.redeem(token, "GET", FILE) == "unknown or already used download ticket"


def test_expired_tickets_are_dropped_when_new_ones_are_issued() -> None:
    clock = Clock()
    tickets = Tickets(lifetime=60, clock=clock)
    for _ in range(100):
        tickets.issue(FILE)
    clock.now += 61
    tickets.issue(FILE)
    assert len(tickets) == 1
