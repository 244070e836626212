"""JSON request bodies are parsed by the rules of app/core/json_text.py, for every API route.

FastAPI parses a JSON body with `request.json()`; the API routers use `JSONRulesRoute`, which
hands their endpoints a request whose `json()` applies our rules and answers 422 naming the
problem (never repeating the input) instead of a 500 or a silently stored bad value.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from app.core.json_text import JSONRefused, loads_checked


class JSONRulesRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = loads_checked(body)
            except JSONRefused as exc:
                raise HTTPException(status_code=422, detail=f"request body: {exc}") from None
        return self._json


class JSONRulesRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(JSONRulesRequest(request.scope, request.receive, request._send))

        return route_handler
