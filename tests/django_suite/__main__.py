from __future__ import annotations

from tests.django_suite.suite import main

raise SystemExit(main())
