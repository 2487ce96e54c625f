"""The history in the Django admin: visible to staff with the view permission, never editable."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from pytest_django.fixtures import Settings

from release.models import Logout
from tests.conftest import release

LIST = "/admin/release/logout/"


@pytest.fixture
def record(installed: None) -> Logout:
    return Logout.objects.get()


def staff(*permissions: str) -> Client:
    user = User.objects.create_user("staff", password="x" * 12, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=permissions))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_staff_with_the_view_permission_see_the_history(record: Logout) -> None:
    client = staff("view_logout")

    page = client.get(LIST)
    detail = client.get(f"{LIST}{record.pk}/change/")

    assert page.status_code == 200
    assert "First release with the tool" in page.content.decode()
    assert detail.status_code == 200
    assert 'type="submit"' not in detail.content.decode().split('id="logout_form"')[-1]


@pytest.mark.django_db
def test_staff_without_it_do_not(record: Logout) -> None:
    assert staff().get(LIST).status_code == 403


@pytest.mark.django_db
def test_nobody_adds_changes_or_deletes_history(record: Logout) -> None:
    superuser = User.objects.create_superuser("root", password="x" * 12)
    client = Client()
    client.force_login(superuser)

    assert client.get(f"{LIST}add/").status_code == 403
    assert client.post(f"{LIST}add/", {"reason": "forged"}).status_code == 403
    assert client.post(f"{LIST}{record.pk}/change/", {"reason": "edited"}).status_code == 403
    assert client.post(f"{LIST}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = client.post(LIST, {"action": "delete_selected", "_selected_action": [record.pk]})
    assert bulk.status_code in {200, 302}
    assert Logout.objects.get().reason == record.reason


@pytest.mark.django_db
def test_the_list_filters_by_date(record: Logout, settings: Settings) -> None:
    settings.FORCE_LOGOUT_VERSION = 2
    release()  # logs everyone out: sign in afterwards
    client = staff("view_logout")

    everything = client.get(LIST, {"applied_at__gte": "2000-01-01 00:00:00+00:00"})
    nothing = client.get(LIST, {"applied_at__gte": "2999-01-01 00:00:00+00:00"})

    assert everything.status_code == 200, everything.headers.get("Location")
    assert "By applied at" in everything.content.decode()
    assert everything.context["cl"].result_count == 2
    assert nothing.context["cl"].result_count == 0


@pytest.mark.django_db
def test_the_list_says_what_the_next_release_would_do(
    record: Logout, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = staff("view_logout")
    monkeypatch.setenv("FORCE_LOGOUT_ON_DEPLOY", "incident-9")

    page = client.get(LIST).content.decode()
    page = page[page.index("What the next release would do") :][:1000]

    assert "FORCE_LOGOUT_ON_DEPLOY: unset -&gt; &#x27;incident-9&#x27;, new" in page
    assert "Decision: log everyone out" in page
    assert "Sessions: django.contrib.sessions.backends.db, table" in page

    settings.FORCE_LOGOUT_VERSION = [1]
    broken = client.get(LIST).content.decode()
    assert "The next release would fail: FORCE_LOGOUT_VERSION must be an int" in broken


def test_the_list_shows_durations_for_people(record: Logout) -> None:
    record.duration_seconds = 0.011875897000038549
    record.save()
    client = staff("view_logout")

    page = client.get(LIST).content.decode()

    assert "12 ms" in page
    assert "0.0118" not in page
