"""The dashboard's data: the analytics questions' own answers, asked through the registry.

The dashboard never queries the store itself: it finds a question by method and path in
`mcp_gateway.analytics.QUESTIONS`, validates parameters with the question's own args model and
awaits its `answer`, so every figure on the page is the figure the REST API gives. Answers come back
as plain JSON values (what the API would send). A question that is not registered, refuses the
parameters (the funnel's steps come from the query string) or fails yields `Unavailable` for its
section instead of failing the page: a refusal says why, a failure only that it failed (and is logged).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from ..analytics import Asked, Question
from ..web import CLIENT_ERRORS, client_error, field_errors

logger = logging.getLogger(__name__)

Method = Literal["GET", "POST"]


@dataclass(frozen=True, slots=True)
class Unavailable:
    """Why a section has no data (a sentence): its question is not served here, or answering it failed."""

    reason: str


NOT_SERVED = Unavailable("This section is not available here.")
FAILED = Unavailable("This section could not be loaded.")


class Answers:
    """Asks the registered questions on behalf of one gateway's read key."""

    def __init__(self, questions: Sequence[Question[Any]]) -> None:
        self._questions = {(question.method, question.path): question for question in questions}

    async def ask(self, asked: Asked, path: str, params: Mapping[str, Any], method: Method = "GET") -> Any:
        """The JSON answer of `method path` to `params`, or `Unavailable`."""
        question = self._questions.get((method, path))
        if question is None:
            return NOT_SERVED
        try:
            args = question.args.model_validate(dict(params))
            return to_jsonable_python(await question.answer(asked, args))
        except ValidationError as exc:
            first = field_errors(exc)[0]
            logger.warning("dashboard: %s %s refused the parameters: %s", method, path, first)
            return Unavailable(f"Not answered: {first['field']}: {first['message']}")
        except CLIENT_ERRORS as exc:
            message = client_error(exc).message
            logger.warning("dashboard: %s %s refused the parameters: %s", method, path, message)
            return Unavailable(f"Not answered: {message}")
        except Exception:
            logger.exception("dashboard: %s %s failed", method, path)
            return FAILED
