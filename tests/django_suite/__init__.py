"""Django's own session tests against the guard: `python -m tests.django_suite`.

Runs `tests/runtests.py sessions_tests` from the source distribution of the installed Django
(downloaded once with `pip download --no-binary :all: --no-deps Django==<version>` into
`.cache/django-suite/<version>/`, which git ignores; only its `tests/` is extracted) on SQLite,
in three modes:

- `plain`: Django's engines as they are;
- `guarded-before-release`: SESSION_ENGINE = "release.sessions" around the engine the plain run
  uses (RELEASE_SESSION_ENGINE), and every test class's `backend` replaced by
  `release.sessions.guarded_store_class(backend)`, in a database where no release ran (nothing
  is stamped; test cases that forbid queries cannot read the stamp);
- `guarded-after-logout`: the same, in a process that read its stamp after the release command
  installed the tool (FORCE_LOGOUT_VERSION = 1) and a second release (2) logged everyone out, so
  that every key made and every cookie signed carries a stamp and every session loaded is
  checked.

Each mode runs all the test classes together, then every class alone (one `runtests.py` process
each, two at a time by default). The outcome of every test (passed, failed, error, skipped,
expected failure, unexpected success) must be the same in each guarded run as in the plain run
of the same classes; the command lists every difference and exits 1 if there is one. It also
fails if a guarded run did not guard (no test class's backend replaced, SESSION_ENGINE not the
guard, no stamp after the logout).

Nothing in Django's files is edited: `tests.django_suite.child` runs `runtests.py` as
`python runtests.py` would, with `--settings=tests.django_suite.settings`, whose TEST_RUNNER
(`tests.django_suite.runner.SuiteRunner`) installs the `release` app, guards the backends and
records the outcomes. The test classes need no service but SQLite (the cache tests use LocMem).

Options: `--jobs N` (processes at once, default 2), `--cache DIR`, `--tests-dir DIR` (a Django
`tests/` directory to use instead of downloading one), `--modes` (comma-separated), `--no-alone`.
"""
