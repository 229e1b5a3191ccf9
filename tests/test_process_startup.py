"""Long-running processes move the app's startup objects out of the garbage collector's reach (app.
freeze_startup_objects, issue 15): a gunicorn worker of deploy/gunicorn.conf.py once the app is loaded, the worker
before its first pass; not a one-off command, nor the tests' processes."""

from __future__ import annotations

import gc
import runpy
from pathlib import Path

import pytest
from flask import Flask

import workers

GUNICORN_CONF = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"


@pytest.fixture
def freezes(monkeypatch) -> list[str]:
    """Every gc.collect / gc.freeze, recorded instead of done (freezing the test process would keep its garbage)."""
    calls: list[str] = []
    monkeypatch.setattr(gc, "collect", lambda *args: calls.append("collect") or 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    return calls


def test_a_gunicorn_worker_freezes_once_the_app_is_loaded(freezes) -> None:
    settings = runpy.run_path(str(GUNICORN_CONF))
    assert freezes == []
    settings["post_worker_init"](object())
    assert freezes == ["collect", "freeze"]


def test_the_worker_freezes_before_its_first_pass_and_a_single_pass_does_not(app: Flask, freezes,
                                                                               monkeypatch) -> None:
    seen_at_start: list[list[str]] = []
    monkeypatch.setattr(workers, "run_forever", lambda interval: seen_at_start.append(list(freezes)))
    monkeypatch.setattr(workers, "run_pass", lambda: {})
    runner = app.test_cli_runner()
    assert runner.invoke(args=["outbox", "run", "--once"]).exit_code == 0
    assert freezes == []
    assert runner.invoke(args=["outbox", "run"]).exit_code == 0
    assert seen_at_start == [["collect", "freeze"]]
