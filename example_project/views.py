from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "example_project/home.html")


async def whoami(request: HttpRequest) -> HttpResponse:
    """The same question as the home page, answered on the async path (ASGI)."""
    user = await request.auser()
    text = f"signed in as {user.get_username()}" if user.is_authenticated else "not signed in"
    return HttpResponse(text, content_type="text/plain")


@require_POST
def add_to_cart(request: HttpRequest) -> HttpResponse:
    """Writes to the session of anonymous and signed-in visitors alike, as a shop's cart does."""
    request.session["cart"] = request.session.get("cart", 0) + 1
    return redirect("home")
