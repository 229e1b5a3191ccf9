"""The app a crash test's subprocess runs (`flask --app tests.crash_app …`, `gunicorn tests.crash_app:app`): the
test's configuration, handed over as JSON in CRASH_APP_CONFIG (tests/test_crash_safety.py)."""

from __future__ import annotations

import json
import os

from app import create_app

app = create_app(json.loads(os.environ["CRASH_APP_CONFIG"]))
