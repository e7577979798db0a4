"""Fast JSON responses for large read results.

The read endpoints build plain JSON-safe dicts (NaN and infinities already turned into strings by
``entities.json_number``), so FastAPI's generic ``jsonable_encoder`` walk is pure overhead: on a page
of 100 runs it costs ~10 ms against ~1 ms for ``json.dumps``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import Response


class FastJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
