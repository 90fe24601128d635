"""Fixtures the voice tests share with the WAS and browser tests: a running
WAS with one user per role (``site``) and headless Chromium (``browser``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "was"))  # was_site, as the WAS tests import it

from tests.browser import conftest as browser_fixtures  # noqa: E402
from tests.integration.was import conftest as was_fixtures  # noqa: E402

browser = browser_fixtures.browser
chromium = browser_fixtures.chromium
site = was_fixtures.site
